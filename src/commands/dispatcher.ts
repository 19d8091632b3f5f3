/**
 * Decides, for each request, whether it is forwarded to the backing Redis untouched, forwarded
 * with hooks (to track connection state or merge LLM entries into the reply), or answered here.
 *
 * Two stages keep the hot path cheap: `needsLocalStage` is a name lookup done for every request;
 * only requests it flags are planned by `plan`, and that runs once every earlier request of the
 * connection has been answered, so the session state it reads (db, MULTI, pub/sub, AUTH) is exact.
 */
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { ErrorReply, OK, type Decoded, type RespValue } from '../protocol/resp.js';
import { parseCommandArgs } from './args.js';
import type { ClientHandle, CommandContext } from './context.js';
import type { Services } from './services.js';
import { commandTable } from './table.js';
import { REDIS_INTERCEPTS } from './redis/index.js';
import { ALWAYS_LOCAL, KEYSPACE_INTERCEPTS, LOCAL_WHEN_OBJECTS, specialKeyPlan, touchesSpecialKey } from './redis/keyspace.js';

const KEYSPACE = new Map(KEYSPACE_INTERCEPTS);

export interface SessionView extends ClientHandle {
  readonly inMulti: boolean;
  /** RESP2 subscribed state: only (P|S)(UN)SUBSCRIBE, PING, QUIT, RESET allowed. */
  readonly pubsubMode: boolean;
  readonly backendUp: boolean;
  /** Set by the standalone AUTH (--requirepass). */
  setAuthenticated(v: boolean): void;
}

export interface ForwardHooks {
  /** Sees each reply of the request, decoded (AUTH, SELECT, MULTI, RESET bookkeeping). */
  onReply?(reply: Decoded): void;
  /** Replaces the reply bytes (COMMAND, INFO, MODULE LIST merging). */
  transform?(frame: Buffer): Buffer;
  /** (P|S)(UN)SUBSCRIBE outside MULTI: an unknown number of replies, ended by a sentinel PING. */
  subscribe?: boolean;
  /** MONITOR: after its reply, the connection is a raw pipe. */
  monitor?: boolean;
}

export type Plan =
  | { kind: 'forward'; args?: Buffer[]; hooks?: ForwardHooks }
  | { kind: 'local'; run(ctx: CommandContext): Promise<RespValue> | RespValue; close?: boolean };

export interface RouterOptions {
  services: Services;
  /** --requirepass in standalone mode. */
  requirePass?: string;
}


/** Names that always go through `plan`. */
const LOCAL_STAGE = new Set(['quit', 'hello', 'command', 'info', 'module']);
/** Forwarded with bookkeeping hooks. */
const HOOKED = new Set(['select', 'auth', 'multi', 'exec', 'discard', 'reset', 'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe', 'monitor']);

export class Router {
  constructor(private readonly opts: RouterOptions) {}

  get services(): Services {
    return this.opts.services;
  }

  /** Hot path: does this request need `plan`? `name` is the lower-cased command name. */
  needsLocalStage(name: string, args: Buffer[], view: SessionView): boolean {
    const services = this.opts.services;
    if (services.mode === 'standalone') return true;
    if (name.length > 4 && name.startsWith('llm.')) return true;
    if (LOCAL_STAGE.has(name)) return true;
    if ((name === 'ping' || name === 'echo') && !view.backendUp) return true;
    if (ALWAYS_LOCAL.has(name)) return true;
    if (LOCAL_WHEN_OBJECTS.has(name) && (services.objects?.countInDb(view.db) ?? 0) > 0) return true;
    return touchesSpecialKey(name, args, view, services);
  }

  /** Hooks for a forwarded request, or undefined for a plain one. */
  hooksFor(name: string, args: Buffer[], view: SessionView & { applyState(s: StateChange): void }): ForwardHooks | undefined {
    if (!HOOKED.has(name)) return undefined;
    switch (name) {
      case 'select': {
        const db = Number(args[1]?.toString('latin1'));
        const before = view.db;
        // Optimistic, so later pipelined requests see the new db; undone if Redis refuses.
        if (args.length === 2 && Number.isInteger(db) && db >= 0) view.applyState({ db });
        return { onReply: (r) => { if (r instanceof ErrorReply) view.applyState({ db: before }); } };
      }
      case 'auth':
        return { onReply: (r) => { if (!(r instanceof ErrorReply)) view.applyState({ authenticated: true }); } };
      case 'multi': {
        // Optimistic, so a pipelined SUBSCRIBE or LLM.* after it is judged inside the transaction.
        const before = view.inMulti;
        view.applyState({ inMulti: true });
        return { onReply: (r) => { if (r instanceof ErrorReply && !r.message.includes('nested')) view.applyState({ inMulti: before }); } };
      }
      case 'exec':
      case 'discard':
        view.applyState({ inMulti: false });
        return { onReply: () => view.applyState({ inMulti: false }) };
      case 'reset':
        return { onReply: () => view.applyState({ reset: true }) };
      case 'monitor':
        return view.inMulti ? undefined : { monitor: true };
      default: // the (P|S)(UN)SUBSCRIBE family
        // Before AUTH the backend answers one NOAUTH and subscribes nothing: no sentinel (its PING
        // would get a second NOAUTH, and the slot waiting for it would hold every later request).
        return view.inMulti || !view.authenticated ? undefined : { subscribe: true };
    }
  }

