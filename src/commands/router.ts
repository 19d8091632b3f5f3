/**
 * The router: for each request, what it becomes. The transport (src/server/connection.ts) asks
 * `route` once per request, in request order:
 *
 *  - `forward` (the hot path): sent to the backing store at once, untouched, or with hooks that
 *    track connection state or rewrite the reply (decided by the command's family, redis/*.ts);
 *  - `ordered`: the request is planned (`plan`) once every earlier request of the connection has
 *    been answered, so the state it reads (db, MULTI, pub/sub, AUTH) is exact: LLM.* commands
 *    (llm/*.ts, declared once each in table.ts), commands answered or merged here (COMMAND, INFO,
 *    ...), and ordinary commands that touch an LLM object or a storage key.
 *
 * `startPipelined` lets an ordered LLM command that can (LLM.ADD with a vector) start while earlier
 * ones of its kind are in flight; `intake` is what the transport must know as soon as a request is
 * parsed (QUIT, an HTTP request line, the pre-AUTH parsing hold).
 */
import { ErrorReply, SimpleString, type RespValue } from '../protocol/resp.js';
import { CommandError } from '../errors.js';
import { parseCommandArgs } from './args.js';
import {
  errorPlan,
  FORWARD,
  READONLY_TEXT,
  refusedInMulti,
  runLocal,
  unknownCommandText,
  type CommandContext,
  type Plan,
  type Route,
  type RouterOptions,
  type SessionView,
} from './plan.js';
import type { Services } from './services.js';
import type { CommandSpec, ParsedArgs } from './spec.js';
import { commandTable } from './table.js';
import { checkCommand, checkKeys, keysAllowedCached, type KeyAccess } from './acl.js';
import { ALWAYS_PLANNED, intakeOf, NEEDS_BACKEND, noteForwarded, PLANNED_WITH_OBJECTS, REDIS_COMMANDS, specialKeyPlan, touchesSpecialKey, type Intake } from './redis/index.js';

const ORDERED: Route = Object.freeze({ kind: 'ordered' });
const QUEUED = new SimpleString('QUEUED');
/** Ordinary commands answered here for LLM objects, checked against the client's ACL user (acl.ts). */
const ACL_CHECKED = new Set(['type', 'exists', 'del', 'unlink', 'rename', 'renamenx', 'flushdb', 'flushall', 'swapdb', 'dbsize',
  'expire', 'pexpire', 'expireat', 'pexpireat', 'ttl', 'pttl', 'expiretime', 'pexpiretime', 'persist', 'dump', 'restore', 'copy']);
const NO_BACKEND_TEXT = 'no backing Redis: start with --redis <url> or install redis-server';

export class Router {
  constructor(private readonly opts: RouterOptions) {}

  get services(): Services {
    return this.opts.services;
  }

  /** As soon as a request is parsed, before it runs (see redis/connection.ts). */
  intake(a0: Buffer, authenticated: boolean, authRequired: boolean): Intake {
    return intakeOf(a0, authenticated, authRequired);
  }

  /** Every request, in order. `name` is the lower-cased command name. */
  route(name: string, args: Buffer[], view: SessionView): Route {
    const services = this.opts.services;
    // ACL SETUSER / DELUSER / LOAD ...: the cached LLM.* key permissions may be stale.
    if (name === 'acl') services.aclCache?.clear();
    if (services.mode === 'standalone') return ORDERED;
    if (name.length > 4 && name.startsWith('llm.')) return ORDERED;
    if (ALWAYS_PLANNED.has(name)) return ORDERED;
    const objectAware = PLANNED_WITH_OBJECTS.has(name);
    if (objectAware && (services.objects?.countInDb(view.db) ?? 0) > 0) return ORDERED;
    if (touchesSpecialKey(name, args, view, services)) return ORDERED;
    // TYPE, EXISTS, DEL... in a db without LLM objects are Redis's own.
    const family = objectAware ? undefined : REDIS_COMMANDS.get(name);
    if (family === undefined) {
      if (view.tx !== null) noteForwarded(name, view);
      return FORWARD;
    }
    // A family answers a forwarded request at once (with its side effects on the view), or asks
    // for it to be planned: then it is asked again by `plan`, in order.
    const p = family(args, view, services, this.opts) ?? FORWARD;
    if (p.kind === 'local') return ORDERED;
    noteForwarded(name, view);
    return p;
  }

  /** Plans a request `route` answered `ordered` for, once every earlier request is answered. */
  plan(name: string, args: Buffer[], view: SessionView): Plan {
    const services = this.opts.services;
    if (name.startsWith('llm.')) return this.planLlm(name, args, view);
    // Nothing this server answers itself (INFO llm, COMMAND, MODULE, PING while the backend is
    // down, ...) is shown to a client that still owes an AUTH.
    if (!view.authenticated && name !== 'auth' && name !== 'hello' && name !== 'quit') return errorPlan('Authentication required.', 'NOAUTH');
    const family = REDIS_COMMANDS.get(name);
    if (services.mode === 'standalone') {
      // The keyspace holds only LLM objects, and the connection family is answered here.
      const p = family && !NEEDS_BACKEND.has(name) ? family(args, view, services, this.opts) : null;
      return p?.kind === 'local' ? p : errorPlan(NO_BACKEND_TEXT);
    }
    if (family) {
      const p = family(args, view, services, this.opts);
      // Answered here for LLM objects: the client's ACL user must be allowed the command as sent.
      if (p?.kind === 'local' && ACL_CHECKED.has(name)) {
        const run = p.run;
        return { ...p, run: async (ctx) => (await checkCommand(ctx, args), run(ctx)) };
      }
      if (p) return this.forwarded(name, p, view);
    }
    if (touchesSpecialKey(name, args, view, services)) return specialKeyPlan(name, args, view, services);
    return this.forwarded(name, FORWARD, view);
  }

