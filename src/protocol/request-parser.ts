/**
 * Incremental parser for client requests: RESP2 multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
 * and inline commands (`SET a b\r\n`, as typed over telnet), with Redis's limits and error texts.
 *
 * For every complete command it reports the arguments (zero-copy slices) and the raw bytes of
 * the request, so the proxy can forward a request without re-encoding it. Inline commands are
 * re-encoded as multibulk (the backing Redis then sees one request format), except before AUTH
 * (`authRequired`): there the line goes as it came, since a backing Redis would refuse the
 * multibulk form of an inline request over its unauthenticated limits, which inline requests
 * are not subject to.
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

/**
 * Redis's tighter limits for a client that still owes an AUTH (networking.c, CVE-2021-32675):
 * more arguments or a longer bulk ends the connection. Inline requests have no such limit.
 */
export const UNAUTHENTICATED_MAX_MULTIBULK_LEN = 10;
export const UNAUTHENTICATED_MAX_BULK_LEN = 16384;

export interface ParserEvents {
  /**
   * One complete command. `args` are slices of the input: copy before keeping them past the call.
   * `raw` is a multibulk request, or an inline request's line as received while authRequired.
   */
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

const EMPTY = Buffer.alloc(0);
const STAR = 42;
const DOLLAR = 36;

/** Waiting states of the parser between feeds. */
const W_NONE = 0;
/** Until `needed` bytes are buffered (a bulk's data, or the byte after a header's CR). */
const W_BYTES = 1;
/** Until a chunk brings the byte ending the current line (`waitByte`). */
const W_LINE = 2;
/** A NUL precedes the end of the current line: only the size limit can end this (see below). */
const W_STUCK = 3;
/** Paused after a command (see pause()): input is only collected. */
const W_PAUSED = 4;

/**
 * While a multibulk request is incomplete, its bytes read so far stay in `buf` (one contiguous
 * slice for `raw`, no copy at the end) as long as they are at most this long; beyond that they
 * are set aside and joined once when the request completes, so a request of a million small
 * arguments arriving in many chunks costs linear time, not a re-copy of everything per chunk.
 */
const KEEP_CONTIGUOUS = 64 * 1024;

function hasNul(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] === 0) return true;
  return false;
}

/**
 * A Buffer over bytes of the same memory, as buf.subarray(start, end) gives, made directly: with
 * 3-4 views per request (each argument, the raw request), Buffer#subarray's argument checks and
 * species lookup were a third of the parser's time. `start` <= `end` <= buf.length is the caller's.
 */
class BufferView extends Uint8Array {}
Object.setPrototypeOf(BufferView.prototype, Buffer.prototype);
function view(buf: Buffer, start: number, end: number): Buffer {
  return new BufferView(buf.buffer as ArrayBuffer, buf.byteOffset + start, end - start) as unknown as Buffer;
}

/**
 * buf.indexOf(CR, from), looking at the first bytes in JS: header lines (`*3`, `$5`) are a few
 * bytes long, and a native call per header costs more than the scan.
 */
function findCR(buf: Buffer, from: number): number {
  const end = Math.min(buf.length, from + 24);
  for (let i = from; i < end; i++) if (buf[i] === CR) return i;
  return end < buf.length ? buf.indexOf(CR, end) : -1;
}

/**
 * Redis's string2ll over buf[start, end): optional '-', no '+', no leading zeros, at most 20
 * characters, within the range of a 64-bit signed integer. Values beyond 2^53 come back
 * approximate (right sign and magnitude), which is all the length checks need.
 */
function parseLength(buf: Buffer, start: number, end: number): number | null {
  let i = start;
  const neg = buf[i] === 45; /* - */
  if (neg) i++;
  const digits = end - i;
  if (digits <= 0 || digits > 19) return null;
  if (buf[i] === 48 /* 0 */) return digits === 1 && !neg ? 0 : null;
  let n = 0;
  for (let j = i; j < end; j++) {
    const c = buf[j] - 48;
    if (c < 0 || c > 9) return null;
    n = n * 10 + c;
  }
  if (digits === 19) {
    const s = buf.toString('latin1', i, end);
    if (s > (neg ? '9223372036854775808' : '9223372036854775807')) return null;
  }
  return neg ? -n : n;
}

