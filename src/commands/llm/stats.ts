import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { ModelObject } from '../../objects/objects.js';
import { objectStats, resetStats, routerTargetStats, type StatValue } from '../../objects/stats.js';
import type { RespValue } from '../../protocol/resp.js';
import { objectsOf, keyName } from './_objects.js';
import { fieldsReply } from './_reply.js';

const flat = (o: Record<string, StatValue>): RespValue[] => Object.entries(o).flatMap(([k, v]) => [k, String(v)]);

export default defineCommand({
  name: 'LLM.STATS',
  summary: 'Usage of an LLM or an app (calls, errors, retries, cache hits and misses, rate-limited runs, tokens, latency p50/p99), per target for a router (state, calls, failures, retries, fallbacks, cooldowns, latency), or the state of a vector store (items, dim, memory, ...): the fields of "Usage".',
  since: '0.1.0',
  arity: -1,
  flags: ['readonly', 'fast'],
  aclCategories: ['@read', '@fast'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [{ token: '--RESET', type: 'pure-token', summary: 'Reply the counters, then set them to zero (a store has no counters: nothing is reset).' }],
  args: [],
  reply: 'RESP2: array of field, value pairs (values as strings). RESP3: a map (numbers as numbers).',
  examples: ['LLM.STATS hello-world', 'LLM.STATS openai --RESET', 'LLM.STATS store'],
  handler(ctx, args) {
    const obj = objectsOf(ctx).get(ctx.client.db, keyName(args.key));
    const stats = obj ? objectStats(obj) : null;
    if (!obj || !stats) throw new CommandError('no such LLM or app');
    const out = { ...stats, ...(obj instanceof ModelObject ? routerTargetStats(obj) : {}) };
    if (args.opts.has('reset')) resetStats(obj);
    return fieldsReply(ctx, flat(out));
  },
});
