/**
 * The server process: listens, accepts clients (up to maxclients), chooses the backing store
 * mode, and shuts down gracefully (stop accepting, finish in-flight replies, make state durable).
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { logger } from '../log.js';
import { CommandError } from '../errors.js';
import { MemoryKV, RedisKV, type KV } from '../storage/kv.js';
import type { Config } from '../config/config.js';
import { Backend, parseRedisUrl, redactUrl } from '../proxy/backend.js';
import { ManagedRedis, findRedisServer, readAclFile } from '../proxy/managed-redis.js';
import { Router } from '../commands/router.js';
import { AclKeyCache } from '../commands/acl-cache.js';
import type { BackendMode, Services } from '../commands/services.js';
import { SingleLink } from '../proxy/single-link.js';
import { ClusterLink } from '../proxy/cluster-link.js';
import { ClientConnection } from './connection.js';
import type { Redis } from 'ioredis';
import { ObjectManager } from '../objects/manager.js';
import { Follower } from '../objects/follower.js';
import { randomBytes } from 'node:crypto';
import { FileStorage, RedisStorage } from '../storage/index.js';
import type { Storage } from '../storage/types.js';
import { RouterProvider, makeLlmPolicy, routerInfoLines, type LlmPolicy } from '../llm/index.js';
import { StoreObject, ModelObject, AppObject } from '../objects/objects.js';
import { objectStats, type StatValue } from '../objects/stats.js';
import { configuredSecret, generatedSecret, type SecretBox } from '../util/secret.js';
import { addonIfBuilt } from '../util/addon.js';

export class LlmServer implements Services {
  mode: BackendMode = 'standalone';
  readonly startedAt = Date.now();
  objects: ObjectManager | null = null;
  follower: Follower | null = null;
  storage: Storage | null = null;
  backend: Backend | null = null;
  managed: ManagedRedis | null = null;
  private servers: net.Server[] = [];
  /** The TLS listeners (tls-port), apart from the plain ones. */
  private tlsServers: tls.Server[] = [];
  readonly sessions = new Set<ClientConnection>();
  private router!: Router;
  private stopping: Promise<void> | null = null;
  private totalConnections = 0;
  private readonly instanceId = randomBytes(6).toString('hex');
  /** Seals the secrets of LLM definitions at rest (see src/util/secret.ts); set by start() or the first load. */
  private secrets: SecretBox | null = null;

  get readOnly(): boolean {
    return this.config.readOnly;
  }
  /** Resolves when the objects are loaded (tests and the CLI may wait for it). */
  loadingDone: Promise<void> = Promise.resolve();
  private rejectedConnections = 0;

  constructor(readonly config: Config) {
    this.llmPolicy = makeLlmPolicy({ allowHosts: config.llmAllowHosts, envAllow: config.llmEnvAllow, keyHosts: config.llmKeyHosts });
  }

  /** The first listening port (useful with --port 0). */
  get port(): number {
    const a = this.servers[0]?.address();
    return typeof a === 'object' && a ? a.port : this.config.port;
  }

  /** Why the objects are not loaded yet (the last failed attempt), for the -LOADING reply. */
  loadError: string | null = null;

  get loading(): boolean {
    return !this.objects || this.objects.loading;
  }

  get storageDb(): number {
    return this.backend?.address.db ?? 0;
  }

  private _kv: KV | null = null;
  get kv(): KV {
    // On Redis Cluster the Cluster client serves the same calls (the cache and rate-limit keys
    // carry hash tags, so each script and multi-key call stays on one slot).
    return (this._kv ??= this.backend ? new RedisKV(this.backend.client as Redis) : new MemoryKV());
  }

  /** The operator's LLM policy (--llm-allow-hosts, llm-env-allow, llm-key-hosts), this server's own. */
  readonly llmPolicy: LlmPolicy;

  /** LLM.* key permissions of ACL users, as the backing Redis answered them (commands/acl.ts). */
  readonly aclCache = new AclKeyCache();

  async aclDryRun(user: string, args: Array<string | Buffer>): Promise<string> {
    if (!this.backend) throw new CommandError('no backing Redis');
    return String(await this.backend.client.call('ACL', 'DRYRUN', user, ...args));
  }

  get llmTimeoutMs(): number {
    return this.config.llmTimeout > 0 ? this.config.llmTimeout : 60_000;
  }

  get streamMaxlen(): number {
    return this.config.streamMaxlen;
  }

  /** One connection per db for stream writes (the server's own credentials). */
  private streamConns = new Map<number, import('ioredis').Redis>();

  async xadd(db: number, key: Buffer, maxlen: number, fields: string[]): Promise<void> {
    if (!this.backend) throw new CommandError('no backing Redis: --STREAM needs one (start with --redis <url> or install redis-server)');
    const client = this.backend.client;
    if (this.backend.isCluster) {
      // Redis Cluster has only db 0: the Cluster client routes the XADD by the key's slot.
      await client.xadd(key, 'MAXLEN', '~', maxlen, '*', ...fields);
      return;
    }
    let conn = this.streamConns.get(db);
    if (!conn) {
      conn = (client as Redis).duplicate({ db, lazyConnect: false, enableOfflineQueue: true, maxRetriesPerRequest: 1 });
      conn.on('error', () => {});
      this.streamConns.set(db, conn);
    }
    await conn.xadd(key, 'MAXLEN', '~', maxlen, '*', ...fields);
  }

  keyRange(name: string) {
    return this.backend?.keyRange(name);
  }

  clientConnections(): Iterable<ClientConnection> {
    return this.sessions;
  }

  llmInfo(): string[] {
    const lines = [
      `llm_server_mode:${this.mode}`,
      `llm_connected_clients:${this.sessions.size}`,
      `llm_total_connections_received:${this.totalConnections}`,
      `llm_rejected_connections:${this.rejectedConnections}`,
      `llm_backend_up:${this.backend?.up ? 1 : 0}`,
      `llm_loading:${this.loading ? 1 : 0}`,
      `llm_storage:${this.storage?.kind ?? 'none'}`,
      `llm_objects:${this.objects?.size ?? 0}`,
      `llm_instance_id:${this.follower?.instanceId ?? this.instanceId}`,
      `llm_read_only:${this.config.readOnly ? 1 : 0}`,
      `llm_following:${this.follower?.enabled ? 1 : 0}`,
      `llm_follow_entries:${this.follower?.followedEntries ?? 0}`,
      `llm_follow_lag_ms:${this.follower?.lastLagMs ?? 0}`,
      `llm_follow_lag_p50_ms:${this.follower?.lagPercentile(50) ?? 0}`,
      `llm_follow_lag_p99_ms:${this.follower?.lagPercentile(99) ?? 0}`,
      `llm_vector_simd:${addonIfBuilt()?.simd ?? 'unavailable'}`,
    ];
    if (!this.objects) return lines;
    let m = 0;
    let v = 0;
    let a = 0;
    // The fields of LLM.STATS and LLM.INFO (src/objects/stats.ts); a router's targets on lines of their own.
    const fields = (st: Record<string, StatValue> | null) => Object.entries(st ?? {}).map(([k, x]) => `,${k}=${x}`).join('');
    let t = 0;
    for (const o of this.objects.all()) {
      if (o instanceof ModelObject) {
        lines.push(`model${m++}:name=${infoSafe(o.name)},db=${o.db},type=${o.provider.type}${fields(objectStats(o))}`);
        if (o.provider instanceof RouterProvider) lines.push(...routerInfoLines(o.name, o.db, o.provider, () => t++, infoSafe));
      } else if (o instanceof AppObject) {
        lines.push(`app${a++}:name=${infoSafe(o.name)},db=${o.db},kind=${o.kind}${fields(objectStats(o))}`);
      } else if (o instanceof StoreObject) {
        lines.push(`store${v++}:name=${infoSafe(o.name)},db=${o.db}${fields(objectStats(o))}`);
      }
    }
    return lines;
  }

  /** Opens storage and loads the objects; retried with backoff while the storage is unreachable. */
  private async loadObjects(): Promise<void> {
    let delay = 200;
    while (!this.stopping) {
      try {
        // The generated secret lives in --dir, as standalone objects do: like them, it is retried
        // while the directory cannot be written (the reason is in the -LOADING reply).
        if (!this.secrets) this.useSecret(generatedSecret(this.config.dir));
        await this.storage!.open();
        const objects = new ObjectManager(this.storage!, this.secrets!, {
          snapshotChanges: this.config.snapshotChanges,
          snapshotIntervalMs: this.config.snapshotInterval,
          ...this.config.snapshotOptions,
        });
        objects.readOnly = this.config.readOnly;
        const catalogPos = await objects.load();
        objects.startSnapshots();
        this.objects = objects;
        if (this.config.follow && this.mode !== 'standalone') {
          this.follower = new Follower(objects, this.storage!, catalogPos);
          this.follower.start();
        }
        return;
      } catch (err) {
        this.loadError = (err as Error).message;
        logger.warn({ err: this.loadError, retryInMs: delay }, 'could not load LLM objects yet; retrying');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  private useSecret(s: { box: SecretBox; from: string }): void {
    this.secrets = s.box;
    logger.info({ from: s.from, keyId: s.box.keyId }, 'server secret for sealing API keys at rest');
  }

  async start(): Promise<void> {
    const cfg = this.config;
    // A secret the operator gave must be usable: otherwise startup fails here, naming the cause.
    const given = configuredSecret({ file: cfg.secretFile, env: cfg.secret });
    if (given) this.useSecret(given);
    // TLS settings are checked before anything starts: a bad one stops the start, naming it.
    if (cfg.tlsPort === 0) {
      const tlsGiven = [cfg.tlsCertFile && 'tls-cert-file', cfg.tlsKeyFile && 'tls-key-file', cfg.tlsCaCertFile && 'tls-ca-cert-file', cfg.tlsProtocols?.length && 'tls-protocols'].filter(Boolean);
      if (tlsGiven.length) throw new Error(`${tlsGiven.join(', ')} set without tls-port: no listener would use ${tlsGiven.length > 1 ? 'them' : 'it'} (set tls-port)`);
    }
    const tlsOptions = cfg.tlsPort > 0 ? tlsServerOptions(cfg) : null;

    const users = [...(cfg.user ?? []), ...(cfg.aclfile ? readAclFile(cfg.aclfile) : [])];
    if (cfg.redis) {
      // A setting that cannot apply here stops the start, naming why: never silently ignored.
      const given = [cfg.requirepass ? 'requirepass' : '', cfg.user?.length ? 'user' : '', cfg.aclfile ? 'aclfile' : ''].filter(Boolean);
      if (given.length) {
        throw new Error(
          `${given.join(', ')} cannot apply with --redis: the backing Redis's own AUTH and ACL users apply (set them on that Redis, and give the server's user and password in the --redis URL)`,
        );
      }
      this.mode = 'proxy';
      this.backend = new Backend(parseRedisUrl(cfg.redis), cfg.backendConnectTimeout);
      logger.info({ redis: redactUrl(cfg.redis) }, 'using the backing Redis');
    } else if (cfg.managedRedis && findRedisServer()) {
      this.mode = 'managed';
      // requirepass and ACL users go to the managed redis-server: AUTH, HELLO AUTH and NOAUTH
      // work as against Redis; the server connects as its own internal user.
      this.managed = new ManagedRedis(cfg.dir, 'redis-server', { requirepass: cfg.requirepass, users });
      await this.managed.start();
      this.backend = new Backend({ ...parseRedisUrl(this.managed.url), ...(this.managed.credentials ?? {}) }, cfg.backendConnectTimeout);
    } else {
      if (users.length) {
        throw new Error(`${cfg.aclfile ? 'aclfile' : 'user'} needs a redis-server (managed mode: redis-server on PATH and managed-redis yes, or --redis): standalone mode has only requirepass`);
      }
      this.mode = 'standalone';
      logger.warn('no --redis and no redis-server on PATH: standalone mode (LLM.* only, data in --dir)');
    }
    if (this.backend) {
      await this.backend.start();
      await this.backend.probeAuth();
      if (this.backend.isCluster && this.backend.up) await this.backend.refreshSlots();
    }
    this.storage = this.backend ? new RedisStorage(this.backend.client) : new FileStorage(cfg.dir);
    this.loadingDone = this.loadObjects();
    this.router = new Router({ services: this, requirePass: this.mode === 'standalone' ? cfg.requirepass ?? undefined : undefined });
    this.fitMaxclients();
    for (const host of cfg.bind) await this.listen(host, cfg.port === 0 && this.servers.length > 0 ? this.port : cfg.port);
    if (cfg.tlsPort > 0) {
      for (const host of cfg.bind) await this.listenTls(host, cfg.tlsPort, tlsOptions!);
    }
    this.logProtection();
    logger.info({ port: this.port, ...(cfg.tlsPort > 0 ? { tlsPort: this.tlsPort } : {}), bind: cfg.bind, mode: this.mode }, 'redis-llm-server ready to accept connections');
  }

  /** Whether a new client must authenticate first (requirepass, or the backing Redis's AUTH). */
  private get authRequired(): boolean {
    return this.mode === 'standalone' ? !!this.config.requirepass : !!this.backend?.authRequired;
  }

  /** The first TLS listening port (tls-port), or 0. */
  get tlsPort(): number {
    const a = this.tlsServers[0]?.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Says loudly what keeps clients of other hosts out, or that nothing does. */
  private logProtection(): void {
    const open = this.config.bind.some((b) => !LOOPBACK_BINDS.has(b.toLowerCase()));
    if (this.authRequired) return;
    if (this.config.protectedMode) {
      if (open) {
        logger.warn(
          { bind: this.config.bind },
          'PROTECTED MODE: no password is set, so clients from addresses other than 127.0.0.1 and ::1 are refused (-DENIED), whatever the bind. Set requirepass (Docker: REDIS_LLM_REQUIREPASS or REDIS_LLM_REQUIREPASS_FILE) to let them in with a password.',
        );
      }
    } else if (open) {
      logger.warn({ bind: this.config.bind }, 'protected-mode is off and no password is set: anyone who reaches this port can use the server and spend its LLM API keys');
    }
  }

  /** SIGHUP: reads tls-cert-file, tls-key-file and tls-ca-cert-file again; new connections use them. */
  reloadTls(): void {
    if (this.tlsServers.length === 0) return;
    try {
      const opts = tlsServerOptions(this.config);
      for (const srv of this.tlsServers) srv.setSecureContext(opts);
      logger.info('TLS certificates reloaded');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'TLS certificates not reloaded: the current ones stay in use');
    }
  }

  private listenTls(host: string, port: number, opts: tls.TlsOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      const srv = tls.createServer(opts, (sock) => {
        // tls-auth-clients optional: a certificate given must be valid.
        if (this.config.tlsAuthClients === 'optional' && !sock.authorized && Object.keys(sock.getPeerCertificate() ?? {}).length > 0) {
          sock.destroy();
          return;
        }
        this.accept(sock);
      });
      srv.on('error', reject);
      srv.on('tlsClientError', (err) => logger.debug({ err: err.message }, 'TLS handshake failed'));
      srv.listen({ host, port: port === 0 && this.tlsServers.length > 0 ? this.tlsPort : port, backlog: 511 }, () => {
        srv.off('error', reject);
        srv.on('error', (err) => logger.error({ err: err.message }, 'TLS listener error'));
        this.tlsServers.push(srv);
        resolve();
      });
    });
  }

  /** maxclients as configured, or lower when the open-files limit cannot hold that many clients (set by start()). */
  maxclients = 0;

  /**
   * As Redis does at startup: when the open-files limit is below maxclients plus the descriptors
   * the server needs itself, maxclients is reduced to fit, with a warning. Without this, clients
   * past the limit were closed by accept() without a word (EMFILE) instead of getting
   * "max number of clients reached". (A client sending commands through a backing Redis holds a
   * second descriptor for its link; a link that cannot be opened refuses that client the same way.)
   */
  private fitMaxclients(): void {
    const nofile = openFilesLimit();
    const wanted = this.config.maxclients;
    this.maxclients = wanted;
    if (nofile === null || nofile - RESERVED_FDS >= wanted) return;
    this.maxclients = Math.max(1, nofile - RESERVED_FDS);
    logger.warn(
      { maxclients: wanted, openFilesLimit: nofile, reducedTo: this.maxclients },
      `maxclients ${wanted} needs at least ${wanted + RESERVED_FDS} open files but the limit is ${nofile}: maxclients reduced to ${this.maxclients}; raise ulimit -n (each client sending commands through the backing Redis uses two descriptors)`,
    );
  }

  private listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const srv = net.createServer((sock) => this.accept(sock));
      srv.on('error', reject);
      srv.listen({ host, port, backlog: 511 }, () => {
        srv.off('error', reject);
        srv.on('error', (err) => logger.error({ err: err.message }, 'listener error'));
        this.servers.push(srv);
        resolve();
      });
    });
  }

  private accept(sock: net.Socket): void {
    this.totalConnections++;
    if (this.stopping) {
      sock.destroy();
      return;
    }
    // Protected mode, stricter than Redis's: whatever the bind, while no password is needed only
    // 127.0.0.1 and ::1 may connect (this server can spend its operator's API keys).
    if (this.config.protectedMode && !this.authRequired && !isLoopback(sock.remoteAddress)) {
      this.rejectedConnections++;
      logger.warn({ from: sock.remoteAddress }, 'protected mode: refused a client from another host (no password is set)');
      sock.on('error', () => {});
      sock.resume();
      sock.end(DENIED);
      setTimeout(() => sock.destroy(), 1000).unref();
      return;
    }
    if (this.sessions.size >= this.maxclients) {
      this.rejectedConnections++;
      sock.on('error', () => {});
      // Read (and drop) so the peer's FIN is seen and the socket really closes.
      sock.resume();
      sock.end('-ERR max number of clients reached\r\n');
      setTimeout(() => sock.destroy(), 1000).unref();
      return;
    }
    const authRequired = this.authRequired;
    const backend = this.backend;
    const session = new ClientConnection(sock, {
      router: this.router,
      backend,
      makeLink: (owner) => (!backend ? null : backend.isCluster ? new ClusterLink(owner, backend) : new SingleLink(owner, backend)),
      limits: {
        maxBulkLen: this.config.protoMaxBulkLen,
        maxMultibulkLen: this.config.protoMaxMultibulkLen,
        maxInlineLen: 64 * 1024,
      },
      authenticated: !authRequired,
      outputBufferLimit: this.config.clientOutputBufferLimit,
      onClose: (s) => this.sessions.delete(s),
    });
    this.sessions.add(session);
  }

  /** Graceful stop: no new clients, in-flight replies finish (bounded), state made durable. */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    logger.info('shutting down');
    // close() stops accepting now; its callback only fires once every connection is gone.
    const listenersClosed = Promise.all([...this.servers, ...this.tlsServers].map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of this.sessions) s.stopReading();
    const deadline = Date.now() + this.config.shutdownTimeout;
    while ([...this.sessions].some((s) => !s.idle) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const s of this.sessions) s.close();
    await listenersClosed;
    this.follower?.stop();
    if (this.objects) await this.objects.close();
    if (this.storage) await this.storage.close().catch(() => {});
    for (const c of this.streamConns.values()) c.disconnect();
    if (this.backend) await this.backend.close();
    if (this.managed) await this.managed.stop();
    logger.info('bye');
  }
}