/**
 * Framing follows redis-server (networking.c, 7.x) byte for byte, including its quirks, so the
 * proxy answers malformed input as Redis does:
 *  - multibulk and bulk header lines end at the first CR; the byte after it is skipped unchecked;
 *  - inline lines end at the first LF (a CR before it is dropped);
 *  - Redis searches lines with strchr, which stops at a NUL byte: a NUL before the end of a
 *    header or inline line means "no line yet", so the connection waits until the line limit
 *    (64 KB) is exceeded and then gets the "too big ..." error, exactly as redis-server does;
 *  - `*N` with N <= 0 (down to -2^63) is an empty request, ignored.
 * Parsing is incremental: a request arriving in many chunks is never re-scanned from its start.
 */
export class RequestParser {
  /** Unconsumed input, from the start of the unit (line or bulk) being read, or of the request (see KEEP_CONTIGUOUS). */
  private buf: Buffer = EMPTY;
  /** Where parsing resumes in `buf`: the start of the unit being read. */
  private unitAt = 0;
  /** Chunks received while waiting, not yet joined to `buf`. */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private wait = W_NONE;
  /** W_BYTES: length `buf` + pending must reach. */
  private needed = 0;
  /** W_LINE / W_STUCK: the byte ending the line, and the error when the line outgrows the limit. */
  private waitByte = 0;
  private waitError = '';
  /** Set by a step that stops: bytes needed from the unit start (W_BYTES). */
  private unitNeed = 0;
  /** Multibulk request in progress: arguments still expected and those read. */
  private mbLeft = 0;
  private mbArgs: Buffer[] = [];
  /** Offset of the request in `buf` (0 once its first bytes were set aside in mbParts). */
  private reqStart = 0;
  /** Bytes of the request in progress that are no longer in `buf`. */
  private mbParts: Buffer[] = [];
  private mbPartsLen = 0;
  private failed = false;
  /** Inside parse(): resume() called from onCommand only lets the running loop go on. */
  private parsing = false;
  /**
   * The client owes an AUTH (Redis's authRequired): Redis's unauthenticated limits apply to the
   * headers parsed from now on. Set by the session whenever its auth state changes.
   */
  authRequired = false;

  constructor(
    private readonly events: ParserEvents,
    private readonly limits: ParserLimits = DEFAULT_LIMITS,
  ) {}

  /** Bytes buffered and not yet part of a complete command. */
  get bufferedBytes(): number {
    return this.buf.length + this.pendingLen + this.mbPartsLen;
  }

  feed(chunk: Buffer): void {
    if (this.failed || chunk.length === 0) return;
    switch (this.wait) {
      case W_NONE:
        this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
        break;
      case W_BYTES:
        this.pending.push(chunk);
        this.pendingLen += chunk.length;
        if (this.buf.length + this.pendingLen < this.needed) return;
        this.joinPending();
        break;
      case W_LINE: {
        const end = chunk.indexOf(this.waitByte);
        const nul = chunk.indexOf(0);
        if (nul >= 0 && (end < 0 || nul < end)) {
          // Redis's strchr stops at the NUL: the line never ends.
          this.wait = W_STUCK;
          this.pending = [];
          this.pendingLen += chunk.length;
          this.checkLineLimit();
          return;
        }
        if (end < 0) {
          this.pending.push(chunk);
          this.pendingLen += chunk.length;
          this.checkLineLimit();
          return;
        }
        this.pending.push(chunk);
        this.pendingLen += chunk.length;
        this.joinPending();
        break;
      }
      case W_PAUSED:
        this.pending.push(chunk);
        this.pendingLen += chunk.length;
        return;
      default: // W_STUCK: nothing after the NUL is kept; only its size matters.
        this.pendingLen += chunk.length;
        this.checkLineLimit();
        return;
    }
    this.wait = W_NONE;
    this.parse();
  }

