/**
 * RESP2 values, their encoder (for replies the server makes itself) and a decoder for
 * complete frames (used where the proxy must look inside a backend reply: AUTH, SELECT,
 * pub/sub confirmations, COMMAND/INFO merging).
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
  | RespValue[];

export const OK = new SimpleString('OK');

const CRLF = '\r\n';

function encodeInto(v: RespValue, out: Array<Buffer | string>): void {
  if (v === null || v === undefined) {
    out.push('$-1\r\n');
  } else if (typeof v === 'string') {
    out.push(`$${Buffer.byteLength(v)}\r\n`, v, CRLF);
  } else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) out.push(`:${v}\r\n`);
    else {
      const s = formatDouble(v);
      out.push(`$${s.length}\r\n${s}\r\n`);
    }
  } else if (typeof v === 'bigint') {
    out.push(`:${v}\r\n`);
  } else if (Buffer.isBuffer(v)) {
    out.push(`$${v.length}\r\n`, v, CRLF);
  } else if (Array.isArray(v)) {
    out.push(`*${v.length}\r\n`);
    for (const e of v) encodeInto(e, out);
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

/** Formats a double the way Redis does in RESP2 bulk replies (shortest round trip, inf/-inf/nan). */
export function formatDouble(d: number): string {
  if (Number.isNaN(d)) return 'nan';
  if (d === Infinity) return 'inf';
  if (d === -Infinity) return '-inf';
  return String(d);
}

export function encode(v: RespValue): Buffer {
  const parts: Array<Buffer | string> = [];
  encodeInto(v, parts);
  if (parts.length === 1) return typeof parts[0] === 'string' ? Buffer.from(parts[0]) : parts[0];
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
}

/** A decoded frame: bulk strings stay Buffers, status replies become SimpleString. */
export type Decoded = null | number | Buffer | SimpleString | ErrorReply | Decoded[];

/** Decodes one complete RESP2 frame starting at `pos`. Returns the value and the end offset. */
export function decodeFrame(buf: Buffer, pos = 0): { value: Decoded; end: number } {
  const nl = buf.indexOf(10, pos);
  if (nl < 0) throw new Error('incomplete frame');
  const type = buf[pos];
  const line = buf.toString('utf8', pos + 1, nl - 1);
  const next = nl + 1;
  switch (type) {
    case 43:
      return { value: new SimpleString(line), end: next };
    case 45: {
      const sp = line.indexOf(' ');
      return { value: sp < 0 ? new ErrorReply('', line) : new ErrorReply(line.slice(sp + 1), line.slice(0, sp)), end: next };
    }
    case 58:
      return { value: Number(line), end: next };
    case 36: {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      return { value: buf.subarray(next, next + n), end: next + n + 2 };
    }
    case 42: {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const arr: Decoded[] = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = decodeFrame(buf, p);
        arr.push(r.value);
        p = r.end;
      }
      return { value: arr, end: p };
    }
    default:
      throw new Error(`unexpected byte ${type} in frame`);
  }
}

/** Splits a complete multibulk frame into the raw bytes of each top-level element. */
export function splitArrayFrame(buf: Buffer): { count: number; elements: Buffer[] } | null {
  if (buf[0] !== 42) return null;
  const nl = buf.indexOf(10);
  const n = Number(buf.toString('latin1', 1, nl - 1));
  if (!(n >= 0)) return null;
  const elements: Buffer[] = [];
  let p = nl + 1;
  for (let i = 0; i < n; i++) {
    const r = decodeFrame(buf, p);
    elements.push(buf.subarray(p, r.end));
    p = r.end;
  }
  return { count: n, elements };
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