const LOOPBACK_BINDS = new Set(['127.0.0.1', '::1', 'localhost']);

/** As Redis's protected mode judges it: 127.0.0.1 and ::1 only (not the rest of 127/8). */
function isLoopback(addr: string | undefined): boolean {
  return addr === '127.0.0.1' || addr === '::1' || addr === '::ffff:127.0.0.1';
}

/** Redis's words, then what applies to this server. */
export const DENIED =
  '-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. ' +
  'In this mode connections are only accepted from the loopback interface. If you want to connect from external computers you may adopt one of the following solutions: ' +
  "1) Set up an authentication password for the default user: requirepass (in Docker: REDIS_LLM_REQUIREPASS or REDIS_LLM_REQUIREPASS_FILE), or with --redis, the backing Redis's own. " +
  "2) If you started the server manually just for testing, restart it with the '--protected-mode no' option, and MAKE SURE it is not reachable from the internet: it can spend its operator's LLM API keys. " +
  'NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n';

const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;

/** tls-* settings as Redis takes them, to Node's TLS server options. Throws naming what is wrong. */
function tlsServerOptions(cfg: Config): tls.TlsOptions {
  if (!cfg.tlsCertFile || !cfg.tlsKeyFile) throw new Error('tls-port needs tls-cert-file and tls-key-file');
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${name}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const auth = cfg.tlsAuthClients;
  if (auth !== 'no' && !cfg.tlsCaCertFile) throw new Error(`tls-auth-clients ${auth} needs tls-ca-cert-file (or set tls-auth-clients no)`);
  const opts: tls.TlsOptions = {
    cert: read('tls-cert-file', cfg.tlsCertFile),
    key: read('tls-key-file', cfg.tlsKeyFile),
    requestCert: auth !== 'no',
    rejectUnauthorized: auth === 'yes',
  };
  if (cfg.tlsCaCertFile) opts.ca = read('tls-ca-cert-file', cfg.tlsCaCertFile);
  if (cfg.tlsProtocols?.length) {
    const wanted = cfg.tlsProtocols.map((p) => TLS_VERSIONS.find((v) => v.toLowerCase() === p.toLowerCase()));
    const bad = cfg.tlsProtocols.find((_, i) => wanted[i] === undefined);
    if (bad !== undefined) throw new Error(`tls-protocols: '${bad}' is not one of ${TLS_VERSIONS.join(', ')}`);
    const idx = wanted.map((v) => TLS_VERSIONS.indexOf(v!)).sort();
    opts.minVersion = TLS_VERSIONS[idx[0]!];
    opts.maxVersion = TLS_VERSIONS[idx[idx.length - 1]!];
  }
  try {
    tls.createSecureContext(opts);
  } catch (err) {
    throw new Error(`TLS: the certificate or key cannot be used: ${(err as Error).message}`);
  }
  return opts;
}

/** Descriptors kept for the server's own use (listeners, backend and storage connections, files). */
const RESERVED_FDS = 64;

/** The soft limit on open files (from /proc on Linux), or null when it is unknown or unlimited. */
function openFilesLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** INFO values must not contain the separators of INFO lines. */
function infoSafe(s: string): string {
  return s.replace(/[\r\n,:=\s]/g, '_');
}
