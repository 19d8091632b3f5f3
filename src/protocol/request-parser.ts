/**
 * Incremental parser for client requests: RESP2 multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
 * and inline commands (`SET a b\r\n`, as typed over telnet), with Redis's limits and error texts.
 *
 * For every complete command it reports the arguments (zero-copy slices) and the raw bytes of
 * the request, so the proxy can forward a request without re-encoding it. Inline commands are
 * re-encoded as multibulk (the backing Redis then sees one request format).
 *
 * Hand-written rather than redis-parser: redis-parser cannot parse inline commands, and the proxy
 * needs the exact byte span of each request. test/protocol-parser.test.ts checks it against
 * redis-parser on random requests split at every byte boundary.
 */

export interface ParserLimits {
  /** Largest accepted bulk argument, in bytes (Redis: proto-max-bulk-len, 512 MB). */
  maxBulkLen: number;
  /** Largest accepted number of arguments in one request (Redis accepts up to INT_MAX). */
  maxMultibulkLen: number;
  /** Longest inline request or header line without a newline (Redis: 64 KB). */
  maxInlineLen: number;
}

export const DEFAULT_LIMITS: ParserLimits = {
  maxBulkLen: 512 * 1024 * 1024,
  maxMultibulkLen: 2147483647,
  maxInlineLen: 64 * 1024,
};

export interface ParserEvents {
  /** One complete command. `args` are slices of the input: copy before keeping them past the call. */
  onCommand(args: Buffer[], raw: Buffer): void;
  /** A protocol error: the message as Redis words it, e.g. "Protocol error: invalid bulk length". */
  onProtocolError(message: string): void;
}

const CR = 13;
const LF = 10;

/** Strict decimal like Redis's string2ll: optional '-', no '+', no spaces, no leading zeros. */
export function parseStrictInt(buf: Buffer, start: number, end: number): number | null {
  const len = end - start;
  if (len <= 0 || len > 20) return null;
  let i = start;
  let neg = false;
  if (buf[i] === 45 /* - */) {
    neg = true;
    i++;
    if (i === end) return null;
  }
  if (buf[i] === 48 /* 0 */) return i + 1 === end && !neg ? 0 : null;
  let n = 0;
  for (; i < end; i++) {
    const c = buf[i] - 48;
    if (c < 0 || c > 9) return null;
    n = n * 10 + c;
  }
  if (!Number.isSafeInteger(n)) return null;
  return neg ? -n : n;
}

/**
 * Splits an inline request line as Redis's sdssplitargs does: whitespace separated,
 * "double quotes" with \n \r \t \b \a \\ \" \xHH escapes, 'single quotes' with \' only.
 * A closing quote must be followed by whitespace or the end. Returns null on unbalanced quotes.
 */
export function splitInlineArgs(line: Buffer): Buffer[] | null {
  const args: Buffer[] = [];
  const n = line.length;
  let i = 0;
  const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;
  const hexVal = (c: number) =>
    c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
  for (;;) {
    while (i < n && isSpace(line[i])) i++;
    if (i >= n) return args;
    const out: number[] = [];
    let inDq = false;
    let inSq = false;
    let done = false;
    while (!done) {
      if (inDq) {
        if (i >= n) return null;
        const c = line[i];
        if (c === 92 /* \ */ && i + 3 < n && line[i + 1] === 120 /* x */ && hexVal(line[i + 2]) >= 0 && hexVal(line[i + 3]) >= 0) {
          out.push(hexVal(line[i + 2]) * 16 + hexVal(line[i + 3]));
          i += 3;
        } else if (c === 92 && i + 1 < n) {
          i++;
          const e = line[i];
          out.push(e === 110 ? 10 : e === 114 ? 13 : e === 116 ? 9 : e === 98 ? 8 : e === 97 ? 7 : e);
        } else if (c === 34 /* " */) {
          if (i + 1 < n && !isSpace(line[i + 1])) return null;
          done = true;
        } else {
          out.push(c);
        }
      } else if (inSq) {
        if (i >= n) return null;
        const c = line[i];
        if (c === 92 && i + 1 < n && line[i + 1] === 39 /* ' */) {
          i++;
          out.push(39);
        } else if (c === 39) {
          if (i + 1 < n && !isSpace(line[i + 1])) return null;
          done = true;
        } else {
          out.push(c);
        }
      } else {
        if (i >= n) break;
        const c = line[i];
        // Unquoted words end at space, tab, CR or LF only (\v and \f stay inside, as in sdssplitargs).
        if (c === 32 || c === 9 || c === 10 || c === 13) done = true;
        else if (c === 34) inDq = true;
        else if (c === 39) inSq = true;
        else out.push(c);
      }
      if (i < n) i++;
    }
    args.push(Buffer.from(out));
  }
}

