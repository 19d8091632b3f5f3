/**
 * The object layer: every LLM object by (db, key) (the registry, registry.ts), made durable through
 * a Storage. Chat memory is chat-memory.ts; the snapshot bytes snapshot-format.ts; following other
 * instances is follower.ts, which calls applyFollowed / applyCatalogEvent here.
 *
 * Write path of a store mutation: validate → append to the object's log (group-committed,
 * durable when it resolves) → apply to the in-memory index → reply. Appends of one object
 * resolve in log order and each apply takes an exclusive turn of the store's gate in that order
 * (the insert itself runs on an engine thread), so live state and a replay of the log agree; the
 * reply comes after the apply ran, so a client reads its own writes.
 * Snapshots (graph + items) are taken in the background after enough changes or time; a restart
 * loads the latest snapshot and replays only the log after it.
 */
import { releaseSnapshotBuffer } from '../util/addon.js';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import type { CatalogEvent, LogEntry, Storage } from '../storage/types.js';
import { IdAliases, VectorIndex, parseFp32Vector, vectorToFp32, MAX_ID, IDS_EXHAUSTED, dimensionMismatch, itemIdFromText, type AliasState, type ItemId } from '../vector/index.js';
import { isInternalKey, comparePos, newObjectId, RESERVED_KEY_ERROR } from '../storage/index.js';
import type { DumpedObject } from './dump.js';
import { LlmObject, ModelObject, StoreObject, type QueuedApply } from './objects.js';
import { objectFromRecord } from './factory.js';
import { ChatObject } from './chat.js';
import type { Attrs } from '../vector/filter.js';
import type { SecretBox } from '../util/secret.js';
import { collectGarbage } from '../util/gc.js';
import { ObjectRegistry } from './registry.js';
import { ChatMemory } from './chat-memory.js';
import { appendedRightAfter } from './log-order.js';
import { frameStoreSnapshot, STORE_HEAD_BYTES, unwrapStoreSnapshot } from './snapshot-format.js';

export interface ManagerOptions {
  /** Snapshot a store after this many logged changes. */
  snapshotChanges: number;
  /** ... or when it has changes and this much time passed since its last snapshot. */
  snapshotIntervalMs: number;
  /** How often chat sessions idle past their app's history ttl are forgotten (ChatMemory.expireSessions). */
  sessionSweepMs: number;
}

/**
 * Most ADDs one engine task inserts. Sharing a task saves the hand-offs to and from the writer
 * thread (2 thread wake-ups per ADD, ~half the event loop's work per ADD under load) and sends
 * replies in groups; larger groups make event-loop turns and writer stretches longer. Measured
 * under saturating ADDs (bench:latency (b)'s load, 2 cores, the writer yielding between inserts):
 * proxied GET p99 1.5-2.4 ms with caps of 4, 8 or 12, 1.9-3.4 ms at 16, 2.5-2.7 ms with no cap.
 */
const MAX_ADD_BATCH = 8;

export const DEFAULT_MANAGER_OPTIONS: ManagerOptions = { snapshotChanges: 20_000, snapshotIntervalMs: 60_000, sessionSweepMs: 60_000 };

export class ObjectManager extends ObjectRegistry {
  loading = true;
  private timer: NodeJS.Timeout | null = null;
  /** --read-only: every change to LLM objects is refused (following others still applies theirs). */
  readOnly = false;
  private readonly opts: ManagerOptions;
  /** Chat apps' memory: turns, summaries, forgets, snapshots, the idle-session sweep (chat-memory.ts). */
  readonly chats: ChatMemory = new ChatMemory(this);

  constructor(
    readonly storage: Storage,
    /** The server secret's box: seals the secrets of LLM definitions at rest and opens them. */
    readonly secrets: SecretBox,
    opts: Partial<ManagerOptions> = {},
  ) {
    super();
    this.opts = { ...DEFAULT_MANAGER_OPTIONS, ...opts };
  }

  // ---- mutations of the keyspace -----------------------------------------------------------

  /** Creates or overwrites (db, name) with `obj`: durable first, then visible. */
  checkWritable(): void {
    if (this.readOnly) throw new CommandError('this instance is read-only (--read-only): change LLM objects on another instance', 'READONLY');
  }

  async put(obj: LlmObject): Promise<void> {
    this.checkWritable();
    // Such a name would be an object no key command can reach (they refuse the prefix).
    if (isInternalKey(obj.name)) throw new CommandError(RESERVED_KEY_ERROR);
    await this.storage.putRecord(obj.record());
    // The follower may have loaded a copy of it from the catalog meanwhile: this one replaces it.
    this.register(obj);
  }

  async remove(db: number, name: string): Promise<boolean> {
    const obj = this.get(db, name);
    if (!obj) return false;
    this.checkWritable();
    await this.storage.deleteRecord(db, name);
    // Unless the follower already did, or another object took the name meanwhile.
    if (this.get(db, name) === obj) this.unregister(db, name);
    obj.close();
    return true;
  }

