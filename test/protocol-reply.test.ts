/**
 * Unit tests for the reply side of the protocol layer: src/protocol/reply-scanner.ts (streaming
 * top-level frame-end finder for backend replies) and src/protocol/resp.ts (encode, decodeFrame,
 * splitArrayFrame and helpers).
 *
 * Random tests are seeded: set PROTOCOL_FUZZ_SEED to reproduce a run (failures print the seed).
 */
import fc from 'fast-check';
// redis-parser ships no types; it is used only as a reference parser here.
import RedisParser from 'redis-parser';
import { describe, expect, it } from 'vitest';
import { ReplyScanner } from '../src/protocol/reply-scanner.js';
import {
  ErrorReply,
  OK,
  RawReply,
  SimpleString,
  bufEqIgnoreCase,
  decodeFrame,
  encode,
  formatDouble,
  joinArrayFrame,
  RespBool,
  RespDouble,
  RespMap,
  splitArrayFrame,
  type Decoded,
  type RespValue,
} from '../src/protocol/resp.js';
import { Rng, seededRounds } from '../harness/rng.js';

const SEED = Number(process.env.PROTOCOL_FUZZ_SEED ?? 0x5eed1e55);

/** Seeded rounds of this file: PROTOCOL_FUZZ_SEED reproduces a failing run. */
function seeded(label: string, rounds: number, fn: (rng: Rng, round: number) => void): void {
  seededRounds(SEED, 'PROTOCOL_FUZZ_SEED', label, rounds, fn);
}

const SPECIAL = [13, 10, 42, 36, 43, 45, 58, 48, 0, 32, 255];

function randomBytes(rng: Rng, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = rng.chance(0.3) ? rng.pick(SPECIAL) : rng.int(256);
  return b;
}

function largeBytes(rng: Rng, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = rng.int(0x7fffffff) | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  for (let k = 0; k < 32; k++) {
    const at = rng.int(Math.max(1, len - 6));
    Buffer.from('\r\n$5\r\n').copy(b, at, 0, Math.min(6, len - at));
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// Random replies with their bytes and their decoded value (built independently of resp.ts)

interface Frame {
  bytes: Buffer;
  value: Decoded;
}

const TEXT_CHARS = 'abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789-_:.,*$+!?"\'\\\té';

function text(rng: Rng, min: number, max: number): string {
  let s = '';
  const n = rng.range(min, max);
  for (let i = 0; i < n; i++) s += rng.pick([...TEXT_CHARS]);
  return s;
}

const cat = (...parts: Array<string | Buffer>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

function genFrame(rng: Rng, depth: number, allowLarge: boolean): Frame {
  const k = rng.next();
  const canNest = depth < 5;
  if (k < 0.12) {
    const s = text(rng, 0, 20);
    return { bytes: cat('+', s, '\r\n'), value: new SimpleString(s) };
  }
  if (k < 0.2) {
    const prefix = rng.pick(['ERR', 'WRONGTYPE', 'NOAUTH', 'MOVED', 'BUSY']);
    const msg = text(rng, 1, 30).replace(/^ +/, '') || 'x';
    return { bytes: cat('-', prefix, ' ', msg, '\r\n'), value: new ErrorReply(msg, prefix) };
  }
  if (k < 0.32) {
    const n = rng.pick([0, 1, -1, rng.range(-1000, 1000), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, rng.int(2 ** 31)]);
    return { bytes: cat(`:${n}\r\n`), value: n };
  }
  if (k < 0.37) return { bytes: cat('$-1\r\n'), value: null };
  if (k < 0.42) return { bytes: cat('$0\r\n\r\n'), value: Buffer.alloc(0) };
  if (k < (canNest ? 0.62 : 1)) {
    const data = allowLarge && rng.chance(0.05) ? largeBytes(rng, rng.range(20_000, 150_000)) : randomBytes(rng, rng.range(1, 40));
    return { bytes: cat(`$${data.length}\r\n`, data, '\r\n'), value: data };
  }
  if (k < 0.67) return { bytes: cat('*-1\r\n'), value: null };
  if (k < 0.72) return { bytes: cat('*0\r\n'), value: [] };
  const n = rng.range(1, depth < 2 ? 6 : 3);
  const elems: Frame[] = [];
  for (let i = 0; i < n; i++) elems.push(genFrame(rng, depth + 1, allowLarge));
  return { bytes: cat(`*${n}\r\n`, ...elems.map((e) => e.bytes)), value: elems.map((e) => e.value) };
}

/** A frame nested exactly `depth` arrays deep, to be sure deep nesting is covered. */
function deepFrame(rng: Rng, depth: number): Frame {
  if (depth === 0) return genFrame(rng, 5, false);
  const inner = deepFrame(rng, depth - 1);
  const sibling = genFrame(rng, 5, false);
  const innerFirst = rng.chance(0.5);
  const elems = innerFirst ? [inner, sibling] : [sibling, inner];
  return { bytes: cat('*2\r\n', ...elems.map((e) => e.bytes)), value: elems.map((e) => e.value) };
}

function genStream(rng: Rng, count: number, allowLarge: boolean): { frames: Frame[]; stream: Buffer; ends: number[] } {
  const frames: Frame[] = [];
  for (let i = 0; i < count; i++) frames.push(rng.chance(0.15) ? deepFrame(rng, 5) : genFrame(rng, 0, allowLarge));
  const ends: number[] = [];
  let at = 0;
  for (const f of frames) ends.push((at += f.bytes.length));
  return { frames, stream: Buffer.concat(frames.map((f) => f.bytes)), ends };
}

// ---------------------------------------------------------------------------------------------
// Feeding helpers

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, buf.length]) {
    chunks.push(Buffer.from(buf.subarray(prev, c)));
    prev = c;
  }
  return chunks;
}

