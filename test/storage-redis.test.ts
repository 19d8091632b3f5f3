/**
 * RedisStorage specifics: key layout, crash points of the snapshot protocol, kill -9 of a persistent
 * Redis under concurrent appends, Redis down → fast errors → recovery, group-commit micro-benchmark.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { RedisStorage, isInternalKey, newObjectId, comparePos, type LogEntry, type ObjectRecord } from '../src/storage/index.js';

const rec = (over: Partial<ObjectRecord> = {}): ObjectRecord => ({
  id: newObjectId(),
  db: 0,
  name: 'store',
  kind: 'store',
  config: { type: 'hnsw' },
  createdAt: Date.now(),
  ...over,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readAll(s: RedisStorage, id: string, after?: string) {
  const out: Array<{ pos: string; entry: LogEntry }> = [];
  for await (const b of s.readLog(id, after)) out.push(...b);
  return out;
}

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!().catch(() => {});
});

async function setup(opts: { persistent?: boolean; storage?: ConstructorParameters<typeof RedisStorage>[1] } = {}) {
  const server = await startRedis({ persistent: opts.persistent });
  cleanup.push(() => server.stop());
  const admin = new Redis(server.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  admin.on('error', () => {});
  await admin.connect();
  cleanup.push(async () => admin.disconnect());
  const s = new RedisStorage(server.url, opts.storage);
  await s.open();
  cleanup.push(() => s.close());
  return { server, admin, s };
}

async function waitUntil(fn: () => Promise<unknown>, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await fn();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

describe('RedisStorage', () => {
  it('keeps every key under the internal prefix, one hash tag per object', async () => {
    const { admin, s } = await setup({ storage: { chunkSize: 1024 } });
    const r = rec();
    await s.putRecord(r);
    const pos = await s.append(r.id, [{ a: '1' }, { a: '2' }]);
    await s.writeSnapshot(r.id, randomBytes(3000), pos[0]!);
    const keys = (await admin.keys('*')).sort();
    for (const k of keys) expect(isInternalKey(k)).toBe(true);
    const snap = await admin.hgetall(`__llm__:{${r.id}}:snap`);
    expect(keys).toEqual(
      [
        '__llm__:{catalog}:events',
        '__llm__:{catalog}:objects',
        `__llm__:{${r.id}}:log`,
        `__llm__:{${r.id}}:snap`,
        ...[0, 1, 2].map((i) => `__llm__:{${r.id}}:snap:${snap.gen}:${i}`),
      ].sort(),
    );
    expect(await admin.type(`__llm__:{${r.id}}:log`)).toBe('stream');
    expect(snap).toMatchObject({ chunks: '3', pos: pos[0], size: '3000' });
    // the stream id is the position; the value types are tagged in the field names
    const raw = await admin.xrange(`__llm__:{${r.id}}:log`, '-', '+');
    expect(raw).toEqual([[pos[1], ['s:a', '2']]]);
  });

  it('crash after the chunks are written, before the meta switch: old snapshot and full log stay usable', async () => {
    let crash = true;
    const { admin, s } = await setup({
      storage: {
        chunkSize: 64 * 1024,
        hooks: {
          afterSnapshotChunks: () => {
            if (crash) throw new Error('simulated crash');
          },
        },
      },
    });
    const r = rec();
    await s.putRecord(r);
    const pos = await s.append(r.id, Array.from({ length: 6 }, (_, i) => ({ i: String(i) })));
    crash = false;
    const old = randomBytes(200_000);
    await s.writeSnapshot(r.id, old, pos[1]!);
    crash = true;
    await expect(s.writeSnapshot(r.id, randomBytes(300_000), pos[4]!)).rejects.toThrow(/simulated crash/);
    // the new generation's chunks exist, announced in the meta, but the meta still points at the old one
    const meta = await admin.hgetall(`__llm__:{${r.id}}:snap`);
    const pending = Object.keys(meta).filter((f) => f.startsWith('p:'));
    expect(pending).toHaveLength(1);
    expect(await admin.exists(`__llm__:{${r.id}}:snap:${pending[0]!.slice(2)}:0`)).toBe(1);
    const snap = await s.readSnapshot(r.id);
    expect(snap!.data.equals(old)).toBe(true);
    expect(snap!.pos).toBe(pos[1]);
    expect((await readAll(s, r.id, snap!.pos)).map((e) => e.entry.i)).toEqual(['2', '3', '4', '5']);

    // a later snapshot succeeds; an abandoned generation is deleted once stale
    crash = false;
    const s2 = new RedisStorage(s.redis, { chunkSize: 64 * 1024, stalePendingMs: 0 });
    await s2.open();
    const nu = randomBytes(150_000);
    expect(await s2.writeSnapshot(r.id, nu, pos[5]!)).toBe(true);
    expect((await s2.readSnapshot(r.id))!.data.equals(nu)).toBe(true);
    const keys = await admin.keys(`__llm__:{${r.id}}:snap:*`);
    const gen = await admin.hget(`__llm__:{${r.id}}:snap`, 'gen');
    expect(keys.every((k) => k.includes(`:snap:${gen}:`))).toBe(true);
    expect(keys).toHaveLength(3);
    expect(Object.keys(await admin.hgetall(`__llm__:{${r.id}}:snap`)).filter((f) => f.startsWith('p:'))).toEqual([]);
    expect(await s2.logLength(r.id)).toBe(0);

    // dropping an object removes abandoned generations too
    crash = true;
    await s.append(r.id, [{ i: '6' }]);
    await expect(s.writeSnapshot(r.id, randomBytes(100_000), (await readAll(s, r.id))[0]!.pos)).rejects.toThrow();
    await s.deleteRecord(0, r.name);
    expect((await admin.keys(`__llm__:{${r.id}}*`)).length).toBe(0);
    await s2.close();
  });

  it.each([
    ['over its own connection', true],
    ['through ioredis (as over TLS or a cluster)', false],
  ])('a snapshot read %s racing newer snapshots returns one whole snapshot, never a mix; damaged chunks are refused', async (_how, direct) => {
    const { admin, s } = await setup({ storage: { chunkSize: 64 * 1024, directSnapshotReads: direct } });
    const writer = new RedisStorage(s.redis, { chunkSize: 64 * 1024, directSnapshotReads: direct });
    await writer.open();
    cleanup.push(() => writer.close());
    const r = rec();
    await s.putRecord(r);
    const pos = await s.append(r.id, Array.from({ length: 40 }, (_, i) => ({ i: String(i) })));
    // 1.3 MB each: 21 chunks, read in many GETRANGE pieces over several round trips
    const versions = Array.from({ length: 20 }, () => randomBytes(1_300_000 + Math.floor(Math.random() * 1000)));
    await writer.writeSnapshot(r.id, versions[0]!, pos[0]!);
    let whole = 0;
    for (let v = 1; v < versions.length; v++) {
      const [got] = await Promise.all([s.readSnapshot(r.id).catch((e: Error) => e), writer.writeSnapshot(r.id, versions[v]!, pos[v]!)]);
      if (got instanceof Error) {
        expect(got.message, got.message).toMatch(/could not be read consistently/); // only after 5 lost races in a row
        continue;
      }
      const at = versions.findIndex((x) => x.equals(got!.data));
      expect(at === v - 1 || at === v, `read ${v}: a snapshot that was never written`).toBe(true);
      expect(got!.pos).toBe(pos[at]);
      whole++;
    }
    expect(whole).toBeGreaterThan(0);

    // a chunk changed behind the server's back: checksum; one missing for good: never consistent
    const gen = (await admin.hget(`__llm__:{${r.id}}:snap`, 'gen'))!;
    const chunk = `__llm__:{${r.id}}:snap:${gen}:3`;
    // a byte flipped (writing a fixed 'x' changed nothing when the random byte already was one)
    const byte = (await admin.getrangeBuffer(chunk, 100, 100))[0]!;
    await admin.setrange(chunk, 100, Buffer.from([byte ^ 0xff]));
    await expect(s.readSnapshot(r.id)).rejects.toThrow(/corrupt \(size or checksum mismatch\)/);
    await admin.append(chunk, 'tail');
    await expect(s.readSnapshot(r.id)).rejects.toThrow(/corrupt/);
    await admin.del(chunk);
    await expect(s.readSnapshot(r.id)).rejects.toThrow(/could not be read consistently/);
  });

  it.each([
    ['over its own connection', true],
    ['through ioredis', false],
  ])('a snapshot write %s that Redis refuses (out of memory) fails with its error and leaves no chunks behind', async (_how, direct) => {
    const { admin, s } = await setup({ storage: { chunkSize: 64 * 1024, directSnapshotReads: direct } });
    const r = rec();
    await s.putRecord(r);
    const [pos] = await s.append(r.id, [{ i: '1' }]);
    await s.writeSnapshot(r.id, randomBytes(200_000), pos!); // fits
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory', String(used + 1_000_000));
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await expect(s.writeSnapshot(r.id, randomBytes(3_000_000), pos!)).rejects.toThrow(/OOM/);
    await admin.config('SET', 'maxmemory', '0');
    // the failed generation's chunks are gone; the earlier snapshot is still the one read
    const gen = (await admin.hget(`__llm__:{${r.id}}:snap`, 'gen'))!;
    const chunks = await admin.keys(`__llm__:{${r.id}}:snap:*`);
    expect(chunks.every((k) => k.includes(`:${gen}:`))).toBe(true);
    expect((await s.readSnapshot(r.id))!.data.length).toBe(200_000);
  });

  it('direct snapshot reads and writes log in as the storage connection does: password, ACL user, db, unix socket', async () => {
    const sock = path.join(mkdtempSync(path.join(os.tmpdir(), 'rls-sock-')), 'redis.sock');
    const server = await startRedis({ args: ['--requirepass', 'pw1', '--unixsocket', sock, '--unixsocketperm', '700'] });
    cleanup.push(() => server.stop());
    const admin = new Redis({ port: server.port, password: 'pw1' });
    cleanup.push(async () => admin.disconnect());
    await admin.call('ACL', 'SETUSER', 'llm', 'on', '>pw2', '~*', '+@all');
    const data = randomBytes(300_000);
    for (const conn of [
      `redis://:pw1@127.0.0.1:${server.port}/3`,
      `redis://llm:pw2@127.0.0.1:${server.port}/5`,
      { path: sock, password: 'pw1', db: 7 },
    ]) {
      const url = JSON.stringify(conn);
      const s = new RedisStorage(conn, { chunkSize: 64 * 1024 });
      await s.open();
      try {
        const r = rec();
        await s.putRecord(r);
        const [pos] = await s.append(r.id, [{ i: '1' }]);
        expect(await s.writeSnapshot(r.id, data, pos!)).toBe(true);
        expect((await s.readSnapshot(r.id))!.data.equals(data), url).toBe(true);
      } finally {
        await s.close();
      }
    }
    // where the keys went: db 3, 5 and 7, none in db 0
    expect(await admin.dbsize()).toBe(0);
    for (const db of [3, 5, 7]) {
      await admin.select(db);
      expect((await admin.keys('__llm__:*')).length, `db ${db}`).toBeGreaterThan(0);
    }
    // a wrong password: the read fails with Redis's reason, and never names the password
    const s = new RedisStorage(`redis://:pw1@127.0.0.1:${server.port}/3`, { chunkSize: 64 * 1024 });
    await s.open();
    cleanup.push(() => s.close());
    const r = rec();
    await s.putRecord(r);
    const [pos] = await s.append(r.id, [{ i: '1' }]);
    await s.writeSnapshot(r.id, data, pos!);
    await admin.config('SET', 'requirepass', 'pw3');
    const err = (await s.readSnapshot(r.id).catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/WRONGPASS|invalid password/);
    expect(err.message).not.toMatch(/pw1|pw3/);
  });

  it('kill -9 of the backing Redis after the chunks: restart finds the old snapshot and the log tail', async () => {
    let server!: RedisServerHandle;
    let killNow = false;
    const ctx = await setup({
      persistent: true,
      storage: {
        chunkSize: 256 * 1024,
        hooks: {
          afterSnapshotChunks: async () => {
            if (killNow) await server.kill();
          },
        },
      },
    });
    server = ctx.server;
    const { s } = ctx;
    const r = rec();
    await s.putRecord(r);
    const pos = await s.append(r.id, Array.from({ length: 5 }, (_, i) => ({ i: String(i), v: randomBytes(64) })));
    const old = randomBytes(1_000_000);
    await s.writeSnapshot(r.id, old, pos[1]!);
    killNow = true;
    await expect(s.writeSnapshot(r.id, randomBytes(1_000_000), pos[4]!)).rejects.toThrow(/backing Redis unavailable/);
    killNow = false;
    await server.restart();
    await waitUntil(() => s.logLength(r.id));
    const snap = await s.readSnapshot(r.id);
    expect(snap!.data.equals(old)).toBe(true);
    expect((await readAll(s, r.id, snap!.pos)).map((e) => e.entry.i)).toEqual(['2', '3', '4']);
    expect(await s.loadCatalog()).toEqual([r]);
    expect(await s.writeSnapshot(r.id, Buffer.from('after'), pos[4]!)).toBe(true);
    expect(await s.logLength(r.id)).toBe(0);
  });

  it('kill -9 of a persistent Redis under concurrent appends: every acknowledged append survives', async () => {
    const { server, s } = await setup({ persistent: true });
    const r = rec();
    await s.putRecord(r);
    const acks: Array<[string, string]> = [];
    let failures = 0;
    let stop = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const k = `${w}:${i}`;
        try {
          const entries: LogEntry[] = i % 5 === 0 ? [{ k, v: randomBytes(512) }, { k: k + 'b' }] : [{ k, v: randomBytes(512) }];
          const p = await s.append(r.id, entries);
          acks.push([p[0]!, k]);
          if (p[1]) acks.push([p[1], k + 'b']);
        } catch (err) {
          expect((err as Error).message).toMatch(/^backing Redis unavailable: /);
          failures++;
          await sleep(5);
        }
      }
    };
    const workers = Array.from({ length: 32 }, (_, w) => worker(w));
    await sleep(300 + Math.random() * 200);
    const ackedBeforeKill = acks.length;
    await server.kill();
    await sleep(100);
    stop = true;
    await Promise.all(workers);
    expect(ackedBeforeKill).toBeGreaterThan(100);
    expect(failures).toBeGreaterThan(0);
    await server.restart();
    await waitUntil(() => s.logLength(r.id));
    const log = await readAll(s, r.id);
    const byPos = new Map(log.map((e) => [e.pos, e.entry.k]));
    for (const [p, k] of acks) expect(byPos.get(p)).toBe(k);
    // no entry was written twice (ioredis must never re-send an XADD)
    const ks = log.map((e) => e.entry.k as string);
    expect(new Set(ks).size).toBe(ks.length);
    console.log(`kill -9 Redis: ${acks.length} acknowledged appends, all ${acks.length} present after restart; ${log.length - acks.length} unacknowledged also landed`);
  });

  it('backing Redis down: calls fail fast with a clear error, and work again after it comes back', async () => {
    const { server, s } = await setup({ persistent: true });
    const r = rec();
    await s.putRecord(r);
    await s.append(r.id, [{ a: '1' }]);
    await server.kill();
    for (const call of [
      () => s.append(r.id, [{ a: '2' }]),
      () => s.append(r.id, [{ a: '2' }]),
      () => s.putRecord(rec({ name: 'x' })),
      () => s.loadCatalog(),
      () => readAll(s, r.id),
      () => s.readSnapshot(r.id),
      () => s.logLength(r.id),
    ]) {
      const t0 = Date.now();
      await expect(call()).rejects.toThrow(/^backing Redis unavailable: /);
      expect(Date.now() - t0).toBeLessThan(500);
    }
    await server.restart();
    const t0 = Date.now();
    await waitUntil(() => s.append(r.id, [{ a: '3' }]));
    console.log(`backing Redis back: appends work again after ${Date.now() - t0} ms`);
    expect((await readAll(s, r.id)).map((e) => e.entry.a)).toEqual(['1', '3']);

    // a storage whose Redis is not there fails to open, quickly
    const dead = new RedisStorage(`redis://127.0.0.1:${server.port + 1 === 65536 ? 1 : server.port + 1}`);
    const t1 = Date.now();
    await expect(dead.open()).rejects.toThrow(/^backing Redis unavailable: /);
    expect(Date.now() - t1).toBeLessThan(3000);
    await dead.close();
  });

  it('built from the server\'s ioredis instance: own fail-fast connection with its settings (db), or shared on request', async () => {
    const { server, admin } = await setup();
    const given = new Redis(`${server.url}/3`); // default options: offline queue, retries, resends
    cleanup.push(async () => given.disconnect());
    const s = new RedisStorage(given);
    await s.open();
    expect(s.redis).not.toBe(given);
    expect(s.redis.options.db).toBe(3);
    expect(s.redis.options.enableOfflineQueue).toBe(false);
    expect(s.redis.options.autoResendUnfulfilledCommands).toBe(false);
    await s.putRecord(rec({ name: 'in-db-3' }));
    await admin.select(3);
    expect(await admin.hkeys('__llm__:{catalog}:objects')).toEqual(['0:in-db-3']);
    await s.close();
    expect(given.status).toBe('ready'); // the server's connection is left alone
    const shared = new RedisStorage(given, { shareConnection: true });
    await shared.open();
    expect(shared.redis).toBe(given);
    expect((await shared.loadCatalog()).map((r) => r.name)).toEqual(['in-db-3']);
    await shared.close();
    expect(given.status).toBe('ready');
  });

  it('writes keep call order: an append issued before a delete reaches Redis first (no orphan log)', async () => {
    const { admin, s } = await setup();
    const r = rec();
    await s.putRecord(r);
    const appended = s.append(r.id, [{ x: '1' }]);
    const deleted = s.deleteRecord(0, r.name);
    await Promise.all([appended, deleted]);
    expect(await admin.exists(`__llm__:{${r.id}}:log`)).toBe(0);
    expect(await s.sweepOrphans()).toEqual([]);
  });

  it('group commit micro-benchmark (appends of 128-dim vectors)', async () => {
    const { s } = await setup({ persistent: true });
    const ids = Array.from({ length: 8 }, () => newObjectId());
    for (const [i, id] of ids.entries()) await s.putRecord(rec({ id, name: `b${i}` }));
    const v = Buffer.from(new Float32Array(128).fill(0.5).buffer);
    let pipelines = 0;
    const orig = s.redis.pipeline.bind(s.redis);
    (s.redis as unknown as { pipeline: typeof orig }).pipeline = ((...a: Parameters<typeof orig>) => {
      pipelines++;
      return orig(...a);
    }) as typeof orig;

    const N1 = 500;
    let t0 = performance.now();
    for (let i = 0; i < N1; i++) await s.append(ids[0]!, [{ op: 'add', id: String(i), v }]);
    const seq = N1 / ((performance.now() - t0) / 1000);

    pipelines = 0;
    const N2 = 10_000;
    const inFlight = 1000;
    t0 = performance.now();
    for (let i = 0; i < N2; i += inFlight) {
      await Promise.all(Array.from({ length: inFlight }, (_, j) => s.append(ids[(i + j) % 8]!, [{ op: 'add', id: String(i + j), v }])));
    }
    const conc = N2 / ((performance.now() - t0) / 1000);
    expect(pipelines).toBeLessThanOrEqual(N2 / 100); // batched, not one round trip per append
    console.log(
      `RedisStorage appends (appendfsync always): sequential ${seq.toFixed(0)}/s; ${inFlight} in flight ${conc.toFixed(0)}/s in ${pipelines} pipelines (${(N2 / pipelines).toFixed(0)} appends per round trip)`,
    );
    for (const id of ids) expect(await s.logLength(id)).toBe(id === ids[0] ? N1 + N2 / 8 : N2 / 8);
    const log = await readAll(s, ids[1]!);
    for (let i = 1; i < log.length; i++) expect(comparePos(log[i - 1]!.pos, log[i]!.pos)).toBeLessThan(0);
  });
});
