import { describe, expect, it } from 'vitest';
import { CommandError } from '../src/errors.js';
import { VectorIndex, type Space, chooseFilteredPath } from '../src/vector/index.js';
import { bruteForce, clustered, distance, recall, rng } from '../harness/vector-data.js';
import type { NativeGraph } from '../src/vector/native.js';

const SPACES: Space[] = ['l2', 'cosine', 'ip'];

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CommandError);
    return (e as CommandError).message;
  }
  return '<no error>';
}

function build(space: Space, n: number, dim: number, clusters: number, seed = 3, params: Record<string, number> = {}) {
  const set = clustered(n, dim, clusters, seed);
  const index = new VectorIndex({ space, ...params });
  for (let i = 0; i < n; i++) index.add(i, set.row(i), `item ${i}`);
  return { set, index };
}

function close(a: number, b: number, tol = 1e-4): boolean {
  return Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));
}

describe.each(SPACES)('space %s', (space) => {
  const { set, index } = build(space, 2000, 16, 10);
  const queries = set.queries(25, 99);

  it('distances equal brute force, nearest first', () => {
    for (const q of queries) {
      const truth = bruteForce(set, space, q, 10);
      const hits = index.knn(q, 10, { ef: 400 });
      expect(hits.length).toBe(10);
      for (let i = 0; i < hits.length; i++) {
        // the distance of each returned item is the true distance of that item ...
        expect(close(hits[i]!.distance, distance(space, q, set.row(hits[i]!.id)))).toBe(true);
        // ... the ranking equals brute force ...
        expect(close(hits[i]!.distance, truth[i]!.distance)).toBe(true);
        if (i > 0) expect(hits[i]!.distance).toBeGreaterThanOrEqual(hits[i - 1]!.distance);
      }
      expect(recall(hits, truth)).toBeGreaterThanOrEqual(0.9); // ties may swap ids
      // the exact strategy is brute force
      const exact = index.knnExplain(q, 10, { strategy: 'exact' });
      expect(exact.path).toBe('exact');
      expect(exact.hits.map((h) => h.id)).toEqual(truth.map((h) => h.id));
    }
  });

  it('recall@10 >= 0.95 with the default ef on clustered data (5k x 32, 20 clusters)', () => {
    const big = build(space, 5000, 32, 20, 11);
    const qs = big.set.queries(100, 5);
    let r = 0;
    for (const q of qs) {
      const e = big.index.knnExplain(q, 10);
      expect(e.path).toBe('hnsw');
      r += recall(e.hits, bruteForce(big.set, space, q, 10));
    }
    expect(r / qs.length).toBeGreaterThanOrEqual(0.95);
  });

  it('GET returns the vector exactly as added', () => {
    for (let i = 0; i < 2000; i += 37) {
      const g = index.get(i)!;
      expect(g.data).toBe(`item ${i}`);
      expect(Array.from(g.vector)).toEqual(Array.from(set.row(i)));
    }
    expect(index.get(5000)).toBeNull();
  });

  it('filtered KNN equals brute force over the matching subset (50% and 0.1%)', () => {
    const big = build(space, 5000, 32, 20, 13);
    const qs = big.set.queries(20, 17);
    // 50%: graph walk with the filter inside
    for (const q of qs) {
      const e = big.index.knnExplain(q, 10, { filter: (id) => id % 2 === 0 });
      expect(e.path).toBe('hnsw');
      const truth = bruteForce(big.set, space, q, 10, (row) => row % 2 === 0);
      expect(e.hits.every((h) => h.id % 2 === 0)).toBe(true);
      expect(recall(e.hits, truth)).toBeGreaterThanOrEqual(0.9);
      for (const h of e.hits) expect(close(h.distance, distance(space, q, big.set.row(h.id)))).toBe(true);
    }
    // 0.1% (5 of 5000): exact scan, exactly brute force, fewer than K = every match
    const sel = (id: number) => id % 1000 === 7;
    for (const q of qs) {
      const e = big.index.knnExplain(q, 10, { filter: sel });
      expect(e.path).toBe('exact');
      expect(e.reason).toBe('selective-filter');
      const truth = bruteForce(big.set, space, q, 10, sel);
      expect(truth.length).toBe(5);
      expect(e.hits.map((h) => h.id)).toEqual(truth.map((h) => h.id));
      for (let i = 0; i < 5; i++) expect(close(e.hits[i]!.distance, truth[i]!.distance)).toBe(true);
    }
    // forcing the graph with a selective filter still returns the K best matches
    for (const q of qs.slice(0, 5)) {
      const e = big.index.knnExplain(q, 3, { filter: sel, strategy: 'hnsw' });
      expect(e.hits.map((h) => h.id)).toEqual(bruteForce(big.set, space, q, 3, sel).map((h) => h.id));
    }
    // no match at all
    expect(big.index.knn(qs[0]!, 10, { filter: () => false })).toEqual([]);
  });
});

