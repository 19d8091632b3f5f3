import { defineCommand } from '../spec.js';
import { parseJson } from '../args.js';
import { parseId } from '../../vector/index.js';
import { parseAttrs } from '../../vector/filter.js';
import { objectsOf } from './_objects.js';
import { storeForCommand } from './_store.js';

export default defineCommand({
  name: 'LLM.SETATTRS',
  summary: "Replaces an item's attributes (used by --FILTER); '{}' clears them.",
  since: '0.1.0',
  arity: -1,
  flags: ['write', 'fast'],
  aclCategories: ['@write', '@fast'],
  keySpec: { access: 'RW', op: 'UPDATE' },
  options: [],
  args: [
    { name: 'id', type: 'integer', summary: 'Item id.' },
    { name: 'attrs', type: 'json', summary: 'A flat JSON object of strings, numbers, booleans and arrays of strings.' },
  ],
  reply: 'Integer 1 when the item exists (attributes replaced), 0 otherwise.',
  examples: [`LLM.SETATTRS vectors 7 '{"tenant":"acme","tags":["faq"]}'`],
  async handler(ctx, args) {
    const id = parseId(args.positionals[0]);
    const attrs = parseAttrs(parseJson(args.positionals[1]));
    const store = await storeForCommand(ctx, args.key);
    if (!store) return 0;
    return (await objectsOf(ctx).storeSetAttrs(store, id, attrs)) ? 1 : 0;
  },
});
