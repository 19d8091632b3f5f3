/**
 * FileStorage: the durable object layer on plain files (standalone mode, no backing Redis).
 *
 * Layout of `dir`:
 *   LOCK                      pid of the process that has the directory open (one process per dir)
 *   catalog.json              {version, eventSeq, records[]}; rewritten atomically (temp + fsync + rename + fsync dir)
 *   objects/<id>/log          append-only records [u32 length][u32 crc32(payload)][payload], little-endian;
 *                             payload = u64 seq, u32 nfields, then per field: u8 type (0 utf8, 1 binary),
 *                             u32 name length, name, u32 value length, value
 *   objects/<id>/snapshot     "LLMSNAP1", u32 header length, header JSON {pos, createdAt, size, crc}, data
 *
 * Positions are "0-<seq>" (stream-id form; seq counts from 1 per object and continues after snapshots).
 * Appends are group-committed per object: everything queued while the previous write+fdatasync was in
 * flight (or in the same tick) goes out as one write and one fdatasync. A failed write is truncated away
 * before the append rejects, so a rejected append is never visible later. On open, a torn or corrupt
 * tail is detected by length/CRC/sequence and truncated (the dropped bytes are kept in a side file).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { constants as fsc } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { SerialQueue } from '../util/serial.js';
import {
  CatalogGapError,
  catalogKey,
  checkDb,
  checkEntries,
  checkId,
  checkRecord,
  crc32,
  crc32Sliced,
  parsePos,
} from './common.js';
import type { CatalogEvent, LogEntry, ObjectRecord, SnapshotData, SnapshotInfo, Storage } from './types.js';

const SNAP_MAGIC = Buffer.from('LLMSNAP1');
const MAX_RECORD = 1024 * 1024 * 1024; // 1 GiB per log record
const READ_CHUNK = 1024 * 1024;
const BATCH_ENTRIES = 1000;
const BATCH_BYTES = 8 * 1024 * 1024;

export interface FileStorageOptions {
  /** Catalog events kept in memory for tailCatalog (default 10000). */
  catalogEventsMax?: number;
  /** Test hooks (fault injection and crash points). */
  hooks?: {
    /** Before a group-commit write. Return a fault to write only `writeBytes` of the batch and then fail with `error`. */
    beforeLogWrite?: (id: string, bytes: Buffer) => { writeBytes?: number; error: Error } | void;
    /** After the snapshot file is in place, before the log is trimmed. Throwing simulates a crash there. */
    afterSnapshotFile?: (id: string) => void | Promise<void>;
  };
}

/** Directories opened by this process (the LOCK file protects against other processes). */
const openDirs = new Set<string>();

function persistError(err: unknown): CommandError {
  if (err instanceof CommandError) return err;
  return new CommandError(`failed to persist: ${(err as Error)?.message ?? String(err)}`);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    if (bytesWritten <= 0) throw new Error('short write');
    off += bytesWritten;
  }
}

/** Writes a whole file durably under a temp name, then renames it into place and fsyncs the directory. */
async function writeFileAtomic(file: string, parts: Buffer[]): Promise<void> {
  const tmp = `${file}.tmp.${randomBytes(4).toString('hex')}`;
  let fh: FileHandle | undefined;
  try {
    fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o644);
    let pos = 0;
    for (const p of parts) {
      await writeAll(fh, p, pos);
      pos += p.length;
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.rename(tmp, file);
    await fsyncDir(path.dirname(file));
  } catch (err) {
    if (fh) await fh.close().catch(() => {});
    await fs.unlink(tmp).catch(() => {});
    throw err;
  }
}

// ------------------------------------------------------------------------------------------ record codec

function encodeFrame(seq: bigint, e: LogEntry): Buffer {
  const names: Buffer[] = [];
  let size = 12;
  for (const k in e) {
    const n = Buffer.from(k, 'utf8');
    names.push(n);
    const v = e[k]!;
    size += 9 + n.length + (typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.length);
  }
  if (size > MAX_RECORD) throw new CommandError('log entry too large');
  const buf = Buffer.allocUnsafe(8 + size);
  buf.writeUInt32LE(size, 0);
  let o = 8;
  buf.writeBigUInt64LE(seq, o);
  o += 8;
  buf.writeUInt32LE(names.length, o);
  o += 4;
  let i = 0;
  for (const k in e) {
    const v = e[k]!;
    const n = names[i++]!;
    buf[o++] = typeof v === 'string' ? 0 : 1;
    buf.writeUInt32LE(n.length, o);
    o += 4;
    n.copy(buf, o);
    o += n.length;
    if (typeof v === 'string') {
      const len = buf.write(v, o + 4, 'utf8');
      buf.writeUInt32LE(len, o);
      o += 4 + len;
    } else {
      buf.writeUInt32LE(v.length, o);
      o += 4;
      v.copy(buf, o);
      o += v.length;
    }
  }
  buf.writeUInt32LE(crc32(buf.subarray(8)), 4);
  return buf;
}