  async rename(db: number, from: string, to: string): Promise<void> {
    const obj = this.get(db, from);
    if (!obj) throw new CommandError('no such key');
    if (from === to) return;
    this.checkWritable();
    await this.storage.renameRecord(db, from, to);
    // The log follower may have applied this very rename already (it reads the catalog events).
    if (this.get(db, to) === obj) return;
    if (this.get(db, from) === obj) this.unregister(db, from);
    const displaced = this.get(db, to);
    if (displaced) this.unregister(db, to)?.close();
    obj.name = to;
    this.register(obj);
  }

  // ---- RESTORE and COPY --------------------------------------------------------------------

  /**
   * Creates (db, name) from a DUMP payload's contents (dump.ts) under a new id, replacing what is
   * there: the definition first (durable, as for a create), then a store's items through its log,
   * so every instance and a restart see them.
   */
  async restore(db: number, name: string, dumped: DumpedObject, expiresAt: number | null): Promise<void> {
    this.checkWritable();
    const obj = objectFromRecord({ id: newObjectId(), db, name, kind: dumped.kind, config: dumped.config, createdAt: Date.now() }, this.secrets);
    obj.expiresAt = expiresAt;
    await this.put(obj);
    if (obj instanceof StoreObject && dumped.items.length > 0) {
      for (let i = 0; i < dumped.items.length; i += 1000) await this.appendLog(obj.id, dumped.items.slice(i, i + 1000));
      await this.catchUp(obj);
    }
  }

  // ---- expiry (EXPIRE and friends on LLM keys) ---------------------------------------------

  /**
   * Sets (a time in ms since the epoch) or clears (null) when an object expires: durable in its
   * catalog record first (every instance sees it), then in effect. A time already past removes it.
   */
  async setExpiry(obj: LlmObject, at: number | null): Promise<void> {
    this.checkWritable();
    if (at !== null && at <= Date.now()) {
      await this.dropExpired(obj);
      return;
    }
    const before = obj.expiresAt;
    obj.expiresAt = at;
    try {
      await this.storage.putRecord(obj.record());
    } catch (err) {
      obj.expiresAt = before;
      throw err;
    }
  }

  /** An expired object is gone for readers at once (registry.get); a writer removes it durably. */
  protected override expired(obj: LlmObject): void {
    if (this.readOnly || this.expiring.has(obj)) return;
    this.expiring.add(obj);
    void this.dropExpired(obj)
      .catch((err: Error) => logger.warn({ key: obj.name, db: obj.db, err: err.message }, 'could not remove an expired LLM object; will retry'))
      .finally(() => this.expiring.delete(obj));
  }

  private readonly expiring = new Set<LlmObject>();

  private async dropExpired(obj: LlmObject): Promise<void> {
    if (this.getRaw(obj.db, obj.name) !== obj) return;
    await this.storage.deleteRecord(obj.db, obj.name);
    if (this.getRaw(obj.db, obj.name) === obj) this.unregister(obj.db, obj.name);
    obj.close();
  }

  /** Removes every object of one db (FLUSHDB) or of all dbs (FLUSHALL). */
  async removeAll(db?: number): Promise<number> {
    const victims = [...this.objects.values()].filter((o) => db === undefined || o.db === db);
    for (const o of victims) await this.remove(o.db, o.name);
    return victims.length;
  }

  /** Writes every object again (after a FLUSHDB wiped the storage db): definitions, then snapshots. */
  async persistAll(): Promise<void> {
    for (const o of this.objects.values()) {
      await this.storage.putRecord(o.record());
      if (o instanceof ModelObject) o.unsealedAtRest = []; // written again, sealed
      if (o instanceof StoreObject) {
        o.changesSinceSnapshot = Math.max(o.changesSinceSnapshot, 1);
        await this.snapshot(o, true);
      }
    }
  }

  // ---- vector store mutations ------------------------------------------------------------

  /**
   * Adds or updates one item. `id` undefined → a fresh auto id. Checks everything that could
   * make the apply fail before logging, so a logged entry always applies.
   */
  async storeAdd(store: StoreObject, id: ItemId | undefined, vector: Float32Array, data: string, attrs?: Attrs): Promise<ItemId> {
    this.checkWritable();
    this.checkLive(store);
    const dim = store.expectedDim;
    if (dim !== undefined && vector.length !== dim) throw dimensionMismatch(dim, vector.length);
    if (store.params.space === 'cosine' && vector.every((x) => x === 0)) {
      throw new CommandError('invalid embedding: zero vector has no direction in cosine space');
    }
    const fixesDim = store.index.dim === undefined && store.pendingDim === undefined;
    if (fixesDim) store.pendingDim = vector.length;
    const entry: LogEntry = { op: 'add', data, vec: vectorToFp32(vector) };
    if (id === undefined) {
      // The id is resolved when the entry is applied, in log order, as max(counter, hint): every
      // instance following the log computes the same id, and it is never one an earlier ADD took.
      const hint = Math.max(store.hintNext, store.index.nextAutoId);
      if (hint > MAX_ID) throw new CommandError(IDS_EXHAUSTED);
      store.hintNext = hint + 1;
      entry.id = 'auto';
      entry.hint = String(hint);
    } else {
      entry.id = String(id);
      // Ids of 2^32 and more are out of the auto ids' range: they do not move them.
      if (typeof id === 'number' && id <= MAX_ID) store.hintNext = Math.max(store.hintNext, id + 1);
    }
    if (attrs && Object.keys(attrs).length > 0) entry.attrs = JSON.stringify(attrs);
    const result = await this.logAndSettle(store, entry, vector, () => {
      if (fixesDim && store.index.dim === undefined) store.pendingDim = undefined;
    });
    // Only another instance's concurrent ADDs can make an applied auto id run out here.
    if (typeof result !== 'number' && typeof result !== 'bigint') throw new CommandError(id === undefined ? IDS_EXHAUSTED : 'the item could not be added');
    return result;
  }

