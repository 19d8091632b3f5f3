/**
 * LLM.RUN latency: the same chat completion made two ways against the same local
 * OpenAI-compatible endpoint (harness/fake-openai.ts, no delay), sequentially, one at a time:
 *
 *   server  ioredis -> redis-llm-server (node dist/src/cli.js --redis ...) -> LLM.RUN hello-world
 *           --VARS '{"name":"LLM"}' -> the server's provider (openai SDK) -> endpoint
 *   direct  the openai SDK in this process -> endpoint, chat.completions.create with the body the
 *           server sends ({"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"Say hello to LLM"}]})
 *
 * The difference is what the server adds to a call: a RESP round trip over loopback, parsing,
 * the app lookup and template rendering, and its provider layer. Target (issue 3): <= +1 ms at p50.
 *
 * Every process is its own (redis-server, the endpoint and the server are children of this
 * script, so the endpoint's event loop is not this one's) and is stopped on exit, Ctrl-C or error.
 * After a warm-up, runs alternate in blocks (server block, direct block; the order swaps every
 * round) so drift and noise from the rest of the machine hit both alike.
 *
 * Usage: npx tsx bench/run-latency.ts [--runs N] [--warmup N] [--block N] [--no-build]
 *   --runs N     measured calls per path (default 2000)
 *   --warmup N   unmeasured calls per path first (default 300)
 *   --block N    calls per block (default 100)
 *   --no-build   use dist/ as it is (default: tsc -p tsconfig.json first)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { freePort, startRedis, waitForPort } from '../harness/redis-server.js';
import { ProcessGroup } from '../harness/child.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(THIS_FILE), '..');
const BENCH_KEY = 'sk-bench-0123456789abcdef0123456789abcdef';
const PROMPT = 'Say hello to {{name}}';
const CONTENT = 'Say hello to LLM';
const EXPECTED = `echo: ${CONTENT}`;

// ---- the endpoint, in a child process --------------------------------------------------------

async function serveFake(): Promise<void> {
  const { startFakeOpenAI } = await import('../harness/fake-openai.js');
  const fake = await startFakeOpenAI({ apiKey: BENCH_KEY });
  // Recorded requests would grow without bound over thousands of calls.
  setInterval(() => fake.requests.splice(0), 1000).unref();
  process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);
  const stop = () => void fake.close().finally(() => process.exit(0));
  process.stdin.on('end', stop); // the parent went away
  process.stdin.resume();
  process.on('SIGTERM', stop);
}

// ---- arguments -------------------------------------------------------------------------------

interface Options {
  runs: number;
  warmup: number;
  block: number;
  build: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 2000, warmup: 300, block: 100, build: true };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2);
    const num = () => {
      const v = inline ?? argv[++i];
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer`);
      return n;
    };
    switch (flag) {
      case '--runs': o.runs = num(); break;
      case '--warmup': o.warmup = num(); break;
      case '--block': o.block = Math.max(1, num()); break;
      case '--no-build': o.build = false; break;
      case '-h':
      case '--help':
        console.log('Usage: npx tsx bench/run-latency.ts [--runs N] [--warmup N] [--block N] [--no-build]');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${argv[i]} (see --help)`);
    }
  }
  return o;
}

// ---- processes -------------------------------------------------------------------------------

const procs = new ProcessGroup();
const track = (p: ChildProcess): ChildProcess => procs.track(p);
const cleanup = (): Promise<void> => procs.cleanup();

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = track(spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    p.once('exit', (code) => resolve({ code, out }));
  });
}

async function build(): Promise<void> {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  process.stderr.write('building (tsc -p tsconfig.json) ... ');
  const r = await run(process.execPath, [tsc, '-p', 'tsconfig.json']);
  if (r.code === 0) {
    process.stderr.write('ok\n');
    return;
  }
  // Others may be mid-edit in the same checkout: tsc still emits; go on if the entry point exists.
  console.error(`tsc exited ${r.code}:\n${r.out.trim().split('\n').slice(0, 10).join('\n')}`);
  if (!existsSync(path.join(ROOT, 'dist', 'src', 'cli.js'))) throw new Error('build failed and dist/src/cli.js is missing');
}

async function startFakeChild(): Promise<string> {
  // process.execArgv carries tsx's loader, so the child can run this TypeScript file too.
  const p = track(spawn(process.execPath, [...process.execArgv, THIS_FILE, '--serve-fake'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] }));
  const rl = readline.createInterface({ input: p.stdout! });
  const line = await new Promise<string>((resolve, reject) => {
    rl.once('line', resolve);
    p.once('exit', (code) => reject(new Error(`the endpoint process exited (code ${code})`)));
  });
  rl.close();
  return (JSON.parse(line) as { url: string }).url;
}

async function startServerChild(redisUrl: string): Promise<number> {
  const port = await freePort();
  const p = track(
    spawn(process.execPath, [path.join(ROOT, 'dist/src/cli.js'), '--port', String(port), '--redis', redisUrl, '--log-level', 'warn', '--llm-key-hosts', 'OPENAI_API_KEY=127.0.0.1'], {
      cwd: ROOT,
      env: { ...process.env, OPENAI_API_KEY: BENCH_KEY },
      stdio: ['ignore', 'inherit', 'inherit'],
    }),
  );
  p.once('exit', (code, signal) => {
    if (!procs.stopping) console.error(`server exited unexpectedly (code ${code}, signal ${signal})`);
  });
  await waitForPort(port, '127.0.0.1', 15_000);
  return port;
}

// ---- statistics ------------------------------------------------------------------------------

function percentile(sorted: Float64Array, p: number): number {
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
}

function summarize(xs: number[]): Summary {
  const s = Float64Array.from(xs).sort();
  return {
    n: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    mean: xs.reduce((a, b) => a + b, 0) / xs.length,
    min: s[0]!,
  };
}

const ms = (x: number) => x.toFixed(3);
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;

// ---- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.build) await build();
  const redis = (procs.redis = await startRedis());
  const url = await startFakeChild();
  const port = await startServerChild(redis.url);

  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, enableAutoPipelining: false });
  for (let i = 0; ; i++) {
    const info = await r.info('llm');
    if (/llm_loading:0/.test(info)) break;
    if (i > 400) throw new Error('the server did not finish loading');
    await new Promise((res) => setTimeout(res, 25));
  }
  await r.call('LLM.CREATE-LLM', 'bench-llm', '--PARAMS', JSON.stringify({ api_key: '$OPENAI_API_KEY', base_url: url }));
  await r.call('LLM.CREATE-APP', 'hello-world', '--LLM', 'bench-llm', '--PROMPT', PROMPT);

  const sdk = new OpenAI({ apiKey: BENCH_KEY, baseURL: `${url}/v1`, maxRetries: 0 });

  const server = async (): Promise<string> => (await r.call('LLM.RUN', 'hello-world', '--VARS', '{"name":"LLM"}')) as string;
  const direct = async (): Promise<string> => {
    const res = await sdk.chat.completions.create({ model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: CONTENT }] });
    return res.choices[0]!.message.content ?? '';
  };

  const paths = { server, direct } as const;
  type PathName = keyof typeof paths;
  const samples: Record<PathName, number[]> = { server: [], direct: [] };
  const blockP50: Record<PathName, number[]> = { server: [], direct: [] };

  const runBlock = async (name: PathName, n: number, record: boolean): Promise<void> => {
    const f = paths[name];
    const local: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const text = await f();
      const dt = performance.now() - t0;
      if (text !== EXPECTED) throw new Error(`${name}: unexpected answer ${JSON.stringify(text)}`);
      local.push(dt);
    }
    if (record) {
      samples[name].push(...local);
      blockP50[name].push(summarize(local).p50);
    }
  };

  process.stderr.write(`warm-up: ${o.warmup} calls per path ... `);
  for (let done = 0; done < o.warmup; done += o.block) {
    const n = Math.min(o.block, o.warmup - done);
    await runBlock('server', n, false);
    await runBlock('direct', n, false);
  }
  process.stderr.write('ok\n');

  const rounds = Math.ceil(o.runs / o.block);
  process.stderr.write(`measuring: ${o.runs} calls per path in ${rounds} rounds of ${o.block} `);
  const t0 = performance.now();
  for (let round = 0; round < rounds; round++) {
    const n = Math.min(o.block, o.runs - round * o.block);
    const order: PathName[] = round % 2 === 0 ? ['server', 'direct'] : ['direct', 'server'];
    for (const name of order) await runBlock(name, n, true);
    if (round % 5 === 4) process.stderr.write('.');
  }
  process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

  const s = summarize(samples.server);
  const d = summarize(samples.direct);
  const pairedDiffs = blockP50.server.map((x, i) => x - blockP50.direct[i]!).sort((a, b) => a - b);
  const llmInfo = (await r.call('LLM.INFO', 'bench-llm')) as unknown[];
  const li: Record<string, string> = {};
  for (let i = 0; i < llmInfo.length; i += 2) li[String(llmInfo[i])] = String(llmInfo[i + 1]);

  console.log('');
  console.log(`LLM.RUN through redis-llm-server vs the openai SDK directly, same local endpoint (no delay)`);
  console.log(
    `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'}), load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  );
  console.log(`${o.runs} sequential calls per path after ${o.warmup} warm-up calls, alternating blocks of ${o.block}`);
  console.log('');
  console.log('| path | calls | p50 ms | p90 ms | p99 ms | mean ms | min ms |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  console.log(`| LLM.RUN via server (ioredis) | ${s.n} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.mean)} | ${ms(s.min)} |`);
  console.log(`| openai SDK direct | ${d.n} | ${ms(d.p50)} | ${ms(d.p90)} | ${ms(d.p99)} | ${ms(d.mean)} | ${ms(d.min)} |`);
  console.log(
    `| **difference** | | **${signed(s.p50 - d.p50)}** | ${signed(s.p90 - d.p90)} | ${signed(s.p99 - d.p99)} | ${signed(s.mean - d.mean)} | ${signed(s.min - d.min)} |`,
  );
  console.log('');
  console.log(
    `per-round p50 difference (server - direct, ${pairedDiffs.length} rounds): median ${signed(pairedDiffs[Math.floor(pairedDiffs.length / 2)] ?? 0)} ms, ` +
      `min ${signed(pairedDiffs[0] ?? 0)}, max ${signed(pairedDiffs.at(-1) ?? 0)}`,
  );
  console.log(
    `provider call inside the server (LLM.INFO, last 1024 calls): p50 ${li.latency_p50_ms} ms, p99 ${li.latency_p99_ms} ms; ` +
      `calls ${li.calls}, errors ${li.errors}, retries ${li.retries}`,
  );
  const diff = s.p50 - d.p50;
  console.log(`target p50 difference <= +1 ms: ${diff <= 1 ? 'met' : 'NOT met'} (${signed(diff)} ms)`);

  r.disconnect();
  await cleanup();
}

if (process.argv.includes('--serve-fake')) {
  await serveFake();
} else {
  try {
    await main();
  } catch (err) {
    console.error(err);
    await cleanup();
    process.exit(1);
  }
}
