/**
 * Soak: the figures of the hardening issue, from four runs against the built server (child
 * processes, as deployed):
 *
 *  1. protocol fuzz   ≥ 100k frames (harness/fuzz-frames.ts generators: valid commands, inline ones,
 *                     random bytes, truncated, huge/negative lengths, nesting, odd quoting, mutations),
 *                     each case sent to redis-server and to the server, replies compared byte for byte;
 *                     a long-lived connection must answer PING after every batch. A server death is a
 *                     crash (counted, logged, the server restarted).
 *  2. kill -9 trials  a persistent redis-server (appendonly, fsync always); a writer pipelines LLM.ADD
 *                     and records every acknowledged id; the server is killed with SIGKILL at a random
 *                     moment, restarted, and every acknowledged id must be there.
 *  3. mixed soak      GET/SET, LLM.ADD, LLM.KNN, LLM.RUN (fake OpenAI-compatible server), pub/sub and
 *                     connection churn for --minutes; the server's RSS sampled every second from
 *                     /proc/<pid>/status: start, peak, end, slope (least squares, whole run and second half).
 *  4. connections     10,000 idle connections opened to the server; how many it holds and its RSS.
 *
 * Usage: npm run bench:soak -- [--minutes N] [--frames N] [--trials N] [--connections N] [--seed N]
 *                             [--only fuzz,kill,soak,conns] [--no-build]
 * Defaults: --minutes 10, --frames 100000, --trials 10, --connections 10000.
 * Exit status 1 when a crash, a lost write or a fuzz difference was seen.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { startChildServer, type ChildServer } from '../harness/server.js';
import { startFakeOpenAI } from '../harness/fake-openai.js';
import { Rng, alarmingLogLines, caseSeed, compareReplies, exchange, fuzzCase, show, type Verdict } from '../harness/fuzz-frames.js';
import { rssOf } from '../harness/child.js';

// ---- options ---------------------------------------------------------------------------------------

interface Options {
  minutes: number;
  frames: number;
  trials: number;
  connections: number;
  seed: number;
  only: Set<string>;
  build: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { minutes: 10, frames: 100_000, trials: 10, connections: 10_000, seed: 0x50a4, only: new Set(['fuzz', 'kill', 'soak', 'conns']), build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === '--minutes') o.minutes = num();
    else if (a === '--frames') o.frames = num();
    else if (a === '--trials') o.trials = num();
    else if (a === '--connections') o.connections = num();
    else if (a === '--seed') o.seed = num();
    else if (a === '--only') o.only = new Set(argv[++i]!.split(','));
    else if (a === '--no-build') o.build = false;
    else throw new Error(`unknown argument ${a} (see the header of bench/soak.ts)`);
  }
  return o;
}

const MB = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...a: unknown[]) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

// Everything started here is stopped on the way out, also on Ctrl-C.
const cleanups: Array<() => Promise<unknown>> = [];
async function cleanup(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

async function server(args: string[]): Promise<ChildServer> {
  const s = await startChildServer(args);
  // (stop() of the helper waits for an exit event that a process killed earlier already sent)
  cleanups.push(async () => {
    if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop('SIGKILL');
  });
  return s;
}
async function redisServer(opts: Parameters<typeof startRedis>[0] = {}): Promise<RedisServerHandle> {
  const r = await startRedis(opts);
  cleanups.push(() => r.stop());
  return r;
}

async function ping(port: number, ms = 5000): Promise<boolean> {
  const got = await exchange(port, [Buffer.from('PING\r\n')], { quietMs: ms, maxMs: ms, until: (b) => b.includes('\r\n') });
  return got.bytes.toString() === '+PONG\r\n';
}

// ---- 1. protocol fuzz ----------------------------------------------------------------------------------

interface FuzzResult {
  frames: number;
  cases: number;
  verdicts: Record<Verdict, number>;
  crashes: number;
  differences: string[];
  alarming: string[];
  seconds: number;
}

async function fuzz(o: Options): Promise<FuzzResult> {
  const ref = await redisServer();
  const backend = await redisServer();
  let srv = await server(['--redis', backend.url]);
  const res: FuzzResult = { frames: 0, cases: 0, verdicts: { same: 0, different: 0 }, crashes: 0, differences: [], alarming: [], seconds: 0 };
  const t0 = Date.now();
  const CONC = 96;
  let i = 0;
  let lastReport = Date.now();
  while (res.frames < o.frames) {
    const batch = Array.from({ length: CONC }, () => i++);
    await Promise.all(
      batch.map(async (n) => {
        const run = async (letter: string, quietMs: number) => {
          const c = fuzzCase(new Rng(caseSeed(o.seed, n)), `${letter}${n}`);
          const [r, s] = await Promise.all([exchange(ref.port, c.writes, { quietMs }), exchange(srv.port, c.writes, { quietMs })]);
          return { c, r, s, v: compareReplies(r, s, c.writes) };
        };
        // A difference is confirmed twice, on fresh keys and with longer waits (the box is shared:
        // either side may stall for a moment), before it counts.
        let out = await run('p', 80);
        if (out.v === 'different') out = await run('q', 600);
        if (out.v === 'different') out = await run('r', 2500);
        res.frames += out.c.kinds.length;
        res.cases++;
        res.verdicts[out.v]++;
        if (out.v === 'different' && res.differences.length < 10) {
          res.differences.push(`case ${n} (seed ${o.seed}): ${out.c.writes.map((w) => show(w)).join(' | ')}\n    redis  ${show(out.r.bytes)} closed=${out.r.closed}\n    server ${show(out.s.bytes)} closed=${out.s.closed}`);
        }
      }),
    );
    const alive = srv.proc.exitCode === null && srv.proc.signalCode === null && (await ping(srv.port));
    if (!alive) {
      res.crashes++;
      res.alarming.push(`server died or stopped answering after case ${i}:\n${srv.output().slice(-3000)}`);
      await srv.stop('SIGKILL');
      srv = await server(['--redis', backend.url]);
    }
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      log(`fuzz: ${res.frames} frames, ${res.cases} cases`, JSON.stringify(res.verdicts));
    }
  }
  res.alarming.push(...alarmingLogLines(srv.output()));
  res.seconds = (Date.now() - t0) / 1000;
  return res;
}

// ---- 2. kill -9 trials -----------------------------------------------------------------------------------

interface KillResult {
  trials: number;
  acked: number;
  lost: number;
  lostIds: number[];
  restartMs: number[];
}

async function waitLoaded(port: number, key: string): Promise<number> {
  const t0 = Date.now();
  const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: false });
  c.on('error', () => {});
  try {
    for (;;) {
      try {
        await c.call('LLM.SIZE', key);
        return Date.now() - t0;
      } catch (e) {
        if (!/LOADING/.test((e as Error).message) || Date.now() - t0 > 60_000) throw e;
        await sleep(20);
      }
    }
  } finally {
    c.disconnect();
  }
}

async function killTrials(o: Options): Promise<KillResult> {
  const redis = await redisServer({ persistent: true });
  const rng = new Rng(o.seed ^ 0x4b1);
  const key = 'soak:kill';
  const acked = new Set<number>();
  const res: KillResult = { trials: 0, acked: 0, lost: 0, lostIds: [], restartMs: [] };
  let srv = await server(['--redis', redis.url]);
  {
    const c = new Redis({ port: srv.port, host: '127.0.0.1' });
    await c.call('LLM.CREATE-VECTOR-STORE', key, '--NX', '--PARAMS', '{"dim":8,"space":"cosine"}');
    c.disconnect();
  }
  for (let t = 0; t < o.trials; t++) {
    // The writer: 64 LLM.ADD in flight at all times; an id counts once its reply arrived.
    const w = new Redis({ port: srv.port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    w.on('error', () => {});
    await new Promise((r) => w.once('ready', r));
    let stop = false;
    const loop = async () => {
      while (!stop) {
        const vec = Array.from({ length: 8 }, () => (rng.next() - 0.5).toFixed(4)).join(',');
        try {
          const id = (await w.call('LLM.ADD', key, '--EMBEDDING', vec, `trial ${t} item`)) as number;
          acked.add(id);
        } catch {
          return; // killed
        }
      }
    };
    const loops = Array.from({ length: 64 }, loop);
    await sleep(rng.range(150, 2500));
    srv.proc.kill('SIGKILL');
    await new Promise((r) => (srv.proc.exitCode !== null || srv.proc.signalCode !== null ? r(null) : srv.proc.once('exit', r)));
    stop = true;
    await Promise.all(loops);
    w.disconnect();
    srv = await server(['--redis', redis.url]);
    res.restartMs.push(await waitLoaded(srv.port, key));
    // Every acknowledged id must be there.
    const c = new Redis({ port: srv.port, host: '127.0.0.1' });
    const ids = [...acked];
    for (let i = 0; i < ids.length; i += 2000) {
      const p = c.pipeline();
      for (const id of ids.slice(i, i + 2000)) p.call('LLM.GET', key, String(id));
      const out = (await p.exec()) ?? [];
      out.forEach(([err, v], j) => {
        if (err || v === null) {
          res.lost++;
          if (res.lostIds.length < 20) res.lostIds.push(ids[i + j]!);
        }
      });
    }
    c.disconnect();
    res.trials++;
    log(`kill -9 trial ${t + 1}/${o.trials}: ${acked.size} acknowledged so far, lost ${res.lost}, restart+load ${res.restartMs.at(-1)} ms`);
  }
  res.acked = acked.size;
  return res;
}

// ---- 3. mixed traffic soak ----------------------------------------------------------------------------------

interface SoakResult {
  minutes: number;
  ops: number;
  errors: Record<string, number>;
  rss: number[];
  start: number;
  peak: number;
  end: number;
  slopeAll: number;
  slopeSecondHalf: number;
  alarming: string[];
  alive: boolean;
}

/** Least-squares slope of samples taken every second, in bytes per minute. */
function slope(ys: number[]): number {
  const n = ys.length;
  if (n < 2) return 0;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, x) => {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  });
  return (num / den) * 60;
}

