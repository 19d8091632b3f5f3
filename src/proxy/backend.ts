/**
 * The backing Redis: where to connect, whether it is up, whether it wants AUTH.
 *
 * Two kinds of connections go to it:
 *  - one raw socket per client (BackendLink), unauthenticated, so each client's AUTH, SELECT,
 *    MULTI and subscriptions behave exactly as against Redis;
 *  - the server's own ioredis connection (authenticated from the URL, on the URL's db), used by
 *    the durable object layer and to watch health. It reconnects with backoff and logs it.
 */
import net from 'node:net';
import tls from 'node:tls';
import { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { logger } from '../log.js';

export interface BackendAddress {
  host?: string;
  port?: number;
  path?: string;
  tls?: boolean;
  username?: string;
  password?: string;
  db: number;
}

/** Parses `redis://[user:pass@]host:port/db`, `rediss://...` and `unix:///path/to.sock[?db=n]`. */
export function parseRedisUrl(url: string): BackendAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid --redis URL: ${redactUrl(url)}`);
  }
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  if (u.protocol === 'unix:') {
    const db = Number(u.searchParams.get('db') ?? 0);
    return { path: u.pathname, db: Number.isInteger(db) ? db : 0, username, password };
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`unsupported --redis scheme ${u.protocol} (use redis://, rediss:// or unix://)`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error('invalid db number in --redis URL');
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    tls: u.protocol === 'rediss:',
    username: username === 'default' && !password ? undefined : username,
    password,
    db,
  };
}

/** The URL with its password replaced, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    // Not a URL: hide everything between '//' and the last '@' of the authority.
    return url.replace(/\/\/([^:@/]*):[^/]*@/, '//$1:***@');
  }
}

/** The backing Redis refused the server's credentials (or its user may not run INFO). */
export function isAuthError(message: string): boolean {
  return /\b(WRONGPASS|NOAUTH|NOPERM)\b|invalid password|invalid username-password/i.test(message);
}

const AUTH_HINT = "the backing Redis refused the server's credentials: give its user and password in --redis (redis://[user]:password@host:port)";

export function describeAddress(a: BackendAddress): string {
  return a.path ? `unix:${a.path}` : `${a.tls ? 'rediss' : 'redis'}://${a.host}:${a.port}`;
}

export class Backend extends EventEmitter {
  /** The server's own connection (durable layer, health). */
  readonly client: Redis;
  private _up = false;
  /** first/last/step key positions of each backend command (lower-cased), from COMMAND. */
  private keySpecs = new Map<string, { first: number; last: number; step: number; movable: boolean }>();
  private _authRequired = false;
  private closed = false;
  /** The last connection error, logged once per distinct cause while down. */
  private lastError: string | null = null;

  constructor(readonly address: BackendAddress, private readonly connectTimeoutMs = 2000) {
    super();
    const opts: RedisOptions = {
      ...(address.path ? { path: address.path } : { host: address.host, port: address.port }),
      ...(address.tls ? { tls: {} } : {}),
      username: address.username,
      password: address.password,
      db: address.db,
      connectTimeout: connectTimeoutMs,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      enableReadyCheck: true,
      lazyConnect: true,
      connectionName: 'redis-llm-server',
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    };
    this.client = new Redis(opts);
    this.client.on('ready', () => {
      if (!this._up) logger.info({ backend: describeAddress(address) }, 'connected to the backing Redis');
      this._up = true;
      void this.probeAuth();
      void this.loadKeySpecs();
      this.emit('up');
    });
    this.client.on('error', (err: Error) => {
      const message = err.message;
      const repeated = message === this.lastError;
      this.lastError = message;
      if (this._up) logger.warn({ err: message }, 'backing Redis connection error');
      else if (repeated) return;
      // While down, each distinct cause is logged once (not once per retry).
      else if (isAuthError(message)) logger.error({ backend: describeAddress(address), err: message }, AUTH_HINT);
      else logger.warn({ backend: describeAddress(address), err: message }, 'backing Redis not reachable; retrying with backoff');
    });
    this.client.on('ready', () => { this.lastError = null; });
    this.client.on('close', () => {
      if (this._up && !this.closed) logger.warn('lost the backing Redis; reconnecting with backoff');
      const was = this._up;
      this._up = false;
      if (was) this.emit('down');
    });
    this.client.on('reconnecting', (ms: number) => logger.debug({ ms }, 'reconnecting to the backing Redis'));
  }

  get up(): boolean {
    return this._up;
  }

  /** True when a fresh connection must AUTH before running commands. */
  get authRequired(): boolean {
    return this._authRequired;
  }

  /**
   * Connects the server's own connection. A backend that is down is not an error (requests fail
   * fast; the connection is retried with backoff), but one that answers and refuses the
   * credentials from the URL is a configuration error: the server does not start.
   */
  async start(): Promise<void> {
    try {
      await this.client.connect();
    } catch (err) {
      const cause = this.lastError ?? (err as Error).message;
      if (isAuthError(cause)) {
        this.closed = true;
        this.client.disconnect();
        throw new Error(`${AUTH_HINT} (${describeAddress(this.address)}: ${cause})`);
      }
      logger.warn({ backend: describeAddress(this.address), err: cause }, 'backing Redis not reachable yet; will keep retrying');
    }
  }

  /** Checks whether an unauthenticated connection is refused (requirepass or ACL default user off). */
  async probeAuth(): Promise<void> {
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const sock = this.connectRaw();
        let buf = '';
        const timer = setTimeout(() => { sock.destroy(); reject(new Error('timeout')); }, this.connectTimeoutMs);
        sock.once('error', (e) => { clearTimeout(timer); reject(e); });
        sock.on('data', (d) => {
          buf += d.toString('latin1');
          if (buf.includes('\r\n')) {
            clearTimeout(timer);
            sock.destroy();
            resolve(buf);
          }
        });
        sock.write('*1\r\n$4\r\nPING\r\n');
      });
      this._authRequired = reply.startsWith('-NOAUTH');
    } catch {
      /* health events will retry later */
    }
  }

  private async loadKeySpecs(): Promise<void> {
    try {
      const table = (await this.client.call('COMMAND')) as unknown[][];
      const specs = new Map<string, { first: number; last: number; step: number; movable: boolean }>();
      for (const e of table) {
        const flags = (e[2] as string[]) ?? [];
        specs.set(String(e[0]).toLowerCase(), { first: Number(e[3]), last: Number(e[4]), step: Number(e[5]), movable: flags.includes('movablekeys') });
      }
      this.keySpecs = specs;
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'could not read the backend command table');
    }
  }

  /** Legacy key range (first, last, step) of a backend command; undefined when it has no keys. */
  keyRange(name: string): { first: number; last: number; step: number } | undefined {
    const s = this.keySpecs.get(name);
    return s && s.first > 0 ? s : undefined;
  }

  /** A new raw socket to the backing Redis (not authenticated). */
  connectRaw(): net.Socket {
    const a = this.address;
    const sock = a.path
      ? net.connect({ path: a.path })
      : a.tls
        ? tls.connect({ host: a.host, port: a.port, servername: a.host })
        : net.connect({ host: a.host!, port: a.port! });
    sock.setNoDelay(true);
    return sock;
  }

  /** Marks the backend down after a client link failed to connect (the health client confirms later). */
  reportFailure(): void {
    if (this._up) {
      this._up = false;
      this.emit('down');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
