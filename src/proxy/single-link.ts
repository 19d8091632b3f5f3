/**
 * A client's link to one backing Redis: one raw socket per client, opened on first use, so the
 * client's AUTH, SELECT, MULTI and subscriptions behave exactly as against Redis.
 *
 * Requests are pipelined to the backend as they are forwarded. Replies: backend socket →
 * ReplyScanner (finds frame ends without decoding) → the client. While nothing needs to look at
 * replies, whole runs of frames — even a partial frame of a large value — go straight through as
 * one write; a frame somebody must see (hooks, pub/sub, an internal call) is joined whole first.
 */
import type net from 'node:net';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { encodeRequest } from '../protocol/request-parser.js';
import { PUSH, ReplyScanner } from '../protocol/reply-scanner.js';
import { decodeFrame, encode, ErrorReply, type Decoded } from '../protocol/resp.js';
import { PUSH_KINDS, SHARD_KINDS, SUBSCRIBE_KINDS } from '../protocol/pubsub.js';
import { coalesce } from '../util/coalesce.js';
import type { Backend } from './backend.js';
import type { BackendLink, ForwardHooks, LinkOwner, ReplyMode } from './link.js';
import { isSentinelReply, newSentinel } from './sentinel.js';
import { INTERNAL_KEY, withoutInternalKeys } from './invalidations.js';

interface ProxySlot {
  /** Replies still expected (subscribe slots: until the sentinel). */
  remaining: number;
  hooks?: ForwardHooks;
  /** Internal call made by a handler: the reply is resolved, not written. */
  resolve?: (v: Decoded) => void;
  reject?: (e: Error) => void;
  /** A reply the link asked for itself (CLIENT REPLY ON around an internal call): dropped. */
  drop?: boolean;
  /** An internal call that wants the reply's bytes, not the decoded value. */
  raw?: boolean;
}

const REPLY_ON = encodeRequest(['CLIENT', 'REPLY', 'ON']);
const CLIENT_ID = encodeRequest(['CLIENT', 'ID']);
const REPLY_OFF = encodeRequest(['CLIENT', 'REPLY', 'OFF']);

/** Errors opening a backend link that mean this process is out of resources, not that the backend is down. */
const LOCAL_EXHAUSTION = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']);
let lastExhaustionLog = 0;

export class SingleLink implements BackendLink {
  /** Subscription counts as last confirmed by the backend. */
  private subCount = 0;
  private shardCount = 0;
  /** Decode every reply frame (this connection used pub/sub and may receive pushes). */
  private pubsubAware = false;
  private monitor = false;
  /** Sent as PING's argument after (P|S)(UN)SUBSCRIBE: its reply ends that request's replies. */
  private readonly sentinel = newSentinel();

  private readonly scanner = new ReplyScanner();
  private sock: net.Socket | null = null;
  /** The socket had connected once: losing it now loses state, so the client is closed too. */
  private established = false;
  private slots: ProxySlot[] = [];
  /** Pieces of an incomplete reply frame that must be seen whole. */
  private partial: Buffer[] = [];
  /** Bytes of the current incomplete frame were already written through. */
  private streaming = false;
  private writes: Buffer[] = [];
  /** Set when the socket could not be opened for lack of local resources (EMFILE...). */
  private refusal: string | null = null;
  /** CLIENT REPLY as the backing Redis has it for this connection (forwarded as the client sent it). */
  private replyState: ReplyMode = 'on';
  /** The backing Redis's id of this connection (asked with CLIENT ID once the client may run it). */
  backendId: number | null = null;
  private askedId = false;

  // The socket is opened by the first request that needs it (ensureSocket): an idle client holds
  // one descriptor here and none in the backing Redis, so 10,000 idle clients need 10,000
  // descriptors (not 20,000) and do not run a default Redis (maxclients 10000) out of slots.
  constructor(private readonly owner: LinkOwner, private readonly backend: Backend) {}

  get pubsubMode(): boolean {
    return this.subCount + this.shardCount > 0;
  }

  get rawPipe(): boolean {
    return this.monitor || this.replicating;
  }

  /** SYNC / PSYNC was sent: every byte from the backend is the replication stream, passed on as it is. */
  private replicating = false;


  pending(): boolean {
    return this.slots.length > 0;
  }

  reset(): void {
    this.subCount = 0;
    this.shardCount = 0;
  }

