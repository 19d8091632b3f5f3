/** Helpers shared by both storage backends. */
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { addonIfBuilt } from '../util/addon.js';
import { CommandError } from '../errors.js';
import type { LogEntry, ObjectRecord } from './types.js';

/** Every key the server itself stores in the backing Redis starts with this; clients never see them. */
export const INTERNAL_PREFIX = '__llm__:';
const INTERNAL_PREFIX_BUF = Buffer.from(INTERNAL_PREFIX);

/** The refusal of any command naming a key of the server's own storage. */
export const RESERVED_KEY_ERROR = "keys with the '__llm__:' prefix are reserved for redis-llm-server's own storage";

/** True for the server's own storage keys (hidden from clients' KEYS/SCAN). */
export function isInternalKey(name: Buffer | string): boolean {
  if (typeof name === 'string') return name.startsWith(INTERNAL_PREFIX);
  return name.length >= INTERNAL_PREFIX_BUF.length && INTERNAL_PREFIX_BUF.equals(name.subarray(0, INTERNAL_PREFIX_BUF.length));
}

/** Snapshots are stored in chunks of this size (Redis backend). */
export const SNAPSHOT_CHUNK_SIZE = 1024 * 1024;

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** A new random object id: 24 hex chars (96 random bits). */
export function newObjectId(): string {
  return randomBytes(12).toString('hex');
}

export function checkId(id: string): void {
  if (typeof id !== 'string' || !ID_RE.test(id)) throw new CommandError(`invalid object id: ${String(id).slice(0, 80)}`);
}

export function checkRecord(rec: ObjectRecord): void {
  checkId(rec.id);
  checkDb(rec.db);
  if (typeof rec.name !== 'string') throw new CommandError('invalid object name');
  if (typeof rec.kind !== 'string' || !rec.kind) throw new CommandError('invalid object kind');
}

export function checkDb(db: number): void {
  if (!Number.isInteger(db) || db < 0) throw new CommandError(`invalid db: ${db}`);
}

export function checkEntries(entries: LogEntry[]): void {
  if (!Array.isArray(entries)) throw new CommandError('log entries must be an array');
  for (const e of entries) {
    if (e === null || typeof e !== 'object') throw new CommandError('invalid log entry');
    let n = 0;
    for (const k in e) {
      const v = e[k];
      if (typeof v !== 'string' && !Buffer.isBuffer(v)) throw new CommandError(`invalid log entry value for field ${k}`);
      n++;
    }
    if (n === 0) throw new CommandError('log entry has no fields');
  }
}

/** The catalog field / map key of (db, name). */
export function catalogKey(db: number, name: string): string {
  return `${db}:${name}`;
}

export function splitCatalogKey(key: string): { db: number; name: string } {
  const i = key.indexOf(':');
  return { db: Number(key.slice(0, i)), name: key.slice(i + 1) };
}

/** What is stored for a record: everything but db and name (they are the key). */
export interface StoredRecord {
  id: string;
  kind: string;
  config: unknown;
  createdAt: number;
  expiresAt?: number;
}

export function encodeRecord(rec: ObjectRecord): string {
  const s: StoredRecord = { id: rec.id, kind: rec.kind, config: rec.config, createdAt: rec.createdAt };
  if (typeof rec.expiresAt === 'number') s.expiresAt = rec.expiresAt;
  return JSON.stringify(s);
}

export function decodeRecord(db: number, name: string, json: string): ObjectRecord {
  const s = JSON.parse(json) as StoredRecord;
  const rec: ObjectRecord = { id: s.id, db, name, kind: s.kind, config: s.config, createdAt: s.createdAt };
  if (typeof s.expiresAt === 'number') rec.expiresAt = s.expiresAt;
  return rec;
}

/** Parses a position "<ms>-<seq>" (stream id form, used by both backends). */
export function parsePos(pos: string): [bigint, bigint] {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(pos);
  if (!m) throw new CommandError(`invalid log position: ${String(pos).slice(0, 60)}`);
  return [BigInt(m[1]!), BigInt(m[2]!)];
}

/** Compares two positions: negative, 0, positive. */
export function comparePos(a: string, b: string): number {
  const [a1, a2] = parsePos(a);
  const [b1, b2] = parsePos(b);
  if (a1 !== b1) return a1 < b1 ? -1 : 1;
  if (a2 !== b2) return a2 < b2 ? -1 : 1;
  return 0;
}

const U64_MAX = (1n << 64n) - 1n;

/** The smallest position after `pos`. */
export function nextPos(pos: string): string {
  const [ms, seq] = parsePos(pos);
  if (seq === U64_MAX) return `${ms + 1n}-0`;
  return `${ms}-${seq + 1n}`;
}

export const crc32: (data: Uint8Array, value?: number) => number =
  (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32 ?? crc32Js;

const CRC_SLICE = 128 * 1024;

/**
 * crc32 of a snapshot-sized buffer off the event loop: on the native addon's bulk thread
 * (70 MB in one zlib call would block the loop ~30 ms). Without the addon, in 128 KB slices that
 * let other clients in between.
 */
export async function crc32Sliced(data: Uint8Array): Promise<number> {
  const addon = addonIfBuilt();
  if (addon && data.length >= CRC_SLICE) return addon.crc32Async(data, 0);
  let value = 0;
  for (let o = 0; o < data.length; o += CRC_SLICE) {
    value = crc32(data.subarray(o, Math.min(data.length, o + CRC_SLICE)), value);
    if (o + CRC_SLICE < data.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return value;
}

let table: Uint32Array | undefined;
function crc32Js(data: Uint8Array, value = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[i] = c >>> 0;
    }
  }
  let crc = (value ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Events after a position were discarded (the follower fell too far behind): reload the catalog. */
export class CatalogGapError extends CommandError {
  constructor(afterPos: string) {
    super(`catalog events after ${afterPos} are no longer retained; reload the catalog`);
    this.name = 'CatalogGapError';
  }
}
