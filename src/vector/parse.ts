/**
 * Strict parsers for the vector-store commands (ids, embeddings, integer options) and the
 * vector text format of LLM.GET. Every rejection is a CommandError carrying the text the
 * client sees (`-ERR <message>`); the texts for ids and embeddings are the original module's.
 *
 * Unlike the original (which used std::stoul / std::stof), nothing here accepts trailing
 * garbage (`12abc`), signs on ids, wrapped negatives, blanks around ids, NaN or infinities.
 */
import { CommandError } from '../errors.js';
import { MAX_ITEM_ID, itemIdFromText, type ItemId } from './id-alias.js';

export const INVALID_ID = 'invalid id';
export const INVALID_EMBEDDING = 'invalid embedding';
export const EMPTY_EMBEDDING = 'invalid embedding: size is 0';
export const NOT_AN_INTEGER = 'value is not an integer or out of range';

/** Largest hnswlib label (uint32), and the largest auto id. Item ids go up to 2^64 − 1 (see id-alias.ts). */
export const MAX_ID = 0xffff_ffff;

type Input = string | Buffer | Uint8Array;

function asText(s: Input): string {
  // latin1 is a 1:1 byte-to-char mapping: any non-ASCII byte simply fails the checks below.
  return typeof s === 'string' ? s : Buffer.from(s.buffer, s.byteOffset, s.byteLength).toString('latin1');
}

/** Redis-style integer text: "0", or a non-zero digit followed by digits (no leading zeros). */
const UNSIGNED_RE = /^(?:0|[1-9][0-9]*)$/;
const SIGNED_RE = /^(?:0|-?[1-9][0-9]*)$/;

/**
 * An item id: a decimal integer in [0, 18446744073709551615] (unsigned 64-bit, as the original's),
 * written as Redis writes integers (no sign, no blanks, no leading zeros, no exponent). Anything
 * else → `invalid id`. A number when it is a safe integer, else a bigint.
 */
export function parseId(s: Input): ItemId {
  const t = asText(s);
  if (t.length === 0 || t.length > 20 || !UNSIGNED_RE.test(t)) throw new CommandError(INVALID_ID);
  if (t.length === 20 && BigInt(t) > MAX_ITEM_ID) throw new CommandError(INVALID_ID);
  return itemIdFromText(t);
}

/** True when `n` is a valid id value (used for ids that do not come from text). */
export function isValidId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_ID;
}

function parseIntStrict(s: Input, min: number, max: number, message: string): number {
  const t = asText(s);
  if (t.length === 0 || t.length > 17 || !SIGNED_RE.test(t)) throw new CommandError(message);
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new CommandError(message);
  return n;
}

/**
 * A strictly written integer ≥ 1 and ≤ max (for `--K`, `--EF`, ...). Error text by default is
 * Redis's `value is not an integer or out of range`; pass `message` for a more specific one.
 */
export function parsePositiveInt(s: Input, max = Number.MAX_SAFE_INTEGER, message = NOT_AN_INTEGER): number {
  return parseIntStrict(s, 1, max, message);
}

/** A strictly written integer ≥ 0 and ≤ max (for `--TIMEOUT ms` where 0 means "none", ...). */
export function parseNonNegInt(s: Input, max = Number.MAX_SAFE_INTEGER, message = NOT_AN_INTEGER): number {
  return parseIntStrict(s, 0, max, message);
}

/**
 * One decimal number as C's strtof accepts it minus the lenient parts: optional sign, digits with
 * an optional fraction (`1`, `1.`, `.5`, `1.5`), optional exponent (`1e-3`, `2.5E+7`).
 * No hex, no `inf`/`nan`, no blanks inside.
 */
const FLOAT_RE = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * `f1,f2,...` → Float32Array. Blanks (space, tab) around each number are allowed; an empty
 * element, trailing garbage (`12abc`), NaN, infinities, or a value outside float32 range
 * → `invalid embedding`; an empty (or all-blank) string → `invalid embedding: size is 0`.
 * Values are rounded to float32 (the store's precision), as the original did.
 */
export function parseCsvVector(s: Input): Float32Array {
  const t = asText(s);
  let start = 0;
  let end = t.length;
  while (start < end && isBlank(t.charCodeAt(start))) start++;
  while (end > start && isBlank(t.charCodeAt(end - 1))) end--;
  if (start === end) throw new CommandError(EMPTY_EMBEDDING);

  let count = 1;
  for (let i = start; i < end; i++) if (t.charCodeAt(i) === 0x2c) count++;
  const out = new Float32Array(count);

  let k = 0;
  let a = start;
  for (let i = start; i <= end; i++) {
    if (i !== end && t.charCodeAt(i) !== 0x2c) continue;
    let b = i;
    let c = a;
    while (c < b && isBlank(t.charCodeAt(c))) c++;
    while (b > c && isBlank(t.charCodeAt(b - 1))) b--;
    const tok = t.slice(c, b);
    if (tok.length === 0 || !FLOAT_RE.test(tok)) throw new CommandError(INVALID_EMBEDDING);
    const v = Math.fround(Number(tok));
    if (!Number.isFinite(v)) throw new CommandError(INVALID_EMBEDDING);
    out[k++] = v;
    a = i + 1;
  }
  return out;
}

/**
 * Little-endian float32 bytes → Float32Array (always a fresh, aligned copy). The length must be a
 * non-zero multiple of 4 and every value finite, else `invalid embedding`
 * (an empty buffer → `invalid embedding: size is 0`).
 */
export function parseFp32Vector(buf: Uint8Array): Float32Array {
  if (buf.byteLength === 0) throw new CommandError(EMPTY_EMBEDDING);
  if (buf.byteLength % 4 !== 0) throw new CommandError(INVALID_EMBEDDING);
  const n = buf.byteLength / 4;
  const out = new Float32Array(n);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i < n; i++) {
    const v = dv.getFloat32(i * 4, true);
    if (!Number.isFinite(v)) throw new CommandError(INVALID_EMBEDDING);
    out[i] = v;
  }
  return out;
}

/** A Float32Array as little-endian float32 bytes (the inverse of parseFp32Vector). */
export function vectorToFp32(v: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(v.length * 4);
  for (let i = 0; i < v.length; i++) out.writeFloatLE(v[i]!, i * 4);
  return out;
}

/**
 * The shortest decimal text that reads back (through float32 rounding) as exactly `v`.
 * E.g. the float32 nearest 0.1 prints as `0.1`, not `0.10000000149011612`.
 * Formatting follows JavaScript's Number → string: plain decimals, exponent form below 1e-6 or
 * from 1e21 up (`1e-7`, `1.5e+25`), `-0` prints as `0`. parseCsvVector accepts all of it, so
 * GET's text can be fed back to ADD unchanged.
 */
export function formatFloat32(x: number): string {
  const v = Math.fround(x);
  if (v === 0) return '0';
  for (let p = 1; p < 9; p++) {
    const s = v.toPrecision(p);
    const back = Number(s);
    if (Math.fround(back) === v) return String(back);
  }
  // 9 significant digits always round-trip a float32.
  return String(Number(v.toPrecision(9)));
}

/** `"f1,f2,..."` — the vector text of LLM.GET, each value formatted by formatFloat32. */
export function formatVector(v: ArrayLike<number>): string {
  const parts = new Array<string>(v.length);
  for (let i = 0; i < v.length; i++) parts[i] = formatFloat32(v[i]!);
  return parts.join(',');
}