  async storeRem(store: StoreObject, id: ItemId): Promise<boolean> {
    this.checkLive(store);
    const label = store.aliases.labelOf(id);
    if (label === undefined || !store.index.has(label)) return false;
    return (await this.logAndSettle(store, { op: 'rem', id: String(id) })) === true;
  }

  /** Replaces an item's attributes (`{}` clears them). False when the item does not exist. */
  async storeSetAttrs(store: StoreObject, id: ItemId, attrs: Attrs): Promise<boolean> {
    this.checkLive(store);
    const label = store.aliases.labelOf(id);
    if (label === undefined || !store.index.has(label)) return false;
    return (await this.logAndSettle(store, { op: 'attrs', id: String(id), attrs: JSON.stringify(attrs) })) === true;
  }

  /**
   * The store is still the object at its key: it may have been deleted or overwritten while the
   * command waited (for an embedding, or for an earlier write of another client).
   */
  private checkLive(store: StoreObject): void {
    if (this.get(store.db, store.name) !== store) throw new CommandError(`vector store does not exist: ${store.name}`);
  }

  /**
   * Logs one mutation of `store` (durable when the append resolves) and applies it in log order
   * (settle). `appendFailed` runs when the append fails, before the error is rethrown. While any
   * such write is in flight the store counts as being written (writingTo): each settle catches up
   * on entries of other writers in between, so the follower need not read the store's log, which
   * would bring back every entry this instance writes.
   */
  private async logAndSettle(store: StoreObject, entry: LogEntry, vector?: Float32Array, appendFailed?: () => void): Promise<unknown> {
    store.writesInFlight++;
    try {
      let appended: { positions: string[]; prev: string | undefined };
      try {
        appended = await this.appendLog(store.id, [entry]);
      } catch (err) {
        appendFailed?.();
        throw err;
      }
      return await this.settle(store, appended.positions[0]!, appended.prev, entry, vector);
    } finally {
      if (--store.writesInFlight === 0) this.onStoreQuiet(store.id);
    }
  }

  /** Is this instance logging a mutation of the store with this object id (see logAndSettle)? */
  writingTo(id: string): boolean {
    const o = this.byId(id);
    return o instanceof StoreObject && o.writesInFlight > 0;
  }

  /** Called when the last of this instance's in-flight writes to a store settled (the follower's hook). */
  onStoreQuiet: (id: string) => void = () => {};

  /** Appends entries; `prev` is the position that preceded them when the storage can tell. */
  async appendLog(id: string, entries: LogEntry[]): Promise<{ positions: string[]; prev: string | undefined }> {
    if (this.storage.appendAfter) return this.storage.appendAfter(id, entries);
    return { positions: await this.storage.append(id, entries), prev: undefined };
  }

  /**
   * Applies this instance's own entry at `pos`, strictly in log order: directly when it follows
   * the last applied entry (no other writer can be in between: stream ids are dense within a
   * millisecond), else after catching up through the log, which applies any other instance's
   * entries first. Resolves the entry's result (the item id for ADD).
   */
  private async settle(store: StoreObject, pos: string, prev: string | undefined, entry: LogEntry, vector?: Float32Array): Promise<unknown> {
    store.ownWrites++;
    if (store.appliedPos !== '' && comparePos(pos, store.appliedPos) <= 0) return takeResult(store, pos);
    if (appendedRightAfter(store.appliedPos, pos, prev)) return this.apply(store, pos, entry, vector);
    await this.catchUp(store, pos);
    return takeResult(store, pos);
  }

  /**
   * Applies every log entry of `store` after what is applied, up to and including `upTo`;
   * resolves once they ran on the index.
   */
  async catchUp(store: StoreObject, upTo?: string): Promise<void> {
    if (await this.behindSnapshot(store)) {
      await this.reloadObject(store);
      return;
    }
    let n = 0;
    let last: Promise<unknown> | undefined;
    for await (const batch of this.storage.readLog(store.id, store.appliedPos || undefined)) {
      for (const { pos, entry } of batch) {
        if (upTo !== undefined && comparePos(pos, upTo) > 0) {
          await last?.catch(() => undefined);
          return;
        }
        last = this.applyRecorded(store, pos, entry) ?? last;
      }
      if ((n += batch.length) >= 256) {
        n = 0;
        await yieldToEventLoop();
      }
    }
    await last?.catch(() => undefined);
  }

