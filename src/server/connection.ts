/**
 * One client connection: transport only. What a request means is the router's business
 * (src/commands/router.ts); how it reaches the backing store is the link's (src/proxy/link.ts).
 *
 * Requests: socket → RequestParser → onCommand (the router's intake: QUIT, an HTTP request, the
 * pre-AUTH parsing hold) → while a local command runs or waits, the inbox (the socket is paused
 * when it grows) → dispatch → router.route → forwarded on the link, or planned here once every
 * earlier request is answered (router.plan) and run. Execution follows request order, as in
 * Redis: later requests wait for a local command.
 *
 * Replies: everything for the client is queued in clientWrites and written in one write per turn
 * (flushClientWrites), under the client output buffer limit.
 */
import type net from 'node:net';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { RequestParser, encodeRequest, type ParserLimits } from '../protocol/request-parser.js';
import { commandName } from '../protocol/command-name.js';
import { encode, ErrorReply, type Decoded, type Proto, type RespValue } from '../protocol/resp.js';
import { coalesce } from '../util/coalesce.js';
import { runLocal, type CommandContext, type ForwardHooks, type Plan, type SessionView, type StateChange, type TxLog } from '../commands/plan.js';
import type { Pipelined, Router } from '../commands/router.js';
import { pauseForIo } from '../util/io-slice.js';
import type { Backend } from '../proxy/backend.js';
import type { BackendLink, LinkOwner, ReplyMode } from '../proxy/link.js';
import { ParsingHold } from './parsing-hold.js';

/**
 * Requests of one connection's pipeline in flight at once: enough to overlap storage round trips
 * and searches, few enough that replies computed ahead of the client's reading stay bounded.
 */
const MAX_PIPELINED = 64;

/** Stands in for a pipelined request once its reply is written. */
const ANSWERED: Promise<RespValue> = Promise.resolve(null);

export interface ConnectionOptions {
  router: Router;
  backend: Backend | null;
  /** The link to the backing store for this connection (null: standalone, no backing Redis). */
  makeLink(owner: LinkOwner): BackendLink | null;
  limits: ParserLimits;
  /** Authenticated from the start (no requirepass / backend without AUTH). */
  authenticated: boolean;
  /** Disconnect when the client's unread output exceeds this many bytes (0 = no limit). */
  outputBufferLimit: number;
  onClose(connection: ClientConnection): void;
}

let nextId = 1;

export class ClientConnection implements SessionView, LinkOwner {
  readonly id = nextId++;
  db = 0;
  inMulti = false;
  tx: TxLog | null = null;
  proto: Proto = 2;
  private _authenticated = false;

  private readonly link: BackendLink | null;
  private readonly parser: RequestParser;
  private readonly ctx: CommandContext;
  /** Parsing waits after AUTH until it is answered (Redis's pre-AUTH limits, parsing-hold.ts). */
  private readonly hold: ParsingHold;
  /** A local command is running or waiting for earlier replies. */
  private blocked: { name: string; args: Buffer[]; running: boolean } | null = null;
  /** Replies of the pipelined local commands running (runPipeline), in request order. */
  private pipeline: Array<Promise<RespValue>> | null = null;
  /** Which of them go unanswered (CLIENT REPLY). */
  private pipelineSilent: boolean[] = [];
  /** Requests of the running pipeline whose replies are not written yet (at most MAX_PIPELINED). */
  private pipelineUnanswered = 0;
  /** joinPipeline paused for I/O and will go on in a later turn of the loop. */
  private rejoining = false;
  /** A write was started in the running pipeline (a read joining after it must see it applied). */
  private pipelineWrite = false;
  /** Requests read while `blocked`. */
  private inbox: Array<{ args: Buffer[]; raw: Buffer }> = [];
  private clientWrites: Buffer[] = [];
  /** The socket is paused because the inbox is long. */
  private readPaused = false;
  private flushScheduled = false;
  private closing = false;
  private closed = false;
  /** Graceful shutdown: nothing more is read from the client (stopReading). */
  private readingStopped = false;
  /** QUIT was read: nothing after it is. */
  private quitSeen = false;
  /** A protocol error: written last, once every earlier request is answered (maybeFinish). */
  private finish: Buffer | null = null;
  /** CLIENT REPLY: replies are written (on), not written (off), or not for the next request (skip). */
  private replies: ReplyMode = 'on';

