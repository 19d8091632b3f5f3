/**
 * A client connection's way to the backing store. The client connection (src/server/connection.ts)
 * reads, parses and routes requests; a BackendLink sends the forwarded ones and hands their replies
 * back in request order. Two implementations: SingleLink (one backing Redis: one raw socket per
 * client, replies streamed through) and ClusterLink (a Redis Cluster: one socket per node, requests
 * routed by slot, MOVED/ASK followed, replies reordered).
 */
import type { Decoded } from '../protocol/resp.js';

/** What a command asks of the link for one forwarded request (commands/redis/* decide them). */
export interface ForwardHooks {
  /** Sees each reply of the request, decoded (AUTH, SELECT, MULTI, RESET bookkeeping). */
  onReply?(reply: Decoded): void;
  /** Replaces the reply bytes (COMMAND, INFO, MODULE LIST merging, SLOWLOG filtering). */
  transform?(frame: Buffer): Buffer;
  /** (P|S)(UN)SUBSCRIBE outside MULTI: an unknown number of replies, ended by a sentinel PING. */
  subscribe?: boolean;
  /** SSUBSCRIBE/SUNSUBSCRIBE: on a cluster, sent to the node of the channels' slot. */
  shard?: boolean;
  /** MONITOR: after its reply, the connection is a raw pipe. */
  monitor?: boolean;
  /** SYNC / PSYNC: from this request on, the connection is a raw pipe both ways (the replication stream). */
  replication?: boolean;
  /**
   * A transaction begins (MULTI) or ends (EXEC, DISCARD). A cluster link pins the transaction to
   * one node: MULTI is held until the first keyed command names the node.
   */
  tx?: 'begin' | 'exec' | 'discard';
  /** The request carries credentials (AUTH): once accepted, a cluster link replays them on the client's other nodes. */
  credentials?: Buffer;
  /** HELLO 2|3: once accepted, a cluster link switches the client's other node sockets to that protocol too. */
  protocol?: 2 | 3;
  /** CLIENT REPLY ON|OFF|SKIP: what the client asked (the connection keeps the reply order; see silent). */
  replyMode?: ReplyMode;
  /** The client gets no reply to this request (CLIENT REPLY OFF or SKIP): none is written. */
  silent?: boolean;
}

export type ReplyMode = 'on' | 'off' | 'skip';

/** What the client connection offers its link. */
export interface LinkOwner {
  readonly id: number;
  readonly authenticated: boolean;
  /** A -NOAUTH answered a client taken as authenticated: the backend now wants a password. */
  lostAuth(): void;
  /** A reply for the client, written in request order at the next flush. */
  write(frame: Buffer): void;
  /** Writes what is queued for the client (under its output buffer limit). */
  flushClient(): void;
  /** Replies arrived: go on with what waited for them (the local stage, a pending close, the AUTH hold). */
  repliesArrived(): void;
  /** The backend takes no more for now: stop reading the client (resumed on the link's drain). */
  pauseClient(): void;
  resumeClient(): void;
  /** The link is gone with the client's state on it (AUTH, SELECT, MULTI, subscriptions): end the client after what is written. */
  endClient(): void;
  /** The backend sent what cannot be parsed: drop the client at once. */
  destroyClient(): void;
  /** The error text for a request the backend cannot take (down, or none configured). */
  unavailableText(): string;
}

export interface BackendLink {
  /** Some request sent to the backend is not answered yet. */
  pending(): boolean;
  /** RESP2 subscribed state, as last confirmed by the backend. */
  readonly pubsubMode: boolean;
  /** After MONITOR every request is sent as it is, unrouted (replies and monitor lines interleave). */
  readonly rawPipe: boolean;
  sendRaw(raw: Buffer): void;
  /** Sends a client request; its reply is written in request order. */
  forward(args: Buffer[], raw: Buffer, hooks: ForwardHooks | undefined): void;
  /** An internal call on the client's own link(s) (a cluster routes it by its keys). */
  call(args: Array<string | Buffer>): Promise<Decoded>;
  /** The same, resolving the reply's bytes as the backend sent them. */
  callRaw(args: Array<string | Buffer>): Promise<Buffer>;
  /** How many masters there are (1 for one Redis), and an internal call on the i-th one. */
  masterCount(): number;
  callMaster(index: number, args: Array<string | Buffer>): Promise<Decoded>;
  /** Sends what the requests queued; pauses the client on backpressure. */
  flush(): void;
  /** Backpressure from the client: stop / go on reading replies from the backend. */
  pauseReads(): void;
  resumeReads(): void;
  /** RESET was answered: subscriptions and transaction state are gone. */
  reset(): void;
  /** The backing Redis's id of this client's connection (CLIENT ID), once known; null before (or on a cluster). */
  readonly backendId: number | null;
  /** The client is authenticated now: a link may learn its backend id. */
  authenticatedNow(): void;
  /** A CLIENT REPLY SKIP was used up by a request answered here (never sent): the backend must not skip its next reply. */
  skipConsumedLocally(): void;
  /** The client connection ends after its last reply: end the backend sockets gracefully. */
  end(): void;
  /** The client is gone: destroy the backend sockets and fail internal calls still waiting. */
  destroy(): void;
}
