/**
 * One client connection when the backing store is a Redis Cluster.
 *
 * The server presents itself to clients as ONE node (no MOVED/ASK ever reaches a client; CLUSTER
 * commands are forwarded to a node as they are) and routes internally, as a cluster proxy does:
 *
 *  - each request's keys are hashed to their slot (CRC16 with {hash tags}, src/proxy/slots.ts);
 *    keys in different slots answer `-CROSSSLOT` here; keyless commands go to this client's home
 *    node (the first master);
 *  - the client has one raw link per node, opened on first use (its AUTH replayed on it);
 *  - replies are written in request order whatever node answers first (a BLPOP on one node holds
 *    back later replies, as on one Redis);
 *  - `-MOVED` updates the slot map (and reads CLUSTER SLOTS again) and resends the request to the
 *    new owner; `-ASK` resends it there once, after ASKING;
 *  - MULTI is answered here and sent, with everything queued so far, to the node of the first
 *    keyed command (or the home node at EXEC); a command for another slot inside is refused with
 *    CROSSSLOT and EXEC then aborts, as Redis Cluster refuses such a transaction;
 *  - SELECT other than 0 gets Redis Cluster's error; KEYS, SCAN (composite cursor), DBSIZE,
 *    RANDOMKEY, FLUSHDB and FLUSHALL fan out to every master;
 *  - SUBSCRIBE/PSUBSCRIBE on the home node (a cluster broadcasts PUBLISH), SSUBSCRIBE on the
 *    node of the channel's slot. MONITOR is not supported.
 *
 * Replies are framed per link (ReplyScanner) and written whole: unlike the single-node Session,
 * a large reply is buffered until complete. Request intake, the local stage, client writes and
 * teardown are shared with Session (client-session.ts); the single-node path is untouched.
 */
import type net from 'node:net';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { encodeRequest } from '../protocol/request-parser.js';
import { commandName } from '../protocol/command-name.js';
import { ReplyScanner } from '../protocol/reply-scanner.js';
import { decodeFrame, encode, ErrorReply, SimpleString, OK, type Decoded, type RespValue } from '../protocol/resp.js';
import type { ForwardHooks, StateChange } from '../commands/dispatcher.js';
import { commandKeys, slotOfKeys } from '../proxy/slots.js';
import { commandLogRequest, filterCommandLog, isCommandLogGet } from '../proxy/introspection.js';
import { ClientSession, protocolErrorReply, PUSH_KINDS, SHARD_KINDS, SUBSCRIBE_KINDS, type SessionOptions } from './client-session.js';

const CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot";
const MAX_REDIRECTS = 5;
const FANOUT = new Set(['keys', 'scan', 'dbsize', 'randomkey', 'flushdb', 'flushall']);

interface Entry {
  /** The request, for a resend after MOVED/ASK. */
  raw: Buffer;
  /** Reply bytes once complete (client-visible entries). */
  out: Buffer[] | null;
  hooks?: ForwardHooks;
  /** Internal call: resolved with the decoded reply, not written. */
  resolve?: (v: Decoded) => void;
  reject?: (e: Error) => void;
  /** Internal request whose reply is dropped (ASKING, replayed AUTH, MULTI sent late). */
  discard?: boolean;
  /** (P|S)(UN)SUBSCRIBE: frames collected until the sentinel PING answers. */
  subscribe?: boolean;
  /** Sent inside MULTI: redirections are not followed (the client sees them, EXEC aborts). */
  inTx?: boolean;
  redirects: number;
}

interface Link {
  node: string;
  sock: net.Socket;
  scanner: ReplyScanner;
  partial: Buffer[];
  pending: Entry[];
  writes: Buffer[];
  established: boolean;
  subCount: number;
  shardCount: number;
  pubsubAware: boolean;
}

let nextId = 1_000_000;