describe('ids', () => {
  const v = (x: number) => new Float32Array([x, 1, 0]);

  it('auto ids start at 1 and never overwrite explicit ids', () => {
    const ix = new VectorIndex();
    expect(ix.nextAutoId).toBe(1);
    const a = ix.nextId();
    expect(a).toBe(1);
    ix.add(a, v(1), 'auto-1');
    ix.add(2, v(2), 'explicit-2'); // the original's bug: the next auto id was 2
    const b = ix.nextId();
    expect(b).toBe(3);
    ix.add(b, v(3), 'auto-3');
    ix.add(100, v(4), 'explicit-100');
    expect(ix.nextId()).toBe(101);
    ix.add(50, v(5), 'explicit-50'); // below the counter: the counter stays
    expect(ix.nextId()).toBe(102);
    expect(ix.get(2)!.data).toBe('explicit-2');
    expect(ix.get(100)!.data).toBe('explicit-100');
    // removed ids still count: the counter never goes back
    ix.remove(100);
    expect(ix.nextId()).toBe(103);
    ix.ensureNextId(500);
    expect(ix.nextId()).toBe(500);
    ix.ensureNextId(7);
    expect(ix.nextAutoId).toBe(501);
  });

  it('same id again updates in place', () => {
    const ix = new VectorIndex({ space: 'l2' });
    expect(ix.add(1, v(1), 'a')).toBe(true);
    expect(ix.add(2, v(10), 'b')).toBe(true);
    expect(ix.add(1, v(20), 'c')).toBe(false);
    expect(ix.size).toBe(2);
    expect(ix.get(1)).toEqual({ data: 'c', vector: v(20) });
    expect(ix.knn(v(20), 1)[0]).toEqual({ id: 1, distance: 0 });
    expect(ix.stats().capacity).toBeGreaterThanOrEqual(2);
  });

  it('uint32 bounds', () => {
    const ix = new VectorIndex();
    ix.add(0, v(0), 'zero');
    ix.add(4294967295, v(1), 'max');
    expect(ix.get(0)!.data).toBe('zero');
    expect(ix.get(4294967295)!.data).toBe('max');
    expect(ix.knn(v(1), 1)[0]!.id).toBe(4294967295);
    for (const bad of [4294967296, -1, 1.5, NaN, Infinity, 2 ** 53]) {
      expect(errorOf(() => ix.add(bad, v(0), 'x'))).toBe('invalid id');
    }
    // every id below the max was "passed": auto ids are exhausted rather than reused
    expect(errorOf(() => ix.nextId())).toMatch(/^no more auto ids available/);
  });

  it('REM then re-add; churn reuses graph slots', () => {
    const ix = new VectorIndex({ space: 'l2', maxElements: 64 });
    const set = clustered(64, 8, 4, 21);
    for (let i = 0; i < 64; i++) ix.add(i + 1, set.row(i), `d${i + 1}`);
    expect(ix.remove(5)).toBe(true);
    expect(ix.remove(5)).toBe(false);
    expect(ix.remove(999)).toBe(false);
    expect(ix.has(5)).toBe(false);
    expect(ix.get(5)).toBeNull();
    expect(ix.size).toBe(63);
    expect(ix.knn(set.row(4), 64).some((h) => h.id === 5)).toBe(false);
    expect(ix.knn(set.row(4), 100).length).toBe(63);

    // re-add while its old slot is still free: revived and updated
    ix.add(5, set.row(10), 'again');
    expect(ix.get(5)).toEqual({ data: 'again', vector: Float32Array.from(set.row(10)) });
    expect(ix.size).toBe(64);
    expect(ix.stats().deleted).toBe(0);

    // remove 10, add 10 new ids: the freed slots are reused, capacity does not grow
    const cap = ix.capacity;
    for (let i = 1; i <= 10; i++) ix.remove(i);
    expect(ix.stats().deleted).toBe(10);
    for (let i = 0; i < 10; i++) ix.add(1000 + i, set.row(i), `new${i}`);
    expect(ix.stats().deleted).toBe(0);
    expect(ix.capacity).toBe(cap);
    // a removed id whose slot was taken by another id can come back too
    ix.add(3, set.row(3), 'back');
    expect(ix.get(3)!.data).toBe('back');
    expect(ix.get(1005)!.data).toBe('new5');
    expect(ix.size).toBe(65);
    const ids = [...ix.ids()].sort((a, b) => a - b);
    expect(ids.length).toBe(65);
    // every live item is findable at distance 0 and removed ones are not
    for (const id of ids) {
      const g = ix.get(id)!;
      expect(ix.knn(g.vector, 1, { ef: 200 })[0]!.distance).toBe(0);
    }
    const all = new Set(ix.knn(set.row(0), 1000).map((h) => h.id));
    for (const gone of [1, 2, 4, 6, 7, 8, 9, 10]) expect(all.has(gone)).toBe(false);
  });

  it('grows far past max_elements', () => {
    const ix = new VectorIndex({ space: 'l2', maxElements: 10 });
    const set = clustered(3000, 8, 10, 23);
    for (let i = 0; i < 3000; i++) ix.add(i, set.row(i), `g${i}`);
    expect(ix.size).toBe(3000);
    expect(ix.capacity).toBeGreaterThanOrEqual(3000);
    expect(ix.capacity).toBeLessThanOrEqual(3000 + 1024);
    for (let i = 0; i < 3000; i += 97) expect(ix.get(i)!.data).toBe(`g${i}`);
    let r = 0;
    const qs = set.queries(20);
    for (const q of qs) r += recall(ix.knn(q, 10), bruteForce(set, 'l2', q, 10));
    expect(r / qs.length).toBeGreaterThanOrEqual(0.95);
  });
});

