/**
 * Proxy overhead benchmark: redis-benchmark (Debian's redis-tools) GET and SET, 50 clients,
 * -P 1 and -P 16, against three targets in one invocation:
 *
 *   direct  the backing redis-server itself
 *   pipe    a raw Node TCP pipe to it (bench/raw-pipe.ts, no parsing: the bound of any Node proxy)
 *   server  redis-llm-server (node dist/src/cli.js --redis ...)
 *
 * Every process is started here (redis-server on a free port, the pipe and the server as child
 * processes with their own event loops) and stopped on exit, Ctrl-C or error. Runs alternate
 * target by target (the order rotates each round) so drift and noise from the rest of the machine
 * hit all three alike; the table shows the median rps per target, the spread (min–max), and the
 * ratios server/direct and server/pipe (ratio of medians; in brackets the min–max of the
 * per-round paired ratios).
 *
 * The box is shared (2 cores, and others may run tests meanwhile), so rps alone can mislead.
 * Each run also records, from /proc, the CPU time the proxy process (pipe or server) spent per
 * request — a figure that neighbours disturb much less — and the CPU used by processes other
 * than redis-server, the proxy and redis-benchmark ("other", in cores) during the run, and the
 * proxy's read/write syscalls per request (/proc/<pid>/io syscr/syscw).
 *
 * Usage: npx tsx bench/proxy.ts [--rounds N] [--quick] [--seconds S] [--no-build]
 *          [--server-node-args "--cpu-prof --cpu-prof-dir=/tmp/x"]
 *   --rounds N        measured rounds (default 5; --quick: 2)
 *   --quick           CI smoke: 2 rounds of ~0.5 s runs
 *   --seconds S       aimed duration of one redis-benchmark run (default 3); -n is chosen per
 *                     pipelining level from a warm-up pass (same -n for all three targets)
 *   --no-build        use dist/ as it is (default: build with tsc first)
 *   --server-node-args  extra node flags for the server process (profiling)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startRedis, waitForPort, type RedisServerHandle } from '../harness/redis-server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLIENTS = 50;
const TESTS = ['SET', 'GET'] as const; // SET first: GET then reads an existing key
const PIPELINES = [1, 16] as const;
const TARGETS = ['direct', 'pipe', 'server'] as const;
type Test = (typeof TESTS)[number];
type Target = (typeof TARGETS)[number];
/** server/pipe targets from issue 2, per pipelining level. */
const GOALS: Record<number, number> = { 1: 0.95, 16: 0.85 };

// ---- arguments ---------------------------------------------------------------------------------

interface Options {
  rounds: number;
  seconds: number;
  build: boolean;
  serverNodeArgs: string[];
  quick: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 5, seconds: 3, build: true, serverNodeArgs: [], quick: false };
  let rounds: number | undefined;
  let seconds: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--rounds': rounds = positive(flag, value()); break;
      case '--seconds': seconds = positive(flag, value()); break;
      case '--quick': o.quick = true; break;
      case '--no-build': o.build = false; break;
      case '--server-node-args': o.serverNodeArgs = value().split(/\s+/).filter(Boolean); break;
      case '-h': case '--help':
        console.log(readHelp());
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${argv[i]} (see --help)`);
    }
  }
  if (o.quick) { o.rounds = 2; o.seconds = 0.5; }
  if (rounds !== undefined) o.rounds = Math.floor(rounds);
  if (seconds !== undefined) o.seconds = seconds;
  return o;
}

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} wants a positive number, got ${v}`);
  return n;
}

function readHelp(): string {
  return [
    'Usage: npx tsx bench/proxy.ts [--rounds N] [--quick] [--seconds S] [--no-build] [--server-node-args "..."]',
    '  --rounds N              measured rounds (default 5; --quick: 2)',
    '  --quick                 CI smoke: 2 rounds of ~0.5 s runs',
    '  --seconds S             aimed duration of one redis-benchmark run (default 3)',
    '  --no-build              use dist/ as it is (default: tsc -p tsconfig.json first)',
    '  --server-node-args "…"  extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/x"',
  ].join('\n');
}

// ---- child processes ---------------------------------------------------------------------------

const children = new Set<ChildProcess>();
let redis: RedisServerHandle | null = null;
let cleaning: Promise<void> | null = null;
let interrupted = false;

function track(p: ChildProcess): ChildProcess {
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}

function waitExit(p: ChildProcess, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    const t = setTimeout(() => { p.kill('SIGKILL'); }, ms);
    p.once('exit', () => { clearTimeout(t); resolve(); });
  });
}

