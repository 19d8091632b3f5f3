import { defineCommand, type ParsedArgs } from '../spec.js';
import type { StoreObject } from '../../objects/objects.js';
import { isInternalKey } from '../../storage/index.js';
import { CommandError, arityError } from '../../errors.js';
import { dimensionMismatch, idReply } from '../../vector/index.js';
import { RespDouble, type RespValue } from '../../protocol/resp.js';
import { embedForStore, givenVector, givesVector, storeOf } from './_objects.js';
import { requireStoreForCommand } from './_store.js';
import { EMBEDDING, EMBEDDING_FP32, FILTER, TIMEOUT } from './_common.js';
import { compileFilterPlan, type FilterPlan } from '../../vector/filter.js';
import { searchStore } from '../../objects/store-search.js';
import { ioTurn } from '../../util/io-slice.js';

export default defineCommand({
  name: 'LLM.KNN',
  summary: 'Finds the nearest items to a text or a vector.',
  since: '0.1.0',
  arity: -1,
  flags: ['readonly'],
  aclCategories: ['@read', '@slow'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [
    { token: '--K', type: 'integer', value: 'n', min: 0, max: 100000, invalid: 'invalid k', summary: 'How many neighbours (default 10; 0 replies an empty array).' },
    EMBEDDING,
    EMBEDDING_FP32,
    { token: '--EF', type: 'integer', value: 'n', min: 1, max: 100000, summary: 'HNSW search breadth for this query (default: the store ef).' },
    { token: '--WITHDATA', type: 'pure-token', summary: 'Reply [id, distance, data] triples.' },
    TIMEOUT,
    FILTER,
    { token: '--EXPLAIN', type: 'pure-token', summary: 'Reply [hits, [path, hnsw|exact, reason, ..., ef, n, matched, n, index, ...]]: how the query ran and which attribute index gave the matching set.' },
  ],
  args: [{ name: 'query', type: 'string', optional: true, summary: 'Text to embed with the store LLM (unless a vector is given).' }],
  reply: 'Array of [id, distance] pairs, nearest first (distance: a bulk string in RESP2, a double in RESP3).',
  examples: ['LLM.KNN store --K 3 "what is Redis"', 'LLM.KNN vectors --K 2 --EMBEDDING 0.1,0.2,0.3', 'LLM.KNN store --K 5 --FILTER \'tenant == "acme" and year >= 2023\' "pricing"'],
  callsLlm: (args) => !givesVector(args) && args.positionals.length > 0,
  // With a given vector and an existing store, KNNs pipelined on one connection run at once. A
  // KNN's turn in the store's gate is taken as it starts (searchStore), so it comes after every
  // write applied before it and before any write pipelined after it; it does not join a pipeline
  // with writes still in flight (it then waits for their replies, as any ordered command).
  pipelined(ctx, args, writesInFlight) {
    if (writesInFlight || !givesVector(args) || isInternalKey(args.key)) return null;
    const store = storeOf(ctx, args.key);
    if (!store) return null;
    const q = queryOf(args);
    return answer(store, q, q.vector!);
  },
  async handler(ctx, args) {
    const q = queryOf(args);
    // Neither a query nor a vector: the original's arity error for `LLM.KNN key`, else its words.
    if (!q.vector && q.text === undefined) throw args.opts.size === 0 ? arityError('LLM.KNN') : new CommandError('no query is specified');
    const store = await requireStoreForCommand(ctx, args.key);
    const vector = q.vector ?? (await embedForStore(ctx, store, [q.text!], args.opts.get('timeout') as number | undefined))[0]!;
    return answer(store, q, vector);
  },
});

interface KnnQuery {
  k: number;
  ef: number | undefined;
  withData: boolean;
  /** Compiled when the request is read: a bad filter fails before any embedding call. */
  filter: FilterPlan | undefined;
  explain: boolean;
  vector: Float32Array | undefined;
  text: string | undefined;
}

function queryOf(args: ParsedArgs): KnnQuery {
  const src = (args.opts.get('filter') as Buffer | undefined)?.toString('utf8');
  const filter = src === undefined ? undefined : compileFilterPlan(src);
  return {
    k: (args.opts.get('k') as number | undefined) ?? 10,
    ef: args.opts.get('ef') as number | undefined,
    withData: args.opts.has('withdata'),
    filter,
    explain: args.opts.has('explain'),
    vector: givenVector(args),
    text: args.positionals[0]?.toString('utf8'),
  };
}

/** Searches (the gate turn is taken synchronously, in searchStore) and shapes the reply. */
async function answer(store: StoreObject, q: KnnQuery, vector: Float32Array): Promise<RespValue> {
  const dim = store.index.dim;
  if (dim === undefined) return q.explain ? [[], ['path', 'none']] : [];
  if (vector.length !== dim) throw dimensionMismatch(dim, vector.length);
  const { explain: res, data } = await searchStore(store, vector, {
    k: q.k,
    withData: q.withData,
    ...(q.ef === undefined ? {} : { ef: q.ef }),
    ...(q.filter === undefined ? {} : { filters: [q.filter] }),
  });
  await ioTurn(); // a burst of completed searches is answered over several turns of the loop
  // 1 − cos of float32 unit vectors can come out a hair below 0 (an item's own vector gives
  // -1.2e-7): cosine distances are reported within their range [0, 2].
  const cosine = store.params.space === 'cosine';
  const rows = res.hits.map((h, i): RespValue => {
    const row: RespValue[] = [idReply(store.aliases.idOf(h.id)), new RespDouble(cosine ? Math.min(2, Math.max(0, h.distance)) : h.distance)];
    if (data) row.push(data[i]!);
    return row;
  });
  if (!q.explain) return rows;
  const info: RespValue[] = ['path', res.path];
  if (res.reason) info.push('reason', res.reason);
  if (res.ef !== undefined) info.push('ef', res.ef);
  if (res.matched !== undefined) info.push('matched', res.matched);
  if (res.index !== undefined) info.push('index', res.index);
  return [rows, info];
}