  /** Plans a request flagged by needsLocalStage. */
  plan(name: string, args: Buffer[], view: SessionView): Plan {
    const services = this.opts.services;
    if (name.startsWith('llm.')) return this.planLlm(name, args, view);
    // Nothing this server answers itself (INFO llm, COMMAND, MODULE, PING while the backend is
    // down, ...) is shown to a client that still owes an AUTH.
    if (!view.authenticated && name !== 'auth' && name !== 'hello' && name !== 'quit') return errorPlan('Authentication required.', 'NOAUTH');
    const intercept = REDIS_INTERCEPTS.get(name);
    if (intercept) {
      const p = intercept(args, view, services, this.opts);
      if (p) return p;
    }
    if (name === 'auth' && services.mode === 'standalone') return this.standaloneAuth(args, view);
    // The keyspace commands see LLM objects; in standalone mode they are the whole keyspace.
    const keyspace = KEYSPACE.get(name);
    if (keyspace) {
      const p = keyspace(args, view, services, this.opts);
      if (p) return p;
    }
    if (services.mode === 'standalone') return errorPlan('no backing Redis: start with --redis <url> or install redis-server');
    if (touchesSpecialKey(name, args, view, services)) return specialKeyPlan(name, args, view, services);
    return { kind: 'forward' };
  }

  private planLlm(name: string, args: Buffer[], view: SessionView): Plan {
    const spec = commandTable.get(name);
    if (view.pubsubMode) {
      return errorPlan(`Can't execute '${name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
    }
    if (!view.authenticated) return errorPlan('Authentication required.', 'NOAUTH');
    if (!spec) return errorPlan(unknownCommandText(args));
    if (view.inMulti) {
      // Sent on so the backing Redis flags the transaction (EXEC then answers EXECABORT, as for
      // any command refused while queueing); the client sees our explanation instead.
      const msg = `-ERR ${spec.name} cannot run inside MULTI: LLM commands are not transactional; run it before MULTI or after EXEC\r\n`;
      return { kind: 'forward', hooks: { transform: () => Buffer.from(msg) } };
    }
    if (this.opts.services.loading) {
      const why = this.opts.services.loadError;
      return errorPlan(why ? `LLM objects are not loaded yet: ${why} (retrying)` : 'LLM objects are being loaded in memory', 'LOADING');
    }
    // A read-only follower changes no LLM object (LLM.RUN checks chat memory itself).
    if (this.opts.services.readOnly && spec.flags.includes('write') && spec.name !== 'LLM.RUN') return errorPlan(READONLY_TEXT, 'READONLY');
    return {
      kind: 'local',
      run: async (ctx) => {
        const parsed = parseCommandArgs(spec, args);
        return spec.handler(ctx, parsed);
      },
    };
  }

  /**
   * Starts a request that may run while earlier ones of its kind from the same connection are in
   * flight (CommandSpec.pipelined), resolving its reply; null when it must take the ordinary path
   * (plan), which then also gives any error. Only LLM commands past every check of planLlm.
   */
  startPipelined(name: string, args: Buffer[], view: SessionView, ctx: CommandContext): Promise<RespValue> | null {
    const spec = commandTable.get(name);
    const services = this.opts.services;
    if (!spec?.pipelined || view.pubsubMode || !view.authenticated || view.inMulti || services.loading) return null;
    if (services.readOnly && spec.flags.includes('write')) return null;
    let started: Promise<RespValue> | null;
    try {
      started = spec.pipelined(ctx, parseCommandArgs(spec, args));
    } catch {
      return null;
    }
    return started && runLocal({ kind: 'local', run: () => started! }, ctx);
  }

  private standaloneAuth(args: Buffer[], view: SessionView): Plan {
    const pass = this.opts.requirePass;
    if (args.length < 2 || args.length > 3) return errorPlan("wrong number of arguments for 'auth' command");
    if (!pass) return errorPlan('AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
    const given = args[args.length - 1].toString('utf8');
    const user = args.length === 3 ? args[1].toString('utf8') : 'default';
    if (user !== 'default' || given !== pass) return errorPlan('invalid username-password pair or user is disabled.', 'WRONGPASS');
    view.setAuthenticated(true);
    return { kind: 'local', run: () => OK };
  }
}

export const READONLY_TEXT = "this instance is read-only (--read-only): change LLM objects on another instance";

export interface StateChange {
  db?: number;
  authenticated?: boolean;
  inMulti?: boolean;
  reset?: boolean;
}

export function errorPlan(message: string, prefix = 'ERR'): Plan {
  return { kind: 'local', run: () => new ErrorReply(message, prefix) };
}

export function unknownCommandText(args: Buffer[]): string {
  const shown = args
    .slice(1)
    .map((a) => `'${a.toString('utf8', 0, 128)}' `)
    .join('');
  return `unknown command '${args[0].toString('utf8', 0, 128)}', with args beginning with: ${shown}`;
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

