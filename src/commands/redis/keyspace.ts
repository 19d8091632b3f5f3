/**
 * LLM objects are keys: TYPE, EXISTS, DEL, UNLINK, RENAME, RENAMENX, KEYS, SCAN, FLUSHDB and
 * FLUSHALL see them next to the backing Redis's keys; the server's own storage keys
 * (`__llm__:` prefix) never show up and cannot be touched by clients.
 */
import { CommandError, wrongTypeError } from '../../errors.js';
import { ErrorReply, SimpleString, OK, type Decoded, type RespValue } from '../../protocol/resp.js';
import { isInternalKey } from '../../storage/index.js';
import { TYPE_NAMES } from '../../objects/objects.js';
import type { ObjectManager } from '../../objects/manager.js';
import type { CommandContext } from '../context.js';
import { errorPlan, type Plan, type SessionView } from '../dispatcher.js';
import type { Services } from '../services.js';
import { globToRegExp } from './command.js';
import type { Intercept } from './index.js';

export const RESERVED_KEY_ERROR = "keys with the '__llm__:' prefix are reserved for redis-llm-server's own storage";

const name = (b: Buffer) => b.toString('utf8');

function toReply(d: Decoded): RespValue {
  if (d instanceof ErrorReply) throw new CommandError(d.message, d.prefix);
  return d as RespValue;
}

function local(run: (ctx: CommandContext, objects: ObjectManager) => Promise<RespValue> | RespValue): Plan {
  return {
    kind: 'local',
    run: (ctx) => {
      const objects = ctx.services.objects;
      if (!objects) throw new CommandError('LLM objects are being loaded in memory', 'LOADING');
      return run(ctx, objects);
    },
  };
}

/** Splits keys into LLM objects and the rest; refuses reserved keys. */
function partition(objects: ObjectManager, db: number, keys: Buffer[]): { ours: string[]; theirs: Buffer[] } {
  const ours: string[] = [];
  const theirs: Buffer[] = [];
  for (const k of keys) {
    if (isInternalKey(k)) throw new CommandError(RESERVED_KEY_ERROR);
    if (objects.get(db, name(k))) ours.push(name(k));
    else theirs.push(k);
  }
  return { ours, theirs };
}

const type: Intercept = (args) => {
  if (args.length !== 2) return null;
  return local(async (ctx, objects) => {
    const obj = objects.get(ctx.client.db, name(args[1]));
    if (obj) return new SimpleString(TYPE_NAMES[obj.kind]);
    return toReply(await ctx.client.backendCall(args));
  });
};

const countKeys = (deleting: boolean): Intercept => (args) => {
  if (args.length < 2) return null;
  return local(async (ctx, objects) => {
    const { ours, theirs } = partition(objects, ctx.client.db, args.slice(1));
    let n = 0;
    for (const k of ours) {
      if (!deleting) n++;
      else if (await objects.remove(ctx.client.db, k)) n++;
    }
    if (theirs.length > 0) {
      const r = toReply(await ctx.client.backendCall([args[0], ...theirs]));
      n += Number(r);
    }
    return n;
  });
};

const rename = (nx: boolean): Intercept => (args) => {
  if (args.length !== 3) return null;
  return local(async (ctx, objects) => {
    const db = ctx.client.db;
    const [src, dst] = [args[1], args[2]];
    if (isInternalKey(src) || isInternalKey(dst)) throw new CommandError(RESERVED_KEY_ERROR);
    const srcObj = objects.get(db, name(src));
    const dstObj = objects.get(db, name(dst));
    if (!srcObj) {
      // An ordinary key onto an LLM object: Redis semantics (RENAME overwrites, RENAMENX refuses).
      if (dstObj && nx) {
        const exists = toReply(await ctx.client.backendCall(['EXISTS', src]));
        if (exists === 0) throw new CommandError('no such key');
        return 0;
      }
      const r = toReply(await ctx.client.backendCall(args));
      if (dstObj && !(r instanceof ErrorReply)) await objects.remove(db, name(dst));
      return r;
    }
    if (name(src) === name(dst)) return nx ? 0 : OK;
    const dstOrdinary = !dstObj && toReply(await ctx.client.backendCall(['EXISTS', dst])) === 1;
    if (nx && (dstObj || dstOrdinary)) return 0;
    if (dstOrdinary) toReply(await ctx.client.backendCall(['UNLINK', dst]));
    await objects.rename(db, name(src), name(dst));
    return nx ? 1 : OK;
  });
};

