/**
 * One client connection.
 *
 * Requests flow: socket → RequestParser → Router → either forwarded on this client's own
 * backend socket (raw bytes, untouched) or run here. Execution follows request order, as in
 * Redis: a local command starts only when every earlier request has been answered, and later
 * requests wait for it. Forwarded requests in a row are pipelined to the backend as they arrive.
 *
 * Replies flow: backend socket → ReplyScanner (finds frame ends without decoding) → written to
 * the client. While nothing needs to look at replies, whole runs of frames — even a partial
 * frame of a large value — go straight through as one write.
 */
import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { RequestParser, encodeRequest, type ParserLimits } from '../protocol/request-parser.js';
import { ReplyScanner } from '../protocol/reply-scanner.js';
import { decodeFrame, encode, ErrorReply, SimpleString, type Decoded, type RespValue } from '../protocol/resp.js';
import { runLocal, type ForwardHooks, type Plan, type Router, type SessionView, type StateChange } from '../commands/dispatcher.js';
import type { CommandContext } from '../commands/context.js';
import type { Backend } from '../proxy/backend.js';
import { filterCommandLog, filterExecReply, isCommandLogGet } from '../proxy/introspection.js';
import { ParsingHold } from './parsing-hold.js';

interface ProxySlot {
  kind: 'proxy';
  /** Replies still expected (subscribe slots: until the sentinel). */
  remaining: number;
  hooks?: ForwardHooks;
  /** Internal call made by a handler: the reply is resolved, not written. */
  resolve?: (v: Decoded) => void;
  reject?: (e: Error) => void;
}

interface Pending {
  args: Buffer[];
  raw: Buffer;
}

export interface SessionOptions {
  router: Router;
  backend: Backend | null;
  limits: ParserLimits;
  /** Authenticated from the start (no requirepass / backend without AUTH). */
  authenticated: boolean;
  /** Disconnect when the client's unread output exceeds this many bytes (0 = no limit). */
  outputBufferLimit: number;
  onClose(session: Session): void;
}

let nextId = 1;
/** Errors opening a backend link that mean this process is out of resources, not that the backend is down. */
const LOCAL_EXHAUSTION = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']);
let lastExhaustionLog = 0;
const SUBSCRIBE_KINDS = new Set(['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe']);
const SHARD_KINDS = new Set(['ssubscribe', 'sunsubscribe']);
const PUSH_KINDS = new Set(['message', 'pmessage', 'smessage']);

export class Session implements SessionView {
  readonly id = nextId++;
  db = 0;
  private _authenticated = false;
  inMulti = false;
  /** Subscription counts as last confirmed by the backend. */
  private subCount = 0;
  private shardCount = 0;
  /** Decode every reply frame (this connection used pub/sub and may receive pushes). */
  private pubsubAware = false;
  private monitor = false;
  private readonly sentinel = `__rls_sentinel_${randomBytes(6).toString('hex')}`;

  private readonly parser: RequestParser;
  private readonly scanner = new ReplyScanner();
  private link: net.Socket | null = null;
  /** The link had connected once: losing it now loses state, so the client is closed too. */
  private linkEstablished = false;
  private slots: ProxySlot[] = [];
  /** A local command is running or waiting for earlier replies. */
  private blocked: { name: string; args: Buffer[]; running: boolean } | null = null;
  private inbox: Pending[] = [];
  /** Pieces of an incomplete reply frame that must be seen whole. */
  private partial: Buffer[] = [];
  /** Bytes of the current incomplete frame were already written through. */
  private streaming = false;
  private closing = false;
  private closed = false;
  private readonly ctx: CommandContext;
  private backendWrites: Buffer[] = [];
  private clientWrites: Buffer[] = [];
  private readPaused = false;
  private flushScheduled = false;
  /** QUIT was read: nothing after it is. */
  private quitSeen = false;
  /** A protocol error (or an HTTP request) ends the connection once earlier replies are out. */
  private finish: { last: Buffer } | null = null;
  /** Set when the backend link could not be opened for lack of local resources (EMFILE...). */
  private linkRefusal: string | null = null;
  /** A MULTI was sent: commands sent since, and the positions of SLOWLOG/COMMANDLOG GETs among them. */
  private tx: { n: number; logGets: number[] } | null = null;
  /** Parsing waits after AUTH until it is answered (Redis's pre-AUTH limits, parsing-hold.ts). */
  private readonly hold: ParsingHold;

