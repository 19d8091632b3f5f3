/**
 * RedisStorage: the durable object layer in the backing Redis.
 *
 * Key layout (every key starts with INTERNAL_PREFIX "__llm__:"; the hash tag in braces keeps the keys
 * that are used together in one cluster slot):
 *   __llm__:{catalog}:objects        hash   "<db>:<name>" → JSON {id, kind, config, createdAt}
 *   __llm__:{catalog}:events         stream catalog events (op put|delete|rename, db, name, id, to, rec, dropped)
 *   __llm__:{<id>}:log               stream the object's write-ahead log; fields "s:<name>" (utf8) / "b:<name>" (binary)
 *   __llm__:{<id>}:snap              hash   current snapshot: gen, chunks, pos, size, crc, createdAt;
 *                                           plus "p:<gen>" → "<chunks>:<startedMs>" while a snapshot is being written
 *   __llm__:{<id>}:snap:<gen>:<i>    string chunk i (SNAPSHOT_CHUNK_SIZE bytes) of snapshot generation <gen>
 *
 * Catalog changes are single Lua scripts on the {catalog} slot (hash + event stream updated atomically).
 * Dropping an overwritten/deleted object's storage is a second script on the object's own slot; a crash
 * between the two leaves only garbage that sweepOrphans() removes (the catalog is the source of truth).
 */
import { randomBytes } from 'node:crypto';
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { releaseSnapshotBuffer, snapshotBuffer } from '../util/addon.js';
import { readValuesInto, writeValuesFrom, type ValueReaderTarget } from './value-reader.js';
import {
  CatalogGapError,
  INTERNAL_PREFIX,
  SNAPSHOT_CHUNK_SIZE,
  catalogKey,
  checkDb,
  checkEntries,
  checkId,
  checkRecord,
  comparePos,
  crc32Sliced,
  decodeRecord,
  encodeRecord,
  nextPos,
  parsePos,
  splitCatalogKey,
} from './common.js';
import type { CatalogEvent, LogEntry, ObjectRecord, SnapshotData, SnapshotInfo, Storage } from './types.js';

type Conn = Redis | Cluster;

/** readLog aims at batches of about this many bytes (fewer entries per batch when entries are big). */
const READ_BATCH_BYTES = 8 * 1024 * 1024;

export const CATALOG_KEY = `${INTERNAL_PREFIX}{catalog}:objects`;
export const CATALOG_EVENTS_KEY = `${INTERNAL_PREFIX}{catalog}:events`;
export const logKey = (id: string) => `${INTERNAL_PREFIX}{${id}}:log`;
export const snapKey = (id: string) => `${INTERNAL_PREFIX}{${id}}:snap`;
export const chunkPrefix = (id: string) => `${INTERNAL_PREFIX}{${id}}:snap:`;

/**
 * How often a follower polls the object logs on a Redis Cluster (see pollLogs): every 100 ms while
 * entries come, backing off (doubling) to 1 s while none do.
 */
export const CLUSTER_FOLLOW_POLL_MS = 100;
export const CLUSTER_FOLLOW_POLL_MAX_MS = 1000;

/** Snapshot chunks are read back in GETRANGE pieces of this size (see readPieces). */
const SNAPSHOT_READ_PIECE = 16 * 1024;
const SNAPSHOT_READ_TRIP = 16 * 1024 * 1024;

/**
 * ioredis options for the storage connection: fail fast instead of queueing while disconnected,
 * never re-send a command whose outcome is unknown (an XADD could be applied twice), reconnect forever.
 */
export function storageRedisOptions(extra: RedisOptions = {}): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: 2000,
    commandTimeout: 10_000,
    retryStrategy: (times: number) => Math.min(100 * times, 1000),
    ...extra,
  };
}

export interface RedisStorageOptions {
  /**
   * Use a given ioredis instance as is. By default RedisStorage makes its own connection with the
   * instance's settings (host, auth, db, TLS) but the fail-fast, never-resend options of
   * storageRedisOptions(), which a connection that also proxies clients may not want.
   */
  shareConnection?: boolean;
  /** Snapshot chunk size in bytes (default SNAPSHOT_CHUNK_SIZE, 4 MiB). */
  chunkSize?: number;
  /**
   * Read and write snapshot chunks over a dedicated connection straight from and into memory when
   * the Redis is reachable over plain TCP or a unix socket (default true; false: always through
   * ioredis, as over TLS).
   */
  directSnapshotReads?: boolean;
  /** Entries per readLog batch (default 1000). */
  readBatch?: number;
  /** Approximate number of catalog events kept for followers (default 100000). */
  catalogEventsMax?: number;
  /** A pending snapshot generation older than this is presumed abandoned and deleted (default 10 min). */
  stalePendingMs?: number;
  /** Test hooks to simulate crashes between snapshot steps. */
  hooks?: {
    /** Called after all chunks are written, before the meta switch. Throwing simulates a crash there. */
    afterSnapshotChunks?: (id: string) => void | Promise<void>;
  };
}

// ---------------------------------------------------------------------------------------------------------
// Lua scripts

const LUA_ID = `local function idof(json) return string.match(json, '^{"id":"([^"]*)"') end\n`;

/** KEYS: objects, events. ARGV: field, json, db, name, id, maxlen → {pos, droppedId|''} */
const LUA_PUT = `${LUA_ID}
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local dropped = ''
if old then
  local oid = idof(old)
  if oid and oid ~= ARGV[5] then dropped = oid end
end
local pos = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'op', 'put', 'db', ARGV[3], 'name', ARGV[4],
  'id', ARGV[5], 'rec', ARGV[2], 'dropped', dropped)
return {pos, dropped}
`;

/** KEYS: objects, events. ARGV: field, db, name, maxlen → {pos, id} or nil */
const LUA_DELETE = `${LUA_ID}
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
local oid = idof(old) or ''
local pos = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'op', 'delete', 'db', ARGV[2], 'name', ARGV[3], 'id', oid)
return {pos, oid}
`;