/** SIGTERM every child we started (the server then writes its --cpu-prof), SIGKILL stragglers. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const procs = [...children];
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => waitExit(p, 5000)));
    if (redis) await redis.stop().catch(() => {});
    redis = null;
  })();
  return cleaning;
}

process.on('exit', () => {
  // Last resort (e.g. process.exit from elsewhere): nothing we started may outlive us.
  for (const p of children) p.kill('SIGKILL');
  if (redis?.process && redis.process.exitCode === null) redis.process.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    interrupted = true;
    console.error(`\n${sig}: stopping children`);
    void cleanup().finally(() => process.exit(130));
  });
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = track(spawn(cmd, args, { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d) => { stdout += d; });
    p.stderr!.on('data', (d) => { stderr += d; });
    p.once('error', reject);
    p.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

/** A long-running child whose stderr is shown (prefixed) and whose early death is an error. */
function startChild(name: string, cmd: string, args: string[]): ChildProcess {
  const p = track(spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] }));
  p.stderr!.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (line.trim()) console.error(`[${name}] ${line}`);
  });
  p.once('exit', (code, signal) => {
    if (!cleaning) {
      console.error(`${name} exited unexpectedly (code ${code}, signal ${signal})`);
      void cleanup().finally(() => process.exit(1));
    }
  });
  return p;
}

async function build(): Promise<void> {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  process.stderr.write('building (tsc -p tsconfig.json) ... ');
  const r = await run(process.execPath, [tsc, '-p', 'tsconfig.json']);
  if (r.code === 0) {
    console.error('ok');
    return;
  }
  // Others may be mid-edit in the same checkout: tsc still emits; go on if the entry point exists.
  console.error(`tsc exited ${r.code}:\n${(r.stdout + r.stderr).trim().split('\n').slice(0, 10).join('\n')}`);
  if (!existsSync(path.join(ROOT, 'dist', 'src', 'cli.js'))) throw new Error('build failed and dist/src/cli.js is missing');
  console.error('continuing with the emitted dist/ (type errors above)');
}

// ---- redis-benchmark ---------------------------------------------------------------------------

// ---- CPU accounting (/proc, in clock ticks of 1/100 s) -----------------------------------------

const TICK_SECONDS = 0.01; // USER_HZ is 100 on Linux
const MARK = '__bench_cpu__ ';

/** utime+stime (self), or cutime+cstime (waited-for children) of a /proc/<pid>/stat line. */
function statTicks(line: string, children = false): number {
  const f = line.slice(line.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return children ? Number(f[13]) + Number(f[14]) : Number(f[11]) + Number(f[12]);
}

function procTicks(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    return statTicks(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return 0;
  }
}

/** read and write syscalls made so far by a process (all its threads). */
function procSyscalls(pid: number | undefined): { r: number; w: number } {
  if (!pid) return { r: 0, w: 0 };
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'latin1');
    return { r: Number(/syscr: (\d+)/.exec(io)?.[1] ?? NaN), w: Number(/syscw: (\d+)/.exec(io)?.[1] ?? NaN) };
  } catch {
    return { r: NaN, w: NaN };
  }
}

/** Busy ticks of the whole machine (all CPUs), from /proc/stat. */
function machineBusyTicks(): number {
  const f = readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is inside user)
  return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
}

interface Result {
  rps: number;
  seconds: number;
  /** CPU seconds of the proxy process (pipe or server) per request, in µs; NaN for direct. */
  proxyUsPerReq: number;
  /** CPU used meanwhile by processes that are not part of this run, in cores. */
  otherCores: number;
  /** The proxy's read and write syscalls per request; NaN for direct. */
  readsPerReq: number;
  writesPerReq: number;
}

