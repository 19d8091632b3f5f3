/**
 * The server process: listens, accepts clients (up to maxclients), chooses the backing store
 * mode, and shuts down gracefully (stop accepting, finish in-flight replies, make state durable).
 */
import net from 'node:net';
import { logger } from '../log.js';
import type { Config } from '../config/config.js';
import { Backend, parseRedisUrl, redactUrl } from '../proxy/backend.js';
import { ManagedRedis, findRedisServer } from '../proxy/managed-redis.js';
import { Router } from '../commands/dispatcher.js';
import type { BackendMode, Services } from '../commands/services.js';
import { Session } from './session.js';

export class LlmServer implements Services {
  mode: BackendMode = 'standalone';
  readonly startedAt = Date.now();
  loading = false;
  backend: Backend | null = null;
  managed: ManagedRedis | null = null;
  private servers: net.Server[] = [];
  readonly sessions = new Set<Session>();
  private router!: Router;
  private stopping: Promise<void> | null = null;
  private totalConnections = 0;
  private rejectedConnections = 0;

  constructor(readonly config: Config) {}

  /** The first listening port (useful with --port 0). */
  get port(): number {
    const a = this.servers[0]?.address();
    return typeof a === 'object' && a ? a.port : this.config.port;
  }

  llmInfo(): string[] {
    return [
      `llm_server_mode:${this.mode}`,
      `llm_connected_clients:${this.sessions.size}`,
      `llm_total_connections_received:${this.totalConnections}`,
      `llm_rejected_connections:${this.rejectedConnections}`,
      `llm_backend_up:${this.backend?.up ? 1 : 0}`,
      `llm_loading:${this.loading ? 1 : 0}`,
    ];
  }

  async start(): Promise<void> {
    const cfg = this.config;
    if (cfg.redis) {
      this.mode = 'proxy';
      this.backend = new Backend(parseRedisUrl(cfg.redis), cfg.backendConnectTimeout);
      logger.info({ redis: redactUrl(cfg.redis) }, 'using the backing Redis');
    } else if (cfg.managedRedis && findRedisServer()) {
      this.mode = 'managed';
      this.managed = new ManagedRedis(cfg.dir);
      await this.managed.start();
      this.backend = new Backend(parseRedisUrl(this.managed.url), cfg.backendConnectTimeout);
    } else {
      this.mode = 'standalone';
      logger.warn('no --redis and no redis-server on PATH: standalone mode (LLM.* only, data in --dir)');
    }
    if (this.backend) {
      await this.backend.start();
      await this.backend.probeAuth();
    }
    this.router = new Router({ services: this, requirePass: this.mode === 'standalone' ? cfg.requirepass ?? undefined : undefined });
    for (const host of cfg.bind) await this.listen(host, cfg.port === 0 && this.servers.length > 0 ? this.port : cfg.port);
    logger.info({ port: this.port, bind: cfg.bind, mode: this.mode }, 'redis-llm-server ready to accept connections');
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
    if (this.sessions.size >= this.config.maxclients) {
      this.rejectedConnections++;
      sock.on('error', () => {});
      // Read (and drop) so the peer's FIN is seen and the socket really closes.
      sock.resume();
      sock.end('-ERR max number of clients reached\r\n');
      setTimeout(() => sock.destroy(), 1000).unref();
      return;
    }
    const authRequired = this.mode === 'standalone' ? !!this.config.requirepass : !!this.backend?.authRequired;
    const session = new Session(sock, {
      router: this.router,
      backend: this.backend,
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
    const listenersClosed = Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of this.sessions) s.stopReading();
    const deadline = Date.now() + this.config.shutdownTimeout;
    while ([...this.sessions].some((s) => !s.idle) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const s of this.sessions) s.close();
    await listenersClosed;
    if (this.backend) await this.backend.close();
    if (this.managed) await this.managed.stop();
    logger.info('bye');
  }
}