function randomSplit(rng: Rng, buf: Buffer, maxPieces: number): Buffer[] {
  const n = rng.range(0, Math.min(maxPieces - 1, buf.length));
  const cuts = new Set<number>();
  for (let i = 0; i < n; i++) cuts.add(rng.int(buf.length + 1));
  return splitAt(buf, [...cuts].sort((a, b) => a - b));
}

function bytewise(buf: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) chunks.push(Buffer.from([buf[i]]));
  return chunks;
}

/**
 * Scans the chunks; returns the frame ends as offsets into the whole stream. Also checks, after
 * every chunk, that each reported end lies within that chunk and that `inFrame` says whether the
 * bytes so far stop inside a frame.
 */
function scanChunks(chunks: Buffer[], trueEnds: number[], scanner = new ReplyScanner()): number[] {
  const boundaries = new Set([0, ...trueEnds]);
  const ends: number[] = [];
  let base = 0;
  for (const c of chunks) {
    const local: number[] = [];
    scanner.scan(c, local);
    for (const e of local) {
      if (!(e > 0 && e <= c.length)) throw new Error(`end ${e} outside the chunk of ${c.length} bytes at ${base}`);
      ends.push(base + e);
    }
    base += c.length;
    if (scanner.inFrame !== !boundaries.has(base)) {
      throw new Error(`inFrame is ${scanner.inFrame} after ${base} bytes (frame ends: ${trueEnds.join(',')})`);
    }
  }
  return ends;
}

function redisParserCount(stream: Buffer): number {
  let n = 0;
  const parser = new RedisParser({
    returnBuffers: true,
    returnReply() {
      n++;
    },
    returnError() {
      n++;
    },
    returnFatalError(err: Error) {
      throw err;
    },
  });
  parser.execute(stream);
  return n;
}

// ---------------------------------------------------------------------------------------------