  constructor(readonly socket: net.Socket, private readonly opts: SessionOptions) {
    this.ctx = { client: this, services: opts.router.services };
    this.parser = new RequestParser(
      {
        onCommand: (args, raw) => this.onCommand(args, raw),
        onProtocolError: (msg) => this.onProtocolError(msg),
      },
      opts.limits,
    );
    const flush = () => {
      this.flushBackendWrites();
      this.flushClientWrites();
    };
    this.hold = new ParsingHold(this.parser, socket, () => this.idle && !this.closing, flush);
    this.authenticated = opts.authenticated;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.parser.feed(chunk);
      this.hold.release();
      this.flushBackendWrites();
      this.flushClientWrites();
    });
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.on('drain', () => this.link?.resume());
    // The backend link is opened by the first request that needs it (ensureLink): an idle client
    // holds one descriptor here and none in the backing Redis, so 10,000 idle clients need 10,000
    // descriptors (not 20,000) and do not run a default Redis (maxclients 10000) out of slots.
  }

  // ---- SessionView -------------------------------------------------------------------------

  get pubsubMode(): boolean {
    return this.subCount + this.shardCount > 0;
  }

  get backendUp(): boolean {
    return !!this.opts.backend?.up;
  }

  get authenticated(): boolean {
    return this._authenticated;
  }

  /** Redis's unauthenticated request limits apply to the requests parsed while this is false. */
  set authenticated(v: boolean) {
    this._authenticated = v;
    this.parser.authRequired = !v;
  }

  setAuthenticated(v: boolean): void {
    this.authenticated = v;
  }

  applyState(s: StateChange): void {
    if (s.db !== undefined) this.db = s.db;
    if (s.authenticated !== undefined) this.authenticated = s.authenticated;
    if (s.inMulti !== undefined) this.inMulti = s.inMulti;
    if (s.reset) {
      this.db = 0;
      this.inMulti = false;
      this.subCount = 0;
      this.shardCount = 0;
      this.authenticated = !this.opts.backend?.authRequired;
    }
  }

  backendCall(args: Array<string | Buffer>): Promise<Decoded> {
    return new Promise((resolve, reject) => {
      if (!this.ensureLink()) {
        reject(new CommandError(this.unavailableText()));
        return;
      }
      this.slots.push({ kind: 'proxy', remaining: 1, resolve, reject });
      this.link!.write(encodeRequest(args));
    });
  }

  // ---- requests ----------------------------------------------------------------------------

  private onCommand(args: Buffer[], raw: Buffer): void {
    if (this.closing || this.quitSeen || this.finish) return;
    const a0 = args[0];
    if (a0.length === 4 || a0.length === 5) {
      const n = a0.toString('latin1').toLowerCase();
      // As Redis: nothing after QUIT is read; an HTTP request (cross-protocol scripting) closes
      // the connection at once and silently, unanswered replies included.
      if (n === 'quit') this.quitSeen = true;
      else if (n === 'post' || n === 'host:') {
        logger.warn({ client: this.id }, 'possible cross-protocol attack (HTTP request on the Redis port); connection closed');
        this.clientWrites = [];
        this.close();
        return;
      } else {
        this.hold.holdAfter(n, this.authenticated, !!this.opts.backend?.authRequired);
      }
    }
    if (this.blocked) {
      this.inbox.push({ args, raw });
      if (!this.readPaused && this.inbox.length > 1024) {
        this.readPaused = true;
        this.socket.pause();
      }
      return;
    }
    this.dispatch(args, raw);
  }

  private dispatch(args: Buffer[], raw: Buffer): void {
    if (this.monitor) {
      // After MONITOR the connection is a raw pipe (replies and monitor lines interleave).
      if (this.ensureLink()) this.backendWrites.push(raw);
      return;
    }
    const name = args[0].toString('latin1').toLowerCase();
    const router = this.opts.router;
    if (router.needsLocalStage(name, args, this)) {
      this.blocked = { name, args, running: false };
      this.tryRunBlocked();
      return;
    }
    this.forward(name, args, raw, router.hooksFor(name, args, this));
  }

  private forward(name: string, args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): void {
    if (!this.ensureLink()) {
      this.writeValue(new ErrorReply(this.unavailableText()));
      return;
    }
    hooks = this.introspectionHooks(name, args, hooks);
    if (hooks?.subscribe) {
      this.pubsubAware = true;
      this.slots.push({ kind: 'proxy', remaining: Infinity, hooks });
      this.backendWrites.push(raw, encodeRequest(['PING', this.sentinel]));
    } else {
      if (hooks?.monitor) this.pubsubAware = true;
      const tail = this.slots[this.slots.length - 1];
      if (!hooks && tail && !tail.hooks && !tail.resolve) {
        // A run of plain forwarded requests shares one slot: a count, not an object per request.
        tail.remaining++;
      } else {
        this.slots.push({ kind: 'proxy', remaining: 1, hooks });
      }
      this.backendWrites.push(raw);
    }
  }

  /**
   * SLOWLOG GET / COMMANDLOG GET list the server's own storage writes with their arguments (the
   * catalog, with literal API keys): their replies are filtered, also inside MULTI/EXEC. `tx`
   * counts the commands sent since MULTI, which is each one's position in EXEC's reply.
   */
  private introspectionHooks(name: string, args: Buffer[], hooks: ForwardHooks | undefined): ForwardHooks | undefined {
    const tx = this.tx;
    if (isCommandLogGet(name, args)) {
      if (tx) tx.logGets.push(tx.n++);
      return { ...hooks, transform: (f) => filterCommandLog(hooks?.transform ? hooks.transform(f) : f) };
    }
    switch (name) {
      case 'multi':
        if (!tx) this.tx = { n: 0, logGets: [] };
        else tx.n++; // nested: refused, and EXEC then aborts
        return hooks;
      case 'exec':
        this.tx = null;
        if (!tx || tx.logGets.length === 0) return hooks;
        return { ...hooks, transform: (f) => filterExecReply(hooks?.transform ? hooks.transform(f) : f, tx.logGets) };
      case 'discard':
      case 'reset':
        this.tx = null;
        return hooks;
      default:
        if (tx) tx.n++;
        return hooks;
    }
  }

  /** Runs the blocked local command once every earlier request has been answered. */
  private tryRunBlocked(): void {
    const b = this.blocked;
    if (!b || b.running || this.slots.length > 0 || this.closed) return;
    b.running = true;
    const plan = this.opts.router.plan(b.name, b.args, this);
    if (plan.kind === 'forward') {
      this.blocked = null;
      const raw = plan.args ? encodeRequest(plan.args) : encodeRequest(b.args);
      this.forward(b.name, plan.args ?? b.args, raw, plan.hooks ?? this.opts.router.hooksFor(b.name, b.args, this));
      this.drainInbox();
      this.flushBackendWrites();
      this.flushClientWrites();
      return;
    }
    void this.runLocalPlan(plan);
  }

  private async runLocalPlan(plan: Extract<Plan, { kind: 'local' }>): Promise<void> {
    const reply: RespValue = await runLocal(plan, this.ctx);
    if (this.closed) return;
    this.writeValue(reply);
    this.blocked = null;
    if (plan.close) {
      this.flushClientWrites();
      this.closing = true;
      this.socket.end();
      this.link?.end();
      return;
    }
    this.drainInbox();
    this.flushBackendWrites();
    if (this.blocked && !this.flushScheduled) {
      // More local commands of this pipeline are running: their replies join this one in a single
      // write at the end of this turn of the event loop, instead of one write per reply.
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flushClientWrites();
      });
    } else if (!this.blocked) {
      this.flushClientWrites();
    }
    this.maybeFinish();
    this.hold.release();
  }

  private drainInbox(): void {
    while (!this.blocked && this.inbox.length > 0 && !this.closing) {
      const next = this.inbox.shift()!;
      this.dispatch(next.args, next.raw);
    }
    if (this.readPaused && this.inbox.length < 256) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  private onProtocolError(message: string): void {
    if (this.quitSeen) return; // Redis reads nothing after QUIT
    logger.debug({ client: this.id, message }, 'protocol error; closing the connection');
    // As Redis: earlier requests are answered, then the error (its bytes as received: latin1),
    // then only this connection is closed.
    this.finishAfterReplies(Buffer.from(`-ERR ${message.replace(/[\r\n]+/g, ' ')}\r\n`, 'latin1'));
  }

  /** Ends the connection once every earlier request is answered, writing `last` first. */
  private finishAfterReplies(last: Buffer): void {
    this.finish = { last };
    this.flushBackendWrites();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    const f = this.finish;
    if (!f || this.closing || this.slots.length > 0 || this.blocked || this.inbox.length > 0) return;
    this.clientWrites.push(f.last);
    this.flushClientWrites();
    this.closing = true;
    this.socket.end();
    this.link?.end();
  }

  // ---- backend link ------------------------------------------------------------------------

  private unavailableText(): string {
    return this.opts.backend ? 'backing Redis unavailable: connection refused or down; retrying in the background' : 'no backing Redis: start with --redis <url> or install redis-server';
  }

  /** Opens the link if possible. False when the backend is down (the request fails fast). */
  private ensureLink(): boolean {
    if (this.link) return true;
    if (!this.opts.backend || !this.opts.backend.up || this.linkEstablished) return false;
    this.openLink();
    return true;
  }

  private openLink(): void {
    const backend = this.opts.backend!;
    const link = backend.connectRaw();
    this.link = link;
    link.on('connect', () => { this.linkEstablished = true; });
    link.on('secureConnect', () => { this.linkEstablished = true; });
    link.on('data', (chunk: Buffer) => this.onBackendData(chunk));
    link.on('drain', () => this.socket.resume());
    link.on('error', (err: NodeJS.ErrnoException) => {
      if (this.linkEstablished) return;
      if (err.code !== undefined && LOCAL_EXHAUSTION.has(err.code)) {
        // This process is out of descriptors (or buffers, or ports): the backing Redis is fine.
        // Marking it down would refuse every client, and nothing would mark it up again while
        // its own connection stays healthy. This client is refused as Redis refuses one it
        // cannot serve, and the operator is told why.
        this.linkRefusal = 'max number of clients reached';
        if (Date.now() - lastExhaustionLog > 10_000) {
          lastExhaustionLog = Date.now();
          logger.warn({ err: err.message }, 'cannot open a connection to the backing Redis for a client: out of resources; refusing clients (raise ulimit -n or lower maxclients: each client uses two descriptors)');
        }
        return;
      }
      backend.reportFailure();
      logger.debug({ client: this.id, err: err.message }, 'backend link failed to connect');
    });
    link.on('close', () => this.onLinkClosed(link));
  }

  private onLinkClosed(link: net.Socket): void {
    if (this.link !== link) return;
    this.link = null;
    const err = new CommandError(this.linkRefusal ?? this.unavailableText());
    // Requests still waiting for a reply get a clear error instead of hanging.
    const slots = this.slots;
    this.slots = [];
    this.partial = [];
    this.scanner.reset();
    this.streaming = false;
    for (const s of slots) {
      if (s.resolve) s.reject!(err);
      else if (!this.linkRefusal) {
        // One error per request still waiting (a plain slot counts several; a subscribe slot one).
        const waiting = s.remaining === Infinity ? 1 : s.remaining;
        for (let i = 0; i < waiting; i++) this.clientWrites.push(encode(new ErrorReply(err.message)));
      }
    }
    // Refused: one error line, then the connection closes (what Redis sends at maxclients).
    if (this.linkRefusal) this.clientWrites = [encode(new ErrorReply(this.linkRefusal))];
    this.flushClientWrites();
    if (this.linkEstablished || this.linkRefusal) {
      // Connection state (AUTH, SELECT, MULTI, subscriptions) is gone: close the client too.
      this.closing = true;
      this.socket.end();
      return;
    }
    this.tryRunBlocked();
    this.hold.release();
  }

  private flushBackendWrites(): void {
    const w = this.backendWrites;
    if (w.length === 0 || !this.link) {
      this.backendWrites = [];
      return;
    }
    this.backendWrites = [];
    const ok = this.link.write(w.length === 1 ? w[0] : coalesce(w));
    if (!ok && !this.readPaused) this.socket.pause();
  }

  // ---- replies -----------------------------------------------------------------------------

  private writeValue(v: RespValue): void {
    this.clientWrites.push(encode(v));
  }

  private flushClientWrites(): void {
    const w = this.clientWrites;
    if (w.length === 0 || this.closed) return;
    this.clientWrites = [];
    const ok = this.socket.write(w.length === 1 ? w[0] : coalesce(w));
    if (!ok) {
      const limit = this.opts.outputBufferLimit;
      if (limit > 0) {
        // As Redis's client-output-buffer-limit: unread replies are held up to the limit, then
        // the client is closed. The backend link is NOT paused here: pausing it would only move
        // the unread replies into the backing Redis (whose normal clients have no limit), where
        // a client pipelining `GET bigkey` without reading grows that Redis without bound and is
        // never disconnected. So this process holds at most `limit` bytes per client.
        if (this.socket.writableLength > limit) this.overLimit();
        return;
      }
      // No limit (0): backpressure instead; the backing Redis holds what the client has not read.
      this.link?.pause();
    }
  }

  private overLimit(): void {
    logger.warn({ client: this.id, bytes: this.socket.writableLength }, 'client output buffer limit reached; closing the connection');
    this.close(); // the client and its backend link at once: nothing more is read for it
  }

  /** Is the head slot one whose replies can be written without looking at them? */
  private headIsPlain(): boolean {
    const h = this.slots[0];
    return h !== undefined && !h.hooks && !h.resolve && !this.pubsubAware;
  }

  private onBackendData(chunk: Buffer): void {
    const ends: number[] = [];
    try {
      this.scanner.scan(chunk, ends);
    } catch (err) {
      logger.error({ client: this.id, err: (err as Error).message }, 'unparseable reply from the backing Redis; closing the client');
      this.socket.destroy();
      this.link?.destroy();
      return;
    }
    let pos = 0;
    let passStart = -1;
    for (const end of ends) {
      if (this.monitor) {
        // Judge every monitor line whole: the server's own storage traffic (keys with the
        // reserved "__llm__:" prefix; it carries the catalog, API keys included) is not relayed.
        if (passStart >= 0) {
          this.clientWrites.push(chunk.subarray(passStart, pos));
          passStart = -1;
        }
        let frame = chunk.subarray(pos, end);
        if (this.partial.length > 0) {
          this.partial.push(frame);
          frame = Buffer.concat(this.partial);
          this.partial = [];
        }
        if (frame.indexOf('"__llm__:') < 0) this.clientWrites.push(frame);
      } else if (this.partial.length === 0 && this.headIsPlain()) {
        if (chunk[pos] === 45) this.noteNoAuth(chunk, pos);
        if (passStart < 0) passStart = pos;
        this.streaming = false;
        this.completeHead();
      } else {
        if (passStart >= 0) {
          this.clientWrites.push(chunk.subarray(passStart, pos));
          passStart = -1;
        }
        let frame = chunk.subarray(pos, end);
        if (this.partial.length > 0) {
          this.partial.push(frame);
          frame = Buffer.concat(this.partial);
          this.partial = [];
        }
        this.handleFrame(frame);
      }
      pos = end;
    }
    if (pos < chunk.length) {
      // An incomplete frame: stream it through when nobody needs to see it whole.
      if (!this.monitor && (this.streaming || (this.partial.length === 0 && this.headIsPlain()))) {
        if (passStart < 0) passStart = pos;
        this.streaming = true;
        pos = chunk.length;
      } else {
        this.partial.push(chunk.subarray(pos));
      }
    }
    if (passStart >= 0) this.clientWrites.push(chunk.subarray(passStart, pos));
    this.flushClientWrites();
    if (this.slots.length === 0) this.tryRunBlocked();
    this.maybeFinish();
    this.hold.release();
  }

  /** A -NOAUTH reply on a session we took as authenticated: the backend now wants a password. */
  private noteNoAuth(buf: Buffer, at: number): void {
    if (buf[at] !== 45 || !this.authenticated || buf.toString('latin1', at, at + 7) !== '-NOAUTH') return;
    this.authenticated = false;
    void this.opts.backend?.probeAuth();
  }

  private completeHead(): void {
    const h = this.slots[0];
    if (!h) return;
    if (--h.remaining <= 0) this.slots.shift();
  }

  /** A complete frame that must be looked at (hooks, pub/sub, internal calls). */
  private handleFrame(frame: Buffer): void {
    const head = this.slots[0];
    let decoded: Decoded | undefined;
    if (this.pubsubAware) {
      decoded = decodeFrame(frame).value;
      if (this.isSentinel(decoded)) {
        if (head?.hooks?.subscribe) this.slots.shift();
        if (!this.pubsubMode && !this.slots.some((s) => s.hooks?.subscribe)) this.pubsubAware = this.monitor;
        return;
      }
      if (Array.isArray(decoded) && decoded.length >= 3 && Buffer.isBuffer(decoded[0])) {
        const kind = decoded[0].toString('latin1');
        if (PUSH_KINDS.has(kind) && (this.pubsubMode || !head || head.hooks?.subscribe)) {
          this.clientWrites.push(frame);
          return;
        }
        this.trackSubscription(kind, decoded[2]);
      }
      if (head?.hooks?.onReply === undefined && Array.isArray(decoded) && !head?.hooks?.subscribe) {
        // EXEC of a transaction holding SUBSCRIBE: its confirmations sit inside the array.
        for (const e of decoded) if (Array.isArray(e) && Buffer.isBuffer(e[0]) && e.length >= 3) this.trackSubscription(e[0].toString('latin1'), e[2]);
      }
    }
    if (!head) {
      this.clientWrites.push(frame); // an unsolicited frame (push): pass it on
      return;
    }
    if (head.resolve) {
      this.slots.shift();
      head.resolve(decoded ?? decodeFrame(frame).value);
      return;
    }
    const hooks = head.hooks;
    if (hooks?.onReply) hooks.onReply(decoded ?? decodeFrame(frame).value);
    this.noteNoAuth(frame, 0);
    this.clientWrites.push(hooks?.transform ? hooks.transform(frame) : frame);
    if (hooks?.monitor && !(decoded instanceof ErrorReply) && frame[0] === 43) {
      this.monitor = true;
    }
    if (!hooks?.subscribe) this.completeHead();
  }

  private trackSubscription(kind: string, count: Decoded): void {
    if (typeof count !== 'number') return;
    if (SUBSCRIBE_KINDS.has(kind)) this.subCount = count;
    else if (SHARD_KINDS.has(kind)) this.shardCount = count;
  }

  private isSentinel(v: Decoded): boolean {
    const s = this.sentinel;
    if (Buffer.isBuffer(v)) return v.length === s.length && v.toString('latin1') === s;
    if (Array.isArray(v) && v.length === 2 && Buffer.isBuffer(v[0]) && Buffer.isBuffer(v[1])) {
      return v[0].toString('latin1') === 'pong' && v[1].toString('latin1') === s;
    }
    return v instanceof SimpleString && v.value === s;
  }

  // ---- teardown ----------------------------------------------------------------------------

  /** Stop reading new requests; used by graceful shutdown. */
  stopReading(): void {
    this.socket.pause();
  }

  /** True when no request is waiting for a reply. */
  get idle(): boolean {
    return this.slots.length === 0 && !this.blocked && this.inbox.length === 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    this.link?.destroy();
    this.socket.destroy();
    for (const s of this.slots) if (s.reject) s.reject(new CommandError('client connection closed'));
    this.slots = [];
    this.opts.onClose(this);
  }
}

/**
 * Joins buffers for one write. Neighbours that are adjacent views of one chunk (a pipeline of
 * forwarded requests, a run of replies) are merged without copying; only the rest is copied.
 */
export function coalesce(parts: Buffer[]): Buffer {
  const merged: Buffer[] = [];
  let cur = parts[0];
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i];
    if (p.buffer === cur.buffer && cur.byteOffset + cur.length === p.byteOffset) {
      cur = Buffer.from(cur.buffer, cur.byteOffset, cur.length + p.length);
    } else {
      merged.push(cur);
      cur = p;
    }
  }
  merged.push(cur);
  return merged.length === 1 ? merged[0] : Buffer.concat(merged);
}
