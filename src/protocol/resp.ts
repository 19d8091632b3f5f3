/**
 * RESP values, their encoder (for replies the server makes itself, in the connection's protocol:
 * RESP2, or RESP3 after HELLO 3) and a decoder for complete frames of either protocol (used where
 * the proxy must look inside a backend reply: AUTH, SELECT, pub/sub confirmations, COMMAND/INFO
 * merging).
 */

/** A simple-string reply (`+OK`). */
export class SimpleString {
  constructor(readonly value: string) {}
}
/** An error reply (`-ERR ...`): `prefix` is the first word. */
export class ErrorReply {
  constructor(readonly message: string, readonly prefix = 'ERR') {}
  toString(): string {
    return `${this.prefix} ${this.message}`;
  }
}
/** Bytes already encoded as RESP, spliced into a reply untouched. */
export class RawReply {
  constructor(readonly bytes: Buffer) {}
}
/** Field → value pairs: a RESP3 map (`%`); a flat array of field, value in RESP2. */
export class RespMap {
  constructor(readonly entries: Array<[RespValue, RespValue]>) {}
  static of(o: Record<string, RespValue>): RespMap {
    return new RespMap(Object.entries(o));
  }
}
/** A double: RESP3 `,`; in RESP2 a bulk string formatted as Redis does (formatDouble). */
export class RespDouble {
  constructor(readonly value: number) {}
}
/** A boolean: RESP3 `#t`/`#f`; in RESP2 the integer 1 or 0. */
export class RespBool {
  constructor(readonly value: boolean) {}
}

/** The protocol a connection speaks: 2 until HELLO 3, and after HELLO 2 or RESET again. */
export type Proto = 2 | 3;

/**
 * What handlers return: null → nil bulk, number/bigint → integer, string/Buffer → bulk string,
 * arrays → multibulk, plus the classes above.
 */
export type RespValue =
  | null
  | number
  | bigint
  | string
  | Buffer
  | SimpleString
  | ErrorReply
  | RawReply
  | RespMap
  | RespDouble
  | RespBool
  | RespValue[];

export const OK = new SimpleString('OK');

const CRLF = '\r\n';

function encodeInto(v: RespValue, out: Array<Buffer | string>, proto: Proto): void {
  if (v === null || v === undefined) {
    out.push(proto === 3 ? '_\r\n' : '$-1\r\n');
  } else if (typeof v === 'string') {
    out.push(`$${Buffer.byteLength(v)}\r\n`, v, CRLF);
  } else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) out.push(`:${v}\r\n`);
    else encodeDouble(v, out, proto);
  } else if (typeof v === 'bigint') {
    out.push(`:${v}\r\n`);
  } else if (Buffer.isBuffer(v)) {
    out.push(`$${v.length}\r\n`, v, CRLF);
  } else if (Array.isArray(v)) {
    out.push(`*${v.length}\r\n`);
    for (const e of v) encodeInto(e, out, proto);
  } else if (v instanceof RespMap) {
    out.push(proto === 3 ? `%${v.entries.length}\r\n` : `*${v.entries.length * 2}\r\n`);
    for (const [k, val] of v.entries) {
      encodeInto(k, out, proto);
      encodeInto(val, out, proto);
    }
  } else if (v instanceof RespDouble) {
    encodeDouble(v.value, out, proto);
  } else if (v instanceof RespBool) {
    out.push(proto === 3 ? (v.value ? '#t\r\n' : '#f\r\n') : v.value ? ':1\r\n' : ':0\r\n');
  } else if (v instanceof SimpleString) {
    out.push(`+${v.value.replace(/[\r\n]/g, ' ')}\r\n`);
  } else if (v instanceof ErrorReply) {
    out.push(`-${v.prefix} ${v.message.replace(/[\r\n]+/g, ' ')}\r\n`);
  } else if (v instanceof RawReply) {
    out.push(v.bytes);
  } else {
    throw new TypeError('cannot encode reply value');
  }
}

function encodeDouble(d: number, out: Array<Buffer | string>, proto: Proto): void {
  const s = formatDouble(d);
  out.push(proto === 3 ? `,${s}\r\n` : `$${s.length}\r\n${s}\r\n`);
}

/**
 * A text reply (INFO, CLIENT LIST): a bulk string, or with `verbatim` RESP3's verbatim string
 * (`=` with the `txt:` format), as Redis answers those in RESP3.
 */
export function encodeText(text: Buffer, verbatim: boolean): Buffer {
  return verbatim
    ? Buffer.concat([Buffer.from(`=${text.length + 4}\r\ntxt:`), text, Buffer.from('\r\n')])
    : Buffer.concat([Buffer.from(`$${text.length}\r\n`), text, Buffer.from('\r\n')]);
}