describe('batched adds (one engine task for several inserts)', () => {
  /**
   * The same random sequence of adds (auto ids, explicit ids jumping the counter, updates, re-adds
   * of removed ids, bad vectors) and removes, applied one by one to A and in batches to B, as the
   * object manager does (auto ids from the batch's own counter, a new batch at a repeated id).
   */
  it.each(['l2', 'cosine'] as Space[])('end exactly as the same adds one by one (%s)', async (space) => {
    const dim = 6;
    const seq = new VectorIndex({ space, maxElements: 16 });
    const bat = new VectorIndex({ space, maxElements: 16 });
    const rand = rng(77);
    const vector = (): Float32Array => {
      const r = rand();
      if (r < 0.03) return new Float32Array(dim + 1); // wrong dimension
      if (r < 0.05) return new Float32Array(dim).fill(Number.NaN);
      if (r < 0.07) return new Float32Array(dim); // zero: an error in cosine space only
      return Float32Array.from({ length: dim }, () => rand() * 2 - 1);
    };
    type Op = { kind: 'add'; id: number | 'auto'; hint: number; vector: Float32Array; data: string } | { kind: 'rem'; id: number };
    const ops: Op[] = [];
    for (let i = 0; i < 600; i++) {
      const r = rand();
      if (r < 0.12) ops.push({ kind: 'rem', id: 1 + Math.floor(rand() * 120) });
      else if (r < 0.5) ops.push({ kind: 'add', id: 'auto', hint: 1 + Math.floor(rand() * 150), vector: vector(), data: `d${i}` });
      else ops.push({ kind: 'add', id: 1 + Math.floor(rand() * (r < 0.55 ? 400 : 120)), hint: 0, vector: vector(), data: `d${i}` });
    }
    const seqOut: unknown[] = [];
    for (const op of ops) {
      if (op.kind === 'rem') {
        seqOut.push(seq.remove(op.id));
        continue;
      }
      const id = op.id === 'auto' ? Math.max(seq.nextAutoId, op.hint) : op.id;
      try {
        seqOut.push([id, await seq.addAsync(id, op.vector, op.data)]);
      } catch (e) {
        expect(e).toBeInstanceOf(CommandError);
        seqOut.push([id, (e as Error).message]);
      }
    }
    const batOut: unknown[] = [];
    let batches = 0;
    for (let i = 0; i < ops.length; ) {
      const op = ops[i]!;
      if (op.kind === 'rem') {
        batOut.push(bat.remove(op.id));
        i++;
        continue;
      }
      const b = bat.newBatch();
      const taken: Array<{ id: number; error?: Error }> = [];
      for (; i < ops.length && taken.length < 1 + Math.floor(rand() * 12); i++) {
        const o = ops[i]!;
        if (o.kind !== 'add') break;
        const id = o.id === 'auto' ? Math.max(b.nextAutoId, o.hint) : o.id;
        if (bat.inBatch(b, id)) break;
        try {
          bat.batchAdd(b, id, o.vector, o.data);
          taken.push({ id });
        } catch (e) {
          taken.push({ id, error: e as Error });
        }
      }
      const results = await bat.runBatch(b);
      batches++;
      let k = 0;
      for (const t of taken) batOut.push([t.id, t.error ? t.error.message : results[k++]]);
    }
    expect(batches).toBeLessThan(ops.length / 3);
    expect(batOut).toEqual(seqOut);
    expect(bat.size).toBe(seq.size);
    expect(bat.nextAutoId).toBe(seq.nextAutoId);
    expect(bat.capacity).toBe(seq.capacity);
    for (let id = 0; id <= 410; id++) {
      expect(bat.slotOf(id)).toBe(seq.slotOf(id));
      expect(bat.get(id)).toEqual(seq.get(id));
    }
    // the same graph: inserted in the same order from the same seed
    for (let q = 0; q < 20; q++) {
      const v = Float32Array.from({ length: dim }, () => rand() * 2 - 1);
      expect(bat.knn(v, 10)).toEqual(seq.knn(v, 10));
    }
  });

  it('an engine failure inside a batch keeps the items before it and leaves the ones from it on out', async () => {
    const ix = new VectorIndex({ space: 'l2' });
    const v = (x: number) => new Float32Array([x, 1, 0]);
    ix.add(1, v(1), 'one');
    // The engine inserts the first two points, then fails (a native method cannot be replaced: shadowed).
    const graph = (ix as unknown as { graph: NativeGraph }).graph;
    const original = graph.addBatchAsync;
    Object.defineProperty(graph, 'addBatchAsync', {
      configurable: true,
      value: async (points: Float32Array, labels: Uint32Array, max: number) => {
        const done = await original.call(graph, points.subarray(0, 2 * 3), labels.subarray(0, 2), max);
        return Object.assign(new Error('injected engine failure'), { inserted: done as number });
      },
    });
    const b = ix.newBatch();
    try {
      for (const id of [2, 1, 3, 4]) ix.batchAdd(b, id, v(id * 10), `new ${id}`);
      const out = await ix.runBatch(b);
      expect(out.slice(0, 2)).toEqual([true, false]);
      for (const e of out.slice(2)) expect((e as Error).message).toBe('injected engine failure');
    } finally {
      delete (graph as unknown as Record<string, unknown>).addBatchAsync;
    }
    expect(ix.size).toBe(2);
    expect(ix.get(1)).toEqual({ data: 'new 1', vector: v(10) });
    expect(ix.get(3)).toBeNull();
    expect(ix.knn(v(30), 5).map((h) => h.id).sort()).toEqual([1, 2]);
    // the slots the failed items were to take are free for the next ones
    const b2 = ix.newBatch();
    for (const id of [3, 4]) ix.batchAdd(b2, id, v(id * 10), `again ${id}`);
    expect(await ix.runBatch(b2)).toEqual([true, true]);
    expect(ix.get(4)).toEqual({ data: 'again 4', vector: v(40) });
    expect(ix.knn(v(40), 1)[0]).toEqual({ id: 4, distance: 0 });
  });
});