/** KEYS: objects, events. ARGV: fromField, toField, db, from, to, maxlen → {pos, id, droppedId|''} or nil */
const LUA_RENAME = `${LUA_ID}
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return false end
local id = idof(rec) or ''
if ARGV[1] == ARGV[2] then return {'', id, ''} end
local old = redis.call('HGET', KEYS[1], ARGV[2])
local dropped = ''
if old then
  local oid = idof(old)
  if oid and oid ~= id then dropped = oid end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], rec)
local pos = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'op', 'rename', 'db', ARGV[3], 'name', ARGV[4],
  'id', id, 'to', ARGV[5], 'dropped', dropped)
return {pos, id, dropped}
`;

/**
 * KEYS: log. ARGV: n1, f, v, ..., n2, f, v, ... → [previous last id or '', ids...]. The entries
 * are appended atomically; the id that preceded them lets a writer know whether anything (from
 * another instance) came between its last applied entry and these.
 */
const LUA_XADD_MANY = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local ids = {}
if last[1] then
  ids[1] = last[1][1]
else
  -- Empty: never written, or trimmed empty after a snapshot (then the last id is still known).
  ids[1] = ''
  local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])
  if ok then
    for j = 1, #info, 2 do
      if info[j] == 'last-generated-id' then ids[1] = info[j + 1] end
    end
  end