function decodePayload(p: Buffer): LogEntry {
  const e: LogEntry = {};
  let o = 8;
  const n = p.readUInt32LE(o);
  o += 4;
  for (let i = 0; i < n; i++) {
    const type = p[o++];
    const nl = p.readUInt32LE(o);
    o += 4;
    const name = p.toString('utf8', o, o + nl);
    o += nl;
    const vl = p.readUInt32LE(o);
    o += 4;
    e[name] = type === 0 ? p.toString('utf8', o, o + vl) : Buffer.from(p.subarray(o, o + vl));
    o += vl;
  }
  return e;
}

/** Checks that a CRC-valid payload is structurally sound (so decodePayload cannot throw). */
function payloadSound(p: Buffer): boolean {
  if (p.length < 12) return false;
  let o = 8;
  const n = p.readUInt32LE(o);
  o += 4;
  for (let i = 0; i < n; i++) {
    if (o + 5 > p.length) return false;
    o += 1;
    const nl = p.readUInt32LE(o);
    o += 4 + nl;
    if (o + 4 > p.length) return false;
    const vl = p.readUInt32LE(o);
    o += 4 + vl;
    if (o > p.length) return false;
  }
  return o === p.length;
}

interface Frame {
  offset: number;
  end: number;
  seq: bigint;
  payload: Buffer;
}

/** Sequential reader of log frames from [start, limit). */
class FrameReader {
  private buf = Buffer.alloc(0);
  private bufPos: number;
  private off = 0;
  constructor(
    private readonly fh: FileHandle,
    start: number,
    private readonly limit: number,
  ) {
    this.bufPos = start;
  }

  get position(): number {
    return this.bufPos + this.off;
  }

  private async ensure(n: number): Promise<boolean> {
    while (this.buf.length - this.off < n) {
      const fileOff = this.bufPos + this.buf.length;
      if (fileOff >= this.limit) return false;
      const want = Math.min(Math.max(n - (this.buf.length - this.off), READ_CHUNK), this.limit - fileOff);
      const chunk = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.fh.read(chunk, 0, want, fileOff);
      if (bytesRead === 0) return false;
      this.buf = Buffer.concat([this.buf.subarray(this.off), chunk.subarray(0, bytesRead)]);
      this.bufPos += this.off;
      this.off = 0;
    }
    return true;
  }

  /** The next frame, null at the end, or 'bad' when the bytes at position() are not a valid frame. */
  async next(prevSeq: bigint): Promise<Frame | null | 'bad'> {
    const start = this.position;
    if (start >= this.limit) return null;
    if (!(await this.ensure(8))) return 'bad';
    const len = this.buf.readUInt32LE(this.off);
    const crc = this.buf.readUInt32LE(this.off + 4);
    if (len < 12 || len > MAX_RECORD) return 'bad';
    if (!(await this.ensure(8 + len))) return 'bad';
    const payload = this.buf.subarray(this.off + 8, this.off + 8 + len);
    if (crc32(payload) !== crc) return 'bad';
    const seq = payload.readBigUInt64LE(0);
    if (seq <= prevSeq || !payloadSound(payload)) return 'bad';
    this.off += 8 + len;
    return { offset: start, end: start + 8 + len, seq, payload };
  }
}

// ------------------------------------------------------------------------------------------ per object

interface PendingAppend {
  entries: LogEntry[];
  resolve: (pos: string[]) => void;
  reject: (err: Error) => void;
}

interface SnapHeader {
  pos: string;
  createdAt: number;
  size: number;
  crc: number;
}

const seqPos = (seq: bigint) => `0-${seq}`;