describe('ReplyScanner', () => {
  it('random nested replies (incl. large bulks), random splits: ends are the true frame boundaries', () => {
    seeded('scanner random splits', 40, (rng) => {
      const { stream, ends } = genStream(rng, rng.range(1, 10), true);
      expect(redisParserCount(stream)).toBe(ends.length);
      expect(scanChunks([stream], ends)).toEqual(ends);
      for (let k = 0; k < 4; k++) {
        expect(scanChunks(randomSplit(rng, stream, rng.pick([3, 30, 300])), ends)).toEqual(ends);
      }
      const size = rng.pick([1024, 16 * 1024, 65536]);
      const cuts: number[] = [];
      for (let at = size; at < stream.length; at += size) cuts.push(at);
      expect(scanChunks(splitAt(stream, cuts), ends)).toEqual(ends);
    });
  });

  it('small replies fed one byte at a time and split at every byte boundary', () => {
    seeded('scanner every byte', 60, (rng) => {
      const { stream, ends } = genStream(rng, rng.range(1, 5), false);
      expect(scanChunks(bytewise(stream), ends)).toEqual(ends);
      for (let cut = 0; cut <= stream.length; cut++) {
        expect(scanChunks(splitAt(stream, [cut]), ends)).toEqual(ends);
      }
      // Three pieces: both cuts random.
      for (let k = 0; k < 20; k++) {
        const a = rng.int(stream.length + 1);
        const b = rng.int(stream.length + 1);
        expect(scanChunks(splitAt(stream, [Math.min(a, b), Math.max(a, b)]), ends)).toEqual(ends);
      }
    });
  });

  it('fixed cases: every kind of reply, null and empty aggregates, nesting 5 deep', () => {
    const frames = [
      '+OK\r\n',
      '-ERR unknown command\r\n',
      ':-42\r\n',
      '$-1\r\n',
      '$0\r\n\r\n',
      '$4\r\n\r\n\r\n\r\n',
      '*-1\r\n',
      '*0\r\n',
      '*3\r\n$-1\r\n*0\r\n*-1\r\n',
      '*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n',
      '*2\r\n*2\r\n*2\r\n*2\r\n*2\r\n$1\r\n*\r\n+x\r\n*0\r\n:3\r\n$-1\r\n-E\r\n',
      '*2\r\n*1\r\n*1\r\n*1\r\n*-1\r\n*0\r\n',
    ].map((s) => Buffer.from(s));
    const stream = Buffer.concat(frames);
    const ends: number[] = [];
    let at = 0;
    for (const f of frames) ends.push((at += f.length));
    expect(redisParserCount(stream)).toBe(frames.length);
    expect(scanChunks([stream], ends)).toEqual(ends);
    expect(scanChunks(bytewise(stream), ends)).toEqual(ends);
    for (let cut = 0; cut <= stream.length; cut++) expect(scanChunks(splitAt(stream, [cut]), ends)).toEqual(ends);
  });

  it('a large bulk streams through in pieces, with one end at the right place', () => {
    const rng = new Rng(SEED);
    const data = largeBytes(rng, 3_000_000);
    const stream = cat(`$${data.length}\r\n`, data, '\r\n+OK\r\n');
    const ends = [stream.length - 5, stream.length];
    const cuts: number[] = [];
    for (let at = 65536; at < stream.length; at += 65536) cuts.push(at);
    expect(scanChunks(splitAt(stream, cuts), ends)).toEqual(ends);
  });

  it('empty chunks change nothing', () => {
    const s = new ReplyScanner();
    const ends: number[] = [];
    s.scan(Buffer.alloc(0), ends);
    expect(ends).toEqual([]);
    expect(s.inFrame).toBe(false);
    s.scan(Buffer.from('*2\r\n$3'), ends);
    s.scan(Buffer.alloc(0), ends);
    s.scan(Buffer.from('\r\nfoo\r\n'), ends);
    s.scan(Buffer.alloc(0), ends);
    expect(s.inFrame).toBe(true);
    s.scan(Buffer.from(':1\r\n'), ends);
    expect(ends).toEqual([4]);
    expect(s.inFrame).toBe(false);
  });

  it('reset() forgets a partial frame', () => {
    for (const partial of ['*3\r\n:1\r\n', '$10\r\nabc', '*2\r\n*2\r\n$5\r\nab', '$12', '*1\r\n+hel']) {
      const s = new ReplyScanner();
      const ends: number[] = [];
      s.scan(Buffer.from(partial), ends);
      expect(ends, partial).toEqual([]);
      expect(s.inFrame, partial).toBe(true);
      s.reset();
      expect(s.inFrame, partial).toBe(false);
      s.scan(Buffer.from('+OK\r\n*1\r\n:2\r\n'), ends);
      expect(ends, partial).toEqual([5, 13]);
      expect(s.inFrame).toBe(false);
    }
  });

  it.each([
    ['?\r\n'],
    ['\r\n'],
    ['x'.repeat(3) + '\r\n'],
    ['$abc\r\n'],
    ['$\r\n'],
    ['*x\r\n'],
    ['*\r\n'],
    ['*2\r\n:1\r\n?3\r\nabc\r\n'], // invalid type inside an array
    ['$3\r\nabc\r\n&t\r\n'], // after a valid frame
    ['%x\r\n'],
    ['%-1\r\n'],
    ['=\r\n'],
  ])('invalid bytes throw: %j', (input) => {
    expect(() => new ReplyScanner().scan(Buffer.from(input), [])).toThrow();
    // Also when the bad header arrives one byte at a time.
    expect(() => {
      const s = new ReplyScanner();
      for (const c of bytewise(Buffer.from(input))) s.scan(c, []);
    }).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------

describe('resp.encode', () => {
  const enc = (v: RespValue) => encode(v).toString('latin1');

  it.each([
    ['null', null, '$-1\r\n'],
    ['integer', 42, ':42\r\n'],
    ['negative integer', -7, ':-7\r\n'],
    ['zero', 0, ':0\r\n'],
    ['bigint', 9223372036854775807n, ':9223372036854775807\r\n'],
    ['negative bigint', -5n, ':-5\r\n'],
    ['double', 1.5, '$3\r\n1.5\r\n'],
    ['small double', -0.25, '$5\r\n-0.25\r\n'],
    ['NaN', Number.NaN, '$3\r\nnan\r\n'],
    ['Infinity', Infinity, '$3\r\ninf\r\n'],
    ['-Infinity', -Infinity, '$4\r\n-inf\r\n'],
    ['string', 'hello', '$5\r\nhello\r\n'],
    ['empty string', '', '$0\r\n\r\n'],
    ['UTF-8 string (byte length)', 'héllo', '$6\r\nh\xc3\xa9llo\r\n'],
    ['buffer with CRLF', Buffer.from('a\r\nb\x00\xff', 'latin1'), '$6\r\na\r\nb\x00\xff\r\n'],
    ['empty buffer', Buffer.alloc(0), '$0\r\n\r\n'],
    ['empty array', [], '*0\r\n'],
    ['array', [1, 'a', null], '*3\r\n:1\r\n$1\r\na\r\n$-1\r\n'],
    ['nested array', [[[]], [OK, [2n]]], '*2\r\n*1\r\n*0\r\n*2\r\n+OK\r\n*1\r\n:2\r\n'],
    ['simple string', new SimpleString('PONG'), '+PONG\r\n'],
    ['OK', OK, '+OK\r\n'],
    ['simple string with CR LF', new SimpleString('a\r\nb'), '+a  b\r\n'],
    ['error', new ErrorReply('no such key'), '-ERR no such key\r\n'],
    ['error with prefix', new ErrorReply('Operation against a key', 'WRONGTYPE'), '-WRONGTYPE Operation against a key\r\n'],
    ['error with CR LF', new ErrorReply('bad\r\nthing\nhere'), '-ERR bad thing here\r\n'],
    ['raw reply', new RawReply(Buffer.from('*1\r\n:1\r\n')), '*1\r\n:1\r\n'],
    ['raw reply inside an array', [new RawReply(Buffer.from('+x\r\n')), 3], '*2\r\n+x\r\n:3\r\n'],
  ] as Array<[string, RespValue, string]>)('%s', (_name, value, want) => {
    expect(enc(value)).toBe(want);
  });

  it('undefined encodes as a nil bulk; other objects are refused', () => {
    expect(enc([undefined as unknown as RespValue])).toBe('*1\r\n$-1\r\n');
    expect(() => encode({} as unknown as RespValue)).toThrow(TypeError);
    expect(() => encode([new Date()] as unknown as RespValue)).toThrow(TypeError);
  });

  it('a number is encoded as a well-formed RESP2 integer (digits only) or as a bulk string of its value', () => {
    // 1e21 is an integer to Number.isInteger, but its String() form is "1e+21".
    for (const n of [2 ** 53, -(2 ** 60), 1e21, -1e300, Number.MAX_VALUE]) {
      const s = enc(n);
      expect(s, `encode(${n})`).toMatch(/^(:-?\d+|\$\d+\r\n[^\r\n]+)\r\n$/);
      const { value } = decodeFrame(encode(n));
      expect(Number(Buffer.isBuffer(value) ? value.toString() : value), `encode(${n})`).toBe(n);
    }
  });

  it('ErrorReply.toString and formatDouble', () => {
    expect(String(new ErrorReply('boom'))).toBe('ERR boom');
    expect(String(new ErrorReply('Authentication required.', 'NOAUTH'))).toBe('NOAUTH Authentication required.');
    expect(formatDouble(0.1)).toBe('0.1');
    expect(formatDouble(-2.5)).toBe('-2.5');
    expect(formatDouble(3)).toBe('3');
    expect(formatDouble(Number.NaN)).toBe('nan');
    expect(formatDouble(Infinity)).toBe('inf');
    expect(formatDouble(-Infinity)).toBe('-inf');
    for (const d of [0.1, 1 / 3, 1e-7, 123456.789, 5e-324]) expect(Number(formatDouble(d))).toBe(d);
  });
});

describe('resp.decodeFrame', () => {
  it.each([
    ['+OK\r\n', new SimpleString('OK')],
    ['+\r\n', new SimpleString('')],
    ['+h\xc3\xa9\r\n', new SimpleString('hé')],
    ['-ERR unknown command\r\n', new ErrorReply('unknown command', 'ERR')],
    ['-NOAUTH Authentication required.\r\n', new ErrorReply('Authentication required.', 'NOAUTH')],
    ['-ERR\r\n', new ErrorReply('', 'ERR')],
    [':0\r\n', 0],
    [':-123\r\n', -123],
    ['$-1\r\n', null],
    ['*-1\r\n', null],
    ['$0\r\n\r\n', Buffer.alloc(0)],
    ['$4\r\na\r\nb\r\n', Buffer.from('a\r\nb')],
    ['*0\r\n', []],
    ['*3\r\n:1\r\n*2\r\n$-1\r\n+x\r\n-E y\r\n', [1, [null, new SimpleString('x')], new ErrorReply('y', 'E')]],
  ] as Array<[string, Decoded]>)('%j', (input, want) => {
    const bytes = Buffer.from(input, 'latin1');
    const r = decodeFrame(bytes);
    expect(r.value).toEqual(want);
    expect(r.end).toBe(bytes.length);
  });

  it('decodes at an offset and reports the end offset', () => {
    const buf = Buffer.from('+a\r\n$3\r\nfoo\r\n:5\r\n');
    const a = decodeFrame(buf);
    const b = decodeFrame(buf, a.end);
    const c = decodeFrame(buf, b.end);
    expect([a.value, b.value, c.value]).toEqual([new SimpleString('a'), Buffer.from('foo'), 5]);
    expect([a.end, b.end, c.end]).toEqual([4, 13, 17]);
  });

  it('throws on an incomplete header line or an unknown type byte', () => {
    expect(() => decodeFrame(Buffer.from('+OK'))).toThrow();
    expect(() => decodeFrame(Buffer.from('*2\r\n:1\r\n'))).toThrow();
    expect(() => decodeFrame(Buffer.from('?x\r\n'))).toThrow();
    expect(() => decodeFrame(Buffer.from('*1\r\n&\r\n'))).toThrow();
  });

  it('random frames decode to the generated values, ending at the frame end', () => {
    seeded('decodeFrame', 300, (rng) => {
      const { frames, stream, ends } = genStream(rng, rng.range(1, 4), rng.chance(0.1));
      let pos = 0;
      for (let i = 0; i < frames.length; i++) {
        const r = decodeFrame(stream, pos);
        expect(r.value).toEqual(frames[i].value);
        expect(r.end).toBe(ends[i]);
        pos = r.end;
      }
    });
  });

  it('encode → decodeFrame round trip (fast-check)', () => {
    // Decoded form of an encoded value: strings and doubles come back as bulk Buffers.
    const norm = (v: RespValue): Decoded => {
      if (v === null) return null;
      if (typeof v === 'string') return Buffer.from(v);
      if (typeof v === 'bigint') return Number(v);
      if (typeof v === 'number') return Number.isInteger(v) ? v : Buffer.from(formatDouble(v));
      if (Array.isArray(v)) return v.map(norm);
      return v as Decoded;
    };
    const leaf = fc.oneof(
      fc.constant(null),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
      fc.bigInt({ min: -(2n ** 50n), max: 2n ** 50n }),
      fc.double({ noDefaultInfinity: false }).filter((d) => !Number.isInteger(d)),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.uint8Array({ maxLength: 30 }).map((a) => Buffer.from(a)),
      fc.string({ maxLength: 15 }).filter((s) => !/[\r\n]/.test(s)).map((s) => new SimpleString(s)),
      fc
        .tuple(fc.constantFrom('ERR', 'WRONGTYPE', 'NOSCRIPT'), fc.string({ minLength: 1, maxLength: 15 }))
        .filter(([, m]) => !/[\r\n]/.test(m) && !m.startsWith(' '))
        .map(([p, m]) => new ErrorReply(m, p)),
    );
    const { value } = fc.letrec<{ value: RespValue }>((tie) => ({
      value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('value'), { maxLength: 5 })),
    }));
    fc.assert(
      fc.property(value, (v) => {
        const bytes = encode(v);
        const r = decodeFrame(bytes);
        expect(r.value).toEqual(norm(v));
        expect(r.end).toBe(bytes.length);
        const ends: number[] = [];
        new ReplyScanner().scan(bytes, ends);
        expect(ends).toEqual([bytes.length]);
        expect(redisParserCount(bytes)).toBe(1);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});

describe('resp.splitArrayFrame', () => {
  it('splits a multibulk frame into the raw bytes of its elements', () => {
    const r = splitArrayFrame(Buffer.from('*4\r\n:1\r\n$3\r\nf\r\n\r\n*2\r\n+a\r\n$-1\r\n-ERR x\r\n'));
    expect(r).not.toBeNull();
    expect(r!.count).toBe(4);
    expect(r!.elements.map((e) => e.toString())).toEqual([':1\r\n', '$3\r\nf\r\n\r\n', '*2\r\n+a\r\n$-1\r\n', '-ERR x\r\n']);
  });

  it('empty array → no elements; null array and non-arrays → null', () => {
    expect(splitArrayFrame(Buffer.from('*0\r\n'))).toEqual({ type: 42, count: 0, elements: [] });
    expect(splitArrayFrame(Buffer.from('*-1\r\n'))).toBeNull();
    expect(splitArrayFrame(Buffer.from('+OK\r\n'))).toBeNull();
    expect(splitArrayFrame(Buffer.from('$2\r\n*1\r\n'))).toBeNull();
    expect(splitArrayFrame(Buffer.from('*x\r\n'))).toBeNull();
  });

  it('random arrays: elements are exactly the encoded elements', () => {
    seeded('splitArrayFrame', 200, (rng) => {
      const n = rng.range(0, 8);
      const elems: Frame[] = [];
      for (let i = 0; i < n; i++) elems.push(genFrame(rng, 1, rng.chance(0.05)));
      const frame = cat(`*${n}\r\n`, ...elems.map((e) => e.bytes));
      const r = splitArrayFrame(frame)!;
      expect(r.count).toBe(n);
      expect(r.elements.length).toBe(n);
      for (let i = 0; i < n; i++) expect(r.elements[i].equals(elems[i].bytes)).toBe(true);
    });
  });
});

describe('resp.bufEqIgnoreCase', () => {
  it('compares ASCII letters case-insensitively against a lower-case name', () => {
    expect(bufEqIgnoreCase(Buffer.from('GET'), 'get')).toBe(true);
    expect(bufEqIgnoreCase(Buffer.from('gEt'), 'get')).toBe(true);
    expect(bufEqIgnoreCase(Buffer.from('LLM.CREATE-APP'), 'llm.create-app')).toBe(true);
    expect(bufEqIgnoreCase(Buffer.from('GETX'), 'get')).toBe(false);
    expect(bufEqIgnoreCase(Buffer.from('GE'), 'get')).toBe(false);
    expect(bufEqIgnoreCase(Buffer.from('GEU'), 'get')).toBe(false);
    expect(bufEqIgnoreCase(undefined, 'get')).toBe(false);
    expect(bufEqIgnoreCase(Buffer.from('@'), '`')).toBe(false); // only A-Z fold
    expect(bufEqIgnoreCase(Buffer.from('['), '{')).toBe(false);
    expect(bufEqIgnoreCase(Buffer.alloc(0), '')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// RESP3: every type Redis 7 sends after HELLO 3, framed by the scanner and decoded.

describe('RESP3 frames', () => {
  const cases: Array<[string, string, unknown, number]> = [
    // [what, bytes, decoded, type byte]
    ['null', '_\r\n', null, 95],
    ['double', ',3.25\r\n', 3.25, 44],
    ['double inf', ',-inf\r\n', -Infinity, 44],
    ['boolean', '#t\r\n', true, 35],
    ['big number', '(3492890328409238509324850943850943825024385\r\n', Buffer.from('3492890328409238509324850943850943825024385'), 40],
    ['verbatim', '=15\r\ntxt:Some string\r\n', Buffer.from('Some string'), 61],
    ['blob error', '!21\r\nSYNTAX invalid syntax\r\n', 'SYNTAX invalid syntax', 33],
    ['map', '%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#f\r\n', [expect.anything(), 1, Buffer.from('second'), false], 37],
    ['empty map', '%0\r\n', [], 37],
    ['set', '~3\r\n:1\r\n:2\r\n,1.5\r\n', [1, 2, 1.5], 126],
    ['push', '>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n', [Buffer.from('message'), Buffer.from('ch'), Buffer.from('hi')], 62],
    ['attribute before a value', '|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n', [2039123, 9543892], 42],
    ['nested', '*2\r\n%1\r\n+k\r\n~1\r\n_\r\n|1\r\n+a\r\n+b\r\n#t\r\n', [[expect.anything(), [null]], true], 42],
  ];

  it.each(cases)('%s: one frame, whole and byte by byte, of its type; decoded', (_what, text, decoded, type) => {
    const bytes = Buffer.from(text);
    const ends: number[] = [];
    const types: number[] = [];
    new ReplyScanner().scan(bytes, ends, types);
    expect(ends).toEqual([bytes.length]);
    expect(types).toEqual([type]);
    const s = new ReplyScanner();
    const ends2: number[] = [];
    const types2: number[] = [];
    let offset = 0;
    for (const c of bytewise(bytes)) {
      const local: number[] = [];
      s.scan(c, local, types2);
      for (const e of local) ends2.push(e + offset);
      offset += c.length;
    }
    expect(ends2).toEqual([bytes.length]);
    expect(types2).toEqual([type]);
    const d = decodeFrame(bytes);
    expect(d.end).toBe(bytes.length);
    if (type === 33) expect(String(d.value)).toBe(decoded);
    else expect(d.value).toEqual(decoded);
  });

  it('frames of every type in one stream: each end and type found', () => {
    const stream = Buffer.from(cases.map(([, t]) => t).join(''));
    const ends: number[] = [];
    const types: number[] = [];
    new ReplyScanner().scan(stream, ends, types);
    expect(types).toEqual(cases.map(([, , , t]) => t));
    let pos = 0;
    for (let i = 0; i < cases.length; i++) {
      pos += Buffer.byteLength(cases[i]![1]);
      expect(ends[i]).toBe(pos);
    }
  });

  it('encode: RESP2 unchanged, RESP3 types for maps, doubles, booleans and null', () => {
    const v = [RespMap.of({ a: 1, b: new RespDouble(0.5), c: new RespBool(true), d: null })];
    expect(encode(v).toString()).toBe('*1\r\n*8\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$3\r\n0.5\r\n$1\r\nc\r\n:1\r\n$1\r\nd\r\n$-1\r\n');
    expect(encode(v, 3).toString()).toBe('*1\r\n%4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n,0.5\r\n$1\r\nc\r\n#t\r\n$1\r\nd\r\n_\r\n');
    expect(encode(new RespDouble(Infinity), 3).toString()).toBe(',inf\r\n');
    expect(encode(1.5).toString()).toBe('$3\r\n1.5\r\n');
    expect(encode(1.5, 3).toString()).toBe(',1.5\r\n');
  });

  it('splitArrayFrame / joinArrayFrame keep a map a map, a push a push', () => {
    const map = Buffer.from('%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n');
    const split = splitArrayFrame(map)!;
    expect(split.type).toBe(37);
    expect(split.count).toBe(4);
    expect(joinArrayFrame(split.type, [...split.elements, Buffer.from('+c\r\n'), Buffer.from(':3\r\n')]).toString()).toBe('%3\r\n+a\r\n:1\r\n+b\r\n:2\r\n+c\r\n:3\r\n');
    const push = Buffer.from('>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n');
    expect(joinArrayFrame(62, splitArrayFrame(push)!.elements).equals(push)).toBe(true);
  });
});
