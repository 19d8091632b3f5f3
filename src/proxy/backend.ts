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
import { Redis, Cluster, type RedisOptions, type ClusterOptions } from 'ioredis';
import { logger } from '../log.js';
import { OWN_CONNECTION_NAME } from '../util/names.js';

export interface BackendAddress {
  host?: string;
  port?: number;
  path?: string;
  tls?: boolean;
  username?: string;
  password?: string;
  db: number;
  /** Redis Cluster: the seed nodes (host/port above are the first one). */
  cluster?: Array<{ host: string; port: number }>;
}

/**
 * Parses `redis+cluster://[user:pass@]host1:port1,host2:port2,...` (or `rediss+cluster://`, or a
 * `redis://` URL listing several hosts): Redis Cluster seed nodes; the credentials apply to every
 * node. Cluster has only db 0.
 */
function parseClusterUrl(url: string): BackendAddress | null {
  const m = /^(rediss?)(\+cluster)?:\/\/(?:([^@/]*)@)?([^/?#]*)(\/[^?#]*)?$/i.exec(url);
  if (!m) return null;
  const isCluster = !!m[2] || m[4]!.includes(',');
  if (!isCluster) return null;
  let username: string | undefined;
  let password: string | undefined;
  if (m[3] !== undefined) {
    const colon = m[3].indexOf(':');
    const user = colon < 0 ? m[3] : m[3].slice(0, colon);
    try {
      username = user ? decodeURIComponent(user) : undefined;
      password = colon < 0 ? undefined : decodeURIComponent(m[3].slice(colon + 1));
    } catch {
      throw new Error(`invalid --redis URL: ${redactUrl(url)}`);
    }
  }
  const nodes: Array<{ host: string; port: number }> = [];
  for (const part of m[4]!.split(',')) {
    if (!part) continue;
    const hm = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(part);
    if (!hm) throw new Error(`invalid cluster node '${part}' in --redis URL`);
    const port = hm[3] ? Number(hm[3]) : 6379;
    if (port < 1 || port > 65535) throw new Error(`invalid port in cluster node '${part}'`);
    nodes.push({ host: hm[1] ?? hm[2]!, port });
  }
  if (nodes.length === 0) throw new Error('--redis redis+cluster:// needs at least one seed node');
  if (m[5] && m[5] !== '/' && m[5] !== '/0') throw new Error('Redis Cluster has only db 0: remove the db from the --redis URL');
  return {
    host: nodes[0]!.host,
    port: nodes[0]!.port,
    tls: m[1]!.toLowerCase() === 'rediss',
    username: username === 'default' && !password ? undefined : username,
    password,
    db: 0,
    cluster: nodes,
  };
}

/** Parses `redis://[user:pass@]host:port/db`, `rediss://...` and `unix:///path/to.sock[?db=n]`. */
export function parseRedisUrl(url: string): BackendAddress {
  const cluster = parseClusterUrl(url);
  if (cluster) return cluster;
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
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`unsupported --redis scheme ${u.protocol} (use redis://, rediss://, redis+cluster:// or unix://)`);
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
  if (a.cluster) return `${a.tls ? 'rediss' : 'redis'}+cluster://${a.cluster.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',')}`;
  return a.path ? `unix:${a.path}` : `${a.tls ? 'rediss' : 'redis'}://${a.host}:${a.port}`;
}

export class Backend extends EventEmitter {
  /** The server's own connection (durable layer, health): a Cluster client on Redis Cluster. */
  readonly client: Redis | Cluster;
  /** Redis Cluster: the master ("host:port") serving each slot, from CLUSTER SLOTS; empty until read. */
  slotNodes: string[] = [];
  private slotsRefresh: Promise<void> | null = null;
  private _up = false;
  /** first/last/step key positions of each backend command (lower-cased), from COMMAND. */
  private keySpecs = new Map<string, { first: number; last: number; step: number; movable: boolean }>();
  private _authRequired = false;
  private closed = false;
  /** The last connection error, logged once per distinct cause while down. */
  private lastError: string | null = null;

  constructor(readonly address: BackendAddress, private readonly connectTimeoutMs = 2000) {
    super();
    const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000);
    if (address.cluster) {
      const copts: ClusterOptions = {
        redisOptions: {
          ...(address.tls ? { tls: {} } : {}),
          username: address.username,
          password: address.password,
          connectTimeout: connectTimeoutMs,
          maxRetriesPerRequest: 1,
          connectionName: OWN_CONNECTION_NAME,
        },
        enableOfflineQueue: false,
        enableReadyCheck: true,
        lazyConnect: true,
        clusterRetryStrategy: retryStrategy,
      };
      this.client = new Cluster(address.cluster, copts);
    } else {
      this.client = new Redis(this.singleOptions(address, connectTimeoutMs, retryStrategy));
    }
    this.wireEvents();
  }

  get isCluster(): boolean {
    return !!this.address.cluster;
  }

  private singleOptions(address: BackendAddress, connectTimeoutMs: number, retryStrategy: (t: number) => number): RedisOptions {
    return {
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
      connectionName: OWN_CONNECTION_NAME,
      retryStrategy,
    };
  }

  private wireEvents(): void {
    const address = this.address;
    this.client.on('ready', () => {
      if (!this._up) logger.info({ backend: describeAddress(address) }, 'connected to the backing Redis');
      this._up = true;
      void this.probeAuth();
      void this.loadKeySpecs();
      if (this.isCluster) void this.refreshSlots();
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

  /** PING on a fresh raw connection (as a client link would open): the first reply line. */
  private rawPing(): Promise<string> {
    return new Promise<string>((resolve, reject) => {
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
  }

  /** Checks whether an unauthenticated connection is refused (requirepass or ACL default user off). */
  async probeAuth(): Promise<void> {
    try {
      const reply = await this.rawPing();
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

  /**
   * Redis Cluster: reads the slot map (CLUSTER SLOTS) again. Concurrent calls share one read.
   */
  refreshSlots(): Promise<void> {
    if (!this.isCluster) return Promise.resolve();
    this.slotsRefresh ??= (async () => {
      try {
        const reply = (await this.client.call('CLUSTER', 'SLOTS')) as unknown[][];
        const map: string[] = new Array(16384).fill('');
        for (const range of reply) {
          const [start, end, master] = range as [number, number, unknown[]];
          const host = String(master[0] ?? '') || this.address.host!;
          const node = `${host}:${Number(master[1])}`;
          for (let i = Number(start); i <= Number(end); i++) map[i] = node;
        }
        this.slotNodes = map;
        this.mastersCache = null;
        this.emit('slots');
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'could not read the cluster slot map');
      } finally {
        this.slotsRefresh = null;
      }
    })();
    return this.slotsRefresh;
  }

  /** Redis Cluster: a MOVED reply said where `slot` lives now (a full refresh follows). */
  noteMoved(slot: number, node: string): void {
    if (slot >= 0 && slot < this.slotNodes.length && this.slotNodes[slot] !== node) {
      this.slotNodes[slot] = node;
      this.mastersCache = null;
    }
    void this.refreshSlots();
  }

  private mastersCache: string[] | null = null;

  /** Redis Cluster: the masters serving slots, ordered by their first slot. */
  masters(): string[] {
    if (this.mastersCache) return this.mastersCache;
    const out: string[] = [];
    const seen = new Set<string>();
    for (const n of this.slotNodes) {
      if (n && !seen.has(n)) {
        seen.add(n);
        out.push(n);
      }
    }
    if (out.length === 0) return [`${this.address.host}:${this.address.port}`];
    this.mastersCache = out;
    return out;
  }

  /** A new raw socket to the backing Redis (not authenticated); on Cluster, to node "host:port" (default: the first seed). */
  connectRaw(node?: string): net.Socket {
    const a = this.address;
    let host = a.host;
    let port = a.port;
    if (node) {
      const colon = node.lastIndexOf(':');
      host = node.slice(0, colon).replace(/^\[|\]$/g, '');
      port = Number(node.slice(colon + 1));
    }
    const sock = a.path
      ? net.connect({ path: a.path })
      : a.tls
        ? tls.connect({ host, port, servername: host })
        : net.connect({ host: host!, port: port! });
    sock.setNoDelay(true);
    return sock;
  }

  private confirming = false;

  /**
   * Marks the backend down after a client link failed to connect, so requests fail fast, then
   * checks it. Only the health connection's 'ready' marked it up again, and that connection may
   * never have dropped (a connect that timed out under a full listen backlog, say): the backend
   * then stayed "unavailable" for every new client for good while it answered fine.
   */
  reportFailure(): void {
    if (!this._up) return;
    this._up = false;
    logger.warn({ backend: describeAddress(this.address) }, 'a client connection to the backing Redis failed; checking it');
    this.emit('down');
    void this.confirmUp();
  }

  /** Up again as soon as a fresh connection gets an answer (any reply line), with backoff. */
  private async confirmUp(): Promise<void> {
    if (this.confirming) return;
    this.confirming = true;
    try {
      for (let delay = 100; !this._up && !this.closed; delay = Math.min(delay * 2, 2000)) {
        await new Promise((r) => setTimeout(r, delay).unref());
        if (this._up || this.closed) return;
        const answered = await this.rawPing().then((line) => /^[-+:$*]/.test(line), () => false);
        if (answered && !this._up && !this.closed) {
          this._up = true;
          logger.info({ backend: describeAddress(this.address) }, 'the backing Redis answers; accepting requests again');
          this.emit('up');
        }
      }
    } finally {
      this.confirming = false;
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