class ObjectLog {
  readonly dir: string;
  readonly logPath: string;
  readonly snapPath: string;
  fh: FileHandle | undefined;
  /** Size of the valid, durable part of the log file. */
  size = 0;
  count = 0;
  /** Last position used (log or snapshot). */
  lastSeq = 0n;
  snapSeq = 0n;
  snapInfo: SnapshotInfo | null = null;
  /** Incremented whenever the log file is replaced (readers check it). */
  gen = 0;
  /** The file may hold bytes past `size` from a failed write; they must be cut before the next write. */
  dirty = false;
  /** Set while the log file is being replaced by a trimmed copy (readers retry). */
  renaming = false;
  dropped = false;
  queue: PendingAppend[] = [];
  flushing = false;
  readonly lock = new SerialQueue();
  readonly snapLock = new SerialQueue();

  constructor(
    readonly id: string,
    objectsDir: string,
  ) {
    this.dir = path.join(objectsDir, id);
    this.logPath = path.join(this.dir, 'log');
    this.snapPath = path.join(this.dir, 'snapshot');
  }
}

async function readSnapHeader(file: string): Promise<{ header: SnapHeader; dataOffset: number } | null> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const head = Buffer.alloc(12);
    const { bytesRead } = await fh.read(head, 0, 12, 0);
    if (bytesRead < 12 || !head.subarray(0, 8).equals(SNAP_MAGIC)) throw new Error('bad snapshot header');
    const hl = head.readUInt32LE(8);
    if (hl > 64 * 1024) throw new Error('bad snapshot header');
    const hb = Buffer.alloc(hl);
    const r = await fh.read(hb, 0, hl, 12);
    if (r.bytesRead < hl) throw new Error('bad snapshot header');
    return { header: JSON.parse(hb.toString('utf8')) as SnapHeader, dataOffset: 12 + hl };
  } finally {
    await fh.close();
  }
}

// ------------------------------------------------------------------------------------------ storage

interface CatalogFile {
  version: 1;
  eventSeq: number;
  records: ObjectRecord[];
}

