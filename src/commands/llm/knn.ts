import { defineCommand } from '../spec.js';
import { CommandError, arityError } from '../../errors.js';
import { dimensionMismatch, idReply } from '../../vector/index.js';
import { RespDouble, type RespValue } from '../../protocol/resp.js';
import { embedForStore, givenVector, givesVector } from './_objects.js';
import { requireStoreForCommand } from './_store.js';
import { EMBEDDING, EMBEDDING_FP32, FILTER, TIMEOUT } from './_common.js';
import { compileFilterPlan } from '../../vector/filter.js';
import { searchStore } from '../../objects/store-search.js';

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
  async handler(ctx, args) {
    const k = (args.opts.get('k') as number | undefined) ?? 10;
    const ef = args.opts.get('ef') as number | undefined;
    const withData = args.opts.has('withdata');
    const query = args.positionals[0]?.toString('utf8');
    const filterSrc = (args.opts.get('filter') as Buffer | undefined)?.toString('utf8');
    if (filterSrc !== undefined) compileFilterPlan(filterSrc); // a bad filter fails before any embedding call
    const explain = args.opts.has('explain');
    let vector = givenVector(args);
    // Neither a query nor a vector: the original's arity error for `LLM.KNN key`, else its words.
    if (!vector && query === undefined) throw args.opts.size === 0 ? arityError('LLM.KNN') : new CommandError('no query is specified');
    const store = await requireStoreForCommand(ctx, args.key);
    const empty = () => (explain ? [[], ['path', 'none']] : []);
    vector ??= (await embedForStore(ctx, store, [query!], args.opts.get('timeout') as number | undefined))[0];
    const dim = store.index.dim;
    if (dim === undefined) return empty();
    if (vector.length !== dim) throw dimensionMismatch(dim, vector.length);
    const { explain: res, data } = await searchStore(store, vector, {
      k,
      withData,
      ...(ef === undefined ? {} : { ef }),
      ...(filterSrc === undefined ? {} : { filters: [filterSrc] }),
    });
    // 1 − cos of float32 unit vectors can come out a hair below 0 (an item's own vector gives
    // -1.2e-7): cosine distances are reported within their range [0, 2].
    const cosine = store.params.space === 'cosine';
    const rows = res.hits.map((h, i): RespValue => {
      const row: RespValue[] = [idReply(store.aliases.idOf(h.id)), new RespDouble(cosine ? Math.min(2, Math.max(0, h.distance)) : h.distance)];
      if (data) row.push(data[i]!);
      return row;
    });
    if (!explain) return rows;
    const info: RespValue[] = ['path', res.path];
    if (res.reason) info.push('reason', res.reason);
    if (res.ef !== undefined) info.push('ef', res.ef);
    if (res.matched !== undefined) info.push('matched', res.matched);
    if (res.index !== undefined) info.push('index', res.index);
    return [rows, info];
  },
});
