import { defineCommand } from '../spec.js';
import { formatVector, parseId } from '../../vector/index.js';
import { storeForCommand } from './_store.js';


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
  async handler(ctx, args) {
    const id = parseId(args.positionals[0]);
    const store = await storeForCommand(ctx, args.key);
    const item = store?.index.get(id);
    return item ? [item.data, formatVector(item.vector)] : null;
  },
});
