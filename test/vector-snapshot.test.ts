import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VectorIndex, type Space } from '../src/vector/index.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import hnswlib from 'hnswlib-node';
import { bruteForce, clustered } from '../harness/vector-data.js';

// Snapshots go through memory only: with TMPDIR pointed at an empty directory, none appears there.
let dir: string;
const savedTmp = process.env.TMPDIR;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vector-snapshot-test-'));
  process.env.TMPDIR = dir;
});
afterAll(async () => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  await rm(dir, { recursive: true, force: true });
});

describe.each(['l2', 'cosine', 'ip'] as Space[])('serialize/deserialize (%s)', (space) => {
  it('round trip: same KNN, same GET, same next id, ef restored', async () => {
    const set = clustered(3000, 24, 12, 51);
    const ix = new VectorIndex({ space, ef: 37, m: 12, efConstruction: 80, maxElements: 100 });
    for (let i = 0; i < 3000; i++) ix.add(i * 3, set.row(i), i % 7 === 0 ? `ünïcødé ${i} ✓` : `item ${i}`);
    for (let i = 0; i < 3000; i += 10) ix.remove(i * 3);
    ix.add(999_999, set.row(5), ''); // empty text, big id
    ix.nextId(); // a reserved id moves the counter too

    let captured = 0;
    const buf = await ix.serialize({ onCapture: () => captured++ });
    expect(await readdir(dir)).toEqual([]); // no files written
    const saved = Buffer.from(buf);
    const back = await VectorIndex.deserialize(buf);
    expect(await readdir(dir)).toEqual([]);
    expect(buf.equals(saved)).toBe(true); // the graph file gets a lowered capacity, the snapshot is untouched
    expect(captured).toBe(1);

    expect(back.params).toEqual(ix.params);
    expect(back.ef).toBe(37);
    expect(back.size).toBe(ix.size);
    expect(back.dim).toBe(24);
    expect(back.nextAutoId).toBe(ix.nextAutoId);
    expect(back.nextId()).toBe(1_000_001);
    // 300 removed, 1 slot reused; spare capacity is trimmed on load (graph slots = items + deleted)
    expect(back.stats()).toMatchObject({ deleted: 299, capacity: back.size + 299 });
    expect(ix.capacity).toBeGreaterThan(back.capacity);

    for (const id of ix.ids()) {
      const a = ix.get(id)!;
      const b = back.get(id)!;
      expect(b.data).toBe(a.data);
      expect(Array.from(b.vector)).toEqual(Array.from(a.vector));
    }
    expect(back.get(0)).toBeNull();
    for (const q of set.queries(30, 8)) {
      const e1 = ix.knnExplain(q, 10);
      const e2 = back.knnExplain(q, 10);
      expect(e2.ef).toBe(37); // the graph search ran with the restored ef, not hnswlib's 10
      expect(e2.hits).toEqual(e1.hits);
      const f = (id: number) => id % 2 === 0;
      expect(back.knn(q, 5, { filter: f })).toEqual(ix.knn(q, 5, { filter: f }));
    }

    // the restored index keeps working: slots freed before the snapshot are reused, removed
    // ids can come back, and a second round trip is identical
    const cap = back.capacity;
    for (let i = 0; i < 299; i++) back.add(2_000_000 + i, set.row(i), 'n');
    expect(back.capacity).toBe(cap);
    expect(back.stats().deleted).toBe(0);
    back.add(3_000_000, set.row(7), 'grows'); // no free slot left: the graph grows
    expect(back.capacity).toBeGreaterThan(cap);
    expect(back.get(3_000_000)!.data).toBe('grows');
    back.add(0, set.row(1), 'zero again');
    expect(back.get(0)!.data).toBe('zero again');
    const again = await VectorIndex.deserialize(await back.serialize());
    expect(again.size).toBe(back.size);
    expect(again.get(0)).toEqual(back.get(0));
  });
});

