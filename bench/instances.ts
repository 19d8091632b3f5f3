/**
 * Several server instances on one backing Redis (issue 10, "Benchmark"):
 *
 *   1. KNN QPS with 1, 2 and 3 instances. One store (default 50k × 128-dim clustered vectors,
 *      harness/vector-data.ts) is loaded once through instance 1 with pipelined
 *      `LLM.ADD --ID i --EMBEDDING-FP32`; instances 2 and 3 start afterwards, from the latest
 *      snapshot plus the log tail (--follow-load: they start first and follow the bulk load, each
 *      building the whole graph on the shared cores too). Once every instance reports the same
 *      LLM.SIZE, KNN k=10 (binary `--EMBEDDING-FP32` queries, the store's fixed
 *      ef) runs from 50 pipelined clients spread evenly over the first 1, 2 or 3 instances, for
 *      --seconds per configuration, the configurations alternating in --rounds rounds (order
 *      rotated each round); medians, and the scaling ratio vs one instance. CPU use of every
 *      process (redis-server, each instance, this load generator: /proc/<pid>/stat) and of the
 *      whole machine (/proc/stat) is printed next to it: the box has `nproc` cores shared by all
 *      of them, so the ratio is bounded by the cores, not by the instances.
 *   2. Follow lag under ADD load, 2 instances (A writes, B follows; instance 3 is stopped first):
 *      one writer connection pipelines `LLM.ADD` to a fresh store on A for --lag-seconds, at a
 *      steady --rate and then at full speed (window --lag-window). Sampled ids (≈ --samples-per-s)
 *      are polled on B with LLM.GET from the moment A acknowledged them until present: the delay
 *      (ack on A → visible on B; an upper bound, polls are ~1 ms apart). B's own `INFO llm`
 *      follow lag (log entry time → applied on B; p50/p99 over its last 1024 entries) is sampled
 *      every 0.5 s. Target: ≤ 1 s under load.
 *
 * The load generators are raw sockets with pre-encoded requests (a RESP scanner finds each reply),
 * so the client side costs little of the shared cores. Every child (redis-server, instances) is
 * stopped on exit, on errors and on SIGINT/SIGTERM.
 *
 * Usage: npm run bench:instances -- [--quick] [--n 50000] [--dim 128] [--clusters 100]
 *          [--clients 50] [--pipeline 8] [--seconds 4] [--rounds 5] [--load-clients 16]
 *          [--lag-seconds 20] [--rate 500] [--lag-window 64] [--samples-per-s 50] [--follow-load]
 *          [--no-build]
 * Default ≈ 3 min on 2 cores, --quick ≈ 1 min (20k vectors, 2 s × 3 rounds, 6 s lag phases).
 * A timeline of B's lag (every 2 s, with the snapshots A and B wrote) follows the lag tables.
 * Under "where the time went", the main (JS) thread's run and run-queue wait come from
 * /proc/<pid>/schedstat: run + wait ≈ 100 % means CPU-bound; a large wait means other
 * processes held the cores.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { ReplyScanner } from '../src/protocol/reply-scanner.js';
import { encodeRequest } from '../src/protocol/request-parser.js';
import { freePort, startRedis, waitForPort, type RedisServerHandle } from '../harness/redis-server.js';
import { clustered } from '../harness/vector-data.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist/src/cli.js');

// ---- arguments ---------------------------------------------------------------------------------

const QUICK = process.argv.includes('--quick');
function numArg(name: string, dflt: number, quick = dflt): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return QUICK ? quick : dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const N = numArg('n', 50_000, 20_000);
const DIM = numArg('dim', 128);
const CLUSTERS = numArg('clusters', 100);
const CLIENTS = numArg('clients', 50);
const PIPELINE = numArg('pipeline', 8);
const SECONDS = numArg('seconds', 4, 2);
const ROUNDS = numArg('rounds', 5, 3);
const LOAD_CLIENTS = numArg('load-clients', 16);
const LAG_SECONDS = numArg('lag-seconds', 20, 6);
const RATE = numArg('rate', 500);
const LAG_WINDOW = numArg('lag-window', 64);
const SAMPLES_PER_S = numArg('samples-per-s', 50);
const K = 10;
const EF = 100; // the store default (src/vector/params.ts DEFAULT_EF), set explicitly
const PARAMS = JSON.stringify({ space: 'l2', m: 16, ef_construction: 200, ef: EF });

// ---- formatting --------------------------------------------------------------------------------

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
function header(...cols: string[]): void {
  console.log(`\n| ${cols.join(' | ')} |`);
  console.log(`|${cols.map(() => '---').join('|')}|`);
}
const row = (...cells: Array<string | number>) => console.log(`| ${cells.join(' | ')} |`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
const ms = (x: number) => (Number.isFinite(x) ? fmt(x, x < 10 ? 1 : 0) : '–');

// ---- child processes ---------------------------------------------------------------------------

interface Instance {
  name: string;
  proc: ChildProcess;
  port: number;
  output: string;
}
const children = new Set<ChildProcess>();
let redis: RedisServerHandle | null = null;

async function startInstance(name: string, redisUrl: string): Promise<Instance> {
  const port = await freePort();
  const proc = spawn(process.execPath, [CLI, '--port', String(port), '--redis', redisUrl, '--log-level', 'warn'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  const inst: Instance = { name, proc, port, output: '' };
  proc.once('exit', () => children.delete(proc));
  proc.stdout!.on('data', (d) => (inst.output += d));
  proc.stderr!.on('data', (d) => (inst.output += d));
  await waitForPort(port, '127.0.0.1', 30_000);
  // ready once LLM.* answers (objects loaded)
  const r = client(port);
  try {
    for (;;) {
      try {
        await r.call('LLM.SIZE', '__ready_probe__');
        break;
      } catch (e) {
        if (!/^LOADING/.test((e as Error).message)) throw e;
        await sleep(20);
      }
    }
  } finally {
    r.disconnect();
  }
  return inst;
}

function stopInstance(i: Instance): Promise<void> {
  return new Promise((resolve) => {
    if (i.proc.exitCode !== null || i.proc.signalCode !== null) return resolve();
    const t = setTimeout(() => i.proc.kill('SIGKILL'), 30_000);
    i.proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    i.proc.kill('SIGTERM');
  });
}

let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const p of children) p.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (children.size && Date.now() < deadline) await sleep(50);
    for (const p of children) p.kill('SIGKILL');
    if (redis) await redis.stop().catch(() => {});
    redis = null;
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));
process.on('exit', () => {
  for (const p of children) p.kill('SIGKILL');
  redis?.process.kill('SIGKILL');
});

function client(port: number): Redis {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => {}); // a stopped instance; the calls that need it fail on their own
  return r;
}

// ---- /proc -------------------------------------------------------------------------------------

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
/** CPU time (user + system) of a process so far, µs. */
function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch {
    return NaN;
  }
}
/** Whole machine: [busy, total] jiffies over all cores (/proc/stat). */
function machine(): [number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3]! + (f[4] ?? 0);
  return [total - idle, total];
}

