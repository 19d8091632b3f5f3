/**
 * Client-side caching (CLIENT TRACKING) through the server: invalidation messages are relayed as
 * the backing Redis sends them (RESP3 pushes on the client's own link, or RESP2 messages on the
 * `__redis__:invalidate` channel of a REDIRECT target), except that keys of the server's own
 * storage (`__llm__:` prefix, written by the server's connection; in BCAST mode without a prefix
 * every modified key is announced) are dropped: clients never see them.
 */
import { decodeFrame, encode, splitArrayFrame, joinArrayFrame, type Decoded } from '../protocol/resp.js';

export const INTERNAL_KEY = Buffer.from('__llm__:');

const isInternal = (k: Decoded): boolean => Buffer.isBuffer(k) && k.subarray(0, INTERNAL_KEY.length).equals(INTERNAL_KEY);

/**
 * An invalidation frame without the server's storage keys: RESP3 `>2 invalidate [keys]` or RESP2
 * `*3 message __redis__:invalidate [keys]`. null when no key is left (nothing to relay). Other
 * frames are returned as they are.
 */
export function withoutInternalKeys(frame: Buffer): Buffer | null {
  const split = splitArrayFrame(frame);
  if (!split) return frame;
  const last = split.elements.length - 1;
  const head = split.elements.slice(0, last).map((e) => decodeFrame(e).value);
  const isInvalidation =
    (split.type === 62 && last === 1 && Buffer.isBuffer(head[0]) && head[0].toString('latin1') === 'invalidate') ||
    (last === 2 && Buffer.isBuffer(head[0]) && head[0].toString('latin1') === 'message' && Buffer.isBuffer(head[1]) && head[1].toString('latin1') === '__redis__:invalidate');
  if (!isInvalidation) return frame;
  const keys = decodeFrame(split.elements[last]!).value;
  if (!Array.isArray(keys)) return frame; // null: FLUSHALL / FLUSHDB, every key
  const kept = keys.filter((k) => !isInternal(k));
  if (kept.length === keys.length) return frame;
  if (kept.length === 0) return null;
  return joinArrayFrame(split.type, [...split.elements.slice(0, last), encode(kept as Buffer[])]);
}
