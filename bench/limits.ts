/**
 * Limits, the long variants of test/hardening.test.ts:
 *
 *  1. idle      N idle connections (default 10,000) to a child server proxying a real Redis:
 *               connect time, server RSS per connection (with its backend link), SET+GET latency of
 *               another client meanwhile, and every idle connection still answers.
 *  2. slow      slow readers pipelining `GET bigkey` (1 MB) without reading, for each
 *               client-output-buffer-limit given (default 8mb and 0 = no limit): whether they are
 *               disconnected, peak RSS of the server, peak used_memory of the backing Redis. With a
 *               limit the client is closed once its unread replies pass it; with 0 the server uses
 *               backpressure (pauses the backend link) and the unread replies pile up in the
 *               backing Redis instead — where normal clients have no limit either.
 *  3. many      M slow readers at once (default 50) under an 8mb limit: server RSS stays within
 *               about M x limit, all are disconnected, the backing Redis returns to its baseline.
 *
 * Usage: npx tsx bench/limits.ts [--idle N] [--slow-gets N] [--limits 8mb,0] [--many M] [--no-build]
 * Needs `ulimit -Hn` >= N + 1000 (the child's limit is raised with bash's ulimit -n); an idle client
 * holds no backend link, one that sent a command holds two descriptors.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort, startRedis, waitForPort, type RedisServerHandle } from '../harness/redis-server.js';
import { ROOT, rssOf, startChildServer } from '../harness/child.js';

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const IDLE = Number(arg('idle', '10000'));
const SLOW_GETS = Number(arg('slow-gets', '2000'));
const LIMITS = arg('limits', '8mb,0').split(',');
const MANY = Number(arg('many', '50'));

const hardLimit = () => Number(execFileSync('bash', ['-c', 'ulimit -Hn']).toString().trim()) || 0;

interface Child {
  port: number;
  proc: ChildProcess;
  rss(): number;
  stop(): Promise<void>;
}

async function server(args: string[], nofile: number): Promise<Child> {
  const c = await startChildServer(args, {}, { nofile, logLevel: 'error' });
  return { port: c.port, proc: c.proc, rss: () => rssOf(c.proc.pid!) / MB, stop: async () => void (await c.stop()) };
}

const info = async (c: Redis, field: string, section?: string) => Number(new RegExp(`${field}:(\\d+)`).exec(await (section ? c.info(section) : c.info()))![1]);

async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(50);
  }
  return false;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------

async function idle(redis: RedisServerHandle, nofile: number): Promise<void> {
  const child = await server(['--redis', redis.url, '--maxclients', String(IDLE + 100)], nofile);
  const w = new Redis(child.port);
  const direct = new Redis(redis.port);
  const socks: net.Socket[] = [];
  try {
    await until(async () => (await info(w, 'llm_loading', 'llm')) === 0, 10_000);
    const rss0 = child.rss();
    const t0 = performance.now();
    for (let i = 0; i < IDLE; i += 500) socks.push(...(await Promise.all(Array.from({ length: Math.min(500, IDLE - i) }, () => connect(child.port)))));
    await until(async () => (await info(w, 'llm_connected_clients', 'llm')) === IDLE + 1, 60_000);
    const connectMs = performance.now() - t0;
    const links = await info(direct, 'connected_clients', 'clients');
    await sleep(500);
    const rss1 = child.rss();
    const lat: number[] = [];
    for (let i = 0; i < 500; i++) {
      const p0 = performance.now();
      await w.set('k', String(i));
      await w.get('k');
      lat.push(performance.now() - p0);
    }
    lat.sort((a, b) => a - b);
    // Every idle connection answers PING (forwarded: it opens that client's backend link, so a
    // sample when the descriptors for 2 per client are not there).
    const room = Math.max(0, nofile - IDLE - 500);
    const sample = socks.length <= room ? socks : socks.filter((_, i) => i % Math.ceil(socks.length / room) === 0);
    let answered = 0;
    await Promise.all(
      sample.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.once('data', () => {
              answered++;
              resolve();
            });
            s.write('PING\r\n');
            setTimeout(resolve, 30_000);
          }),
      ),
    );
    console.log(`idle: ${IDLE} connections in ${(connectMs / 1000).toFixed(1)} s; the backing Redis sees ${links} clients (idle ones hold no link)`);
    console.log(`idle: server RSS ${rss0.toFixed(1)} -> ${rss1.toFixed(1)} MB = ${(((rss1 - rss0) * 1024) / IDLE).toFixed(1)} KB per connection`);
    console.log(`idle: another client's SET+GET p50 ${lat[250]!.toFixed(2)} ms, p99 ${lat[495]!.toFixed(2)} ms; ${answered}/${sample.length} idle connections asked answered PING`);
  } finally {
    for (const s of socks) s.destroy();
    w.disconnect();
    direct.disconnect();
    await child.stop();
  }
}

async function slow(redis: RedisServerHandle, limit: string, nofile: number, readers: number, gets: number): Promise<void> {
  const child = await server(['--redis', redis.url, '--client-output-buffer-limit', limit], nofile);
  const w = new Redis(child.port);
  const direct = new Redis(redis.port);
  const socks: net.Socket[] = [];
  try {
    await until(async () => (await info(w, 'llm_loading', 'llm')) === 0, 10_000);
    await direct.set('bigkey', Buffer.alloc(MB, 'x'));
    await w.getBuffer('bigkey');
    const rss0 = child.rss();
    const mem0 = (await info(direct, 'used_memory', 'memory')) / MB;
    for (let i = 0; i < readers; i++) {
      const s = await connect(child.port);
      s.on('error', () => {});
      s.pause();
      socks.push(s);
    }
    const batch = Buffer.from('*2\r\n$3\r\nGET\r\n$6\r\nbigkey\r\n'.repeat(20));
    let rssPeak = rss0;
    let memPeak = mem0;
    let sent = 0;
    let left = readers;
    const t0 = performance.now();
    while (sent < gets && left > 0 && performance.now() - t0 < 20_000) {
      for (const s of socks) if (!s.destroyed) s.write(batch);
      sent += 20;
      await sleep(20);
      rssPeak = Math.max(rssPeak, child.rss());
      memPeak = Math.max(memPeak, (await info(direct, 'used_memory', 'memory')) / MB);
      left = (await info(w, 'llm_connected_clients', 'llm')) - 1;
    }
    const ms = performance.now() - t0;
    for (const s of socks) s.destroy();
    await until(async () => (await info(direct, 'used_memory', 'memory')) / MB < mem0 + 16, 10_000);
    const memAfter = (await info(direct, 'used_memory', 'memory')) / MB;
    console.log(
      `slow: ${readers} reader(s), limit ${limit}: ${readers - left}/${readers} disconnected after ${sent} GETs each (${(ms / 1000).toFixed(1)} s); ` +
        `server RSS ${rss0.toFixed(0)} -> peak ${rssPeak.toFixed(0)} MB; backing Redis used_memory ${mem0.toFixed(0)} -> peak ${memPeak.toFixed(0)} MB ` +
        `(after the readers left: ${memAfter.toFixed(0)} MB)`,
    );
  } finally {
    for (const s of socks) s.destroy();
    w.disconnect();
    direct.disconnect();
    await child.stop();
  }
}

async function main(): Promise<void> {
  if (!process.argv.includes('--no-build')) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  const hard = hardLimit();
  const nofile = Math.min(hard, Math.max(2 * IDLE + 1000, 4096));
  if (hard < IDLE + 1000) throw new Error(`ulimit -Hn is ${hard}: ${IDLE} idle connections need about ${IDLE + 1000}`);
  const redis = await startRedis();
  try {
    if (IDLE > 0) await idle(redis, nofile);
    for (const l of LIMITS) await slow(redis, l, nofile, 1, SLOW_GETS);
    if (MANY > 0) await slow(redis, '8mb', nofile, MANY, 400);
  } finally {
    await redis.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