  /**
   * Has another instance's snapshot covered entries this instance has not applied? The log is
   * trimmed in the same atomic step that switches the snapshot, so those entries are gone from
   * the log: the object must be reloaded from that snapshot (plus the tail) instead.
   */
  async behindSnapshot(obj: StoreObject | ChatObject): Promise<boolean> {
    const info = await this.storage.snapshotInfo(obj.id);
    return info !== null && (obj.appliedPos === '' || comparePos(info.pos, obj.appliedPos) > 0);
  }

  /** Reloads a store or chat app from its latest snapshot and log tail (after missing trimmed entries). */
  async reloadObject(obj: StoreObject | ChatObject): Promise<void> {
    logger.info({ key: obj.name, appliedPos: obj.appliedPos }, 'another instance snapshotted past this one: reloading the object from the snapshot');
    if (obj instanceof StoreObject) await obj.gate.exclusive(() => this.loadStore(obj));
    else await this.chats.load(obj);
  }

  /** Applies an entry read from the log (follower, catch-up) and keeps its result for a waiting writer. */
  applyRecorded(store: StoreObject, pos: string, entry: LogEntry): Promise<ApplyResult> | undefined {
    if (store.appliedPos !== '' && comparePos(pos, store.appliedPos) <= 0) return undefined;
    const r = this.apply(store, pos, entry);
    recordResult(store, pos, r);
    return r;
  }

  /**
   * Takes one log entry (live or replayed) for applying: it runs in an exclusive turn of the
   * store's gate, after every entry taken before it. Resolves the op's result. Entries taken while
   * a turn waits for the gate join that turn (applyQueued), so under load consecutive ADDs reach
   * the engine together.
   */
  private apply(store: StoreObject, pos: string, entry: LogEntry, vector?: Float32Array): Promise<ApplyResult> {
    store.appliedPos = pos;
    return new Promise<ApplyResult>((resolve, reject) => {
      store.applyQueue.push({ pos, entry, vector, resolve, reject });
      if (store.applyTurnWaiting) return;
      store.applyTurnWaiting = true;
      void store.gate.exclusive(() => this.applyQueued(store));
    });
  }

  /**
   * The store's exclusive turn for the entries queued by apply(): runs the first MAX_ADD_BATCH of
   * them, in log order. The rest get the next turn, after the reads that came meanwhile: a reader
   * waits for one engine task at most, not for a follower's whole backlog.
   */
  private async applyQueued(store: StoreObject): Promise<void> {
    store.applyTurnWaiting = false;
    const queue = store.applyQueue.splice(0, MAX_ADD_BATCH);
    await this.applyEntries(store, queue);
    if (store.applyQueue.length > 0 && !store.applyTurnWaiting) {
      store.applyTurnWaiting = true;
      void store.gate.exclusive(() => this.applyQueued(store));
    }
  }

  /**
   * Runs entries on the index in order (inside the store's exclusive turn), settling each with its
   * result: runs of ADDs that can share one engine task go as one (applyAddRun), the rest one by one.
   */
  private async applyEntries(store: StoreObject, queue: QueuedApply[]): Promise<void> {
    let i = 0;
    try {
      while (i < queue.length) {
        const n = await this.applyAddRun(store, queue, i);
        if (n > 0) {
          i += n;
          continue;
        }
        const q = queue[i]!;
        await this.applyNow(store, q.pos, q.entry, q.vector).then(q.resolve, q.reject);
        i++;
      }
    } catch (err) {
      // Not reachable (applyNow and applyAddRun settle every entry they take); never leave a writer hanging.
      for (; i < queue.length; i++) queue[i]!.reject(err);
    }
  }

