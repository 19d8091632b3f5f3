import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { AppObject, ModelObject } from '../../objects/objects.js';
import type { RespValue } from '../../protocol/resp.js';
import { objectsOf, keyName } from './_objects.js';

const flat = (o: Record<string, number>): RespValue[] => Object.entries(o).flatMap(([k, v]) => [k, String(v)]);

export default defineCommand({
  name: 'LLM.STATS',
  summary: 'Usage of an LLM or an app: calls, cache hits and misses, tokens, errors, rate-limited calls, latency p50/p99.',
  since: '0.1.0',
  arity: -1,
  flags: ['readonly', 'fast'],
  aclCategories: ['@read', '@fast'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [{ token: '--RESET', type: 'pure-token', summary: 'Reply the counters, then set them to zero.' }],
  args: [],
  reply: 'Array of field, value pairs (values as strings).',
  examples: ['LLM.STATS hello-world', 'LLM.STATS openai --RESET'],
  handler(ctx, args) {
    const obj = objectsOf(ctx).get(ctx.client.db, keyName(args.key));
    if (!(obj instanceof ModelObject) && !(obj instanceof AppObject)) throw new CommandError('no such LLM or app');
    let out: RespValue[];
    if (obj instanceof ModelObject) {
      const p = obj.provider.stats.snapshot();
      const u = obj.usage.snapshot();
      out = flat({
        requests: p.requests,
        errors: p.errors,
        retries: p.retries,
        prompt_tokens: p.promptTokens,
        completion_tokens: p.completionTokens,
        latency_p50_ms: p.latencyP50Ms,
        latency_p99_ms: p.latencyP99Ms,
        cache_hits_exact: u.cache_hits_exact,
        cache_hits_semantic: u.cache_hits_semantic,
        rate_limited: u.rate_limited,
      });
      if (args.opts.has('reset')) {
        obj.provider.stats.reset();
        obj.usage.reset();
      }
    } else {
      out = flat(obj.usage.snapshot());
      if (args.opts.has('reset')) obj.usage.reset();
    }
    return out;
  },
});
