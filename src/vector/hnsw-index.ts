/**
 * VectorIndex: one vector store's in-memory HNSW index (hnswlib-node) plus each item's text.
 *
 * Design notes
 * - Vectors live only inside hnswlib (no second JS copy); GET reads them back with getPoint.
 * - Spaces: `l2` = squared L2 (the original's only space), `ip` = 1 − dot, `cosine` = 1 − cos.
 *   Cosine is stored as hnswlib `ip` over unit vectors that we normalise ourselves (so we know the
 *   exact float64 norm used). To let GET return the vector exactly as given, each item keeps its
 *   norm (8 bytes) and a 2-bit-per-component correction (the original float32 is the rounded
 *   unit×norm value, or its float32 neighbour up/down). Vectors whose round trip is off by more
 *   than one ulp in some component (only with subnormal values) keep an exact copy instead.
 *   A zero vector has no direction: in cosine space it is rejected (on ADD and on KNN).
 * - Ids are uint32 hnswlib labels. Removal marks the label deleted; a later new item reuses the
 *   freed graph slot (hnswlib allowReplaceDeleted), so churn does not grow the index. Re-adding a
 *   removed id un-deletes (and updates) its old slot when that slot was not reused yet.
 * - Growth: capacity starts at min(max_elements, 1024) and grows by 25% whenever a new item
 *   needs a slot and none is free (a loaded snapshot is trimmed to its item count), so
 *   max_elements is a hint, never a limit.
 * - Auto ids: the counter starts at 1 and is always above every id ever added (explicit ids
 *   advance it), so an auto id can never overwrite an explicit one.
 * - add/get/remove/knn are synchronous (hnswlib is). Serialization writes the graph with
 *   writeIndexSync so a snapshot is a consistent point in time (see serialize()).
 */
import { statSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import type { HierarchicalNSW as HnswType } from 'hnswlib-node';
import { CommandError } from '../errors.js';
import { IdTable } from './id-table.js';
import { TextArena } from './text-arena.js';
import { logger } from '../log.js';
import { EMPTY_EMBEDDING, INVALID_EMBEDDING, INVALID_ID, MAX_ID, isValidId } from './parse.js';
import { DEFAULT_PARAMS, PARAM_LIMITS, type Space, type VectorIndexParams, parseSpace } from './params.js';

const { HierarchicalNSW } = hnswlib;

export const DIMENSION_MISMATCH = 'vector dimension does not match';
/** The original's text, then both dimensions: `vector dimension does not match: store has 64, got 3`. */
export const dimensionMismatch = (expected: number, got: number): CommandError =>
  new CommandError(`${DIMENSION_MISMATCH}: store has ${expected}, got ${got}`);
export const ZERO_VECTOR_COSINE = 'invalid embedding: zero vector has no direction in cosine space';
export const IDS_EXHAUSTED = 'no more auto ids available (explicit ids reached 4294967295)';

/** Initial graph capacity is min(max_elements, this); it grows by 25% (≥ GROWTH_MIN) when full. */
export const INITIAL_CAPACITY_LIMIT = 1024;
const GROWTH_MIN = 1024;
/** Items sampled to estimate a filter's selectivity. */
const FILTER_SAMPLE = 1024;

/**
 * Cost model for filtered queries (µs, measured on hnswlib-node 3 / Node 20, see
 * bench/knn-inprocess.ts). Exact scan: the filter over every item, plus reading each matching
 * vector back from hnswlib (getPoint costs ~0.08 µs per component through N-API). Graph walk:
 * hnswlib visits about ef / selectivity nodes (at most all of them), each costing a JS filter
 * callback plus a distance.
 */
export const FILTER_COST = Object.freeze({
  exactPerItem: 0.025,
  exactPerMatch: 1,
  exactPerMatchComponent: 0.085,
  graphPerVisit: 0.9,
  graphPerVisitComponent: 0.0008,
});

/** Which path a filtered query takes, given the sampled selectivity. */
export function chooseFilteredPath(n: number, dim: number, ef: number, matched: number, sampled: number): KnnPath {
  if (sampled === 0) return 'exact';
  const p = Math.max(matched, 0.5) / sampled; // 0 hits in the sample: assume half a hit
  const m = (matched / sampled) * n;
  const c = FILTER_COST;
  const exact = n * c.exactPerItem + m * (c.exactPerMatch + dim * c.exactPerMatchComponent);
  const graph = Math.min(n, ef / p) * (c.graphPerVisit + dim * c.graphPerVisitComponent);
  return exact <= graph ? 'exact' : 'hnsw';
}

export interface KnnHit {
  id: number;
  distance: number;
}

export interface KnnOptions {
  /** Search ef for this query (default: the index's ef). The effective ef is max(ef, k). */
  ef?: number;
  /**
   * Only items for which this returns true are returned (the K best matching items). Must be
   * a pure function of the id; it must not modify the index. Exceptions it throws are re-thrown.
   */
  filter?: (id: number) => boolean;
  /**
   * 'auto' (default) picks the path as described in knnExplain; 'hnsw' forces the graph search
   * (still falling back to exact when it returns fewer than K); 'exact' forces a scan.
   */
  strategy?: 'auto' | 'hnsw' | 'exact';
}

export type KnnPath = 'hnsw' | 'exact';

export interface KnnExplain {
  hits: KnnHit[];
  /** 'hnsw': graph search answered; 'exact': a scan over the (matching) items answered. */
  path: KnnPath;
  /** Why the exact path ran, when it did. */
  reason?: 'selective-filter' | 'hnsw-short' | 'forced';
  /** Effective ef of the graph search (if one ran). */
  ef?: number;
  /** Filtered queries: the sampled selectivity estimate (matches / sampled). */
  sample?: { sampled: number; matched: number };
}

export interface VectorIndexStats {
  items: number;
  dim: number | null;
  space: Space;
  capacity: number;
  /** Graph slots held by removed items, reusable by new items. */
  deleted: number;
  m: number;
  efConstruction: number;
  ef: number;
  nextId: number;
  memoryBytes: number;
}

export interface SnapshotOptions {
  /** Directory for the temporary hnswlib file (default: os.tmpdir()). */
  tmpDir?: string;
  /**
   * serialize(): called synchronously at the capture point, so a caller can record exactly which
   * state (e.g. which log position) the snapshot holds even while mutations continue.
   */
  onCapture?: () => void;
  /**
   * serialize(): write the graph on the libuv thread pool instead of blocking the event loop for
   * the copy (writeIndexSync). Until the returned promise settles the index is frozen: knn/get
   * work, but add/remove throw (await whenIdle() before mutating). The snapshot holds the state
   * at onCapture, as in the default mode.
   */
  background?: boolean;
}

// --- float32 bit helpers ---------------------------------------------------------------------
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
function fromBits(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}

function checkFinite(v: Float32Array): void {
  if (v.length === 0) throw new CommandError(EMPTY_EMBEDDING);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) throw new CommandError(INVALID_EMBEDDING);
  }
}

