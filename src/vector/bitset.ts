/**
 * Bitsets over an index's slots (Uint32Array words; bit s = slot s): the matching sets of
 * filters, combined with and/or/not, and handed to the native graph as its search filter.
 */
export type Bitset = Uint32Array;

export const wordsFor = (slots: number): number => (slots + 31) >>> 5;

export function emptyBits(slots: number): Bitset {
  return new Uint32Array(wordsFor(slots));
}

export function setBit(b: Bitset, s: number): void {
  b[s >>> 5]! |= 1 << (s & 31);
}

export function hasBit(b: Bitset, s: number): boolean {
  const w = s >>> 5;
  return w < b.length && (b[w]! & (1 << (s & 31))) !== 0;
}

export function popcount(b: Bitset): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    let v = b[i]!;
    v -= (v >>> 1) & 0x55555555;
    v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
    n += (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  }
  return n;
}

/** a ∧ b into a new bitset of a's size. */
export function and(a: Bitset, b: Bitset): Bitset {
  const out = new Uint32Array(a.length);
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) out[i] = a[i]! & b[i]!;
  return out;
}

/** Calls fn for each set bit, in increasing order. */
export function forEachBit(b: Bitset, fn: (s: number) => void): void {
  for (let i = 0; i < b.length; i++) {
    let v = b[i]!;
    while (v !== 0) {
      const t = v & -v;
      fn((i << 5) + (31 - Math.clz32(t)));
      v ^= t;
    }
  }
}