/** Encodes arguments as a RESP2 multibulk request. */
export function encodeRequest(args: Array<Buffer | string>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export class RequestParser {
  private buf: Buffer = Buffer.alloc(0);
  /** Chunks waiting because a large bulk argument is still incomplete. */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Bytes needed before it is worth parsing again (known when inside a large bulk). */
  private needed = 0;
  private failed = false;

  constructor(
    private readonly events: ParserEvents,
    private readonly limits: ParserLimits = DEFAULT_LIMITS,
  ) {}

  /** Bytes buffered and not yet part of a complete command. */
  get bufferedBytes(): number {
    return this.buf.length + this.pendingLen;
  }

  feed(chunk: Buffer): void {
    if (this.failed) return;
    if (this.needed > 0) {
      this.pending.push(chunk);
      this.pendingLen += chunk.length;
      if (this.buf.length + this.pendingLen < this.needed) return;
      this.buf = Buffer.concat([this.buf, ...this.pending]);
      this.pending = [];
      this.pendingLen = 0;
      this.needed = 0;
    } else if (this.buf.length === 0) {
      this.buf = chunk;
    } else {
      this.buf = Buffer.concat([this.buf, chunk]);
    }
    this.parse();
  }

  private fail(message: string): void {
    this.failed = true;
    this.buf = Buffer.alloc(0);
    this.pending = [];
    this.pendingLen = 0;
    this.events.onProtocolError(message);
  }

  private parse(): void {
    const buf = this.buf;
    const len = buf.length;
    let pos = 0;
    while (pos < len && !this.failed) {
      const consumed = buf[pos] === 42 /* * */ ? this.parseMultibulk(buf, pos) : this.parseInline(buf, pos);
      if (consumed <= 0) break;
      pos = consumed;
    }
    if (this.failed) return;
    this.buf = pos >= len ? Buffer.alloc(0) : buf.subarray(pos);
  }

  /** Finds the CR LF ending a header line that starts at `start`; -1 if not yet there. */
  private lineEnd(buf: Buffer, start: number): number {
    const idx = buf.indexOf(LF, start);
    if (idx < 0) return -1;
    return idx;
  }

  /** Returns the position after the command, or 0 if more bytes are needed. */
  private parseMultibulk(buf: Buffer, start: number): number {
    const nl = this.lineEnd(buf, start);
    if (nl < 0) {
      if (buf.length - start > this.limits.maxInlineLen) this.fail('Protocol error: too big mbulk count string');
      return 0;
    }
    if (buf[nl - 1] !== CR) {
      this.fail('Protocol error: invalid multibulk length');
      return 0;
    }
    const count = parseStrictInt(buf, start + 1, nl - 1);
    if (count === null || count > this.limits.maxMultibulkLen) {
      this.fail('Protocol error: invalid multibulk length');
      return 0;
    }
    let pos = nl + 1;
    if (count <= 0) return pos; // Redis ignores empty multibulks.
    const args: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (pos >= buf.length) return 0;
      if (buf[pos] !== 36 /* $ */) {
        this.fail(`Protocol error: expected '$', got '${String.fromCharCode(buf[pos])}'`);
        return 0;
      }
      const bl = this.lineEnd(buf, pos);
      if (bl < 0) {
        if (buf.length - pos > this.limits.maxInlineLen) this.fail('Protocol error: too big bulk count string');
        return 0;
      }
      const size = bl > pos + 1 && buf[bl - 1] === CR ? parseStrictInt(buf, pos + 1, bl - 1) : null;
      if (size === null || size < 0 || size > this.limits.maxBulkLen) {
        this.fail('Protocol error: invalid bulk length');
        return 0;
      }
      const dataStart = bl + 1;
      const dataEnd = dataStart + size;
      if (dataEnd + 2 > buf.length) {
        // Incomplete: remember how much is needed so a large value is not re-scanned per chunk.
        this.needed = dataEnd + 2 - start;
        return 0;
      }
      args.push(buf.subarray(dataStart, dataEnd));
      pos = dataEnd + 2; // Redis does not check the trailing CRLF of a bulk either.
    }
    this.events.onCommand(args, buf.subarray(start, pos));
    return pos;
  }

  private parseInline(buf: Buffer, start: number): number {
    const nl = buf.indexOf(LF, start);
    if (nl < 0) {
      if (buf.length - start > this.limits.maxInlineLen) this.fail('Protocol error: too big inline request');
      return 0;
    }
    const lineEnd = nl > start && buf[nl - 1] === CR ? nl - 1 : nl;
    const args = splitInlineArgs(buf.subarray(start, lineEnd));
    if (args === null) {
      this.fail('Protocol error: unbalanced quotes in request');
      return 0;
    }
    if (args.length > 0) this.events.onCommand(args, encodeRequest(args));
    return nl + 1;
  }
}