async function benchmark(port: number, test: Test, pipeline: number, requests: number, proxyPid: number | undefined): Promise<Result> {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(requests),
    '-P', String(pipeline), '-t', test.toLowerCase(), '--csv', '-q'];
  // Through sh, which reports its waited-for child's CPU time (cutime+cstime) when it is done.
  const script = `redis-benchmark "$@"; rc=$?; read -r l < /proc/$$/stat; echo "${MARK}$l" >&2; exit $rc`;
  const redisPid = redis?.process.pid;
  const before = { machine: machineBusyTicks(), redis: procTicks(redisPid), proxy: procTicks(proxyPid), io: procSyscalls(proxyPid) };
  const t0 = process.hrtime.bigint();
  const r = await run('sh', ['-c', script, 'sh', ...args]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = { machine: machineBusyTicks(), redis: procTicks(redisPid), proxy: procTicks(proxyPid), io: procSyscalls(proxyPid) };
  const mark = r.stderr.split('\n').find((l) => l.startsWith(MARK));
  const benchTicks = mark ? statTicks(mark.slice(MARK.length), true) : 0;
  // Line: "SET","81967.21","0.323",...
  const row = r.stdout.split('\n').map((l) => l.split(',').map((c) => c.replace(/"/g, ''))).find((c) => c[0] === test);
  const rps = row ? Number(row[1]) : NaN;
  if (r.code !== 0 || !Number.isFinite(rps) || rps <= 0) {
    throw new Error(`redis-benchmark ${args.join(' ')} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  }
  const proxyTicks = after.proxy - before.proxy;
  const ours = (after.redis - before.redis) + proxyTicks + benchTicks;
  return {
    rps,
    seconds,
    proxyUsPerReq: proxyPid ? (proxyTicks * TICK_SECONDS * 1e6) / requests : NaN,
    otherCores: Math.max(0, (after.machine - before.machine - ours) * TICK_SECONDS) / seconds,
    readsPerReq: proxyPid ? (after.io.r - before.io.r) / requests : NaN,
    writesPerReq: proxyPid ? (after.io.w - before.io.w) / requests : NaN,
  };
}

// ---- statistics and table ----------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmtK = (n: number) => (n >= 100_000 ? `${Math.round(n / 1000)}k` : `${(n / 1000).toFixed(1)}k`);
const fmtR = (n: number) => n.toFixed(2);

function table(rows: string[][], rightAlign: boolean[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r, i) => {
      const line = r.map((cell, c) => (rightAlign[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ');
      return i === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

/** Round a request count to two significant digits (and at least 10 per client). */
function niceCount(n: number): number {
  const mag = 10 ** Math.max(0, Math.floor(Math.log10(n)) - 1);
  return Math.max(CLIENTS * 10, Math.round(n / mag) * mag);
}

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  for (const tool of ['redis-server', 'redis-benchmark']) {
    const r = await run('sh', ['-c', `command -v ${tool}`]).catch(() => ({ code: 1 }));
    if (r.code !== 0) throw new Error(`${tool} not found (apt-get install redis-server redis-tools)`);
  }
  if (o.build) await build();

  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  redis = await startRedis();
  const pipePort = await freePort();
  const pipe = startChild('pipe', process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'raw-pipe.ts'), String(pipePort), String(redis.port)]);
  const serverPort = await freePort();
  const server = startChild('server', process.execPath, [...o.serverNodeArgs, path.join(ROOT, 'dist', 'src', 'cli.js'),
    '--port', String(serverPort), '--redis', redis.url, '--log-level', 'warn']);
  await Promise.all([waitForPort(pipePort, '127.0.0.1', 20_000), waitForPort(serverPort, '127.0.0.1', 20_000)]);
  const ports: Record<Target, number> = { direct: redis.port, pipe: pipePort, server: serverPort };
  const pids: Record<Target, number | undefined> = { direct: undefined, pipe: pipe.pid, server: server.pid };
  console.error(`redis :${redis.port}  pipe :${pipePort}  server :${serverPort}  (load average before: ${load}; ${os.cpus().length} CPUs)`);

  // Warm-up (JIT, connections) that also measures the rates, to pick -n per pipelining level.
  const requests: Record<number, number> = {};
  for (const p of PIPELINES) {
    const rates: number[] = [];
    for (const test of TESTS) {
      for (const t of TARGETS) {
        const scale = Math.min(1, Math.max(0.25, o.seconds / 3));
        const r = await benchmark(ports[t], test, p, Math.round((p === 1 ? 20_000 : 200_000) * scale), pids[t]);
        rates.push(r.rps);
      }
    }
    // Same -n for all targets: aimed at `seconds` for the geometric mean rate (direct runs are
    // shorter, pipe/server runs longer).
    const geo = Math.exp(rates.reduce((s, r) => s + Math.log(r), 0) / rates.length);
    requests[p] = niceCount(geo * o.seconds);
  }
  console.error(`warm-up done; -n: ${PIPELINES.map((p) => `-P ${p}: ${requests[p]}`).join(', ')}; ${o.rounds} round(s)`);

  const results = new Map<string, number[]>(); // `${test}|${p}|${target}` -> rps per round
  const cpu = new Map<string, number[]>(); // same key -> proxy CPU µs per request per round
  const writes = new Map<string, number[]>(); // same key -> proxy write syscalls per request
  const reads = new Map<string, number[]>();
  const others: number[] = [];
  const key = (test: Test, p: number, t: Target) => `${test}|${p}|${t}`;
  for (let round = 0; round < o.rounds; round++) {
    const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]);
    for (const p of PIPELINES) {
      for (const test of TESTS) {
        const line: string[] = [];
        for (const t of order) {
          const r = await benchmark(ports[t], test, p, requests[p], pids[t]);
          const k = key(test, p, t);
          if (!results.has(k)) { results.set(k, []); cpu.set(k, []); writes.set(k, []); reads.set(k, []); }
          results.get(k)!.push(r.rps);
          cpu.get(k)!.push(r.proxyUsPerReq);
          writes.get(k)!.push(r.writesPerReq);
          reads.get(k)!.push(r.readsPerReq);
          others.push(r.otherCores);
          const us = Number.isNaN(r.proxyUsPerReq) ? '' : ` ${r.proxyUsPerReq.toFixed(2)} µs/req`;
          line.push(`${t} ${fmtK(r.rps)} (${r.seconds.toFixed(1)} s${us}, other ${r.otherCores.toFixed(2)})`);
        }
        console.error(`round ${round + 1}/${o.rounds}  ${test} -P ${p}:  ${line.join('  ')}`);
      }
    }
  }

  const header = ['test', '-P', 'direct rps (min–max)', 'pipe rps (min–max)', 'server rps (min–max)', 'srv/direct', 'srv/pipe', 'goal'];
  const rows: string[][] = [header];
  const misses: string[] = [];
  for (const p of PIPELINES) {
    for (const test of TESTS) {
      const cell = (t: Target) => {
        const xs = results.get(key(test, p, t))!;
        return `${fmtK(median(xs))} (${fmtK(Math.min(...xs))}–${fmtK(Math.max(...xs))})`;
      };
      const med = (t: Target) => median(results.get(key(test, p, t))!);
      const paired = (t: Target) => {
        const s = results.get(key(test, p, 'server'))!;
        const other = results.get(key(test, p, t))!;
        const ratios = s.map((x, i) => x / other[i]);
        return `${fmtR(med('server') / med(t))} [${fmtR(Math.min(...ratios))}–${fmtR(Math.max(...ratios))}]`;
      };
      const ratio = med('server') / med('pipe');
      const ok = ratio >= GOALS[p];
      if (!ok) misses.push(`${test} -P ${p}`);
      rows.push([test, String(p), cell('direct'), cell('pipe'), cell('server'), paired('direct'), paired('pipe'), `≥${GOALS[p]} ${ok ? 'met' : 'MISSED'}`]);
    }
  }
  console.log(
    `redis-benchmark ${CLIENTS} clients, -n ${PIPELINES.map((p) => `${requests[p]} at -P ${p}`).join(' / ')}, ` +
      `median of ${o.rounds} alternating round(s); ${os.cpus().length} CPUs, load average before ${load}`,
  );
  console.log(table(rows, [false, true, true, true, true, true, true, false]));
  console.log('ratios: of the medians; [min–max] of the per-round paired ratios');
  const cpuRows: string[][] = [['test', '-P', 'pipe CPU µs/req (min–max)', 'server CPU µs/req (min–max)', 'srv/pipe CPU', 'pipe reads+writes/req', 'server reads+writes/req']];
  for (const p of PIPELINES) {
    for (const test of TESTS) {
      const xs = (t: Target) => cpu.get(key(test, p, t))!;
      const cell = (t: Target) => `${median(xs(t)).toFixed(2)} (${Math.min(...xs(t)).toFixed(2)}–${Math.max(...xs(t)).toFixed(2)})`;
      const ratios = xs('server').map((x, i) => x / xs('pipe')[i]);
      const sys = (t: Target) => `${median(reads.get(key(test, p, t))!).toFixed(3)}+${median(writes.get(key(test, p, t))!).toFixed(3)}`;
      cpuRows.push([test, String(p), cell('pipe'), cell('server'),
        `${fmtR(median(xs('server')) / median(xs('pipe')))} [${fmtR(Math.min(...ratios))}–${fmtR(Math.max(...ratios))}]`, sys('pipe'), sys('server')]);
    }
  }
  console.log(`\nproxy process per request (median of ${o.rounds}): CPU time (user+sys) and read/write syscalls, from /proc`);
  console.log(table(cpuRows, [false, true, true, true, true, true, true]));
  console.log(`other processes on the machine during the runs: median ${median(others).toFixed(2)}, max ${Math.max(...others).toFixed(2)} cores` +
    (Math.max(...others) > 0.25 ? ' — the box was shared; rps figures are disturbed, the CPU-per-request figures less so' : ''));
  if (misses.length) console.log(`server/pipe goal missed: ${misses.join(', ')}`);
}

main()
  .then(() => cleanup())
  .then(() => process.exit(0))
  .catch(async (err: Error) => {
    if (!interrupted) console.error(`bench failed: ${err.message}`);
    await cleanup();
    process.exit(interrupted ? 130 : 1);
  });