end
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local args = {'XADD', KEYS[1], '*'}
  for j = 1, n * 2 do args[#args + 1] = ARGV[i + j] end
  ids[#ids + 1] = redis.call(unpack(args))
  i = i + 1 + n * 2
end
return ids
`;

const LUA_CHUNKS = `
local function delchunks(prefix, gen, n)
  for i = 0, n - 1 do redis.call('UNLINK', prefix .. gen .. ':' .. i) end
end
local function cmp(a, b)
  local a1, a2 = string.match(a, '^(%d+)-(%d+)$')
  local b1, b2 = string.match(b, '^(%d+)-(%d+)$')
  a1, a2, b1, b2 = tonumber(a1), tonumber(a2), tonumber(b1), tonumber(b2)
  if a1 ~= b1 then if a1 < b1 then return -1 else return 1 end end
  if a2 ~= b2 then if a2 < b2 then return -1 else return 1 end end
  return 0
end
`;

/**
 * The snapshot switch, atomic on the object's slot.
 * KEYS: meta, log. ARGV: gen, nchunks, pos, size, crc, createdAt, minid, chunkPrefix, now, staleMs
 * → 'ok' | 'stale' | 'aborted' | 'ahead'
 */
const LUA_SNAP_SWITCH = `${LUA_CHUNKS}
local meta, log = KEYS[1], KEYS[2]
local gen, n, pos, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[8]
local now, staleMs = tonumber(ARGV[9]), tonumber(ARGV[10])
if redis.call('HEXISTS', meta, 'p:' .. gen) == 0 then
  delchunks(prefix, gen, n)
  return 'aborted'
end
local last = '0-0'
if redis.call('EXISTS', log) == 1 then
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do if info[i] == 'last-generated-id' then last = info[i + 1] end end
end
if cmp(pos, last) > 0 then
  delchunks(prefix, gen, n)
  redis.call('HDEL', meta, 'p:' .. gen)
  return 'ahead'
end
local cur = redis.call('HGET', meta, 'pos')
if cur and cmp(cur, pos) > 0 then
  delchunks(prefix, gen, n)
  redis.call('HDEL', meta, 'p:' .. gen)
  return 'stale'
end
local oldgen = redis.call('HGET', meta, 'gen')
local oldn = tonumber(redis.call('HGET', meta, 'chunks') or '0')
redis.call('HSET', meta, 'gen', gen, 'chunks', ARGV[2], 'pos', pos, 'size', ARGV[4], 'crc', ARGV[5], 'createdAt', ARGV[6])
redis.call('HDEL', meta, 'p:' .. gen)
if oldgen and oldgen ~= gen then delchunks(prefix, oldgen, oldn) end
local all = redis.call('HGETALL', meta)
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 2) == 'p:' then
    local pn, pts = string.match(all[i + 1], '^(%d+):(%d+)$')
    if (not pts) or now - tonumber(pts) > staleMs then
      delchunks(prefix, string.sub(f, 3), tonumber(pn or '0'))
      redis.call('HDEL', meta, f)
    end
  end
end
redis.call('XTRIM', log, 'MINID', ARGV[7])
return 'ok'
`;

/** KEYS: meta, log. ARGV: chunkPrefix. Drops all storage of one object. */
const LUA_DROP = `${LUA_CHUNKS}
local meta, log, prefix = KEYS[1], KEYS[2], ARGV[1]
local all = redis.call('HGETALL', meta)
local gen, n = nil, 0
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if f == 'gen' then gen = v
  elseif f == 'chunks' then n = tonumber(v)
  elseif string.sub(f, 1, 2) == 'p:' then
    delchunks(prefix, string.sub(f, 3), tonumber(string.match(v, '^(%d+)') or '0'))
  end
end
if gen then delchunks(prefix, gen, n) end
return redis.call('UNLINK', meta, log)
`;

const SCRIPTS = {
  llmStoragePut: { numberOfKeys: 2, lua: LUA_PUT },
  llmStorageDelete: { numberOfKeys: 2, lua: LUA_DELETE },
  llmStorageRename: { numberOfKeys: 2, lua: LUA_RENAME },
  llmStorageXaddMany: { numberOfKeys: 1, lua: LUA_XADD_MANY },
  llmStorageSnapSwitch: { numberOfKeys: 2, lua: LUA_SNAP_SWITCH },
  llmStorageDrop: { numberOfKeys: 2, lua: LUA_DROP },
} as const;
type ScriptName = keyof typeof SCRIPTS;
type ScriptFn = (...args: Array<string | Buffer | number>) => Promise<unknown>;

// ---------------------------------------------------------------------------------------------------------
// errors

const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS)\b/;

/** Maps an ioredis error to the CommandError a client sees. */
export function redisError(err: unknown): CommandError {
  if (err instanceof CommandError) return err;
  const e = err as { name?: string; message?: string } | undefined;
  const msg = e?.message ?? String(err);
  if (e?.name === 'ReplyError' && !UNAVAILABLE_REPLIES.test(msg)) return new CommandError(`backing Redis error: ${msg}`);
  let reason = msg;
  if (msg.includes("Stream isn't writeable")) reason = 'not connected';
  else if (msg.includes('max retries per request')) reason = 'connection lost';
  else if (msg.includes('Connection is closed')) reason = 'connection closed';
  else if (msg.includes('Command timed out')) reason = 'command timed out';
  else if (msg.includes('Command aborted due to connection close')) reason = 'connection lost';
  return new CommandError(`backing Redis unavailable: ${reason}`);
}

async function wrap<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw redisError(err);
  }
}

// ---------------------------------------------------------------------------------------------------------
// log entry encoding: field names carry the value type so strings and Buffers round-trip as given

function entryArgs(e: LogEntry): Array<string | Buffer> {
  const args: Array<string | Buffer> = [];
  for (const k in e) {
    const v = e[k]!;
    if (typeof v === 'string') args.push('s:' + k, v);
    else args.push('b:' + k, v);
  }
  return args;
}

const COLON = 0x3a;
function ownBuffer(b: Buffer): Buffer {
  // replies are views into the parser's buffers; copy so a kept value does not pin a big socket chunk
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(b);
}

function decodeEntry(fields: Buffer[]): LogEntry {
  const e: LogEntry = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const f = fields[i]!;
    const v = fields[i + 1]!;
    if (f.length >= 2 && f[1] === COLON && f[0] === 0x62 /* b */) e[f.toString('utf8', 2)] = ownBuffer(v);
    else if (f.length >= 2 && f[1] === COLON && f[0] === 0x73 /* s */) e[f.toString('utf8', 2)] = v.toString('utf8');
    else e[f.toString('utf8')] = v.toString('utf8'); // written by someone else: plain string
  }
  return e;
}

function decodeEvent(id: string, fields: string[]): CatalogEvent {
  const m: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) m[fields[i]!] = fields[i + 1]!;
  const ev: CatalogEvent = { pos: id, op: m.op as CatalogEvent['op'], db: Number(m.db), name: m.name ?? '', id: m.id ?? '' };
  if (m.to !== undefined) ev.to = m.to;
  if (m.rec) ev.record = decodeRecord(ev.db, ev.name, m.rec);
  if (m.dropped) ev.dropped = m.dropped;
  return ev;
}

/** A write waiting for the next group commit: an append (one or more entries) or a catalog script. */
type PendingWrite =
  | { kind: 'append'; key: string; entries: Array<Array<string | Buffer>>; resolve: (ids: string[]) => void; reject: (err: Error) => void; prev?: (pos: string) => void }
  | { kind: 'script'; cmd: ScriptName; key: string; args: Array<string | Buffer>; resolve: (res: unknown) => void; reject: (err: Error) => void };

/** XADD_MANY arguments for several entries: n1, f, v, ..., n2, ... */
function manyArgs(entries: Array<Array<string | Buffer>>): Array<string | Buffer> {
  const args: Array<string | Buffer> = [];
  for (const a of entries) {
    args.push(String(a.length / 2));
    for (const x of a) args.push(x);
  }
  return args;
}

// ---------------------------------------------------------------------------------------------------------

export class RedisStorage implements Storage {
  readonly kind = 'redis' as const;
  readonly redis: Conn;
  private readonly owned: boolean;
  private readonly chunkSize: number;
  private readonly directReads: boolean;
  private readonly readBatch: number;
  private readonly eventsMax: number;
  private readonly stalePendingMs: number;
  private readonly hooks: NonNullable<RedisStorageOptions['hooks']>;
  private blocker: Conn | undefined;
  private queue: PendingWrite[] = [];
  /** Cluster mode: per key, writes wait for the previous one (ioredis Cluster may reorder concurrent commands). */
  private readonly keyChains = new Map<string, { items: PendingWrite[]; busy: boolean }>();
  private flushScheduled = false;
  private readonly inflight = new Set<Promise<unknown>>();
  /** close() was called: new calls are refused. */
  private closing = false;
  private closed = false;
  private opened = false;
  private downSince = 0;
  private errorLogged = false;
  private readonly listeners: Array<[string, (...a: any[]) => void]> = [];

  /**
   * @param conn the server's ioredis Redis/Cluster (a connection with the same settings and
   *   storageRedisOptions() semantics is made from it, see shareConnection), or a redis:// URL /
   *   RedisOptions.
   */
  constructor(conn: Conn | string | RedisOptions, opts: RedisStorageOptions = {}) {
    if ((conn instanceof Redis || conn instanceof Cluster) && opts.shareConnection) {
      this.redis = conn;
      this.owned = false;
    } else if (conn instanceof Redis) {
      const o = conn.options;
      this.redis = conn.duplicate({
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        connectTimeout: Math.min(o.connectTimeout ?? 2000, 5000),
        commandTimeout: o.commandTimeout ?? 10_000,
      });
      this.owned = true;
    } else if (conn instanceof Cluster) {
      const o = conn.options;
      this.redis = conn.duplicate(undefined, {
        lazyConnect: true,
        enableOfflineQueue: false,
        redisOptions: {
          ...o.redisOptions,
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false,
          commandTimeout: o.redisOptions?.commandTimeout ?? 10_000,
        },
      });
      this.owned = true;
    } else if (typeof conn === 'string') {
      this.redis = new Redis(conn, storageRedisOptions());
      this.owned = true;
    } else {
      this.redis = new Redis(storageRedisOptions(conn));
      this.owned = true;
    }
    this.chunkSize = opts.chunkSize ?? SNAPSHOT_CHUNK_SIZE;
    this.directReads = opts.directSnapshotReads ?? true;
    this.readBatch = opts.readBatch ?? 1000;
    this.eventsMax = opts.catalogEventsMax ?? 100_000;
    this.stalePendingMs = opts.stalePendingMs ?? 10 * 60_000;
    this.hooks = opts.hooks ?? {};
    for (const [name, def] of Object.entries(SCRIPTS)) {
      if (!(name in (this.redis as unknown as Record<string, unknown>))) this.redis.defineCommand(name, def);
    }
    this.on('error', (err: Error) => {
      if (!this.errorLogged) {
        this.errorLogged = true;
        logger.warn({ err: err.message }, 'backing Redis connection error');
      }
    });
    this.on('close', () => {
      if (!this.downSince && this.opened && !this.closed) {
        this.downSince = Date.now();
        logger.warn('backing Redis connection lost; LLM object writes fail until it reconnects');
      }
    });
    this.on('ready', () => {
      if (this.downSince) {
        logger.info({ downMs: Date.now() - this.downSince }, 'backing Redis connection restored');
      }
      this.downSince = 0;
      this.errorLogged = false;
    });
  }

  private on(event: string, fn: (...a: any[]) => void): void {
    this.redis.on(event, fn);
    this.listeners.push([event, fn]);
  }

  private script(name: ScriptName, target: unknown = this.redis): ScriptFn {
    const fn = (target as Record<string, ScriptFn>)[name]!;
    return fn.bind(target);
  }

  private get isCluster(): boolean {
    return this.redis instanceof Cluster;
  }

  async open(): Promise<void> {
    this.checkOpen();
    const status = this.redis.status;
    if (status === 'wait') {
      await wrap(this.redis.connect());
    } else if (status !== 'ready') {
      await wrap(
        new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => {
            this.redis.off('ready', onReady);
            reject(new Error(`not ready (${this.redis.status})`));
          }, 5000);
          const onReady = () => {
            clearTimeout(t);
            resolve();
          };
          this.redis.once('ready', onReady);
        }),
      );
    }
    if (this.redis instanceof Cluster) {
      // connect to every master now, so the first writes do not race connection setup
      await wrap(Promise.all(this.redis.nodes('master').map((n) => n.ping())));
    }
    await this.checkDurability();
    this.opened = true;
  }

  /** Says once at startup how durable an acknowledged write is with this backing Redis's AOF settings. */
  private async checkDurability(): Promise<void> {
    const node = this.redis instanceof Cluster ? this.redis.nodes('master')[0] : this.redis;
    let cfg: string[];
    try {
      cfg = (await node!.call('CONFIG', 'GET', 'append*')) as string[];
    } catch {
      return; // CONFIG may be disabled (managed Redis)
    }
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < cfg.length; i += 2) m.set(cfg[i]!, cfg[i + 1]!);
    if (m.get('appendonly') !== 'yes') {
      logger.warn('the backing Redis has appendonly off: LLM objects survive a Redis restart only as far as its RDB snapshots go');
    } else if (m.get('appendfsync') !== 'always') {
      logger.info(
        { appendfsync: m.get('appendfsync') },
        'backing Redis AOF is not fsynced on every write: a machine crash (not a Redis crash) can lose the last second of acknowledged LLM writes',
      );
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.flushScheduled) this.flush();
    await Promise.allSettled([...this.inflight]);
    this.closed = true;
    for (const [ev, fn] of this.listeners) this.redis.off(ev, fn);
    if (this.blocker) this.blocker.disconnect();
    if (this.logBlocker) this.logBlocker.disconnect();
    if (this.owned) {
      try {
        await this.redis.quit();
      } catch {
        this.redis.disconnect();
      }
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  private checkOpen(): void {
    if (this.closing) throw new CommandError('storage is closed');
  }

  // ------------------------------------------------------------------------------------------------ catalog

  async loadCatalog(): Promise<ObjectRecord[]> {
    return (await this.loadCatalogAt()).records;
  }

  async loadCatalogAt(): Promise<{ records: ObjectRecord[]; pos: string }> {
    this.checkOpen();
    const res = await wrap(this.redis.multi().hgetall(CATALOG_KEY).xrevrange(CATALOG_EVENTS_KEY, '+', '-', 'COUNT', 1).exec());
    if (!res) throw new CommandError('backing Redis error: catalog read aborted');
    for (const [err] of res) if (err) throw redisError(err);
    const all = res[0]![1] as Record<string, string>;
    const last = res[1]![1] as Array<[string, string[]]>;
    const records: ObjectRecord[] = [];
    for (const [field, json] of Object.entries(all)) {
      const { db, name } = splitCatalogKey(field);
      records.push(decodeRecord(db, name, json));
    }
    return { records, pos: last.length ? last[0]![0] : '0-0' };
  }

  async getRecord(db: number, name: string): Promise<ObjectRecord | null> {
    this.checkOpen();
    checkDb(db);
    const json = await wrap(this.redis.hget(CATALOG_KEY, catalogKey(db, name)));
    return json === null ? null : decodeRecord(db, name, json);
  }

  async putRecord(rec: ObjectRecord): Promise<void> {
    this.checkOpen();
    checkRecord(rec);
    const res = (await this.enqueueScript('llmStoragePut', [
      CATALOG_KEY,
      CATALOG_EVENTS_KEY,
      catalogKey(rec.db, rec.name),
      encodeRecord(rec),
      String(rec.db),
      rec.name,
      rec.id,
      String(this.eventsMax),
    ])) as [string, string];
    if (res[1]) await this.dropAfterCatalogChange(res[1]);
  }

  async deleteRecord(db: number, name: string): Promise<boolean> {
    this.checkOpen();
    checkDb(db);
    const res = (await this.enqueueScript('llmStorageDelete', [
      CATALOG_KEY,
      CATALOG_EVENTS_KEY,
      catalogKey(db, name),
      String(db),
      name,
      String(this.eventsMax),
    ])) as [string, string] | null;
    if (!res) return false;
    if (res[1]) await this.dropAfterCatalogChange(res[1]);
    return true;
  }

  async renameRecord(db: number, from: string, to: string): Promise<void> {
    this.checkOpen();
    checkDb(db);
    const res = (await this.enqueueScript('llmStorageRename', [
      CATALOG_KEY,
      CATALOG_EVENTS_KEY,
      catalogKey(db, from),
      catalogKey(db, to),
      String(db),
      from,
      to,
      String(this.eventsMax),
    ])) as [string, string, string] | null;
    if (!res) throw new CommandError('no such key');
    if (res[2]) await this.dropAfterCatalogChange(res[2]);
  }

  /** The catalog change is done (and durable); failing to drop only leaves garbage for sweepOrphans(). */
  private async dropAfterCatalogChange(id: string): Promise<void> {
    try {
      await this.dropObject(id);
    } catch (err) {
      logger.warn({ id, err: (err as Error).message }, 'could not drop the storage of a replaced LLM object; sweepOrphans() will');
    }
  }

  /** Deletes the log, snapshot meta and all chunks of one object. */
  async dropObject(id: string): Promise<void> {
    checkId(id);
    await this.track(wrap(this.script('llmStorageDrop')(snapKey(id), logKey(id), chunkPrefix(id))));
  }

  async readCatalogEvents(afterPos?: string): Promise<CatalogEvent[]> {
    this.checkOpen();
    const out: CatalogEvent[] = [];
    let start = afterPos === undefined ? '-' : '(' + checkPos(afterPos);
    let first = true;
    for (;;) {
      let rows: Array<[string, string[]]>;
      if (first && afterPos !== undefined) {
        const res = await wrap(
          this.redis.multi().xinfo('STREAM', CATALOG_EVENTS_KEY).xrange(CATALOG_EVENTS_KEY, start, '+', 'COUNT', 1000).exec(),
        );
        if (!res) throw new CommandError('backing Redis error: catalog read aborted');
        if (res[1]![0]) throw redisError(res[1]![0]);
        rows = res[1]![1] as Array<[string, string[]]>;
        if (!res[0]![0]) checkGap(afterPos, res[0]![1] as unknown[]);
      } else {
        rows = await wrap(this.redis.xrange(CATALOG_EVENTS_KEY, start, '+', 'COUNT', 1000));
      }
      first = false;
      for (const [id, fields] of rows) out.push(decodeEvent(id, fields));
      if (rows.length < 1000) return out;
      start = '(' + rows[rows.length - 1]![0];
    }
  }

  async tailCatalog(afterPos: string, blockMs: number): Promise<CatalogEvent[]> {
    const now = await this.readCatalogEvents(afterPos);
    if (now.length || blockMs <= 0) return now;
    if (!this.blocker) {
      this.blocker =
        this.redis instanceof Cluster
          ? this.redis.duplicate(undefined, { redisOptions: { ...this.redis.options.redisOptions, commandTimeout: undefined } })
          : this.redis.duplicate({ commandTimeout: undefined, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      this.blocker.on('error', () => {}); // the main connection logs availability
    }
    const b = this.blocker;
    try {
      if (b.status === 'wait') await b.connect();
      const res = await b.xread('COUNT', 1000, 'BLOCK', Math.max(1, Math.floor(blockMs)), 'STREAMS', CATALOG_EVENTS_KEY, afterPos);
      if (!res) return [];
      return res[0]![1].map(([id, fields]) => decodeEvent(id, fields));
    } catch (err) {
      if (this.closing) return [];
      throw redisError(err);
    }
  }

  private logBlocker: Redis | undefined;
  private logBlockerId: number | undefined;

  /**
   * Waits up to `blockMs` for entries after the given position of any of the given objects' logs
   * (one blocking XREAD over all of them, on a dedicated connection), for an instance following
   * the others' writes. Resolves [] on timeout, after wakeLogs(), or when closing. On a Redis
   * Cluster, where one XREAD cannot span slots, the logs are polled instead (pollLogs).
   */
  async tailLogs(after: Map<string, string>, blockMs: number): Promise<Array<{ id: string; entries: Array<{ pos: string; entry: LogEntry }> }>> {
    this.checkOpen();
    if (this.redis instanceof Cluster) return this.pollLogs(this.redis, after, blockMs);
    if (!this.logBlocker) {
      this.logBlocker = this.redis.duplicate({ commandTimeout: undefined, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      this.logBlocker.on('error', () => {});
      this.logBlocker.on('ready', () => {
        this.logBlockerId = undefined;
      });
    }
    const b = this.logBlocker;
    if (after.size === 0) {
      await this.wakeableSleep(Math.min(blockMs, 200));
      return [];
    }
    try {
      if (b.status === 'wait') await b.connect();
      this.logBlockerId ??= Number(await b.client('ID'));
      const ids = [...after.keys()];
      const res = await b.xreadBuffer('COUNT', 1000, 'BLOCK', Math.max(1, Math.floor(blockMs)), 'STREAMS', ...ids.map(logKey), ...ids.map((i) => after.get(i) || '0-0'));
      if (!res) return [];
      return res.map(([key, rows]) => {
        const k = key.toString('latin1');
        const id = k.slice(k.indexOf('{') + 1, k.indexOf('}'));
        return { id, entries: rows.map(([pos, fields]) => ({ pos: pos.toString('latin1'), entry: decodeEntry(fields) })) };
      });
    } catch (err) {
      if (this.closing) return [];
      throw redisError(err);
    }
  }

  private wakes = 0;
  private wakePoll: (() => void) | null = null;
  private pollEvery = CLUSTER_FOLLOW_POLL_MS;

  /**
   * tailLogs on a Redis Cluster: one non-blocking XREAD per log (each goes to its slot's node),
   * repeated (see CLUSTER_FOLLOW_POLL_MS) until something is there, `blockMs` passed, or wakeLogs().
   */
  private async pollLogs(
    cluster: Cluster,
    after: Map<string, string>,
    blockMs: number,
  ): Promise<Array<{ id: string; entries: Array<{ pos: string; entry: LogEntry }> }>> {
    const deadline = Date.now() + blockMs;
    const wakes = this.wakes;
    for (;;) {
      const ids = [...after.keys()];
      if (ids.length > 0) {
        const rows = await wrap(Promise.all(ids.map((id) => cluster.xreadBuffer('COUNT', 1000, 'STREAMS', logKey(id), after.get(id) || '0-0'))));
        const out = rows.flatMap((res, i) =>
          res ? [{ id: ids[i]!, entries: res[0]![1].map(([pos, fields]) => ({ pos: pos.toString('latin1'), entry: decodeEntry(fields) })) }] : [],
        );
        if (out.length > 0) {
          this.pollEvery = CLUSTER_FOLLOW_POLL_MS;
          return out;
        }
      }
      const left = deadline - Date.now();
      if (this.closing || this.wakes !== wakes || left <= 0) return [];
      const wait = Math.min(left, this.pollEvery);
      this.pollEvery = Math.min(CLUSTER_FOLLOW_POLL_MAX_MS, this.pollEvery * 2);
      await this.wakeableSleep(wait);
    }
  }

  /** Waits `ms`, or less if wakeLogs() is called meanwhile. */
  private async wakeableSleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wakePoll = done;
    });
    this.wakePoll = null;
  }

  /** Ends a blocked tailLogs() at once (the set of followed objects changed). */
  async wakeLogs(): Promise<void> {
    this.wakes++;
    this.pollEvery = CLUSTER_FOLLOW_POLL_MS; // the set of objects changed: writes may follow
    this.wakePoll?.();
    if (this.logBlockerId === undefined || this.redis instanceof Cluster) return;
    try {
      await this.redis.client('UNBLOCK', this.logBlockerId);
    } catch {
      /* not blocked, or reconnecting: the next read uses the new set anyway */
    }
  }

  async sweepOrphans(): Promise<string[]> {
    this.checkOpen();
    // scan first, then read the catalog: an object created meanwhile is in the catalog before it has storage
    const seen = new Set<string>();
    const nodes: Redis[] = this.redis instanceof Cluster ? this.redis.nodes('master') : [this.redis];
    const re = /^__llm__:\{([A-Za-z0-9_-]{1,64})\}:(log|snap)/;
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await wrap(node.scan(cursor, 'MATCH', `${INTERNAL_PREFIX}{*`, 'COUNT', 1000));
        cursor = next;
        for (const k of keys) {
          const m = re.exec(k);
          if (m) seen.add(m[1]!);
        }
      } while (cursor !== '0');
    }
    const live = new Set((await this.loadCatalog()).map((r) => r.id));
    const removed: string[] = [];
    for (const id of seen) {
      if (live.has(id)) continue;
      await this.dropObject(id);
      removed.push(id);
    }
    if (removed.length) logger.info({ count: removed.length }, 'removed storage of LLM objects no longer in the catalog');
    return removed;
  }

  // ------------------------------------------------------------------------------------------------ log

  append(id: string, entries: LogEntry[]): Promise<string[]> {
    return this.enqueueAppend(id, entries);
  }

  /** append(), also resolving the log position that preceded the first entry ('' if the log was empty). */
  appendAfter(id: string, entries: LogEntry[]): Promise<{ positions: string[]; prev: string }> {
    let prev = '';
    return this.enqueueAppend(id, entries, (x) => (prev = x)).then((positions) => ({ positions, prev }));
  }

  /** Validates and queues an append for the next group commit; `onPrev` receives the preceding id. */
  private enqueueAppend(id: string, entries: LogEntry[], onPrev?: (pos: string) => void): Promise<string[]> {
    try {
      this.checkOpen();
      checkId(id);
      checkEntries(entries);
    } catch (err) {
      return Promise.reject(err);
    }
    if (entries.length === 0) return Promise.resolve([]);
    const p = new Promise<string[]>((resolve, reject) => {
      this.queue.push({ kind: 'append', key: logKey(id), entries: entries.map(entryArgs), resolve, reject, prev: onPrev });
    });
    this.scheduleFlush();
    return this.track(p);
  }

  private enqueueScript(cmd: ScriptName, args: Array<string | Buffer>): Promise<unknown> {
    const p = new Promise<unknown>((resolve, reject) => {
      this.queue.push({ kind: 'script', cmd, key: String(args[0]), args, resolve, reject });
    });
    this.scheduleFlush();
    return this.track(p);
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Group commit: writes issued until the event loop comes round (setImmediate) go out as one pipeline
   * (one socket write, one round trip, one AOF fsync in Redis), in call order. Catalog changes use the
   * same queue, so an append issued before a delete reaches Redis before it. An append of several
   * entries is one script call, so it is atomic and contiguous.
   */
  private flush(): void {
    if (!this.flushScheduled) return;
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (!batch.length) return;
    if (this.isCluster) {
      for (const item of batch) {
        let chain = this.keyChains.get(item.key);
        if (!chain) this.keyChains.set(item.key, (chain = { items: [], busy: false }));
        chain.items.push(item);
        this.sendChain(item.key);
      }
      return;
    }
    const pipe = this.redis.pipeline();
    for (const item of batch) {
      if (item.kind === 'script') this.script(item.cmd, pipe)(...item.args);
      else this.script('llmStorageXaddMany', pipe)(item.key, ...manyArgs(item.entries));
    }
    pipe.exec().then(
      (results) => {
        batch.forEach((item, i) => {
          const r = results?.[i];
          if (!r) settle(item, new Error('Connection is closed.'), null);
          else settle(item, r[0], r[1]);
        });
      },
      (err) => {
        for (const item of batch) settle(item, err, null);
      },
    );
  }

  /**
   * Cluster mode: one command in flight per key. All appends queued for one object go out as a single
   * script call (still one round trip per batch, and atomic); ioredis Cluster pipelines cannot span nodes.
   */
  private sendChain(key: string): void {
    const chain = this.keyChains.get(key)!;
    if (chain.busy) return;
    if (!chain.items.length) {
      this.keyChains.delete(key);
      return;
    }
    chain.busy = true;
    let items: PendingWrite[];
    let p: Promise<unknown>;
    const first = chain.items[0]!;
    if (first.kind === 'script') {
      items = [chain.items.shift()!];
      p = this.script(first.cmd)(...first.args);
    } else {
      const n = chain.items.findIndex((i) => i.kind !== 'append');
      items = chain.items.splice(0, n < 0 ? chain.items.length : n);
      const entries = items.flatMap((i) => (i as Extract<PendingWrite, { kind: 'append' }>).entries);
      p = this.script('llmStorageXaddMany')(key, ...manyArgs(entries));
    }
    p.then(
      (res) => {
        if (first.kind === 'script') return settle(first, null, res);
        const [prev, ...ids] = res as string[];
        let o = 0;
        let before = prev!;
        for (const item of items as Array<Extract<PendingWrite, { kind: 'append' }>>) {
          item.prev?.(before);
          item.resolve(ids.slice(o, o + item.entries.length));
          o += item.entries.length;
          before = ids[o - 1]!;
        }
      },
      (err) => {
        for (const item of items) settle(item, err, null);
      },
    ).finally(() => {
      chain.busy = false;
      this.sendChain(key);
    });
  }

  async *readLog(id: string, afterPos?: string): AsyncIterable<Array<{ pos: string; entry: LogEntry }>> {
    this.checkOpen();
    checkId(id);
    let start = afterPos === undefined ? '-' : '(' + checkPos(afterPos);
    const key = logKey(id);
    let count = this.readBatch;
    for (;;) {
      const rows = await wrap(this.redis.xrangeBuffer(key, start, '+', 'COUNT', count));
      if (!rows.length) return;
      let bytes = 0;
      const batch = rows.map(([pos, fields]) => {
        for (const f of fields) bytes += f.length;
        return { pos: pos.toString('latin1'), entry: decodeEntry(fields) };
      });
      yield batch;
      if (rows.length < count) return;
      start = '(' + batch[batch.length - 1]!.pos;
      // keep batches around READ_BATCH_BYTES when entries are big
      count = Math.max(1, Math.min(this.readBatch, Math.floor((rows.length * READ_BATCH_BYTES) / Math.max(1, bytes))));
    }
  }

  async logLength(id: string): Promise<number> {
    this.checkOpen();
    checkId(id);
    return wrap(this.redis.xlen(logKey(id)));
  }

  // ------------------------------------------------------------------------------------------------ snapshots

  async writeSnapshot(id: string, data: Buffer, pos: string): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    checkPos(pos);
    return this.track(this.doWriteSnapshot(id, data, pos));
  }

  private async doWriteSnapshot(id: string, data: Buffer, pos: string): Promise<boolean> {
    const meta = snapKey(id);
    const gen = Date.now().toString(36) + randomBytes(4).toString('hex');
    const n = Math.ceil(data.length / this.chunkSize);
    const createdAt = Date.now();
    const crc = await crc32Sliced(data);
    // 1. announce the generation being written, so its chunks can be found if we crash
    await wrap(this.redis.hset(meta, 'p:' + gen, `${n}:${Date.now()}`));
    try {
      // 2. the chunks. Through ioredis (TLS, cluster) 2 MB per round trip: it copies a command's
      // buffers into one (a page-faulting copy on the event loop), and Redis stores each chunk in
      // one go, so both stay short.
      const perTrip = Math.max(1, Math.floor((2 * 1024 * 1024) / this.chunkSize));
      const prefix = chunkPrefix(id) + gen + ':';
      const direct = this.directTarget();
      if (direct) {
        // A standalone Redis: straight from `data` over a dedicated connection (value-reader.ts).
        const keys = Array.from({ length: n }, (_, j) => prefix + j);
        const views = keys.map((_, j) => data.subarray(j * this.chunkSize, (j + 1) * this.chunkSize));
        await wrap(writeValuesFrom(direct, keys, views));
      } else for (let i = 0; i < n; i += perTrip) {
        const pipe = this.redis.pipeline();
        for (let j = i; j < Math.min(n, i + perTrip); j++) {
          pipe.set(prefix + j, data.subarray(j * this.chunkSize, (j + 1) * this.chunkSize));
        }
        const res = await wrap(pipe.exec());
        for (const r of res ?? []) if (r[0]) throw redisError(r[0]);
      }
    } catch (err) {
      // best effort; if Redis is gone, the next snapshot (or a drop) deletes the abandoned generation
      await this.redis.hdel(meta, 'p:' + gen).catch(() => {});
      await this.deleteChunks(id, gen, n).catch(() => {});
      throw redisError(err);
    }
    // test hook: a throw here is a crash between the steps (nothing after it runs, no cleanup)
    await this.hooks.afterSnapshotChunks?.(id);
    // 3. switch the meta, delete the old chunks and stale generations, trim the log: one atomic script
    const res = (await wrap(
      this.script('llmStorageSnapSwitch')(
        meta,
        logKey(id),
        gen,
        String(n),
        pos,
        String(data.length),
        String(crc),
        String(createdAt),
        nextPos(pos),
        chunkPrefix(id),
        String(Date.now()),
        String(this.stalePendingMs),
      ),
    )) as string;
    if (res === 'ok') return true;
    if (res === 'stale') return false;
    if (res === 'ahead') throw new CommandError(`snapshot position ${pos} is ahead of the log of ${id}`);
    throw new CommandError(`snapshot of ${id} aborted: the object was dropped meanwhile`);
  }

  private async deleteChunks(id: string, gen: string, n: number): Promise<void> {
    const prefix = chunkPrefix(id) + gen + ':';
    for (let i = 0; i < n; i += 256) {
      const keys: string[] = [];
      for (let j = i; j < Math.min(n, i + 256); j++) keys.push(prefix + j);
      await this.redis.unlink(...keys);
    }
  }

  async snapshotInfo(id: string): Promise<SnapshotInfo | null> {
    this.checkOpen();
    checkId(id);
    const [gen, pos, createdAt, size] = await wrap(this.redis.hmget(snapKey(id), 'gen', 'pos', 'createdAt', 'size'));
    if (!gen || !pos) return null;
    return { pos, createdAt: Number(createdAt), size: Number(size) };
  }

  async readSnapshot(id: string): Promise<SnapshotData | null> {
    this.checkOpen();
    checkId(id);
    const meta = snapKey(id);
    for (let attempt = 0; attempt < 5; attempt++) {
      const m = await wrap(this.redis.hgetall(meta));
      if (!m.gen) return null;
      const n = Number(m.chunks);
      const size = Number(m.size);
      const prefix = chunkPrefix(id) + m.gen + ':';
      // Released by the caller once decoded (releaseSnapshotBuffer), here when it is not returned.
      const data = await snapshotBuffer(size, true);
      let ok = false;
      try {
        const got = await this.readChunks(prefix, n, data);
        if (got === 'missing') continue; // replaced by a newer snapshot while we read: read the new one
        if (got !== size) throw new CommandError(`snapshot of ${id} is corrupt (size or checksum mismatch)`);
        if ((await crc32Sliced(data)) !== Number(m.crc)) throw new CommandError(`snapshot of ${id} is corrupt (size or checksum mismatch)`);
        ok = true;
        return { data, pos: m.pos!, createdAt: Number(m.createdAt) };
      } finally {
        if (!ok) releaseSnapshotBuffer(data);
      }
    }
    throw new CommandError(`snapshot of ${id} could not be read consistently`);
  }

  /**
   * Copies chunks `prefix + 0..n-1` back to back into `into`: the bytes copied (-1 when they do not
   * fit), or 'missing' when a chunk is gone (a newer snapshot replaced this one meanwhile).
   * A standalone Redis over plain TCP or a unix socket is read over a dedicated connection straight
   * into `into` (see value-reader.ts); TLS and cluster connections go through ioredis in pieces.
   */
  private async readChunks(prefix: string, n: number, into: Buffer): Promise<number | 'missing'> {
    const keys = Array.from({ length: n }, (_, i) => prefix + i);
    const direct = this.directTarget();
    if (direct) {
      const r = await wrap(readValuesInto(direct, keys, into));
      return r.status === 'ok' ? r.filled : r.status === 'missing' ? 'missing' : -1;
    }
    const lengths: number[] = [];
    for (let i = 0; i < n; i += 256) {
      const pipe = this.redis.pipeline();
      for (const k of keys.slice(i, i + 256)) pipe.strlen(k);
      for (const [err, len] of (await wrap(pipe.exec())) ?? []) lengths.push(err ? 0 : Number(len));
    }
    if (lengths.some((l) => l === 0)) return 'missing';
    const total = lengths.reduce((a, b) => a + b, 0);
    if (total > into.length) return -1;
    return (await this.readPieces(keys, lengths, into)) ? 'missing' : total;
  }

  /** Where readValuesInto can reach the backing Redis, or null (TLS, cluster, sentinel, or turned off). */
  private directTarget(): ValueReaderTarget | null {
    if (!this.directReads || !(this.redis instanceof Redis)) return null;
    const o = this.redis.options;
    if (o.tls || (o.sentinels && o.sentinels.length > 0)) return null;
    return {
      ...(o.path ? { path: o.path } : { host: o.host, port: o.port }),
      username: o.username,
      password: o.password,
      db: o.db,
      timeoutMs: Math.max(o.connectTimeout ?? 0, 10_000),
    };
  }

  /**
   * Copies the values of `keys` (of the given lengths) back to back into `into`,
   * SNAPSHOT_READ_PIECE bytes per GETRANGE, ~16 MiB per round trip. Why pieces: ioredis's reply parser (redis-parser) copies a
   * bulk that spans socket reads into a process-wide pool that grows to 3× the bulk plus what it
   * has handed out, and keeps it for good; reading 4 MiB chunks whole left ~35 MB resident after
   * loading a 68 MB snapshot. True if a chunk shrank or vanished meanwhile (a newer snapshot).
   */
  private async readPieces(keys: string[], lengths: number[], into: Buffer): Promise<boolean> {
    const perTrip = Math.max(1, Math.floor(SNAPSHOT_READ_TRIP / SNAPSHOT_READ_PIECE));
    let pipe = this.redis.pipeline();
    let queued: Array<{ at: number; len: number }> = [];
    const flush = async (): Promise<boolean> => {
      const res = (await wrap(pipe.exec())) ?? [];
      for (const [i, [err, got]] of res.entries()) {
        const want = queued[i]!;
        if (err || !Buffer.isBuffer(got) || got.length !== want.len) return true;
        got.copy(into, want.at);
      }
      pipe = this.redis.pipeline();
      queued = [];
      return false;
    };
    let at = 0;
    for (const [i, len] of lengths.entries()) {
      for (let off = 0; off < len; off += SNAPSHOT_READ_PIECE) {
        const piece = Math.min(SNAPSHOT_READ_PIECE, len - off);
        pipe.getrangeBuffer(keys[i]!, off, off + piece - 1);
        queued.push({ at: at + off, len: piece });
        if (queued.length >= perTrip && (await flush())) return true;
      }
      at += len;
    }
    return queued.length > 0 ? flush() : false;
  }
}

function settle(item: PendingWrite, err: unknown, res: unknown): void {
  if (err) item.reject(redisError(err));
  else if (item.kind === 'script') item.resolve(res);
  else {
    const [prev, ...ids] = res as string[];
    item.prev?.(prev!);
    item.resolve(ids);
  }
}

function checkPos(pos: string): string {
  parsePos(pos);
  return pos;
}

/**
 * XINFO STREAM reply → throws CatalogGapError when events after `afterPos` may have been trimmed away.
 * Trimming (MAXLEN ~) does not record the last trimmed id, so when anything was trimmed a position older
 * than the oldest retained event counts as a gap (a false positive only costs the follower a reload).
 */
function checkGap(afterPos: string, info: unknown[]): void {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < info.length; i += 2) m.set(String(info[i]), info[i + 1]);
  const maxDeleted = m.get('max-deleted-entry-id') as string | undefined;
  if (maxDeleted !== undefined && comparePos(afterPos, maxDeleted) < 0) throw new CatalogGapError(afterPos);
  const first = Array.isArray(m.get('first-entry')) ? String((m.get('first-entry') as unknown[])[0]) : undefined;
  const last = m.get('last-generated-id') as string | undefined;
  const added = m.get('entries-added');
  const length = Number(m.get('length') ?? 0);
  // Redis >= 7 tells whether anything was ever removed; older versions do not (then '0-0' is trusted)
  const trimmed = added !== undefined ? Number(added) > length : afterPos !== '0-0';
  if (!trimmed) return;
  const olderThanRetained = first !== undefined ? comparePos(afterPos, first) < 0 : last !== undefined && comparePos(afterPos, last) < 0;
  if (olderThanRetained) throw new CatalogGapError(afterPos);
}
