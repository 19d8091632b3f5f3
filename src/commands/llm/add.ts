import { defineCommand } from '../spec.js';
import { MAX_ID, idReply, parseId } from '../../vector/index.js';
import { parseAttrs } from '../../vector/filter.js';
import { embedForStore, givenVector, objectsOf, storeOf, givesVector } from './_objects.js';
import { isInternalKey } from '../../storage/index.js';
import { requireStoreForCommand } from './_store.js';
import { EMBEDDING, EMBEDDING_FP32, TIMEOUT } from './_common.js';

export default defineCommand({
  name: 'LLM.ADD',
  summary: 'Adds (or, with an existing --ID, replaces) an item of a vector store; replies its id.',
  since: '0.1.0',
  arity: -1,
  flags: ['write', 'denyoom'],
  aclCategories: ['@write', '@slow'],
  keySpec: { access: 'RW', op: 'INSERT' },
  options: [
    { token: '--ID', type: 'string', value: 'id', summary: 'Item id, an integer in [0, 18446744073709551615] (default: the next free id).' },
    EMBEDDING,
    EMBEDDING_FP32,
    TIMEOUT,
    { token: '--ATTRS', type: 'json', value: 'json', summary: 'Attributes of the item for --FILTER: a flat JSON object of strings, numbers, booleans and arrays of strings.' },
  ],
  args: [{ name: 'data', type: 'string', summary: 'The item text (embedded by the store LLM unless a vector is given).' }],
  reply: 'Integer: the item id.',
  examples: ['LLM.ADD store "Redis is an in-memory data store"', 'LLM.ADD store --ATTRS \'{"tenant":"acme","year":2024}\' "a document"', 'LLM.ADD vectors --ID 7 --EMBEDDING 0.1,0.2,0.3 "some text"'],
  callsLlm: (args) => !givesVector(args),
  async handler(ctx, args) {
    const rawId = args.opts.get('id') as Buffer | undefined;
    const id = rawId === undefined ? undefined : parseId(rawId);
    const given = givenVector(args);
    const attrsArg = args.opts.get('attrs');
    const attrs = attrsArg === undefined ? undefined : parseAttrs(attrsArg);
    const store = await requireStoreForCommand(ctx, args.key);
    const data = args.positionals[0].toString('utf8');
    let vector = given;
    if (!vector) {
      // An explicit id is reserved when the command arrives, not after the embedding call: an auto
      // ADD answered meanwhile must not be handed the same id (and then be overwritten).
      if (typeof id === 'number' && id <= MAX_ID) store.index.ensureNextId(id + 1);
      vector = (await embedForStore(ctx, store, [data], args.opts.get('timeout') as number | undefined))[0]!;
    }
    return idReply(await objectsOf(ctx).storeAdd(store, id, vector, data, attrs));
  },
  // With a given vector and an existing store, nothing is awaited before storeAdd queues the append.
  pipelined(ctx, args) {
    const vector = givenVector(args);
    if (!vector || isInternalKey(args.key)) return null;
    const store = storeOf(ctx, args.key);
    if (!store) return null;
    const rawId = args.opts.get('id') as Buffer | undefined;
    const attrsArg = args.opts.get('attrs');
    return objectsOf(ctx)
      .storeAdd(store, rawId === undefined ? undefined : parseId(rawId), vector, args.positionals[0].toString('utf8'), attrsArg === undefined ? undefined : parseAttrs(attrsArg))
      .then(idReply);
  },
});
