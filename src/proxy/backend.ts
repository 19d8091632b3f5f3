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
  return url.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:***@');
}

export function describeAddress(a: BackendAddress): string {
  return a.path ? `unix:${a.path}` : `${a.tls ? 'rediss' : 'redis'}://${a.host}:${a.port}`;
}

export class Backend extends EventEmitter {
  /** The server's own connection (durable layer, health). */
  readonly client: Redis;
  private _up = false;
  private _authRequired = false;
  private closed = false;

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
      this.emit('up');
    });
    this.client.on('error', (err: Error) => {
      if (this._up) logger.warn({ err: err.message }, 'backing Redis connection error');
    });
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

  async start(): Promise<void> {
    try {
      await this.client.connect();
    } catch (err) {
      logger.warn({ backend: describeAddress(this.address), err: (err as Error).message }, 'backing Redis not reachable yet; will keep retrying');
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
