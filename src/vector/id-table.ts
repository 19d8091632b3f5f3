/**
 * A hash table from uint32 ids to non-negative int32 slots, stored in typed arrays.
 *
 * Why not a JS Map: a Map holds at most 2^24 (~16.7M) entries, keeps ~40 bytes per entry on
 * the V8 heap (counted against --max-old-space-size and scanned by the GC) and leaves garbage
 * when it rehashes. This table costs 8 bytes per bucket at a load factor between 1/8 and 3/4
 * (typically 11-16 bytes per id) off the V8 heap, and has no size limit below 2^31 entries.
 *
 * Open addressing with linear probing and backward-shift deletion (no tombstones). The bucket
 * count is not a power of two (the hash is scaled onto it), so a table sized for n ids holds
 * exactly what it needs.
 */
const EMPTY = -1;
const MAX_LOAD = 0.75;

export class IdTable {
  private keys: Uint32Array;
  private vals: Int32Array;
  private cap: number;
  private count = 0;

  /** `expected`: how many ids the table should hold without rehashing (e.g. when loading). */
  constructor(expected = 0) {
    this.cap = Math.max(16, Math.ceil(expected / 0.7));
    this.keys = new Uint32Array(this.cap);
    this.vals = new Int32Array(this.cap).fill(EMPTY);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the table. */
  get byteLength(): number {
    return this.keys.byteLength + this.vals.byteLength;
  }

  private home(key: number): number {
    // Fibonacci hashing, then scaled onto [0, cap) (exact in double arithmetic)
    return Math.floor(((Math.imul(key, 0x9e3779b1) >>> 0) * this.cap) / 4294967296);
  }

  /** The slot of `key`, or -1. */
  get(key: number): number {
    const { keys, vals, cap } = this;
    for (let i = this.home(key); ; ) {
      const v = vals[i]!;
      if (v === EMPTY) return EMPTY;
      if (keys[i] === key) return v;
      if (++i === cap) i = 0;
    }
  }

  has(key: number): boolean {
    return this.get(key) !== EMPTY;
  }

  /** Sets key → slot (slot ≥ 0). */
  set(key: number, slot: number): void {
    if (this.count + 1 > this.cap * MAX_LOAD) this.rehash(Math.ceil((this.count + 1) * 2));
    const { keys, vals, cap } = this;
    for (let i = this.home(key); ; ) {
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
      if (++i === cap) i = 0;
    }
  }

  /** Removes key; returns false if it was not there. */
  delete(key: number): boolean {
    const { keys, vals, cap } = this;
    let i = this.home(key);
    for (;;) {
      const v = vals[i]!;
      if (v === EMPTY) return false;
      if (keys[i] === key) break;
      if (++i === cap) i = 0;
    }
    // Backward-shift: move later entries of the probe run into the hole when that keeps them
    // reachable from their home bucket.
    let hole = i;
    for (let j = hole + 1 === cap ? 0 : hole + 1; vals[j] !== EMPTY; j = j + 1 === cap ? 0 : j + 1) {
      const h = this.home(keys[j]!);
      // entry j may move to `hole` unless its home lies in the cyclic range (hole, j]
      const inRange = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (!inRange) {
        keys[hole] = keys[j]!;
        vals[hole] = vals[j]!;
        hole = j;
      }
    }
    vals[hole] = EMPTY;
    this.count--;
    if (this.cap > 64 && this.count * 8 < this.cap) this.rehash(Math.max(16, this.count * 2));
    return true;
  }

  private rehash(cap: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    this.cap = cap;
    this.keys = new Uint32Array(cap);
    this.vals = new Int32Array(cap).fill(EMPTY);
    const { keys, vals } = this;
    for (let j = 0; j < oldVals.length; j++) {
      const v = oldVals[j]!;
      if (v === EMPTY) continue;
      const k = oldKeys[j]!;
      let i = this.home(k);
      while (vals[i] !== EMPTY) if (++i === cap) i = 0;
      keys[i] = k;
      vals[i] = v;
    }
  }
}
