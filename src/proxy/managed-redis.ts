/**
 * Starts and supervises a redis-server child when no --redis URL is given and redis-server is
 * on PATH: data in --dir, appendonly on, listening on a unix socket only. It is restarted with
 * backoff if it dies, and stopped (SIGTERM, then SIGKILL) when the server shuts down.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { logger } from '../log.js';

export function findRedisServer(): string | null {
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return r.status === 0 ? 'redis-server' : null;
}

export class ManagedRedis {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  readonly socketPath: string;
  readonly dataDir: string;

  constructor(dir: string, private readonly binary = 'redis-server') {
    this.dataDir = path.resolve(dir, 'redis');
    // Unix socket paths are limited to ~107 bytes; fall back to the temp dir for deep paths.
    const sock = path.join(this.dataDir, 'redis.sock');
    this.socketPath = sock.length < 100 ? sock : path.join('/tmp', `redis-llm-${process.pid}.sock`);
  }

  get url(): string {
    return `unix://${this.socketPath}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true });
    this.spawnChild();
    await this.waitForSocket(10_000);
  }

  private spawnChild(): void {
    if (existsSync(this.socketPath)) rmSync(this.socketPath, { force: true });
    const args = [
      '--port', '0',
      '--unixsocket', this.socketPath,
      '--unixsocketperm', '700',
      '--dir', this.dataDir,
      '--appendonly', 'yes',
      '--appendfsync', 'everysec',
      '--daemonize', 'no',
      '--loglevel', 'warning',
    ];
    const child = spawn(this.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr?.on('data', (d: Buffer) => logger.warn({ redis: d.toString().trim() }, 'managed redis-server'));
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      this.restarts++;
      const delay = Math.min(100 * 2 ** this.restarts, 5000);
      logger.error({ code, signal, delay }, 'managed redis-server exited; restarting');
      setTimeout(() => { if (!this.stopping) this.spawnChild(); }, delay).unref();
    });
    logger.info({ pid: child.pid, socket: this.socketPath, dir: this.dataDir }, 'started managed redis-server');
  }

  private async waitForSocket(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(this.socketPath)) {
      if (Date.now() > deadline) throw new Error('managed redis-server did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    });
    logger.info('stopped managed redis-server');
  }
}
