/**
 * The keyspace family. LLM objects are keys: TYPE, EXISTS, DEL, UNLINK, RENAME, RENAMENX, KEYS,
 * SCAN, RANDOMKEY, FLUSHDB and FLUSHALL see them next to the backing Redis's keys; the server's
 * own storage keys (`__llm__:` prefix) never show up and cannot be touched by clients; any other
 * command naming an LLM object's key gets WRONGTYPE (touchesSpecialKey / specialKeyPlan).
 *
 * On a cluster, KEYS, SCAN (a composite cursor: node cursor * 1024 + node index), DBSIZE,
 * RANDOMKEY, FLUSHDB and FLUSHALL go to every master (fanout); SWAPDB does not exist there.
 */
import { CommandError, wrongTypeError } from '../../errors.js';
import { ErrorReply, SimpleString, OK, type Decoded, type RespValue } from '../../protocol/resp.js';
import { isInternalKey, RESERVED_KEY_ERROR } from '../../storage/index.js';
import { TYPE_NAMES } from '../../objects/objects.js';
import { BAD_PAYLOAD, dumpObject, isObjectDump, parseObjectDump } from '../../objects/dump.js';
import type { ObjectManager } from '../../objects/manager.js';
import { globToRegExp } from '../../util/glob.js';
import { errorPlan, FORWARD, READONLY_TEXT, refusedInMultiPlan, type CommandContext, type Intercept, type Plan, type SessionView } from '../plan.js';
import type { Services } from '../services.js';


const name = (b: Buffer) => b.toString('utf8');

function toReply(d: Decoded): RespValue {
  if (d instanceof ErrorReply) throw new CommandError(d.message, d.prefix);
  return d as RespValue;
}

/**
 * A call to the backing Redis on the client's own connection. In standalone mode (no Redis) the
 * keyspace holds only LLM objects: `empty` is what an empty Redis keyspace would answer.
 */
async function backend(ctx: CommandContext, args: Array<Buffer | string>, empty: RespValue): Promise<RespValue> {
  if (ctx.services.mode === 'standalone') return empty;
  if (ctx.client.cluster) {
    const cmd = args[0]!.toString().toLowerCase();
    if (FANOUT.has(cmd)) return toReply(await fanout(ctx, cmd, args));
  }
  return toReply(await ctx.client.backendCall(args));
}

/** On a cluster, the commands that see the whole keyspace ask every master. */
const FANOUT = new Set(['keys', 'scan', 'dbsize', 'randomkey', 'flushdb', 'flushall']);

async function fanout(ctx: CommandContext, cmd: string, args: Array<Buffer | string>): Promise<Decoded> {
  if (cmd === 'scan') return clusterScan(ctx, args);
  const replies = await Promise.all(Array.from({ length: ctx.client.masterCount() }, (_, i) => ctx.client.backendCallMaster(i, args)));
  const err = replies.find((r) => r instanceof ErrorReply);
  if (err) return err;
  if (cmd === 'randomkey') {
    const found = replies.filter((r) => r !== null);
    return found.length > 0 ? found[Math.floor(Math.random() * found.length)]! : null;
  }
  if (cmd === 'keys') return replies.flat() as Decoded;
  if (cmd === 'dbsize') return replies.reduce<number>((a, r) => a + Number(r), 0);
  return replies[0]!; // FLUSHDB / FLUSHALL: +OK
}

/** SCAN over the masters in turn: cursor = node cursor * 1024 + node index. */
async function clusterScan(ctx: CommandContext, args: Array<Buffer | string>): Promise<Decoded> {
  const masters = ctx.client.masterCount();
  let composite: bigint;
  try {
    composite = BigInt(args[1]!.toString());
    if (composite < 0n) throw new Error();
  } catch {
    return new ErrorReply('invalid cursor');
  }
  const idx = Number(composite % 1024n);
  if (idx >= masters) return [Buffer.from('0'), []];
  const nodeCursor = composite / 1024n;
  const r = await ctx.client.backendCallMaster(idx, [args[0]!, nodeCursor.toString(), ...args.slice(2)]);
  if (!Array.isArray(r)) return r;
  const next = BigInt((r[0] as Buffer).toString('latin1'));
  let out: bigint;
  if (next !== 0n) out = next * 1024n + BigInt(idx);
  else out = idx + 1 < masters ? BigInt(idx + 1) : 0n;
  return [Buffer.from(out.toString()), r[1]!];
}

