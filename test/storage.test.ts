/**
 * Storage contract tests, run against both backends (RedisStorage on a real redis-server, FileStorage
 * on a temp dir). Backend-specific crash and failure tests are in storage-redis / storage-file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import {
  CatalogGapError,
  FileStorage,
  RedisStorage,
  comparePos,
  isInternalKey,
  newObjectId,
  type LogEntry,
  type ObjectRecord,
  type Storage,
} from '../src/storage/index.js';

interface Backend {
  name: 'redis' | 'file';
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A storage on the same durable state as the previous make() since the last reset(). */
  make(opts?: { chunkSize?: number }): Storage;
  reset(): Promise<void>;
}

function redisBackend(): Backend {
  let server: RedisServerHandle;
  let admin: Redis;
  return {
    name: 'redis',
    async setup() {
      server = await startRedis();
      admin = new Redis(server.url);
    },
    async teardown() {
      admin.disconnect();
      await server.stop();
    },
    make: (opts) => new RedisStorage(server.url, opts),
    async reset() {
      await admin.flushall();
    },
  };
}

function fileBackend(): Backend {
  let root: string;
  let dir: string;
  let n = 0;
  return {
    name: 'file',
    async setup() {
      root = mkdtempSync(path.join(os.tmpdir(), 'rls-storage-'));
    },
    async teardown() {
      rmSync(root, { recursive: true, force: true });
    },
    make: () => new FileStorage(dir),
    async reset() {
      dir = path.join(root, `t${n++}`);
    },
  };
}

const rec = (over: Partial<ObjectRecord> = {}): ObjectRecord => ({
  id: newObjectId(),
  db: 0,
  name: 'store1',
  kind: 'store',
  config: { type: 'hnsw', params: { m: 16, space: 'cosine' }, llm: '$OPENAI_KEY', list: [], nested: { empty: {} } },
  createdAt: 1_700_000_000_000,
  ...over,
});

async function readAll(s: Storage, id: string, after?: string) {
  const out: Array<{ pos: string; entry: LogEntry }> = [];
  let batches = 0;
  for await (const b of s.readLog(id, after)) {
    batches++;
    out.push(...b);
  }
  return Object.assign(out, { batches });
}

const vec = (dim: number, seed: number) => {
  const f = new Float32Array(dim);
  for (let i = 0; i < dim; i++) f[i] = Math.sin(seed * 31 + i) * 1e3;
  return Buffer.from(f.buffer);
};

