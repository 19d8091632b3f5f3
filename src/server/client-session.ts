/**
 * What every client connection does, whatever the backing store: the part of Session
 * (session.ts, one backing Redis) and ClusterSession (cluster-session.ts, a Redis Cluster) that
 * is the same. A subclass says how requests reach the backend and how replies come back.
 *
 * Requests: socket → RequestParser → onCommand (QUIT, HTTP, the pre-AUTH parsing hold) → while a
 * local command runs or waits, the inbox (the socket is paused when it grows) → dispatch
 * (subclass). Execution follows request order, as in Redis: a local command (router.plan) starts
 * only when every earlier request has been answered, and later requests wait for it.
 *
 * Replies: everything for the client is queued in clientWrites and written in one write per turn
 * (flushClientWrites), under the client output buffer limit.
 */
import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import { logger } from '../log.js';
import { RequestParser, encodeRequest, type ParserLimits } from '../protocol/request-parser.js';
import { commandName } from '../protocol/command-name.js';
import { encode, SimpleString, type Decoded, type RespValue } from '../protocol/resp.js';
import { runLocal, type ForwardHooks, type Plan, type Router, type SessionView, type StateChange } from '../commands/dispatcher.js';
import type { CommandContext } from '../commands/context.js';
import type { Backend } from '../proxy/backend.js';
import { ParsingHold } from './parsing-hold.js';

export interface SessionOptions {
  router: Router;
  backend: Backend | null;
  limits: ParserLimits;
  /** Authenticated from the start (no requirepass / backend without AUTH). */
  authenticated: boolean;
  /** Disconnect when the client's unread output exceeds this many bytes (0 = no limit). */
  outputBufferLimit: number;
  onClose(session: ClientSession): void;
}

export const SUBSCRIBE_KINDS = new Set(['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe']);
export const SHARD_KINDS = new Set(['ssubscribe', 'sunsubscribe']);
export const PUSH_KINDS = new Set(['message', 'pmessage', 'smessage']);

export abstract class ClientSession implements SessionView {
  db = 0;
  inMulti = false;
  private _authenticated = false;
  /** Sent as PING's argument after (P|S)(UN)SUBSCRIBE: its reply ends that request's replies. */
  protected readonly sentinel = `__rls_sentinel_${randomBytes(6).toString('hex')}`;

  protected readonly parser: RequestParser;
  protected readonly ctx: CommandContext;
  /** Parsing waits after AUTH until it is answered (Redis's pre-AUTH limits, parsing-hold.ts). */
  protected readonly hold: ParsingHold;
  /** A local command is running or waiting for earlier replies. */
  protected blocked: { name: string; args: Buffer[]; running: boolean } | null = null;
  /** Replies of the pipelined local commands running (runPipeline), in request order. */
  private pipeline: Array<Promise<RespValue>> | null = null;
  /** Requests read while `blocked`. */
  protected inbox: Array<{ args: Buffer[]; raw: Buffer }> = [];
  protected clientWrites: Buffer[] = [];
  /** The socket is paused because the inbox is long. */
  protected readPaused = false;
  private flushScheduled = false;
  protected closing = false;
  protected closed = false;
  /** Graceful shutdown: nothing more is read from the client (stopReading). */
  private readingStopped = false;
  /** QUIT was read: nothing after it is. */
  private quitSeen = false;
  /** A protocol error: written last, once every earlier request is answered (maybeFinish). */
  protected finish: Buffer | null = null;

  constructor(readonly id: number, readonly socket: net.Socket, protected readonly opts: SessionOptions) {
    this.ctx = { client: this, services: opts.router.services };
    this.parser = new RequestParser(
      {
        onCommand: (args, raw) => this.onCommand(args, raw),
        // Redis reads nothing after QUIT, a protocol error included.
        onProtocolError: (msg) => { if (!this.quitSeen) this.onProtocolError(msg); },
      },
      opts.limits,
    );
    const flush = () => {
      this.flushBackendWrites();
      this.flushClientWrites();
    };
    this.hold = new ParsingHold(this.parser, { pause: () => socket.pause(), resume: () => this.resumeReading() }, () => this.idle && !this.closing, flush);
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
    socket.on('drain', () => this.resumeBackendReads());
  }

  // ---- what a subclass provides ------------------------------------------------------------

  abstract get pubsubMode(): boolean;
  abstract applyState(s: StateChange): void;
  abstract backendCall(args: Array<string | Buffer>): Promise<Decoded>;
  /** A request, in order, when no local command is running or waiting. */
  protected abstract dispatch(args: Buffer[], raw: Buffer): void;
  /** Sends a request to the backend (its reply is written in request order). */
  protected abstract forward(name: string, args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): void;
  /** A protocol error from the parser (not called after QUIT). */
  protected abstract onProtocolError(message: string): void;
  /** Some request sent to the backend is not answered yet. */
  protected abstract repliesPending(): boolean;
  /** Sends what the requests queued for the backend; pauses the client socket on backpressure. */
  protected abstract flushBackendWrites(): void;
  /** Backpressure from the client: stop / go on reading replies from the backend. */
  protected abstract pauseBackendReads(): void;
  protected abstract resumeBackendReads(): void;
  /** The client connection ends (after its last reply): end the backend links gracefully. */
  protected abstract endBackend(): void;
  /** The client is gone: destroy the backend links and fail internal calls still waiting. */
  protected abstract destroyBackend(): void;