/**
 * EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX / XX / GT / LT), TTL, PTTL, EXPIRETIME,
 * PEXPIRETIME and PERSIST on an LLM object, as Redis answers them for a key; the expiry is durable
 * and seen by every instance, and the object is gone when it expires. Other keys: the backing
 * Redis's own.
 */
const EXPIRE_UNIT: Record<string, { ms: number; absolute: boolean }> = {
  expire: { ms: 1000, absolute: false },
  pexpire: { ms: 1, absolute: false },
  expireat: { ms: 1000, absolute: true },
  pexpireat: { ms: 1, absolute: true },
};

const expireCmd = (cmd: string): Intercept => (args) => {
  if (args.length < 3) return null;
  return local(async (ctx, objects) => {
    const obj = objects.get(ctx.client.db, name(args[1]!));
    if (!obj) return backend(ctx, args, 0);
    const text = args[2]!.toString('latin1');
    if (!/^-?\d{1,19}$/.test(text)) throw new CommandError('value is not an integer or out of range');
    const flags = args.slice(3).map((a) => a.toString('latin1').toUpperCase());
    for (const f of flags) if (!['NX', 'XX', 'GT', 'LT'].includes(f)) throw new CommandError(`Unsupported option ${f}`);
    const has = (f: string) => flags.includes(f);
    if (has('NX') && (has('XX') || has('GT') || has('LT'))) throw new CommandError('NX and XX, GT or LT options at the same time are not compatible');
    if (has('GT') && has('LT')) throw new CommandError('GT and LT options at the same time are not compatible');
    const unit = EXPIRE_UNIT[cmd]!;
    const n = Number(text) * unit.ms;
    if (!Number.isSafeInteger(n)) throw new CommandError(`invalid expire time in '${cmd}' command`);
    const at = unit.absolute ? n : Date.now() + n;
    const current = obj.expiresAt;
    if (has('NX') && current !== null) return 0;
    if (has('XX') && current === null) return 0;
    // No expiry counts as an infinite one: GT never beats it, LT always does.
    if (has('GT') && (current === null || at <= current)) return 0;
    if (has('LT') && current !== null && at >= current) return 0;
    await objects.setExpiry(obj, at);
    return 1;
  });
};

const ttlCmd = (cmd: 'ttl' | 'pttl' | 'expiretime' | 'pexpiretime'): Intercept => (args) => {
  if (args.length !== 2) return null;
  return local(async (ctx, objects) => {
    const obj = objects.get(ctx.client.db, name(args[1]!));
    if (!obj) return backend(ctx, args, -2);
    const at = obj.expiresAt;
    if (at === null) return -1;
    switch (cmd) {
      case 'ttl':
        return Math.max(0, Math.round((at - Date.now()) / 1000));
      case 'pttl':
        return Math.max(0, at - Date.now());
      case 'expiretime':
        return Math.floor(at / 1000);
      default:
        return at;
    }
  });
};

/**
 * DUMP, RESTORE and COPY of LLM objects: DUMP gives a payload (objects/dump.ts) that RESTORE on this
 * server (REPLACE, ABSTTL, a TTL) turns back into the same object under its key; COPY copies one
 * within its db (with its TTL). Redis's own payloads and keys are the backing Redis's.
 */
const dump: Intercept = (args) => {
  if (args.length !== 2) return null;
  return local(async (ctx, objects) => {
    const obj = objects.get(ctx.client.db, name(args[1]!));
    return obj ? await dumpObject(obj) : backend(ctx, args, null);
  });
};

