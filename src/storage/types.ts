/**
 * The storage contract: the durable home of every LLM object (definitions, per-object
 * write-ahead logs, snapshots). Two implementations: RedisStorage (the backing Redis) and
 * FileStorage (plain files in a directory, standalone mode).
 *
 * Ordering rule for callers: an object's definition is stored with putRecord() BEFORE anything is
 * appended to its log. Storage whose id is not in the catalog is garbage (see sweepOrphans()).
 */

/** Flat field → value, binary-safe (vectors are raw float32 bytes). Strings come back as strings, Buffers as Buffers. */
export type LogEntry = Record<string, string | Buffer>;

export interface ObjectRecord {
  /** Stable random object id ([A-Za-z0-9_-]{1,64}, see newObjectId()); names all storage of the object; survives RENAME. */
  id: string;
  /** The logical Redis db of the user's key. */
  db: number;
  /** The user's key name (utf8). */
  name: string;
  /** 'llm' | 'app' | 'search' | 'chat' | 'store' (opaque to storage). */
  kind: string;
  /** JSON-serialisable definition, stored as given (secrets arrive sealed by the objects layer, or as "$NAME" references). */
  config: unknown;
  createdAt: number;
  /** When the key expires (ms since the epoch; EXPIRE and friends); absent: never. */
  expiresAt?: number;
}

export interface SnapshotData {
  data: Buffer;
  /** The log position the snapshot covers (inclusive). Replay the log with readLog(id, pos). */
  pos: string;
  createdAt: number;
}

export interface SnapshotInfo {
  pos: string;
  createdAt: number;
  /** Bytes of snapshot data. */
  size: number;
}

export interface CatalogEvent {
  /** Position in the catalog event log (a Redis stream id for the redis backend). */
  pos: string;
  op: 'put' | 'delete' | 'rename';
  db: number;
  /** put/delete: the key; rename: the old name. */
  name: string;
  /** The id of the object that was put, deleted or renamed. */
  id: string;
  /** rename: the new name. */
  to?: string;
  /** put: the definition as stored (so a follower needs no second read). */
  record?: ObjectRecord;
  /** put/rename: the id of another object that held the target name and was dropped with it. */
  dropped?: string;
}

export interface Storage {
  readonly kind: 'redis' | 'file';
  open(): Promise<void>;
  close(): Promise<void>;
  loadCatalog(): Promise<ObjectRecord[]>;
  /**
   * The catalog plus the position of the last catalog event included in it, read atomically:
   * a follower loads this, then follows with tailCatalog(pos, ...).
   */
  loadCatalogAt(): Promise<{ records: ObjectRecord[]; pos: string }>;
  /** One definition, or null. */
  getRecord(db: number, name: string): Promise<ObjectRecord | null>;
  /** Create or overwrite the definition at (db, name). If another object held that name, its log and snapshots are dropped. */
  putRecord(rec: ObjectRecord): Promise<void>;
  /** Remove (db, name) and all of the object's storage. Resolves true if it existed. */
  deleteRecord(db: number, name: string): Promise<boolean>;
  /**
   * Move (db, from) to (db, to), overwriting (and dropping the storage of) whatever object held `to`.
   * Rejects with CommandError('no such key') when `from` does not exist.
   */
  renameRecord(db: number, from: string, to: string): Promise<void>;
  /**
   * Append mutations to one object's log. Resolves only when durable (in the backing store);
   * rejects with a clear CommandError otherwise, and then nothing was appended (redis backend:
   * unless the connection broke after the command was sent — then the outcome is unknown).
   * Returns each entry's position (monotonic within the object; a Redis stream id for the redis
   * backend). Appends issued in the same tick are group-committed.
   */
  append(id: string, entries: LogEntry[]): Promise<string[]>;
  /**
   * Optional: append() that also resolves the position preceding the first entry ('' when the
   * log was empty), read atomically with the append — so a writer knows whether another
   * instance's entries came in between.
   */
  appendAfter?(id: string, entries: LogEntry[]): Promise<{ positions: string[]; prev: string }>;
  /** Entries after `afterPos` (all when undefined), in order, in batches for big logs. */
  readLog(id: string, afterPos?: string): AsyncIterable<Array<{ pos: string; entry: LogEntry }>>;
  /** Number of entries currently in the log (entries covered by a snapshot are trimmed away). */
  logLength(id: string): Promise<number>;
  /**
   * Store a snapshot covering the log up to and including `pos`, atomically replacing the previous
   * one, then trim the log up to `pos`. Big snapshots are chunked. `pos` must not be ahead of the
   * log. A snapshot older than the stored one (smaller pos) is discarded (resolves false).
   */
  writeSnapshot(id: string, data: Buffer, pos: string): Promise<boolean>;
  readSnapshot(id: string): Promise<SnapshotData | null>;
  /** The current snapshot's position, time and size without reading its data (for INFO and scheduling). */
  snapshotInfo(id: string): Promise<SnapshotInfo | null>;
  /**
   * Catalog changes after `afterPos` (all retained when undefined), in order. Rejects with
   * CatalogGapError when events after `afterPos` were already discarded: reload with loadCatalogAt().
   */
  readCatalogEvents(afterPos?: string): Promise<CatalogEvent[]>;
  /**
   * Like readCatalogEvents, but when there is nothing new waits up to `blockMs` for the next
   * events (a blocking stream read on a dedicated connection, no polling); resolves [] on timeout
   * or when the storage is closed.
   */
  tailCatalog(afterPos: string, blockMs: number): Promise<CatalogEvent[]>;
  /**
   * Optional (RedisStorage; polled on a Redis Cluster): waits up to `blockMs` for entries after
   * the given positions of several objects' logs (id → position; '' = from the start). For
   * followers.
   */
  tailLogs?(after: Map<string, string>, blockMs: number): Promise<Array<{ id: string; entries: Array<{ pos: string; entry: LogEntry }> }>>;
  /** Ends a blocked tailLogs() at once. */
  wakeLogs?(): Promise<void>;
  /** Delete storage of ids not in the catalog (left by a crash between a catalog change and the drop). Returns the ids removed. */
  sweepOrphans(): Promise<string[]>;
}
