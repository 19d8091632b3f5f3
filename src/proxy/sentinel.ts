/**
 * (P|S)(UN)SUBSCRIBE have no fixed number of replies. A link sends `PING <sentinel>` after each
 * one: the sentinel's reply (plain, or `pong` while subscribed) ends that request's replies.
 */
import { randomBytes } from 'node:crypto';
import { SimpleString, type Decoded } from '../protocol/resp.js';

export function newSentinel(): string {
  return `__rls_sentinel_${randomBytes(6).toString('hex')}`;
}

/** Is this decoded reply the one to the sentinel PING (RESP2 or subscribed form)? */
export function isSentinelReply(v: Decoded, s: string): boolean {
  if (Buffer.isBuffer(v)) return v.length === s.length && v.toString('latin1') === s;
  if (Array.isArray(v) && v.length === 2 && Buffer.isBuffer(v[0]) && Buffer.isBuffer(v[1])) {
    return v[0].toString('latin1') === 'pong' && v[1].toString('latin1') === s;
  }
  return v instanceof SimpleString && v.value === s;
}