const BUSYKEY = () => new CommandError('Target key name already exists.', 'BUSYKEY');

const restore: Intercept = (args) => {
  if (args.length < 4) return null;
  return local(async (ctx, objects) => {
    const db = ctx.client.db;
    const key = name(args[1]!);
    if (isInternalKey(args[1]!)) throw new CommandError(RESERVED_KEY_ERROR);
    const flags = args.slice(4).map((a) => a.toString('latin1').toUpperCase());
    const replace = flags.includes('REPLACE');
    const ours = objects.get(db, key);
    if (!isObjectDump(args[3]!)) {
      // Redis's own payload: over an LLM object only with REPLACE (the object goes first).
      if (ours && !replace) throw BUSYKEY();
      if (ctx.services.mode === 'standalone') throw new CommandError(BAD_PAYLOAD);
      if (ours) await objects.remove(db, key);
      return backend(ctx, args, OK);
    }
    const ttlText = args[2]!.toString('latin1');
    if (!/^\d{1,19}$/.test(ttlText)) throw new CommandError('Invalid TTL value, must be >= 0');
    for (let i = 4; i < args.length; i++) {
      const f = flags[i - 4]!;
      if (f === 'IDLETIME' || f === 'FREQ') i++;
      else if (f !== 'REPLACE' && f !== 'ABSTTL') throw new CommandError('syntax error');
    }
    const dumped = parseObjectDump(args[3]!);
    const theirs = !ours && (await backend(ctx, ['EXISTS', args[1]!], 0)) === 1;
    if ((ours || theirs) && !replace) throw BUSYKEY();
    if (theirs) await backend(ctx, ['UNLINK', args[1]!], 0);
    const ttl = Number(ttlText);
    const at = ttl === 0 ? null : flags.includes('ABSTTL') ? ttl : Date.now() + ttl;
    if (at !== null && at <= Date.now()) {
      if (ours) await objects.remove(db, key);
      return OK; // already expired, as Redis answers it
    }
    await objects.restore(db, key, dumped, at);
    return OK;
  });
};

const copy: Intercept = (args) => {
  if (args.length < 3) return null;
  return local(async (ctx, objects) => {
    const db = ctx.client.db;
    const src = objects.get(db, name(args[1]!));
    const dst = name(args[2]!);
    let replace = false;
    let target = db;
    for (let i = 3; i < args.length; i++) {
      const f = args[i]!.toString('latin1').toUpperCase();
      if (f === 'REPLACE') replace = true;
      else if (f === 'DB' && i + 1 < args.length) target = Number(args[++i]!.toString('latin1'));
      else throw new CommandError('syntax error');
    }
    if (!src) {
      // An ordinary key onto an LLM object: as Redis, 0 unless REPLACE (the object goes first).
      const over = objects.get(target, dst);
      if (over) {
        if (!replace) return 0;
        await objects.remove(target, dst);
      }
      return backend(ctx, args, 0);
    }
    if (isInternalKey(args[2]!)) throw new CommandError(RESERVED_KEY_ERROR);
    if (target !== db) throw new CommandError('COPY of an LLM object to another db is not supported');
    if (src.name === dst) throw new CommandError('source and destination objects are the same');
    const over = objects.get(db, dst);
    const theirs = !over && (await backend(ctx, ['EXISTS', args[2]!], 0)) === 1;
    if ((over || theirs) && !replace) return 0;
    if (theirs) await backend(ctx, ['UNLINK', args[2]!], 0);
    await objects.restore(db, dst, parseObjectDump(await dumpObject(src)), src.expiresAt);
    return 1;
  });
};

const persist: Intercept = (args) => {
  if (args.length !== 2) return null;
  return local(async (ctx, objects) => {
    const obj = objects.get(ctx.client.db, name(args[1]!));
    if (!obj) return backend(ctx, args, 0);
    if (obj.expiresAt === null) return 0;
    await objects.setExpiry(obj, null);
    return 1;
  });
};