describe('dimensions and inputs', () => {
  it('the first vector fixes the dimension; mismatches on add and query are errors', () => {
    const ix = new VectorIndex();
    expect(ix.dim).toBeUndefined();
    expect(ix.knn(new Float32Array([1, 2, 3]), 5)).toEqual([]); // empty store
    ix.add(1, new Float32Array([1, 2, 3, 4]), 'a');
    expect(ix.dim).toBe(4);
    expect(errorOf(() => ix.add(2, new Float32Array([1, 2, 3]), 'b'))).toMatch(/^vector dimension does not match: store has \d+, got \d+$/);
    expect(errorOf(() => ix.add(2, new Float32Array(5), 'b'))).toMatch(/^vector dimension does not match: store has \d+, got \d+$/);
    expect(errorOf(() => ix.knn(new Float32Array([1, 2, 3]), 1))).toMatch(/^vector dimension does not match: store has \d+, got \d+$/);
    expect(ix.size).toBe(1);
    expect(ix.nextAutoId).toBe(2); // failed adds do not move the counter
    // removing everything keeps the dimension
    ix.remove(1);
    expect(errorOf(() => ix.add(3, new Float32Array(2), 'c'))).toMatch(/^vector dimension does not match: store has \d+, got \d+$/);
    expect(ix.knn(new Float32Array(4), 3)).toEqual([]);
  });

  it('a dim param fixes the dimension up front', () => {
    const ix = new VectorIndex({ dim: 3 });
    expect(ix.dim).toBe(3);
    expect(errorOf(() => ix.add(1, new Float32Array(4), 'x'))).toMatch(/^vector dimension does not match: store has \d+, got \d+$/);
    expect(errorOf(() => ix.knn(new Float32Array(4), 1))).toMatch(/^vector dimension does not match: store has \d+, got \d+$/);
    ix.add(1, new Float32Array([1, 2, 3]), 'x');
  });

  it('rejects non-finite and empty vectors', () => {
    const ix = new VectorIndex();
    expect(errorOf(() => ix.add(1, new Float32Array(0), 'x'))).toBe('invalid embedding: size is 0');
    expect(errorOf(() => ix.add(1, new Float32Array([1, NaN]), 'x'))).toBe('invalid embedding');
    expect(errorOf(() => ix.add(1, new Float32Array([Infinity, 1]), 'x'))).toBe('invalid embedding');
    expect(ix.dim).toBeUndefined();
    ix.add(1, new Float32Array([1, 2]), 'x');
    expect(errorOf(() => ix.knn(new Float32Array([1, NaN]), 1))).toBe('invalid embedding');
    expect(errorOf(() => ix.knn(new Float32Array(0), 1))).toBe('invalid embedding: size is 0');
  });

  it('k larger than the store returns everything; k < 1 returns nothing', () => {
    const ix = new VectorIndex({ space: 'ip' });
    for (let i = 0; i < 7; i++) ix.add(i, new Float32Array([i, 1]), `${i}`);
    const all = ix.knn(new Float32Array([1, 0]), 100);
    expect(all.map((h) => h.id)).toEqual([6, 5, 4, 3, 2, 1, 0]);
    expect(all[0]!.distance).toBeCloseTo(1 - 6, 5);
    expect(ix.knn(new Float32Array([1, 0]), 0)).toEqual([]);
  });

  it('cosine: zero vectors are rejected, scale does not matter, GET is exact', () => {
    const ix = new VectorIndex({ space: 'cosine' });
    expect(errorOf(() => ix.add(1, new Float32Array([0, 0, 0]), 'z'))).toMatch(/^invalid embedding: zero vector/);
    ix.add(1, new Float32Array([1, 0, 0]), 'x');
    ix.add(2, new Float32Array([0, 5, 0]), 'y');
    ix.add(3, new Float32Array([3, 3, 0]), 'xy');
    const hits = ix.knn(new Float32Array([100, 0, 0]), 3);
    expect(hits.map((h) => h.id)).toEqual([1, 3, 2]);
    expect(hits[0]!.distance).toBeCloseTo(0, 6);
    expect(hits[1]!.distance).toBeCloseTo(1 - Math.SQRT1_2, 6);
    expect(hits[2]!.distance).toBeCloseTo(1, 6);
    expect(errorOf(() => ix.knn(new Float32Array(3), 1))).toMatch(/^invalid embedding: zero vector/);

    // exact round trip over awkward values: random bits, mixed magnitudes, subnormals
    const r = rng(5);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (const dim of [1, 2, 3, 5, 8, 13, 31, 40]) {
      const one = new VectorIndex({ space: 'cosine' });
      const added: Float32Array[] = [];
      for (let t = 0; t < 40; t++) {
        const vec = new Float32Array(dim);
        for (let i = 0; i < dim; i++) {
          const kind = r();
          if (kind < 0.6) vec[i] = (r() - 0.5) * 2;
          else if (kind < 0.8) vec[i] = (r() - 0.5) * 10 ** Math.floor(r() * 60 - 30);
          else if (kind < 0.9) {
            u[0] = (r() * 0x100000000) >>> 0;
            vec[i] = Number.isFinite(f[0]!) && Math.abs(f[0]!) < 1e30 ? f[0]! : 0.5;
          } else vec[i] = r() < 0.5 ? 1e-45 * Math.floor(r() * 100) : 0;
        }
        if (vec.every((x) => x === 0)) vec[0] = 1;
        one.add(t, vec, 'v');
        added.push(vec);
      }
      for (let t = 0; t < 40; t++) expect(Array.from(one.get(t)!.vector)).toEqual(Array.from(added[t]!));
    }
  });

  it('a filter that throws surfaces its error (and does not crash hnswlib)', () => {
    const { index, set } = build('l2', 3000, 8, 5, 31);
    const boom = () => {
      throw new Error('boom');
    };
    expect(() => index.knn(set.row(0), 5, { filter: boom })).toThrow('boom');
    let calls = 0;
    const late = (id: number) => {
      if (++calls > 1030) throw new Error('late boom'); // part way through the items
      return id % 2 === 0;
    };
    expect(() => index.knn(set.row(0), 5, { filter: late, strategy: 'hnsw' })).toThrow('late boom');
    expect(index.knn(set.row(0), 1)[0]!.id).toBe(0);
  });
});