function norm2(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

/** hnswlib space used internally for a user space. */
function innerSpace(space: Space): 'l2' | 'ip' {
  return space === 'l2' ? 'l2' : 'ip';
}

export class VectorIndex {
  readonly space: Space;
  readonly m: number;
  readonly efConstruction: number;
  readonly maxElements: number;
  private _ef: number;
  private _dim: number | undefined;
  private hnsw: HnswType | null = null;

  // Items: id → slot (typed-array hash table); per slot: the id, the text (TextArena; a slot is
  // live iff it has a text) and, in cosine space, the norm and correction bits. Nothing per item
  // lives on the V8 heap.
  private idToSlot = new IdTable();
  private slotIds = new Uint32Array(16);
  private readonly texts = new TextArena();
  private readonly freeSlots: number[] = [];
  private slotTop = 0;
  private norms: Float64Array = new Float64Array(0);
  private corr: Uint8Array = new Uint8Array(0);
  private corrBytes = 0;
  /** Cosine only: exact copies of the rare vectors the norm + correction cannot restore. */
  private readonly exactCopies = new Map<number, Float32Array>();

  private nextAuto = 1;

  constructor(params: Partial<VectorIndexParams> = {}) {
    const p = { ...DEFAULT_PARAMS, ...params };
    this.space = parseSpace(p.space);
    const int = (name: string, v: number, [lo, hi]: readonly [number, number]) => {
      if (!Number.isInteger(v) || v < lo || v > hi) {
        throw new CommandError(`failed to parse vector store options: ${name} must be an integer in [${lo}, ${hi}]`);
      }
      return v;
    };
    this._dim = p.dim === undefined ? undefined : int('dim', p.dim, PARAM_LIMITS.dim);
    this.m = int('m', p.m, PARAM_LIMITS.m);
    this.efConstruction = int('ef_construction', p.efConstruction, PARAM_LIMITS.efConstruction);
    this.maxElements = int('max_elements', p.maxElements, PARAM_LIMITS.maxElements);
    this._ef = int('ef', p.ef, PARAM_LIMITS.ef);
    if (this._dim !== undefined) this.setDim(this._dim);
  }

  // --- properties --------------------------------------------------------------------------

  /** Number of live items. */
  get size(): number {
    return this.idToSlot.size;
  }

  /** The dimension, or undefined while no vector fixed it. */
  get dim(): number | undefined {
    return this._dim;
  }

  /** Default search ef. */
  get ef(): number {
    return this._ef;
  }

  set ef(v: number) {
    if (!Number.isInteger(v) || v < PARAM_LIMITS.ef[0] || v > PARAM_LIMITS.ef[1]) {
      throw new CommandError(`invalid ef: must be an integer in [${PARAM_LIMITS.ef[0]}, ${PARAM_LIMITS.ef[1]}]`);
    }
    this._ef = v;
  }

  /** The params this index was created with (dim = the current dimension, if fixed). */
  get params(): VectorIndexParams {
    return {
      space: this.space,
      dim: this._dim,
      m: this.m,
      efConstruction: this.efConstruction,
      maxElements: this.maxElements,
      ef: this._ef,
    };
  }

  /** Graph slots allocated (grows by 25% when full). 0 before the first vector. */
  get capacity(): number {
    return this.hnsw ? this.hnsw.getMaxElements() : 0;
  }

  /** The next auto id nextId() would hand out (may be 4294967296 = exhausted). */
  get nextAutoId(): number {
    return this.nextAuto;
  }

  has(id: number): boolean {
    return this.idToSlot.has(id);
  }

  /** Live ids, in no particular order. Do not mutate the index while iterating. */
  *ids(): IterableIterator<number> {
    for (let s = 0; s < this.slotTop; s++) if (this.texts.has(s)) yield this.slotIds[s]!;
  }

  // --- ids -----------------------------------------------------------------------------------

  /**
   * Reserves and returns a fresh auto id (≥ 1, above every id ever added or reserved). Call it
   * right before add(); an id reserved but never added is simply skipped.
   * Throws `no more auto ids available ...` once ids reach 4294967295.
   */
  nextId(): number {
    if (this.nextAuto > MAX_ID) throw new CommandError(IDS_EXHAUSTED);
    return this.nextAuto++;
  }

  /** Raises the auto-id counter to at least n (restoring state from a log). Never lowers it. */
  ensureNextId(n: number): void {
    if (Number.isInteger(n) && n > this.nextAuto) this.nextAuto = Math.min(n, MAX_ID + 1);
  }

  // --- mutations -----------------------------------------------------------------------------

  /**
   * Inserts item `id`, or updates it (vector and text) if it exists; a removed id may be added
   * again. Returns true when a new item was inserted, false for an update. `data` is stored as
   * bytes (a string as UTF-8; a Buffer as is, binary-safe: read it back with getDataBytes).
   * Errors: `invalid id`, `invalid embedding`, `invalid embedding: size is 0`,
   * `vector dimension does not match`, and in cosine space the zero-vector error.
   */
  add(id: number, vector: Float32Array, data: string | Uint8Array, advanceAuto = true): boolean {
    this.assertMutable();
    if (!isValidId(id)) throw new CommandError(INVALID_ID);
    checkFinite(vector);
    if (this._dim === undefined) {
      this.setDim(vector.length);
    } else if (vector.length !== this._dim) {
      throw dimensionMismatch(this._dim, vector.length);
    }

    // Everything that can fail on input happens before the graph is touched.
    // hnswlib-node wants a plain array; it copies the values, so one scratch array is reused
    // (a fresh array per add leaves ~1 KB of garbage per 128-dim vector behind).
    const point = this.scratchPoint(vector.length);
    let nrm = 0;
    let exact = false;
    let code: Uint8Array | undefined;
    if (this.corrBytes > 0) {
      if (this.scratchCode.length !== this.corrBytes) this.scratchCode = new Uint8Array(this.corrBytes);
      code = this.scratchCode.fill(0);
    }
    if (this.space === 'cosine') {
      nrm = norm2(vector);
      if (nrm === 0 || !Number.isFinite(nrm)) throw new CommandError(ZERO_VECTOR_COSINE);
      for (let i = 0; i < vector.length; i++) {
        const x = vector[i]!;
        const u = Math.fround(x / nrm);
        point[i] = u;
        const r = Math.fround(u * nrm);
        if (r === x) continue;
        const d = bitsOf(x) - bitsOf(r);
        if (d === 1) code![i >> 2]! |= 1 << ((i & 3) * 2);
        else if (d === -1) code![i >> 2]! |= 2 << ((i & 3) * 2);
        else exact = true;
      }
    } else {
      for (let i = 0; i < vector.length; i++) point[i] = vector[i]!;
    }

    const hnsw = this.ensureHnsw();
    let slot = this.idToSlot.get(id);
    const isNew = slot < 0;
    if (!isNew) {
      hnsw.addPoint(point, id, false); // update in place
    } else {
      const vacancies = hnsw.getCurrentCount() - this.idToSlot.size;
      let revived = false;
      if (vacancies > 0) {
        // The id may still own a deleted slot: revive it (adding it as new would duplicate it).
        try {
          hnsw.unmarkDelete(id);
          revived = true;
        } catch {
          revived = false; // not in the graph any more (its slot was reused)
        }
      }
      if (revived) {
        try {
          hnsw.addPoint(point, id, false);
        } catch (e) {
          hnsw.markDelete(id);
          throw e;
        }
      } else {
        if (vacancies <= 0) this.reserveCapacity(hnsw.getCurrentCount() + 1);
        hnsw.addPoint(point, id, true); // reuses a deleted slot if there is one
      }
      slot = this.allocSlot(id);
    }

    // Item state (cannot fail).
    this.texts.put(slot, data);
    if (this.space === 'cosine') {
      this.norms[slot] = nrm;
      this.corr.set(code!, slot * this.corrBytes);
      if (exact) this.exactCopies.set(id, Float32Array.from(vector));
      else this.exactCopies.delete(id);
    }
    // An alias label (an id of 2^32 or more, see id-alias.ts) is no id: it does not move the auto ids.
    if (advanceAuto && id >= this.nextAuto) this.nextAuto = id + 1;
    return isNew;
  }

  /** Removes item `id`. Returns false if it was not there. */
  remove(id: number): boolean {
    const slot = this.idToSlot.get(id);
    if (slot < 0) return false;
    this.assertMutable();
    this.hnsw!.markDelete(id);
    this.idToSlot.delete(id);
    this.texts.free(slot);
    this.freeSlots.push(slot);
    this.exactCopies.delete(id);
    return true;
  }

  // --- reads ---------------------------------------------------------------------------------

  /** The item's text (decoded as UTF-8) and vector (exactly as added), or null. */
  get(id: number): { data: string; vector: Float32Array } | null {
    const slot = this.idToSlot.get(id);
    if (slot < 0) return null;
    return { data: this.texts.getString(slot), vector: this.vectorAt(id, slot) };
  }

  /** The item's vector exactly as added, or null. */
  getVector(id: number): Float32Array | null {
    const slot = this.idToSlot.get(id);
    return slot < 0 ? null : this.vectorAt(id, slot);
  }

  /** The item's text decoded as UTF-8, or null (no vector read). */
  getData(id: number): string | null {
    const slot = this.idToSlot.get(id);
    return slot < 0 ? null : this.texts.getString(slot);
  }

  /** The item's text as the bytes given to add() (a copy), or null. Binary-safe. */
  getDataBytes(id: number): Buffer | null {
    const slot = this.idToSlot.get(id);
    return slot < 0 ? null : this.texts.getBytes(slot);
  }

  /** The K nearest items, nearest first. See knnExplain. */
  knn(query: Float32Array, k: number, opts: KnnOptions = {}): KnnHit[] {
    return this.knnExplain(query, k, opts).hits;
  }

  /**
   * The K nearest items (K best matching items with a filter), nearest first, and which path
   * answered. Distances: l2 = squared L2, cosine = 1 − cos, ip = 1 − dot (hnswlib's float32).
   * k < 1 or an empty index → []; k > size → every (matching) item.
   * Errors: `vector dimension does not match`, `invalid embedding`, the cosine zero-vector error.
   *
   * Unfiltered: HNSW search with ef = max(ef, k) (if that returns fewer than min(k, size) items,
   * an exhaustive graph walk, then an exact scan as the last resort).
   * Filtered: the filter is sampled on up to 1024 items to estimate its selectivity, and a cost
   * model (chooseFilteredPath) picks either an exact scan over the matching items (very selective
   * filters: e.g. ≲ 0.5% of 100k items at 128 dims) or the HNSW search with the filter inside the
   * graph walk (hnswlib keeps walking until ef matching items are found, so it returns the K best
   * matching items, not "K nearest, then filtered"). If the graph search returns fewer than
   * min(k, size) items, an exact scan answers instead (and returns every match if fewer than K).
   */
  knnExplain(query: Float32Array, k: number, opts: KnnOptions = {}): KnnExplain {
    checkFinite(query);
    if (this._dim !== undefined && query.length !== this._dim) throw dimensionMismatch(this._dim, query.length);
    if (opts.ef !== undefined && (!Number.isInteger(opts.ef) || opts.ef < 1)) {
      throw new CommandError('invalid ef: must be a positive integer');
    }
    const q = this.queryPoint(query);
    const n = this.idToSlot.size;
    if (!(k >= 1) || n === 0 || this.hnsw === null) return { hits: [], path: 'hnsw' };
    const kk = Math.min(Math.floor(k), n);
    const userFilter = opts.filter;
    const ef = Math.max(opts.ef ?? this._ef, kk);

    const strategy = opts.strategy ?? 'auto';

    if (userFilter === undefined) {
      if (strategy === 'exact') return { hits: this.exactScan(q, kk, undefined), path: 'exact', reason: 'forced' };
      const hits = this.searchGraph(q, kk, ef, undefined);
      if (hits.length >= kk) return { hits, path: 'hnsw', ef };
      // Short (tiny or heavily churned graphs): an exhaustive walk in C++ is far cheaper than
      // reading every vector back into JS; the exact scan is the last resort.
      const wide = Math.max(ef, n);
      const again = this.searchGraph(q, kk, wide, undefined);
      if (again.length >= kk) return { hits: again, path: 'hnsw', ef: wide };
      return { hits: this.exactScan(q, kk, undefined), path: 'exact', reason: 'hnsw-short', ef: wide };
    }

    // Filtered: a filter that throws must not reach hnswlib (a throwing callback aborts the
    // process there); catch, stop matching, re-throw afterwards.
    let failure: { e: unknown } | undefined;
    const filter = (id: number): boolean => {
      if (failure) return false;
      try {
        return Boolean(userFilter(id));
      } catch (e) {
        failure = { e };
        return false;
      }
    };
    const rethrow = () => {
      if (failure) throw failure.e;
    };

    if (strategy === 'exact') {
      const hits = this.exactScan(q, kk, filter);
      rethrow();
      return { hits, path: 'exact', reason: 'forced' };
    }
    const sample = this.sampleFilter(filter);
    rethrow();
    if (strategy === 'auto' && chooseFilteredPath(n, this._dim!, ef, sample.matched, sample.sampled) === 'exact') {
      const hits = this.exactScan(q, kk, filter);
      rethrow();
      return { hits, path: 'exact', reason: 'selective-filter', sample };
    }
    const hits = this.searchGraph(q, kk, ef, filter);
    rethrow();
    if (hits.length >= kk) return { hits, path: 'hnsw', ef, sample };
    // Fewer than K from the graph: the exact scan returns all matches if there are fewer than K.
    const exact = this.exactScan(q, kk, filter);
    rethrow();
    return { hits: exact, path: 'exact', reason: 'hnsw-short', ef, sample };
  }

  // --- introspection -------------------------------------------------------------------------

  /**
   * Estimated resident memory of this index in bytes: hnswlib's level-0 block, upper levels,
   * per-slot bookkeeping and label table, plus our JS maps, texts and cosine corrections.
   */
  memoryBytes(): number {
    let bytes = 256;
    const n = this.idToSlot.size;
    if (this.hnsw !== null && this._dim !== undefined) {
      const count = this.hnsw.getCurrentCount();
      const cap = this.hnsw.getMaxElements();
      const perElement = this._dim * 4 + (2 * this.m * 4 + 4) + 8; // data + level-0 links + label
      const upperLinks = (this.m * 4 + 4) / Math.max(1, this.m - 1); // expected upper levels
      bytes += count * (perElement + upperLinks + 48); // + label_lookup_ entry
      bytes += cap * (4 + 40 + 8 + 2); // element_levels_, link_list_locks_, linkLists_, visited
      bytes += 65_536 * 40; // label operation locks
    }
    bytes += this.idToSlot.byteLength + this.slotIds.byteLength + this.texts.byteLength;
    bytes += this.freeSlots.length * 8;
    bytes += this.norms.byteLength + this.corr.byteLength;
    for (const v of this.exactCopies.values()) bytes += v.byteLength + 96;
    return Math.round(bytes);
  }

  /** Figures for `INFO llm`. */
  stats(): VectorIndexStats {
    return {
      items: this.idToSlot.size,
      dim: this._dim ?? null,
      space: this.space,
      capacity: this.capacity,
      deleted: this.hnsw ? this.hnsw.getCurrentCount() - this.idToSlot.size : 0,
      m: this.m,
      efConstruction: this.efConstruction,
      ef: this._ef,
      nextId: this.nextAuto,
      memoryBytes: this.memoryBytes(),
    };
  }

  // --- snapshots -----------------------------------------------------------------------------

  /**
   * One Buffer holding the graph (hnswlib's own file format, loaded back without rebuilding) and
   * every item's id and text, the cosine norms/corrections, the auto-id counter and the params.
   *
   * Consistency: the graph and the items are captured synchronously (writeIndexSync), so the
   * snapshot is one point in time even if the caller keeps mutating the index afterwards. That
   * write blocks the event loop for the copy (measured in bench/knn-inprocess.ts); reading the
   * file back and cleanup are asynchronous. The temporary file is always removed.
   *
   * Layout (little-endian): "RLVI" | u16 version=1 | u16 0 | u32 headerLen | header JSON |
   * graph bytes | per item: u32 id, u32 textLen, text (UTF-8) | cosine: per item f64 norm +
   * ceil(dim/4) correction bytes | u32 exactCount, per exact copy: u32 id, dim × f32.
   */
  async serialize(opts: SnapshotOptions = {}): Promise<Buffer> {
    if (opts.background) this.assertMutable(); // one background snapshot at a time
    let dir: string | undefined;
    let frozen = false;
    try {
      let graphPath: string | undefined;
      if (this.hnsw !== null) {
        dir = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'rlvi-'));
        graphPath = join(dir, 'graph.bin');
      }
      // --- capture: synchronous (default), or with mutations frozen (background) until the
      // items are written too ---
      if (opts.background) {
        while (this.frozen) await this.whenIdle(); // another one started meanwhile
        this.freeze();
        frozen = true;
      }
      opts.onCapture?.();
      let graphBytes = 0;
      if (this.hnsw !== null) {
        if (opts.background) await this.hnsw.writeIndex(graphPath!);
        else this.hnsw.writeIndexSync(graphPath!);
        graphBytes = statSync(graphPath!).size;
      }
      const itemBytes = this.itemsSize();
      const header = Buffer.from(
        JSON.stringify({
          space: this.space,
          dim: this._dim ?? null,
          m: this.m,
          efConstruction: this.efConstruction,
          maxElements: this.maxElements,
          ef: this._ef,
          nextId: this.nextAuto,
          items: this.idToSlot.size,
          exact: this.space === 'cosine' ? this.exactCopies.size : 0,
          graphBytes,
          itemBytes,
        } satisfies SnapshotHeader),
        'utf8',
      );
      const graphAt = 12 + header.length;
      const out = Buffer.allocUnsafe(graphAt + graphBytes + itemBytes);
      out.write(MAGIC, 0, 'latin1');
      out.writeUInt16LE(SNAPSHOT_VERSION, 4);
      out.writeUInt16LE(0, 6);
      out.writeUInt32LE(header.length, 8);
      header.copy(out, 12);
      this.writeItems(out, graphAt + graphBytes, itemBytes);
      if (frozen) {
        frozen = false;
        this.thaw();
      }
      // --- end of capture ---
      if (graphPath !== undefined) await readInto(graphPath, out, graphAt, graphBytes);
      return out;
    } finally {
      if (frozen) this.thaw();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    }
  }

  /** True while a background snapshot holds the index frozen (add/remove would throw). */
  get frozen(): boolean {
    return this.idleWaiters !== null;
  }

  /** Resolves when no background snapshot holds the index (at once if none does). */
  whenIdle(): Promise<void> {
    if (this.idleWaiters === null) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters!.push(resolve));
  }

  private idleWaiters: (() => void)[] | null = null;

  private freeze(): void {
    this.idleWaiters = [];
  }

  private thaw(): void {
    const waiters = this.idleWaiters ?? [];
    this.idleWaiters = null;
    for (const w of waiters) w();
  }

  /** hnswlib is reading the graph on another thread: changing it now could corrupt or crash. */
  private assertMutable(): void {
    if (this.idleWaiters !== null) {
      throw new Error('vector index is frozen by a background snapshot: await whenIdle() before add/remove');
    }
  }

  /**
   * Rebuilds an index from serialize()'s Buffer: the graph is loaded as saved (no rebuild; hnswlib
   * reads it on the libuv thread pool while the items are decoded here), and ef, items, auto-id
   * counter and capacity are restored. A malformed buffer → Error
   * (`corrupt vector index snapshot: ...`). The temporary file is always removed.
   */
  static async deserialize(buf: Buffer, opts: SnapshotOptions = {}): Promise<VectorIndex> {
    const bad = (why: string) => new Error(`corrupt vector index snapshot: ${why}`);
    if (buf.length < 12 || buf.toString('latin1', 0, 4) !== MAGIC) throw bad('bad magic');
    const version = buf.readUInt16LE(4);
    if (version !== SNAPSHOT_VERSION) throw bad(`unsupported version ${version}`);
    const headerLen = buf.readUInt32LE(8);
    if (12 + headerLen > buf.length) throw bad('truncated header');
    let h: SnapshotHeader;
    try {
      h = JSON.parse(buf.toString('utf8', 12, 12 + headerLen)) as SnapshotHeader;
    } catch {
      throw bad('bad header');
    }
    if (typeof h !== 'object' || h === null) throw bad('bad header');
    const graphStart = 12 + headerLen;
    const itemsStart = graphStart + h.graphBytes;
    if (!Number.isInteger(h.graphBytes) || !Number.isInteger(h.itemBytes) || itemsStart + h.itemBytes !== buf.length) {
      throw bad('length mismatch');
    }
    if (h.graphBytes > 0 && typeof h.dim !== 'number') throw bad('graph without dimension');
    if (h.items > 0 && h.graphBytes === 0) throw bad('items without graph');
    const index = new VectorIndex({
      space: h.space,
      dim: h.dim ?? undefined,
      m: h.m,
      efConstruction: h.efConstruction,
      maxElements: h.maxElements,
      ef: h.ef,
    });

    const dir = h.graphBytes > 0 ? await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'rlvi-')) : undefined;
    try {
      let graph: Promise<HnswType | null> = Promise.resolve(null);
      if (dir !== undefined) {
        const path = join(dir, 'graph.bin');
        graph = (async () => {
          await writeGraphFile(path, buf.subarray(graphStart, itemsStart));
          const hnsw = new HierarchicalNSW(innerSpace(index.space), h.dim!);
          await hnsw.readIndex(path, true);
          return hnsw;
        })();
        graph.catch(() => undefined); // awaited below; this only marks it handled meanwhile
      }
      try {
        index.decodeItems(buf.subarray(itemsStart), h, bad);
      } catch (e) {
        await graph.catch(() => undefined);
        throw e;
      }
      index.hnsw = await graph;
      // writeGraphFile saved the capacity as the item count; were it larger, trim the spare slots
      // (they cost resident memory) — the index grows again on demand.
      if (index.hnsw !== null) {
        const count = index.hnsw.getCurrentCount();
        if (index.hnsw.getMaxElements() > count) index.hnsw.resizeIndex(Math.max(count, 1));
      }
    } finally {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    }
    if (index.hnsw !== null && index.hnsw.getCurrentCount() < index.idToSlot.size) throw bad('graph smaller than items');
    index.nextAuto = h.nextId;
    return index;
  }

  // --- internals -----------------------------------------------------------------------------

  private scratch: number[] = [];
  private scratchCode = new Uint8Array(0);

  private scratchPoint(dim: number): number[] {
    if (this.scratch.length !== dim) this.scratch = new Array<number>(dim).fill(0.5);
    return this.scratch;
  }

  private setDim(dim: number): void {
    this._dim = dim;
    this.corrBytes = this.space === 'cosine' ? Math.ceil(dim / 4) : 0;
    this.growSlots(Math.max(this.slotIds.length, 16));
  }

  private ensureHnsw(): HnswType {
    if (this.hnsw === null) {
      const h = new HierarchicalNSW(innerSpace(this.space), this._dim!);
      h.initIndex({
        maxElements: Math.min(this.maxElements, INITIAL_CAPACITY_LIMIT),
        m: this.m,
        efConstruction: this.efConstruction,
        allowReplaceDeleted: true,
      });
      this.hnsw = h;
    }
    return this.hnsw;
  }

  /**
   * Makes room for `needed` graph slots, growing by 25% (at least 1024 slots). Each spare slot
   * costs ~46 resident bytes in hnswlib (lock, level, visited mark), so the slack stays ≤ 25%; a
   * resize costs ~25 ns per slot (3 ms at 100k, measured), amortised O(1) per add.
   */
  private reserveCapacity(needed: number): void {
    const h = this.hnsw!;
    const cap = h.getMaxElements();
    if (needed <= cap) return;
    const next = Math.min(MAX_ID + 1, Math.max(needed, cap + Math.max(GROWTH_MIN, Math.floor(cap / 4))));
    const t0 = performance.now();
    h.resizeIndex(next);
    logger.debug({ from: cap, to: next, ms: +(performance.now() - t0).toFixed(1) }, 'vector index grown');
  }

  private allocSlot(id: number): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.slotTop++;
      if (slot >= this.slotIds.length) this.growSlots(this.slotIds.length * 2);
    }
    this.slotIds[slot] = id;
    this.idToSlot.set(id, slot);
    this.texts.ensureSlots(slot + 1);
    return slot;
  }

  private growSlots(cap: number): void {
    if (cap > this.slotIds.length) {
      const ids = new Uint32Array(cap);
      ids.set(this.slotIds.subarray(0, this.slotTop));
      this.slotIds = ids;
    }
    if (this.space === 'cosine' && this._dim !== undefined) {
      const c = this.slotIds.length;
      if (this.norms.length < c) {
        const norms = new Float64Array(c);
        norms.set(this.norms);
        this.norms = norms;
      }
      if (this.corr.length < c * this.corrBytes) {
        const corr = new Uint8Array(c * this.corrBytes);
        corr.set(this.corr);
        this.corr = corr;
      }
    }
  }

  private vectorAt(id: number, slot: number): Float32Array {
    const stored = this.hnsw!.getPoint(id);
    if (this.space !== 'cosine') return Float32Array.from(stored);
    const copy = this.exactCopies.get(id);
    if (copy) return Float32Array.from(copy);
    const nrm = this.norms[slot]!;
    const base = slot * this.corrBytes;
    const out = new Float32Array(stored.length);
    for (let i = 0; i < stored.length; i++) {
      const r = Math.fround(stored[i]! * nrm);
      const c = (this.corr[base + (i >> 2)]! >> ((i & 3) * 2)) & 3;
      out[i] = c === 0 ? r : fromBits(bitsOf(r) + (c === 1 ? 1 : -1));
    }
    return out;
  }

  /** The query as the graph sees it: a plain array (unit length in cosine space). */
  private queryPoint(query: Float32Array): number[] {
    if (this.space !== 'cosine') return Array.from(query);
    const nrm = norm2(query);
    if (nrm === 0 || !Number.isFinite(nrm)) throw new CommandError(ZERO_VECTOR_COSINE);
    const q = new Array<number>(query.length);
    for (let i = 0; i < query.length; i++) q[i] = Math.fround(query[i]! / nrm);
    return q;
  }

  private searchGraph(q: number[], k: number, ef: number, filter: ((id: number) => boolean) | undefined): KnnHit[] {
    const h = this.hnsw!;
    if (h.getEf() !== ef) h.setEf(ef);
    const res = filter ? h.searchKnn(q, k, filter) : h.searchKnn(q, k);
    const hits = new Array<KnnHit>(res.neighbors.length);
    for (let i = 0; i < hits.length; i++) hits[i] = { id: res.neighbors[i]!, distance: res.distances[i]! };
    return hits;
  }

  /** Tests the filter on up to FILTER_SAMPLE live items spread evenly over the slots. */
  private sampleFilter(filter: (id: number) => boolean): { sampled: number; matched: number } {
    const top = this.slotTop;
    const want = Math.min(FILTER_SAMPLE, this.idToSlot.size);
    const step = Math.max(1, top / want);
    let sampled = 0;
    let matched = 0;
    for (let x = 0; x < top && sampled < want; x += step) {
      const s = Math.floor(x);
      if (!this.texts.has(s)) continue;
      sampled++;
      if (filter(this.slotIds[s]!)) matched++;
    }
    return { sampled, matched };
  }

  /** Exact K nearest over all live (matching) items, computed like hnswlib (float32 result). */
  private exactScan(q: number[], k: number, filter: ((id: number) => boolean) | undefined): KnnHit[] {
    const h = this.hnsw!;
    const l2 = this.space === 'l2';
    const dim = q.length;
    const found: KnnHit[] = [];
    let worst = Infinity; // k-th best distance once found.length >= k (kept loosely)
    for (let s = 0; s < this.slotTop; s++) {
      if (!this.texts.has(s)) continue;
      const id = this.slotIds[s]!;
      if (filter !== undefined && !filter(id)) continue;
      const p = h.getPoint(id);
      let d = 0;
      if (l2) {
        for (let i = 0; i < dim; i++) {
          const t = p[i]! - q[i]!;
          d += t * t;
        }
      } else {
        let dot = 0;
        for (let i = 0; i < dim; i++) dot += p[i]! * q[i]!;
        d = 1 - dot;
      }
      d = Math.fround(d);
      if (found.length >= k && d > worst) continue;
      found.push({ id, distance: d });
      if (found.length >= 4 * k + 64) {
        found.sort(byDistance);
        found.length = k;
        worst = found[k - 1]!.distance;
      }
    }
    found.sort(byDistance);
    if (found.length > k) found.length = k;
    return found;
  }

  private itemsSize(): number {
    let size = 4;
    for (let s = 0; s < this.slotTop; s++) {
      if (this.texts.has(s)) size += 8 + this.texts.byteLengthOf(s);
    }
    if (this.space === 'cosine') {
      size += this.idToSlot.size * (8 + this.corrBytes) + this.exactCopies.size * (4 + 4 * (this._dim ?? 0));
    }
    return size;
  }

  /** Writes the items section (itemsSize() bytes) at `at`. */
  private writeItems(buf: Buffer, at: number, size: number): void {
    const cosine = this.space === 'cosine';
    let o = at;
    for (let s = 0; s < this.slotTop; s++) {
      if (!this.texts.has(s)) continue;
      buf.writeUInt32LE(this.slotIds[s]!, o);
      const len = this.texts.copyTo(s, buf, o + 8);
      buf.writeUInt32LE(len, o + 4);
      o += 8 + len;
    }
    if (cosine) {
      for (let s = 0; s < this.slotTop; s++) {
        if (!this.texts.has(s)) continue;
        buf.writeDoubleLE(this.norms[s]!, o);
        o += 8;
        const c = s * this.corrBytes;
        buf.set(this.corr.subarray(c, c + this.corrBytes), o);
        o += this.corrBytes;
      }
    }
    buf.writeUInt32LE(cosine ? this.exactCopies.size : 0, o);
    o += 4;
    if (cosine) {
      for (const [id, v] of this.exactCopies) {
        buf.writeUInt32LE(id, o);
        o += 4;
        for (let i = 0; i < v.length; i++, o += 4) buf.writeFloatLE(v[i]!, o);
      }
    }
    if (o !== at + size) throw new Error(`vector snapshot: items size ${o - at} != ${size}`);
  }

  private decodeItems(buf: Buffer, h: SnapshotHeader, bad: (why: string) => Error): void {
    const n = h.items;
    if (!Number.isInteger(n) || n < 0) throw bad('bad item count');
    const cosine = this.space === 'cosine';
    if (n > this.slotIds.length) this.growSlots(n);
    this.texts.ensureSlots(n, true);
    this.idToSlot = new IdTable(n); // sized once: no rehash garbage while loading
    const extra = cosine ? n * (8 + this.corrBytes) + h.exact * (4 + 4 * (this._dim ?? 0)) : 0;
    this.texts.sizeHint(buf.length - 4 - 8 * n - extra);
    let o = 0;
    const need = (bytes: number) => {
      if (o + bytes > buf.length) throw bad('truncated items');
    };
    for (let s = 0; s < n; s++) {
      need(8);
      const id = buf.readUInt32LE(o);
      const len = buf.readUInt32LE(o + 4);
      o += 8;
      need(len);
      this.texts.putRange(s, buf, o, o + len);
      o += len;
      this.slotIds[s] = id;
      this.idToSlot.set(id, s);
    }
    this.slotTop = n;
    if (this.idToSlot.size !== n) throw bad('duplicate ids');
    if (cosine) {
      for (let s = 0; s < n; s++) {
        need(8 + this.corrBytes);
        this.norms[s] = buf.readDoubleLE(o);
        o += 8;
        this.corr.set(buf.subarray(o, o + this.corrBytes), s * this.corrBytes);
        o += this.corrBytes;
      }
    }
    need(4);
    const exactCount = buf.readUInt32LE(o);
    o += 4;
    const dim = this._dim ?? 0;
    for (let e = 0; e < exactCount; e++) {
      need(4 + 4 * dim);
      const id = buf.readUInt32LE(o);
      o += 4;
      const v = new Float32Array(dim);
      for (let i = 0; i < dim; i++, o += 4) v[i] = buf.readFloatLE(o);
      this.exactCopies.set(id, v);
    }
    if (o !== buf.length) throw bad('trailing bytes');
  }
}

