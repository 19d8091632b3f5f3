/** The bytes of a vector store's snapshot (the HNSW graph, item attributes, id aliases). */
import type { AliasState } from '../vector/index.js';
import type { Attrs } from '../vector/filter.js';

/**
 * A store snapshot: "RLST" | u32 graph length | the VectorIndex snapshot | attributes as JSON
 * ([[label, attrs], ...]), or, when the store has id aliases (ids of 2^32 and more),
 * {"attrs": [[label, attrs], ...], "aliases": {"aliases": [[label, "id"], ...], "next": n}}.
 * A bare VectorIndex snapshot (no attributes) is read as well.
 */
const STORE_MAGIC = 'RLST';

/** Bytes before the graph: what VectorIndex.serialize leaves free for frameStoreSnapshot (no copy). */
export const STORE_HEAD_BYTES = 8;

/** Writes the head of a store snapshot serialized with `frame: { head: STORE_HEAD_BYTES, tail: attrs }`. */
export function frameStoreSnapshot(framed: Buffer, attrsBytes: number): Buffer {
  framed.write(STORE_MAGIC, 0, 'latin1');
  framed.writeUInt32LE(framed.length - STORE_HEAD_BYTES - attrsBytes, 4);
  return framed;
}

export function wrapStoreSnapshot(graph: Buffer, attrsJson: string): Buffer {
  const attrs = Buffer.from(attrsJson, 'utf8');
  return frameStoreSnapshot(Buffer.concat([Buffer.alloc(STORE_HEAD_BYTES), graph, attrs]), attrs.length);
}

export function unwrapStoreSnapshot(buf: Buffer): { graph: Buffer; attrs: Array<[number, Attrs]>; aliases: AliasState | null } {
  if (buf.length < 8 || buf.toString('latin1', 0, 4) !== STORE_MAGIC) return { graph: buf, attrs: [], aliases: null };
  const len = buf.readUInt32LE(4);
  if (8 + len > buf.length) throw new Error('corrupt store snapshot: truncated');
  const rest = buf.subarray(8 + len);
  const tail = rest.length ? (JSON.parse(rest.toString('utf8')) as Array<[number, Attrs]> | { attrs: Array<[number, Attrs]>; aliases: AliasState }) : [];
  if (Array.isArray(tail)) return { graph: buf.subarray(8, 8 + len), attrs: tail, aliases: null };
  return { graph: buf.subarray(8, 8 + len), attrs: tail.attrs ?? [], aliases: tail.aliases ?? null };
}
