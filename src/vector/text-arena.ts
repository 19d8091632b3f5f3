/**
 * Item texts, stored as bytes in a few large Buffers ("chunks") instead of one JS string each.
 *
 * Why: millions of strings live on the V8 heap, count against --max-old-space-size (a store of a
 * few GB of text would crash the process) and are scanned by every full GC. Here texts are
 * off-heap, cost their bytes plus 12 bytes of bookkeeping per slot, and are binary-safe (Redis
 * values are bytes; a Buffer given to put() comes back unchanged from getBytes()).
 *
 * Texts are appended to the current chunk; chunk sizes start small (tiny stores stay tiny) and
 * double up to CHUNK_MAX. Removed or replaced texts become garbage; a chunk whose texts are all
 * gone is dropped, and when dead bytes exceed the live ones (and 1 MB) the live texts are copied into
 * fresh chunks (amortised O(1) per byte written: a compaction copies at most as many bytes as
 * became garbage since the last one).
 */
const CHUNK_MIN = 4 * 1024;
const CHUNK_MAX = 16 * 1024 * 1024;
const NONE = 0xffffffff; // slot has no text (free slot)
const EMPTY = 0xfffffffe; // slot has the empty text (uses no chunk)
/** Below this many bytes a plain loop beats Buffer#copy / TypedArray#set (each makes a view object and crosses into C++). */
const SHORT_COPY = 64;

/** Copies `len` bytes from src[from..] to dst[to..]; short texts (the common case) byte by byte. */
function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, len: number): void {
  if (len <= SHORT_COPY) {
    for (let i = 0; i < len; i++) dst[to + i] = src[from + i]!;
  } else {
    dst.set(src.subarray(from, from + len), to);
  }
}

export class TextArena {
  private chunks: (Buffer | null)[] = [];
  private chunkLive: number[] = []; // live bytes per chunk
  private cur = -1; // chunk being appended to
  private curUsed = 0;
  private nextChunkSize = CHUNK_MIN;
  // per slot
  private chunkOf = new Uint32Array(0);
  private offset = new Uint32Array(0);
  private length = new Uint32Array(0);
  private totalChunkBytes = 0;
  private live = 0;

  /** Bytes of live texts. */
  get liveBytes(): number {
    return this.live;
  }

  /** Bytes held (chunks and per-slot bookkeeping). */
  get byteLength(): number {
    return this.totalChunkBytes + this.chunkOf.byteLength * 3;
  }

  /** The next chunk will hold at least `bytes` (e.g. all texts of a snapshot being loaded). */
  sizeHint(bytes: number): void {
    if (bytes > this.nextChunkSize) this.nextChunkSize = Math.min(CHUNK_MAX, bytes);
  }

  /** Makes room for slots [0, slots) (exactly that many when `exact`, else doubling). */
  ensureSlots(slots: number, exact = false): void {
    if (slots <= this.chunkOf.length) return;
    let cap = Math.max(16, this.chunkOf.length);
    while (cap < slots) cap *= 2;
    if (exact) cap = slots;
    const grow = (a: Uint32Array, fill?: number) => {
      const b = new Uint32Array(cap);
      if (fill !== undefined) b.fill(fill, a.length);
      b.set(a);
      return b;
    };
    this.chunkOf = grow(this.chunkOf, NONE);
    this.offset = grow(this.offset);
    this.length = grow(this.length);
  }

  /** Stores the text of `slot` (replacing any previous one). Strings are stored as UTF-8. */
  put(slot: number, text: string | Uint8Array): void {
    this.free(slot);
    const len = typeof text === 'string' ? Buffer.byteLength(text, 'utf8') : text.byteLength;
    if (len === 0) {
      this.chunkOf[slot] = EMPTY;
      this.length[slot] = 0;
      return;
    }
    const { chunk, at } = this.reserve(len);
    const buf = this.chunks[chunk]!;
    if (typeof text === 'string') buf.write(text, at, 'utf8');
    else buf.set(text, at);
    this.chunkOf[slot] = chunk;
    this.offset[slot] = at;
    this.length[slot] = len;
    this.chunkLive[chunk]! += len;
    this.live += len;
  }

  /** Stores bytes [start, end) of `src` as the text of `slot` (no intermediate view objects). */
  putRange(slot: number, src: Buffer, start: number, end: number): void {
    this.free(slot);
    const len = end - start;
    if (len === 0) {
      this.chunkOf[slot] = EMPTY;
      this.length[slot] = 0;
      return;
    }
    const { chunk, at } = this.reserve(len);
    copyBytes(src, start, this.chunks[chunk]!, at, len);
    this.chunkOf[slot] = chunk;
    this.offset[slot] = at;
    this.length[slot] = len;
    this.chunkLive[chunk]! += len;
    this.live += len;
  }