  /**
   * Called from onCommand: nothing after this command is parsed until resume(); later input is
   * kept as it comes, in order. For a request whose execution changes how the next ones are
   * judged (AUTH and the limits above): Redis runs it before it reads the next request.
   */
  pause(): void {
    if (!this.failed) this.wait = W_PAUSED;
  }

  get paused(): boolean {
    return this.wait === W_PAUSED;
  }

  /** Parses what was kept since pause(), under the limits as they are now. */
  resume(): void {
    if (this.wait !== W_PAUSED) return;
    this.wait = W_NONE;
    if (this.parsing) return; // paused and resumed within one onCommand: the loop goes on
    if (this.pendingLen > 0) this.joinPending();
    this.parse();
  }

  private joinPending(): void {
    this.buf = Buffer.concat([this.buf, ...this.pending]);
    this.pending = [];
    this.pendingLen = 0;
  }

  /** Redis's check while a line has no end: more than maxInlineLen bytes after its start. */
  private checkLineLimit(): void {
    if (this.buf.length - this.unitAt + this.pendingLen > this.limits.maxInlineLen) this.fail(this.waitError);
  }

  private fail(message: string): void {
    this.failed = true;
    this.buf = EMPTY;
    this.pending = [];
    this.pendingLen = 0;
    this.mbArgs = [];
    this.mbParts = [];
    this.mbPartsLen = 0;
    this.events.onProtocolError(message);
  }

  private parse(): void {
    const buf = this.buf;
    const len = buf.length;
    let pos = this.unitAt;
    this.parsing = true;
    while (pos < len) {
      let next: number;
      if (this.mbLeft > 0) {
        next = this.parseBulk(buf, pos);
        if (next > 0 && this.mbLeft === 0) {
          const raw = this.mbParts.length === 0 ? view(buf, this.reqStart, next) : Buffer.concat([...this.mbParts, buf.subarray(this.reqStart, next)]);
          const args = this.mbArgs;
          this.mbArgs = [];
          this.mbParts = [];
          this.mbPartsLen = 0;
          this.events.onCommand(args, raw);
        }
      } else if (buf[pos] === STAR) {
        next = this.parseMultibulkHeader(buf, pos);
        if (next > 0 && this.mbLeft > 0) this.reqStart = pos;
      } else {
        next = this.parseInline(buf, pos);
      }
      if (this.failed) {
        this.parsing = false;
        return;
      }
      if (next < 0) break;
      pos = next;
      if (this.wait === W_PAUSED) break; // set by onCommand: the rest stays in `buf`
    }
    this.parsing = false;
    // Keep what is not consumed. `pos` is the start of the unit being waited for (or len).
    let unitStart = 0;
    if (this.mbLeft === 0) {
      this.buf = pos >= len ? EMPTY : buf.subarray(pos);
    } else {
      const consumed = pos - this.reqStart;
      if (this.mbParts.length === 0 && consumed <= KEEP_CONTIGUOUS) {
        this.buf = buf.subarray(this.reqStart);
        unitStart = consumed;
      } else {
        if (consumed > 0) {
          this.mbParts.push(buf.subarray(this.reqStart, pos));
          this.mbPartsLen += consumed;
        }
        this.buf = pos >= len ? EMPTY : buf.subarray(pos);
      }
      this.reqStart = 0;
    }
    this.unitAt = unitStart;
    if (this.wait === W_BYTES) this.needed = unitStart + this.unitNeed;
  }

  /** A step could not complete: wait for `n` bytes from the unit start. */
  private waitBytes(n: number): number {
    this.wait = W_BYTES;
    this.unitNeed = n;
    return -1;
  }

