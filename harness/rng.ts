/**
 * A seeded PRNG (mulberry32) for fuzzers and generated test data: the same seed gives the same
 * cases, so a failure prints its seed and reproduces.
 */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  /** mulberry32: uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number, printable = false): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = printable ? 32 + this.int(95) : this.int(256);
    return b;
  }
}

/**
 * Runs `fn` `rounds` times, each with an Rng seeded from `seed` and the round. A failure is
 * printed with the base seed (settable through the environment variable `seedEnv`) and the round,
 * and the same text is prefixed to the error, so the failing round reproduces.
 */
export function seededRounds(seed: number, seedEnv: string, label: string, rounds: number, fn: (rng: Rng, round: number) => void): void {
  for (let round = 0; round < rounds; round++) {
    const roundSeed = (seed + Math.imul(round + 1, 0x9e3779b1)) >>> 0;
    try {
      fn(new Rng(roundSeed), round);
    } catch (e) {
      const where = `${label}: ${seedEnv}=${seed} round=${round} (round seed ${roundSeed})`;
      console.error(`FAILED ${where}`);
      if (e instanceof Error) e.message = `[${where}] ${e.message}`;
      throw e;
    }
  }
}