async function soak(o: Options): Promise<SoakResult> {
  const backend = await redisServer();
  const fake = await startFakeOpenAI({ dim: 32 });
  cleanups.push(() => fake.close());
  const srv = await server(['--redis', backend.url]);
  const port = srv.port;
  const mk = () => {
    const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    c.on('error', () => {});
    return c;
  };
  const admin = mk();
  await admin.call('LLM.CREATE-LLM', 'soak:gpt', '--PARAMS', JSON.stringify({ api_key: 'sk-soak', base_url: fake.url }));
  await admin.call('LLM.CREATE-VECTOR-STORE', 'soak:store', '--LLM', 'soak:gpt', '--PARAMS', '{"dim":32,"space":"cosine"}');
  await admin.call('LLM.CREATE-APP', 'soak:app', '--LLM', 'soak:gpt', '--PROMPT', 'Answer briefly: {{q}}');

  const rng = new Rng(o.seed ^ 0x50a);
  const deadline = Date.now() + o.minutes * 60_000;
  const errors: Record<string, number> = {};
  let ops = 0;
  const fail = (what: string, e: unknown) => {
    const k = `${what}: ${String((e as Error).message ?? e).slice(0, 80)}`;
    errors[k] = (errors[k] ?? 0) + 1;
  };
  const vec = () => Array.from({ length: 32 }, () => (rng.next() - 0.5).toFixed(3)).join(',');
  const workers: Array<Promise<void>> = [];
  const clients: Redis[] = [admin];
  const worker = (name: string, step: (c: Redis) => Promise<unknown>) => {
    const c = mk();
    clients.push(c);
    workers.push(
      (async () => {
        while (Date.now() < deadline) {
          try {
            await step(c);
            ops++;
          } catch (e) {
            fail(name, e);
            await sleep(50);
          }
        }
      })(),
    );
  };
  const value = 'v'.repeat(100);
  for (let i = 0; i < 4; i++) worker('kv', (c) => (rng.chance(0.5) ? c.set(`soak:k:${rng.int(10_000)}`, value) : c.get(`soak:k:${rng.int(10_000)}`)));
  for (let i = 0; i < 2; i++) {
    worker('add', (c) =>
      rng.chance(0.9)
        ? c.call('LLM.ADD', 'soak:store', '--ID', String(rng.int(5000)), '--EMBEDDING', vec(), `doc ${rng.int(1e6)}`)
        : c.call('LLM.ADD', 'soak:store', '--ID', String(rng.int(5000)), `a document about topic ${rng.int(100)}`),
    );
    worker('knn', (c) => (rng.chance(0.9) ? c.call('LLM.KNN', 'soak:store', '--K', '5', '--EMBEDDING', vec()) : c.call('LLM.KNN', 'soak:store', '--K', '5', `topic ${rng.int(100)}`)));
  }
  for (let i = 0; i < 2; i++) worker('run', (c) => c.call('LLM.RUN', 'soak:app', '--VARS', JSON.stringify({ q: `question ${rng.int(1e6)}` })));
  // Pub/sub: two subscribers, one publisher.
  let received = 0;
  for (let i = 0; i < 2; i++) {
    const sub = mk();
    clients.push(sub);
    await sub.subscribe('soak:ch');
    sub.on('message', () => void received++);
  }
  worker('publish', async (c) => {
    await c.publish('soak:ch', `msg ${rng.int(1e6)}`);
    await sleep(2);
  });
  // Connection churn: connect, PING, close.
  workers.push(
    (async () => {
      while (Date.now() < deadline) {
        try {
          if (!(await ping(port))) fail('churn', new Error('no PONG'));
          ops++;
        } catch (e) {
          fail('churn', e);
        }
        await sleep(10);
      }
    })(),
  );

  const rss: number[] = [];
  let lastLog = Date.now();
  while (Date.now() < deadline) {
    await sleep(1000);
    rss.push(await rssOf(srv.proc.pid!));
    if (Date.now() - lastLog > 30_000) {
      lastLog = Date.now();
      log(`soak: ${((o.minutes * 60_000 - (deadline - Date.now())) / 60_000).toFixed(1)} min, ${ops} ops, RSS ${MB(rss.at(-1)!)} (peak ${MB(Math.max(...rss))}), pub/sub messages ${received}`);
    }
  }
  await Promise.all(workers);
  const alive = srv.proc.exitCode === null && (await ping(port));
  for (const c of clients) c.disconnect();
  const half = rss.slice(Math.floor(rss.length / 2));
  return {
    minutes: o.minutes,
    ops,
    errors,
    rss,
    start: rss[0] ?? 0,
    peak: Math.max(0, ...rss),
    end: rss.at(-1) ?? 0,
    slopeAll: slope(rss),
    slopeSecondHalf: slope(half),
    alarming: alarmingLogLines(srv.output()),
    alive,
  };
}