export class ClusterSession extends ClientSession {
  private readonly links = new Map<string, Link>();
  private dirty = new Set<Link>();
  /** Client-visible requests in order; written as the head completes. */
  private order: Entry[] = [];
  /** AUTH to replay on every new link, once the client authenticated. */
  private authRaw: Buffer | null = null;
  /** MULTI: the pinned node and slot, and what waits to be sent until the node is known. */
  private txNode: string | null = null;
  private txSlot = -1;
  private txHeld: Buffer[] = [];
  private home: string | null = null;

  constructor(socket: net.Socket, opts: SessionOptions) {
    super(nextId++, socket, opts);
  }

  private get backend() {
    return this.opts.backend!;
  }

  // ---- SessionView -------------------------------------------------------------------------

  override get pubsubMode(): boolean {
    for (const l of this.links.values()) if (l.subCount + l.shardCount > 0) return true;
    return false;
  }

  override applyState(s: StateChange): void {
    if (s.authenticated !== undefined) this.authenticated = s.authenticated;
    if (s.reset) {
      this.inMulti = false;
      this.txNode = null;
      this.txHeld = [];
      this.authRaw = null;
      this.authenticated = !this.backend.authRequired;
    }
  }

  override backendCall(args: Array<string | Buffer>): Promise<Decoded> {
    const bufs = args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a));
    const name = bufs[0]!.toString('latin1').toLowerCase();
    if (FANOUT.has(name)) return this.fanout(name, bufs);
    return new Promise((resolve, reject) => {
      if (!this.backend.up) {
        reject(new CommandError(this.unavailableText()));
        return;
      }
      const node = this.nodeFor(name, bufs);
      if (node === null) {
        resolve(new ErrorReply(CROSSSLOT.slice(10), 'CROSSSLOT'));
        return;
      }
      const entry: Entry = { raw: encodeRequest(bufs), out: null, resolve, reject, redirects: 0 };
      if (name === 'auth') {
        entry.resolve = (v) => {
          if (!(v instanceof ErrorReply)) this.rememberAuth(entry.raw, node);
          resolve(v);
        };
      }
      this.send(entry, node);
      this.flushBackendWrites();
    });
  }

  // ---- requests ----------------------------------------------------------------------------

  private reply(v: RespValue): void {
    this.order.push({ raw: EMPTY, out: [encode(v)], redirects: 0 });
    this.flushOrder();
  }

  protected override dispatch(args: Buffer[], raw: Buffer): void {
    const name = commandName(args[0]!);
    const router = this.opts.router;
    if (this.authenticated && !this.pubsubMode) {
      switch (name) {
        case 'select':
          if (args.length !== 2) break;
          this.reply(args[1]!.toString('latin1') === '0' ? OK : new ErrorReply('SELECT is not allowed in cluster mode'));
          return;
        case 'monitor':
          this.reply(new ErrorReply('MONITOR is not supported with a Redis Cluster backend'));
          return;
        case 'multi':
          if (args.length !== 1) break;
          if (this.inMulti) {
            this.reply(new ErrorReply('MULTI calls can not be nested'));
            return;
          }
          this.inMulti = true;
          this.txNode = null;
          this.txSlot = -1;
          this.txHeld = [raw];
          this.reply(OK);
          return;
        case 'exec':
        case 'discard':
          if (!this.inMulti || args.length !== 1) break;
          if (this.txNode === null && name === 'discard') {
            this.inMulti = false;
            this.txHeld = [];
            this.reply(OK);
            return;
          }
          this.pinTx(this.txNode ?? this.homeNode(), -1);
          this.inMulti = false;
          this.txNode = null;
          this.sendOrdered(raw, this.lastTxNode!, undefined, true);
          return;
        case 'dbsize':
          if (this.inMulti) break;
          this.ordered(this.fanout(name, args));
          return;
      }
    }
    if (router.needsLocalStage(name, args, this)) {
      this.runLocalStage(name, args);
      return;
    }
    this.forward(name, args, raw, router.hooksFor(name, args, this));
  }

  private lastTxNode: string | null = null;

  /** Pins the transaction to `node`: sends MULTI and what was queued before it. */
  private pinTx(node: string, slot: number): void {
    if (this.txNode === null) {
      this.txNode = node;
      this.txSlot = slot;
      for (const held of this.txHeld) this.send({ raw: held, out: null, discard: true, inTx: true, redirects: 0 }, node);
      this.txHeld = [];
    }
    this.lastTxNode = this.txNode;
  }

  /** A client-visible request sent to `node`. */
  private sendOrdered(raw: Buffer, node: string, hooks: ForwardHooks | undefined, inTx = false): void {
    const e: Entry = { raw, out: null, hooks, inTx, redirects: 0 };
    this.order.push(e);
    this.send(e, node);
  }

  /** A client-visible reply computed asynchronously, kept in request order. */
  private ordered(p: Promise<Decoded>): void {
    const e: Entry = { raw: EMPTY, out: null, redirects: 0 };
    this.order.push(e);
    p.then(
      (v) => { e.out = [encode(v as RespValue)]; },
      (err: Error) => { e.out = [encode(new ErrorReply(err.message))]; },
    ).finally(() => {
      this.flushOrder();
      this.flushBackendWrites();
      this.maybeFinish();
      this.hold.release();
    });
  }

  /** The node for a request's keys; null when they hash to different slots. */
  private nodeFor(name: string, args: Buffer[]): string | null {
    const slot = slotOfKeys(commandKeys(name, args, this.backend.keyRange(name)));
    if (slot === -2) return null;
    if (slot === -1) return this.homeNode();
    return this.backend.slotNodes[slot] || this.homeNode();
  }

  private homeNode(): string {
    const masters = this.backend.masters();
    if (this.home === null || (masters[0] !== this.home && !masters.includes(this.home))) this.home = masters[0]!;
    return this.home;
  }

  protected override forward(name: string, args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): void {
    if (!this.backend.up) {
      this.reply(new ErrorReply(this.unavailableText()));
      return;
    }
    if (hooks?.subscribe) {
      let node = this.homeNode();
      if (SHARD_KINDS.has(name)) {
        const slot = slotOfKeys(args.slice(1));
        if (slot === -2) {
          this.reply(new ErrorReply(CROSSSLOT.slice(10), 'CROSSSLOT'));
          return;
        }
        if (slot >= 0) node = this.backend.slotNodes[slot] || node;
      }
      const e: Entry = { raw, out: [], hooks, subscribe: true, redirects: 0 };
      this.order.push(e);
      const link = this.send(e, node);
      link.pubsubAware = true;
      this.write(link, encodeRequest(['PING', this.sentinel]));
      return;
    }
    if (name === 'auth' || name === 'hello') hooks = this.authHooks(name, args, raw, hooks);
    if (isCommandLogGet(name, args)) {
      // The server's own traffic is dropped from the reply, as in Session (src/proxy/introspection.ts).
      if (this.inMulti) {
        this.refuseInMulti(`ERR ${name.toUpperCase()} GET inside MULTI is not supported on a Redis Cluster backend`);
        return;
      }
      const asked = commandLogRequest(name, args);
      const limit = asked?.limit ?? Infinity;
      if (asked) raw = asked.raw;
      const inner = hooks;
      hooks = { ...inner, transform: (f) => filterCommandLog(inner?.transform ? inner.transform(f) : f, limit) };
    }
    const keys = commandKeys(name, args, this.backend.keyRange(name));
    const slot = slotOfKeys(keys);
    if (this.inMulti) {
      if (slot === -2 || (slot >= 0 && this.txSlot >= 0 && slot !== this.txSlot)) {
        this.refuseInMulti(CROSSSLOT);
        return;
      }
      if (this.txNode === null && slot === -1 && !hooks) {
        // Queued here until the transaction's node is known.
        this.txHeld.push(raw);
        this.reply(new SimpleString('QUEUED'));
        return;
      }
      if (this.txNode === null) this.pinTx(slot >= 0 ? this.backend.slotNodes[slot] || this.homeNode() : this.homeNode(), slot);
      else if (this.txSlot < 0 && slot >= 0) this.txSlot = slot;
      this.sendOrdered(raw, this.txNode!, hooks, true);
      return;
    }
    if (slot === -2) {
      this.reply(new ErrorReply(CROSSSLOT.slice(10), 'CROSSSLOT'));
      return;
    }
    const node = slot >= 0 ? this.backend.slotNodes[slot] || this.homeNode() : this.homeNode();
    this.sendOrdered(raw, node, hooks);
  }

  /** Refused at queue time; the backend's unknown-command error flags the transaction so EXEC aborts. */
  private refuseInMulti(error: string): void {
    this.pinTx(this.txNode ?? this.homeNode(), -1);
    const msg = Buffer.from(`-${error}\r\n`);
    this.sendOrdered(encodeRequest(['__llm_server_refused_in_multi__']), this.txNode!, { transform: () => msg }, true);
  }

  /** AUTH / HELLO ... AUTH: on success, the same credentials are given to the client's other links. */
  private authHooks(name: string, args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): ForwardHooks | undefined {
    let authRaw = raw;
    if (name === 'hello') {
      const at = args.findIndex((a, i) => i >= 2 && a.toString('latin1').toLowerCase() === 'auth');
      if (at < 0 || at + 2 >= args.length) return hooks;
      authRaw = encodeRequest(['AUTH', args[at + 1]!, args[at + 2]!]);
    }
    const node = this.homeNode();
    return {
      ...hooks,
      onReply: (r) => {
        hooks?.onReply?.(r);
        if (!(r instanceof ErrorReply)) this.rememberAuth(authRaw, node);
      },
    };
  }

  private rememberAuth(raw: Buffer, from: string): void {
    this.authRaw = raw;
    for (const l of this.links.values()) if (l.node !== from) this.send({ raw, out: null, discard: true, redirects: 0 }, l.node);
    this.flushBackendWrites();
  }

  protected override onProtocolError(message: string): void {
    // As Redis: earlier requests are answered, then the error, then the connection is closed.
    this.flushOrder();
    this.finishAfterReplies(protocolErrorReply(message));
  }

  protected override repliesPending(): boolean {
    return this.order.length > 0;
  }

  // ---- fan-out to every master ---------------------------------------------------------------

  private callNode(node: string, args: Array<Buffer | string>): Promise<Decoded> {
    return new Promise((resolve, reject) => {
      this.send({ raw: encodeRequest(args), out: null, resolve, reject, redirects: MAX_REDIRECTS }, node);
    });
  }

  private async fanout(name: string, args: Buffer[]): Promise<Decoded> {
    if (!this.backend.up) throw new CommandError(this.unavailableText());
    const masters = this.backend.masters();
    if (name === 'scan') return this.scan(masters, args);
    if (name === 'randomkey') {
      const order = [...masters].sort(() => Math.random() - 0.5);
      const p = order.map((n) => this.callNode(n, args));
      this.flushBackendWrites();
      for (const r of await Promise.all(p)) if (r !== null) return r;
      return null;
    }
    const p = masters.map((n) => this.callNode(n, args));
    this.flushBackendWrites();
    const replies = await Promise.all(p);
    const err = replies.find((r) => r instanceof ErrorReply);
    if (err) return err;
    if (name === 'keys') return replies.flat() as Decoded;
    if (name === 'dbsize') return replies.reduce<number>((a, r) => a + Number(r), 0);
    return replies[0]!; // FLUSHDB / FLUSHALL: +OK
  }

  /** SCAN over the masters in turn: cursor = node cursor * 1024 + node index. */
  private async scan(masters: string[], args: Buffer[]): Promise<Decoded> {
    let composite: bigint;
    try {
      composite = BigInt(args[1]!.toString('latin1'));
      if (composite < 0n) throw new Error();
    } catch {
      return new ErrorReply('invalid cursor');
    }
    const idx = Number(composite % 1024n);
    if (idx >= masters.length) return [Buffer.from('0'), []];
    const nodeCursor = composite / 1024n;
    const r = await (async () => {
      const p = this.callNode(masters[idx]!, [args[0]!, nodeCursor.toString(), ...args.slice(2)]);
      this.flushBackendWrites();
      return p;
    })();
    if (!Array.isArray(r)) return r;
    const next = BigInt((r[0] as Buffer).toString('latin1'));
    let out: bigint;
    if (next !== 0n) out = next * 1024n + BigInt(idx);
    else out = idx + 1 < masters.length ? BigInt(idx + 1) : 0n;
    return [Buffer.from(out.toString()), r[1]!];
  }

  // ---- node links ----------------------------------------------------------------------------

  private linkFor(node: string): Link {
    let link = this.links.get(node);
    if (link) return link;
    const sock = this.backend.connectRaw(node);
    link = { node, sock, scanner: new ReplyScanner(), partial: [], pending: [], writes: [], established: false, subCount: 0, shardCount: 0, pubsubAware: false };
    const l = link;
    this.links.set(node, l);
    sock.on('connect', () => { l.established = true; });
    sock.on('secureConnect', () => { l.established = true; });
    sock.on('data', (chunk: Buffer) => this.onNodeData(l, chunk));
    sock.on('drain', () => this.resumeReading());
    sock.on('error', (err: Error) => logger.debug({ client: this.id, node, err: err.message }, 'cluster node link error'));
    sock.on('close', () => this.onLinkClosed(l));
    if (this.authRaw) {
      l.pending.push({ raw: this.authRaw, out: null, discard: true, redirects: 0 });
      this.write(l, this.authRaw);
    }
    return l;
  }

  private write(link: Link, buf: Buffer): void {
    link.writes.push(buf);
    this.dirty.add(link);
  }

  private send(entry: Entry, node: string, asking = false): Link {
    const link = this.linkFor(node);
    if (asking) {
      const a = encodeRequest(['ASKING']);
      link.pending.push({ raw: a, out: null, discard: true, redirects: 0 });
      this.write(link, a);
    }
    link.pending.push(entry);
    this.write(link, entry.raw);
    return link;
  }

  protected override flushBackendWrites(): void {
    if (this.dirty.size === 0) return;
    for (const l of this.dirty) {
      const w = l.writes;
      l.writes = [];
      if (w.length === 0) continue;
      if (!l.sock.write(w.length === 1 ? w[0]! : Buffer.concat(w)) && !this.readPaused) this.socket.pause();
    }
    this.dirty.clear();
  }

  private onLinkClosed(link: Link): void {
    if (this.links.get(link.node) !== link) return;
    this.links.delete(link.node);
    const err = new CommandError(this.unavailableText());
    for (const e of link.pending) {
      if (e.reject) e.reject(err);
      else if (!e.discard && e.out === null) e.out = [encode(new ErrorReply(err.message))];
      else if (e.subscribe && e.out) e.out.push(encode(new ErrorReply(err.message)));
    }
    link.pending = [];
    // A subscribe entry collecting frames is complete now.
    for (const e of this.order) if (e.subscribe) e.subscribe = false;
    this.flushOrder();
    if (this.closed) return;
    if (link.established) {
      // Connection state on that node (AUTH, MULTI, subscriptions, blocked call) is gone: close the client too.
      void this.backend.refreshSlots();
      this.closing = true;
      this.socket.end();
      return;
    }
    void this.backend.refreshSlots();
    this.tryRunBlocked();
    this.maybeFinish();
    this.hold.release();
  }

  // ---- replies -----------------------------------------------------------------------------

  private onNodeData(link: Link, chunk: Buffer): void {
    const ends: number[] = [];
    try {
      link.scanner.scan(chunk, ends);
    } catch (err) {
      logger.error({ client: this.id, err: (err as Error).message }, 'unparseable reply from a cluster node; closing the client');
      this.socket.destroy();
      link.sock.destroy();
      return;
    }
    let pos = 0;
    for (const end of ends) {
      let frame = chunk.subarray(pos, end);
      if (link.partial.length > 0) {
        link.partial.push(frame);
        frame = Buffer.concat(link.partial);
        link.partial = [];
      }
      this.handleFrame(link, frame);
      pos = end;
    }
    if (pos < chunk.length) link.partial.push(chunk.subarray(pos));
    this.flushOrder();
    this.flushBackendWrites();
    if (this.order.length === 0) this.tryRunBlocked();
    this.maybeFinish();
    this.hold.release();
  }

  private handleFrame(link: Link, frame: Buffer): void {
    const head = link.pending[0];
    if (link.pubsubAware) {
      const decoded = decodeFrame(frame).value;
      if (this.isSentinel(decoded)) {
        if (head?.subscribe) {
          link.pending.shift();
          head.subscribe = false;
        }
        return;
      }
      if (Array.isArray(decoded) && decoded.length >= 3 && Buffer.isBuffer(decoded[0])) {
        const kind = decoded[0].toString('latin1');
        if (PUSH_KINDS.has(kind) && (link.subCount + link.shardCount > 0 || !head || head.subscribe)) {
          // After the confirmations still held by a pending (UN)SUBSCRIBE, as Redis orders them.
          if (head?.subscribe) head.out!.push(frame);
          else this.clientWrites.push(frame);
          return;
        }
        if (typeof decoded[2] === 'number') {
          if (SUBSCRIBE_KINDS.has(kind)) link.subCount = decoded[2];
          else if (SHARD_KINDS.has(kind)) link.shardCount = decoded[2];
        }
      }
      if (head?.subscribe) {
        head.out!.push(frame);
        return;
      }
    }
    if (!head) {
      this.clientWrites.push(frame); // unsolicited: pass it on
      return;
    }
    link.pending.shift();
    if (head.discard) return;
    if (frame[0] === 45 && !head.inTx && head.redirects < MAX_REDIRECTS && this.redirect(head, frame)) return;
    if (head.resolve) {
      head.resolve(decodeFrame(frame).value);
      return;
    }
    const hooks = head.hooks;
    if (hooks?.onReply) hooks.onReply(decodeFrame(frame).value);
    head.out = [hooks?.transform ? hooks.transform(frame) : frame];
  }

  /** -MOVED / -ASK: resend where the slot lives. */
  private redirect(entry: Entry, frame: Buffer): boolean {
    const head = frame.toString('latin1', 0, Math.min(frame.length, 128));
    const m = /^-(MOVED|ASK) (\d+) (\S+)\r\n/.exec(head);
    if (!m) return false;
    entry.redirects++;
    const node = m[3]!;
    if (m[1] === 'MOVED') {
      this.backend.noteMoved(Number(m[2]), node);
      this.send(entry, node);
    } else {
      this.send(entry, node, true);
    }
    return true;
  }

  /** Writes the completed head of the request order. */
  private flushOrder(): void {
    while (this.order.length > 0) {
      const h = this.order[0]!;
      if (h.out === null || h.subscribe) break;
      for (const b of h.out) this.clientWrites.push(b);
      this.order.shift();
    }
    this.flushClientWrites();
  }

  protected override pauseBackendReads(): void {
    for (const l of this.links.values()) l.sock.pause();
  }

  protected override resumeBackendReads(): void {
    for (const l of this.links.values()) l.sock.resume();
  }

  // ---- teardown ----------------------------------------------------------------------------

  protected override endBackend(): void {
    for (const l of this.links.values()) l.sock.end();
  }

  protected override destroyBackend(): void {
    for (const l of this.links.values()) {
      for (const e of l.pending) e.reject?.(new CommandError('client connection closed'));
      l.pending = [];
      l.sock.destroy();
    }
    this.links.clear();
    this.order = [];
  }
}

const EMPTY = Buffer.alloc(0);