  /**
   * Asks the backing Redis for this connection's id (CLIENT LIST, CLIENT KILL and INFO clients
   * through the server describe clients by it), in request order with the client's own requests.
   */
  authenticatedNow(): void {
    if (this.askedId || !this.sock || this.replyState !== 'on') return;
    this.askedId = true;
    this.slots.push({ remaining: 1, resolve: (v) => { if (typeof v === 'number') this.backendId = v; }, reject: () => {} });
    this.writes.push(CLIENT_ID);
  }

  call(args: Array<string | Buffer>): Promise<Decoded> {
    return new Promise((resolve, reject) => {
      if (!this.ensureSocket()) {
        reject(new CommandError(this.owner.unavailableText()));
        return;
      }
      if (this.replyState === 'off') {
        // The client turned replies off: on for this call only (its +OK dropped), then off again.
        this.slots.push({ remaining: 1, drop: true }, { remaining: 1, resolve, reject });
        this.sock!.write(Buffer.concat([REPLY_ON, encodeRequest(args), REPLY_OFF]));
        return;
      }
      this.slots.push({ remaining: 1, resolve, reject });
      this.sock!.write(encodeRequest(args));
    });
  }

  callRaw(args: Array<string | Buffer>): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (!this.ensureSocket()) {
        reject(new CommandError(this.owner.unavailableText()));
        return;
      }
      this.slots.push({ remaining: 1, raw: true, resolve: resolve as (v: Decoded) => void, reject });
      this.writes.push(encodeRequest(args));
      this.flush();
    });
  }

  skipConsumedLocally(): void {
    if (this.replyState !== 'skip' || !this.sock) return;
    this.replyState = 'on';
    this.slots.push({ remaining: 1, drop: true });
    this.writes.push(REPLY_ON);
  }

  masterCount(): number {
    return 1;
  }

  callMaster(_index: number, args: Array<string | Buffer>): Promise<Decoded> {
    return this.call(args);
  }

  sendRaw(raw: Buffer): void {
    if (this.ensureSocket()) this.writes.push(raw);
  }

  forward(_args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): void {
    if (!this.ensureSocket()) {
      if (!hooks?.silent) this.owner.write(encode(new ErrorReply(this.owner.unavailableText())));
      return;
    }
    if (hooks !== undefined && (hooks.silent || hooks.replyMode !== undefined)) {
      // CLIENT REPLY: Redis applies it itself; a request it will not answer gets no slot.
      if (hooks.replyMode !== undefined) this.replyState = hooks.replyMode;
      else if (this.replyState === 'skip') this.replyState = 'on';
      if (hooks.silent) {
        this.writes.push(raw);
        return;
      }
    } else if (this.replyState === 'skip') {
      this.replyState = 'on';
    }
    if (hooks?.replication) {
      // An RDB payload is not RESP (no CRLF after it): nothing after SYNC is framed. Only as the
      // first request in flight, so no earlier reply is passed on unframed.
      // The link's own CLIENT ID, asked when it opened, may not be answered yet: Redis refuses SYNC
      // with output pending, so SYNC goes once that reply is in.
      const idSlot = this.slots.length === 1 && this.slots[0]!.resolve !== undefined && this.backendId === null ? this.slots[0]! : null;
      if (this.slots.length > 0 && !idSlot) {
        this.owner.write(encode(new ErrorReply('SYNC and PSYNC must be sent with no other request in flight')));
        return;
      }
      if (idSlot) {
        const learn = idSlot.resolve!;
        idSlot.resolve = (v) => {
          learn(v);
          this.replicating = true;
          this.sock?.write(raw);
        };
        return;
      }
      this.replicating = true;
      this.writes.push(raw);
      return;
    }
    if (hooks?.subscribe) {
      this.pubsubAware = true;
      this.slots.push({ remaining: Infinity, hooks });
      this.writes.push(raw, encodeRequest(['PING', this.sentinel]));
      return;
    }
    if (hooks?.monitor) this.pubsubAware = true;
    const tail = this.slots[this.slots.length - 1];
    if (!hooks && tail && !tail.hooks && !tail.resolve && !tail.drop) {
      // A run of plain forwarded requests shares one slot: a count, not an object per request.
      // Never the link's own dropped reply's slot: its one reply would take the request's with it.
      tail.remaining++;
    } else {
      this.slots.push({ remaining: 1, hooks });
    }
    this.writes.push(raw);
  }

  // ---- the socket --------------------------------------------------------------------------

  /** Opens the socket if possible. False when the backend is down (the request fails fast). */
  private ensureSocket(): boolean {
    if (this.sock) return true;
    if (!this.backend.up || this.established) return false;
    this.open();
    return true;
  }

  private open(): void {
    const backend = this.backend;
    const sock = backend.connectRaw();
    this.sock = sock;
    sock.on('connect', () => { this.established = true; });
    sock.on('secureConnect', () => { this.established = true; });
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => this.owner.resumeClient());
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (this.established) return;
      if (err.code !== undefined && LOCAL_EXHAUSTION.has(err.code)) {
        // This process is out of descriptors (or buffers, or ports): the backing Redis is fine.
        // Marking it down would refuse every client, and nothing would mark it up again while
        // its own connection stays healthy. This client is refused as Redis refuses one it
        // cannot serve, and the operator is told why.
        this.refusal = 'max number of clients reached';
        if (Date.now() - lastExhaustionLog > 10_000) {
          lastExhaustionLog = Date.now();
          logger.warn({ err: err.message }, 'cannot open a connection to the backing Redis for a client: out of resources; refusing clients (raise ulimit -n or lower maxclients: each client uses two descriptors)');
        }
        return;
      }
      backend.reportFailure();
      logger.debug({ client: this.owner.id, err: err.message }, 'backend link failed to connect');
    });
    sock.on('close', () => this.onClosed(sock));
    // First on the new socket, before what the caller sends (which is written after it).
    if (this.owner.authenticated) {
      this.askedId = true;
      this.slots.push({ remaining: 1, resolve: (v) => { if (typeof v === 'number') this.backendId = v; }, reject: () => {} });
      sock.write(CLIENT_ID);
    }
  }

  private onClosed(sock: net.Socket): void {
    if (this.sock !== sock) return;
    this.sock = null;
    const owner = this.owner;
    const err = new CommandError(this.refusal ?? owner.unavailableText());
    // Requests still waiting for a reply get a clear error instead of hanging.
    const slots = this.slots;
    this.slots = [];
    this.partial = [];
    this.scanner.reset();
    this.streaming = false;
    if (this.refusal) {
      // Refused: one error line, then the connection closes (what Redis sends at maxclients).
      for (const s of slots) s.reject?.(err);
      owner.write(encode(new ErrorReply(this.refusal)));
    } else {
      for (const s of slots) {
        if (s.resolve) s.reject!(err);
        else {
          // One error per request still waiting (a plain slot counts several; a subscribe slot one).
          const waiting = s.remaining === Infinity ? 1 : s.remaining;
          for (let i = 0; i < waiting; i++) owner.write(encode(new ErrorReply(err.message)));
        }
      }
    }
    owner.flushClient();
    if (this.established || this.refusal) {
      // Connection state (AUTH, SELECT, MULTI, subscriptions) is gone: close the client too.
      owner.endClient();
      return;
    }
    owner.repliesArrived();
  }

  flush(): void {
    const w = this.writes;
    if (w.length === 0 || !this.sock) {
      this.writes = [];
      return;
    }
    this.writes = [];
    if (!this.sock.write(w.length === 1 ? w[0]! : coalesce(w))) this.owner.pauseClient();
  }

  pauseReads(): void {
    this.sock?.pause();
  }

  resumeReads(): void {
    this.sock?.resume();
  }

  end(): void {
    this.sock?.end();
  }

  destroy(): void {
    this.sock?.destroy();
    for (const s of this.slots) if (s.reject) s.reject(new CommandError('client connection closed'));
    this.slots = [];
  }

  // ---- replies -----------------------------------------------------------------------------

  /** Is the head slot one whose replies can be written without looking at them? */
  private headIsPlain(): boolean {
    const h = this.slots[0];
    return h !== undefined && !h.hooks && !h.resolve && !h.drop && !this.pubsubAware;
  }

  private onData(chunk: Buffer): void {
    const owner = this.owner;
    if (this.replicating) {
      owner.write(chunk);
      owner.flushClient();
      return;
    }
    const ends: number[] = [];
    const types: number[] = [];
    try {
      this.scanner.scan(chunk, ends, types);
    } catch (err) {
      logger.error({ client: owner.id, err: (err as Error).message }, 'unparseable reply from the backing Redis; closing the client');
      owner.destroyClient();
      this.sock?.destroy();
      return;
    }
    let pos = 0;
    let passStart = -1;
    // A frame judged whole: what passed through before it is flushed, its start joined if split.
    const wholeFrame = (end: number): Buffer => {
      if (passStart >= 0) {
        owner.write(chunk.subarray(passStart, pos));
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
    for (let i = 0; i < ends.length; i++) {
      const end = ends[i]!;
      if (this.monitor) {
        // Judge every monitor line whole: the server's own storage traffic (keys with the
        // reserved "__llm__:" prefix; it carries the catalog, API keys included) is not relayed.
        const frame = wholeFrame(end);
        if (frame.indexOf('"__llm__:') < 0) owner.write(frame);
      } else if (types[i] === PUSH) {
        // RESP3 push (pub/sub, tracking invalidation): out of band, the reply to no request.
        if (this.streaming) {
          if (passStart < 0) passStart = pos; // its start went through already
          this.streaming = false;
        } else {
          this.onPush(wholeFrame(end));
        }
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
      // (A push is never streamed: it is judged whole, onPush.)
      if (!this.monitor && (this.streaming || (this.partial.length === 0 && this.headIsPlain() && chunk[pos] !== PUSH))) {
        if (passStart < 0) passStart = pos;
        this.streaming = true;
        pos = chunk.length;
      } else {
        this.partial.push(chunk.subarray(pos));
      }
    }
    if (passStart >= 0) owner.write(chunk.subarray(passStart, pos));
    owner.flushClient();
    owner.repliesArrived();
  }

  /** A -NOAUTH reply on a client we took as authenticated: the backend now wants a password. */
  private noteNoAuth(buf: Buffer, at: number): void {
    if (buf[at] !== 45 || !this.owner.authenticated || buf.toString('latin1', at, at + 7) !== '-NOAUTH') return;
    this.owner.lostAuth();
    void this.backend.probeAuth();
  }

  private completeHead(): void {
    const h = this.slots[0];
    if (!h) return;
    if (--h.remaining <= 0) this.slots.shift();
  }

  /**
   * A RESP3 push frame, whole: written to the client at once (pushes are out of band; the
   * client's library tells them from replies). Subscription counts are kept from pub/sub
   * confirmations, and the server's own storage keys are dropped from tracking invalidations.
   */
  private onPush(frame: Buffer): void {
    if (this.pubsubAware || frame.includes(INTERNAL_KEY)) {
      const decoded = decodeFrame(frame).value;
      if (Array.isArray(decoded) && decoded.length >= 3 && Buffer.isBuffer(decoded[0])) this.trackSubscription(decoded[0].toString('latin1'), decoded[2]!);
      if (frame.includes(INTERNAL_KEY)) {
        const filtered = withoutInternalKeys(frame);
        if (filtered) this.owner.write(filtered);
        return;
      }
    }
    this.owner.write(frame);
  }

  /** A complete frame that must be looked at (hooks, pub/sub, internal calls). */
  private handleFrame(frame: Buffer): void {
    const head = this.slots[0];
    let decoded: Decoded | undefined;
    if (this.pubsubAware) {
      decoded = decodeFrame(frame).value;
      if (isSentinelReply(decoded, this.sentinel)) {
        if (head?.hooks?.subscribe) this.slots.shift();
        if (!this.pubsubMode && !this.slots.some((s) => s.hooks?.subscribe)) this.pubsubAware = this.monitor;
        return;
      }
      if (Array.isArray(decoded) && decoded.length >= 3 && Buffer.isBuffer(decoded[0])) {
        const kind = decoded[0].toString('latin1');
        if (PUSH_KINDS.has(kind) && (this.pubsubMode || !head || head.hooks?.subscribe)) {
          const relayed = kind === 'message' ? withoutInternalKeys(frame) : frame;
          if (relayed) this.owner.write(relayed);
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
      this.owner.write(frame); // an unsolicited frame (push): pass it on
      return;
    }
    if (head.drop) {
      this.slots.shift();
      return;
    }
    if (head.resolve) {
      this.slots.shift();
      head.resolve(head.raw ? (Buffer.from(frame) as unknown as Decoded) : (decoded ?? decodeFrame(frame).value));
      return;
    }
    const hooks = head.hooks;
    if (hooks?.onReply) hooks.onReply(decoded ?? decodeFrame(frame).value);
    this.noteNoAuth(frame, 0);
    this.owner.write(hooks?.transform ? hooks.transform(frame) : frame);
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
}
