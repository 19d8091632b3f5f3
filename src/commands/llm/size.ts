import { defineCommand } from '../spec.js';
import { storeForCommand } from './_store.js';


export default defineCommand({
  name: 'LLM.SIZE',
  summary: 'Counts the items of a vector store.',
  since: '0.1.0',
  arity: -1,
  flags: ['readonly'],
  aclCategories: ['@read', '@slow'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [],
  args: [],
  reply: 'Integer: live items (0 when the store does not exist).',
  examples: ['LLM.SIZE store'],
  async handler(ctx, args) {
    return (await storeForCommand(ctx, args.key))?.index.size ?? 0;
  },
});