  constructor(readonly socket: net.Socket, private readonly opts: ConnectionOptions) {
    this.ctx = { client: this, services: opts.router.services };
    this.link = opts.makeLink(this);
    this.parser = new RequestParser(
      {
        onCommand: (args, raw) => this.onCommand(args, raw),
        // Redis reads nothing after QUIT, a protocol error included.
        onProtocolError: (msg) => { if (!this.quitSeen) this.onProtocolError(msg); },
      },
      opts.limits,
    );
    const flush = () => {
      this.link?.flush();
      this.flushClientWrites();
    };
    this.hold = new ParsingHold(this.parser, { pause: () => socket.pause(), resume: () => this.resumeReading() }, () => this.idle && !this.closing, flush);
    this.authenticated = opts.authenticated;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.parser.feed(chunk);
      this.hold.release();
      this.link?.flush();
      this.flushClientWrites();
    });
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.on('drain', () => this.link?.resumeReads());
  }

  // ---- SessionView -------------------------------------------------------------------------

  get backendUp(): boolean {
    return !!this.opts.backend?.up;
  }

  get cluster(): boolean {
    return !!this.opts.backend?.isCluster;
  }

  /** RESP2's subscribed state (RESP3 clients may send any command while subscribed). */
  get pubsubMode(): boolean {
    return this.proto === 2 && !!this.link?.pubsubMode;
  }

  get authenticated(): boolean {
    return this._authenticated;
  }

  /** Redis's unauthenticated request limits apply to the requests parsed while this is false. */
  set authenticated(v: boolean) {
    this._authenticated = v;
    this.parser.authRequired = !v;
  }

  /** The ACL user of the last accepted AUTH (LLM.* key permissions, see commands/acl.ts). */
  user: string | undefined = undefined;

  applyState(s: StateChange): void {
    if (s.db !== undefined) this.db = s.db;
    if (s.authenticated !== undefined) {
      this.authenticated = s.authenticated;
      if (s.authenticated) this.link?.authenticatedNow();
    }
    if (s.inMulti !== undefined) this.inMulti = s.inMulti;
    if (s.proto !== undefined) this.proto = s.proto;
    if (s.user !== undefined) this.user = s.user;
    if (s.reset) {
      this.user = undefined;
      this.db = 0;
      this.proto = 2;
      this.replies = 'on';
      this.inMulti = false;
      this.tx = null;
      this.authenticated = !this.opts.backend?.authRequired;
      this.link?.reset();
    }
  }

  backendCall(args: Array<string | Buffer>): Promise<Decoded> {
    if (!this.link) return Promise.reject(new CommandError(this.unavailableText()));
    return this.link.call(args);
  }

  backendCallRaw(args: Array<string | Buffer>): Promise<Buffer> {
    if (!this.link) return Promise.reject(new CommandError(this.unavailableText()));
    return this.link.callRaw(args);
  }

  masterCount(): number {
    return this.link?.masterCount() ?? 0;
  }

  backendCallMaster(index: number, args: Array<string | Buffer>): Promise<Decoded> {
    if (!this.link) return Promise.reject(new CommandError(this.unavailableText()));
    return this.link.callMaster(index, args);
  }

  // ---- LinkOwner ---------------------------------------------------------------------------

  lostAuth(): void {
    this.authenticated = false;
  }

  private closeRequested = false;

  closeAfterReply(): void {
    this.closeRequested = true;
  }

  get backendId(): number | null {
    return this.link?.backendId ?? null;
  }

  /** The client's address as Redis shows one (`ip:port`), and the address it connected to. */
  get addr(): string {
    return formatAddr(this.socket.remoteAddress, this.socket.remotePort);
  }

  get laddr(): string {
    return formatAddr(this.socket.localAddress, this.socket.localPort);
  }

  write(frame: Buffer): void {
    this.clientWrites.push(frame);
  }

  flushClient(): void {
    this.flushClientWrites();
  }

  repliesArrived(): void {
    this.tryRunBlocked();
    this.maybeFinish();
    this.hold.release();
  }

  pauseClient(): void {
    if (!this.readPaused) this.socket.pause();
  }

  resumeClient(): void {
    this.resumeReading();
  }

  endClient(): void {
    if (this.closed) return;
    this.closing = true;
    // Closed, not half-closed, once what is written has gone out: a client whose link was killed
    // (CLIENT KILL) is gone, as Redis closes it, whether or not it reads.
    this.socket.end(() => this.socket.destroy());
  }

  destroyClient(): void {
    this.socket.destroy();
  }

  unavailableText(): string {
    return this.opts.backend ? 'backing Redis unavailable: connection refused or down; retrying in the background' : 'no backing Redis: start with --redis <url> or install redis-server';
  }

  // ---- requests ----------------------------------------------------------------------------

  private onCommand(args: Buffer[], raw: Buffer): void {
    if (this.closing || this.quitSeen || this.finish) return;
    const intake = this.opts.router.intake(args[0]!, this.authenticated, !!this.opts.backend?.authRequired);
    if (intake !== null) {
      // As Redis: nothing after QUIT is read; an HTTP request (cross-protocol scripting) closes
      // the connection at once and silently, unanswered replies included.
      if (intake === 'quit') this.quitSeen = true;
      else if (intake === 'http') {
        this.refuseHttp();
        return;
      } else this.parser.pause(); // 'hold': parsing waits until every request read is answered
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
  private refuseHttp(): void {
    logger.warn({ client: this.id }, 'possible cross-protocol attack (HTTP request on the Redis port); connection closed');
    this.clientWrites = [];
    this.close();
  }

  /** A request, in order, when no local command is running or waiting. */
  private dispatch(args: Buffer[], raw: Buffer): void {
    const link = this.link;
    if (link?.rawPipe) {
      // After MONITOR the connection is a raw pipe (replies and monitor lines interleave).
      link.sendRaw(raw);
      return;
    }
    const name = commandName(args[0]!);
    const route = this.opts.router.route(name, args, this);
    if (route.kind === 'ordered') {
      this.blocked = { name, args, running: false };
      this.tryRunBlocked();
      return;
    }
    this.forward(route.args ?? args, route.args ? encodeRequest(route.args) : raw, route.hooks);
  }

  private forward(args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): void {
    if (this.replies !== 'on' || hooks?.replyMode !== undefined) {
      if (this.silenced(hooks?.replyMode)) hooks = { ...hooks, silent: true };
    }
    if (!this.link) {
      if (!hooks?.silent) this.write(encode(new ErrorReply(this.unavailableText())));
    } else {
      this.link.forward(args, raw, hooks);
    }
  }

  /**
   * Does the request being dispatched go unanswered (CLIENT REPLY)? `mode` is set when the request
   * is CLIENT REPLY itself: ON is answered, OFF and SKIP are not. Called once per request, in order.
   */
  private silenced(mode: ReplyMode | undefined): boolean {
    if (mode !== undefined) {
      this.replies = mode;
      return mode !== 'on';
    }
    if (this.replies === 'skip') {
      this.replies = 'on';
      return true;
    }
    return this.replies === 'off';
  }

  /** The same for a request answered here: a SKIP it uses up must not also skip a backend reply. */
  private silencedLocally(): boolean {
    if (this.replies === 'on') return false;
    if (this.replies === 'skip') this.link?.skipConsumedLocally();
    return this.silenced(undefined);
  }

  private repliesPending(): boolean {
    return !!this.link?.pending();
  }

  /** Runs the blocked local command once every earlier request has been answered. */
  private tryRunBlocked(): void {
    const b = this.blocked;
    if (!b || b.running || this.repliesPending() || this.closed) return;
    b.running = true;
    const router = this.opts.router;
    const started = router.startPipelined(b.name, b.args, this, this.ctx);
    if (started) {
      void this.runPipeline(started, this.silencedLocally());
      return;
    }
    const plan = router.plan(b.name, b.args, this);
    if (plan.kind === 'forward') {
      this.blocked = null;
      const args = plan.args ?? b.args;
      this.forward(args, encodeRequest(args), plan.hooks);
      this.drainInbox();
      this.link?.flush();
      this.flushClientWrites();
      return;
    }
    void this.runLocalPlan(plan, this.silencedLocally());
  }

  private async runLocalPlan(plan: Extract<Plan, { kind: 'local' }>, silent: boolean): Promise<void> {
    const reply: RespValue = await runLocal(plan, this.ctx);
    if (this.closed) return;
    if (!silent) this.clientWrites.push(encode(reply, this.proto));
    this.blocked = null;
    if (plan.close || this.closeRequested) {
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
  private async runPipeline(first: Pipelined, silent: boolean): Promise<void> {
    const runs = [first.reply];
    this.pipeline = runs;
    this.pipelineUnanswered = 1;
    this.pipelineWrite = first.write;
    this.pipelineSilent = [silent];
    this.joinPipeline();
    for (let i = 0; i < runs.length; i++) {
      const reply = await runs[i]!;
      // A pipeline may run for as long as requests keep joining it: what is answered is dropped
      // (not kept, with every reply, until the run ends).
      runs[i] = ANSWERED;
      this.pipelineUnanswered--;
      if (this.closed) return;
      if (!this.pipelineSilent[i]) this.clientWrites.push(encode(reply, this.proto));
      this.flushSoon();
      // Room again in the pipeline: requests that waited for it start.
      if (this.inbox.length > 0 && !this.rejoining) this.joinPipeline();
      if (i === 255) {
        runs.splice(0, 256);
        this.pipelineSilent.splice(0, 256);
        i = -1;
      }
    }
    this.pipeline = null;
    this.pipelineWrite = false;
    this.blocked = null;
    this.afterLocal();
  }

  /** While a pipeline runs: starts the requests at the head of the inbox that can join it. */
  private joinPipeline(): void {
    const runs = this.pipeline!;
    // At most MAX_PIPELINED in flight: the replies of the rest would be computed and held, not sent.
    while (this.inbox.length > 0 && !this.closing && this.pipelineUnanswered < MAX_PIPELINED) {
      const later = pauseForIo();
      if (later) {
        // This turn of the loop has done its share: the rest start after the next poll for I/O.
        if (!this.rejoining) {
          this.rejoining = true;
          void later.then(() => {
            this.rejoining = false;
            if (this.pipeline === runs && !this.closed) this.joinPipeline();
          });
        }
        return;
      }
      const next = this.inbox[0]!;
      const started = this.opts.router.startPipelined(commandName(next.args[0]!), next.args, this, this.ctx, this.pipelineWrite);
      if (!started) return;
      this.inbox.shift();
      runs.push(started.reply);
      this.pipelineUnanswered++;
      if (started.write) this.pipelineWrite = true;
      this.pipelineSilent.push(this.silencedLocally());
    }
  }

  /** The local command is answered: go on with the requests that waited for it. */
  private afterLocal(): void {
    this.drainInbox();
    this.link?.flush();
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

  private onProtocolError(message: string): void {
    logger.debug({ client: this.id, message }, 'protocol error; closing the connection');
    // As Redis: earlier requests are answered, then the error (its bytes as received: latin1),
    // then only this connection is closed.
    this.finish = protocolErrorReply(message);
    this.link?.flush();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    const last = this.finish;
    if (!last || this.closing || !this.idle) return;
    this.clientWrites.push(last);
    this.flushClientWrites();
    this.endConnection();
  }

  /** Ends the client connection and the backend links gracefully (what is written is sent). */
  private endConnection(): void {
    this.closing = true;
    // As Redis: once what is written has gone out, the socket is closed, not half-closed: a client
    // still sending (a protocol desync, bytes after QUIT) sees the connection end.
    this.socket.end(() => this.socket.destroy());
    this.link?.end();
  }

  // ---- replies -----------------------------------------------------------------------------

  private flushClientWrites(): void {
    const w = this.clientWrites;
    if (w.length === 0 || this.closed) return;
    this.clientWrites = [];
    const ok = this.socket.write(w.length === 1 ? w[0]! : coalesce(w));
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
      this.link?.pauseReads();
    }
  }

  private overLimit(): void {
    logger.warn({ client: this.id, bytes: this.socket.writableLength }, 'client output buffer limit reached; closing the connection');
    this.close(); // the client and its backend links at once: nothing more is read for it
  }

  // ---- teardown ----------------------------------------------------------------------------

  /** Stop reading new requests for good; used by graceful shutdown. */
  stopReading(): void {
    this.readingStopped = true;
    this.socket.pause();
  }

  /** Reads the client's socket again after a pause (backpressure, a long inbox, AUTH), unless stopped. */
  private resumeReading(): void {
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
    this.link?.destroy();
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

/** `ip:port` as Redis writes it (IPv6 without brackets, an IPv4-mapped address as IPv4). */
function formatAddr(ip: string | undefined, port: number | undefined): string {
  const host = (ip ?? '?').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
  return `${host}:${port ?? 0}`;
}
