/**
 * A client's link to a Redis Cluster. The server presents itself to clients as ONE node (no
 * MOVED/ASK ever reaches a client) and routes internally, as a cluster proxy does:
 *
 *  - each request's keys are hashed to their slot (CRC16 with {hash tags}, slots.ts); keys in
 *    different slots answer `-CROSSSLOT` here; keyless commands go to this client's home node (the
 *    first master);
 *  - the client has one raw socket per node, opened on first use (its AUTH replayed on it);
 *  - replies are written in request order whatever node answers first (a BLPOP on one node holds
 *    back later replies, as on one Redis);
 *  - `-MOVED` updates the slot map (and reads CLUSTER SLOTS again) and resends the request to the
 *    new owner; `-ASK` resends it there once, after ASKING;
 *  - a transaction (ForwardHooks.tx) is pinned to one node: MULTI, and keyless commands queued
 *    after it, are held until the first keyed command names the node (or the home node at EXEC);
 *    a command for another slot inside is refused with CROSSSLOT and EXEC then aborts, as Redis
 *    Cluster refuses such a transaction;
 *  - subscriptions (ForwardHooks.subscribe) on the home node (a cluster broadcasts PUBLISH),
 *    shard subscriptions (ForwardHooks.shard) on the node of the channel's slot.
 *
 * What each command means on a cluster (SELECT, MONITOR, fan-out of KEYS/SCAN/DBSIZE...) is
 * decided in commands/redis/*. Replies are framed per socket (ReplyScanner) and written whole:
 * unlike SingleLink, a large reply is buffered until complete.
 */
import type net from 'node:net';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { encodeRequest } from '../protocol/request-parser.js';
import { commandName } from '../protocol/command-name.js';
import { PUSH, ReplyScanner } from '../protocol/reply-scanner.js';
import { decodeFrame, encode, ErrorReply, SimpleString, OK, type Decoded, type RespValue } from '../protocol/resp.js';
import { PUSH_KINDS, SHARD_KINDS, SUBSCRIBE_KINDS } from '../protocol/pubsub.js';
import type { Backend } from './backend.js';
import type { BackendLink, ForwardHooks, LinkOwner } from './link.js';
import { isSentinelReply, newSentinel } from './sentinel.js';
import { withoutInternalKeys } from './invalidations.js';
import { commandKeys, slotOfKeys } from './slots.js';

export const CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot";
const MAX_REDIRECTS = 5;

interface Entry {
  /** The request, for a resend after MOVED/ASK. */
  raw: Buffer;
  /** Reply bytes once complete (client-visible entries). */
  out: Buffer[] | null;
  hooks?: ForwardHooks;
  /** Internal call: resolved with the decoded reply (or its bytes: `rawReply`), not written. */
  resolve?: (v: Decoded) => void;
  rawReply?: boolean;
  reject?: (e: Error) => void;
  /** Internal request whose reply is dropped (ASKING, replayed AUTH, MULTI sent late). */
  discard?: boolean;
  /** (P|S)(UN)SUBSCRIBE: frames collected until the sentinel PING answers. */
  subscribe?: boolean;
  /** Sent inside MULTI: redirections are not followed (the client sees them, EXEC aborts). */
  inTx?: boolean;
  /** CLIENT REPLY OFF/SKIP: answered by the node, but not written to the client. */
  silent?: boolean;
  redirects: number;
}

interface NodeSocket {
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

const EMPTY = Buffer.alloc(0);
const RESET = encodeRequest(['RESET']);

export class ClusterLink implements BackendLink {
  private readonly nodes = new Map<string, NodeSocket>();
  private dirty = new Set<NodeSocket>();
  /** Client-visible requests in order; written as the head completes. */
  private order: Entry[] = [];
  /** AUTH to replay on every new node socket, once the client authenticated. */
  private authRaw: Buffer | null = null;
  /** HELLO 3 to send on every new node socket, once the client switched to RESP3. */
  private helloRaw: Buffer | null = null;
  /** A transaction is open (MULTI was answered). */
  private inTx = false;
  /** MULTI: the pinned node and slot, and what waits to be sent until the node is known. */
  private txNode: string | null = null;
  private txSlot = -1;
  private txHeld: Buffer[] = [];
  private home: string | null = null;
  private readonly sentinel = newSentinel();

  constructor(private readonly owner: LinkOwner, private readonly backend: Backend) {}

  get pubsubMode(): boolean {
    for (const l of this.nodes.values()) if (l.subCount + l.shardCount > 0) return true;
    return false;
  }