export class FileStorage implements Storage {
  readonly kind = 'file' as const;
  readonly dir: string;
  private readonly objectsDir: string;
  private readonly catalogPath: string;
  private readonly lockPath: string;
  private readonly hooks: NonNullable<FileStorageOptions['hooks']>;
  private readonly eventsMax: number;
  private records = new Map<string, ObjectRecord>();
  private readonly objects = new Map<string, ObjectLog>();
  private readonly catalogLock = new SerialQueue();
  private eventSeq = 0;
  private events: CatalogEvent[] = [];
  private readonly emitter = new EventEmitter();
  private state: 'new' | 'open' | 'closing' | 'closed' = 'new';
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(dir: string, opts: FileStorageOptions = {}) {
    this.dir = path.resolve(dir);
    this.objectsDir = path.join(this.dir, 'objects');
    this.catalogPath = path.join(this.dir, 'catalog.json');
    this.lockPath = path.join(this.dir, 'LOCK');
    this.hooks = opts.hooks ?? {};
    this.eventsMax = opts.catalogEventsMax ?? 10_000;
    this.emitter.setMaxListeners(0);
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new CommandError(this.state === 'new' ? 'storage is not open' : 'storage is closed');
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  // ------------------------------------------------------------------------------------------ open / close

  async open(): Promise<void> {
    if (this.state !== 'new') throw new CommandError('storage already opened');
    const t0 = Date.now();
    try {
      await fs.mkdir(this.objectsDir, { recursive: true });
    } catch (err) {
      throw new CommandError(`cannot use storage dir ${this.dir}: ${(err as Error).message}`);
    }
    await this.acquireLock();
    try {
      for (const f of await fs.readdir(this.dir)) {
        if (f.includes('.tmp.')) await fs.unlink(path.join(this.dir, f)).catch(() => {});
      }
      const hadCatalog = await this.loadCatalogFile();
      const live = new Set([...this.records.values()].map((r) => r.id));
      const dirs = await fs.readdir(this.objectsDir);
      if (!hadCatalog && dirs.length) {
        // objects are only written after their definition is in the catalog: a missing catalog with
        // objects present means it was removed by hand; keep the data rather than sweep it all
        throw new CommandError(`storage dir ${this.dir} has objects but no catalog.json; refusing to open`);
      }
      for (const id of dirs) {
        if (!live.has(id)) {
          logger.info({ id }, 'removing storage of an LLM object that is not in the catalog');
          await fs.rm(path.join(this.objectsDir, id), { recursive: true, force: true });
          continue;
        }
        await this.recoverObject(id);
      }
      await fsyncDir(this.objectsDir);
    } catch (err) {
      await this.releaseLock();
      throw err instanceof CommandError ? err : new CommandError(`cannot open storage dir ${this.dir}: ${(err as Error).message}`);
    }
    this.state = 'open';
    logger.debug({ dir: this.dir, objects: this.records.size, ms: Date.now() - t0 }, 'file storage opened');
  }

  async close(): Promise<void> {
    if (this.state !== 'open') {
      if (this.state === 'new') this.state = 'closed';
      return;
    }
    this.state = 'closing'; // refuse new calls, let the ones under way finish
    this.emitter.emit('closed');
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
    this.state = 'closed';
    for (const o of this.objects.values()) {
      await o.lock.run(async () => {
        if (o.fh) await o.fh.close().catch(() => {});
        o.fh = undefined;
      });
    }
    this.objects.clear();
    await this.releaseLock();
  }

  private async acquireLock(): Promise<void> {
    if (openDirs.has(this.dir)) throw new CommandError(`storage dir ${this.dir} is already open in this process`);
    for (let attempt = 0; attempt < 3; attempt++) {
      const tmp = `${this.lockPath}.${process.pid}.${randomBytes(4).toString('hex')}`;
      try {
        await fs.writeFile(tmp, `${process.pid}\n`);
        try {
          await fs.link(tmp, this.lockPath); // atomic: fails if a lock exists
          openDirs.add(this.dir);
          return;
        } finally {
          await fs.unlink(tmp).catch(() => {});
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new CommandError(`cannot lock storage dir ${this.dir}: ${(err as Error).message}`);
        }
      }
      const pid = parseInt(await fs.readFile(this.lockPath, 'utf8').catch(() => ''), 10);
      if (pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new CommandError(`storage dir ${this.dir} is in use by process ${pid} (remove ${this.lockPath} if that is not a running server)`);
      }
      logger.warn({ dir: this.dir, pid: pid || undefined }, 'removing a stale storage lock');
      await fs.unlink(this.lockPath).catch(() => {});
    }
    throw new CommandError(`cannot lock storage dir ${this.dir}`);
  }

  private async releaseLock(): Promise<void> {
    if (!openDirs.has(this.dir)) return;
    openDirs.delete(this.dir);
    await fs.unlink(this.lockPath).catch(() => {});
  }

  /** Loads catalog.json; false when there is none yet. */
  private async loadCatalogFile(): Promise<boolean> {
    let text: string;
    try {
      text = await fs.readFile(this.catalogPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    let cat: CatalogFile;
    try {
      cat = JSON.parse(text) as CatalogFile;
    } catch (err) {
      throw new CommandError(`catalog ${this.catalogPath} is corrupt: ${(err as Error).message}`);
    }
    for (const r of cat.records) this.records.set(catalogKey(r.db, r.name), r);
    this.eventSeq = cat.eventSeq;
    return true;
  }

  /** Validates an object's log (truncating a torn tail) and finishes an interrupted trim. */
  private async recoverObject(id: string): Promise<void> {
    const o = new ObjectLog(id, this.objectsDir);
    this.objects.set(id, o);
    for (const f of await fs.readdir(o.dir)) {
      if (f.includes('.tmp.')) await fs.unlink(path.join(o.dir, f)).catch(() => {});
    }
    const snap = await readSnapHeader(o.snapPath).catch((err) => {
      throw new CommandError(`snapshot of ${id} is corrupt: ${(err as Error).message}`);
    });
    if (snap) {
      o.snapSeq = parsePos(snap.header.pos)[1];
      o.lastSeq = o.snapSeq;
      o.snapInfo = { pos: snap.header.pos, createdAt: snap.header.createdAt, size: snap.header.size };
    }
    let fh: FileHandle;
    try {
      fh = await fs.open(o.logPath, fsc.O_RDWR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const st = await fh.stat();
    const reader = new FrameReader(fh, 0, st.size);
    let prev = 0n;
    let first: bigint | undefined;
    let count = 0;
    for (;;) {
      const f = await reader.next(prev);
      if (f === null) break;
      if (f === 'bad') {
        const at = reader.position;
        const dropped = st.size - at;
        const side = `${o.logPath}.corrupt-${Date.now()}`;
        const tail = Buffer.alloc(Math.min(dropped, 64 * 1024 * 1024));
        await fh.read(tail, 0, tail.length, at);
        await fs.writeFile(side, tail).catch(() => {});
        logger.warn({ id, offset: at, droppedBytes: dropped, savedTo: side }, 'truncating a torn or corrupt tail of an LLM object log');
        await fh.truncate(at);
        await fh.datasync();
        break;
      }
      if (first === undefined) first = f.seq;
      prev = f.seq;
      count++;
    }
    o.size = reader.position;
    o.count = count;
    if (prev > o.lastSeq) o.lastSeq = prev;
    await fh.close();
    if (first !== undefined && first <= o.snapSeq) await o.lock.run(() => this.trimLog(o, o.snapSeq));
  }

  // ------------------------------------------------------------------------------------------ catalog

  async loadCatalog(): Promise<ObjectRecord[]> {
    this.checkOpen();
    return [...this.records.values()].map((r) => structuredClone(r));
  }

  async loadCatalogAt(): Promise<{ records: ObjectRecord[]; pos: string }> {
    const records = await this.loadCatalog();
    return { records, pos: seqPos(BigInt(this.eventSeq)) };
  }

  async getRecord(db: number, name: string): Promise<ObjectRecord | null> {
    this.checkOpen();
    const r = this.records.get(catalogKey(db, name));
    return r ? structuredClone(r) : null;
  }

  /** Applies a catalog change: write the new catalog durably, then swap it in, then record the event. */
  private changeCatalog(
    mutate: (next: Map<string, ObjectRecord>) => Omit<CatalogEvent, 'pos'> | null,
  ): Promise<{ event: CatalogEvent | null }> {
    return this.track(
      this.catalogLock.run(async () => {
        this.checkOpen();
        const next = new Map(this.records);
        const ev = mutate(next);
        if (!ev) return { event: null };
        const seq = this.eventSeq + 1;
        const file: CatalogFile = { version: 1, eventSeq: seq, records: [...next.values()] };
        try {
          await writeFileAtomic(this.catalogPath, [Buffer.from(JSON.stringify(file))]);
        } catch (err) {
          throw persistError(err);
        }
        this.records = next;
        this.eventSeq = seq;
        const event: CatalogEvent = { pos: seqPos(BigInt(seq)), ...ev };
        this.events.push(event);
        if (this.events.length > this.eventsMax) {
          const cut = this.events.length - this.eventsMax;
          this.events.splice(0, cut);
        }
        this.emitter.emit('event');
        return { event };
      }),
    );
  }

  async putRecord(rec: ObjectRecord): Promise<void> {
    checkRecord(rec);
    // stored as JSON, exactly like the redis backend (no undefined fields, Dates become strings, ...)
    const stored = JSON.parse(JSON.stringify(rec)) as ObjectRecord;
    const { event } = await this.changeCatalog((next) => {
      const k = catalogKey(rec.db, rec.name);
      const old = next.get(k);
      next.set(k, stored);
      const ev: Omit<CatalogEvent, 'pos'> = { op: 'put', db: rec.db, name: rec.name, id: rec.id, record: structuredClone(stored) };
      if (old && old.id !== rec.id) ev.dropped = old.id;
      return ev;
    });
    if (event?.dropped) await this.dropObject(event.dropped);
  }

  async deleteRecord(db: number, name: string): Promise<boolean> {
    checkDb(db);
    const { event } = await this.changeCatalog((next) => {
      const k = catalogKey(db, name);
      const old = next.get(k);
      if (!old) return null;
      next.delete(k);
      return { op: 'delete', db, name, id: old.id };
    });
    if (!event) return false;
    await this.dropObject(event.id);
    return true;
  }

  async renameRecord(db: number, from: string, to: string): Promise<void> {
    checkDb(db);
    let missing = false;
    const { event } = await this.changeCatalog((next) => {
      const rec = next.get(catalogKey(db, from));
      if (!rec) {
        missing = true;
        return null;
      }
      if (from === to) return null;
      const old = next.get(catalogKey(db, to));
      next.delete(catalogKey(db, from));
      next.set(catalogKey(db, to), { ...rec, name: to });
      const ev: Omit<CatalogEvent, 'pos'> = { op: 'rename', db, name: from, id: rec.id, to };
      if (old && old.id !== rec.id) ev.dropped = old.id;
      return ev;
    });
    if (missing) throw new CommandError('no such key');
    if (event?.dropped) await this.dropObject(event.dropped);
  }

  /** Removes all storage of an object (after the catalog no longer names it). */
  private async dropObject(id: string): Promise<void> {
    const o = this.objects.get(id) ?? new ObjectLog(id, this.objectsDir);
    await o.lock.run(async () => {
      o.dropped = true;
      if (o.fh) await o.fh.close().catch(() => {});
      o.fh = undefined;
      if (this.objects.get(id) === o) this.objects.delete(id);
      try {
        await fs.rm(o.dir, { recursive: true, force: true });
      } catch (err) {
        logger.warn({ id, err: (err as Error).message }, 'could not remove the storage of a dropped LLM object; it is removed on next open');
      }
    });
  }

  async readCatalogEvents(afterPos?: string): Promise<CatalogEvent[]> {
    this.checkOpen();
    let after = 0n;
    if (afterPos !== undefined) {
      const [ms, seq] = parsePos(afterPos);
      if (ms > 0n) return [];
      after = seq;
    }
    const earliest = this.events.length ? parsePos(this.events[0]!.pos)[1] : BigInt(this.eventSeq + 1);
    if (afterPos !== undefined && after + 1n < earliest) throw new CatalogGapError(afterPos);
    return this.events.filter((e) => parsePos(e.pos)[1] > after).map((e) => structuredClone(e));
  }

  async tailCatalog(afterPos: string, blockMs: number): Promise<CatalogEvent[]> {
    const now = await this.readCatalogEvents(afterPos);
    if (now.length || blockMs <= 0) return now;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.emitter.off('event', done);
        this.emitter.off('closed', done);
        resolve();
      };
      const t = setTimeout(done, blockMs);
      this.emitter.on('event', done);
      this.emitter.on('closed', done);
    });
    if (this.state !== 'open') return [];
    return this.readCatalogEvents(afterPos);
  }

  async sweepOrphans(): Promise<string[]> {
    this.checkOpen();
    const live = new Set([...this.records.values()].map((r) => r.id));
    const removed: string[] = [];
    for (const id of await fs.readdir(this.objectsDir)) {
      if (live.has(id)) continue;
      await this.dropObject(id);
      removed.push(id);
    }
    return removed;
  }

  // ------------------------------------------------------------------------------------------ log

  private object(id: string): ObjectLog {
    let o = this.objects.get(id);
    if (!o) {
      o = new ObjectLog(id, this.objectsDir);
      this.objects.set(id, o);
    }
    return o;
  }

  append(id: string, entries: LogEntry[]): Promise<string[]> {
    try {
      this.checkOpen();
      checkId(id);
      checkEntries(entries);
    } catch (err) {
      return Promise.reject(err);
    }
    if (entries.length === 0) return Promise.resolve([]);
    const o = this.object(id);
    const p = new Promise<string[]>((resolve, reject) => o.queue.push({ entries, resolve, reject }));
    if (!o.flushing) {
      o.flushing = true;
      setImmediate(() => this.scheduleFlush(o));
    }
    return this.track(p);
  }

  private scheduleFlush(o: ObjectLog): void {
    void this.track(
      o.lock
        .run(() => this.flushOnce(o))
        .catch((err) => logger.error({ id: o.id, err: (err as Error).message }, 'log flush failed'))
        .then(() => {
          if (o.queue.length) this.scheduleFlush(o);
          else o.flushing = false;
        }),
    );
  }

  /**
   * Group commit: one write and one fdatasync for everything queued (caller holds o.lock). Appends that
   * arrive meanwhile form the next batch; a snapshot trim waiting for the lock gets its turn in between.
   */
  private async flushOnce(o: ObjectLog): Promise<void> {
    const batch = o.queue;
    o.queue = [];
    let seq = o.lastSeq;
    const frames: Buffer[] = [];
    const positions: string[][] = [];
    const ok: PendingAppend[] = [];
    for (const item of batch) {
      try {
        const fr: Buffer[] = [];
        const ps: string[] = [];
        let s = seq;
        for (const e of item.entries) {
          fr.push(encodeFrame(++s, e));
          ps.push(seqPos(s));
        }
        seq = s;
        frames.push(...fr);
        positions.push(ps);
        ok.push(item);
      } catch (err) {
        item.reject(persistError(err));
      }
    }
    if (!ok.length) return;
    const buf = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    try {
      if (o.dropped) throw new Error('object was dropped');
      await this.ensureLogOpen(o);
      const fh = o.fh!;
      if (o.dirty) {
        await fh.truncate(o.size);
        await fh.datasync();
        o.dirty = false;
      }
      const fault = this.hooks.beforeLogWrite?.(o.id, buf);
      o.dirty = true;
      if (fault) {
        if (fault.writeBytes) await writeAll(fh, buf.subarray(0, fault.writeBytes), o.size);
        throw fault.error;
      }
      await writeAll(fh, buf, o.size);
      await fh.datasync();
      o.dirty = false;
      o.size += buf.length;
      o.count += frames.length;
      o.lastSeq = seq;
      ok.forEach((item, i) => item.resolve(positions[i]!));
    } catch (err) {
      // roll the file back to its last durable size so the rejected entries never reappear
      if (o.fh && o.dirty) {
        try {
          await o.fh.truncate(o.size);
          await o.fh.datasync();
          o.dirty = false;
        } catch (e2) {
          logger.error({ id: o.id, err: (e2 as Error).message }, 'could not roll back a failed log write; retrying before the next write');
        }
      }
      const ce = persistError(err);
      for (const item of ok) item.reject(ce);
    }
  }

  private async ensureLogOpen(o: ObjectLog): Promise<void> {
    if (o.fh) return;
    let created = false;
    try {
      await fs.mkdir(o.dir);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let fh: FileHandle;
    try {
      fh = await fs.open(o.logPath, fsc.O_RDWR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      fh = await fs.open(o.logPath, fsc.O_RDWR | fsc.O_CREAT, 0o644);
      try {
        await fsyncDir(o.dir);
        if (created) await fsyncDir(this.objectsDir);
      } catch (e) {
        await fh.close().catch(() => {});
        throw e;
      }
    }
    o.fh = fh;
  }

  async *readLog(id: string, afterPos?: string): AsyncIterable<Array<{ pos: string; entry: LogEntry }>> {
    this.checkOpen();
    checkId(id);
    let after = 0n;
    if (afterPos !== undefined) {
      const [ms, seq] = parsePos(afterPos);
      if (ms > 0n) return;
      after = seq;
    }
    const o = this.objects.get(id);
    if (!o || o.dropped) return;
    // open the current log file and take its durable size in one consistent step
    let fh: FileHandle | undefined;
    let limit = 0;
    for (let attempt = 0; ; attempt++) {
      const gen = o.gen;
      const renaming = o.renaming;
      try {
        fh = await fs.open(o.logPath, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && o.gen === gen) return;
        if (attempt > 5) throw new CommandError(`cannot read the log of ${id}: ${(err as Error).message}`);
        continue;
      }
      if (o.gen === gen && !renaming && !o.renaming && !o.dropped) {
        limit = o.size;
        break;
      }
      await fh.close();
      fh = undefined;
      if (o.dropped) return;
    }
    try {
      const reader = new FrameReader(fh, 0, limit);
      let batch: Array<{ pos: string; entry: LogEntry }> = [];
      let bytes = 0;
      let prev = 0n;
      for (;;) {
        const f = await reader.next(prev);
        if (f === null) break;
        if (f === 'bad') throw new CommandError(`the log of ${id} is corrupt at offset ${reader.position}`);
        prev = f.seq;
        if (f.seq <= after) continue;
        batch.push({ pos: seqPos(f.seq), entry: decodePayload(f.payload) });
        bytes += f.payload.length;
        if (batch.length >= BATCH_ENTRIES || bytes >= BATCH_BYTES) {
          yield batch;
          batch = [];
          bytes = 0;
        }
      }
      if (batch.length) yield batch;
    } finally {
      await fh.close();
    }
  }

  async logLength(id: string): Promise<number> {
    this.checkOpen();
    checkId(id);
    return this.objects.get(id)?.count ?? 0;
  }

  // ------------------------------------------------------------------------------------------ snapshots

  async writeSnapshot(id: string, data: Buffer, pos: string): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    const [ms, seq] = parsePos(pos);
    const o = this.object(id);
    return this.track(
      o.snapLock.run(async () => {
        if (ms > 0n || seq > o.lastSeq) throw new CommandError(`snapshot position ${pos} is ahead of the log of ${id}`);
        if (seq < o.snapSeq) return false;
        const header: SnapHeader = { pos: seqPos(seq), createdAt: Date.now(), size: data.length, crc: await crc32Sliced(data) };
        const hb = Buffer.from(JSON.stringify(header));
        const head = Buffer.alloc(12);
        SNAP_MAGIC.copy(head, 0);
        head.writeUInt32LE(hb.length, 8);
        try {
          if (o.dropped) throw new Error('object was dropped');
          await fs.mkdir(o.dir, { recursive: true });
          await writeFileAtomic(o.snapPath, [head, hb, data]);
        } catch (err) {
          throw persistError(err);
        }
        if (seq > o.snapSeq) o.snapSeq = seq;
        o.snapInfo = { pos: header.pos, createdAt: header.createdAt, size: header.size };
        await this.hooks.afterSnapshotFile?.(id);
        await o.lock.run(async () => {
          try {
            await this.trimLog(o, seq);
          } catch (err) {
            logger.warn({ id, err: (err as Error).message }, 'snapshot stored but the log could not be trimmed; it is trimmed later');
          }
        });
        return true;
      }),
    );
  }

  /** Rewrites the log without the entries up to `seq` (caller holds o.lock). */
  private async trimLog(o: ObjectLog, seq: bigint): Promise<void> {
    if (o.dropped || o.size === 0) return;
    const src = await fs.open(o.logPath, 'r');
    let cut = 0;
    let dropped = 0;
    try {
      const reader = new FrameReader(src, 0, o.size);
      let prev = 0n;
      for (;;) {
        const f = await reader.next(prev);
        if (f === null || f === 'bad') break;
        if (f.seq > seq) break;
        prev = f.seq;
        cut = f.end;
        dropped++;
      }
      if (cut === 0) return;
      const tmp = `${o.logPath}.tmp.${randomBytes(4).toString('hex')}`;
      const dst = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o644);
      try {
        const buf = Buffer.allocUnsafe(READ_CHUNK);
        let inPos = cut;
        let outPos = 0;
        while (inPos < o.size) {
          const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, o.size - inPos), inPos);
          if (bytesRead === 0) throw new Error('log shrank while trimming');
          await writeAll(dst, buf.subarray(0, bytesRead), outPos);
          inPos += bytesRead;
          outPos += bytesRead;
        }
        await dst.sync();
      } catch (err) {
        await dst.close().catch(() => {});
        await fs.unlink(tmp).catch(() => {});
        throw err;
      }
      await dst.close();
      o.renaming = true;
      try {
        await fs.rename(tmp, o.logPath);
      } catch (err) {
        await fs.unlink(tmp).catch(() => {});
        throw err;
      } finally {
        o.renaming = false;
      }
      // synchronously with the rename's completion: readers see the new file with its new size
      const old = o.fh;
      o.fh = undefined;
      o.dirty = false;
      o.gen++;
      o.size -= cut;
      o.count -= dropped;
      if (old) await old.close().catch(() => {});
      await fsyncDir(o.dir);
    } finally {
      await src.close();
    }
  }

