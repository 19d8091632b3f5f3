/**
 * VectorIndex: one vector store's in-memory HNSW index (hnswlib-node) plus each item's text.
 *
 * Design notes
 * - Vectors live only inside the graph (no second JS copy); GET reads them back with getPoint.
 * - The graph is native/graph.cc (hnswlib): searches, inserts, snapshot writes and loads run on
 *   the engine's own threads (the *Async methods), so the event loop never waits for them and several
 *   searches run on several cores. The sync methods are for small indexes (the response cache).
 *   The caller keeps the contract: searches may overlap each other and a snapshot; a mutation
 *   runs alone (src/objects/store-gate.ts).
 * - Graph labels are slots (dense), so a filter is a bitset over slots (bitset.ts).
 * - Spaces: `l2` = squared L2 (the original's only space), `ip` = 1 − dot, `cosine` = 1 − cos.
 *   Cosine is stored as hnswlib `ip` over unit vectors that we normalise ourselves (so we know the
 *   exact float64 norm used). To let GET return the vector exactly as given, each item keeps its
 *   norm (8 bytes) and a 2-bit-per-component correction (the original float32 is the rounded
 *   unit×norm value, or its float32 neighbour up/down). Vectors whose round trip is off by more
 *   than one ulp in some component (only with subnormal values) keep an exact copy instead.
 *   A zero vector has no direction: in cosine space it is rejected (on ADD and on KNN).
 * - Ids are uint32. Removal marks the item's slot deleted in the graph; the next new item takes
 *   the freed slot, reviving (and updating) its graph element, so churn does not grow the index.
 * - Growth: capacity starts at min(max_elements, 1024) and grows by 25% whenever a new item
 *   needs a slot and none is free (a loaded snapshot is trimmed to its item count), so
 *   max_elements is a hint, never a limit.
 * - Auto ids: the counter starts at 1 and is always above every id ever added (explicit ids
 *   advance it), so an auto id can never overwrite an explicit one.
 * - Serialization freezes mutations until the graph and the items are written, so a snapshot is
 *   a consistent point in time (see serialize()).
 */
import { CommandError } from '../errors.js';
import { IdTable } from './id-table.js';
import { TextArena } from './text-arena.js';
import { ioTurn, sliceSpent } from '../util/io-slice.js';
import { snapshotBuffer } from '../util/addon.js';
import { newGraph, type Hits, type NativeGraph } from './native.js';
import { type Bitset, emptyBits, popcount, and, setBit } from './bitset.js';
import { EMPTY_EMBEDDING, INVALID_EMBEDDING, INVALID_ID, MAX_ID, isValidId } from './parse.js';
import { DEFAULT_PARAMS, PARAM_LIMITS, type Space, type VectorIndexParams, parseSpace } from './params.js';

export const DIMENSION_MISMATCH = 'vector dimension does not match';
/** The original's text, then both dimensions: `vector dimension does not match: store has 64, got 3`. */
export const dimensionMismatch = (expected: number, got: number): CommandError =>
  new CommandError(`${DIMENSION_MISMATCH}: store has ${expected}, got ${got}`);
export const ZERO_VECTOR_COSINE = 'invalid embedding: zero vector has no direction in cosine space';
export const IDS_EXHAUSTED = 'no more auto ids available (explicit ids reached 4294967295)';

/** Initial graph capacity is min(max_elements, this); it grows by 25% (≥ 1024) when full. */
export const INITIAL_CAPACITY_LIMIT = 1024;

/**
 * Cost model for filtered queries (ns; measured on this engine at 100k × 128, clustered data,
 * ef 100: bench/knn-filter.ts). Exact scan over the matching set: a bit test per word, then a
 * distance per match (random memory order: ~117 ns at 128 dims). Graph walk with the bit test
 * inside: ~ef × (1 + 0.35 / selectivity) visits' worth of distances (271 µs unfiltered, 407 µs at
 * 50%, 935 µs at 10%, 1.7 ms at 5%, 78 ms at 0.1%).
 */