/**
 * DBSIZE counts LLM objects as keys and not the server's own storage keys (`__llm__:`, in the db
 * of the storage, counted with a SCAN: O(keys of that db)). On a cluster (outside MULTI) it is the
 * sum over the masters, storage keys included.
 */
const dbsize: Intercept = (args, view, services) => {
  if (args.length !== 1 || view.inMulti || !view.authenticated || view.pubsubMode) return null;
  if (view.cluster) return { kind: 'local', run: (ctx) => backend(ctx, args, 0) };
  return local(async (ctx, objects) => {
    const db = ctx.client.db;
    let n = Number(await backend(ctx, args, 0)) + objects.countInDb(db);
    if (services.mode !== 'standalone' && db === services.storageDb) n -= await countInternalKeys(ctx);
    return Math.max(0, n);
  });
};

async function countInternalKeys(ctx: CommandContext): Promise<number> {
  let n = 0;
  let cursor = '0';
  do {
    const r = toReply(await ctx.client.backendCall(['SCAN', cursor, 'MATCH', '__llm__:*', 'COUNT', '1000'])) as RespValue[];
    n += (r[1] as Buffer[]).length;
    cursor = (r[0] as Buffer).toString('latin1');
  } while (cursor !== '0');
  return n;
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
    if (isInternalKey(args[1])) throw new CommandError(RESERVED_KEY_ERROR);
    const obj = objects.get(ctx.client.db, name(args[1]));
    if (obj) return new SimpleString(TYPE_NAMES[obj.kind]);
    return backend(ctx, args, new SimpleString('none'));
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
      n += Number(await backend(ctx, [args[0]!, ...theirs], 0));
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
        const exists = await backend(ctx, ['EXISTS', src], 0);
        if (exists === 0) throw new CommandError('no such key');
        return 0;
      }
      if (ctx.services.mode === 'standalone') throw new CommandError('no such key');
      const r = toReply(await ctx.client.backendCall(args));
      if (dstObj) await objects.remove(db, name(dst));
      return r;
    }
    if (name(src) === name(dst)) return nx ? 0 : OK;
    const dstOrdinary = !dstObj && (await backend(ctx, ['EXISTS', dst], 0)) === 1;
    if (nx && (dstObj || dstOrdinary)) return 0;
    if (dstOrdinary) await backend(ctx, ['UNLINK', dst], 0);
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
    const out: RespValue[] = filterInternal((await backend(ctx, args, [])) as Decoded);
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
  const ourTypes = Object.values(TYPE_NAMES).map((t) => t.toLowerCase()); // Redis compares type names case-insensitively
  return local(async (ctx, objects) => {
    const first = args[1].toString('latin1') === '0';
    const mine = (): string[] => {
      if (!first) return [];
      return [...objects.inDb(ctx.client.db)]
        .filter((o) => (!match || match.test(o.name)) && (!typeFilter || TYPE_NAMES[o.kind].toLowerCase() === typeFilter))
        .map((o) => o.name);
    };
    if (typeFilter && ourTypes.includes(typeFilter)) return ['0', mine()];
    const r = (await backend(ctx, args, ['0', []])) as RespValue[];
    const page = filterInternal(r[1] as Decoded) as RespValue[];
    return [r[0], [...page, ...mine()]];
  });
};

const flush = (all: boolean): Intercept => (args, _view, services) =>
  local(async (ctx, objects) => {
    const db = ctx.client.db;
    if (ctx.services.readOnly && [...objects.all()].some((o) => all || o.db === db)) {
      throw new CommandError(READONLY_TEXT, 'READONLY');
    }
    const r = await backend(ctx, args, OK);
    await objects.removeAll(all ? undefined : db);
    // FLUSHDB of the db holding the storage keys wiped the storage of objects in other dbs: rewrite it.
    if (!all && db === services.storageDb && objects.size > 0) await objects.persistAll();
    return r;
  });