const MAGIC = 'RLVI';
const SNAPSHOT_VERSION = 1;

interface SnapshotHeader {
  space: Space;
  dim: number | null;
  m: number;
  efConstruction: number;
  maxElements: number;
  ef: number;
  nextId: number;
  items: number;
  exact: number;
  graphBytes: number;
  itemBytes: number;
}

/**
 * Writes hnswlib's index file for readIndex, with its capacity (max_elements, the u64 at offset 8;
 * cur_element_count is the u64 at 16) lowered to the element count: hnswlib allocates its
 * per-element arrays for the capacity read, so loading the saved capacity and trimming it
 * afterwards (resizeIndex) held both sizes at once and left the allocator fragmented.
 * `graph` itself is not changed.
 */
async function writeGraphFile(path: string, graph: Buffer): Promise<void> {
  const head = Buffer.from(graph.subarray(0, Math.min(24, graph.length)));
  if (head.length === 24) {
    const count = head.readBigUInt64LE(16);
    if (head.readBigUInt64LE(8) > count) head.writeBigUInt64LE(count > 0n ? count : 1n, 8);
  }
  const fh = await open(path, 'w');
  try {
    const { bytesWritten } = await fh.writev([head, graph.subarray(head.length)]);
    if (bytesWritten !== graph.length) throw new Error('vector snapshot: graph file written short');
  } finally {
    await fh.close();
  }
}

/** Reads `length` bytes of a file into buf at `at`. */
async function readInto(path: string, buf: Buffer, at: number, length: number): Promise<void> {
  const fh = await open(path, 'r');
  try {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, at + done, length - done, done);
      if (bytesRead === 0) throw new Error('vector snapshot: graph file shorter than expected');
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

function byDistance(a: KnnHit, b: KnnHit): number {
  return a.distance - b.distance || a.id - b.id;
}