  /**
   * Applies the ADDs from queue[from] on that can share one engine task: consecutive, not yet on
   * the index, at least two (at most MAX_ADD_BATCH), with ids below 2^32 that are their own labels,
   * each id once. Exactly what applyNow does for each of them, one after another. Returns how many
   * it took (0: none).
   */
  private async applyAddRun(store: StoreObject, queue: QueuedApply[], from: number): Promise<number> {
    const addable = (q: QueuedApply | undefined) =>
      q !== undefined && q.entry.op === 'add' && (store.indexedPos === '' || comparePos(q.pos, store.indexedPos) > 0);
    if (store.aliases.size > 0 || !addable(queue[from]) || !addable(queue[from + 1])) return 0;
    const batch = store.index.newBatch();
    const taken: Array<{ q: QueuedApply; ext: number; error?: Error }> = [];
    for (let i = from; i < queue.length && addable(queue[i]) && taken.length < MAX_ADD_BATCH; i++) {
      const q = queue[i]!;
      let ext: ItemId;
      try {
        ext = addedId(q.entry, batch.nextAutoId);
      } catch {
        break; // a malformed id: applyNow skips it, as any entry that cannot be applied
      }
      if (typeof ext !== 'number' || ext > MAX_ID || store.index.inBatch(batch, ext)) break;
      this.markIndexed(store, q.pos);
      if (String(q.entry.id) === 'auto') store.hintNext = Math.max(store.hintNext, ext + 1);
      try {
        store.index.batchAdd(batch, ext, q.vector ?? parseFp32Vector(q.entry.vec as Buffer), String(q.entry.data ?? ''));
        taken.push({ q, ext });
      } catch (err) {
        taken.push({ q, ext, error: err as Error });
      }
    }
    if (taken.length === 0) return 0;
    let results: Array<boolean | Error>;
    try {
      results = await store.index.runBatch(batch);
    } catch (err) {
      results = batch.items.map(() => err as Error);
    }
    let k = 0;
    for (let j = 0; j < taken.length; j++) {
      const t = taken[j]!;
      if (t.error) {
        this.settleFailed(store, t.q, t.error);
        continue;
      }
      const r = results[k++]!;
      if (r instanceof Error) {
        // The engine failed on this one (it gets the error; the reload is scheduled); the ones
        // after it were not tried: they are taken again, one run at a time, as applyNow would.
        t.q.reject(this.engineFailure(store, r));
        const untried = taken.length - j - 1;
        store.indexedPos = t.q.pos;
        store.changesSinceSnapshot -= untried;
        store.logLength -= untried;
        return j + 1;
      }
      try {
        this.added(store, t.ext, t.q.entry);
        t.q.resolve(t.ext);
      } catch (err) {
        this.settleFailed(store, t.q, err as Error);
      }
    }
    return taken.length;
  }

  /** The entry at `pos` runs on the index now (what a snapshot will hold). */
  private markIndexed(store: StoreObject, pos: string): void {
    store.indexedPos = pos;
    store.changesSinceSnapshot++;
    store.logLength++;
  }

  /** After an ADD's insert: its dimension is settled, and its attributes replace the item's (ADD replaces the whole item). */
  private added(store: StoreObject, label: number, entry: LogEntry): void {
    store.pendingDim = undefined;
    store.attrs.set(label, store.index.slotOf(label), entry.attrs !== undefined ? (JSON.parse(String(entry.attrs)) as Attrs) : undefined);
  }

  /** An entry failed as applyNow's catch would have it: bad input is skipped, anything else is an engine failure. */
  private settleFailed(store: StoreObject, q: QueuedApply, err: Error): void {
    if (err instanceof CommandError || err instanceof SyntaxError) q.resolve(this.skipped(store, String(q.entry.op), err));
    else q.reject(this.engineFailure(store, err));
  }

  /** Runs one log entry on the index (inside the store's exclusive turn). Returns the op's result. */
  private async applyNow(store: StoreObject, pos: string, entry: LogEntry, vector?: Float32Array): Promise<ApplyResult> {
    // A reload (after an engine failure, or another instance's snapshot) already ran it.
    if (store.indexedPos !== '' && comparePos(pos, store.indexedPos) <= 0) return store.results.get(pos) as ApplyResult;
    this.markIndexed(store, pos);
    const op = String(entry.op);
    const rawId = String(entry.id);
    try {
      if (op === 'add') {
        // The log holds item ids (up to 2^64 − 1); the index holds labels (see id-alias.ts).
        const ext = addedId(entry, store.index.nextAutoId);
        if (rawId === 'auto') store.hintNext = Math.max(store.hintNext, (ext as number) + 1);
        const vec = vector ?? parseFp32Vector(entry.vec as Buffer);
        const label = store.aliases.labelForAdd(ext, (l) => store.index.has(l));
        const small = typeof ext === 'number' && ext <= MAX_ID;
        try {
          await store.index.addAsync(label, vec, String(entry.data ?? ''), small && label === ext);
        } catch (err) {
          if (!store.index.has(label)) store.aliases.release(label);
          throw err;
        }
        if (small && label !== ext) store.index.ensureNextId((ext as number) + 1);
        this.added(store, label, entry);
        return ext;
      }
      const id = store.aliases.labelOf(itemIdFromText(rawId));
      if (op === 'rem') {
        if (id === undefined || !store.index.has(id)) return false;
        store.attrs.delete(id, store.index.slotOf(id));
        store.index.remove(id);
        store.aliases.release(id);
        return true;
      }
      if (op === 'attrs') {
        if (id === undefined || !store.index.has(id)) return false;
        store.attrs.set(id, store.index.slotOf(id), JSON.parse(String(entry.attrs)) as Attrs);
        return true;
      }
      logger.warn({ store: store.name, op }, 'unknown log entry skipped');
    } catch (err) {
      if (err instanceof CommandError || err instanceof SyntaxError) return this.skipped(store, op, err);
      throw this.engineFailure(store, err as Error);
    }
    return undefined;
  }

  /** A logged entry that cannot be applied (bad input): skipped, with a warning. */
  private skipped(store: StoreObject, op: string, err: Error): undefined {
    // Only reachable for entries written by an older or concurrent writer; replay skips them alike.
    logger.warn({ store: store.name, op, err: err.message }, 'log entry could not be applied; skipped');
    return undefined;
  }

