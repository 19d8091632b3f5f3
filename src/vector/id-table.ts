/**
 * A hash table from uint32 ids to non-negative int32 slots, stored in typed arrays.
 *
 * Why not a JS Map: a Map holds at most 2^24 (~16.7M) entries, keeps ~40 bytes per entry on
 * the V8 heap (counted against --max-old-space-size and scanned by the GC) and leaves garbage
 * when it rehashes. This table costs 8 bytes per bucket at a load factor ≤ 0.5 (~16-32 bytes per
 * id) off the V8 heap, and has no size limit below 2^31 entries.
 *
 * Open addressing, linear probing, backward-shift deletion (no tombstones).
 */
const EMPTY = -1;

export class IdTable {
  private keys: Uint32Array;
  private vals: Int32Array;
  private mask: number;
  private count = 0;

  constructor(initialCapacity = 16) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap *= 2;
    this.keys = new Uint32Array(cap);
    this.vals = new Int32Array(cap).fill(EMPTY);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the table. */
  get byteLength(): number {
    return this.keys.byteLength + this.vals.byteLength;
  }

  private home(key: number): number {
    return (Math.imul(key, 0x9e3779b1) >>> 0) & this.mask;
  }

  /** The slot of `key`, or -1. */
  get(key: number): number {
    const { keys, vals, mask } = this;
    for (let i = this.home(key); ; i = (i + 1) & mask) {
      const v = vals[i]!;
      if (v === EMPTY) return EMPTY;
      if (keys[i] === key) return v;
    }
  }

  has(key: number): boolean {
    return this.get(key) !== EMPTY;
  }

  /** Sets key → slot (slot ≥ 0). */
  set(key: number, slot: number): void {
    if ((this.count + 1) * 2 > this.keys.length) this.rehash(this.keys.length * 2);
    const { keys, vals, mask } = this;
    for (let i = this.home(key); ; i = (i + 1) & mask) {
      const v = vals[i]!;
      if (v === EMPTY) {
        keys[i] = key;
        vals[i] = slot;
        this.count++;
        return;
      }
      if (keys[i] === key) {
        vals[i] = slot;
        return;
      }
    }
  }

  /** Removes key; returns false if it was not there. */
  delete(key: number): boolean {
    const { keys, vals, mask } = this;
    let i = this.home(key);
    for (; ; i = (i + 1) & mask) {
      const v = vals[i]!;
      if (v === EMPTY) return false;
      if (keys[i] === key) break;
    }
    // Backward-shift: move later entries of the probe run into the hole when that keeps them
    // reachable from their home bucket.
    let hole = i;
    for (let j = (i + 1) & mask; vals[j] !== EMPTY; j = (j + 1) & mask) {
      const h = this.home(keys[j]!);
      // entry j may move to `hole` if its home is not in the cyclic range (hole, j]
      const inRange = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (!inRange) {
        keys[hole] = keys[j]!;
        vals[hole] = vals[j]!;
        hole = j;
      }
    }
    vals[hole] = EMPTY;
    this.count--;
    if (this.keys.length > 16 && this.count * 8 < this.keys.length) this.rehash(this.keys.length / 2);
    return true;
  }

  private rehash(cap: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    this.keys = new Uint32Array(cap);
    this.vals = new Int32Array(cap).fill(EMPTY);
    this.mask = cap - 1;
    const { keys, vals, mask } = this;
    for (let j = 0; j < oldVals.length; j++) {
      const v = oldVals[j]!;
      if (v === EMPTY) continue;
      const k = oldKeys[j]!;
      let i = this.home(k);
      while (vals[i] !== EMPTY) i = (i + 1) & mask;
      keys[i] = k;
      vals[i] = v;
    }
  }
}
