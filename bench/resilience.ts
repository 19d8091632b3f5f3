/**
 * Resilience: a `fallback` router over a target that fails a given share of its calls (HTTP 500)
 * and a healthy one, against the healthy target alone.
 *
 *   single   LLM.RUN of an app on `b` (the healthy endpoint) directly
 *   router   LLM.RUN of an app on `pool` = router {"targets":["a","b"],"strategy":"fallback"}, where
 *            `a` answers 500 to the given share of its calls (0%, 20%, 50%)
 *
 * Both with cooldowns (the default: 3 failures in 60 s cool `a` down for `cooldown` s, shared through
 * the backing Redis) and without (cooldown 0: every call tries `a` first). Targets have retries 0:
 * the router's fallback is the retry. Reported per row: success rate, p50/p99 of each path and the
 * difference (the latency the router adds against a healthy single target). Targets (issue 19):
 * 100% success at 20% and 50% failure; added p50 <= 1 ms when nothing fails.
 *
 * Processes: redis-server, the two endpoints (one child process) and the server (node
 * dist/src/cli.js) are children of this script, stopped on exit. Calls are sequential, in blocks
 * alternating between the two paths so noise from the rest of the machine hits both alike.
 *
 * Usage: npm run bench:resilience -- [--runs N] [--block N] [--cooldown S] [--no-build]
 *   --runs N      measured calls per path and row (default 1000)
 *   --block N     calls per block (default 100)
 *   --cooldown S  the router's cooldown in the "with cooldowns" rows (default 30)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort, startRedis, waitForPort } from '../harness/redis-server.js';
import { ProcessGroup } from '../harness/child.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(THIS_FILE), '..');

// ---- the endpoints, in a child process: a JSON line on stdin sets a's failure share ---------

async function serveFakes(): Promise<void> {
  const { startFakeOpenAI } = await import('../harness/fake-openai.js');
  const a = await startFakeOpenAI({ reply: () => 'from a' });
  const b = await startFakeOpenAI({ reply: () => 'from b' });
  setInterval(() => {
    a.requests.splice(0);
    b.requests.splice(0);
  }, 1000).unref();
  process.stdout.write(`${JSON.stringify({ a: a.url, b: b.url })}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const { rate } = JSON.parse(line) as { rate: number };
    a.setBehavior({ fault: rate > 0 ? { type: 'status', status: 500 } : null, faultRate: rate });
    process.stdout.write('ok\n');
  });
  const stop = () => void Promise.all([a.close(), b.close()]).finally(() => process.exit(0));
  process.stdin.on('end', stop);
  process.on('SIGTERM', stop);
}

// ---- arguments, processes --------------------------------------------------------------------

interface Options {
  runs: number;
  block: number;
  cooldown: number;
  build: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 1000, block: 100, cooldown: 30, build: true };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2);
    const num = () => {
      const n = Number(inline ?? argv[++i]);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer`);
      return n;
    };
    switch (flag) {
      case '--runs': o.runs = Math.max(1, num()); break;
      case '--block': o.block = Math.max(1, num()); break;
      case '--cooldown': o.cooldown = num(); break;
      case '--no-build': o.build = false; break;
      case '-h':
      case '--help':
        console.log('Usage: npm run bench:resilience -- [--runs N] [--block N] [--cooldown S] [--no-build]');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${argv[i]} (see --help)`);
    }
  }
  return o;
}

const procs = new ProcessGroup();
const track = (p: ChildProcess): ChildProcess => procs.track(p);
const cleanup = (): Promise<void> => procs.cleanup();

async function build(): Promise<void> {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  process.stderr.write('building (tsc -p tsconfig.json) ... ');
  const code = await new Promise<number | null>((resolve) => {
    const p = track(spawn(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'ignore' }));
    p.once('exit', resolve);
  });
  process.stderr.write(code === 0 ? 'ok\n' : `tsc exited ${code}\n`);
  if (!existsSync(path.join(ROOT, 'dist', 'src', 'cli.js'))) throw new Error('dist/src/cli.js is missing');
}

interface Fakes {
  a: string;
  b: string;
  setRate(rate: number): Promise<void>;
}

async function startFakes(): Promise<Fakes> {
  const p = track(spawn(process.execPath, [...process.execArgv, THIS_FILE, '--serve-fakes'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] }));
  const rl = readline.createInterface({ input: p.stdout! });
  const lines: string[] = [];
  const waiting: Array<(l: string) => void> = [];
  rl.on('line', (l) => (waiting.length ? waiting.shift()!(l) : lines.push(l)));
  const next = () => new Promise<string>((resolve) => (lines.length ? resolve(lines.shift()!) : waiting.push(resolve)));
  const urls = JSON.parse(await next()) as { a: string; b: string };
  return {
    ...urls,
    async setRate(rate) {
      p.stdin!.write(`${JSON.stringify({ rate })}\n`);
      await next();
    },
  };
}

async function startServerChild(redisUrl: string): Promise<number> {
  const port = await freePort();
  track(spawn(process.execPath, [path.join(ROOT, 'dist/src/cli.js'), '--port', String(port), '--redis', redisUrl, '--log-level', 'error'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] }));
  await waitForPort(port, '127.0.0.1', 15_000);
  return port;
}

// ---- measuring -------------------------------------------------------------------------------

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}

interface PathResult {
  ok: number;
  n: number;
  lat: number[];
}

async function measure(r: Redis, app: string, n: number, out: PathResult): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    let ok = false;
    try {
      ok = typeof (await r.call('LLM.RUN', app)) === 'string';
    } catch {
      ok = false;
    }
    const dt = performance.now() - t0;
    out.n++;
    if (ok) {
      out.ok++;
      out.lat.push(dt);
    }
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.build) await build();
  const redis = (procs.redis = await startRedis());
  const fakes = await startFakes();
  const port = await startServerChild(redis.url);
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
  const direct = new Redis(redis.url);
  const mk = (key: string, url: string) =>
    r.call('LLM.CREATE-LLM', key, '--PARAMS', JSON.stringify({ api_key: 'sk-bench-unused-0123456789', base_url: url, retries: 0 }));
  await mk('a', fakes.a);
  await mk('b', fakes.b);
  await r.call('LLM.CREATE-APP', 'single', '--LLM', 'b', '--PROMPT', 'say hi');
  const rows: string[] = [];
  // Warm the server's paths (JIT, connections) before the first row.
  await r.call('LLM.CREATE-LLM', 'pool', '--TYPE', 'router', '--PARAMS', JSON.stringify({ targets: ['a', 'b'] }));
  await r.call('LLM.CREATE-APP', 'routed', '--LLM', 'pool', '--PROMPT', 'say hi');
  await measure(r, 'single', 500, { ok: 0, n: 0, lat: [] });
  await measure(r, 'routed', 500, { ok: 0, n: 0, lat: [] });
  for (const cooldown of [opts.cooldown, 0]) {
    const createPool = () => r.call('LLM.CREATE-LLM', 'pool', '--TYPE', 'router', '--PARAMS', JSON.stringify({ targets: ['a', 'b'], strategy: 'fallback', cooldown }));
    await createPool();
    await r.call('LLM.CREATE-APP', 'routed', '--LLM', 'pool', '--PROMPT', 'say hi');
    for (const rate of [0, 0.2, 0.5]) {
      await fakes.setRate(rate);
      await measure(r, 'single', 200, { ok: 0, n: 0, lat: [] }); // warm-up
      await measure(r, 'routed', 200, { ok: 0, n: 0, lat: [] });
      // Each row starts with closed circuits, zero counters and no local reading of the circuits:
      // the router is created again (its app finds it by key).
      const keys = await direct.keys('__llm__:{cb:*');
      if (keys.length) await direct.del(...keys);
      await createPool();
      const single: PathResult = { ok: 0, n: 0, lat: [] };
      const routed: PathResult = { ok: 0, n: 0, lat: [] };
      for (let done = 0, round = 0; done < opts.runs; done += opts.block, round++) {
        const n = Math.min(opts.block, opts.runs - done);
        if (round % 2 === 0) {
          await measure(r, 'single', n, single);
          await measure(r, 'routed', n, routed);
        } else {
          await measure(r, 'routed', n, routed);
          await measure(r, 'single', n, single);
        }
      }
      const st = (await r.call('LLM.STATS', 'pool')) as string[];
      const field = (k: string) => st[st.indexOf(k) + 1];
      single.lat.sort((x, y) => x - y);
      routed.lat.sort((x, y) => x - y);
      const s50 = pct(single.lat, 50);
      const s99 = pct(single.lat, 99);
      const r50 = pct(routed.lat, 50);
      const r99 = pct(routed.lat, 99);
      rows.push(
        `| ${Math.round(rate * 100)}% | ${cooldown ? `${cooldown} s` : 'off'} | ${((100 * routed.ok) / routed.n).toFixed(1)}% | ` +
          `${((100 * single.ok) / single.n).toFixed(1)}% | ${s50.toFixed(3)} / ${s99.toFixed(3)} | ${r50.toFixed(3)} / ${r99.toFixed(3)} | ` +
          `${r50 - s50 >= 0 ? '+' : ''}${(r50 - s50).toFixed(3)} / ${r99 - s99 >= 0 ? '+' : ''}${(r99 - s99).toFixed(3)} | ` +
          `${field('target.a.calls')} / ${field('target.a.failures')} / ${field('target.a.cooldowns')} |`,
      );
      console.error(rows.at(-1));
    }
  }
  console.log(`\n${opts.runs} calls per path and row, sequential; a fails with HTTP 500 at the given share; targets have retries 0.\n`);
  console.log('| a fails | cooldown | router success | single success | single p50 / p99 ms | router p50 / p99 ms | added p50 / p99 ms | a: calls / failures / cooldowns |');
  console.log('| --: | --- | --: | --: | --: | --: | --: | --: |');
  for (const row of rows) console.log(row);
  r.disconnect();
  direct.disconnect();
}

if (process.argv.includes('--serve-fakes')) {
  void serveFakes();
} else {
  main()
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    })
    .finally(() => void cleanup());
}