  /**
   * No end of line (or a NUL before it) from `start`: Redis's limit check, then wait. Returns -1.
   */
  private waitLine(buf: Buffer, start: number, byte: number, error: string, stuck: boolean): number {
    if (buf.length - start > this.limits.maxInlineLen) {
      this.fail(error);
      return -1;
    }
    this.wait = stuck || hasNul(buf, start, buf.length) ? W_STUCK : W_LINE;
    this.waitByte = byte;
    this.waitError = error;
    this.pending = [];
    this.pendingLen = 0;
    return -1;
  }

  /** `*N\r`: returns the position after the header, or -1 (waiting or failed). */
  private parseMultibulkHeader(buf: Buffer, start: number): number {
    const error = 'Protocol error: too big mbulk count string';
    const cr = findCR(buf, start);
    if (cr < 0) return this.waitLine(buf, start, CR, error, false);
    if (cr + 1 >= buf.length) return this.waitBytes(cr + 2 - start);
    const count = parseLength(buf, start + 1, cr);
    if (count === null || count > this.limits.maxMultibulkLen) {
      if (count === null && hasNul(buf, start, cr)) return this.waitLine(buf, start, CR, error, true);
      this.fail('Protocol error: invalid multibulk length');
      return -1;
    }
    if (count > UNAUTHENTICATED_MAX_MULTIBULK_LEN && this.authRequired) {
      this.fail('Protocol error: unauthenticated multibulk length');
      return -1;
    }
    if (count > 0) {
      this.mbLeft = count;
      this.mbArgs = [];
    }
    return cr + 2; // Redis ignores empty multibulks (`*0`, `*-1`).
  }

  /** `$N\r` + N bytes + 2 unchecked bytes: returns the position after it, or -1. */
  private parseBulk(buf: Buffer, pos: number): number {
    const error = 'Protocol error: too big bulk count string';
    const cr = findCR(buf, pos);
    if (cr < 0) return this.waitLine(buf, pos, CR, error, false);
    if (cr + 1 >= buf.length) return this.waitBytes(cr + 2 - pos);
    if (buf[pos] !== DOLLAR) {
      if (hasNul(buf, pos, cr)) return this.waitLine(buf, pos, CR, error, true);
      this.fail(`Protocol error: expected '$', got '${String.fromCharCode(buf[pos])}'`);
      return -1;
    }
    const size = parseLength(buf, pos + 1, cr);
    if (size === null || size < 0 || size > this.limits.maxBulkLen) {
      if (size === null && hasNul(buf, pos, cr)) return this.waitLine(buf, pos, CR, error, true);
      this.fail('Protocol error: invalid bulk length');
      return -1;
    }
    if (size > UNAUTHENTICATED_MAX_BULK_LEN && this.authRequired) {
      this.fail('Protocol error: unauthenticated bulk length');
      return -1;
    }
    const dataStart = cr + 2;
    const dataEnd = dataStart + size;
    // Incomplete: the data is collected without re-scanning (W_BYTES).
    if (dataEnd + 2 > buf.length) return this.waitBytes(dataEnd + 2 - pos);
    this.mbArgs.push(view(buf, dataStart, dataEnd));
    this.mbLeft--;
    return dataEnd + 2; // Redis does not check the trailing CRLF of a bulk either.
  }

  private parseInline(buf: Buffer, start: number): number {
    const error = 'Protocol error: too big inline request';
    const nl = buf.indexOf(LF, start);
    if (nl < 0) return this.waitLine(buf, start, LF, error, false);
    if (hasNul(buf, start, nl)) return this.waitLine(buf, start, LF, error, true);
    const lineEnd = nl > start && buf[nl - 1] === CR ? nl - 1 : nl;
    const args = splitInlineArgs(buf.subarray(start, lineEnd));
    if (args === null) {
      this.fail('Protocol error: unbalanced quotes in request');
      return -1;
    }
    if (args.length > 0) this.events.onCommand(args, this.authRequired ? buf.subarray(start, nl + 1) : encodeRequest(args));
    return nl + 1;
  }
}