/** Main thread of a process (the JS thread of node): [ns on a CPU, ns runnable but waiting for one]. */
function schedOf(pid: number): [number, number] {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return [run!, wait!];
  } catch {
    return [NaN, NaN];
  }
}

interface CpuUse {
  /** % of one core, whole process (all threads). */
  perProc: Record<string, number>;
  /** Main thread: % of wall time on a CPU, and runnable but waiting for a CPU (run queue). */
  mainRun: Record<string, number>;
  mainWait: Record<string, number>;
  /** Whole machine, % of one core (nproc × 100 = every core busy). */
  machineBusy: number;
  /** machineBusy minus the processes of this benchmark: other sessions on the box. */
  others: number;
}

/** Measures CPU % (of one core) of named processes and machine busy % over an interval. */
class CpuMeter {
  private t0 = performance.now();
  private c0: number[];
  private s0: Array<[number, number]>;
  private self0 = process.cpuUsage();
  private m0 = machine();
  constructor(private readonly pids: Array<[string, number]>) {
    this.c0 = pids.map(([, p]) => cpuOf(p));
    this.s0 = pids.map(([, p]) => schedOf(p));
  }
  stop(): CpuUse {
    const wallUs = (performance.now() - this.t0) * 1000;
    const perProc: Record<string, number> = {};
    const mainRun: Record<string, number> = {};
    const mainWait: Record<string, number> = {};
    this.pids.forEach(([name, pid], i) => {
      perProc[name] = ((cpuOf(pid) - this.c0[i]!) / wallUs) * 100;
      const [run, wait] = schedOf(pid);
      mainRun[name] = ((run - this.s0[i]![0]) / 1000 / wallUs) * 100;
      mainWait[name] = ((wait - this.s0[i]![1]) / 1000 / wallUs) * 100;
    });
    const s = process.cpuUsage(this.self0);
    perProc['bench'] = ((s.user + s.system) / wallUs) * 100;
    const m = machine();
    const machineBusy = ((m[0] - this.m0[0]) / (m[1] - this.m0[1])) * 100 * os.cpus().length;
    const ours = Object.values(perProc).reduce((a, b) => a + b, 0);
    return { perProc, mainRun, mainWait, machineBusy, others: Math.max(0, machineBusy - ours) };
  }
}

// ---- raw pipelined connection ------------------------------------------------------------------

type ReplyCb = (isErr: boolean, text: string | undefined) => void;

