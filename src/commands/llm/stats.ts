import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { AppObject, ModelObject } from '../../objects/objects.js';
import type { RespValue } from '../../protocol/resp.js';
import { objectsOf, keyName } from './_objects.js';
import { RouterProvider } from '../../llm/index.js';

/** latencyP50Ms -> latency_p50_ms */
const snake = (k: string): string => k.replace(/P(\d+)Ms$/, '_p$1_ms').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

const flat = (o: Record<string, number>): RespValue[] => Object.entries(o).flatMap(([k, v]) => [k, String(v)]);

export default defineCommand({
  name: 'LLM.STATS',
  summary: 'Usage of an LLM or an app: calls, cache hits and misses, tokens, errors, retries, rate-limited calls, latency p50/p99; for a router, per target: state, calls, failures, retries, fallbacks, cooldowns, latency.',
  since: '0.1.0',
  arity: -2,
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
      // A router: per target, `target.<key>.<counter>` (state as this instance last saw it).
      if (obj.provider instanceof RouterProvider) {
        for (const t of obj.provider.targetSnapshots()) {
          const { name, state, ...counters } = t;
          out.push(`target.${name}.state`, state);
          for (const [k, v] of Object.entries(counters)) out.push(`target.${name}.${snake(k)}`, String(v));
        }
      }
      if (args.opts.has('reset')) {
        obj.provider.stats.reset();
        obj.usage.reset();
        if (obj.provider instanceof RouterProvider) obj.provider.resetTargets();
      }
    } else {
      out = flat(obj.usage.snapshot());
      if (args.opts.has('reset')) obj.usage.reset();
    }
    return out;
  },
});