  // ---- SessionView -------------------------------------------------------------------------

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

  // ---- requests ----------------------------------------------------------------------------

  private onCommand(args: Buffer[], raw: Buffer): void {
    if (this.closing || this.quitSeen || this.finish) return;
    const a0 = args[0];
    if (a0.length === 4 || a0.length === 5) {
      // Only QUIT, POST, HOST:, AUTH, HELLO and RESET matter here: a cheap test of the first letter first.
      const c = a0[0] | 0x20;
      if (c === 0x71 /* q */ || c === 0x70 /* p */ || c === 0x68 /* h */ || c === 0x61 /* a */ || c === 0x72 /* r */) {
        const n = commandName(a0);
        // As Redis: nothing after QUIT is read; an HTTP request (cross-protocol scripting) closes
        // the connection at once and silently, unanswered replies included.
        if (n === 'quit') this.quitSeen = true;
        else if ((n === 'post' || n === 'host:') && this.refuseHttp()) return;
        else this.hold.holdAfter(n, this.authenticated, !!this.opts.backend?.authRequired);
      }
    }
    if (this.blocked) {
      this.inbox.push({ args, raw });
      if (this.pipeline) this.joinPipeline();
      if (!this.readPaused && this.inbox.length > 1024) {
        this.readPaused = true;
        this.socket.pause();
      }
      return;
    }
    this.dispatch(args, raw);
  }

  /** An HTTP request line (POST, Host:): closes the connection at once, as Redis does. */
  private refuseHttp(): boolean {
    logger.warn({ client: this.id }, 'possible cross-protocol attack (HTTP request on the Redis port); connection closed');
    this.clientWrites = [];
    this.close();
    return true;
  }

  /** Holds a local command (router.plan) until every earlier request is answered. */
  protected runLocalStage(name: string, args: Buffer[]): void {
    this.blocked = { name, args, running: false };
    this.tryRunBlocked();
  }

