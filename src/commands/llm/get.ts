import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';


export default defineCommand({
  name: 'LLM.GET',
  summary: 'Gets the text and vector of an item.',
  since: '0.1.0',
  arity: 3,
  flags: ['readonly', 'fast'],
  aclCategories: ['@read', '@fast'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [],
  args: [{ name: 'id', type: 'integer', summary: 'Item id.' }],
  reply: 'Array [data, "f1,f2,..."], or nil when the store or the id does not exist.',
  examples: ['LLM.GET store 1'],
  handler() {
    throw new CommandError('not implemented');
  },
});