/** One socket, requests pre-encoded, a callback per reply (in order); error replies flagged. */
class RawConn {
  private sock: net.Socket;
  private scanner = new ReplyScanner();
  private ends: number[] = [];
  private cbs: Array<ReplyCb | undefined> = [];
  private head = 0;
  private midFrame = false;
  private pendingErr = false;
  inflight = 0;
  readonly ready: Promise<void>;
  onDrain: (() => void) | null = null;

  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.setNoDelay(true);
    this.ready = new Promise((res, rej) => {
      this.sock.once('connect', () => res());
      this.sock.once('error', rej);
    });
    this.sock.on('error', (e) => {
      if (this.inflight && !cleaning) console.error(`# connection error with ${this.inflight} in flight: ${e.message}`);
    });
    this.sock.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  send(bufs: Buffer[], cbs: Array<ReplyCb | undefined>): void {
    for (const cb of cbs) this.cbs.push(cb);
    this.inflight += bufs.length;
    this.sock.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
  }

  private onData(chunk: Buffer): void {
    this.ends.length = 0;
    this.scanner.scan(chunk, this.ends);
    let start = this.midFrame ? -1 : 0;
    for (const e of this.ends) {
      const isErr = start < 0 ? this.pendingErr : chunk[start] === 45;
      const text = isErr && start >= 0 ? chunk.toString('utf8', start, Math.min(e, start + 200)).trim() : undefined;
      start = e;
      this.inflight--;
      const cb = this.cbs[this.head];
      this.cbs[this.head++] = undefined;
      if (this.head > 4096 && this.head * 2 > this.cbs.length) {
        this.cbs = this.cbs.slice(this.head);
        this.head = 0;
      }
      cb?.(isErr, text);
    }
    const last = this.ends.length ? this.ends[this.ends.length - 1]! : start < 0 ? -1 : 0;
    if (last >= 0 && last < chunk.length) {
      this.midFrame = true;
      this.pendingErr = chunk[last] === 45;
    } else if (last === chunk.length) {
      this.midFrame = false;
    }
    if (this.ends.length) this.onDrain?.();
  }

  close(): void {
    this.sock.end();
  }
}

/**
 * Keeps `window` requests in flight on each connection until `next()` returns null; resolves
 * with reply and error counts once every reply arrived.
 */
async function drive(
  conns: RawConn[],
  next: () => Buffer | null,
  window: number,
  onReply?: (isErr: boolean) => void,
): Promise<{ replies: number; errors: number; firstError?: string }> {
  let replies = 0;
  let errors = 0;
  let firstError: string | undefined;
  let exhausted = false;
  await Promise.all(conns.map((c) => c.ready));
  return new Promise((resolve) => {
    const cb: ReplyCb = (isErr, text) => {
      replies++;
      if (isErr) {
        errors++;
        firstError ??= text;
      }
      onReply?.(isErr);
    };
    const fill = (c: RawConn) => {
      const bufs: Buffer[] = [];
      while (!exhausted && c.inflight + bufs.length < window) {
        const b = next();
        if (b === null) {
          exhausted = true;
          break;
        }
        bufs.push(b);
      }
      if (bufs.length) c.send(bufs, bufs.map(() => cb));
      if (exhausted && conns.every((x) => x.inflight === 0)) {
        for (const x of conns) x.onDrain = null;
        resolve({ replies, errors, firstError });
      }
    };
    for (const c of conns) {
      c.onDrain = () => fill(c);
      fill(c);
    }
  });
}

function fp32(v: ArrayLike<number>): Buffer {
  const b = Buffer.allocUnsafe(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i]!, i * 4);
  return b;
}

// ---- INFO llm ----------------------------------------------------------------------------------

interface LlmInfo {
  entries: number;
  lagMs: number;
  p50: number;
  p99: number;
  stores: Record<string, { items: number; logLength: number; lastSnapshot: number }>;
}
async function llmInfo(r: Redis): Promise<LlmInfo> {
  const text = (await r.info('llm')) as string;
  const get = (k: string) => Number(new RegExp(`^${k}:(.*)$`, 'm').exec(text)?.[1] ?? NaN);
  const stores: LlmInfo['stores'] = {};
  for (const m of text.matchAll(/^store\d+:name=([^,]*),.*?items=(\d+),.*?log_length=(\d+),last_snapshot=(\d+)/gm)) {
    stores[m[1]!] = { items: Number(m[2]), logLength: Number(m[3]), lastSnapshot: Number(m[4]) };
  }
  return {
    entries: get('llm_follow_entries'),
    lagMs: get('llm_follow_lag_ms'),
    p50: get('llm_follow_lag_p50_ms'),
    p99: get('llm_follow_lag_p99_ms'),
    stores,
  };
}

