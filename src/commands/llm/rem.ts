import { defineCommand } from '../spec.js';
import { parseId } from '../../vector/index.js';
import { objectsOf } from './_objects.js';
import { storeForCommand } from './_store.js';


export default defineCommand({
  name: 'LLM.REM',
  summary: 'Removes an item from a vector store.',
  since: '0.1.0',
  arity: -1,
  flags: ['write', 'denyoom'],
  aclCategories: ['@write', '@slow'],
  keySpec: { access: 'RW', op: 'DELETE' },
  options: [],
  args: [{ name: 'id', type: 'integer', summary: 'Item id.' }],
  reply: 'Integer 1 when removed, 0 when the store or the id does not exist.',
  examples: ['LLM.REM store 1'],
  async handler(ctx, args) {
    const id = parseId(args.positionals[0]);
    const store = await storeForCommand(ctx, args.key);
    if (!store) return 0;
    return (await objectsOf(ctx).storeRem(store, id)) ? 1 : 0;
  },
});