function filterInternal(keys: Decoded): Buffer[] {
  return (keys as Buffer[]).filter((k) => !isInternalKey(k));
}

const keys: Intercept = (args) => {
  if (args.length !== 2) return null;
  return local(async (ctx, objects) => {
    const re = globToRegExp(name(args[1]));
    const out: RespValue[] = filterInternal(toReply(await ctx.client.backendCall(args)) as Decoded);
    for (const o of objects.inDb(ctx.client.db)) if (re.test(o.name)) out.push(o.name);
    return out;
  });
};

/** SCAN: the backend's page without storage keys; LLM objects are listed on the first page (cursor 0). */
const scan: Intercept = (args) => {
  if (args.length < 2) return null;
  let match: RegExp | null = null;
  let typeFilter: string | null = null;
  for (let i = 2; i + 1 < args.length; i += 2) {
    const opt = args[i].toString('latin1').toLowerCase();
    if (opt === 'match') match = globToRegExp(name(args[i + 1]));
    if (opt === 'type') typeFilter = name(args[i + 1]).toLowerCase();
  }
  const ourTypes = Object.values(TYPE_NAMES) as string[];
  return local(async (ctx, objects) => {
    const first = args[1].toString('latin1') === '0';
    const mine = (): string[] => {
      if (!first) return [];
      return [...objects.inDb(ctx.client.db)]
        .filter((o) => (!match || match.test(o.name)) && (!typeFilter || TYPE_NAMES[o.kind] === typeFilter))
        .map((o) => o.name);
    };
    if (typeFilter && ourTypes.includes(typeFilter)) return ['0', mine()];
    const r = toReply(await ctx.client.backendCall(args)) as RespValue[];
    const page = filterInternal(r[1] as Decoded) as RespValue[];
    return [r[0], [...page, ...mine()]];
  });
};

const flush = (all: boolean): Intercept => (args, _view, services) =>
  local(async (ctx, objects) => {
    const db = ctx.client.db;
    const r = toReply(await ctx.client.backendCall(args));
    await objects.removeAll(all ? undefined : db);
    // FLUSHDB of the db holding the storage keys wiped the storage of objects in other dbs: rewrite it.
    if (!all && db === services.storageDb && objects.size > 0) await objects.persistAll();
    return r;
  });

export const KEYSPACE_INTERCEPTS: Array<[string, Intercept]> = [
  ['type', type],
  ['exists', countKeys(false)],
  ['del', countKeys(true)],
  ['unlink', countKeys(true)],
  ['rename', rename(false)],
  ['renamenx', rename(true)],
  ['keys', keys],
  ['scan', scan],
  ['flushdb', flush(false)],
  ['flushall', flush(true)],
];

/** Commands that always take the local stage in proxy mode (storage keys must be hidden or kept). */
export const ALWAYS_LOCAL = new Set(['keys', 'scan', 'flushdb', 'flushall']);
/** Commands that take the local stage when the client's db has LLM objects. */
export const LOCAL_WHEN_OBJECTS = new Set(['type', 'exists', 'del', 'unlink', 'rename', 'renamenx']);

/**
 * Does this ordinary command touch an LLM object or a reserved key? Checked on the hot path,
 * so it only walks the command's key range and does a map lookup per key.
 */
export function touchesSpecialKey(cmd: string, args: Buffer[], view: SessionView, services: Services): boolean {
  const range = services.keyRange(cmd);
  if (!range) return false;
  const objects = services.objects;
  const checkObjects = !!objects && objects.countInDb(view.db) > 0;
  const last = range.last < 0 ? args.length + range.last : Math.min(range.last, args.length - 1);
  for (let i = range.first; i <= last; i += range.step || 1) {
    const k = args[i];
    if (k === undefined) break;
    if (k.length >= 8 && k[0] === 95 && k[1] === 95 && isInternalKey(k)) return true;
    if (checkObjects && objects!.get(view.db, name(k))) return true;
  }
  return false;
}

/** The reply for an ordinary command that touches an LLM object or a reserved key. */
export function specialKeyPlan(cmd: string, args: Buffer[], view: SessionView, services: Services): Plan {
  const range = services.keyRange(cmd);
  const last = range ? (range.last < 0 ? args.length + range.last : Math.min(range.last, args.length - 1)) : 0;
  for (let i = range?.first ?? 1; range && i <= last; i += range.step || 1) {
    if (isInternalKey(args[i])) return errorPlan(RESERVED_KEY_ERROR);
  }
  void view;
  const e = wrongTypeError();
  return errorPlan(e.message, e.prefix);
}
