/**
 * The one statistics vocabulary of LLM objects: the same snake_case fields, in the same order,
 * in `LLM.STATS key`, `LLM.INFO key` and the per-object lines of `INFO llm` (`model0:`, `app0:`,
 * `store0:`). The README lists them once (section "Usage"); change both together.
 *
 * LLMs and apps share every counter name, with one meaning per name:
 *  - calls:               LLM: requests sent to the provider (chat and embeddings; a retried call
 *                         counts once). App: LLM.RUN runs (cache hits and refused runs included).
 *  - errors:              LLM: provider calls that failed after their retries. App: runs that
 *                         failed (not counting rate-limited ones).
 *  - cache_hits_exact, cache_hits_semantic, cache_misses: lookups in an app's response cache
 *                         (an LLM sums those of the apps that call it).
 *  - rate_limited:        runs refused by a rate limit (an LLM: of the apps that call it).
 *  - prompt_tokens, completion_tokens: the provider's `usage` (an LLM counts embeddings too).
 *  - latency_p50_ms, latency_p99_ms: over the last 1024 provider requests (LLM) or answered
 *                         runs (app, cache hits included).
 * LLMs add retries, in_flight and queued; stores have their own fields (items, dim, ...).
 */
import { RouterProvider } from '../llm/index.js';
import { AppObject, ModelObject, StoreObject, type LlmObject } from './objects.js';

export type StatValue = number | string;

export function modelStats(o: ModelObject): Record<string, StatValue> {
  const p = o.provider.stats.snapshot();
  const u = o.usage;
  return {
    calls: p.requests,
    cache_hits_exact: u.hitsExact,
    cache_hits_semantic: u.hitsSemantic,
    cache_misses: u.misses,
    prompt_tokens: p.promptTokens,
    completion_tokens: p.completionTokens,
    errors: p.errors,
    rate_limited: u.rateLimited,
    latency_p50_ms: p.latencyP50Ms,
    latency_p99_ms: p.latencyP99Ms,
    retries: p.retries,
    in_flight: p.inFlight,
    queued: p.queued,
  };
}

export function appStats(o: AppObject): Record<string, StatValue> {
  const u = o.usage.snapshot();
  return {
    calls: u.calls!,
    cache_hits_exact: u.cache_hits_exact!,
    cache_hits_semantic: u.cache_hits_semantic!,
    cache_misses: u.cache_misses!,
    prompt_tokens: u.prompt_tokens!,
    completion_tokens: u.completion_tokens!,
    errors: u.errors!,
    rate_limited: u.rate_limited!,
    latency_p50_ms: u.latency_p50_ms!,
    latency_p99_ms: u.latency_p99_ms!,
  };
}

export function storeStats(o: StoreObject): Record<string, StatValue> {
  return {
    items: o.index.size,
    dim: o.index.dim ?? 0,
    space: o.params.space,
    capacity: o.index.stats().capacity,
    memory: o.index.memoryBytes(),
    attr_index_memory: o.attrs.indexBytes(),
    engine_failures: o.engineFailures,
    log_length: o.logLength,
    last_snapshot: Math.floor(o.lastSnapshotAt / 1000),
  };
}

/** The statistics of any object (null for a kind without any). */
export function objectStats(o: LlmObject): Record<string, StatValue> | null {
  if (o instanceof ModelObject) return modelStats(o);
  if (o instanceof AppObject) return appStats(o);
  if (o instanceof StoreObject) return storeStats(o);
  return null;
}

/** latencyP50Ms -> latency_p50_ms */
const snake = (k: string): string => k.replace(/P(\d+)Ms$/, '_p$1_ms').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * A router's targets, as LLM.STATS lists them after the LLM's own fields: `target.<key>.<field>`
 * (state as this instance last saw it, then its counters). Empty for an LLM that is no router.
 */
export function routerTargetStats(o: ModelObject): Record<string, StatValue> {
  const out: Record<string, StatValue> = {};
  if (!(o.provider instanceof RouterProvider)) return out;
  for (const t of o.provider.targetSnapshots()) {
    const { name, state, ...counters } = t;
    out[`target.${name}.state`] = state;
    for (const [k, v] of Object.entries(counters)) out[`target.${name}.${snake(k)}`] = v as StatValue;
  }
  return out;
}

/** `LLM.STATS --RESET`: counters back to zero (a store's fields describe its state and stay). */
export function resetStats(o: LlmObject): void {
  if (o instanceof ModelObject) {
    o.provider.stats.reset();
    o.usage.reset();
    if (o.provider instanceof RouterProvider) o.provider.resetTargets();
  } else if (o instanceof AppObject) {
    o.usage.reset();
  }
}