  async snapshotInfo(id: string): Promise<SnapshotInfo | null> {
    this.checkOpen();
    checkId(id);
    const o = this.objects.get(id);
    return o && !o.dropped && o.snapInfo ? { ...o.snapInfo } : null;
  }

  async readSnapshot(id: string): Promise<SnapshotData | null> {
    this.checkOpen();
    checkId(id);
    const o = this.objects.get(id);
    if (!o || o.dropped) return null;
    let buf: Buffer;
    try {
      buf = await fs.readFile(o.snapPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CommandError(`cannot read the snapshot of ${id}: ${(err as Error).message}`);
    }
    if (buf.length < 12 || !buf.subarray(0, 8).equals(SNAP_MAGIC)) throw new CommandError(`snapshot of ${id} is corrupt`);
    const hl = buf.readUInt32LE(8);
    let header: SnapHeader;
    try {
      header = JSON.parse(buf.toString('utf8', 12, 12 + hl)) as SnapHeader;
    } catch {
      throw new CommandError(`snapshot of ${id} is corrupt`);
    }
    const data = buf.subarray(12 + hl);
    if (data.length !== header.size || (await crc32Sliced(data)) !== header.crc) throw new CommandError(`snapshot of ${id} is corrupt (size or checksum mismatch)`);
    return { data, pos: header.pos, createdAt: header.createdAt };
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
