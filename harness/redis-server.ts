/**
 * Starts a real redis-server for a test: a free loopback port, its own temp dir,
 * no persistence unless asked. Never touches a server it did not start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface RedisServerHandle {
  port: number;
  host: string;
  url: string;
  dir: string;
  process: ChildProcess;
  /** Stop the server (SIGTERM, then SIGKILL after 3 s) and optionally remove its dir. */
  stop(opts?: { keepDir?: boolean }): Promise<void>;
  /** kill -9 the server; the dir is kept so it can be restarted. */
  kill(): Promise<void>;
  /** Start again on the same port and dir (after stop/kill). */
  restart(): Promise<void>;
}

/**
 * A free TCP port for a server a test starts. Test files run in parallel workers, and a port the
 * kernel hands out for listen(0) is free again once probed: two workers could be given the same
 * one and the slower server would fail to bind (its client then talks to the other one). So each
 * worker (vitest pool id; a bench: its pid) takes ports from its own range in 10000-19999, never
 * the same one twice (from a random start, so two suites run at once rarely meet), probing each by
 * listening on it. Above that range: Redis Cluster bus ports (port + 10000), then the kernel's
 * ephemeral ports (32768+).
 */
const PORT_RANGE = 1000;
const poolId = Number(process.env.VITEST_POOL_ID ?? 0);
const portBase = 10_000 + ((poolId > 0 ? poolId : process.pid) % 10) * PORT_RANGE;
let portNext = Math.floor(Math.random() * PORT_RANGE);

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < PORT_RANGE; tries++) {
    const port = portBase + (portNext++ % PORT_RANGE);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${portBase}-${portBase + PORT_RANGE - 1}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect(port, host);
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} did not open in ${timeoutMs} ms`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

/** Waits until redis-server answers PING with PONG (or NOAUTH when a password is set). */
async function waitForRedis(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      let buf = '';
      sock.setTimeout(500, () => { sock.destroy(); resolve(false); });
      sock.once('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('\r\n')) {
          sock.destroy();
          resolve(buf.startsWith('+PONG') || buf.startsWith('-NOAUTH'));
        }
      });
      sock.once('error', () => { sock.destroy(); resolve(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} not ready in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface StartRedisOptions {
  /** Extra redis-server arguments, e.g. ['--requirepass', 'secret']. */
  args?: string[];
  /** Turn on appendonly (fsync always) so data survives restart of this server. */
  persistent?: boolean;
  port?: number;
  dir?: string;
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServerHandle> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'rls-redis-'));
  const baseArgs = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', opts.persistent ? 'yes' : 'no',
    '--appendfsync', 'always',
    '--daemonize', 'no',
    '--loglevel', 'warning',
    ...(opts.args ?? []),
  ];
  let proc!: ChildProcess;
  const start = async () => {
    proc = spawn('redis-server', baseArgs, { stdio: ['ignore', 'ignore', 'inherit'] });
    handle.process = proc;
    await waitForRedis(port);
  };
  const waitExit = (p: ChildProcess, ms: number) =>
    new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      const t = setTimeout(() => { p.kill('SIGKILL'); }, ms);
      p.once('exit', () => { clearTimeout(t); resolve(); });
    });
  const handle: RedisServerHandle = {
    port,
    host: '127.0.0.1',
    url: `redis://127.0.0.1:${port}`,
    dir,
    process: undefined as unknown as ChildProcess,
    async stop(o = {}) {
      proc.kill('SIGTERM');
      await waitExit(proc, 3000);
      if (!o.keepDir && !opts.dir) rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      proc.kill('SIGKILL');
      await waitExit(proc, 3000);
    },
    async restart() {
      await start();
    },
  };
  await start();
  return handle;
}

/**
 * A real local Redis Cluster: `masters` redis-server processes with cluster-enabled, joined by
 * `redis-cli --cluster create` (no replicas), returned once every node reports all 16384 slots ok.
 */
export async function startRedisCluster(masters = 3, args: string[] = []): Promise<RedisServerHandle[]> {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { Redis } = await import('ioredis');
  const servers: RedisServerHandle[] = [];
  for (let i = 0; i < masters; i++) {
    servers.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', ...args] }));
  }
  await promisify(execFile)('redis-cli', ['--cluster', 'create', ...servers.map((x) => `127.0.0.1:${x.port}`), '--cluster-replicas', '0', '--cluster-yes']);
  for (const s of servers) {
    const n = new Redis(s.url);
    try {
      for (let i = 0; ; i++) {
        const info = (await n.cluster('INFO')) as string;
        if (/cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info)) break;
        if (i > 200) throw new Error('cluster did not become ready');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      n.disconnect();
    }
  }
  return servers;
}
