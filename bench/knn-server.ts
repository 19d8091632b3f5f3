/**
 * KNN through the server vs hnswlib-node in process (issue 4):
 *
 *   1. n vectors (default 100k × 128 dims, Gaussian clusters: harness/vector-data.ts) loaded into a
 *      vector store of a child redis-llm-server with pipelined `LLM.ADD --EMBEDDING-FP32` on many
 *      connections: ADD throughput.
 *   2. The same data added to a hnswlib-node index in this process, same params (l2, m 16,
 *      ef_construction 200) and the same search ef (the store's default, 100).
 *   3. KNN k=10 QPS: through the server with 50 pipelined clients (binary `--EMBEDDING-FP32` and
 *      CSV `--EMBEDDING` query forms), and in process (searchKnn in a loop, one thread), in
 *      alternating slices of --seconds, --rounds times; the table shows server/in-process ratios
 *      measured in this run, by throughput and by CPU time per query.
 *   4. recall@10 of each against brute force (over --queries queries).
 *
 * The load generators are raw sockets with pre-encoded requests (a RESP scanner counts replies),
 * so client-side parsing costs little of the two cores this box has.
 *
 * Usage: npx tsx bench/knn-server.ts [--n 100000] [--dim 128] [--clusters 100] [--queries 500]
 *          [--clients 50] [--pipeline 8] [--seconds 2] [--rounds 5] [--load-clients 50] [--no-build]
 *          [--server-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof"]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import hnswlib from 'hnswlib-node';
import { Redis } from 'ioredis';
import { ReplyScanner } from '../src/protocol/reply-scanner.js';
import { encodeRequest } from '../src/protocol/request-parser.js';
import { freePort, startRedis, waitForPort, type RedisServerHandle } from '../harness/redis-server.js';
import { bruteForce, clustered, recall, type Clustered } from '../harness/vector-data.js';
import { startChildServer } from '../harness/child.js';
import { newGraph, simdLevel } from '../src/vector/native.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist/src/cli.js');

// ---- arguments ---------------------------------------------------------------------------------

export function numArg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}
export function strArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}
export const flag = (name: string) => process.argv.includes(`--${name}`);

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
export function header(...cols: string[]): void {
  console.log(`\n| ${cols.join(' | ')} |`);
  console.log(`|${cols.map(() => '---').join('|')}|`);
}
export const row = (...cells: Array<string | number>) => console.log(`| ${cells.join(' | ')} |`);

export function build(): void {
  if (flag('no-build')) return;
  // dist/ and the native vector engine, each when stale
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('build failed');
}

// ---- child processes ---------------------------------------------------------------------------

const children = new Set<ChildProcess>();
let redisHandle: RedisServerHandle | null = null;

export async function startBackingRedis(): Promise<RedisServerHandle> {
  redisHandle = await startRedis();
  return redisHandle;
}

export interface Child {
  proc: ChildProcess;
  port: number;
  output(): string;
  startedAt: number;
}

/** Starts dist/src/cli.js with its own event loop (extra node flags from --server-node-args). */
export async function startServerChild(args: string[], port?: number): Promise<Child> {
  const nodeArgs = (strArg('server-node-args') ?? '').split(/\s+/).filter(Boolean);
  const startedAt = performance.now();
  const c = await startChildServer(args, {}, { port, nodeArgs, logLevel: 'info' });
  children.add(c.proc);
  c.proc.once('exit', () => children.delete(c.proc));
  return { proc: c.proc, port: c.port, output: c.output, startedAt };
}

export function stopChild(c: Child, signal: NodeJS.Signals = 'SIGTERM', ms = 60_000): Promise<void> {
  return new Promise((resolve) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return resolve();
    const t = setTimeout(() => c.proc.kill('SIGKILL'), ms);
    c.proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.proc.kill(signal);
  });
}

export async function cleanup(): Promise<void> {
  for (const p of children) p.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  for (const p of children) p.kill('SIGKILL');
  if (redisHandle) await redisHandle.stop().catch(() => {});
  redisHandle = null;
}
process.on('SIGINT', () => void cleanup().finally(() => process.exit(130)));
process.on('exit', () => {
  for (const p of children) p.kill('SIGKILL');
});

/** Polls until LLM.* answers (objects loaded). Returns ms since `since`. */
export async function waitReady(port: number, since: number): Promise<number> {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    for (;;) {
      try {
        await r.call('LLM.SIZE', '__ready_probe__');
        return performance.now() - since;
      } catch (e) {
        if (!/^LOADING/.test((e as Error).message)) throw e;
        await new Promise((res) => setTimeout(res, 5));
      }
    }
  } finally {
    r.disconnect();
  }
}