/**
 * RANDOMKEY: never a storage key; LLM objects are candidates too (picked with a probability
 * proportional to their share of the db's keys).
 */
const randomkey: Intercept = (args) => {
  if (args.length !== 1) return null;
  return local(async (ctx, objects) => {
    const mine = [...objects.inDb(ctx.client.db)];
    const pickMine = () => mine[Math.floor(Math.random() * mine.length)]!.name;
    const size = Number(await backend(ctx, ['DBSIZE'], 0));
    if (mine.length > 0 && Math.random() * (mine.length + size) < mine.length) return pickMine();
    for (let i = 0; i < 16; i++) {
      const k = await backend(ctx, ['RANDOMKEY'], null);
      if (k === null) return mine.length > 0 ? pickMine() : null;
      if (!isInternalKey(k as Buffer)) return k;
    }
    // Mostly storage keys in this db: the first ordinary key a SCAN finds.
    let cursor: RespValue = '0';
    do {
      const r = (await backend(ctx, ['SCAN', cursor as string, 'COUNT', '1000'], ['0', []])) as RespValue[];
      const found = filterInternal(r[1] as Decoded);
      if (found.length > 0) return found[Math.floor(Math.random() * found.length)]!;
      cursor = (r[0] as Buffer).toString('latin1');
    } while (cursor !== '0');
    return mine.length > 0 ? pickMine() : null;
  });
};

/**
 * SWAPDB would move the server's storage keys (or LLM objects' keys) to another db under the
 * server's feet: refused when either db holds the storage or LLM objects.
 */
const swapdb: Intercept = (args, _view, services) => {
  if (args.length !== 3 || services.mode === 'standalone') return null;
  return local(async (ctx, objects) => {
    const dbs = [Number(args[1]!.toString('latin1')), Number(args[2]!.toString('latin1'))];
    if (dbs.every((d) => Number.isInteger(d) && d >= 0) && dbs.some((d) => d === services.storageDb || objects.countInDb(d) > 0)) {
      throw new CommandError(`SWAPDB is not supported for db ${services.storageDb} (it holds redis-llm-server's storage) or dbs holding LLM objects`);
    }
    return toReply(await ctx.client.backendCall(args));
  });
};

const MULTI_WHY = "here: LLM objects and redis-llm-server's storage are not transactional";

/** Whether a keyspace command, queued in MULTI, would involve LLM objects or storage keys. */
function involvesOurs(cmd: string, args: Buffer[], db: number, services: Services): boolean {
  const objects = services.objects;
  const inDb = (d: number) => (objects ? objects.countInDb(d) : 0);
  switch (cmd) {
    case 'keys':
    case 'scan':
    case 'randomkey':
      return db === services.storageDb || inDb(db) > 0;
    case 'flushdb': // wiping the storage db matters only when it holds some object's storage
      return inDb(db) > 0 || (db === services.storageDb && !!objects && objects.size > 0);
    case 'flushall':
      return !objects || objects.size > 0;
    case 'swapdb':
      return args.slice(1, 3).some((a) => Number(a.toString('latin1')) === services.storageDb || inDb(Number(a.toString('latin1'))) > 0);
    default:
      return args.slice(1).some((k) => isInternalKey(k) || (!!objects && objects.get(db, name(k)) !== undefined));
  }
}

function multiAware(cmd: string, intercept: Intercept): Intercept {
  return (args, view, services, opts) => {
    if (!view.inMulti) return intercept(args, view, services, opts);
    return involvesOurs(cmd, args, view.db, services) ? refusedInMultiPlan(cmd, MULTI_WHY) : FORWARD;
  };
}

