/**
 * Per-provider counters for `INFO llm`. Latency percentiles come from a fixed-size ring of
 * the most recent call latencies (bounded memory whatever the traffic), computed when a
 * snapshot is taken.
 */
import { LatencyWindow } from '../util/latency-window.js';

/** Latencies kept for the percentiles: the most recent calls. */
export const LATENCY_WINDOW = 1024;

export interface LlmStatsSnapshot {
  /** Calls made (chat and embed), successful or not. Retries are not extra calls. */
  requests: number;
  /** Calls that failed (after their retries). */
  errors: number;
  /** Extra attempts made by the retry policy. */
  retries: number;
  promptTokens: number;
  completionTokens: number;
  /** Median latency of the last LATENCY_WINDOW calls in ms, 0 if none. */
  latencyP50Ms: number;
  /** 99th percentile latency of the last LATENCY_WINDOW calls in ms, 0 if none. */
  latencyP99Ms: number;
  /** Calls currently holding a pool slot / waiting for one. */
  inFlight: number;
  queued: number;
}

export class LlmStats {
  requests = 0;
  errors = 0;
  retries = 0;
  promptTokens = 0;
  completionTokens = 0;
  inFlight = 0;
  queued = 0;
  private readonly latency = new LatencyWindow(LATENCY_WINDOW);

  /** Records one finished call. */
  record(latencyMs: number, ok: boolean, promptTokens = 0, completionTokens = 0): void {
    this.requests++;
    if (!ok) this.errors++;
    if (Number.isFinite(promptTokens) && promptTokens > 0) this.promptTokens += promptTokens;
    if (Number.isFinite(completionTokens) && completionTokens > 0) this.completionTokens += completionTokens;
    this.latency.add(latencyMs);
  }

  /** Nearest-rank percentile (0 < p <= 100) of the latency window; 0 when empty. */
  percentile(p: number): number {
    return this.latency.percentile(p);
  }

  reset(): void {
    this.requests = 0;
    this.errors = 0;
    this.retries = 0;
    this.promptTokens = 0;
    this.completionTokens = 0;
    this.latency.clear();
    // inFlight / queued describe live calls and are not reset.
  }

  snapshot(): LlmStatsSnapshot {
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return {
      requests: this.requests,
      errors: this.errors,
      retries: this.retries,
      promptTokens: this.promptTokens,
      completionTokens: this.completionTokens,
      latencyP50Ms: round(this.percentile(50)),
      latencyP99Ms: round(this.percentile(99)),
      inFlight: this.inFlight,
      queued: this.queued,
    };
  }
}