  /**
   * The vector engine failed on an entry that is in the log (out of memory, a native error): the
   * writer gets a clear error (returned, for throwing), and the store is rebuilt from its snapshot
   * and log, in its turn after what is queued, so the entry is applied again and nothing
   * acknowledged is lost.
   */
  private engineFailure(store: StoreObject, err: Error): CommandError {
    logger.error({ store: store.name, err: err.message }, 'vector engine failed on a logged change: reloading the store from its snapshot and log');
    store.engineFailures++;
    // A failure while reloading is not retried by another reload (it would fail alike): skipped.
    if (!store.reloading) {
      void store.gate
        .exclusive(() => this.loadStore(store))
        .catch((e: Error) => logger.error({ store: store.name, err: e.message }, 'vector store reload failed'));
    }
    return new CommandError(`vector engine failed: ${err.message}; the change is in the log and is applied again as the store reloads`);
  }

  // ---- following other instances -----------------------------------------------------------

  /** Log positions to follow: every store and chat app, from what is applied. */
  followPositions(): Map<string, string> {
    const m = new Map<string, string>();
    for (const o of this.objects.values()) {
      if (o instanceof StoreObject || o instanceof ChatObject) m.set(o.id, o.appliedPos);
    }
    return m;
  }

  /**
   * For the follower, after a read that brought nothing for these objects: reloads any that
   * another instance's snapshot has passed (their log may be trimmed empty, so no entry would
   * ever arrive to reveal the gap).
   */
  async checkSnapshotGaps(): Promise<void> {
    for (const o of [...this.objects.values()]) {
      if ((o instanceof StoreObject || o instanceof ChatObject) && (await this.behindSnapshot(o))) await this.reloadObject(o);
    }
  }

  /** Applies entries another instance logged; returns the positions actually applied. */
  async applyFollowed(id: string, entries: Array<{ pos: string; entry: LogEntry }>): Promise<string[]> {
    const obj = this.byId(id);
    const applied: string[] = [];
    if (!(obj instanceof StoreObject || obj instanceof ChatObject)) return applied;
    // This instance's own writes come back here, already applied: nothing to do, and no reason to
    // ask Redis about snapshots (a round trip per batch of its own ADDs). Trimmed entries past what
    // is applied show up with the next new entry, or at the idle check (checkSnapshotGaps).
    if (!entries.some(({ pos }) => obj.appliedPos === '' || comparePos(pos, obj.appliedPos) > 0)) return applied;
    if (await this.behindSnapshot(obj)) {
      // Entries between what is applied and this batch were trimmed by another instance's snapshot.
      await this.reloadObject(obj);
      return applied;
    }
    if (obj instanceof StoreObject) {
      let n = 0;
      for (const { pos, entry } of entries) {
        if (obj.appliedPos !== '' && comparePos(pos, obj.appliedPos) <= 0) continue;
        this.applyRecorded(obj, pos, entry);
        applied.push(pos);
        // A follower catching up must not stall its own clients.
        if (++n % 128 === 0) await yieldToEventLoop();
      }
    } else if (obj instanceof ChatObject) {
      for (const { pos, entry } of entries) {
        if (obj.appliedPos !== '' && comparePos(pos, obj.appliedPos) <= 0) continue;
        obj.apply(pos, entry);
        applied.push(pos);
      }
    }
    return applied;
  }

  /**
   * Applies a catalog change made by any instance. Events are hints: each affected key is
   * reconciled with the catalog as it is now, so stale events (this instance's own, or ones
   * overtaken by later changes) change nothing, and an object that only moved is moved, not reloaded.
   */
  async applyCatalogEvent(e: CatalogEvent): Promise<void> {
    if (e.op === 'rename' && e.to !== undefined) {
      await this.reconcile(e.db, e.to);
      await this.reconcile(e.db, e.name);
    } else {
      await this.reconcile(e.db, e.name);
    }
  }

  private async reconcile(db: number, name: string): Promise<void> {
    const rec = await this.storage.getRecord(db, name);
    const local = this.getRaw(db, name);
    if (!rec) {
      if (local) this.unregister(db, name)?.close();
      return;
    }
    if (local?.id === rec.id) {
      local.expiresAt = typeof rec.expiresAt === 'number' ? rec.expiresAt : null; // EXPIRE / PERSIST elsewhere
      return;
    }
    const moved = this.byId(rec.id);
    if (moved) {
      this.unregister(moved.db, moved.name);
      this.unregister(db, name)?.close();
      moved.name = name;
      this.register(moved);
      return;
    }
    const obj = objectFromRecord(rec, this.secrets);
    if (obj instanceof ModelObject) this.warnSecrets(obj);
    if (obj instanceof StoreObject) await this.loadStore(obj);
    else if (obj instanceof ChatObject) await this.chats.load(obj);
    if (this.get(db, name)?.id === rec.id) {
      obj.close();
      return;
    }
    this.register(obj);
  }

