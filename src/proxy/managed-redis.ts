/**
 * Starts and supervises a redis-server child when no --redis URL is given and redis-server is
 * on PATH: data in <dir>/redis, appendonly on, listening on a unix socket only. It is restarted
 * with backoff if it dies, and stopped (SIGTERM, then SIGKILL) when the server shuts down.
 *
 * The child runs in its own process group, so a Ctrl-C on the terminal reaches only this server,
 * which then stops it in order: after the in-flight replies, with its AOF flushed.
 *
 * A redis-server left running by an earlier run that crashed (kill -9) still owns the data dir;
 * it is asked to SHUTDOWN (which flushes its AOF) before a new one starts, so two never write the
 * same files. If another live redis-llm-server is connected to it, starting is refused instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { logger } from '../log.js';
import { OWN_CONNECTION_NAME } from '../util/names.js';

/** Looks for an executable `redis-server` on PATH (no process is started). */
export function findRedisServer(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  return null;
}

/** Sends PING on a unix socket; resolves with the first reply line, or '' on any failure. */
function pingSocket(socketPath: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ path: socketPath });
    let buf = '';
    const done = (v: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(''), timeoutMs);
    sock.on('error', () => done(''));
    sock.on('close', () => done(buf));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf);
    });
    sock.write('PING\r\n');
  });
}

/**
 * Passwords and ACL users for the managed redis-server (requirepass, user directives, the users
 * of an aclfile). With any of them, the server connects as its own ACL user, whose password is
 * kept in <dir>/redis/internal-user.pass (0600); all of it reaches redis-server in a config file
 * of mode 0600, never on its command line (which `ps` shows).
 */
export interface ManagedAuth {
  requirepass?: string | null;
  /** `user` directives as Redis takes them: "<name> <rules...>". */
  users?: readonly string[];
}

export const INTERNAL_USER = 'redis-llm-server';

/** A redis.conf argument: double-quoted, with backslashes and quotes escaped. */
function confQuote(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
}

