/**
 * The native HNSW graph (native/graph.cc, built from hnswlib's headers at install): searches run
 * on the engine's searcher threads (one per core, at least 4; SCHED_IDLE: they only take idle
 * CPU), inserts on two writer threads at normal priority, saves and loads on a SCHED_IDLE bulk
 * thread, so the event loop never waits for them and several searches of one graph use several
 * cores. libuv's pool is left to file and DNS work. Labels are the index's slot numbers; a filter
 * is a bitset over slots.
 */
import { loadAddon } from '../util/addon.js';

export { addonFile } from '../util/addon.js';

/** [label, distance] pairs, nearest first: label i at [2i], its distance (a float32) at [2i + 1]. */
export type Hits = Float64Array;

export interface NativeGraph {
  init(maxElements: number, m: number, efConstruction: number, seed?: number): void;
  /** Inserts or updates `label` (a removed label is revived in place); grows by 25% up to maxCapacity. */
  add(point: Float32Array, label: number, maxCapacity: number): void;
  addAsync(point: Float32Array, label: number, maxCapacity: number): Promise<void>;
  /**
   * Inserts labels.length points (concatenated in `points`) in order, in one writer task. Resolves
   * to the number inserted, or, when an insert throws, to that Error with `inserted` (how many went
   * in before it; the rest were not tried).
   */
  addBatchAsync(points: Float32Array, labels: Uint32Array, maxCapacity: number): Promise<number | (Error & { inserted: number })>;
  markDelete(label: number): void;
  /** Nearest first; `exact` scans every (allowed) live element instead of walking the graph. */
  search(query: Float32Array, k: number, ef: number, exact: boolean, allow?: Uint32Array | null): Hits;
  searchAsync(query: Float32Array, k: number, ef: number, exact: boolean, allow?: Uint32Array | null): Promise<Hits>;
  getPoint(label: number): Float32Array;
  resize(capacity: number): void;
  relabel(from: Uint32Array, to: Uint32Array): void;
  /** Bytes of the graph's saved form (hnswlib's file format). */
  savedSize(): number;
  /** Writes the saved form (savedSize() bytes) into `buf` at `at`, on the bulk thread; the graph must not change meanwhile. */
  saveIntoAsync(buf: Uint8Array, at: number): Promise<void>;
  /** Replaces the graph with the saved form in buf[start, end), read on the bulk thread; its capacity becomes its element count. */
  loadFromAsync(buf: Uint8Array, start: number, end: number): Promise<void>;
  currentCount(): number;
  capacity(): number;
  deletedCount(): number;
}

type GraphClass = new (space: 'l2' | 'ip', dim: number) => NativeGraph;

export function newGraph(space: 'l2' | 'ip', dim: number): NativeGraph {
  return new (loadAddon().Graph as GraphClass)(space, dim);
}

/** The distance kernels in use: 'avx2-fma' (chosen at run time) or 'baseline'. */
export function simdLevel(): string {
  return loadAddon().simd;
}
