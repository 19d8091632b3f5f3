/**
 * The vocabulary shared by the router, every command family and the transport: what a request
 * becomes (a Plan), what a command may read and change of its connection (SessionView), and the
 * error texts more than one family answers. A leaf: it imports only protocol and proxy types.
 */
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { ErrorReply, type Decoded, type Proto, type RespValue } from '../protocol/resp.js';
import type { ForwardHooks } from '../proxy/link.js';
import type { Services } from './services.js';

export type { ForwardHooks };

/** SLOWLOG/COMMANDLOG GETs queued since MULTI: position in EXEC's reply → the count asked for. */
export interface TxLog {
  /** Commands queued since MULTI (the next one's position in EXEC's reply). */
  n: number;
  logGets: Map<number, number>;
  /** LLM.* commands queued here (not sent to the backend): run at EXEC, their replies put at `pos`. */
  queued: Array<{ pos: number; plan: Extract<Plan, { kind: 'local' }> }>;
}

export interface StateChange {
  db?: number;
  authenticated?: boolean;
  inMulti?: boolean;
  /** HELLO 2 / HELLO 3 succeeded. */
  proto?: Proto;
  /** RESET: db 0, no transaction, no subscriptions, authenticated only if no password is needed. */
  reset?: boolean;
  /** The ACL user an accepted AUTH / HELLO AUTH names (AUTH <password> alone: default). */
  user?: string;
}

/** What a command may read and change of the connection it runs on (the transport implements it). */
export interface SessionView {
  readonly id: number;
  /** The client's selected database (tracked from SELECT replies). */
  readonly db: number;
  readonly inMulti: boolean;
  /** The protocol the client speaks: replies made here are encoded in it. */
  readonly proto: Proto;
  /** False until the backing Redis (or --requirepass) accepted this client's AUTH, when auth is required. */
  readonly authenticated: boolean;
  /** RESP2 subscribed state: only (P|S)(UN)SUBSCRIBE, PING, QUIT, RESET allowed. */
  readonly pubsubMode: boolean;
  /** The ACL user the client authenticated as; undefined: never authenticated (Redis's default user). */
  readonly user?: string;
  readonly backendUp: boolean;
  /** The backing store is a Redis Cluster (the connection presents itself as one node). */
  readonly cluster: boolean;
  /** The client's socket addresses (`ip:port`), and the backing Redis's id of its link (null before it has one). */
  readonly addr: string;
  readonly laddr: string;
  readonly backendId: number | null;
  /** Single-node transactions: what EXEC's reply will hold (see transactions.ts). */
  tx: TxLog | null;
  applyState(s: StateChange): void;
  /** The connection ends once the reply being made is written (CLIENT KILL of the caller itself). */
  closeAfterReply(): void;
  /**
   * Sends a command on this client's own backend connection (so its AUTH, ACL user and SELECT
   * apply) and resolves with the decoded reply; on a cluster, to the node of its keys. Rejects
   * with a CommandError when there is no backend.
   */
  backendCall(args: Array<string | Buffer>): Promise<Decoded>;
  /** The same, resolving the reply's bytes (EXEC's reply, spliced with LLM.* replies). */
  backendCallRaw(args: Array<string | Buffer>): Promise<Buffer>;
  /** How many masters the backend has (1 for one Redis). */
  masterCount(): number;
  /** The command on the i-th master (the one Redis when not a cluster). */
  backendCallMaster(index: number, args: Array<string | Buffer>): Promise<Decoded>;
}

/** What a command handler sees: the calling client's connection and the server's services. */
export interface CommandContext {
  client: SessionView;
  services: Services;
}

export type Plan =
  | { kind: 'forward'; args?: Buffer[]; hooks?: ForwardHooks }
  | { kind: 'local'; run(ctx: CommandContext): Promise<RespValue> | RespValue; close?: boolean };

/** The router's answer for one request: sent to the backend now, or planned once earlier requests are answered. */
export type Route = { kind: 'forward'; args?: Buffer[]; hooks?: ForwardHooks } | { kind: 'ordered' };

/**
 * One command family's say on a request (see commands/redis/*): a Plan, or null to fall through
 * to the default (forward, or the standalone error).
 */
export type Intercept = (args: Buffer[], view: SessionView, services: Services, opts: RouterOptions) => Plan | null;

export interface RouterOptions {
  services: Services;
  /** --requirepass in standalone mode. */
  requirePass?: string;
}

export const FORWARD: Plan & Route = Object.freeze({ kind: 'forward' }) as Plan & Route;

export const READONLY_TEXT = 'this instance is read-only (--read-only): change LLM objects on another instance';


export function errorPlan(message: string, prefix = 'ERR'): Plan {
  return { kind: 'local', run: () => new ErrorReply(message, prefix) };
}

export function replyPlan(value: RespValue): Plan {
  return { kind: 'local', run: () => value };
}

export function unknownCommandText(args: Buffer[]): string {
  const shown = args
    .slice(1)
    .map((a) => `'${a.toString('utf8', 0, 128)}' `)
    .join('');
  return `unknown command '${args[0]!.toString('utf8', 0, 128)}', with args beginning with: ${shown}`;
}

/**
 * Inside MULTI nothing may run here at queue time (the reply must be QUEUED and the effect happen
 * at EXEC). A command that involves LLM objects or the storage keys is refused in a way that also
 * makes the backing Redis abort the transaction (EXECABORT): an unknown command is sent in its
 * place and its error replaced by ours.
 */
export function refusedInMultiPlan(cmd: string, why: string): Plan {
  return refusedInMulti(`ERR ${cmd.toUpperCase()} cannot run inside MULTI ${why}; run it before MULTI or after EXEC`);
}

/** The same, with the whole error line given (`ERR ...`, `CROSSSLOT ...`). */
export function refusedInMulti(error: string): Plan {
  const msg = Buffer.from(`-${error}\r\n`);
  return { kind: 'forward', args: [Buffer.from('__llm_server_refused_in_multi__')], hooks: { transform: () => msg } };
}

/** Runs a local plan and turns any failure into an error reply (never a crash). */
export async function runLocal(plan: Extract<Plan, { kind: 'local' }>, ctx: CommandContext): Promise<RespValue> {
  try {
    return await plan.run(ctx);
  } catch (err) {
    if (err instanceof CommandError) return new ErrorReply(err.message, err.prefix);
    logger.error({ err }, 'command failed unexpectedly');
    return new ErrorReply('internal error while running the command (see the server log)');
  }
}