  /** MONITOR is refused on a cluster (commands/redis/pubsub.ts). */
  readonly rawPipe = false;

  sendRaw(): void {}

  pending(): boolean {
    return this.order.length > 0;
  }

  /** A client has one connection per node: no one backend id (CLIENT LIST is not rewritten on a cluster). */
  readonly backendId = null;
  authenticatedNow(): void {}

  /** CLIENT REPLY is kept here, not sent to the nodes (each node would need it): nothing to undo. */
  skipConsumedLocally(): void {}

  /** RESET was answered by the home node: the client's other node sockets are reset too. */
  reset(): void {
    this.inTx = false;
    this.txNode = null;
    this.txHeld = [];
    this.authRaw = null;
    this.helloRaw = null;
    const home = this.home;
    for (const l of this.nodes.values()) if (l.node !== home) this.send({ raw: RESET, out: null, discard: true, redirects: 0 }, l.node);
    this.flush();
  }

  call(args: Array<string | Buffer>): Promise<Decoded> {
    const bufs = args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a));
    return new Promise((resolve, reject) => {
      if (!this.backend.up) {
        reject(new CommandError(this.owner.unavailableText()));
        return;
      }
      const node = this.nodeFor(commandName(bufs[0]!), bufs);
      if (node === null) {
        resolve(new ErrorReply(CROSSSLOT.slice(10), 'CROSSSLOT'));
        return;
      }
      this.send({ raw: encodeRequest(bufs), out: null, resolve, reject, redirects: 0 }, node);
      this.flush();
    });
  }

  callRaw(args: Array<string | Buffer>): Promise<Buffer> {
    const bufs = args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a));
    return new Promise((resolve, reject) => {
      const node = this.backend.up ? this.nodeFor(commandName(bufs[0]!), bufs) : null;
      if (node === null) {
        reject(new CommandError(this.backend.up ? CROSSSLOT.slice(10) : this.owner.unavailableText()));
        return;
      }
      const entry: Entry = { raw: encodeRequest(bufs), out: null, resolve: resolve as (v: Decoded) => void, reject, rawReply: true, redirects: 0 };
      this.send(entry, node);
      this.flush();
    });
  }

  masterCount(): number {
    return this.backend.masters().length;
  }

  /** A call on one master, whatever its keys (redirections are not followed). */
  callMaster(index: number, args: Array<string | Buffer>): Promise<Decoded> {
    return new Promise((resolve, reject) => {
      const node = this.backend.masters()[index];
      if (!this.backend.up || node === undefined) {
        reject(new CommandError(this.owner.unavailableText()));
        return;
      }
      this.send({ raw: encodeRequest(args), out: null, resolve, reject, redirects: MAX_REDIRECTS }, node);
      this.flush();
    });
  }

  // ---- requests ----------------------------------------------------------------------------

  /** A reply computed here, kept in request order. */
  private reply(v: RespValue): void {
    this.order.push({ raw: EMPTY, out: [encode(v)], redirects: 0 });
    this.flushOrder();
  }

  forward(args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): void {
    if (!this.backend.up) {
      this.reply(new ErrorReply(this.owner.unavailableText()));
      return;
    }
    if (hooks?.replyMode !== undefined) {
      // CLIENT REPLY ON|OFF|SKIP: not sent (the client's requests go to several nodes); the
      // connection marks the requests that get no reply (silent) and their replies are dropped.
      if (!hooks.silent) this.reply(OK);
      return;
    }
    if (hooks?.tx) {
      this.transaction(hooks.tx, raw);
      return;
    }
    if (hooks?.subscribe) {
      let node = this.homeNode();
      if (hooks.shard) {
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
    if (hooks?.credentials || hooks?.protocol) hooks = this.sessionHooks(hooks);
    const name = commandName(args[0]!);
    const slot = slotOfKeys(commandKeys(name, args, this.backend.keyRange(name)));
    if (this.inTx) {
      if (slot === -2 || (slot >= 0 && this.txSlot >= 0 && slot !== this.txSlot)) {
        this.refuseInTx(CROSSSLOT);
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

  /** MULTI is held (answered +OK here) until the transaction's node is known; EXEC/DISCARD go there. */
  private transaction(op: 'begin' | 'exec' | 'discard', raw: Buffer): void {
    if (op === 'begin') {
      this.inTx = true;
      this.txNode = null;
      this.txSlot = -1;
      this.txHeld = [raw];
      this.reply(OK);
      return;
    }
    this.inTx = false;
    if (this.txNode === null && op === 'discard') {
      this.txHeld = [];
      this.reply(OK);
      return;
    }
    const node = this.pinTx(this.txNode ?? this.homeNode(), -1);
    this.txNode = null;
    this.sendOrdered(raw, node, undefined, true);
  }

  /** Pins the transaction to `node`: sends MULTI and what was queued before it. Returns the pinned node. */
  private pinTx(node: string, slot: number): string {
    if (this.txNode === null) {
      this.txNode = node;
      this.txSlot = slot;
      for (const held of this.txHeld) this.send({ raw: held, out: null, discard: true, inTx: true, redirects: 0 }, node);
      this.txHeld = [];
    }
    return this.txNode;
  }

  /** Refused at queue time; the node's unknown-command error flags the transaction so EXEC aborts. */
  private refuseInTx(error: string): void {
    const node = this.pinTx(this.txNode ?? this.homeNode(), -1);
    const msg = Buffer.from(`-${error}\r\n`);
    this.sendOrdered(encodeRequest(['__llm_server_refused_in_multi__']), node, { transform: () => msg }, true);
  }

  /** A client-visible request sent to `node`. */
  private sendOrdered(raw: Buffer, node: string, hooks: ForwardHooks | undefined, inTx = false): void {
    const e: Entry = { raw, out: null, hooks, inTx, redirects: 0, silent: hooks?.silent };
    this.order.push(e);
    this.send(e, node);
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

  /**
   * Credentials (AUTH) accepted by the home node are given to the client's other node sockets, and
   * to every one opened later. The protocol (HELLO 2|3) is switched on them at once, in request
   * order, so the replies of requests pipelined after HELLO come in the protocol asked for whatever
   * node answers them.
   */
  private sessionHooks(hooks: ForwardHooks): ForwardHooks {
    const node = this.homeNode();
    if (hooks.protocol) {
      const hello = encodeRequest(['HELLO', String(hooks.protocol)]);
      this.helloRaw = hooks.protocol === 3 ? hello : null;
      this.replay(hello, node);
    }
    if (!hooks.credentials) return hooks;
    const credentials = hooks.credentials;
    return {
      ...hooks,
      onReply: (r) => {
        hooks.onReply?.(r);
        if (r instanceof ErrorReply) return;
        this.authRaw = credentials;
        this.replay(credentials, node);
      },
    };
  }

  /** Sends `raw` on every node socket but `from`'s, its replies dropped. */
  private replay(raw: Buffer, from: string): void {
    for (const l of this.nodes.values()) if (l.node !== from) this.send({ raw, out: null, discard: true, redirects: 0 }, l.node);
    this.flush();
  }

  // ---- node sockets ------------------------------------------------------------------------

  private socketFor(node: string): NodeSocket {
    let link = this.nodes.get(node);
    if (link) return link;
    const sock = this.backend.connectRaw(node);
    link = { node, sock, scanner: new ReplyScanner(), partial: [], pending: [], writes: [], established: false, subCount: 0, shardCount: 0, pubsubAware: false };
    const l = link;
    this.nodes.set(node, l);
    sock.on('connect', () => { l.established = true; });
    sock.on('secureConnect', () => { l.established = true; });
    sock.on('data', (chunk: Buffer) => this.onNodeData(l, chunk));
    sock.on('drain', () => this.owner.resumeClient());
    sock.on('error', (err: Error) => logger.debug({ client: this.owner.id, node, err: err.message }, 'cluster node link error'));
    sock.on('close', () => this.onNodeClosed(l));
    for (const raw of [this.authRaw, this.helloRaw]) {
      if (!raw) continue;
      l.pending.push({ raw, out: null, discard: true, redirects: 0 });
      this.write(l, raw);
    }
    return l;
  }

  private write(link: NodeSocket, buf: Buffer): void {
    link.writes.push(buf);
    this.dirty.add(link);
  }

  private send(entry: Entry, node: string, asking = false): NodeSocket {
    const link = this.socketFor(node);
    if (asking) {
      const a = encodeRequest(['ASKING']);
      link.pending.push({ raw: a, out: null, discard: true, redirects: 0 });
      this.write(link, a);
    }
    link.pending.push(entry);
    this.write(link, entry.raw);
    return link;
  }

  flush(): void {
    if (this.dirty.size === 0) return;
    for (const l of this.dirty) {
      const w = l.writes;
      l.writes = [];
      if (w.length === 0) continue;
      if (!l.sock.write(w.length === 1 ? w[0]! : Buffer.concat(w))) this.owner.pauseClient();
    }
    this.dirty.clear();
  }

  private onNodeClosed(link: NodeSocket): void {
    if (this.nodes.get(link.node) !== link) return;
    this.nodes.delete(link.node);
    const err = new CommandError(this.owner.unavailableText());
    for (const e of link.pending) {
      if (e.reject) e.reject(err);
      else if (!e.discard && e.out === null) e.out = [encode(new ErrorReply(err.message))];
      else if (e.subscribe && e.out) e.out.push(encode(new ErrorReply(err.message)));
    }
    link.pending = [];
    // A subscribe entry collecting frames is complete now.
    for (const e of this.order) if (e.subscribe) e.subscribe = false;
    this.flushOrder();
    void this.backend.refreshSlots();
    if (link.established) {
      // Connection state on that node (AUTH, MULTI, subscriptions, blocked call) is gone: close the client too.
      this.owner.endClient();
      return;
    }
    this.owner.repliesArrived();
  }

  pauseReads(): void {
    for (const l of this.nodes.values()) l.sock.pause();
  }

  resumeReads(): void {
    for (const l of this.nodes.values()) l.sock.resume();
  }

  end(): void {
    for (const l of this.nodes.values()) l.sock.end();
  }

  destroy(): void {
    for (const l of this.nodes.values()) {
      for (const e of l.pending) e.reject?.(new CommandError('client connection closed'));
      l.pending = [];
      l.sock.destroy();
    }
    this.nodes.clear();
    this.order = [];
  }

  // ---- replies -----------------------------------------------------------------------------

  private onNodeData(link: NodeSocket, chunk: Buffer): void {
    const ends: number[] = [];
    const types: number[] = [];
    try {
      link.scanner.scan(chunk, ends, types);
    } catch (err) {
      logger.error({ client: this.owner.id, err: (err as Error).message }, 'unparseable reply from a cluster node; closing the client');
      this.owner.destroyClient();
      link.sock.destroy();
      return;
    }
    let pos = 0;
    for (let i = 0; i < ends.length; i++) {
      const end = ends[i]!;
      let frame = chunk.subarray(pos, end);
      if (link.partial.length > 0) {
        link.partial.push(frame);
        frame = Buffer.concat(link.partial);
        link.partial = [];
      }
      if (types[i] === PUSH) this.onPush(link, frame);
      else this.handleFrame(link, frame);
      pos = end;
    }
    if (pos < chunk.length) link.partial.push(chunk.subarray(pos));
    this.flushOrder();
    this.flush();
    this.owner.repliesArrived();
  }

  /** A RESP3 push: out of band, written at once (subscription counts kept, storage keys dropped). */
  private onPush(link: NodeSocket, frame: Buffer): void {
    const decoded = decodeFrame(frame).value;
    if (Array.isArray(decoded) && decoded.length >= 3 && Buffer.isBuffer(decoded[0]) && typeof decoded[2] === 'number') {
      const kind = decoded[0].toString('latin1');
      if (SUBSCRIBE_KINDS.has(kind)) link.subCount = decoded[2];
      else if (SHARD_KINDS.has(kind)) link.shardCount = decoded[2];
    }
    const relayed = withoutInternalKeys(frame);
    if (relayed) this.owner.write(relayed);
  }

  private handleFrame(link: NodeSocket, frame: Buffer): void {
    const head = link.pending[0];
    if (link.pubsubAware) {
      const decoded = decodeFrame(frame).value;
      if (isSentinelReply(decoded, this.sentinel)) {
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
          const relayed = kind === 'message' ? withoutInternalKeys(frame) : frame;
          if (!relayed) return;
          if (head?.subscribe) head.out!.push(relayed);
          else this.owner.write(relayed);
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
      this.owner.write(frame); // unsolicited: pass it on
      return;
    }
    link.pending.shift();
    if (head.discard) return;
    if (frame[0] === 45 && !head.inTx && head.redirects < MAX_REDIRECTS && this.redirect(head, frame)) return;
    if (head.resolve) {
      head.resolve(head.rawReply ? (Buffer.from(frame) as unknown as Decoded) : decodeFrame(frame).value);
      return;
    }
    const hooks = head.hooks;
    if (hooks?.onReply) hooks.onReply(decodeFrame(frame).value);
    head.out = head.silent ? [] : [hooks?.transform ? hooks.transform(frame) : frame];
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
      for (const b of h.out) this.owner.write(b);
      this.order.shift();
    }
    this.owner.flushClient();
  }
}