/** The users of a Redis ACL file ("user <name> <rules...>" lines), as user directives. */
export function readAclFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`aclfile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const users: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const m = /^user\s+(\S.*)$/i.exec(t);
    if (!m) throw new Error(`aclfile ${file}:${i + 1}: expected "user <name> <rules...>"`);
    users.push(m[1]!);
  });
  return users;
}

export class ManagedRedis {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private spawnedAt = 0;
  private started = false;
  /** The child's last output lines, for the error when it fails to start. */
  private recentOutput: string[] = [];
  readonly socketPath: string;
  readonly dataDir: string;

  /** The server's own ACL user when the managed redis-server has passwords (see ManagedAuth). */
  readonly credentials: { username: string; password: string } | undefined;

  constructor(dir: string, private readonly binary = 'redis-server', private readonly auth: ManagedAuth = {}) {
    this.dataDir = path.resolve(dir, 'redis');
    // Unix socket paths are limited to ~107 bytes; deep data dirs get a stable path in /tmp.
    const sock = path.join(this.dataDir, 'redis.sock');
    const digest = createHash('sha1').update(this.dataDir).digest('hex').slice(0, 16);
    this.socketPath = sock.length < 100 ? sock : path.join('/tmp', `redis-llm-${digest}.sock`);
    for (const u of auth.users ?? []) {
      const name = u.trim().split(/\s+/)[0]!;
      if (name === INTERNAL_USER) throw new Error(`user ${INTERNAL_USER}: that ACL user is the server's own (choose another name)`);
    }
    if (auth.requirepass || (auth.users?.length ?? 0) > 0) this.credentials = { username: INTERNAL_USER, password: this.internalPassword() };
  }

  /** The internal user's password: kept across restarts (a leftover redis-server is asked to SHUTDOWN with it). */
  private internalPassword(): string {
    const file = path.join(this.dataDir, 'internal-user.pass');
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    try {
      const p = readFileSync(file, 'utf8').trim();
      if (/^[0-9a-f]{64}$/.test(p)) return p;
    } catch {
      /* made below */
    }
    const p = randomBytes(32).toString('hex');
    writeFileSync(file, `${p}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    return p;
  }

  /** The config file with the passwords and users (mode 0600), or null when there are none. */
  private writeAuthConf(): string | null {
    if (!this.credentials) return null;
    const lines = [`user ${INTERNAL_USER} reset on >${this.credentials.password} ~* &* +@all`];
    if (this.auth.requirepass) lines.push(`requirepass ${confQuote(this.auth.requirepass)}`);
    for (const u of this.auth.users ?? []) lines.push(`user ${u}`);
    const file = path.join(this.dataDir, 'auth.conf');
    writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    return file;
  }

  get url(): string {
    return `unix://${this.socketPath}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true });
    await this.takeOverLeftover();
    this.spawnChild();
    await this.waitReady(10_000);
    this.started = true;
  }

  /** Shuts down a redis-server an earlier run left on our socket; refuses if a live server uses it. */
  private async takeOverLeftover(): Promise<void> {
    if (!existsSync(this.socketPath)) return;
    const probe = new Redis({ path: this.socketPath, lazyConnect: true, enableReadyCheck: false, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
    probe.on('error', () => {});
    try {
      await probe.connect();
    } catch {
      probe.disconnect();
      rmSync(this.socketPath, { force: true }); // a stale socket file: nobody listens
      return;
    }
    try {
      // An earlier run with passwords: its redis-server wants the internal user's.
      if (this.credentials) await probe.call('AUTH', this.credentials.username, this.credentials.password).catch(() => undefined);
      const clients = String(await probe.call('CLIENT', 'LIST'));
      if (clients.split('\n').some((l) => l.includes(` name=${OWN_CONNECTION_NAME} `))) {
        throw new Error(`another redis-llm-server is using ${this.dataDir} (its redis-server answers on ${this.socketPath}); use another --dir`);
      }
      logger.warn({ socket: this.socketPath }, 'a managed redis-server from an earlier run is still running; shutting it down first');
      await probe.call('SHUTDOWN').catch(() => {}); // the connection closes when it is done
    } finally {
      probe.disconnect();
    }
    const deadline = Date.now() + 10_000;
    while (existsSync(this.socketPath) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (existsSync(this.socketPath)) throw new Error(`the earlier redis-server on ${this.socketPath} did not shut down`);
  }

  private spawnChild(): void {
    if (existsSync(this.socketPath)) rmSync(this.socketPath, { force: true });
    const conf = this.writeAuthConf();
    const args = [
      ...(conf ? [conf] : []),
      '--port', '0',
      '--unixsocket', this.socketPath,
      '--unixsocketperm', '700',
      '--dir', this.dataDir,
      '--appendonly', 'yes',
      '--appendfsync', 'everysec',
      // The AOF is the durable copy; no RDB snapshots (a large one would slow every shutdown).
      '--save', '',
      '--daemonize', 'no',
      '--loglevel', 'warning',
    ];
    const child = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    this.spawnedAt = Date.now();
    this.recentOutput = [];
    const onOutput = (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        const t = line.trim();
        if (!t) continue;
        this.recentOutput = [...this.recentOutput.slice(-9), t];
        // redis-server logs its start and stop notices at "warning" too: only real problems warn.
        if (/WARNING|error|fatal|can't|cannot|failed|denied/i.test(t)) logger.warn({ redis: t }, 'managed redis-server');
        else logger.info({ redis: t }, 'managed redis-server');
      }
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    child.on('error', (err) => logger.error({ err: err.message }, 'managed redis-server could not be started'));
    child.once('exit', (code, signal) => {
      // During start() an exit fails the start instead (waitReady reports it).
      if (this.stopping || !this.started || this.child !== child) return;
      // A child that ran a while starts again quickly; one that keeps dying backs off.
      if (Date.now() - this.spawnedAt > 30_000) this.restarts = 0;
      this.restarts++;
      const delay = Math.min(100 * 2 ** this.restarts, 5000);
      logger.error({ code, signal, delay }, 'managed redis-server exited; restarting');
      setTimeout(() => { if (!this.stopping) this.spawnChild(); }, delay).unref();
    });
    logger.info({ redisPid: child.pid, socket: this.socketPath, dir: this.dataDir }, 'started managed redis-server');
  }

  /**
   * Waits until the child answers PING (or -LOADING: it is up, loading its data). Its socket
   * file appears before it loads the AOF, which can still fail, so the file alone is not enough.
   * A child that exits meanwhile fails the start with its own last words.
   */
  private async waitReady(timeoutMs: number): Promise<void> {
    const child = this.child!;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const exited = child.exitCode !== null || child.signalCode !== null || (child.pid === undefined && Date.now() - this.spawnedAt > 1000);
      if (!exited && existsSync(this.socketPath)) {
        const reply = await pingSocket(this.socketPath, 1000);
        if (reply.startsWith('+PONG') || reply.startsWith('-LOADING') || reply.startsWith('-NOAUTH')) return;
      }
      if (exited || Date.now() > deadline) {
        this.stopping = true;
        if (!exited) child.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 50)); // let its last output arrive
        const why = this.recentOutput.filter((l) => !/oO0Oo|Redis version=|Configuration loaded|Server initialized|WARNING Memory overcommit/.test(l));
        throw new Error(`managed redis-server did not start${why.length ? `: ${why.join(' | ')}` : ''}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    });
    logger.info('stopped managed redis-server');
  }
}
