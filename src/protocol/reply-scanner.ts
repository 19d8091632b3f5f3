/**
 * Streaming frame-boundary scanner for RESP2 and RESP3 replies coming from the backing Redis.
 *
 * It does not decode values: it only finds where each top-level frame ends, and of what type it
 * is (a RESP3 push `>` is not the reply to a request), so the proxy can forward bytes untouched
 * and still know which request a reply belongs to. State survives across chunks (a 100 MB bulk
 * reply can stream through without being buffered); only an incomplete header line (`$12345`
 * without its CRLF yet) is carried over, and it is tiny.
 */

const CR = 13;
const LF = 10;

/** First byte of a RESP3 push frame. */
export const PUSH = 62;

export class ReplyScanner {
  /** Remaining elements of each open aggregate, innermost last. */
  private stack: number[] = [];
  /** Which open aggregates are attributes (they annotate the next value and do not count as one). */
  private attr: boolean[] = [];
  /** The type (first byte) of the current top-level frame, once its first header was read. */
  private frameType = 0;
  /** A top-level attribute ended: the frame is the value that follows it. */
  private afterAttr = false;
  /** Bytes of bulk payload (plus its CRLF) still to skip. */
  private skip = 0;
  /** A header line split across chunks. */
  private carry: Buffer | null = null;
  /** True while inside a top-level frame (some of its bytes already seen). */
  inFrame = false;

  /** Forget any partial frame (after the link was lost). */
  reset(): void {
    this.stack = [];
    this.attr = [];
    this.frameType = 0;
    this.afterAttr = false;
    this.skip = 0;
    this.carry = null;
    this.inFrame = false;
  }

  /**
   * Scans `chunk` and pushes the offset just after each completed top-level frame into `ends`,
   * and, when `types` is given, the frame's type (its first byte: PUSH for a push) into `types`.
   * Throws on bytes that are not RESP (the link is then unusable).
   */
  scan(chunk: Buffer, ends: number[], types?: number[]): void {
    this.types = types;
    let pos = 0;
    const len = chunk.length;
    if (this.carry) {
      // Complete the split header line first.
      const nl = chunk.indexOf(LF);
      if (nl < 0) {
        this.carry = Buffer.concat([this.carry, chunk]);
        if (this.carry.length > 65536) throw new Error('reply header line too long');
        return;
      }
      const line = Buffer.concat([this.carry, chunk.subarray(0, nl + 1)]);
      this.carry = null;
      this.header(line, 0, line.length - 1);
      pos = nl + 1;
      if (this.isComplete()) this.ended(ends, pos);
    }
    while (pos < len) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, len - pos);
        this.skip -= n;
        pos += n;
        if (this.skip === 0) {
          this.elementDone();
          if (this.isComplete()) this.ended(ends, pos);
        }
        continue;
      }
      const nl = chunk.indexOf(LF, pos);
      if (nl < 0) {
        this.carry = Buffer.from(chunk.subarray(pos));
        this.inFrame = true;
        return;
      }
      this.header(chunk, pos, nl);
      pos = nl + 1;
      if (this.isComplete()) this.ended(ends, pos);
    }
  }

  private types: number[] | undefined;

  private ended(ends: number[], pos: number): void {
    ends.push(pos);
    this.types?.push(this.frameType);
    this.frameType = 0;
  }

  private isComplete(): boolean {
    if (this.stack.length === 0 && this.skip === 0 && !this.afterAttr) {
      this.inFrame = false;
      return true;
    }
    this.inFrame = true;
    return false;
  }

  private elementDone(): void {
    // Pop every aggregate this element completes (an attribute that completes does not complete
    // an element of its parent: the value it annotates follows).
    while (this.stack.length > 0) {
      const top = this.stack.length - 1;
      this.stack[top]--;
      if (this.stack[top] > 0) return;
      this.stack.pop();
      if (this.attr.pop()) {
        if (this.stack.length === 0) this.afterAttr = true;
        return;
      }
    }
  }

  private open(n: number, isAttr: boolean): void {
    this.stack.push(n);
    this.attr.push(isAttr);
  }

  /** Handles one header line `buf[start..nl]` (nl is the index of LF). */
  private header(buf: Buffer, start: number, nl: number): void {
    const type = buf[start]!;
    const end = nl > start && buf[nl - 1] === CR ? nl - 1 : nl;
    if (this.stack.length === 0 && type !== 124) {
      // The frame's own first header (after any attribute annotating it).
      this.frameType = type;
      this.afterAttr = false;
    }
    switch (type) {
      case 43: // +
      case 45: // -
      case 58: // :
      case 95: // _ null
      case 44: // , double
      case 35: // # boolean
      case 40: // ( big number
        this.elementDone();
        return;
      case 36: // $
      case 61: // = verbatim string
      case 33: { // ! blob error
        const n = parseLength(buf, start + 1, end);
        if (Number.isNaN(n)) throw new Error('invalid bulk length in reply');
        if (n < 0) this.elementDone();
        else this.skip = n + 2;
        return;
      }
      case 42: // *
      case 126: // ~ set
      case 62: { // > push
        const n = parseLength(buf, start + 1, end);
        if (Number.isNaN(n)) throw new Error('invalid multibulk length in reply');
        if (n <= 0) this.elementDone();
        else this.open(n, false);
        return;
      }
      case 37: // % map
      case 124: { // | attribute
        const n = parseLength(buf, start + 1, end);
        if (Number.isNaN(n) || n < 0) throw new Error('invalid map length in reply');
        if (n === 0) {
          if (type === 37) this.elementDone();
        } else this.open(n * 2, type === 124);
        return;
      }
      default:
        throw new Error(`unexpected byte ${type} in reply`);
    }
  }
}

/** A header length (`-1`, `0`, `123`) read from the bytes, without building a string; NaN if malformed. */
function parseLength(buf: Buffer, start: number, end: number): number {
  let i = start;
  let neg = false;
  if (buf[i] === 45 /* - */) {
    neg = true;
    i++;
  }
  if (i >= end) return NaN;
  let n = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  return neg ? -n : n;
}