  private forwarded(name: string, p: Plan, view: SessionView): Plan {
    if (p.kind === 'forward') noteForwarded(name, view);
    return p;
  }

  private planLlm(name: string, args: Buffer[], view: SessionView): Plan {
    const spec = commandTable.get(name);
    if (view.pubsubMode) {
      return errorPlan(`Can't execute '${name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
    }
    if (!view.authenticated) return errorPlan('Authentication required.', 'NOAUTH');
    if (!spec) return errorPlan(unknownCommandText(args));
    if (view.inMulti) return this.queueLlm(name, spec, args, view);
    const refusal = this.llmRefusal(spec);
    if (refusal) return errorPlan(refusal.message, refusal.prefix);
    return {
      kind: 'local',
      run: async (ctx) => {
        const parsed = parseCommandArgs(spec, args);
        await checkKeys(ctx, keyAccess(spec, parsed.key));
        return spec.handler(ctx, parsed);
      },
    };
  }

  /**
   * An LLM command inside MULTI, as the original module's: queued (+QUEUED), run at EXEC in its
   * place (redis/transactions.ts); one that calls an LLM answers the original's "Blocking module
   * command" error in its slot. A request refused while queueing (arity, syntax, loading, read-only)
   * also makes the backing Redis abort the transaction (EXECABORT), as Redis does. On a cluster LLM
   * commands are refused inside MULTI (the transaction runs on one node, pinned by the link).
   */
  /** Why no LLM command may run now: objects still loading, or a write on a read-only follower. */
  private llmRefusal(spec: CommandSpec): CommandError | null {
    const services = this.opts.services;
    if (services.loading) {
      const why = services.loadError;
      return new CommandError(why ? `LLM objects are not loaded yet: ${why} (retrying)` : 'LLM objects are being loaded in memory', 'LOADING');
    }
    // A read-only follower changes no LLM object (LLM.RUN checks chat memory itself).
    if (services.readOnly && spec.flags.includes('write') && spec.name !== 'LLM.RUN') return new CommandError(READONLY_TEXT, 'READONLY');
    return null;
  }

  private queueLlm(name: string, spec: CommandSpec, args: Buffer[], view: SessionView): Plan {
    const tx = view.tx;
    if (view.cluster || !tx) {
      return this.forwarded(name, refusedInMulti(`ERR ${spec.name} cannot run inside MULTI on a Redis Cluster backend: run it before MULTI or after EXEC`), view);
    }
    let parsed: ParsedArgs;
    try {
      const refusal = this.llmRefusal(spec);
      if (refusal) throw refusal;
      parsed = parseCommandArgs(spec, args);
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      return this.forwarded(name, refusedInMulti(`${e.prefix} ${e.message}`), view);
    }
    const blocking = spec.callsLlm?.(parsed) ?? false;
    tx.queued.push({
      pos: tx.n++,
      plan: {
        kind: 'local',
        run: async (ctx) => {
          if (blocking) return new ErrorReply('Blocking module command called from transaction');
          await checkKeys(ctx, keyAccess(spec, parsed.key));
          return spec.handler(ctx, parsed);
        },
      },
    });
    return { kind: 'local', run: () => QUEUED };
  }

  /**
   * Starts a request that may run while earlier ones of its kind from the same connection are in
   * flight (CommandSpec.pipelined), resolving its reply; null when it must take the ordinary path
   * (plan), which then also gives any error. Only LLM commands past every check of planLlm.
   */
  startPipelined(name: string, args: Buffer[], view: SessionView, ctx: CommandContext, writesInFlight = false): Pipelined | null {
    const spec = commandTable.get(name);
    const services = this.opts.services;
    if (!spec?.pipelined || view.pubsubMode || !view.authenticated || view.inMulti || services.loading) return null;
    if (services.readOnly && spec.flags.includes('write')) return null;
    let started: ReturnType<NonNullable<typeof spec.pipelined>>;
    try {
      const parsed = parseCommandArgs(spec, args);
      // Only with the key permission already known: asking the backing Redis takes the ordinary path.
      if (!keysAllowedCached(ctx, keyAccess(spec, parsed.key))) return null;
      started = spec.pipelined(ctx, parsed, writesInFlight);
    } catch {
      return null;
    }
    return started && { reply: runLocal({ kind: 'local', run: () => started! }, ctx), write: spec.flags.includes('write') };
  }
}

/** A request started in a connection's pipeline: its reply, and whether later reads must wait for it. */
export interface Pipelined {
  reply: Promise<RespValue>;
  write: boolean;
}

/** What an LLM command needs of its key, as its key spec says (RW: both). */
function keyAccess(spec: CommandSpec, key: Buffer): Array<{ key: Buffer; access: KeyAccess }> {
  const a = spec.keySpec.access;
  if (a === 'RO') return [{ key, access: 'read' }];
  if (a === 'OW') return [{ key, access: 'write' }];
  return [{ key, access: 'read' }, { key, access: 'write' }];
}
