import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { formatDouble, type RespValue } from '../../protocol/resp.js';
import { embedForStore, givenVector } from './_objects.js';
import { storeForCommand } from './_store.js';
import { EMBEDDING, EMBEDDING_FP32, TIMEOUT } from './_common.js';

export default defineCommand({
  name: 'LLM.KNN',
  summary: 'Finds the nearest items to a text or a vector.',
  since: '0.1.0',
  arity: -2,
  flags: ['readonly'],
  aclCategories: ['@read', '@slow'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [
    { token: '--K', type: 'integer', value: 'n', min: 1, max: 100000, summary: 'How many neighbours (default 10).' },
    EMBEDDING,
    EMBEDDING_FP32,
    { token: '--EF', type: 'integer', value: 'n', min: 1, max: 100000, summary: 'HNSW search breadth for this query (default: the store ef).' },
    { token: '--WITHDATA', type: 'pure-token', summary: 'Reply [id, distance, data] triples.' },
    TIMEOUT,
  ],
  args: [{ name: 'query', type: 'string', optional: true, summary: 'Text to embed with the store LLM (unless a vector is given).' }],
  reply: 'Array of [id, distance] pairs, nearest first (distance as a bulk string).',
  examples: ['LLM.KNN store --K 3 "what is Redis"', 'LLM.KNN store --K 2 --EMBEDDING 0.1,0.2,0.3'],
  async handler(ctx, args) {
    const k = (args.opts.get('k') as number | undefined) ?? 10;
    const ef = args.opts.get('ef') as number | undefined;
    const withData = args.opts.has('withdata');
    const query = args.positionals[0]?.toString('utf8');
    let vector = givenVector(args);
    if (!vector && query === undefined) throw new CommandError('no query is specified');
    const store = await storeForCommand(ctx, args.key);
    if (!store) return [];
    vector ??= (await embedForStore(ctx, store, [query!], args.opts.get('timeout') as number | undefined))[0];
    const dim = store.index.dim;
    if (dim === undefined) return [];
    if (vector.length !== dim) throw new CommandError('vector dimension does not match');
    const hits = store.index.knn(vector, k, ef === undefined ? {} : { ef });
    return hits.map((h): RespValue => {
      const row: RespValue[] = [h.id, formatDouble(h.distance)];
      if (withData) row.push(store.index.getData(h.id) ?? '');
      return row;
    });
  },
});
