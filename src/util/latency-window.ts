/**
 * Percentiles over the most recent samples (a fixed-size ring: bounded memory whatever the
 * traffic), computed when asked. Used for provider latency, app latency and follow lag.
 */
export class LatencyWindow {
  private readonly ring: Float64Array;
  private count = 0;
  private next = 0;

  constructor(readonly size = 1024) {
    this.ring = new Float64Array(size);
  }

  add(ms: number): void {
    this.ring[this.next] = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.next = (this.next + 1) % this.size;
    if (this.count < this.size) this.count++;
  }

  /** Nearest-rank percentile, p in (0, 100]; 0 when empty. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const sorted = this.ring.slice(0, this.count).sort();
    const rank = Math.min(this.count, Math.max(1, Math.ceil((p / 100) * this.count)));
    return sorted[rank - 1]!;
  }

  clear(): void {
    this.count = 0;
    this.next = 0;
  }
}