for (const backend of [redisBackend(), fileBackend()]) {
  describe(`storage contract: ${backend.name}`, () => {
    let s: Storage;
    const open = async (opts?: { chunkSize?: number }) => {
      const st = backend.make(opts);
      await st.open();
      return st;
    };

    beforeAll(() => backend.setup());
    afterAll(() => backend.teardown());
    beforeEach(async () => {
      await backend.reset();
      s = await open();
    });
    afterEach(async () => {
      await s.close();
    });

    it('has the declared kind and hides nothing it should not', () => {
      expect(s.kind).toBe(backend.name);
      expect(isInternalKey('__llm__:{abc}:log')).toBe(true);
      expect(isInternalKey(Buffer.from('__llm__:{catalog}:objects'))).toBe(true);
      expect(isInternalKey('__llm_:x')).toBe(false);
      expect(isInternalKey(Buffer.from('user:key'))).toBe(false);
    });

    it('catalog: put, get, overwrite, delete', async () => {
      const a = rec({ name: 'a' });
      const b = rec({ name: 'b', db: 3, kind: 'llm', config: { type: 'openai', api_key: '$OPENAI_API_KEY' } });
      await s.putRecord(a);
      await s.putRecord(b);
      expect(await s.getRecord(0, 'a')).toEqual(a);
      expect(await s.getRecord(3, 'b')).toEqual(b);
      expect(await s.getRecord(0, 'b')).toBeNull();
      const all = await s.loadCatalog();
      expect(all.sort((x, y) => x.name.localeCompare(y.name))).toEqual([a, b]);

      // overwrite with the same id keeps storage, new definition
      await s.append(a.id, [{ op: 'add', v: vec(4, 1) }]);
      const a2 = { ...a, config: { type: 'hnsw', params: { m: 32 } } };
      await s.putRecord(a2);
      expect(await s.getRecord(0, 'a')).toEqual(a2);
      expect(await s.logLength(a.id)).toBe(1);

      expect(await s.deleteRecord(3, 'b')).toBe(true);
      expect(await s.deleteRecord(3, 'b')).toBe(false);
      expect(await s.getRecord(3, 'b')).toBeNull();
      expect((await s.loadCatalog()).map((r) => r.name)).toEqual(['a']);
    });

    it('catalog: names with colons, spaces and unicode; same name in two dbs', async () => {
      const x = rec({ name: 'a:b:c d é✓', db: 0 });
      const y = rec({ name: 'a:b:c d é✓', db: 1 });
      await s.putRecord(x);
      await s.putRecord(y);
      expect(await s.getRecord(0, x.name)).toEqual(x);
      expect(await s.getRecord(1, y.name)).toEqual(y);
      expect((await s.loadCatalog()).length).toBe(2);
    });

    it('putRecord over another object drops its log and snapshot; deleteRecord drops storage', async () => {
      const old = rec({ name: 'k' });
      await s.putRecord(old);
      const [p] = await s.append(old.id, [{ op: 'add', id: '1' }]);
      await s.writeSnapshot(old.id, Buffer.from('old snapshot'), p!);
      await s.append(old.id, [{ op: 'add', id: '2' }]);
      const nu = rec({ name: 'k' });
      await s.putRecord(nu);
      expect(await s.getRecord(0, 'k')).toEqual(nu);
      expect(await s.logLength(old.id)).toBe(0);
      expect(await readAll(s, old.id)).toHaveLength(0);
      expect(await s.readSnapshot(old.id)).toBeNull();
      expect(await s.snapshotInfo(old.id)).toBeNull();

      await s.append(nu.id, [{ op: 'add', id: '9' }]);
      await s.writeSnapshot(nu.id, Buffer.from('x'), (await readAll(s, nu.id))[0]!.pos);
      await s.deleteRecord(0, 'k');
      expect(await s.logLength(nu.id)).toBe(0);
      expect(await s.readSnapshot(nu.id)).toBeNull();
      expect(await s.loadCatalog()).toEqual([]);
    });

    it('renameRecord moves the definition, keeps the id and storage, overwrites and drops the target', async () => {
      const a = rec({ name: 'from' });
      const t = rec({ name: 'to' });
      await s.putRecord(a);
      await s.putRecord(t);
      await s.append(a.id, [{ op: 'add', id: '1' }]);
      const [tp] = await s.append(t.id, [{ op: 'add', id: 't' }]);
      await s.writeSnapshot(t.id, Buffer.from('target'), tp!);

      await s.renameRecord(0, 'from', 'to');
      expect(await s.getRecord(0, 'from')).toBeNull();
      expect(await s.getRecord(0, 'to')).toEqual({ ...a, name: 'to' });
      expect(await s.logLength(a.id)).toBe(1);
      expect(await s.logLength(t.id)).toBe(0);
      expect(await s.readSnapshot(t.id)).toBeNull();

      await expect(s.renameRecord(0, 'missing', 'x')).rejects.toThrow(/^no such key$/);
      await s.renameRecord(0, 'to', 'to'); // same name: no-op
      expect(await s.getRecord(0, 'to')).toEqual({ ...a, name: 'to' });
      await s.renameRecord(0, 'to', 'fresh'); // to a free name
      expect((await s.loadCatalog()).map((r) => r.name)).toEqual(['fresh']);
    });

    it('append/readLog: order, monotonic positions, group commit of concurrent appends', async () => {
      const ids = [newObjectId(), newObjectId(), newObjectId()];
      for (const [i, id] of ids.entries()) await s.putRecord(rec({ id, name: `s${i}` }));
      const calls: Array<Promise<string[]>> = [];
      const expected = new Map<string, Array<{ n: number }>>();
      for (let n = 0; n < 600; n++) {
        const id = ids[n % 3]!;
        const entries: LogEntry[] = n % 7 === 0 ? [{ n: String(n), part: 'a' }, { n: String(n), part: 'b' }] : [{ n: String(n) }];
        calls.push(s.append(id, entries));
      }
      const results = await Promise.all(calls);
      for (const [i, r] of results.entries()) expect(r).toHaveLength(i % 7 === 0 ? 2 : 1);
      for (const [k, id] of ids.entries()) {
        const log = await readAll(s, id);
        const mine = results.filter((_, i) => i % 3 === k).flat();
        expect(log.map((e) => e.pos)).toEqual(mine); // positions as returned, in call order
        for (let i = 1; i < log.length; i++) expect(comparePos(log[i - 1]!.pos, log[i]!.pos)).toBeLessThan(0);
        const ns = log.map((e) => Number(e.entry.n));
        const want = [...Array(600).keys()].filter((n) => n % 3 === k).flatMap((n) => (n % 7 === 0 ? [n, n] : [n]));
        expect(ns).toEqual(want);
        expect(await s.logLength(id)).toBe(log.length);
        void expected;
      }
      // a multi-entry append is contiguous in the log
      const log0 = await readAll(s, ids[0]!);
      const i0 = log0.findIndex((e) => e.entry.n === '0');
      expect(log0[i0]!.entry.part).toBe('a');
      expect(log0[i0 + 1]!.entry.part).toBe('b');
    });

    it('binary-exact round trip of Buffers; strings stay strings', async () => {
      const id = newObjectId();
      await s.putRecord(rec({ id }));
      const all256 = Buffer.from([...Array(256).keys()]);
      const entries: LogEntry[] = [
        { op: 'add', vec: vec(128, 7), id: '42', data: 'héllo ✓ \u0000 zero' },
        { raw: all256, empty: Buffer.alloc(0), emptyStr: '', 'field:with:colons': 'v', 'b:looks-tagged': 's' },
        { big: randomBytes(200_000), 'ünï': Buffer.from([0, 0, 0, 0]) },
        { nan: Buffer.from(new Float32Array([NaN, -0, Infinity, 1e-45]).buffer) },
      ];
      const pos = await s.append(id, entries);
      const log = await readAll(s, id);
      expect(log.map((e) => e.pos)).toEqual(pos);
      for (const [i, e] of entries.entries()) {
        const got = log[i]!.entry;
        expect(Object.keys(got).sort()).toEqual(Object.keys(e).sort());
        for (const k of Object.keys(e)) {
          const want = e[k]!;
          const have = got[k]!;
          if (typeof want === 'string') expect(have).toBe(want);
          else {
            expect(Buffer.isBuffer(have)).toBe(true);
            expect((have as Buffer).equals(want)).toBe(true);
          }
        }
      }
    });

    it('readLog after a position, and in batches for big logs', async () => {
      const id = newObjectId();
      await s.putRecord(rec({ id }));
      const pos: string[] = [];
      for (let i = 0; i < 2500; i += 500) {
        pos.push(...(await s.append(id, Array.from({ length: 500 }, (_, j) => ({ i: String(i + j), v: vec(8, i + j) })))));
      }
      const all = await readAll(s, id);
      expect(all).toHaveLength(2500);
      expect(all.batches).toBeGreaterThan(1);
      const tail = await readAll(s, id, pos[1999]);
      expect(tail.map((e) => e.entry.i)).toEqual([...Array(500).keys()].map((k) => String(2000 + k)));
      expect(await readAll(s, id, pos[2499])).toHaveLength(0);
      expect((await readAll(s, id, '0-0')).length).toBe(2500);
      expect(await readAll(s, newObjectId())).toHaveLength(0);
    });

    it('snapshot: write, read, log trimmed up to pos, tail kept; older snapshot ignored; ahead rejected', async () => {
      const id = newObjectId();
      await s.putRecord(rec({ id }));
      const pos = await s.append(id, Array.from({ length: 10 }, (_, i) => ({ i: String(i) })));
      expect(await s.readSnapshot(id)).toBeNull();
      const data = randomBytes(1000);
      const before = Date.now();
      expect(await s.writeSnapshot(id, data, pos[5]!)).toBe(true);
      const snap = await s.readSnapshot(id);
      expect(snap!.data.equals(data)).toBe(true);
      expect(snap!.pos).toBe(pos[5]);
      expect(snap!.createdAt).toBeGreaterThanOrEqual(before - 5);
      expect(await s.snapshotInfo(id)).toEqual({ pos: pos[5], createdAt: snap!.createdAt, size: 1000 });
      expect(await s.snapshotInfo(newObjectId())).toBeNull();
      expect(await s.logLength(id)).toBe(4);
      const tail = await readAll(s, id, snap!.pos);
      expect(tail.map((e) => e.entry.i)).toEqual(['6', '7', '8', '9']);
      expect((await readAll(s, id)).map((e) => e.pos)).toEqual(pos.slice(6));

      // an older snapshot does not replace a newer one
      expect(await s.writeSnapshot(id, Buffer.from('older'), pos[2]!)).toBe(false);
      expect((await s.readSnapshot(id))!.data.equals(data)).toBe(true);
      // a position beyond the log is refused
      await expect(s.writeSnapshot(id, Buffer.from('x'), '99999999999999-0')).rejects.toThrow(/ahead of the log/);
      // appends continue after the snapshot position, also once the log was trimmed empty
      expect(await s.writeSnapshot(id, Buffer.from('all'), pos[9]!)).toBe(true);
      expect(await s.logLength(id)).toBe(0);
      const [p11] = await s.append(id, [{ i: '10' }]);
      expect(comparePos(p11!, pos[9]!)).toBeGreaterThan(0);
      expect((await readAll(s, id, pos[9])).map((e) => e.entry.i)).toEqual(['10']);
      // empty snapshot data is fine
      expect(await s.writeSnapshot(id, Buffer.alloc(0), p11!)).toBe(true);
      expect((await s.readSnapshot(id))!.data.length).toBe(0);
    });

    it('chunked snapshot (10 MiB > 2 chunks) round-trips and replaces the previous one', async () => {
      const id = newObjectId();
      await s.putRecord(rec({ id }));
      const [p1, p2] = await s.append(id, [{ a: '1' }, { a: '2' }]);
      const big = randomBytes(10 * 1024 * 1024 + 123);
      await s.writeSnapshot(id, big, p1!);
      const got = await s.readSnapshot(id);
      expect(got!.data.length).toBe(big.length);
      expect(got!.data.equals(big)).toBe(true);
      const big2 = randomBytes(9 * 1024 * 1024);
      await s.writeSnapshot(id, big2, p2!);
      expect((await s.readSnapshot(id))!.data.equals(big2)).toBe(true);
    });

    it('reopen after close keeps catalog, logs and snapshots', async () => {
      const a = rec({ name: 'persist' });
      await s.putRecord(a);
      const pos = await s.append(a.id, [{ i: '1', v: vec(16, 1) }, { i: '2' }, { i: '3' }]);
      await s.writeSnapshot(a.id, Buffer.from('snap'), pos[0]!);
      const b = rec({ name: 'other', db: 2 });
      await s.putRecord(b);
      await s.renameRecord(2, 'other', 'renamed');
      await s.close();
      s = await open();
      expect((await s.loadCatalog()).sort((x, y) => x.name.localeCompare(y.name))).toEqual([a, { ...b, name: 'renamed' }]);
      expect((await s.readSnapshot(a.id))!.data.toString()).toBe('snap');
      expect((await s.snapshotInfo(a.id))!.pos).toBe(pos[0]);
      const log = await readAll(s, a.id);
      expect(log.map((e) => e.pos)).toEqual(pos.slice(1));
      const [p4] = await s.append(a.id, [{ i: '4' }]);
      expect(comparePos(p4!, pos[2]!)).toBeGreaterThan(0);
    });

    it('catalog events: read after a position, loadCatalogAt, tailCatalog blocks until a change', async () => {
      const start = await s.loadCatalogAt();
      expect(start.records).toEqual([]);
      const a = rec({ name: 'a' });
      const b = rec({ name: 'b' });
      await s.putRecord(a);
      await s.putRecord(b);
      await s.renameRecord(0, 'a', 'b'); // overwrites b
      await s.deleteRecord(0, 'b');
      await s.deleteRecord(0, 'nothing'); // no event
      const evs = await s.readCatalogEvents(start.pos);
      expect(evs.map((e) => [e.op, e.name, e.id, e.to, e.dropped])).toEqual([
        ['put', 'a', a.id, undefined, undefined],
        ['put', 'b', b.id, undefined, undefined],
        ['rename', 'a', a.id, 'b', b.id],
        ['delete', 'b', a.id, undefined, undefined],
      ]);
      expect(evs[0]!.record).toEqual(a);
      for (let i = 1; i < evs.length; i++) expect(comparePos(evs[i - 1]!.pos, evs[i]!.pos)).toBeLessThan(0);
      expect(await s.readCatalogEvents(evs[1]!.pos)).toHaveLength(2);

      const at = await s.loadCatalogAt();
      expect(at.pos).toBe(evs[3]!.pos);
      // nothing new: waits, then []
      const t0 = Date.now();
      expect(await s.tailCatalog(at.pos, 150)).toEqual([]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(120);
      // a change arrives while waiting
      const c = rec({ name: 'c' });
      const waiting = s.tailCatalog(at.pos, 5000);
      await new Promise((r) => setTimeout(r, 50));
      const t1 = Date.now();
      await s.putRecord(c);
      const got = await waiting;
      expect(Date.now() - t1).toBeLessThan(1000);
      expect(got.map((e) => [e.op, e.name, e.id])).toEqual([['put', 'c', c.id]]);
    });

    it('invalid ids and positions are rejected with clear errors', async () => {
      await expect(s.append('bad id', [{ a: 'b' }])).rejects.toThrow(/invalid object id/);
      await expect(s.append('{x}', [{ a: 'b' }])).rejects.toThrow(/invalid object id/);
      await expect(s.putRecord(rec({ id: '../x' }))).rejects.toThrow(/invalid object id/);
      await expect(s.append(newObjectId(), [{}])).rejects.toThrow(/no fields/);
      await expect(readAll(s, newObjectId(), 'nope')).rejects.toThrow(/invalid log position/);
      expect(await s.append(newObjectId(), [])).toEqual([]);
    });

    it('sweepOrphans removes storage whose id is not in the catalog', async () => {
      const live = rec({ name: 'live' });
      await s.putRecord(live);
      await s.append(live.id, [{ a: '1' }]);
      const orphan = newObjectId();
      const [p] = await s.append(orphan, [{ a: '1' }]);
      await s.writeSnapshot(orphan, randomBytes(100), p!);
      expect(await s.sweepOrphans()).toEqual([orphan]);
      expect(await s.logLength(orphan)).toBe(0);
      expect(await s.readSnapshot(orphan)).toBeNull();
      expect(await s.logLength(live.id)).toBe(1);
    });

    it('a follower that fell behind the retained catalog events gets CatalogGapError', async () => {
      await s.close();
      s = backend.name === 'redis' ? new RedisStorage((backend.make() as RedisStorage).redis, { catalogEventsMax: 1 }) : new FileStorage((backend.make() as FileStorage).dir, { catalogEventsMax: 5 });
      await s.open();
      const first = await s.loadCatalogAt();
      for (let i = 0; i < 300; i++) await s.putRecord(rec({ name: `n${i % 3}` }));
      await expect(s.readCatalogEvents(first.pos)).rejects.toBeInstanceOf(CatalogGapError);
      const now = await s.loadCatalogAt();
      expect(now.records).toHaveLength(3);
      expect(await s.readCatalogEvents(now.pos)).toEqual([]);
    });
  });
}