/**
 * Waits (up to `maxMs`) until no snapshot of `store` is due or running: its log is below the
 * server's snapshot-changes threshold (a snapshot trims what it covers). A load of 100k ADDs leaves
 * one running at its end, and one running while a benchmark measures takes CPU from what it
 * measures. Start the server with a long --snapshot-interval so none starts later.
 */
export async function snapshotSettled(r: Redis, store: string, threshold = 20_000, maxMs = 120_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const info = (await r.call('LLM.INFO', store)) as unknown[];
    if (Number(info[info.indexOf('log_length') + 1]) < threshold) return;
    await new Promise((res) => setTimeout(res, 200));
  }
}

// ---- raw pipelined client ----------------------------------------------------------------------

/**
 * Sends pre-encoded requests on one socket, keeping up to `window` in flight, until `next()`
 * returns null; counts replies and error replies (a RESP scanner finds where each reply ends).
 */
export function pump(port: number, next: () => Buffer | null, window: number): Promise<{ replies: number; errors: number; firstError?: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    const scanner = new ReplyScanner();
    const ends: number[] = [];
    let inflight = 0;
    let replies = 0;
    let errors = 0;
    let firstError: string | undefined;
    let exhausted = false;
    let midFrame = false;
    let pendingErr = false;
    const fill = () => {
      const out: Buffer[] = [];
      while (!exhausted && inflight < window) {
        const b = next();
        if (b === null) {
          exhausted = true;
          break;
        }
        out.push(b);
        inflight++;
      }
      if (out.length) sock.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      if (exhausted && inflight === 0) {
        sock.end();
        resolve({ replies, errors, firstError });
      }
    };
    sock.on('connect', fill);
    sock.on('error', reject);
    sock.on('data', (chunk: Buffer) => {
      ends.length = 0;
      scanner.scan(chunk, ends);
      let start = midFrame ? -1 : 0;
      for (const e of ends) {
        const isErr = start < 0 ? pendingErr : chunk[start] === 45;
        if (isErr) {
          errors++;
          if (firstError === undefined && start >= 0) firstError = chunk.toString('utf8', start, Math.min(e, start + 200)).trim();
        }
        start = e;
        replies++;
        inflight--;
      }
      const last = ends.length ? ends[ends.length - 1]! : start < 0 ? -1 : 0;
      if (last >= 0 && last < chunk.length) {
        midFrame = true;
        pendingErr = chunk[last] === 45;
      } else if (last === chunk.length) {
        midFrame = false;
      }
      fill();
    });
  });
}

export function fp32(v: ArrayLike<number>): Buffer {
  const b = Buffer.allocUnsafe(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i]!, i * 4);
  return b;
}
export const csv = (v: ArrayLike<number>) => Array.from(v, (x) => String(Math.fround(x))).join(',');

/**
 * Loads rows [0, n) of `set` as ids 1..n into `store` through the server: pipelined
 * `LLM.ADD --ID i --EMBEDDING-FP32` on `clients` connections. Returns elapsed ms.
 */
export async function loadThroughServer(port: number, store: string, set: Clustered, clients: number, window = 64): Promise<number> {
  const n = set.data.length / set.dim;
  let i = 0;
  const t0 = performance.now();
  const res = await Promise.all(
    Array.from({ length: clients }, () =>
      pump(
        port,
        () => {
          if (i >= n) return null;
          const k = i++;
          return encodeRequest(['LLM.ADD', store, '--ID', String(k + 1), '--EMBEDDING-FP32', fp32(set.row(k)), `item-${k + 1}`]);
        },
        window,
      ),
    ),
  );
  const ms = performance.now() - t0;
  const errors = res.reduce((a, r) => a + r.errors, 0);
  if (errors) throw new Error(`${errors} ADDs failed: ${res.find((r) => r.firstError)?.firstError}`);
  return ms;
}

/** CPU time (user + system) a process used so far, in µs (/proc/<pid>/stat, clock ticks). */
export function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}
/**
 * CPU time per thread group of a server process, in µs: the event loop (the main thread), the
 * vector engine's searcher and writer threads (named rlgraph-*), and the rest (V8's helpers, libuv).
 */
export function threadCpuOf(pid: number): { loop: number; search: number; write: number; other: number } {
  const out = { loop: 0, search: 0, write: 0, other: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const us = ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
    if (tid === String(pid)) out.loop += us;
    else if (name.startsWith('rlgraph-search')) out.search += us;
    else if (name.startsWith('rlgraph-write')) out.write += us;
    else out.other += us;
  }
  return out;
}
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;


// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const N = numArg('n', 100_000);
  const DIM = numArg('dim', 128);
  const CLUSTERS = numArg('clusters', 100);
  const QUERIES = numArg('queries', 500);
  const CLIENTS = numArg('clients', 50);
  const PIPELINE = numArg('pipeline', 8);
  const SECONDS = numArg('seconds', 2);
  const ROUNDS = numArg('rounds', 5);
  const LOAD_CLIENTS = numArg('load-clients', 50);
  const K = 10;
  const EF = 100; // the store default (src/vector/params.ts DEFAULT_EF)
  build();
  console.log(`# knn-server: n=${N} dim=${DIM} clusters=${CLUSTERS} k=${K} ef=${EF} queries=${QUERIES} clients=${CLIENTS} pipeline=${PIPELINE} seconds=${SECONDS} rounds=${ROUNDS}, node ${process.version}`);

  const set = clustered(N, DIM, CLUSTERS, 7);
  const queries = set.queries(QUERIES, 1234);
  const redis = await startBackingRedis();
  // No snapshot on a timer while measuring (the ones the load makes due are waited for).
  const server = await startServerChild(['--redis', redis.url, '--snapshot-interval', '3600000']);
  await waitReady(server.port, server.startedAt);
  const r = new Redis({ port: server.port, host: '127.0.0.1' });
  await r.call('LLM.CREATE-VECTOR-STORE', 'bench', '--PARAMS', JSON.stringify({ space: 'l2', m: 16, ef_construction: 200, ef: EF }));

  // 1. ADD throughput through the server
  const loadMs = await loadThroughServer(server.port, 'bench', set, LOAD_CLIENTS);
  if ((await r.call('LLM.SIZE', 'bench')) !== N) throw new Error('store size mismatch');

  // 2. the in-process index: same data, same params
  const { HierarchicalNSW } = hnswlib;
  const local = new HierarchicalNSW('l2', DIM);
  local.initIndex({ maxElements: N, m: 16, efConstruction: 200 });
  const tb = performance.now();
  for (let i = 0; i < N; i++) local.addPoint(Array.from(set.row(i)), i + 1);
  const buildMs = performance.now() - tb;
  local.setEf(EF);
  // 2b. the server's own engine (native/graph.cc) in this process, searched on this thread: how
  // much of the server's lead is its kernels and memory layout rather than its threads.
  const engine = newGraph('l2', DIM);
  engine.init(N, 16, 200, 100);
  for (let i = 0; i < N; i++) engine.add(set.row(i), i, N);
  const f32 = queries.map((q) => Float32Array.from(q));

  header('ADD (given embeddings)', 'vectors', 'seconds', 'vectors/s');
  row(`server: pipelined LLM.ADD --EMBEDDING-FP32, ${LOAD_CLIENTS} connections`, fmt(N), fmt(loadMs / 1000, 1), fmt(N / (loadMs / 1000)));
  row('in process: hnswlib-node addPoint, one thread', fmt(N), fmt(buildMs / 1000, 1), fmt(N / (buildMs / 1000)));

  // 4. recall (one pass of every query, each form)
  const truth = queries.map((q) => bruteForce(set, 'l2', q, K, undefined, 1));
  const plain = queries.map((q) => Array.from(q));
  const binReq = queries.map((q) => encodeRequest(['LLM.KNN', 'bench', '--K', String(K), '--EMBEDDING-FP32', fp32(q)]));
  const csvReq = queries.map((q) => encodeRequest(['LLM.KNN', 'bench', '--K', String(K), '--EMBEDDING', csv(q)]));
  let recLocal = 0;
  let recEngine = 0;
  let recBin = 0;
  let recCsv = 0;
  let sameForms = 0;
  for (let i = 0; i < QUERIES; i++) {
    recLocal += recall(local.searchKnn(plain[i]!, K).neighbors.map((id) => ({ id })), truth[i]!);
    const e = engine.search(Float32Array.from(queries[i]!), K, EF, false);
    recEngine += recall(Array.from({ length: e.length / 2 }, (_, j) => ({ id: e[2 * j]! + 1 })), truth[i]!);
    const b = (await r.call('LLM.KNN', 'bench', '--K', String(K), '--EMBEDDING-FP32', fp32(queries[i]!))) as [number, string][];
    const c = (await r.call('LLM.KNN', 'bench', '--K', String(K), '--EMBEDDING', csv(queries[i]!))) as [number, string][];
    recBin += recall(b.map(([id]) => ({ id })), truth[i]!);
    recCsv += recall(c.map(([id]) => ({ id })), truth[i]!);
    if (JSON.stringify(b) === JSON.stringify(c)) sameForms++;
  }
  r.disconnect();
  const r2 = new Redis({ port: server.port, host: '127.0.0.1' });

  // 3. QPS. The box is shared (2 cores, neighbours come and go), so the three targets run in
  // alternating slices (in process, binary, CSV; --rounds times) and the table shows medians, the
  // ratio of medians and the range of the per-round ratios. CPU time per query (the server
  // process from /proc, the in-process loop from process.cpuUsage) is much less disturbed by
  // neighbours: "CPU µs/query" and its ratio tell what a full core each would give.
  type Run = { qps: number; cpuUs: number; loopUs?: number; searchUs?: number };
  const serverRun = async (reqs: Buffer[]): Promise<Run> => {
    const deadline = performance.now() + SECONDS * 1000;
    let q = 0;
    const cpu0 = cpuOf(server.proc.pid!);
    const th0 = threadCpuOf(server.proc.pid!);
    const t0 = performance.now();
    const res = await Promise.all(
      Array.from({ length: CLIENTS }, () =>
        pump(server.port, () => (performance.now() < deadline ? reqs[q++ % reqs.length]! : null), PIPELINE),
      ),
    );
    const ms = performance.now() - t0;
    const cpuUs = cpuOf(server.proc.pid!) - cpu0;
    const th1 = threadCpuOf(server.proc.pid!);
    const replies = res.reduce((a, x) => a + x.replies, 0);
    const errors = res.reduce((a, x) => a + x.errors, 0);
    if (errors) throw new Error(`${errors} KNN errors: ${res.find((x) => x.firstError)?.firstError}`);
    return { qps: replies / (ms / 1000), cpuUs: cpuUs / replies, loopUs: (th1.loop - th0.loop) / replies, searchUs: (th1.search - th0.search) / replies };
  };
  const localRun = (which: 'hnswlib' | 'engine' = 'hnswlib'): Run => {
    const deadline = performance.now() + SECONDS * 1000;
    let n = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() < deadline) {
      if (which === 'hnswlib') for (let i = 0; i < 50; i++) local.searchKnn(plain[n++ % plain.length]!, K);
      else for (let i = 0; i < 50; i++) engine.search(f32[n++ % f32.length]!, K, EF, false);
    }
    const c = process.cpuUsage(c0);
    return { qps: n / ((performance.now() - t0) / 1000), cpuUs: (c.user + c.system) / n };
  };
  await snapshotSettled(r2, 'bench');
  r2.disconnect();
  await serverRun(binReq.slice(0, 50)); // warm-up
  const runs: Record<'local' | 'engine' | 'bin' | 'csv', Run[]> = { local: [], engine: [], bin: [], csv: [] };
  for (let round = 0; round < ROUNDS; round++) {
    runs.local.push(localRun());
    runs.engine.push(localRun('engine'));
    runs.bin.push(await serverRun(binReq));
    runs.csv.push(await serverRun(csvReq));
  }
  const med = (a: number[]) => {
    const s = [...a].sort((x, y) => x - y);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const localQps = med(runs.local.map((x) => x.qps));
  const localCpu = med(runs.local.map((x) => x.cpuUs));
  const line = (label: string, key: 'local' | 'engine' | 'bin' | 'csv', rec: number) => {
    const qps = med(runs[key].map((x) => x.qps));
    const cpu = med(runs[key].map((x) => x.cpuUs));
    const pair = runs[key].map((x, i) => x.qps / runs.local[i]!.qps);
    row(
      label,
      fmt(qps),
      `${fmt(Math.min(...runs[key].map((x) => x.qps)))}–${fmt(Math.max(...runs[key].map((x) => x.qps)))}`,
      `${fmt(qps / localQps, 2)} (${fmt(Math.min(...pair), 2)}–${fmt(Math.max(...pair), 2)})`,
      fmt(cpu, 1),
      key === 'local' || key === 'engine' ? '' : `${fmt(med(runs[key].map((x) => x.loopUs!)), 1)} / ${fmt(med(runs[key].map((x) => x.searchUs!)), 1)}`,
      fmt(localCpu / cpu, 2),
      fmt(rec / QUERIES, 3),
    );
  };
  header(`KNN k=${K}, ef=${EF}`, 'QPS (median)', 'QPS range', '× in process (per-round range)', 'CPU µs/query', 'of which event loop / searcher threads', '× in process by CPU', 'recall@10');
  line('in process: hnswlib-node searchKnn, one thread', 'local', recLocal);
  line(`in process: the server's engine (${simdLevel()} kernels, huge pages), one thread`, 'engine', recEngine);
  line(`server, --EMBEDDING-FP32, ${CLIENTS} clients × pipeline ${PIPELINE}`, 'bin', recBin);
  line(`server, --EMBEDDING (CSV), ${CLIENTS} clients × pipeline ${PIPELINE}`, 'csv', recCsv);
  console.log(`# ${ROUNDS} rounds of ${SECONDS} s per target; load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log(`\n# binary and CSV queries gave identical replies for ${sameForms}/${QUERIES} queries`);
  console.log(`# targets: server ≥ 1.3× in-process single-threaded QPS at recall@10 ≥ 0.95 (searches run on the thread pool, on every core)`);
  await stopChild(server);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main()
    .catch((e) => {
      console.error(e);
      process.exitCode = 1;
    })
    .finally(() => cleanup());
}