async function waitSameSize(rs: Redis[], store: string, want: number, timeoutMs: number, t0: number): Promise<number[]> {
  const at: number[] = rs.map(() => NaN);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const sizes = await Promise.all(rs.map((r) => r.call('LLM.SIZE', store) as Promise<number>));
    sizes.forEach((s, i) => {
      if (s === want && Number.isNaN(at[i]!)) at[i] = performance.now() - t0;
    });
    if (at.every((x) => !Number.isNaN(x))) return at;
    if (performance.now() > deadline) throw new Error(`instances did not converge on ${store}: sizes ${sizes.join(', ')} (want ${want})`);
    await sleep(20);
  }
}

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const t00 = performance.now();
  if (!flag('no-build')) {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('build failed (src being edited?): fix it, or run with --no-build to use the current dist');
  }
  const nproc = Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()) || os.cpus().length;
  const cpuModel = os.cpus()[0]?.model ?? '?';
  const redisVersion = /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
  console.log(
    `# instances: n=${N} dim=${DIM} clusters=${CLUSTERS} k=${K} ef=${EF} clients=${CLIENTS}×pipeline ${PIPELINE}, ${SECONDS} s × ${ROUNDS} rounds per configuration; ` +
      `lag: ${LAG_SECONDS} s per phase, steady ${RATE} ADD/s then full speed (window ${LAG_WINDOW})${QUICK ? ' [--quick]' : ''}`,
  );
  console.log(`# machine: nproc=${nproc} (${cpuModel}), node ${process.version}, redis-server ${redisVersion}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);

  const set = clustered(N, DIM, CLUSTERS, 7);
  const queries = set.queries(500, 1234).map((q) => encodeRequest(['LLM.KNN', 'bench', '--K', String(K), '--EMBEDDING-FP32', fp32(q)]));

  redis = await startRedis();
  const insts: Instance[] = [];
  const rs: Redis[] = [];
  const addInstance = async () => {
    const i = await startInstance(`instance ${insts.length + 1}`, redis!.url);
    insts.push(i);
    rs.push(client(i.port));
  };
  const pidList = (): Array<[string, number]> => [['redis-server', redis!.process.pid!], ...insts.filter((i) => i.proc.exitCode === null).map((i): [string, number] => [i.name, i.proc.pid!])];
  const cpuLine = (c: CpuUse) =>
    `${Object.entries(c.perProc).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}; other processes on the box ${fmt(c.others)}; machine ${fmt(c.machineBusy)} of ${nproc * 100}`;

  // ---- 1. load once through instance 1 ------------------------------------------------------
  // By default instances 2 and 3 start after the load (from the latest snapshot plus the log
  // tail), so the shared cores build the graph once; --follow-load starts them first and they
  // follow the bulk load (each builds the whole graph too).
  const followLoad = flag('follow-load');
  await addInstance();
  if (followLoad) for (let i = 0; i < 2; i++) await addInstance();
  await rs[0]!.call('LLM.CREATE-VECTOR-STORE', 'bench', '--PARAMS', PARAMS);
  await waitSameSize(rs, 'bench', 0, 10_000, performance.now());
  let next = 0;
  const tl = performance.now();
  const loadCpu = new CpuMeter(pidList());
  const loadConns = Array.from({ length: LOAD_CLIENTS }, () => new RawConn(insts[0]!.port));
  const lr = await drive(
    loadConns,
    () => (next < N ? encodeRequest(['LLM.ADD', 'bench', '--ID', String(next + 1), '--EMBEDDING-FP32', fp32(set.row(next)), `item-${++next}`]) : null),
    64,
  );
  const ackMs = performance.now() - tl;
  for (const c of loadConns) c.close();
  if (lr.errors) throw new Error(`${lr.errors} ADDs failed: ${lr.firstError}`);
  const conv = followLoad ? await waitSameSize(rs, 'bench', N, 600_000, tl) : [ackMs];
  const lc = loadCpu.stop();
  const late: Array<{ readyMs: number; sameMs: number; startCpu: number; machineBusy: number }> = [];
  if (!followLoad) {
    for (let i = 0; i < 2; i++) {
      const t = performance.now();
      const m0 = machine();
      await addInstance();
      const readyMs = performance.now() - t;
      const [sameMs] = await waitSameSize([rs[rs.length - 1]!], 'bench', N, 600_000, t);
      const m1 = machine();
      const wallUs = (performance.now() - t) * 1000;
      const startCpu = (cpuOf(insts[insts.length - 1]!.proc.pid!) / wallUs) * 100; // all of its life
      late.push({ readyMs, sameMs: sameMs!, startCpu, machineBusy: ((m1[0] - m0[0]) / (m1[1] - m0[1])) * 100 * os.cpus().length });
    }
  }
  const snap = (await llmInfo(rs[0]!)).stores.bench;
  header('load (once, through instance 1)', 'vectors', 'seconds', 'vectors/s');
  row(`instance 1 acknowledged every LLM.ADD (${LOAD_CLIENTS} connections × window 64)`, fmt(N), fmt(ackMs / 1000, 1), fmt(N / (ackMs / 1000)));
  if (followLoad) conv.forEach((t, i) => i && row(`instance ${i + 1} (following during the load) LLM.SIZE = ${fmt(N)}`, fmt(N), fmt(t / 1000, 1), fmt(N / (t / 1000))));
  late.forEach((l, i) =>
    row(`instance ${i + 2} started afterwards (snapshot + log tail of ${fmt(snap?.logLength ?? NaN)}): ready / LLM.SIZE = ${fmt(N)}`, fmt(N), `${fmt(l.readyMs / 1000, 1)} / ${fmt(l.sameMs / 1000, 1)}`, fmt(N / (l.sameMs / 1000))),
  );
  console.log(`# CPU during the load (% of one core): ${cpuLine(lc)}`);
  for (const [i, l] of late.entries()) console.log(`# instance ${i + 2} used ${fmt(l.startCpu)} % of a core while it started (machine ${fmt(l.machineBusy)} of ${nproc * 100})`);

  // same graph everywhere? (same params, same insertion order: the log's)
  let same = 0;
  const probe = set.queries(20, 99);
  for (const q of probe) {
    const rep = await Promise.all(rs.map((r) => r.call('LLM.KNN', 'bench', '--K', String(K), '--EMBEDDING-FP32', fp32(q))));
    if (rep.every((x) => JSON.stringify(x) === JSON.stringify(rep[0]))) same++;
  }
  console.log(`# KNN replies identical on all 3 instances for ${same}/${probe.length} probe queries`);

  // ---- KNN QPS with 1, 2, 3 instances -------------------------------------------------------
  let qi = 0;
  const knnSlice = async (nInst: number, seconds: number) => {
    const conns = Array.from({ length: CLIENTS }, (_, c) => new RawConn(insts[c % nInst]!.port));
    await Promise.all(conns.map((c) => c.ready));
    const snapBefore = await Promise.all(rs.map((r) => llmInfo(r).then((x) => x.stores.bench?.lastSnapshot ?? 0)));
    const meter = new CpuMeter(pidList());
    const deadline = performance.now() + seconds * 1000;
    const t0 = performance.now();
    const res = await drive(conns, () => (performance.now() < deadline ? queries[qi++ % queries.length]! : null), PIPELINE);
    const wall = performance.now() - t0;
    const cpu = meter.stop();
    for (const c of conns) c.close();
    if (res.errors) throw new Error(`${res.errors} KNN errors: ${res.firstError}`);
    const snapAfter = await Promise.all(rs.map((r) => llmInfo(r).then((x) => x.stores.bench?.lastSnapshot ?? 0)));
    return { qps: res.replies / (wall / 1000), cpu, snapshots: snapAfter.filter((s, i) => s !== snapBefore[i]).length };
  };
  for (const c of [1, 2, 3]) await knnSlice(c, 0.5); // warm-up (JIT, sockets)
  type Slice = Awaited<ReturnType<typeof knnSlice>>;
  const runs: Record<number, Slice[]> = { 1: [], 2: [], 3: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = [1, 2, 3].map((_, j) => [1, 2, 3][(j + round) % 3]!);
    for (const c of order) runs[c]!.push(await knnSlice(c, SECONDS));
  }
  const q1 = median(runs[1]!.map((x) => x.qps));
  const instCpu = (x: Slice) => ['instance 1', 'instance 2', 'instance 3'].reduce((a, k) => a + (x.cpu.perProc[k] ?? 0), 0);
  header(
    `KNN k=${K} ef=${EF}, ${CLIENTS} clients × pipeline ${PIPELINE}, --EMBEDDING-FP32`,
    'QPS (median)',
    'QPS range',
    '× 1 instance',
    'CPU % of one core: redis / inst 1 / inst 2 / inst 3 / load gen',
    'other processes on the box',
    `machine busy (nproc=${nproc}: of ${nproc * 100} %)`,
    'queries per instance CPU-second',
  );
  for (const c of [1, 2, 3]) {
    const rr = runs[c]!;
    const qps = median(rr.map((x) => x.qps));
    const m = (k: string) => fmt(median(rr.map((x) => x.cpu.perProc[k] ?? NaN)));
    row(
      `${c} instance${c > 1 ? 's' : ''} (clients ${Array.from({ length: c }, (_, i) => Math.ceil((CLIENTS - i) / c)).join('/')})`,
      fmt(qps),
      `${fmt(Math.min(...rr.map((x) => x.qps)))}–${fmt(Math.max(...rr.map((x) => x.qps)))}`,
      `**${fmt(qps / q1, 2)}×** (bounded by ${nproc} cores)`,
      ['redis-server', 'instance 1', 'instance 2', 'instance 3', 'bench'].map(m).join(' / '),
      `${fmt(median(rr.map((x) => x.cpu.others)))} %`,
      `${fmt(median(rr.map((x) => x.cpu.machineBusy)))} %`,
      fmt(median(rr.map((x) => x.qps / (instCpu(x) / 100)))),
    );
  }
  const all = Object.values(runs).flat();
  const gen = median(all.map((x) => (x.cpu.perProc['bench'] ?? 0) + (x.cpu.perProc['redis-server'] ?? 0)));
  const got = [1, 2, 3].map((c) => fmt(median(runs[c]!.map(instCpu)))).join(' / ');
  const others = fmt(median(all.map((x) => x.cpu.others)));
  const snapRounds = all.filter((x) => x.snapshots).length;
  console.log(
    `# scaling is bounded by the cores, not the instances: nproc=${nproc} cores shared by redis-server, every instance, this load generator and any ` +
      `other process on the box. An instance runs KNN on its one JS thread (≤ ~100 % of a core); with the load generator and redis-server taking ${fmt(gen)} %, ` +
      `k instances can get at most ${fmt(nproc * 100 - gen)} % → ≤ ${fmt(Math.min(3, (nproc * 100 - gen) / 100), 2)}× one instance that has a core to itself. ` +
      `Here the instances together got ${got} % of a core (1 / 2 / 3 instances) while other processes took ${others} %: the ratio follows the CPU they got. ` +
      `"queries per instance CPU-second" staying flat means an instance among several is as efficient as one alone.`,
  );
  console.log(`# ${ROUNDS} rounds of ${SECONDS} s per configuration, order rotated each round, medians; slices during which an instance wrote a snapshot of the store: ${snapRounds}`);

  // ---- 2. follow lag under ADD load (2 instances) -------------------------------------------
  rs[2]!.disconnect();
  await stopInstance(insts[2]!);
  const [A, B] = insts as [Instance, Instance];
  const [rA, rB] = rs as [Redis, Redis];
  await rA.call('LLM.CREATE-VECTOR-STORE', 'lag', '--PARAMS', PARAMS);
  await waitSameSize([rA, rB], 'lag', 0, 10_000, performance.now());
  const lagSet = clustered(Math.ceil(Math.max(RATE * LAG_SECONDS * 1.1, 20_000)), DIM, CLUSTERS, 11);
  const lagRows = lagSet.data.length / DIM;
  let nextId = 1; // ids keep growing across phases; vectors cycle through lagSet
  const addReq = (id: number) => encodeRequest(['LLM.ADD', 'lag', '--ID', String(id), '--EMBEDDING-FP32', fp32(lagSet.row((id - 1) % lagRows)), `lag-${id}`]);

  interface PhaseResult {
    name: string;
    adds: number;
    seconds: number;
    visible: number[];
    ack: number[];
    unresolved: number;
    infoP50: number[];
    infoP99: number[];
    infoLast: number[];
    endP50: number;
    endP99: number;
    drainMs: number;
    getRtt: number[];
    cpu: CpuUse;
    snapsA: number;
    snapsB: number;
    timeline: string[];
  }
  const phase = async (name: string, rate: number | null): Promise<PhaseResult> => {
    const sampleEvery = Math.max(1, Math.round((rate ?? 2500) / SAMPLES_PER_S));
    const conn = new RawConn(A.port);
    await conn.ready;
    const checker = client(B.port);
    const pending: Array<{ id: number; ackAt: number }> = [];
    const visible: number[] = [];
    const ack: number[] = [];
    const getRtt: number[] = [];
    let writing = true;
    let errors = 0;
    let firstError: string | undefined;
    // B: poll the oldest sampled ids acknowledged by A until present (log order = id order here)
    const checkerDone = (async () => {
      const giveUp = () => !writing && performance.now() > stopAt + 5_000;
      let stopAt = Infinity;
      while (writing || pending.length) {
        if (!writing && stopAt === Infinity) stopAt = performance.now();
        if (giveUp()) break;
        if (!pending.length) {
          await sleep(1);
          continue;
        }
        const batch = pending.slice(0, 16);
        const p = checker.pipeline();
        for (const s of batch) p.call('LLM.GET', 'lag', String(s.id));
        const sent = performance.now();
        const res = (await p.exec()) ?? [];
        const now = performance.now();
        getRtt.push(now - sent);
        let k = 0;
        while (k < batch.length && res[k]?.[1] !== null && !res[k]?.[0]) {
          visible.push(now - batch[k]!.ackAt);
          k++;
        }
        pending.splice(0, k);
        if (k < batch.length) await sleep(1);
      }
    })();
    // B's INFO llm every 0.5 s; A's store line for the timeline and snapshots
    const infoP50: number[] = [];
    const infoP99: number[] = [];
    const infoLast: number[] = [];
    const timeline: string[] = [];
    const t0 = performance.now();
    const iA0 = await llmInfo(rA);
    const iB0 = await llmInfo(rB);
    let lastRow = -1;
    let sampling = true;
    let snapA = iA0.stores.lag?.lastSnapshot ?? 0;
    let snapB = iB0.stores.lag?.lastSnapshot ?? 0;
    let snapMark = '';
    const sampler = (async () => {
      while (sampling) {
        await sleep(500);
        const [ia, ib] = await Promise.all([llmInfo(rA), llmInfo(rB)]);
        if (ib.entries > iB0.entries) {
          infoP50.push(ib.p50);
          infoP99.push(ib.p99);
          infoLast.push(ib.lagMs);
        }
        const t = (performance.now() - t0) / 1000;
        const sa = ia.stores.lag?.lastSnapshot ?? 0;
        const sb = ib.stores.lag?.lastSnapshot ?? 0;
        if (sa !== snapA) snapMark += ` A@${fmt(t, 1)}s`;
        if (sb !== snapB) snapMark += ` B@${fmt(t, 1)}s`;
        snapA = sa;
        snapB = sb;
        if (Math.floor(t / 2) !== lastRow) {
          lastRow = Math.floor(t / 2);
          const a = ia.stores.lag;
          const b = ib.stores.lag;
          timeline.push(
            `| ${fmt(t, 1)} | ${fmt(a?.items ?? 0)} | ${fmt(b?.items ?? 0)} | ${fmt((a?.items ?? 0) - (b?.items ?? 0))} | ${ib.lagMs} | ${ib.p99} | ` +
              `${snapMark.trim()} |`,
          );
          snapMark = '';
        }
      }
    })();
    const meter = new CpuMeter(pidList());
    const first = nextId;
    const stopWriting = t0 + LAG_SECONDS * 1000;
    const onAck = (id: number, sentAt: number): ReplyCb => (isErr, text) => {
      if (isErr) {
        errors++;
        firstError ??= text;
        return;
      }
      if (id % sampleEvery === 0) {
        const now = performance.now();
        pending.push({ id, ackAt: now });
        ack.push(now - sentAt);
      }
    };
    if (rate !== null) {
      // steady: every 5 ms send what is due at `rate`
      await new Promise<void>((resolve) => {
        const tick = () => {
          const now = performance.now();
          if (now >= stopWriting) {
            clearInterval(timer);
            return resolve();
          }
          const due = first + Math.floor(((now - t0) / 1000) * rate) - nextId;
          const bufs: Buffer[] = [];
          const cbs: ReplyCb[] = [];
          for (let j = 0; j < due; j++) {
            const id = nextId++;
            bufs.push(addReq(id));
            cbs.push(onAck(id, now));
          }
          if (bufs.length) conn.send(bufs, cbs);
        };
        const timer = setInterval(tick, 5);
      });
      while (conn.inflight) await sleep(2);
    } else {
      await new Promise<void>((resolve) => {
        const fill = () => {
          const now = performance.now();
          const bufs: Buffer[] = [];
          const cbs: ReplyCb[] = [];
          while (now < stopWriting && conn.inflight + bufs.length < LAG_WINDOW) {
            const id = nextId++;
            bufs.push(addReq(id));
            cbs.push(onAck(id, now));
          }
          if (bufs.length) conn.send(bufs, cbs);
          if (now >= stopWriting && conn.inflight === 0) {
            conn.onDrain = null;
            resolve();
          }
        };
        conn.onDrain = fill;
        fill();
      });
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = meter.stop();
    conn.close();
    if (errors) throw new Error(`${errors} ADDs failed on A: ${firstError}`);
    const adds = nextId - first;
    // B catches up: time from A's last ack until B's LLM.SIZE equals A's
    const tEnd = performance.now();
    const want = (await rA.call('LLM.SIZE', 'lag')) as number;
    let drainMs = NaN;
    try {
      await waitSameSize([rB], 'lag', want, 60_000, tEnd);
      drainMs = performance.now() - tEnd;
    } catch (e) {
      console.log(`# ${name}: B did not catch up with A within 60 s: ${(e as Error).message}`);
    }
    writing = false;
    await checkerDone;
    sampling = false;
    await sampler;
    const [iA, iB] = await Promise.all([llmInfo(rA), llmInfo(rB)]);
    checker.disconnect();
    return {
      name,
      adds,
      seconds,
      visible,
      ack,
      unresolved: pending.length,
      infoP50,
      infoP99,
      infoLast,
      endP50: iB.p50,
      endP99: iB.p99,
      drainMs,
      getRtt,
      cpu,
      snapsA: iA.stores.lag?.lastSnapshot !== iA0.stores.lag?.lastSnapshot ? 1 : 0,
      snapsB: iB.stores.lag?.lastSnapshot !== iB0.stores.lag?.lastSnapshot ? 1 : 0,
      timeline,
    };
  };
  const phases = [await phase(`steady ${fmt(RATE)} ADD/s`, RATE), await phase(`full speed (1 connection, window ${LAG_WINDOW})`, null)];

  header(
    'follow lag, 2 instances: writer on A, reads on B',
    'ADDs',
    'ADD/s on A',
    'ack on A p50 / p99 ms',
    'visible on B after ack on A: p50 / p99 / max ms (samples)',
    'B INFO llm lag p50 / p99 ms (at end)',
    'B INFO llm p99, 0.5 s samples: median / max ms',
    'B caught up after last ack',
  );
  for (const p of phases) {
    row(
      p.name,
      fmt(p.adds),
      fmt(p.adds / p.seconds),
      `${ms(pct(p.ack, 0.5))} / ${ms(pct(p.ack, 0.99))}`,
      `**${ms(pct(p.visible, 0.5))} / ${ms(pct(p.visible, 0.99))}** / ${ms(Math.max(...p.visible))} (${p.visible.length}${p.unresolved ? `, ${p.unresolved} never seen` : ''})`,
      `**${p.endP50} / ${p.endP99}**`,
      `${ms(median(p.infoP99))} / ${ms(Math.max(...p.infoP99))}`,
      Number.isNaN(p.drainMs) ? '**never** (diverged)' : `${fmt(p.drainMs)} ms`,
    );
  }
  const worst = Math.max(...phases.map((p) => pct(p.visible, 0.99)));
  console.log(`# target: a write acknowledged by A visible on B within 1 s under load: ${worst <= 1000 ? 'met' : 'MISSED'} (worst p99 ${ms(worst)} ms)`);
  console.log(
    `# "visible on B" = A's ack → first LLM.GET on B that returns the item (the oldest pending samples polled ~1 ms apart: an upper bound); ` +
      `"B INFO llm" = log entry time → applied on B, over B's last 1024 followed entries`,
  );
  const sched = (c: CpuUse, k: string) => `${fmt(c.mainRun[k] ?? NaN)} / ${fmt(c.mainWait[k] ?? NaN)}`;
  header(
    'where the time went (lag phases)',
    'CPU % of one core: redis / A / B / load gen',
    'other processes on the box',
    `machine busy (of ${nproc * 100} %)`,
    'A main thread: on a CPU / waiting for one %',
    'B main thread: on a CPU / waiting for one %',
    'LLM.GET round trip on B p50 / p99 / max ms',
  );
  for (const p of phases) {
    row(
      p.name,
      ['redis-server', 'instance 1', 'instance 2', 'bench'].map((k) => fmt(p.cpu.perProc[k] ?? NaN)).join(' / '),
      `${fmt(p.cpu.others)} %`,
      `${fmt(p.cpu.machineBusy)} %`,
      sched(p.cpu, 'instance 1'),
      sched(p.cpu, 'instance 2'),
      `${ms(pct(p.getRtt, 0.5))} / ${ms(pct(p.getRtt, 0.99))} / ${ms(Math.max(...p.getRtt))}`,
    );
  }
  console.log(`# main thread (node's JS thread) from /proc/<pid>/schedstat: on a CPU + waiting ≈ 100 % means it always had work (CPU-bound); "waiting" is time it was runnable but every core was busy`);
  for (const p of phases) {
    console.log(`\n# timeline, ${p.name} (every 2 s; a snapshot of the store written by A/B noticed at A@/B@ t)`);
    console.log('| t s | A items | B items | B behind | B llm_follow_lag_ms | B p99 ms | snapshot |\n|---|---|---|---|---|---|---|');
    for (const l of p.timeline) console.log(l);
  }

  // anything the instances logged (warn and above), grouped by message
  for (const i of insts) {
    const msgs = new Map<string, number>();
    for (const l of i.output.split('\n').filter((x) => x.trim())) {
      let m = l;
      try {
        m = (JSON.parse(l) as { msg?: string }).msg ?? l;
      } catch {
        /* not pino JSON */
      }
      msgs.set(m, (msgs.get(m) ?? 0) + 1);
    }
    if (msgs.size) console.log(`# ${i.name} logged: ${[...msgs].map(([m, n]) => `${n}× "${m.slice(0, 200)}"`).join('; ')}`);
  }
  for (const r of rs) r.disconnect();
  console.log(`\n# total ${fmt((performance.now() - t00) / 1000)} s`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
