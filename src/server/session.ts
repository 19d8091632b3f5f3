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
 *
 * Request intake, the local stage, client writes and teardown are in client-session.ts (shared
 * with ClusterSession); this file has the backend link and the reply path.
 */
import type net from 'node:net';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { encodeRequest } from '../protocol/request-parser.js';
import { commandName } from '../protocol/command-name.js';
import { ReplyScanner } from '../protocol/reply-scanner.js';
import { decodeFrame, encode, ErrorReply, type Decoded, type RespValue } from '../protocol/resp.js';
import type { ForwardHooks, StateChange } from '../commands/dispatcher.js';
import { commandLogRequest, filterCommandLog, filterExecReply, isCommandLogGet } from '../proxy/introspection.js';
import { ClientSession, coalesce, protocolErrorReply, PUSH_KINDS, SHARD_KINDS, SUBSCRIBE_KINDS, type SessionOptions } from './client-session.js';

interface ProxySlot {
  kind: 'proxy';
  /** Replies still expected (subscribe slots: until the sentinel). */
  remaining: number;
  hooks?: ForwardHooks;
  /** Internal call made by a handler: the reply is resolved, not written. */
  resolve?: (v: Decoded) => void;
  reject?: (e: Error) => void;
}

let nextId = 1;
/** Errors opening a backend link that mean this process is out of resources, not that the backend is down. */
const LOCAL_EXHAUSTION = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']);
let lastExhaustionLog = 0;

export class Session extends ClientSession {
  /** Subscription counts as last confirmed by the backend. */
  private subCount = 0;
  private shardCount = 0;
  /** Decode every reply frame (this connection used pub/sub and may receive pushes). */
  private pubsubAware = false;
  private monitor = false;

  private readonly scanner = new ReplyScanner();
  private link: net.Socket | null = null;
  /** The link had connected once: losing it now loses state, so the client is closed too. */
  private linkEstablished = false;
  private slots: ProxySlot[] = [];
  /** Pieces of an incomplete reply frame that must be seen whole. */
  private partial: Buffer[] = [];
  /** Bytes of the current incomplete frame were already written through. */
  private streaming = false;
  private backendWrites: Buffer[] = [];
  /** Set when the backend link could not be opened for lack of local resources (EMFILE...). */
  private linkRefusal: string | null = null;
  /** A MULTI was sent: commands sent since, and the positions of SLOWLOG/COMMANDLOG GETs among them. */
  private tx: { n: number; logGets: Map<number, number> } | null = null;

  constructor(socket: net.Socket, opts: SessionOptions) {
    super(nextId++, socket, opts);
    // The backend link is opened by the first request that needs it (ensureLink): an idle client
    // holds one descriptor here and none in the backing Redis, so 10,000 idle clients need 10,000
    // descriptors (not 20,000) and do not run a default Redis (maxclients 10000) out of slots.
  }

  // ---- SessionView -------------------------------------------------------------------------

  override get pubsubMode(): boolean {
    return this.subCount + this.shardCount > 0;
  }

  override applyState(s: StateChange): void {
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

  override backendCall(args: Array<string | Buffer>): Promise<Decoded> {
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

  protected override dispatch(args: Buffer[], raw: Buffer): void {
    if (this.monitor) {
      // After MONITOR the connection is a raw pipe (replies and monitor lines interleave).
      if (this.ensureLink()) this.backendWrites.push(raw);
      return;
    }
    const name = commandName(args[0]);
    const router = this.opts.router;
    if (router.needsLocalStage(name, args, this)) {
      this.runLocalStage(name, args);
      return;
    }
    this.forward(name, args, raw, router.hooksFor(name, args, this));
  }

  protected override forward(name: string, args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): void {
    if (!this.ensureLink()) {
      this.writeValue(new ErrorReply(this.unavailableText()));
      return;
    }
    if (isCommandLogGet(name, args)) {
      const asked = commandLogRequest(name, args);
      const limit = asked?.limit ?? Infinity;
      if (asked) raw = asked.raw;
      if (this.tx) this.tx.logGets.set(this.tx.n++, limit);
      const inner = hooks;
      hooks = { ...inner, transform: (f) => filterCommandLog(inner?.transform ? inner.transform(f) : f, limit) };
    } else {
      hooks = this.transactionHooks(name, hooks);
    }
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
   * catalog): their replies are filtered (forward above), also inside MULTI/EXEC. `tx` counts the
   * commands sent since MULTI, which is each one's position in EXEC's reply.
   */
  private transactionHooks(name: string, hooks: ForwardHooks | undefined): ForwardHooks | undefined {
    const tx = this.tx;
    switch (name) {
      case 'multi':
        if (!tx) this.tx = { n: 0, logGets: new Map() };
        else tx.n++; // nested: refused, and EXEC then aborts
        return hooks;
      case 'exec':
        this.tx = null;
        if (!tx || tx.logGets.size === 0) return hooks;
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

  protected override onProtocolError(message: string): void {
    logger.debug({ client: this.id, message }, 'protocol error; closing the connection');
    // As Redis: earlier requests are answered, then the error (its bytes as received: latin1),
    // then only this connection is closed.
    this.finishAfterReplies(protocolErrorReply(message));
  }

  protected override repliesPending(): boolean {
    return this.slots.length > 0;
  }

  // ---- backend link ------------------------------------------------------------------------

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
    link.on('drain', () => this.resumeReading());
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

  protected override flushBackendWrites(): void {
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

  protected override pauseBackendReads(): void {
    this.link?.pause();
  }

  protected override resumeBackendReads(): void {
    this.link?.resume();
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
    // A frame judged whole: what passed through before it is flushed, its start joined if split.
    const wholeFrame = (end: number): Buffer => {
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
      return frame;
    };
    for (const end of ends) {
      if (this.monitor) {
        // Judge every monitor line whole: the server's own storage traffic (keys with the
        // reserved "__llm__:" prefix; it carries the catalog, API keys included) is not relayed.
        const frame = wholeFrame(end);
        if (frame.indexOf('"__llm__:') < 0) this.clientWrites.push(frame);
      } else if (this.partial.length === 0 && this.headIsPlain()) {
        if (chunk[pos] === 45) this.noteNoAuth(chunk, pos);
        if (passStart < 0) passStart = pos;
        this.streaming = false;
        this.completeHead();
      } else {
        this.handleFrame(wholeFrame(end));
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

  // ---- teardown ----------------------------------------------------------------------------

  protected override endBackend(): void {
    this.link?.end();
  }

  protected override destroyBackend(): void {
    this.link?.destroy();
    for (const s of this.slots) if (s.reject) s.reject(new CommandError('client connection closed'));
    this.slots = [];
  }
}