  /** Reloads definitions from the catalog (after missing events); returns the catalog position. */
  async resyncCatalog(): Promise<string> {
    const { records, pos } = await this.storage.loadCatalogAt();
    const keep = new Set(records.map((r) => `${r.db}\u0000${r.name}\u0000${r.id}`));
    for (const o of [...this.objects.values()]) {
      if (!keep.has(`${o.db}\u0000${o.name}\u0000${o.id}`)) this.unregister(o.db, o.name)?.close();
    }
    for (const rec of records) {
      if (this.get(rec.db, rec.name)?.id !== rec.id) await this.reconcile(rec.db, rec.name);
    }
    return pos;
  }

  // ---- snapshots ---------------------------------------------------------------------------

  startSnapshots(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      void this.snapshotDue();
      this.sweepExpired();
      if (Date.now() - this.chats.lastSweep >= this.opts.sessionSweepMs) void this.chats.expireSessions();
    }, Math.min(1000, this.opts.sessionSweepMs));
    this.timer.unref();
  }

  /** Expired objects nobody looked up are removed within a second (as Redis's active expiry). */
  private sweepExpired(): void {
    const now = Date.now();
    for (const o of [...this.objects.values()]) if (o.expiresAt !== null && o.expiresAt <= now) this.expired(o);
  }

  private async snapshotDue(): Promise<void> {
    const now = Date.now();
    for (const o of this.objects.values()) {
      if (o instanceof ChatObject && o.changesSinceSnapshot >= Math.min(1000, this.opts.snapshotChanges)) await this.chats.snapshot(o);
      // Only an instance that wrote to the store since its last snapshot takes the next one (followers
      // would otherwise all serialize and store the same graph).
      if (!(o instanceof StoreObject) || o.snapshotting || o.changesSinceSnapshot === 0 || o.ownWrites === 0) continue;
      if (o.changesSinceSnapshot >= this.opts.snapshotChanges || now - o.lastSnapshotAt >= this.opts.snapshotIntervalMs) {
        await this.snapshot(o);
      }
    }
  }

  /** Snapshots one store (graph + items) at a consistent log position, then the log is trimmed. */
  async snapshot(store: StoreObject, force = false): Promise<boolean> {
    if (store.snapshotting || (!force && store.changesSinceSnapshot === 0) || store.appliedPos === '') return false;
    store.snapshotting = true;
    const started = Date.now();
    try {
      let pos = '';
      let changes = 0;
      let own = 0;
      let attrs = Buffer.alloc(0);
      // A shared turn: searches go on while the graph is written on an engine thread; mutations of
      // this store wait for it. What ran on the index is what the snapshot holds (indexedPos).
      const graph = await store.gate.shared(() =>
        store.index.serialize({
        onCapture: () => {
          pos = store.indexedPos;
          changes = store.changesSinceSnapshot;
          own = Math.min(store.ownWrites, changes); // counted at append: some may not be applied yet
          const aliases = store.aliases.state();
          // Without aliases, the format every earlier version wrote and reads.
          attrs = Buffer.from(JSON.stringify(aliases ? { attrs: [...store.attrs], aliases } : [...store.attrs]), 'utf8');
        },
          frame: { head: STORE_HEAD_BYTES, tail: () => attrs },
        }),
      );
      const data = frameStoreSnapshot(graph, attrs.length);
      try {
        if (pos === '') return false;
        await this.storage.writeSnapshot(store.id, data, pos);
      } finally {
        releaseSnapshotBuffer(data); // tens of MB, freed now rather than at some later collection
      }
      store.changesSinceSnapshot -= changes;
      // Writes made while the snapshot was written still make this instance the one to take the next.
      store.ownWrites = Math.max(0, store.ownWrites - own);
      store.lastSnapshotAt = Date.now();
      store.lastSnapshotPos = pos;
      store.logLength = Math.max(0, store.logLength - changes);
      logger.debug({ store: store.name, bytes: data.length, ms: Date.now() - started }, 'snapshot written');
      return true;
    } catch (err) {
      logger.warn({ store: store.name, err: (err as Error).message }, 'snapshot failed; will retry');
      return false;
    } finally {
      store.snapshotting = false;
    }
  }

  // ---- loading -----------------------------------------------------------------------------

  /** Loads every object: definitions, then each store's snapshot and log tail. */
  async load(): Promise<string> {
    const started = Date.now();
    const { records, pos: catalogPos } = await this.storage.loadCatalogAt();
    let vectors = 0;
    for (const rec of records) {
      let obj: LlmObject;
      try {
        obj = objectFromRecord(rec, this.secrets);
      } catch (err) {
        logger.error({ key: rec.name, db: rec.db, kind: rec.kind, err: (err as Error).message }, 'object definition could not be loaded; skipped');
        continue;
      }
      if (obj instanceof ModelObject) this.warnSecrets(obj);
      if (obj instanceof StoreObject) {
        await this.loadStore(obj);
        vectors += obj.index.size;
      } else if (obj instanceof ChatObject) {
        await this.chats.load(obj);
      }
      this.register(obj);
    }
    this.loading = false;
    logger.info({ objects: records.length, vectors, ms: Date.now() - started }, 'LLM objects loaded');
    // Loading big stores leaves large transient buffers (snapshot chunks, the assembled snapshot):
    // collect them now rather than whenever V8 gets to it, so the process settles at its real size.
    if (vectors >= 10_000) collectGarbage();
    return catalogPos;
  }

  /** Says so when an LLM's stored secrets cannot be opened here, or are stored unsealed (by an earlier version). */
  private warnSecrets(obj: ModelObject): void {
    const locked = obj.llm.type === 'local' ? undefined : obj.llm.locked;
    if (locked) {
      logger.warn(
        { key: obj.name, db: obj.db, fields: locked.fields, sealedWithKeyId: locked.keyId, thisKeyId: this.secrets.keyId },
        locked.reason === 'other-secret'
          ? 'LLM secrets were sealed with a different server secret: its calls fail until this instance has the same secret-file / REDIS_LLM_SECRET'
          : 'LLM secrets are damaged: its calls fail until it is recreated',
      );
    }
    if (obj.unsealedAtRest.length > 0) {
      logger.warn(
        { key: obj.name, db: obj.db, fields: obj.unsealedAtRest },
        'LLM secrets are stored unsealed (written by an earlier version): recreate the LLM (LLM.CREATE-LLM) to seal them',
      );
    }
  }

  private async loadStore(store: StoreObject): Promise<void> {
    store.reloading = true;
    try {
      await this.loadStoreNow(store);
    } finally {
      store.reloading = false;
    }
  }

  private async loadStoreNow(store: StoreObject): Promise<void> {
    const t0 = Date.now();
    const snap = await this.storage.readSnapshot(store.id);
    if (snap) {
      const { graph, attrs, aliases } = unwrapStoreSnapshot(snap.data);
      try {
        store.index = await VectorIndex.deserialize(graph); // copies what it keeps
      } finally {
        releaseSnapshotBuffer(snap.data);
      }
      store.aliases = IdAliases.fromState(aliases);
      store.attrs.clear();
      for (const [id, a] of attrs) {
        const slot = store.index.slotOf(id);
        if (slot >= 0) store.attrs.set(id, slot, a);
      }
      store.appliedPos = snap.pos;
      store.indexedPos = snap.pos;
      store.lastSnapshotPos = snap.pos;
      store.lastSnapshotAt = snap.createdAt;
    } else {
      // Rebuilt from the whole log (a store never snapshotted, or reloaded after an engine failure).
      store.index = new VectorIndex(store.params);
      store.aliases = new IdAliases();
      store.attrs.clear();
      store.appliedPos = '';
      store.indexedPos = '';
      store.lastSnapshotAt = Date.now();
    }
    let replayed = 0;
    for await (const batch of this.storage.readLog(store.id, snap?.pos)) {
      // Recorded: a writer whose entry is in this tail (a reload during its catch-up) takes its result.
      const queue: QueuedApply[] = [];
      for (const { pos, entry } of batch) {
        if (store.indexedPos !== '' && comparePos(pos, store.indexedPos) <= 0) continue;
        recordResult(store, pos, new Promise<ApplyResult>((resolve, reject) => queue.push({ pos, entry, resolve, reject })).catch(() => undefined));
      }
      // Taken for applying: the follower leaves them alone (it would queue them a second time, its
      // own result waiting for itself once the reload is done).
      const last = queue[queue.length - 1]?.pos;
      if (last !== undefined && (store.appliedPos === '' || comparePos(last, store.appliedPos) > 0)) store.appliedPos = last;
      await this.applyEntries(store, queue);
      replayed += batch.length;
      if (replayed % 100_000 < batch.length) logger.info({ store: store.name, replayed }, 'replaying vector store log');
    }
    store.changesSinceSnapshot = replayed;
    store.logLength = replayed;
    if (store.index.size >= 10_000 || Date.now() - t0 > 1000) {
      logger.info({ store: store.name, items: store.index.size, replayed, ms: Date.now() - t0 }, 'vector store loaded');
    }
  }

  /** Graceful shutdown: snapshot stores with changes (so the next start replays little). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const o of this.objects.values()) {
      if (o instanceof StoreObject && o.changesSinceSnapshot > 0) await this.snapshot(o);
      if (o instanceof ChatObject) await this.chats.snapshot(o);
    }
    for (const o of this.objects.values()) o.close();
  }
}

type ApplyResult = ItemId | boolean | undefined;

/** The item id an ADD entry writes: its own, or for an auto id max(the index's next auto id, the writer's hint). */
function addedId(entry: LogEntry, nextAutoId: number): ItemId {
  const rawId = String(entry.id);
  return rawId === 'auto' ? Math.max(nextAutoId, Number(String(entry.hint)) || 1) : itemIdFromText(rawId);
}

function takeResult(store: StoreObject, pos: string): unknown {
  const r = store.results.get(pos);
  store.results.delete(pos);
  return r;
}

function recordResult(store: StoreObject, pos: string, r: Promise<ApplyResult>): void {
  r.catch(() => undefined); // a waiting writer takes the error; nobody else must see it unhandled
  store.results.set(pos, r);
  if (store.results.size > 4096) store.results.delete(store.results.keys().next().value!);
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