  /** Runs the blocked local command once every earlier request has been answered. */
  protected tryRunBlocked(): void {
    const b = this.blocked;
    if (!b || b.running || this.repliesPending() || this.closed) return;
    b.running = true;
    const started = this.opts.router.startPipelined(b.name, b.args, this, this.ctx);
    if (started) {
      void this.runPipeline(started);
      return;
    }
    const plan = this.opts.router.plan(b.name, b.args, this);
    if (plan.kind === 'forward') {
      this.blocked = null;
      const args = plan.args ?? b.args;
      this.forward(b.name, args, encodeRequest(args), plan.hooks ?? this.opts.router.hooksFor(b.name, b.args, this));
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
    this.clientWrites.push(encode(reply));
    this.blocked = null;
    if (plan.close) {
      this.flushClientWrites();
      this.endConnection();
      return;
    }
    this.afterLocal();
  }

  /**
   * Pipelined local commands (CommandSpec.pipelined, e.g. LLM.ADD with a vector): each later one
   * of the same connection that can join starts at once instead of waiting for the previous one's
   * reply (their writes are made in request order when they start), so a pipeline of them shares
   * storage round trips. Replies are written in request order.
   */
  private async runPipeline(first: Promise<RespValue>): Promise<void> {
    const runs = [first];
    this.pipeline = runs;
    this.joinPipeline();
    for (let i = 0; i < runs.length; i++) {
      const reply = await runs[i]!;
      if (this.closed) return;
      this.clientWrites.push(encode(reply));
      this.flushSoon();
    }
    this.pipeline = null;
    this.blocked = null;
    this.afterLocal();
  }

  /** While a pipeline runs: starts the requests at the head of the inbox that can join it. */
  private joinPipeline(): void {
    const runs = this.pipeline!;
    while (this.inbox.length > 0 && !this.closing) {
      const next = this.inbox[0]!;
      const started = this.opts.router.startPipelined(commandName(next.args[0]!), next.args, this, this.ctx);
      if (!started) return;
      this.inbox.shift();
      runs.push(started);
    }
  }

  /** The local command is answered: go on with the requests that waited for it. */
  private afterLocal(): void {
    this.drainInbox();
    this.flushBackendWrites();
    // More local commands of this pipeline are running: their replies join this one in a single
    // write at the end of this turn of the event loop, instead of one write per reply.
    if (this.blocked) this.flushSoon();
    else this.flushClientWrites();
    this.maybeFinish();
    this.hold.release();
  }

  /** Writes what is queued for the client at the end of this turn of the event loop. */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushClientWrites();
    });
  }

  private drainInbox(): void {
    while (!this.blocked && this.inbox.length > 0 && !this.closing) {
      const next = this.inbox.shift()!;
      this.dispatch(next.args, next.raw);
    }
    if (this.readPaused && this.inbox.length < 256) {
      this.readPaused = false;
      this.resumeReading();
    }
  }

  /** Ends the connection once every earlier request is answered, writing `last` first. */
  protected finishAfterReplies(last: Buffer): void {
    this.finish = last;
    this.flushBackendWrites();
    this.maybeFinish();
  }

  protected maybeFinish(): void {
    const last = this.finish;
    if (!last || this.closing || !this.idle) return;
    this.clientWrites.push(last);
    this.flushClientWrites();
    this.endConnection();
  }

  /** Ends the client connection and the backend links gracefully (what is written is sent). */
  private endConnection(): void {
    this.closing = true;
    this.socket.end();
    this.endBackend();
  }

  protected unavailableText(): string {
    return this.opts.backend ? 'backing Redis unavailable: connection refused or down; retrying in the background' : 'no backing Redis: start with --redis <url> or install redis-server';
  }

  // ---- replies -----------------------------------------------------------------------------

  protected flushClientWrites(): void {
    const w = this.clientWrites;
    if (w.length === 0 || this.closed) return;
    this.clientWrites = [];
    const ok = this.socket.write(w.length === 1 ? w[0] : coalesce(w));
    if (!ok) {
      const limit = this.opts.outputBufferLimit;
      if (limit > 0) {
        // As Redis's client-output-buffer-limit: unread replies are held up to the limit, then
        // the client is closed. The backend links are NOT paused here: pausing them would only
        // move the unread replies into the backing Redis (whose normal clients have no limit),
        // where a client pipelining `GET bigkey` without reading grows that Redis without bound
        // and is never disconnected. So this process holds at most `limit` bytes per client.
        if (this.socket.writableLength > limit) this.overLimit();
        return;
      }
      // No limit (0): backpressure instead; the backing Redis holds what the client has not read.
      this.pauseBackendReads();
    }
  }

  private overLimit(): void {
    logger.warn({ client: this.id, bytes: this.socket.writableLength }, 'client output buffer limit reached; closing the connection');
    this.close(); // the client and its backend links at once: nothing more is read for it
  }

  /** Is this decoded reply the one to the sentinel PING (RESP2 or subscribed form)? */
  protected isSentinel(v: Decoded): boolean {
    const s = this.sentinel;
    if (Buffer.isBuffer(v)) return v.length === s.length && v.toString('latin1') === s;
    if (Array.isArray(v) && v.length === 2 && Buffer.isBuffer(v[0]) && Buffer.isBuffer(v[1])) {
      return v[0].toString('latin1') === 'pong' && v[1].toString('latin1') === s;
    }
    return v instanceof SimpleString && v.value === s;
  }

  // ---- teardown ----------------------------------------------------------------------------

  /** Stop reading new requests for good; used by graceful shutdown. */
  stopReading(): void {
    this.readingStopped = true;
    this.socket.pause();
  }

  /** Reads the client's socket again after a pause (backpressure, a long inbox, AUTH), unless stopped. */
  protected resumeReading(): void {
    if (!this.readingStopped) this.socket.resume();
  }

  /** True when no request is waiting for a reply. */
  get idle(): boolean {
    return !this.repliesPending() && !this.blocked && this.inbox.length === 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    this.destroyBackend();
    this.socket.destroy();
    this.opts.onClose(this);
  }
}

/**
 * A protocol error's reply: Redis writes the message's bytes as it got them (a byte >= 0x80 in
 * "expected '$', got 'X'" is that byte, not its UTF-8 form), hence latin1.
 */
export function protocolErrorReply(message: string): Buffer {
  return Buffer.from(`-ERR ${message.replace(/[\r\n]+/g, ' ')}\r\n`, 'latin1');
}

/**
 * Joins buffers for one write. Neighbours that are adjacent views of one chunk (a pipeline of
 * forwarded requests, a run of replies) are merged without copying; only the rest is copied.
 */
export function coalesce(parts: Buffer[]): Buffer {
  if (parts.length === 1) return parts[0]!;
  const merged: Buffer[] = [];
  // The current run: `first` and every part adjacent after it, up to `end` (one Buffer per run).
  let first = parts[0]!;
  let end = first.byteOffset + first.length;
  const close = () => merged.push(end === first.byteOffset + first.length ? first : Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset));
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.buffer === first.buffer && p.byteOffset === end) {
      end += p.length;
    } else {
      close();
      first = p;
      end = p.byteOffset + p.length;
    }
  }
  close();
  return merged.length === 1 ? merged[0]! : Buffer.concat(merged);
}
