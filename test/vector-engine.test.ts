/**
 * The vector engine off the event loop (issue 16): searches, inserts, snapshot writes and loads
 * run on the thread pool (native/graph.cc), a store's gate orders them (util/rw-gate.ts), and the
 * semantics stay those of a synchronous index: log order = apply order, a connection reads its own
 * writes, pipelined ADDs keep request order, errors cross the boundary as clear replies, and an
 * engine failure on a logged change is answered with an error and repaired from the log.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadAddon, releaseSnapshotBuffer, snapshotBuffer } from '../src/util/addon.js';
import { crc32Sliced } from '../src/storage/common.js';
import type { Redis } from 'ioredis';
import { RwGate } from '../src/util/rw-gate.js';
import { ioTurn, pauseForIo, SLICE_MS } from '../src/util/io-slice.js';
import { addonFile, newGraph, simdLevel, type NativeGraph } from '../src/vector/native.js';
import type { StoreObject } from '../src/objects/objects.js';
import { VectorIndex, vectorToFp32 } from '../src/vector/index.js';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startServer } from '../harness/server.js';
import { clustered } from '../harness/vector-data.js';
import type { LlmServer } from '../src/server/server.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('RwGate', () => {
  it('shared turns overlap, an exclusive turn runs alone, and turns start in arrival order', async () => {
    const gate = new RwGate();
    const log: string[] = [];
    let running = 0;
    let maxShared = 0;
    const shared = (name: string) =>
      gate.shared(async () => {
        running++;
        maxShared = Math.max(maxShared, running);
        log.push(`+${name}`);
        await tick();
        await tick();
        log.push(`-${name}`);
        running--;
      });
    const exclusive = (name: string) =>
      gate.exclusive(async () => {
        expect(running).toBe(0);
        log.push(`+${name}`);
        await tick();
        log.push(`-${name}`);
      });
    await Promise.all([shared('r1'), shared('r2'), exclusive('w1'), shared('r3'), exclusive('w2'), exclusive('w3'), shared('r4')]);
    expect(maxShared).toBe(2);
    // r1 and r2 together; w1 after both; r3 (came after w1) only after it; w2, w3 one at a time, in order
    expect(log).toEqual(['+r1', '+r2', '-r1', '-r2', '+w1', '-w1', '+r3', '-r3', '+w2', '-w2', '+w3', '-w3', '+r4', '-r4']);
    expect(gate.idle).toBe(true);
  });

  it('a turn that throws releases the gate and rejects only its own caller', async () => {
    const gate = new RwGate();
    const bad = gate.exclusive(() => {
      throw new Error('boom');
    });
    const after = gate.shared(() => 'fine');
    await expect(bad).rejects.toThrow('boom');
    await expect(after).resolves.toBe('fine');
    // a free gate starts a turn synchronously
    let ran = false;
    void gate.exclusive(() => {
      ran = true;
    });
    expect(ran).toBe(true);
  });
});

describe('io-slice', () => {
  it('a turn of the event loop gets SLICE_MS of work; the rest waits for a later turn', async () => {
    await new Promise((r) => setImmediate(r)); // a fresh turn
    expect(pauseForIo()).toBeNull(); // starts the slice
    const until = performance.now() + SLICE_MS + 1;
    while (performance.now() < until); // busy past the slice
    const later = pauseForIo();
    expect(later).not.toBeNull();
    const order: string[] = [];
    setImmediate(() => order.push('this turn'));
    await later;
    order.push('resumed');
    // it resumed in a later turn than the one it paused in: the loop polled for I/O in between
    expect(order).toEqual(['this turn', 'resumed']);
    // in a later turn there is room again
    await ioTurn();
    expect(pauseForIo()).toBeNull();
  });
});

const anonHugeKb = () => Number(/AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? 0);

describe('native graph on the engine threads', () => {
  const dim = 64;
  const set = clustered(20_000, dim, 20, 3);
  const g = newGraph('l2', dim);
  g.init(1024, 16, 100);
  beforeAll(async () => {
    for (let i = 0; i < 20_000; i++) g.add(set.row(i), i, 2 ** 32);
  });

  it('searches run while the event loop keeps turning, and answer as the synchronous search does', async () => {
    const qs = set.queries(200, 5);
    let ticks = 0;
    let done = false;
    const spin = () => {
      if (done) return;
      ticks++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const results = await Promise.all(qs.map((q) => g.searchAsync(q, 10, 64, true)));
    done = true;
    expect(ticks).toBeGreaterThan(5); // 200 exact scans of 20k vectors did not hold the loop
    for (const [i, q] of qs.entries()) {
      const pairs = g.search(q, 10, 64, true);
      expect(pairs.length).toBe(20);
      expect(Array.from(results[i]!)).toEqual(Array.from(pairs));
    }
  });

  it('errors cross the boundary as exceptions, not crashes', async () => {
    expect(() => g.search(new Float32Array(3), 1, 10, false)).toThrow(/wrong dimension/);
    expect(() => g.getPoint(99_999_999)).toThrow();
    expect(() => g.search(set.row(0), 1, 10, false, new Float64Array(4) as unknown as Uint32Array)).toThrow(/bitset/);
    const fresh = newGraph('ip', 4);
    await expect(fresh.addAsync(new Float32Array(4), 1, 10)).rejects.toThrow(/not initialised/);
    // the index still answers afterwards
    expect(g.search(set.row(7), 1, 64, false)[0]).toBe(7);
  });

  it('distance kernels (AVX2+FMA where the CPU has them, else hnswlib\'s) agree with float64 arithmetic for every dimension shape', () => {
    // Run in this process (the kernels picked for this CPU) and in a child forced to hnswlib's own.
    const script = `
      const { Graph, simd } = require(${JSON.stringify(addonFile())});
      const out = { simd, worst: 0 };
      let seed = 7;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      for (const space of ['l2', 'ip']) for (const dim of [1, 3, 4, 7, 8, 15, 16, 17, 31, 100, 128, 129]) {
        const g = new Graph(space, dim);
        g.init(64, 8, 50);
        const pts = [];
        for (let i = 0; i < 40; i++) { const p = Float32Array.from({ length: dim }, rnd); pts.push(p); g.add(p, i, 64); }
        const q = Float32Array.from({ length: dim }, rnd);
        const pairs = g.search(q, 40, 50, true);
        if (pairs.length !== 80) throw new Error('expected 40 hits');
        for (let j = 0; j < 40; j++) {
          const p = pts[pairs[2 * j]];
          let ref = 0;
          for (let i = 0; i < dim; i++) ref += space === 'l2' ? (q[i] - p[i]) ** 2 : q[i] * p[i];
          if (space === 'ip') ref = 1 - ref;
          out.worst = Math.max(out.worst, Math.abs(pairs[2 * j + 1] - ref) / Math.max(1, Math.abs(ref)));
        }
      }
      console.log(JSON.stringify(out));`;
    const run = (env: NodeJS.ProcessEnv) => JSON.parse(execFileSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' })) as { simd: string; worst: number };
    const native = run({ RLGRAPH_SIMD: '' });
    const baseline = run({ RLGRAPH_SIMD: 'baseline' });
    expect(['avx2-fma', 'baseline']).toContain(native.simd);
    if (process.arch === 'x64' && /\bavx2\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))) expect(native.simd).toBe('avx2-fma');
    expect(baseline.simd).toBe('baseline');
    expect(native.worst).toBeLessThan(1e-5);
    expect(baseline.worst).toBeLessThan(1e-5);
  });

  it('a graph filling up gets huge pages where the kernel gives them; saved and loaded back it answers identically', async () => {
    const dim2 = 128;
    const big = clustered(12_000, dim2, 20, 9); // ~8 MB of level 0: past the 4 MB huge-page threshold
    const hugeBefore = anonHugeKb();
    const a = newGraph('l2', dim2);
    a.init(12_000, 16, 50);
    for (let i = 0; i < 12_000; i++) a.add(big.row(i), i, 2 ** 32);
    const thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    if (!/\[never\]/.test(thp) && process.env.RLGRAPH_HUGEPAGES !== 'off') expect(anonHugeKb() - hugeBefore).toBeGreaterThanOrEqual(2048);
    // saved into the middle of a buffer, loaded back from there
    const size = a.savedSize();
    const buf = new Uint8Array(size + 100);
    await a.saveIntoAsync(buf, 60);
    const b = newGraph('l2', dim2);
    await b.loadFromAsync(buf, 60, 60 + size);
    expect(b.currentCount()).toBe(12_000);
    expect(b.capacity()).toBe(12_000);
    for (const q of big.queries(50, 4)) expect(Array.from(b.search(q, 10, 64, false))).toEqual(Array.from(a.search(q, 10, 64, false)));
    // and it keeps growing as before
    await b.addAsync(big.row(5), 20_000, 2 ** 32);
    expect(b.search(big.row(5), 2, 64, true)[0]).toBeOneOf([5, 20_000]);
    // bad ranges and bytes are errors, not crashes
    expect(() => a.saveIntoAsync(buf, 200)).toThrow(/outside/);
    expect(() => b.loadFromAsync(buf, 60, size + 200)).toThrow(/outside/);
    expect(() => a.saveIntoAsync(buf, -1)).toThrow(/offset/);
    expect(() => a.saveIntoAsync(buf, 2 ** 64 - 1)).toThrow(/offset/);
    expect(() => b.loadFromAsync(buf, -5, 10)).toThrow(/offset/);
    expect(() => b.loadFromAsync(buf, 0.5, 10)).toThrow(/offset/);
    await expect(newGraph('l2', dim2).loadFromAsync(buf, 0, 50)).rejects.toThrow();
    expect(b.currentCount()).toBe(12_001);
  });

  it('an async insert past the capacity limit fails cleanly', async () => {
    const small = newGraph('l2', 2);
    small.init(1, 16, 100);
    await small.addAsync(new Float32Array([1, 2]), 0, 1);
    await expect(small.addAsync(new Float32Array([3, 4]), 1, 1)).rejects.toThrow(/full/);
    expect(small.currentCount()).toBe(1);
  });

  it('a batch insert runs in order, stops at the first failure and says how many went in', async () => {
    const g = newGraph('l2', 2);
    g.init(2, 16, 100);
    expect(await g.addBatchAsync(new Float32Array([1, 2, 3, 4]), new Uint32Array([0, 1]), 10)).toBe(2);
    // grows to the limit (3), then the next insert fails: one went in, the third was not tried
    const r = await g.addBatchAsync(new Float32Array([5, 6, 7, 8, 9, 10]), new Uint32Array([2, 3, 4]), 3);
    expect(r).toBeInstanceOf(Error);
    expect((r as Error).message).toMatch(/full/);
    expect((r as Error & { inserted: number }).inserted).toBe(1);
    expect(g.currentCount()).toBe(3);
    expect([...g.search(new Float32Array([5, 6]), 1, 10, false)]).toEqual([2, 0]);
    expect(() => g.addBatchAsync(new Float32Array(3), new Uint32Array(2), 10)).toThrow(/do not match/);
    expect(() => g.addBatchAsync([1, 2] as unknown as Float32Array, new Uint32Array(1), 10)).toThrow(/Float32Array/);
  });

  it('a collected graph gives its memory back (its finalizer hands it to the bulk thread)', () => {
    const script = `
      const A = require(${JSON.stringify(addonFile())});
      const rss = () => process.memoryUsage().rss / 2 ** 20;
      const before = rss();
      let g = new A.Graph('l2', 256);
      g.init(60000, 16, 20);
      const p = new Float32Array(256);
      for (let i = 0; i < 60000; i++) { p[0] = i; g.add(p, i, 1e6); }
      const full = rss();
      g = null;
      globalThis.gc();
      globalThis.gc();
      setTimeout(() => console.log(JSON.stringify({ grew: full - before, left: rss() - before })), 300);`;
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { timeout: 60_000, encoding: 'utf8' })) as { grew: number; left: number };
    expect(out.grew).toBeGreaterThan(60); // 60k × (1 KB vector + links)
    expect(out.left).toBeLessThan(out.grew / 3);
  });

  it('worker threads with their own graphs and engine pools finish and exit; idle, the engine keeps nobody alive', () => {
    // In a child process: a crash there is a failed assertion here, not a dead test runner.
    const script = `
      import { createRequire } from 'node:module';
      import { Worker, isMainThread } from 'node:worker_threads';
      const A = createRequire(import.meta.url)(${JSON.stringify(addonFile())});
      const g = new A.Graph('l2', 32);
      g.init(1000, 16, 100);
      const v = () => Float32Array.from({ length: 32 }, Math.random);
      if (isMainThread) {
        const codes = await Promise.all(Array.from({ length: 3 }, () => new Promise((resolve) => new Worker(new URL(import.meta.url)).once('exit', resolve))));
        await g.addAsync(v(), 1, 10);
        let chained = 0;
        await Promise.all(Array.from({ length: 50 }, () => g.searchAsync(v(), 1, 10, false).then(() => chained++)));
        console.log('exits', codes.join(','), 'settled', chained, g.currentCount());
      } else {
        for (let i = 0; i < 20; i++) {
          await Promise.all(Array.from({ length: 16 }, (_, j) => g.addAsync(v(), i * 16 + j, 1e6)));
          await g.searchAsync(v(), 10, 100, true);
        }
      }`;
    const dir = mkdtempSync(path.join(tmpdir(), 'rlgraph-worker-'));
    try {
      const file = path.join(dir, 'run.mjs');
      writeFileSync(file, script);
      // exits by itself: no timer or socket is left, so only the engine could keep it alive
      const out = execFileSync(process.execPath, [file], { timeout: 30_000, encoding: 'utf8' });
      expect(out.trim()).toBe('exits 0,0,0 settled 50 1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('native crc32 (snapshot checksums off the event loop)', () => {
  it('equals zlib\'s CRC-32 for any length, offset and starting value', async () => {
    const { crc32Async } = loadAddon();
    const big = randomBytes(3 * 1024 * 1024 + 13);
    for (const [start, end] of [[0, 0], [0, 1], [1, 8], [3, 17], [5, 1000], [7, big.length], [0, big.length]] as const) {
      const part = big.subarray(start, end);
      expect(await crc32Async(part)).toBe(zlib.crc32(part));
      expect(await crc32Async(part, 0xdeadbeef)).toBe(zlib.crc32(part, 0xdeadbeef));
    }
    expect(await crc32Sliced(big)).toBe(zlib.crc32(big));
    expect(() => crc32Async('text' as unknown as Uint8Array)).toThrow(/Uint8Array/);
  });
});

describe('snapshot buffers (native memory, freed off the event loop)', () => {
  const rssMb = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
  it('are faulted in when handed over, and freed when released (their views then read as empty)', async () => {
    const before = rssMb();
    const buf = await snapshotBuffer(150 * 1024 * 1024);
    expect(buf.length).toBe(150 * 1024 * 1024);
    expect(rssMb() - before).toBeGreaterThan(120); // touched on an engine thread, not as the loop writes it
    buf.fill(7, 0, 1000);
    expect(buf[999]).toBe(7);
    releaseSnapshotBuffer(buf);
    expect(buf.length).toBe(0);
    for (let i = 0; i < 50 && rssMb() - before > 60; i++) await new Promise((r) => setTimeout(r, 20));
    expect(rssMb() - before).toBeLessThan(60);
    // a buffer not made here is left alone
    const plain = Buffer.alloc(10, 1);
    releaseSnapshotBuffer(plain);
    expect(plain.length).toBe(10);
    expect(() => loadAddon().releaseBuffer('x' as unknown as ArrayBuffer)).toThrow(/arrayBuffer/);
  });
});

describe('through the server', () => {
  let redis: RedisServerHandle;
  let server: LlmServer;
  let r: Redis;
  const vec = (i: number, j = 0) => Array.from({ length: 8 }, (_, d) => Math.sin(i * 3.1 + d * 0.7 + j)).join(',');

  beforeAll(async () => {
    redis = await startRedis();
    server = await startServer({ redis: redis.url });
    await server.loadingDone;
    r = client(server.port);
  });
  afterAll(async () => {
    r.disconnect();
    await server.stop();
    await redis.stop();
  });

  it('INFO llm names the distance kernels the engine runs', async () => {
    const info = String(await r.call('INFO', 'llm'));
    expect(info).toMatch(/\r\nllm_vector_simd:(avx2-fma|baseline)\r\n/);
    expect(info).toContain(`llm_vector_simd:${simdLevel()}`);
  });

  it('pipelined ADDs keep request order, and the same connection reads its own writes', async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'order', '--PARAMS', '{"dim":8}');
    const p = r.pipeline();
    for (let i = 1; i <= 300; i++) p.call('LLM.ADD', 'order', '--ID', String(i % 50), '--EMBEDDING', vec(i), `v${i}`);
    p.call('LLM.REM', 'order', '7');
    p.call('LLM.ADD', 'order', '--ID', '7', '--EMBEDDING', vec(7, 99), 'last');
    p.call('LLM.SIZE', 'order');
    p.call('LLM.GET', 'order', '7');
    p.call('LLM.KNN', 'order', '--K', '1', '--WITHDATA', '--EMBEDDING', vec(7, 99));
    const out = (await p.exec())!.map(([e, v]) => {
      expect(e).toBeNull();
      return v;
    });
    const n = out.length;
    expect(out[n - 3]).toBe(50);
    expect((out[n - 2] as string[])[0]).toBe('last');
    expect((out[n - 1] as unknown[][])[0]!.slice(0, 1).concat((out[n - 1] as unknown[][])[0]![2])).toEqual([7, 'last']);
    // every id holds its last write (ids i % 50: the last i for each)
    for (const id of [1, 13, 49, 0]) {
      const last = [...Array(300).keys()].map((x) => x + 1).filter((i) => i % 50 === id).pop()!;
      expect(((await r.call('LLM.GET', 'order', String(id))) as string[])[0]).toBe(`v${last}`);
    }
  });

  it('pipelined ADDs reach the engine in batches and end exactly as the same ADDs sent one at a time', async () => {
    const ops: string[][] = [];
    for (let i = 1; i <= 240; i++) {
      if (i % 7 === 0) ops.push(['--ID', String(1 + (i % 40)), '--EMBEDDING', vec(i), `again ${i}`]); // updates (a new batch at each)
      else if (i % 11 === 0) ops.push(['--ID', String(1000 + i), '--EMBEDDING', vec(i), `far ${i}`]); // the auto ids jump past it
      else ops.push([...(i % 5 === 0 ? ['--ATTRS', `{"i":${i}}`] : []), '--EMBEDDING', vec(i), `auto ${i}`]);
    }
    await r.call('LLM.CREATE-VECTOR-STORE', 'one', '--PARAMS', '{"dim":8}');
    await r.call('LLM.CREATE-VECTOR-STORE', 'many', '--PARAMS', '{"dim":8}');
    const single: unknown[] = [];
    for (const o of ops) single.push(await r.call('LLM.ADD', 'one', ...o));
    const sizes: number[] = [];
    const original = VectorIndex.prototype.runBatch;
    VectorIndex.prototype.runBatch = function (this: VectorIndex, b: Parameters<typeof original>[0]) {
      sizes.push(b.items.length);
      return original.call(this, b);
    };
    let piped: unknown[];
    try {
      const p = r.pipeline();
      for (const o of ops) p.call('LLM.ADD', 'many', ...o);
      piped = (await p.exec())!.map(([e, v]) => (e ? String(e) : v));
    } finally {
      VectorIndex.prototype.runBatch = original;
    }
    expect(piped).toEqual(single);
    expect(sizes.length).toBeGreaterThan(5);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(sizes.reduce((a, x) => a + x, 0)).toBeGreaterThan(ops.length / 2);
    expect(await r.call('LLM.SIZE', 'many')).toBe(await r.call('LLM.SIZE', 'one'));
    for (const id of single) expect(await r.call('LLM.GET', 'many', String(id))).toEqual(await r.call('LLM.GET', 'one', String(id)));
    for (let q = 0; q < 10; q++) {
      const args = ['--K', '5', '--WITHDATA', '--EMBEDDING', vec(q, 0.5)];
      expect(await r.call('LLM.KNN', 'many', ...args)).toEqual(await r.call('LLM.KNN', 'one', ...args));
      expect(await r.call('LLM.KNN', 'many', ...args, '--FILTER', 'i >= 100')).toEqual(await r.call('LLM.KNN', 'one', ...args, '--FILTER', 'i >= 100'));
    }
  });

  it('a read waits for one turn of at most 8 queued entries, not for a whole backlog of them (a follower catching up)', async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'backlog', '--PARAMS', '{"dim":8}');
    await r.call('LLM.ADD', 'backlog', '--ID', '1', '--EMBEDDING', vec(1), 'b1');
    const store = server.objects!.get(0, 'backlog') as StoreObject;
    // 300 entries taken for applying at once, as a follower takes another instance's log batch
    const t = Date.now() + 60_000;
    const applied: Array<Promise<unknown> | undefined> = [];
    for (let i = 2; i <= 301; i++) {
      const v = Float32Array.from(vec(i).split(',').map(Number));
      applied.push(server.objects!.applyRecorded(store, `${t}-${i}`, { op: 'add', id: String(i), data: `b${i}`, vec: vectorToFp32(v) }));
    }
    // a read that comes now runs after the turn running and the one waiting, not after all 300
    const size = await store.gate.shared(() => store.index.size);
    expect(size).toBeGreaterThan(1);
    expect(size).toBeLessThanOrEqual(1 + 1 + 8);
    await Promise.all(applied);
    expect(await r.call('LLM.SIZE', 'backlog')).toBe(301);
    expect(((await r.call('LLM.GET', 'backlog', '301')) as string[])[0]).toBe('b301');
  });

  it('pipelined KNNs run at once, but never see a write pipelined after them and always see one before them', async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'mix', '--PARAMS', '{"dim":8}');
    await r.call('LLM.ADD', 'mix', '--ID', '1', '--EMBEDDING', vec(1), 'one');
    for (let round = 0; round < 20; round++) {
      const id = 100 + round;
      const p = r.pipeline();
      for (let j = 0; j < 5; j++) p.call('LLM.KNN', 'mix', '--K', '50', '--EMBEDDING', vec(id)); // before the ADD
      p.call('LLM.ADD', 'mix', '--ID', String(id), '--EMBEDDING', vec(id), `v${id}`);
      for (let j = 0; j < 5; j++) p.call('LLM.KNN', 'mix', '--K', '1', '--EMBEDDING', vec(id)); // after it
      p.call('LLM.REM', 'mix', String(id));
      p.call('LLM.KNN', 'mix', '--K', '50', '--EMBEDDING', vec(id));
      const out = (await p.exec())!.map(([e, v]) => {
        expect(e).toBeNull();
        return v as unknown[][];
      });
      for (let j = 0; j < 5; j++) expect(out[j]!.map((h) => h[0])).not.toContain(id);
      expect(out[5]).toBe(id);
      for (let j = 6; j < 11; j++) expect(out[j]![0]![0]).toBe(id);
      expect(out[11]).toBe(1);
      expect(out[12]!.map((h) => h[0])).not.toContain(id);
    }
  });

  it('a write acknowledged on one connection is seen by the next read on another; KNN during ADDs only sees whole items', async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'rw', '--PARAMS', '{"dim":8}');
    const other = client(server.port);
    const writer = client(server.port);
    try {
      let stop = false;
      const reader = (async () => {
        let checks = 0;
        while (!stop) {
          const hits = (await other.call('LLM.KNN', 'rw', '--K', '5', '--WITHDATA', '--EMBEDDING', vec(checks))) as unknown[][];
          for (const [id, , data] of hits) expect(data).toBe(`d${id}`);
          checks++;
        }
        return checks;
      })();
      for (let i = 1; i <= 150; i++) {
        expect(await writer.call('LLM.ADD', 'rw', '--ID', String(i), '--EMBEDDING', vec(i), `d${i}`)).toBe(i);
        expect(((await other.call('LLM.GET', 'rw', String(i))) as string[])[0]).toBe(`d${i}`);
      }
      stop = true;
      expect(await reader).toBeGreaterThan(0);
    } finally {
      other.disconnect();
      writer.disconnect();
    }
  });

  it('an engine failure on a logged change: a clear error, then the store is rebuilt from its log', async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'fragile', '--PARAMS', '{"dim":8}');
    for (let i = 1; i <= 20; i++) await r.call('LLM.ADD', 'fragile', '--ID', String(i), '--EMBEDDING', vec(i), `f${i}`);
    const original = VectorIndex.prototype.addAsync;
    let failures = 0;
    VectorIndex.prototype.addAsync = function (this: VectorIndex, ...args: Parameters<typeof original>) {
      if (failures++ === 0) return Promise.reject(new Error('injected engine failure'));
      return original.apply(this, args);
    };
    try {
      await expect(r.call('LLM.ADD', 'fragile', '--ID', '21', '--EMBEDDING', vec(21), 'f21')).rejects.toThrow(
        /^ERR vector engine failed: injected engine failure; the change is in the log and is applied again as the store reloads$/,
      );
    } finally {
      VectorIndex.prototype.addAsync = original;
    }
    // the reload (queued behind the failed turn) replays the whole log, the failed ADD included
    const got = (await r.call('LLM.GET', 'fragile', '21')) as string[];
    expect(got[0]).toBe('f21');
    expect(await r.call('LLM.SIZE', 'fragile')).toBe(21);
    for (let i = 1; i <= 20; i++) expect(((await r.call('LLM.GET', 'fragile', String(i))) as string[])[0]).toBe(`f${i}`);
    const hit = (await r.call('LLM.KNN', 'fragile', '--K', '1', '--EMBEDDING', vec(21))) as unknown[][];
    expect(hit[0]![0]).toBe(21);
    const info = (await r.call('LLM.INFO', 'fragile')) as unknown[];
    expect(info[info.indexOf('engine_failures') + 1]).toBe(1);
    // and it keeps taking writes
    expect(await r.call('LLM.ADD', 'fragile', '--EMBEDDING', vec(22), 'f22')).toBe(22);
  });

  it('an engine failure inside a batch of pipelined ADDs: that ADD gets the error, the ones after it go on, the reload applies them all', async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'fragile2', '--PARAMS', '{"dim":8}');
    await r.call('LLM.ADD', 'fragile2', '--ID', '1', '--EMBEDDING', vec(1), 'g1');
    const store = server.objects!.get(0, 'fragile2') as StoreObject;
    // The first batch's engine task inserts one point, then fails (a native method cannot be replaced: shadowed).
    const graph = (store.index as unknown as { graph: NativeGraph }).graph;
    const original = graph.addBatchAsync;
    let failures = 0;
    Object.defineProperty(graph, 'addBatchAsync', {
      configurable: true,
      value: async (points: Float32Array, labels: Uint32Array, max: number) => {
        if (failures++ > 0) return original.call(graph, points, labels, max);
        const done = await original.call(graph, points.subarray(0, 8), labels.subarray(0, 1), max);
        return Object.assign(new Error('injected engine failure'), { inserted: done as number });
      },
    });
    const p = r.pipeline();
    for (let i = 2; i <= 40; i++) p.call('LLM.ADD', 'fragile2', '--ID', String(i), '--EMBEDDING', vec(i), `g${i}`);
    const out = (await p.exec())!;
    const failed = out.filter(([e]) => e !== null).map(([e]) => String((e as Error).message));
    expect(failures).toBeGreaterThan(1);
    expect(failed).toEqual(['ERR vector engine failed: injected engine failure; the change is in the log and is applied again as the store reloads']);
    // every other ADD answered its id; after the reload every item is there, the failed ones too
    for (const [e, v] of out) if (e === null) expect(typeof v).toBe('number');
    await vi.waitFor(async () => expect(await r.call('LLM.SIZE', 'fragile2')).toBe(40), { timeout: 5000 });
    for (let i = 1; i <= 40; i++) expect(((await r.call('LLM.GET', 'fragile2', String(i))) as string[])[0]).toBe(`g${i}`);
    const info = (await r.call('LLM.INFO', 'fragile2')) as unknown[];
    expect(info[info.indexOf('engine_failures') + 1]).toBe(1);
    const hit = (await r.call('LLM.KNN', 'fragile2', '--K', '1', '--EMBEDDING', vec(7))) as unknown[][];
    expect(hit[0]![0]).toBe(7);
  });
});