export const KEYSPACE_INTERCEPTS: Array<[string, Intercept]> = (
  [
    ['dbsize', dbsize],
    ['expire', expireCmd('expire')],
    ['pexpire', expireCmd('pexpire')],
    ['expireat', expireCmd('expireat')],
    ['pexpireat', expireCmd('pexpireat')],
    ['ttl', ttlCmd('ttl')],
    ['pttl', ttlCmd('pttl')],
    ['expiretime', ttlCmd('expiretime')],
    ['pexpiretime', ttlCmd('pexpiretime')],
    ['persist', persist],
    ['dump', dump],
    ['restore', restore],
    ['copy', copy],
    ['randomkey', randomkey],
    ['swapdb', swapdb],
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
  ] as Array<[string, Intercept]>
).map(([cmd, f]) => [cmd, multiAware(cmd, f)]);

/**
 * Commands with keys outside the legacy (first, last, step) range: after a numkeys argument or a
 * keyword (STREAMS, STORE), a script's KEYS, container subcommands (OBJECT ENCODING key, MEMORY
 * USAGE key). Every argument of these is checked for the reserved prefix (an argument that is not
 * a key but starts with `__llm__:` is refused as well: the prefix is reserved).
 */
const MOVABLE_KEYS = new Set([
  'xread', 'xreadgroup', 'eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro', 'sort', 'sort_ro',
  'zunionstore', 'zinterstore', 'zdiffstore', 'zunion', 'zinter', 'zdiff', 'zintercard', 'sintercard',
  'lmpop', 'blmpop', 'zmpop', 'bzmpop', 'georadius', 'georadiusbymember', 'migrate', 'object', 'memory',
]);
/** Container commands whose key is the third argument. */
const KEY_AT_2 = new Set(['object', 'memory']);

function hasInternalArg(args: Buffer[]): boolean {
  for (let i = 1; i < args.length; i++) {
    const k = args[i]!;
    if (k.length >= 8 && k[0] === 95 && k[1] === 95 && isInternalKey(k)) return true;
  }
  return false;
}

/**
 * Does this ordinary command touch an LLM object or a reserved key? Checked on the hot path,
 * so it only walks the command's key range and does a map lookup per key.
 */
/** SORT ... BY pattern / GET pattern reads keys named by patterns: none may be a storage key. */
function sortReachesStorage(cmd: string, args: Buffer[]): boolean {
  if (cmd !== 'sort' && cmd !== 'sort_ro') return false;
  for (let i = 2; i + 1 < args.length; i++) {
    const opt = args[i].toString('latin1').toLowerCase();
    if ((opt === 'by' || opt === 'get') && args[i + 1].toString('latin1').includes('__llm__:')) return true;
  }
  return false;
}

export function touchesSpecialKey(cmd: string, args: Buffer[], view: SessionView, services: Services): boolean {
  if (sortReachesStorage(cmd, args)) return true;
  const objects = services.objects;
  const checkObjects = !!objects && objects.countInDb(view.db) > 0;
  if (MOVABLE_KEYS.has(cmd)) {
    if (hasInternalArg(args)) return true;
    if (KEY_AT_2.has(cmd) && checkObjects && args.length > 2 && objects!.get(view.db, name(args[2]!))) return true;
  }
  const range = services.keyRange(cmd);
  if (!range) return false;
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
  if (sortReachesStorage(cmd, args)) return errorPlan(RESERVED_KEY_ERROR);
  // In MULTI the refusal must also abort the transaction (as Redis does for errors while queueing).
  const refuse = (message: string, prefix = 'ERR'): Plan =>
    view.inMulti ? refusedInMultiPlan(cmd, `here: ${prefix === 'ERR' ? message : `${prefix} ${message}`}`) : errorPlan(message, prefix);
  if (MOVABLE_KEYS.has(cmd) && hasInternalArg(args)) return refuse(RESERVED_KEY_ERROR);
  const range = services.keyRange(cmd);
  const last = range ? (range.last < 0 ? args.length + range.last : Math.min(range.last, args.length - 1)) : 0;
  for (let i = range?.first ?? 1; range && i <= last; i += range.step || 1) {
    if (isInternalKey(args[i])) return refuse(RESERVED_KEY_ERROR);
  }
  const e = wrongTypeError();
  return refuse(e.message, e.prefix);
}