  /** Forgets the text of `slot` (if any). */
  free(slot: number): void {
    if (slot >= this.chunkOf.length) return;
    const c = this.chunkOf[slot]!;
    if (c === NONE) return;
    this.chunkOf[slot] = NONE;
    if (c === EMPTY) return;
    const len = this.length[slot]!;
    this.live -= len;
    this.chunkLive[c]! -= len;
    if (this.chunkLive[c] === 0 && c !== this.cur) {
      this.totalChunkBytes -= this.chunks[c]!.length;
      this.chunks[c] = null;
    }
    // garbage: bytes of dead texts (the unwritten tail of the current chunk is not garbage)
    const tail = this.cur >= 0 && this.chunks[this.cur] ? this.chunks[this.cur]!.length - this.curUsed : 0;
    const garbage = this.totalChunkBytes - tail - this.live;
    if (garbage > 1 << 20 && garbage > this.live) this.compact();
  }

  has(slot: number): boolean {
    return slot < this.chunkOf.length && this.chunkOf[slot] !== NONE;
  }

  /** Byte length of the text of `slot`. */
  byteLengthOf(slot: number): number {
    return this.has(slot) ? this.length[slot]! : 0;
  }

  /** A copy of the bytes of `slot`. */
  getBytes(slot: number): Buffer {
    const c = this.chunkOf[slot]!;
    if (c === EMPTY) return Buffer.alloc(0);
    const o = this.offset[slot]!;
    return Buffer.from(this.chunks[c]!.subarray(o, o + this.length[slot]!));
  }

  /** The text of `slot` decoded as UTF-8. */
  getString(slot: number): string {
    const c = this.chunkOf[slot]!;
    if (c === EMPTY) return '';
    const o = this.offset[slot]!;
    return this.chunks[c]!.toString('utf8', o, o + this.length[slot]!);
  }

  /** Copies the bytes of `slot` into `out` at `at`; returns the byte count. */
  copyTo(slot: number, out: Uint8Array, at: number): number {
    const c = this.chunkOf[slot]!;
    if (c === EMPTY) return 0;
    const o = this.offset[slot]!;
    const len = this.length[slot]!;
    copyBytes(this.chunks[c]!, o, out, at, len);
    return len;
  }

  /** Space for len bytes: the current chunk, or a new one. */
  private reserve(len: number): { chunk: number; at: number } {
    if (this.cur < 0 || this.curUsed + len > this.chunks[this.cur]!.length) {
      const size = Math.max(len, this.nextChunkSize);
      this.nextChunkSize = Math.min(CHUNK_MAX, this.nextChunkSize * 2);
      // the chunk we leave may already be empty of live text
      if (this.cur >= 0 && this.chunkLive[this.cur] === 0 && this.chunks[this.cur]) {
        this.totalChunkBytes -= this.chunks[this.cur]!.length;
        this.chunks[this.cur] = null;
      }
      let idx = this.chunks.indexOf(null);
      if (idx < 0) idx = this.chunks.length;
      this.chunks[idx] = Buffer.allocUnsafeSlow(size);
      this.chunkLive[idx] = 0;
      this.totalChunkBytes += size;
      this.cur = idx;
      this.curUsed = 0;
    }
    const at = this.curUsed;
    this.curUsed += len;
    return { chunk: this.cur, at };
  }

  /** Rewrites every live text into fresh chunks sized to fit. */
  compact(): void {
    const old = this.chunks;
    const n = this.chunkOf.length;
    this.chunks = [];
    this.chunkLive = [];
    this.cur = -1;
    this.curUsed = 0;
    this.totalChunkBytes = 0;
    this.nextChunkSize = Math.min(CHUNK_MAX, Math.max(CHUNK_MIN, this.live));
    for (let s = 0; s < n; s++) {
      const c = this.chunkOf[s]!;
      if (c === NONE || c === EMPTY) continue;
      const len = this.length[s]!;
      const o = this.offset[s]!;
      const { chunk, at } = this.reserve(len);
      old[c]!.copy(this.chunks[chunk]!, at, o, o + len);
      this.chunkOf[s] = chunk;
      this.offset[s] = at;
      this.chunkLive[chunk]! += len;
    }
  }
}