export const FILTER_COST = Object.freeze({
  exactPerWord: 2,
  exactPerMatch: 40,
  exactPerMatchComponent: 0.6,
  graphPerEfComponent: 16,
  graphSelectivityFactor: 0.35,
});

/** Which path a filtered query takes, given how many of the n items match. */
export function chooseFilteredPath(n: number, dim: number, ef: number, matched: number): KnnPath {
  if (matched === 0) return 'exact';
  const c = FILTER_COST;
  const p = matched / Math.max(1, n);
  const exact = (n / 32) * c.exactPerWord + matched * (c.exactPerMatch + dim * c.exactPerMatchComponent);
  const graph = ef * (1 + c.graphSelectivityFactor / p) * dim * c.graphPerEfComponent;
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
   * It is evaluated once per live item (into a bitset): prefer `allow` for big indexes.
   */
  filter?: (id: number) => boolean;
  /** Only items whose slot bit is set (a matching set from an attribute index, see slotOf). */
  allow?: Bitset;
  /** Says which attribute index answered `allow` (reported by --EXPLAIN). */
  index?: string;
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
  /** Filtered queries: how many items match (counted exactly from the matching set). */
  matched?: number;
  /** Filtered queries: which attribute index gave the matching set ('scan' = evaluated per item). */
  index?: string;
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
  /**
   * serialize(): called synchronously at the capture point, so a caller can record exactly which
   * state (e.g. which log position) the snapshot holds even while mutations continue.
   */
  onCapture?: () => void;
  /**
   * Accepted for compatibility: the graph is always written off the event loop. Until the items
   * are captured too the index is frozen: knn/get work, add/remove throw (await whenIdle()).
   */
  background?: boolean;
  /**
   * serialize(): return the snapshot framed — `head` zero bytes before it and `tail()` (called at
   * the capture, after onCapture) after it — in the one allocation, so a caller that wraps the
   * snapshot does not copy it again (a copy of a 100k × 128 store's ~70 MB costs ~60 ms).
   */
  frame?: { head: number; tail: () => Buffer };
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
  private graph: NativeGraph | null = null;

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
    return this.graph ? this.graph.capacity() : 0;
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
   * Synchronous (the insert runs on this thread): for small indexes; stores use addAsync.
   */
  add(id: number, vector: Float32Array, data: string | Uint8Array, advanceAuto = true): boolean {
    const prep = this.prepareAdd(id, vector);
    prep.graph.add(prep.point, prep.slot, MAX_ID + 1);
    return this.commitAdd(id, vector, data, advanceAuto, prep);
  }

  /**
   * add() with the graph insert on an engine thread. The caller runs it alone (no other mutation
   * or search of this index until it settles); a failed insert changes nothing.
   */
  async addAsync(id: number, vector: Float32Array, data: string | Uint8Array, advanceAuto = true): Promise<boolean> {
    const prep = this.prepareAdd(id, vector);
    await prep.graph.addAsync(prep.point, prep.slot, MAX_ID + 1);
    return this.commitAdd(id, vector, data, advanceAuto, prep);
  }

  /**
   * Several adds whose graph inserts run in one engine task: newBatch(), then batchAdd() per item
   * in order, then runBatch(). Each item is checked as it joins and the batch keeps what the index
   * will look like after the items before it (slots, the next auto id), so the outcome is exactly
   * that of the same adds one by one. The caller runs it alone (no other mutation or search of this
   * index from the first batchAdd until runBatch settles).
   */
  newBatch(): AddBatch {
    return { items: [], preps: [], fresh: 0, nextAutoId: this.nextAuto };
  }

  /**
   * add()'s checks for one more item of the batch: throws its input error (the item is left out,
   * nothing changes). Ids must be distinct within a batch: check inBatch() first.
   */
  batchAdd(b: AddBatch, id: number, vector: Float32Array, data: string | Uint8Array, advanceAuto = true): void {
    const p = this.prepareAdd(id, vector, b.fresh);
    if (p.isNew) b.fresh++;
    b.items.push({ id, vector, data, advanceAuto });
    b.preps.push(p);
    if (advanceAuto && id >= b.nextAutoId) b.nextAutoId = id + 1;
  }

  /** Is `id` one of the batch's items? */
  inBatch(b: AddBatch, id: number): boolean {
    return b.items.some((it) => it.id === id);
  }

  /**
   * Inserts the batch's items in one engine task, then commits them. One result per item, in
   * order: true (inserted), false (updated), or, from the first item the engine failed on, that
   * engine Error (it and the later items were not added; the earlier ones were).
   */
  async runBatch(b: AddBatch): Promise<Array<boolean | Error>> {
    const n = b.items.length;
    if (n === 0) return [];
    const dim = this._dim!;
    const points = new Float32Array(n * dim);
    const labels = new Uint32Array(n);
    for (let k = 0; k < n; k++) {
      points.set(b.preps[k]!.point, k * dim);
      labels[k] = b.preps[k]!.slot;
    }
    const r = await b.preps[0]!.graph.addBatchAsync(points, labels, MAX_ID + 1);
    const inserted = typeof r === 'number' ? r : r.inserted;
    const out = new Array<boolean | Error>(n);
    for (let k = 0; k < n; k++) {
      const it = b.items[k]!;
      out[k] = k < inserted ? this.commitAdd(it.id, it.vector, it.data, it.advanceAuto, b.preps[k]!) : (r as Error);
    }
    return out;
  }

  /**
   * Everything that can fail on input, before the graph is touched; picks the item's slot (for a
   * batch, the slot after the `fresh` new items prepared before it in the batch).
   */
  private prepareAdd(id: number, vector: Float32Array, fresh = 0): AddPrep {
    this.assertMutable();
    if (!isValidId(id)) throw new CommandError(INVALID_ID);
    checkFinite(vector);
    if (this._dim === undefined) {
      this.setDim(vector.length);
    } else if (vector.length !== this._dim) {
      throw dimensionMismatch(this._dim, vector.length);
    }
    let nrm = 0;
    let exact = false;
    let code: Uint8Array | undefined;
    let point = vector;
    if (this.space === 'cosine') {
      code = new Uint8Array(this.corrBytes);
      nrm = norm2(vector);
      if (nrm === 0 || !Number.isFinite(nrm)) throw new CommandError(ZERO_VECTOR_COSINE);
      point = new Float32Array(vector.length);
      for (let i = 0; i < vector.length; i++) {
        const x = vector[i]!;
        const u = Math.fround(x / nrm);
        point[i] = u;
        const r = Math.fround(u * nrm);
        if (r === x) continue;
        const d = bitsOf(x) - bitsOf(r);
        if (d === 1) code[i >> 2]! |= 1 << ((i & 3) * 2);
        else if (d === -1) code[i >> 2]! |= 2 << ((i & 3) * 2);
        else exact = true;
      }
    }
    const existing = this.idToSlot.get(id);
    const slot = existing >= 0 ? existing : this.peekSlot(fresh);
    return { graph: this.ensureGraph(), point, slot, isNew: existing < 0, nrm, exact, code };
  }

  /** Item state after the graph took the point (cannot fail). */
  private commitAdd(id: number, vector: Float32Array, data: string | Uint8Array, advanceAuto: boolean, prep: AddPrep): boolean {
    const slot = prep.isNew ? this.allocSlot(id) : prep.slot;
    this.texts.put(slot, data);
    if (this.space === 'cosine') {
      this.norms[slot] = prep.nrm;
      this.corr.set(prep.code!, slot * this.corrBytes);
      if (prep.exact) this.exactCopies.set(id, Float32Array.from(vector));
      else this.exactCopies.delete(id);
    }
    // An alias label (an id of 2^32 or more, see id-alias.ts) is no id: it does not move the auto ids.
    if (advanceAuto && id >= this.nextAuto) this.nextAuto = id + 1;
    return prep.isNew;
  }

  /** Removes item `id`. Returns false if it was not there. */
  remove(id: number): boolean {
    const slot = this.idToSlot.get(id);
    if (slot < 0) return false;
    this.assertMutable();
    this.graph!.markDelete(slot);
    this.version++;
    this.idToSlot.delete(id);
    this.texts.free(slot);
    this.freeSlots.push(slot);
    this.exactCopies.delete(id);
    return true;
  }

  /** The item's slot (its bit in a filter bitset), or -1. */
  slotOf(id: number): number {
    return this.idToSlot.get(id);
  }

  /** The id at a live slot. */
  idAt(slot: number): number {
    return this.slotIds[slot]!;
  }

  /** One past the highest slot ever used: the size a bitset over slots needs. */
  get slotLimit(): number {
    return this.slotTop;
  }

  /** The live items as a bitset over slots. */
  liveBits(): Bitset {
    const b = emptyBits(this.slotTop);
    for (let s = 0; s < this.slotTop; s++) if (this.texts.has(s)) setBit(b, s);
    return b;
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
   * answered. Distances: l2 = squared L2, cosine = 1 − cos, ip = 1 − dot (float32, as the graph).
   * k < 1 or an empty index → []; k > size → every (matching) item.
   * Errors: `vector dimension does not match`, `invalid embedding`, the cosine zero-vector error.
   *
   * Unfiltered: HNSW search with ef = max(ef, k) (if that returns fewer than min(k, size) items,
   * an exhaustive graph walk, then an exact scan as the last resort).
   * Filtered: the matching set is a bitset over slots (`allow`, or `filter` evaluated once per
   * item), so the number of matches m is exact. The cost model (chooseFilteredPath) picks an exact
   * scan over the matches (selective filters) or the graph search with a bit test inside the walk
   * (hnswlib keeps walking until ef matching items are found: the K best matching items, not "K
   * nearest, then filtered"); a graph search that returns fewer than min(k, m) falls back to the scan.
   * Synchronous: the search runs on this thread (small indexes); stores use knnExplainAsync.
   */
  knnExplain(query: Float32Array, k: number, opts: KnnOptions = {}): KnnExplain {
    const plan = this.planKnn(query, k, opts);
    if (plan.done) return plan.done;
    const run = (ef: number, exact: boolean): Hits => plan.graph.search(plan.q, plan.k, ef, exact, plan.allow);
    return finishKnn(plan, (ef, exact) => this.toHits(run(ef, exact)));
  }

  /** knnExplain with the searches on the engine's searcher threads (run it while no mutation of this index runs). */
  async knnExplainAsync(query: Float32Array, k: number, opts: KnnOptions = {}): Promise<KnnExplain> {
    const plan = this.planKnn(query, k, opts);
    if (plan.done) return plan.done;
    const graph = plan.graph;
    return finishKnnAsync(plan, async (ef, exact) => this.toHits(await graph.searchAsync(plan.q, plan.k, ef, exact, plan.allow)));
  }

  private toHits(pairs: Hits): KnnHit[] {
    const hits = new Array<KnnHit>(pairs.length >> 1);
    for (let i = 0; i < hits.length; i++) hits[i] = { id: this.slotIds[pairs[2 * i]!]!, distance: pairs[2 * i + 1]! };
    return hits;
  }

  /** Checks the query and settles what does not need the graph; the rest is a KnnPlan. */
  private planKnn(query: Float32Array, k: number, opts: KnnOptions): KnnPlan {
    checkFinite(query);
    if (this._dim !== undefined && query.length !== this._dim) throw dimensionMismatch(this._dim, query.length);
    if (opts.ef !== undefined && (!Number.isInteger(opts.ef) || opts.ef < 1)) {
      throw new CommandError('invalid ef: must be a positive integer');
    }
    const q = this.queryPoint(query);
    const n = this.idToSlot.size;
    const strategy = opts.strategy ?? 'auto';
    // Every plan has the same shape (one hidden class: this runs once per query).
    const plan = (kk: number, ef: number, allow?: Bitset, matched?: number, index?: string, done?: KnnExplain): KnnPlan =>
      ({ q, graph: this.graph!, n, k: kk, ef, strategy, allow, matched, index, done });
    if (!(k >= 1) || n === 0 || this.graph === null) return plan(0, 0, undefined, undefined, undefined, { hits: [], path: 'hnsw' });
    const kk = Math.min(Math.floor(k), n);
    const ef = Math.max(opts.ef ?? this._ef, kk);
    if (opts.allow === undefined && opts.filter === undefined) return plan(kk, ef);
    let allow: Bitset;
    let index = opts.index ?? 'scan';
    if (opts.allow !== undefined) {
      allow = and(opts.allow, this.liveMask()); // a shorter set allows nothing past its end
    } else {
      allow = emptyBits(this.slotTop);
      const f = opts.filter!;
      for (let s = 0; s < this.slotTop; s++) if (this.texts.has(s) && f(this.slotIds[s]!)) setBit(allow, s);
      index = 'scan';
    }
    const matched = popcount(allow);
    if (matched === 0) return plan(0, ef, allow, matched, index, { hits: [], path: 'exact', reason: 'selective-filter', matched, index });
    return plan(Math.min(kk, matched), ef, allow, matched, index);
  }

  /** The live items as a bitset over slots, cached until the next add/remove: do not modify it. */
  liveMask(): Bitset {
    if (this.liveCache === null || this.liveCacheVersion !== this.version) {
      this.liveCache = this.liveBits();
      this.liveCacheVersion = this.version;
    }
    return this.liveCache;
  }

  private liveCache: Bitset | null = null;
  private liveCacheVersion = -1;
  /** Bumped by every change of which slots are live. */
  private version = 0;

  // --- introspection -------------------------------------------------------------------------

  /**
   * Estimated resident memory of this index in bytes: hnswlib's level-0 block, upper levels,
   * per-slot bookkeeping and label table, plus our JS maps, texts and cosine corrections.
   */
  memoryBytes(): number {
    let bytes = 256;
    const n = this.idToSlot.size;
    if (this.graph !== null && this._dim !== undefined) {
      const count = this.graph.currentCount();
      const cap = this.graph.capacity();
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
      deleted: this.graph ? this.graph.deletedCount() : 0,
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
   * every item's slot, id and text, the cosine norms/corrections, the auto-id counter and the params.
   *
   * Consistency: from onCapture until the graph and the items are captured the index is
   * frozen (add/remove throw; searches go on), so the snapshot is one point in time. The graph is
   * written into the buffer on an engine thread while the items are written here.
   *
   * Layout (little-endian): "RLVI" | u16 version | u16 0 | u32 headerLen | header JSON |
   * graph bytes | per item: [version 2: u32 slot,] u32 id, u32 textLen, text (UTF-8) | cosine: per
   * item f64 norm + ceil(dim/4) correction bytes | u32 exactCount, per exact copy: u32 id, dim × f32.
   * Version 1 (graph labelled by id, items in slot order) is read as well.
   */
  async serialize(opts: SnapshotOptions = {}): Promise<Buffer> {
    this.assertMutable(); // one snapshot at a time
    let frozen = false;
    try {
      while (this.frozen) await this.whenIdle(); // another one started meanwhile
      this.freeze();
      frozen = true;
      opts.onCapture?.();
      const graph = this.graph;
      const graphBytes = graph?.savedSize() ?? 0;
      const itemBytes = await this.itemsSize();
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
          slotTop: this.slotTop,
        } satisfies SnapshotHeader),
        'utf8',
      );
      const base = opts.frame?.head ?? 0;
      const tail = opts.frame?.tail();
      const graphAt = base + 12 + header.length;
      const out = await snapshotBuffer(graphAt + graphBytes + itemBytes + (tail?.length ?? 0));
      out.fill(0, 0, base);
      out.write(MAGIC, base, 'latin1');
      out.writeUInt16LE(SNAPSHOT_VERSION, base + 4);
      out.writeUInt16LE(0, base + 6);
      out.writeUInt32LE(header.length, base + 8);
      header.copy(out, base + 12);
      // The graph is written into place on an engine thread while the items are written here.
      const saved = graph !== null ? graph.saveIntoAsync(out, graphAt) : Promise.resolve();
      saved.catch(() => undefined); // awaited below; this only marks it handled meanwhile
      try {
        await this.writeItems(out, graphAt + graphBytes, itemBytes);
      } catch (e) {
        await saved.catch(() => undefined); // the graph stays frozen until its save is done
        throw e;
      }
      await saved;
      tail?.copy(out, graphAt + graphBytes + itemBytes);
      return out;
    } finally {
      if (frozen) this.thaw();
    }
  }

  /** True while a snapshot holds the index (mutations must wait: whenIdle). */
  get frozen(): boolean {
    return this.idleWaiters !== null;
  }

  /** Resolves once no snapshot holds the index. */
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

  /** The graph is being written on another thread: changing it now could corrupt or crash. */
  private assertMutable(): void {
    if (this.idleWaiters !== null) {
      throw new Error('vector index is frozen by a background snapshot: await whenIdle() before add/remove');
    }
  }

  /**
   * Rebuilds an index from serialize()'s Buffer: the graph is loaded as saved (no rebuild; read
   * on an engine thread while the items are decoded here), and ef, items, auto-id counter and
   * capacity are restored. A malformed buffer → Error (`corrupt vector index snapshot: ...`).
   */
  static async deserialize(buf: Buffer): Promise<VectorIndex> {
    const bad = (why: string) => new Error(`corrupt vector index snapshot: ${why}`);
    if (buf.length < 12 || buf.toString('latin1', 0, 4) !== MAGIC) throw bad('bad magic');
    const version = buf.readUInt16LE(4);
    if (version !== 1 && version !== SNAPSHOT_VERSION) throw bad(`unsupported version ${version}`);
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

    let graph: Promise<NativeGraph | null> = Promise.resolve(null);
    if (h.graphBytes > 0) {
      // read on an engine thread while the items are decoded here
      graph = (async () => {
        const g = newGraph(innerSpace(index.space), h.dim!);
        try {
          await g.loadFromAsync(buf, graphStart, itemsStart);
        } catch (e) {
          throw bad(`graph: ${(e as Error).message}`);
        }
        return g;
      })();
      graph.catch(() => undefined); // awaited below; this only marks it handled meanwhile
    }
    try {
      await index.decodeItems(buf.subarray(itemsStart), h, version, bad);
    } catch (e) {
      await graph.catch(() => undefined);
      throw e;
    }
    const g = await graph;
    if (g !== null) {
      if (g.currentCount() < index.idToSlot.size) throw bad('graph smaller than items');
      if (version === 1) {
        // Format 1 labelled the graph by item id; this engine labels it by slot.
        const from = new Uint32Array(index.slotTop);
        const to = new Uint32Array(index.slotTop);
        for (let s = 0; s < index.slotTop; s++) {
          from[s] = index.slotIds[s]!;
          to[s] = s;
        }
        try {
          g.relabel(from, to);
        } catch (e) {
          throw bad((e as Error).message);
        }
      }
      // loadFromAsync gave it its element count as the capacity: it grows again on demand.
      index.graph = g;
    }
    index.nextAuto = h.nextId;
    return index;
  }

  // --- internals -----------------------------------------------------------------------------

  private setDim(dim: number): void {
    this._dim = dim;
    this.corrBytes = this.space === 'cosine' ? Math.ceil(dim / 4) : 0;
    this.growSlots(Math.max(this.slotIds.length, 16));
  }

  private ensureGraph(): NativeGraph {
    if (this.graph === null) {
      const g = newGraph(innerSpace(this.space), this._dim!);
      g.init(Math.min(this.maxElements, INITIAL_CAPACITY_LIMIT), this.m, this.efConstruction);
      this.graph = g;
    }
    return this.graph;
  }

  /** The slot the new item after the next `ahead` ones will take (allocSlot takes them in this order). */
  private peekSlot(ahead = 0): number {
    const free = this.freeSlots.length;
    return ahead < free ? this.freeSlots[free - 1 - ahead]! : this.slotTop + (ahead - free);
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
    this.version++;
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
    const stored = this.graph!.getPoint(slot);
    if (this.space !== 'cosine') return stored;
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

  /** The query as the graph sees it (unit length in cosine space). */
  private queryPoint(query: Float32Array): Float32Array {
    if (this.space !== 'cosine') return query;
    const nrm = norm2(query);
    if (nrm === 0 || !Number.isFinite(nrm)) throw new CommandError(ZERO_VECTOR_COSINE);
    const q = new Float32Array(query.length);
    for (let i = 0; i < query.length; i++) q[i] = Math.fround(query[i]! / nrm);
    return q;
  }

  private async itemsSize(): Promise<number> {
    let size = 4;
    for (let s = 0; s < this.slotTop; s++) {
      if ((s & 31) === 31 && sliceSpent()) await ioTurn();
      if (this.texts.has(s)) size += 12 + this.texts.byteLengthOf(s);
    }
    if (this.space === 'cosine') {
      size += this.idToSlot.size * (8 + this.corrBytes) + this.exactCopies.size * (4 + 4 * (this._dim ?? 0));
    }
    return size;
  }

  /** Writes the items section (itemsSize() bytes) at `at`, in slices of the event loop's turns (io-slice). */
  private async writeItems(buf: Buffer, at: number, size: number): Promise<void> {
    const cosine = this.space === 'cosine';
    let o = at;
    for (let s = 0; s < this.slotTop; s++) {
      if ((s & 31) === 31 && sliceSpent()) await ioTurn();
      if (!this.texts.has(s)) continue;
      buf.writeUInt32LE(s, o);
      buf.writeUInt32LE(this.slotIds[s]!, o + 4);
      const len = this.texts.copyTo(s, buf, o + 12);
      buf.writeUInt32LE(len, o + 8);
      o += 12 + len;
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

  /** Decodes the items section in slices of the event loop's turns (big stores load while clients are served). */
  private async decodeItems(buf: Buffer, h: SnapshotHeader, version: number, bad: (why: string) => Error): Promise<void> {
    const n = h.items;
    if (!Number.isInteger(n) || n < 0) throw bad('bad item count');
    const top = version === 1 ? n : h.slotTop;
    if (!Number.isInteger(top) || top < n || top > MAX_ID + 1) throw bad('bad slot count');
    const cosine = this.space === 'cosine';
    if (top > this.slotIds.length) this.growSlots(top);
    this.texts.ensureSlots(top, true);
    this.idToSlot = new IdTable(n); // sized once: no rehash garbage while loading
    const perItem = version === 1 ? 8 : 12;
    const extra = cosine ? n * (8 + this.corrBytes) + h.exact * (4 + 4 * (this._dim ?? 0)) : 0;
    this.texts.sizeHint(buf.length - 4 - perItem * n - extra);
    let o = 0;
    const need = (bytes: number) => {
      if (o + bytes > buf.length) throw bad('truncated items');
    };
    const order = new Uint32Array(n); // the slot of the i-th item
    let last = -1;
    for (let i = 0; i < n; i++) {
      if ((i & 31) === 31 && sliceSpent()) await ioTurn();
      need(perItem);
      let s = i;
      if (version !== 1) {
        s = buf.readUInt32LE(o);
        o += 4;
        if (s <= last || s >= top) throw bad('bad slot');
        last = s;
      }
      const id = buf.readUInt32LE(o);
      const len = buf.readUInt32LE(o + 4);
      o += 8;
      need(len);
      this.texts.putRange(s, buf, o, o + len);
      o += len;
      this.slotIds[s] = id;
      this.idToSlot.set(id, s);
      order[i] = s;
    }
    this.slotTop = top;
    if (this.idToSlot.size !== n) throw bad('duplicate ids');
    for (let s = top - 1; s >= 0; s--) if (!this.texts.has(s)) this.freeSlots.push(s);
    if (cosine) {
      for (let i = 0; i < n; i++) {
        need(8 + this.corrBytes);
        const s = order[i]!;
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
    this.version++;
  }
}

const MAGIC = 'RLVI';
/** 2: items carry their slot, and the graph is labelled by slot. */
const SNAPSHOT_VERSION = 2;

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
  /** Version 2: one past the highest slot (free slots below it are reused first). */
  slotTop: number;
}

/** Adds on their way to one engine task (VectorIndex.newBatch). */
export interface AddBatch {
  readonly items: Array<{ id: number; vector: Float32Array; data: string | Uint8Array; advanceAuto: boolean }>;
  readonly preps: AddPrep[];
  /** New items among them (each takes the next free slot). */
  fresh: number;
  /** The index's next auto id once the items are in. */
  nextAutoId: number;
}

interface AddPrep {
  graph: NativeGraph;
  point: Float32Array;
  slot: number;
  isNew: boolean;
  nrm: number;
  exact: boolean;
  code: Uint8Array | undefined;
}

interface KnnPlan {
  q: Float32Array;
  graph: NativeGraph;
  n: number;
  k: number;
  ef: number;
  strategy: 'auto' | 'hnsw' | 'exact';
  allow?: Bitset;
  matched?: number;
  index?: string;
  done?: KnnExplain;
}

type Search = (ef: number, exact: boolean) => KnnHit[];

/** The path logic of knnExplain over a search function (sync). */
function finishKnn(p: KnnPlan, search: Search): KnnExplain {
  const steps = knnSteps(p);
  let r = steps.next();
  while (!r.done) r = steps.next(search(r.value.ef, r.value.exact));
  return r.value;
}

async function finishKnnAsync(p: KnnPlan, search: (ef: number, exact: boolean) => Promise<KnnHit[]>): Promise<KnnExplain> {
  const steps = knnSteps(p);
  let r = steps.next();
  while (!r.done) r = steps.next(await search(r.value.ef, r.value.exact));
  return r.value;
}

/** The searches a query needs, in order: yields each search, receives its hits. */
function* knnSteps(p: KnnPlan): Generator<{ ef: number; exact: boolean }, KnnExplain, KnnHit[]> {
  const filtered = p.allow !== undefined;
  const extra = filtered ? { matched: p.matched, index: p.index } : {};
  if (p.strategy === 'exact') return { hits: yield { ef: 0, exact: true }, path: 'exact', reason: 'forced', ...extra };
  if (filtered && p.strategy === 'auto' && chooseFilteredPath(p.n, p.q.length, p.ef, p.matched!) === 'exact') {
    return { hits: yield { ef: 0, exact: true }, path: 'exact', reason: 'selective-filter', ...extra };
  }
  const hits = yield { ef: p.ef, exact: false };
  if (hits.length >= p.k) return { hits, path: 'hnsw', ef: p.ef, ...extra };
  if (!filtered) {
    // Short (tiny or heavily churned graphs): an exhaustive walk is far cheaper than a scan.
    const wide = Math.max(p.ef, p.n);
    const again = yield { ef: wide, exact: false };
    if (again.length >= p.k) return { hits: again, path: 'hnsw', ef: wide };
    return { hits: yield { ef: 0, exact: true }, path: 'exact', reason: 'hnsw-short', ef: wide };
  }
  return { hits: yield { ef: 0, exact: true }, path: 'exact', reason: 'hnsw-short', ef: p.ef, ...extra };
}