/** Formats a double the way Redis does in RESP2 bulk replies (shortest round trip, inf/-inf/nan). */
export function formatDouble(d: number): string {
  if (Number.isNaN(d)) return 'nan';
  if (d === Infinity) return 'inf';
  if (d === -Infinity) return '-inf';
  return String(d);
}

export function encode(v: RespValue, proto: Proto = 2): Buffer {
  const parts: Array<Buffer | string> = [];
  encodeInto(v, parts, proto);
  if (parts.length === 1) return typeof parts[0] === 'string' ? Buffer.from(parts[0]) : parts[0];
  // Runs of strings become one Buffer each (one allocation and one UTF-8 pass), not one per part.
  const out: Buffer[] = [];
  let text = '';
  for (const p of parts) {
    if (typeof p === 'string') {
      text += p;
      continue;
    }
    if (text !== '') out.push(Buffer.from(text));
    text = '';
    out.push(p);
  }
  if (text !== '') out.push(Buffer.from(text));
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}

/**
 * A decoded frame: bulk and verbatim strings stay Buffers (a verbatim string without its format
 * prefix), status replies become SimpleString, RESP3 maps, sets and pushes flat arrays (a map as
 * field, value, ...), doubles numbers, booleans booleans, big numbers their digits (a Buffer);
 * an attribute is skipped (the value after it is decoded).
 */
export type Decoded = null | number | boolean | Buffer | SimpleString | ErrorReply | Decoded[];

/** Decodes one complete RESP2 or RESP3 frame starting at `pos`. Returns the value and the end offset. */
export function decodeFrame(buf: Buffer, pos = 0): { value: Decoded; end: number } {
  const nl = buf.indexOf(10, pos);
  if (nl < 0) throw new Error('incomplete frame');
  const type = buf[pos];
  const line = buf.toString('utf8', pos + 1, nl - 1);
  const next = nl + 1;
  switch (type) {
    case 43: // +
      return { value: new SimpleString(line), end: next };
    case 45: // -
      return { value: errorOf(line), end: next };
    case 58: // :
      return { value: Number(line), end: next };
    case 95: // _
      return { value: null, end: next };
    case 44: // ,
      return { value: parseDouble(line), end: next };
    case 35: // #
      return { value: line === 't', end: next };
    case 40: // (
      return { value: buf.subarray(pos + 1, nl - 1), end: next };
    case 36: // $
    case 61: // =
    case 33: { // !
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const body = buf.subarray(next, next + n);
      const value = type === 33 ? errorOf(body.toString('utf8')) : type === 61 ? body.subarray(4) : body;
      return { value, end: next + n + 2 };
    }
    case 42: // *
    case 126: // ~
    case 62: // >
    case 37: // %
    case 124: { // |
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const count = type === 37 || type === 124 ? n * 2 : n;
      const arr: Decoded[] = [];
      let p = next;
      for (let i = 0; i < count; i++) {
        const r = decodeFrame(buf, p);
        arr.push(r.value);
        p = r.end;
      }
      // An attribute annotates the value that follows it: that value is the frame's.
      if (type === 124) return decodeFrame(buf, p);
      return { value: arr, end: p };
    }
    default:
      throw new Error(`unexpected byte ${type} in frame`);
  }
}

function errorOf(line: string): ErrorReply {
  const sp = line.indexOf(' ');
  return sp < 0 ? new ErrorReply('', line) : new ErrorReply(line.slice(sp + 1), line.slice(0, sp));
}

function parseDouble(text: string): number {
  if (text === 'inf') return Infinity;
  if (text === '-inf') return -Infinity;
  if (text === 'nan') return NaN;
  return Number(text);
}

/**
 * Splits a complete aggregate frame (array, or RESP3 map, set or push) into the raw bytes of each
 * top-level element (a map's fields and values alternate). `type` is its first byte.
 */
export function splitArrayFrame(buf: Buffer): { type: number; count: number; elements: Buffer[] } | null {
  const type = buf[0]!;
  if (type !== 42 && type !== 37 && type !== 126 && type !== 62) return null;
  const nl = buf.indexOf(10);
  const n = Number(buf.toString('latin1', 1, nl - 1));
  if (!(n >= 0)) return null;
  const count = type === 37 ? n * 2 : n;
  const elements: Buffer[] = [];
  let p = nl + 1;
  for (let i = 0; i < count; i++) {
    const r = decodeFrame(buf, p);
    elements.push(buf.subarray(p, r.end));
    p = r.end;
  }
  return { type, count, elements };
}

/** An aggregate frame of `type` (as splitArrayFrame gave it) with these elements (a map's count is half). */
export function joinArrayFrame(type: number, elements: Buffer[]): Buffer {
  const n = type === 37 ? elements.length / 2 : elements.length;
  return Buffer.concat([Buffer.from(`${String.fromCharCode(type)}${n}\r\n`), ...elements]);
}

export function bufEqIgnoreCase(b: Buffer | undefined, lower: string): boolean {
  if (!b || b.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = b[i];
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}
