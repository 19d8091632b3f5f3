/**
 * DUMP / RESTORE payloads of LLM objects (the module's keys can be dumped and restored; so can
 * this server's). A payload is only meant for RESTORE on a redis-llm-server:
 *
 *   "RLLMDUMP" | version (u8) | header length (u32 LE) | header JSON | body | sha256 of all before (8 bytes)
 *
 * The header holds the kind and the definition as stored (an LLM's secrets stay sealed with the
 * server secret: a payload never carries a key in the clear, and restoring it on a server with
 * another secret gives an LLM whose calls say so). A vector store's body holds its items:
 * per item the id (text), the vector (float32), the text and the attributes (JSON). A chat app
 * carries its definition, not its memory (summaries point into another store).
 */
import { createHash } from 'node:crypto';
import { CommandError } from '../errors.js';
import type { LogEntry } from '../storage/types.js';
import { vectorToFp32 } from '../vector/index.js';
import { StoreObject, type LlmObject, type ObjectKind } from './objects.js';

const MAGIC = Buffer.from('RLLMDUMP');
const VERSION = 1;
export const BAD_PAYLOAD = 'DUMP payload version or checksum are wrong';

export interface DumpedObject {
  kind: ObjectKind;
  config: unknown;
  /** A store's items, as log entries that add them. */
  items: LogEntry[];
}

export function isObjectDump(payload: Buffer): boolean {
  return payload.length >= MAGIC.length && payload.subarray(0, MAGIC.length).equals(MAGIC);
}

const checksum = (b: Buffer) => createHash('sha256').update(b).digest().subarray(0, 8);

/** The DUMP payload; a store's items are read in a shared turn of its gate (between two applied changes). */
export async function dumpObject(obj: LlmObject): Promise<Buffer> {
  return obj instanceof StoreObject ? obj.gate.shared(() => dumpNow(obj)) : dumpNow(obj);
}

function dumpNow(obj: LlmObject): Buffer {
  const rec = obj.record();
  const header = Buffer.from(JSON.stringify({ kind: rec.kind, config: rec.config }), 'utf8');
  const parts: Buffer[] = [MAGIC, Buffer.from([VERSION]), u32(header.length), header];
  if (obj instanceof StoreObject) {
    const ids = [...obj.index.ids()];
    parts.push(u32(ids.length));
    for (const label of ids) {
      const vec = obj.index.getVector(label)!;
      const id = Buffer.from(String(obj.aliases.idOf(label)), 'latin1');
      const data = Buffer.from(obj.index.getData(label) ?? '', 'utf8');
      const attrs = obj.attrs.get(label);
      const attrsJson = Buffer.from(attrs ? JSON.stringify(attrs) : '', 'utf8');
      const fp32 = vectorToFp32(vec);
      parts.push(u32(id.length), id, u32(fp32.length), fp32, u32(data.length), data, u32(attrsJson.length), attrsJson);
    }
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([body, checksum(body)]);
}

export function parseObjectDump(payload: Buffer): DumpedObject {
  const bad = () => new CommandError(BAD_PAYLOAD);
  if (!isObjectDump(payload) || payload.length < MAGIC.length + 13) throw bad();
  const body = payload.subarray(0, payload.length - 8);
  if (!checksum(body).equals(payload.subarray(payload.length - 8)) || body[MAGIC.length] !== VERSION) throw bad();
  let at = MAGIC.length + 1;
  const take = (n: number): Buffer => {
    if (at + n > body.length) throw bad();
    const b = body.subarray(at, at + n);
    at += n;
    return b;
  };
  const len = () => take(4).readUInt32LE(0);
  let header: { kind?: unknown; config?: unknown };
  try {
    header = JSON.parse(take(len()).toString('utf8')) as typeof header;
  } catch {
    throw bad();
  }
  const kinds: ObjectKind[] = ['llm', 'app', 'search', 'chat', 'store'];
  if (!kinds.includes(header.kind as ObjectKind)) throw bad();
  const items: LogEntry[] = [];
  if (header.kind === 'store') {
    const n = len();
    for (let i = 0; i < n; i++) {
      const id = take(len()).toString('latin1');
      const vec = Buffer.from(take(len()));
      const data = take(len()).toString('utf8');
      const attrs = take(len()).toString('utf8');
      const entry: LogEntry = { op: 'add', id, data, vec };
      if (attrs) entry.attrs = attrs;
      items.push(entry);
    }
  }
  if (at !== body.length) throw bad();
  return { kind: header.kind as ObjectKind, config: header.config, items };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