describe('filter path choice and stats', () => {
  it('cost model: selective filters scan, broad ones walk the graph', () => {
    expect(chooseFilteredPath(100_000, 128, 100, 50_000)).toBe('hnsw'); // 50%
    expect(chooseFilteredPath(100_000, 128, 100, 20_000)).toBe('hnsw'); // 20%
    expect(chooseFilteredPath(100_000, 128, 100, 5_000)).toBe('exact'); // 5%
    expect(chooseFilteredPath(100_000, 128, 100, 100)).toBe('exact'); // 0.1%
    expect(chooseFilteredPath(100_000, 128, 100, 0)).toBe('exact');
    expect(chooseFilteredPath(100_000, 1536, 100, 300)).toBe('exact');
  });

  it('stats and memory estimate', () => {
    const { index } = build('cosine', 500, 16, 4, 41);
    index.remove(3);
    const s = index.stats();
    expect(s).toMatchObject({ items: 499, dim: 16, space: 'cosine', deleted: 1, m: 16, efConstruction: 200, ef: 100, nextId: 500 });
    expect(s.capacity).toBeGreaterThanOrEqual(500);
    expect(s.memoryBytes).toBeGreaterThan(500 * 16 * 4);
    expect(new VectorIndex().stats()).toMatchObject({ items: 0, dim: null, capacity: 0, deleted: 0 });
  });

  it('constructor validates params like parseStoreParams', () => {
    expect(errorOf(() => new VectorIndex({ m: 1 }))).toContain('m must be an integer');
    expect(errorOf(() => new VectorIndex({ space: 'dot' as Space }))).toContain('space must be one of');
    const ix = new VectorIndex({ ef: 10 });
    expect(errorOf(() => (ix.ef = 0))).toContain('invalid ef');
    ix.ef = 64;
    expect(ix.ef).toBe(64);
    ix.add(1, new Float32Array([1, 2]), 'a');
    expect(errorOf(() => ix.knn(new Float32Array([1, 2]), 1, { ef: 0 }))).toContain('invalid ef');
    expect(errorOf(() => ix.knn(new Float32Array([1, 2]), 1, { ef: 2.5 }))).toContain('invalid ef');
    expect(ix.knnExplain(new Float32Array([1, 2]), 1, { ef: 7 }).ef).toBe(7);
  });
});
