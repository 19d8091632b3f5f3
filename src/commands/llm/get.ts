import { defineCommand } from '../spec.js';
import { readItem } from '../../objects/store-search.js';
import { formatVector, parseId } from '../../vector/index.js';
import { storeForCommand } from './_store.js';


export default defineCommand({
  name: 'LLM.GET',
  summary: 'Gets the text and vector of an item.',
  since: '0.1.0',
  arity: -1,
  flags: ['readonly'],
  aclCategories: ['@read', '@slow'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [{ token: '--WITHATTRS', type: 'pure-token', summary: 'Add the item attributes (JSON, or nil) as a third element.' }],
  args: [{ name: 'id', type: 'integer', summary: 'Item id.' }],
  reply: 'Array [data, "f1,f2,..."] (with --WITHATTRS: [data, vector, attributes JSON or nil]), or nil when the store or the id does not exist.',
  examples: ['LLM.GET store 1', 'LLM.GET store --WITHATTRS 2'],
  async handler(ctx, args) {
    const id = parseId(args.positionals[0]);
    const store = await storeForCommand(ctx, args.key);
    const label = store?.aliases.labelOf(id);
    const item = label === undefined ? null : await readItem(store!, label);
    if (!item) return null;
    if (!args.opts.has('withattrs')) return [item.data, formatVector(item.vector)];
    return [item.data, formatVector(item.vector), item.attrs ? JSON.stringify(item.attrs) : null];
  },
});