describe('snapshot edge cases', () => {
  it('background mode: graph written off the event loop, mutations held off meanwhile', async () => {
    const set = clustered(3000, 16, 8, 71);
    const ix = new VectorIndex({ space: 'cosine' });
    for (let i = 0; i < 3000; i++) ix.add(i + 1, set.row(i), `t${i}`);
    expect(ix.frozen).toBe(false);
    let captured = -1;
    const qs = set.queries(10, 4);
    let expected: unknown[] = [];
    let second: Promise<Buffer> | undefined;
    let idle: Promise<void> | undefined;
    // The capture point: from here until the graph and items are written the index is frozen (the
    // write itself can be done before a polling loop would see it, so look from inside).
    const p = ix.serialize({
      background: true,
      onCapture: () => {
        captured = ix.size;
        expect(ix.frozen).toBe(true);
        expect(() => ix.add(9999, set.row(0), 'x')).toThrow(/frozen by a background snapshot/);
        expect(() => ix.remove(1)).toThrow(/frozen/);
        expect(ix.remove(123456)).toBe(false); // nothing to change
        expect(ix.knn(set.row(5), 1)[0]!.id).toBe(6); // reads keep working
        expect(ix.get(7)!.data).toBe('t6');
        expected = qs.map((q) => ix.knn(q, 5));
        second = ix.serialize({ background: true });
        second.catch(() => undefined); // looked at below
        idle = ix.whenIdle();
      },
    });
    await expect(p.then(() => second!)).rejects.toThrow(/frozen/);
    await idle;
    expect(ix.frozen).toBe(false);
    ix.add(9999, set.row(0), 'after'); // allowed again
    const back = await VectorIndex.deserialize(await p);
    expect(captured).toBe(3000);
    expect(back.size).toBe(3000);
    expect(back.has(9999)).toBe(false);
    qs.forEach((q, i) => expect(back.knn(q, 5)).toEqual(expected[i]));
    expect(Array.from(back.get(3)!.vector)).toEqual(Array.from(set.row(2)));
    await ix.whenIdle(); // resolves at once when idle
  });

  it('is one point in time: mutations after the capture are not in it', async () => {
    const set = clustered(4000, 16, 8, 61);
    const ix = new VectorIndex();
    for (let i = 0; i < 3000; i++) ix.add(i, set.row(i), `a${i}`);
    let idsAtCapture: number[] = [];
    let stop = false;
    let next = 3000;
    const p = ix.serialize({
      onCapture: () => {
        idsAtCapture = [...ix.ids()].sort((a, b) => a - b);
      },
    });
    // keep mutating on every turn of the event loop while the snapshot is finished (waiting, as
    // the contract says, while the capture holds the index)
    const churn = () => {
      if (stop || next >= 4000) return;
      if (ix.frozen) {
        void ix.whenIdle().then(churn);
        return;
      }
      ix.add(next, set.row(next), `b${next}`);
      ix.remove(next - 3000);
      next++;
      setImmediate(churn);
    };
    setImmediate(churn);
    const buf = await p;
    stop = true;
    const back = await VectorIndex.deserialize(buf);
    expect(next).toBeGreaterThan(3000); // the churn did run meanwhile
    expect(ix.size).toBe(3000); // adds and removes in pairs
    expect([...back.ids()].sort((a, b) => a - b)).toEqual(idsAtCapture);
    for (const id of back.ids()) expect(back.getData(id)).toBe(ix.get(id)?.data ?? `a${id}`);
    // and the captured state is not the final one: some later change is missing from it
    expect(idsAtCapture).not.toEqual([...ix.ids()].sort((a, b) => a - b));
  });

  it('an index that never saw a vector', async () => {
    const ix = new VectorIndex({ space: 'cosine', ef: 12 });
    const back = await VectorIndex.deserialize(await ix.serialize());
    expect(back.dim).toBeUndefined();
    expect(back.size).toBe(0);
    expect(back.ef).toBe(12);
    back.add(1, new Float32Array([1, 2]), 'x');
    expect(back.knn(new Float32Array([1, 2]), 1)[0]!.id).toBe(1);
  });

  it('a fixed dimension without items, and an index emptied by REM', async () => {
    const a = await VectorIndex.deserialize(await new VectorIndex({ dim: 5 }).serialize());
    expect(a.dim).toBe(5);
    const ix = new VectorIndex();
    ix.add(4, new Float32Array([1, 1, 1]), 'a');
    ix.remove(4);
    const b = await VectorIndex.deserialize(await ix.serialize());
    expect(b.dim).toBe(3);
    expect(b.size).toBe(0);
    expect(b.nextAutoId).toBe(5);
    expect(b.knn(new Float32Array(3), 3)).toEqual([]);
    b.add(4, new Float32Array([2, 2, 2]), 'b');
    expect(b.get(4)!.data).toBe('b');
    expect(b.stats().deleted).toBe(0);
  });

  it('rejects corrupt snapshots with a clear error and leaves no files behind', async () => {
    const ix = new VectorIndex();
    for (let i = 0; i < 50; i++) ix.add(i, new Float32Array([i, 1, 2, 3]), `t${i}`);
    const good = await ix.serialize();
    const cases: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from('nope'),
      Buffer.concat([Buffer.from('XXXX'), good.subarray(4)]),
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.from([0])]),
    ];
    const version = Buffer.from(good);
    version.writeUInt16LE(99, 4);
    cases.push(version);
    const graph = Buffer.from(good);
    const headerLen = graph.readUInt32LE(8);
    graph.fill(0xff, 12 + headerLen, 12 + headerLen + 64); // clobber the hnswlib header
    cases.push(graph);
    for (const c of cases) {
      await expect(VectorIndex.deserialize(c)).rejects.toThrow(/corrupt vector index snapshot|Hnswlib Error/);
    }
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('format 1 (earlier versions: the graph labelled by item id)', () => {
  it('loads as saved, relabels the graph by slot, and keeps working (search, add, remove, snapshot)', async () => {
    const dim = 8;
    const set = clustered(600, dim, 6, 71);
    // What an earlier version wrote: hnswlib-node's file, labels = ids, one id removed.
    const h = new hnswlib.HierarchicalNSW('l2', dim);
    h.initIndex({ maxElements: 600, m: 16, efConstruction: 200, allowReplaceDeleted: true });
    const ids: number[] = [];
    for (let i = 0; i < 500; i++) {
      const id = 1000 + i * 3;
      h.addPoint(Array.from(set.row(i)), id, false);
      ids.push(id);
    }
    h.markDelete(1000 + 7 * 3);
    const live = ids.filter((id) => id !== 1000 + 7 * 3);
    const dir = mkdtempSync(join(tmpdir(), 'rlvi-v1-'));
    const file = join(dir, 'g.bin');
    h.writeIndexSync(file);
    const graph = readFileSync(file);
    rmSync(dir, { recursive: true, force: true });
    const items = Buffer.concat([
      ...live.map((id) => {
        const text = Buffer.from(`t${id}`);
        const head = Buffer.alloc(8);
        head.writeUInt32LE(id, 0);
        head.writeUInt32LE(text.length, 4);
        return Buffer.concat([head, text]);
      }),
      Buffer.alloc(4), // no exact copies
    ]);
    const header = Buffer.from(
      JSON.stringify({ space: 'l2', dim, m: 16, efConstruction: 200, maxElements: 600, ef: 50, nextId: 3000, items: live.length, exact: 0, graphBytes: graph.length, itemBytes: items.length }),
    );
    const pre = Buffer.alloc(12);
    pre.write('RLVI', 0, 'latin1');
    pre.writeUInt16LE(1, 4);
    pre.writeUInt32LE(header.length, 8);
    const ix = await VectorIndex.deserialize(Buffer.concat([pre, header, graph, items]));
    expect(ix.size).toBe(live.length);
    expect(ix.nextAutoId).toBe(3000);
    for (const [i, id] of ids.entries()) {
      if (id === 1000 + 7 * 3) {
        expect(ix.get(id)).toBeNull();
        continue;
      }
      expect(ix.getData(id)).toBe(`t${id}`);
      expect(Array.from(ix.getVector(id)!)).toEqual(Array.from(set.row(i)));
    }
    // searches answer with the ids (not the slots)
    for (let i = 0; i < 20; i++) {
      const truth = bruteForce(set, 'l2', set.row(i), 5, (row) => row < 500 && row !== 7).map((t) => 1000 + t.id * 3);
      expect(ix.knn(set.row(i), 5, { ef: 200 }).map((x) => x.id)).toEqual(truth);
    }
    // and it takes changes: the removed element's graph slot is reused, nothing is duplicated
    ix.add(5, set.row(550), 'new');
    expect(ix.knn(set.row(550), 1)[0]!.id).toBe(5);
    expect(ix.stats().capacity).toBe(500);
    expect(ix.remove(1000)).toBe(true);
    const again = await VectorIndex.deserialize(await ix.serialize());
    expect(again.size).toBe(live.length);
    expect(again.getData(5)).toBe('new');
    expect(again.get(1000)).toBeNull();
    expect(again.knn(set.row(3), 1)[0]!.id).toBe(1000 + 3 * 3);
  });
});