// ---- 4. connections held -------------------------------------------------------------------------------------

interface ConnResult {
  mode: string;
  wanted: number;
  opened: number;
  held: number;
  serverCount: number | null;
  rssBefore: number;
  rssHeld: number;
  pingWhileHeld: boolean;
  /** After closing 20 of them (at the descriptor limit a new client is refused until one goes). */
  pingAfterRelease: boolean;
  note: string;
}

async function holdConnections(o: Options, mode: 'proxy' | 'standalone'): Promise<ConnResult> {
  const n = o.connections;
  let args: string[];
  if (mode === 'proxy') {
    // The backing Redis gets one link per client: give it room for them.
    const backend = await redisServer({ args: ['--maxclients', String(n + 1000)] });
    args = ['--redis', backend.url, '--maxclients', String(n + 100)];
  } else {
    args = ['--managed-redis', 'no', '--maxclients', String(n + 100), '--dir', `/tmp/rls-soak-standalone-${process.pid}`];
  }
  const srv = await server(args);
  await sleep(500);
  const rssBefore = await rssOf(srv.proc.pid!);
  const socks: net.Socket[] = [];
  let opened = 0;
  let closedEarly = 0;
  const open = () =>
    new Promise<void>((resolve) => {
      const s = net.connect(srv.port, '127.0.0.1');
      s.on('connect', () => {
        opened++;
        resolve();
      });
      s.on('error', () => resolve());
      s.on('close', () => {
        closedEarly++;
        resolve();
      });
      socks.push(s);
    });
  for (let i = 0; i < n; i += 200) await Promise.all(Array.from({ length: Math.min(200, n - i) }, open));
  await sleep(2000);
  const held = socks.filter((s) => !s.destroyed && s.readyState === 'open').length;
  const rssHeld = await rssOf(srv.proc.pid!);
  const pingWhileHeld = await ping(srv.port, 10_000);
  let serverCount: number | null = null;
  let info = await exchange(srv.port, [Buffer.from('INFO llm\r\n')], { quietMs: 500, maxMs: 10_000 });
  let m = /llm_connected_clients:(\d+)/.exec(info.bytes.toString());
  if (m) serverCount = Number(m[1]) - 1; // minus the INFO connection itself
  let released = 0;
  for (const s of socks.filter((x) => !x.destroyed).slice(0, 20)) {
    s.destroy();
    released++;
  }
  await sleep(500);
  const pingAfterRelease = await ping(srv.port, 10_000);
  if (serverCount === null) {
    info = await exchange(srv.port, [Buffer.from('INFO llm\r\n')], { quietMs: 500, maxMs: 10_000 });
    m = /llm_connected_clients:(\d+)/.exec(info.bytes.toString());
    if (m) serverCount = Number(m[1]) - 1 + released;
  }
  for (const s of socks) s.destroy();
  const fdLimit = (() => {
    try {
      return execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  })();
  const note =
    mode === 'proxy'
      ? `proxy mode holds 2 descriptors per client (client socket + its backend link); open-files limit here: ${fdLimit} (hard limit; ulimit -n cannot be raised without privileges)`
      : `standalone mode: 1 descriptor per client; open-files limit ${fdLimit}`;
  void closedEarly;
  await srv.stop('SIGKILL');
  return { mode, wanted: n, opened, held, serverCount, rssBefore, rssHeld, pingWhileHeld, pingAfterRelease, note };
}

// ---- main -------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.build) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  const t0 = Date.now();
  log(`soak: seed ${o.seed}, frames ${o.frames}, trials ${o.trials}, minutes ${o.minutes}, connections ${o.connections}`);
  const lines: string[] = [];
  let bad = false;

  if (o.only.has('fuzz')) {
    const f = await fuzz(o);
    lines.push(`frames fuzzed:       ${f.frames} in ${f.cases} cases (${f.seconds.toFixed(0)} s); vs redis-server: ${JSON.stringify(f.verdicts)}`);
    lines.push(`crashes:             ${f.crashes}${f.alarming.length ? ` (alarming log lines: ${f.alarming.length})` : ''}`);
    if (f.differences.length) lines.push(`  differences from redis-server:\n  ${f.differences.join('\n  ')}`);
    if (f.alarming.length) lines.push(`  ${f.alarming.slice(0, 5).join('\n  ')}`);
    bad ||= f.crashes > 0 || f.verdicts.different > 0 || f.alarming.length > 0;
    await cleanup();
  }
  if (o.only.has('kill')) {
    const k = await killTrials(o);
    const ms = [...k.restartMs].sort((a, b) => a - b);
    lines.push(`kill -9 trials:      ${k.trials}, acknowledged LLM.ADDs ${k.acked}, writes lost: ${k.lost}${k.lost ? ` (ids ${k.lostIds.join(',')})` : ''}; restart to loaded: median ${ms[ms.length >> 1] ?? 0} ms, max ${ms.at(-1) ?? 0} ms`);
    bad ||= k.lost > 0;
    await cleanup();
  }
  if (o.only.has('soak')) {
    const s = await soak(o);
    lines.push(
      `mixed soak RSS:      ${s.minutes} min, ${s.ops} ops; start ${MB(s.start)}, peak ${MB(s.peak)}, end ${MB(s.end)}; slope ${(s.slopeAll / 1024 / 1024).toFixed(2)} MB/min (second half ${(s.slopeSecondHalf / 1024 / 1024).toFixed(2)} MB/min); server alive: ${s.alive}`,
    );
    if (Object.keys(s.errors).length) lines.push(`  client-side errors: ${JSON.stringify(s.errors)}`);
    if (s.alarming.length) lines.push(`  alarming log lines: ${s.alarming.slice(0, 5).join(' | ')}`);
    bad ||= !s.alive || s.alarming.length > 0;
    await cleanup();
  }
  if (o.only.has('conns')) {
    for (const mode of ['proxy', 'standalone'] as const) {
      const c = await holdConnections(o, mode);
      lines.push(
        `connections held:    ${mode}: ${c.held} of ${c.wanted} (server counts ${c.serverCount ?? '?'}); server RSS ${MB(c.rssBefore)} idle -> ${MB(c.rssHeld)} with them (${((c.rssHeld - c.rssBefore) / Math.max(1, c.held) / 1024).toFixed(1)} KB per connection); PING on one more connection: ${c.pingWhileHeld ? 'ok' : `refused${c.pingAfterRelease ? ', ok once 20 were closed' : ', and still after closing 20'}`}; ${c.note}`,
      );
      await cleanup();
    }
  }
  console.log(`\n== soak summary (seed ${o.seed}, ${((Date.now() - t0) / 60_000).toFixed(1)} min) ==\n${lines.join('\n')}`);
  process.exitCode = bad ? 1 : 0;
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => void cleanup());
