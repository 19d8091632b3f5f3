/**
 * Usage accounting of an app or an LLM: calls, cache hits (exact, semantic), misses, tokens from
 * the provider's `usage`, errors, rate-limited calls and latency p50/p99 (over the last 1024
 * calls). In memory per server instance; `LLM.STATS key --RESET` clears it.
 */
import { LatencyWindow } from '../util/latency-window.js';

export class UsageCounters {
  calls = 0;
  hitsExact = 0;
  hitsSemantic = 0;
  misses = 0;
  promptTokens = 0;
  completionTokens = 0;
  errors = 0;
  rateLimited = 0;
  private readonly lat = new LatencyWindow();

  latency(ms: number): void {
    this.lat.add(ms);
  }

  tokens(u: { promptTokens: number; completionTokens: number } | undefined): void {
    if (!u) return;
    this.promptTokens += u.promptTokens;
    this.completionTokens += u.completionTokens;
  }

  private pct(p: number): number {
    return Math.round(this.lat.percentile(p) * 1000) / 1000;
  }

  snapshot(): Record<string, number> {
    return {
      calls: this.calls,
      cache_hits_exact: this.hitsExact,
      cache_hits_semantic: this.hitsSemantic,
      cache_misses: this.misses,
      prompt_tokens: this.promptTokens,
      completion_tokens: this.completionTokens,
      errors: this.errors,
      rate_limited: this.rateLimited,
      latency_p50_ms: this.pct(50),
      latency_p99_ms: this.pct(99),
    };
  }

  reset(): void {
    this.calls = this.hitsExact = this.hitsSemantic = this.misses = 0;
    this.promptTokens = this.completionTokens = this.errors = this.rateLimited = 0;
    this.lat.clear();
  }
}
