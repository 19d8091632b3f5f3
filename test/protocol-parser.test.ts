/**
 * Unit tests for src/protocol/request-parser.ts: RESP2 multibulk and inline requests, Redis's
 * limits and error texts, splitInlineArgs (Redis's sdssplitargs), parseStrictInt, encodeRequest.
 *
 * Random tests are seeded: set PROTOCOL_FUZZ_SEED to reproduce a run (failures print the seed).
 * Expected texts and inline-splitting results were checked against redis-server 7.0.
 */
import fc from 'fast-check';
// redis-parser ships no types; it is used only as a reference parser here.
import RedisParser from 'redis-parser';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_LIMITS,
  RequestParser,
  encodeRequest,
  parseStrictInt,
  splitInlineArgs,
  type ParserLimits,
} from '../src/protocol/request-parser.js';
import { Rng, seededRounds } from '../harness/rng.js';
import { commandName } from '../src/protocol/command-name.js';

const SEED = Number(process.env.PROTOCOL_FUZZ_SEED ?? 0x5eed1e55);

/** Seeded rounds of this file: PROTOCOL_FUZZ_SEED reproduces a failing run. */
function seeded(label: string, rounds: number, fn: (rng: Rng, round: number) => void): void {
  seededRounds(SEED, 'PROTOCOL_FUZZ_SEED', label, rounds, fn);
}

// Bytes that matter to a RESP parser, over-represented in random payloads.
const SPECIAL = [13, 10, 42, 36, 43, 45, 58, 48, 49, 0, 32, 9, 34, 39, 92, 255];

function randomBytes(rng: Rng, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = rng.chance(0.3) ? rng.pick(SPECIAL) : rng.int(256);
  return b;
}

/** A large payload: cheap random fill, with CR LF and RESP-looking bytes sprinkled in. */
function largeBytes(rng: Rng, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = rng.int(0x7fffffff) | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  for (let k = 0; k < 64; k++) {
    const at = rng.int(Math.max(1, len - 8));
    Buffer.from('\r\n*3\r\n$').copy(b, at, 0, Math.min(7, len - at));
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// Reference encoding (independent of encodeRequest) and generators

function multibulk(args: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`, 'latin1')];
  for (const a of args) parts.push(Buffer.from(`$${a.length}\r\n`, 'latin1'), a, Buffer.from('\r\n', 'latin1'));
  return Buffer.concat(parts);
}

interface GenRequest {
  bytes: Buffer;
  /** null when the request produces no command (`*0`, `*-1`, empty inline line). */
  args: Buffer[] | null;
}

function genArg(rng: Rng, allowLarge: boolean, maxSmall: number): Buffer {
  const k = rng.next();
  if (k < 0.12) return Buffer.alloc(0);
  if (k < 0.65) return randomBytes(rng, rng.range(1, Math.min(16, maxSmall)));
  if (allowLarge && k < 0.69) return largeBytes(rng, rng.range(20_000, 200_000));
  return randomBytes(rng, rng.range(1, maxSmall));
}

function genMultibulk(rng: Rng, opts: { allowLarge: boolean; maxArgs: number; maxSmall: number }): GenRequest {
  const k = rng.next();
  if (k < 0.04) return { bytes: Buffer.from('*-1\r\n'), args: null };
  const argc = k < 0.08 ? 0 : rng.range(1, opts.maxArgs);
  const args: Buffer[] = [];
  for (let i = 0; i < argc; i++) args.push(genArg(rng, opts.allowLarge, opts.maxSmall));
  return { bytes: multibulk(args), args: argc === 0 ? null : args };
}

/** sdscatrepr-like quoting: the form sdssplitargs reads back to the same bytes. */
function repr(arg: Buffer): string {
  let s = '"';
  for (const c of arg) {
    if (c === 92) s += '\\\\';
    else if (c === 34) s += '\\"';
    else if (c === 10) s += '\\n';
    else if (c === 13) s += '\\r';
    else if (c === 9) s += '\\t';
    else if (c === 7) s += '\\a';
    else if (c === 8) s += '\\b';
    else if (c >= 32 && c < 127) s += String.fromCharCode(c);
    else s += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return s + '"';
}

const WORD_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:.{}*$+';

function genInline(rng: Rng): GenRequest {
  const ws = () => rng.pick([' ', ' ', '  ', '\t', ' \t ']);
  const eol = rng.pick(['\r\n', '\n']);
  if (rng.chance(0.1)) return { bytes: Buffer.from(rng.pick(['', ' ', '\t ', '   ']) + eol, 'latin1'), args: null };
  const argc = rng.range(1, 6);
  const args: Buffer[] = [];
  let line = rng.chance(0.2) ? ws() : '';
  for (let i = 0; i < argc; i++) {
    if (i > 0) line += ws();
    if (rng.chance(0.35)) {
      const a = randomBytes(rng, rng.range(0, 12));
      args.push(a);
      line += repr(a);
    } else {
      let w = '';
      const n = rng.range(1, 10);
      for (let j = 0; j < n; j++) w += rng.pick([...WORD_CHARS]);
      // A line starting with '*' would be a multibulk request.
      if (i === 0 && line === '' && w[0] === '*') w = 'x' + w;
      args.push(Buffer.from(w, 'latin1'));
      line += w;
    }
  }
  if (rng.chance(0.2)) line += ws();
  return { bytes: Buffer.from(line + eol, 'latin1'), args };
}

// ---------------------------------------------------------------------------------------------
// Feeding helpers

interface Outcome {
  commands: Array<{ args: Buffer[]; raw: Buffer }>;
  errors: string[];
  /** Events reported after the first protocol error (must stay 0). */
  afterError: number;
}

function newCollector(limits?: ParserLimits): { parser: RequestParser; out: Outcome } {
  const out: Outcome = { commands: [], errors: [], afterError: 0 };
  const parser = new RequestParser(
    {
      onCommand(args, raw) {
        if (out.errors.length > 0) out.afterError++;
        out.commands.push({ args: args.map((a) => Buffer.from(a)), raw: Buffer.from(raw) });
      },
      onProtocolError(message) {
        if (out.errors.length > 0) out.afterError++;
        out.errors.push(message);
      },
    },
    limits,
  );
  return { parser, out };
}

function runParser(chunks: Buffer[], limits?: ParserLimits): Outcome {
  const { parser, out } = newCollector(limits);
  for (const c of chunks) parser.feed(c);
  return out;
}

function runRedisParser(chunks: Buffer[]): Buffer[][] {
  const replies: Buffer[][] = [];
  const parser = new RedisParser({
    returnBuffers: true,
    returnReply(reply: Buffer[] | null) {
      // `*0` and `*-1` are not commands; redis-parser reports them as [] and null.
      if (reply === null || reply.length === 0) return;
      replies.push(reply.map((b) => Buffer.from(b))); // its buffers are slices of a reused pool
    },
    returnError(err: Error) {
      throw err;
    },
    returnFatalError(err: Error) {
      throw err;
    },
  });
  for (const c of chunks) parser.execute(c);
  return replies;
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, buf.length]) {
    chunks.push(Buffer.from(buf.subarray(prev, c))); // a fresh buffer per chunk, as a socket gives
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

function show(b: Buffer): string {
  return JSON.stringify(b.length > 120 ? b.toString('latin1', 0, 120) + `...(${b.length} bytes)` : b.toString('latin1'));
}

/** Compares an outcome with the generated requests: same args, and raw spans exactly the original bytes. */
function expectMatches(out: Outcome, reqs: GenRequest[], how: string): void {
  const want = reqs.filter((r) => r.args !== null);
  expect(out.errors, how).toEqual([]);
  expect(out.commands.length, how).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const got = out.commands[i];
    const args = want[i].args!;
    expect(got.args.length, `${how}: argc of command ${i}`).toBe(args.length);
    for (let j = 0; j < args.length; j++) {
      if (!got.args[j].equals(args[j])) {
        throw new Error(`${how}: command ${i} arg ${j}: got ${show(got.args[j])}, want ${show(args[j])}`);
      }
    }
    if (!got.raw.equals(want[i].bytes)) {
      throw new Error(`${how}: command ${i} raw: got ${show(got.raw)}, want ${show(want[i].bytes)}`);
    }
  }
}

function expectSameAsReference(ours: Outcome, ref: Buffer[][], how: string): void {
  expect(ours.commands.length, how).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const a = ours.commands[i].args;
    expect(a.length, how).toBe(ref[i].length);
    for (let j = 0; j < a.length; j++) {
      if (!a[j].equals(ref[i][j])) throw new Error(`${how}: command ${i} arg ${j} differs from redis-parser`);
    }
  }
}

const B = (s: string) => Buffer.from(s, 'latin1');
const strs = (out: Outcome) => out.commands.map((c) => c.args.map((a) => a.toString('latin1')));

// ---------------------------------------------------------------------------------------------

describe('RequestParser vs redis-parser on random multibulk requests', () => {
  it('large binary arguments (up to 200 KB), random splits', () => {
    seeded('large random splits', 30, (rng) => {
      const reqs: GenRequest[] = [];
      const count = rng.range(1, 6);
      for (let i = 0; i < count; i++) reqs.push(genMultibulk(rng, { allowLarge: true, maxArgs: 20, maxSmall: 2000 }));
      const stream = Buffer.concat(reqs.map((r) => r.bytes));

      const whole = runParser([stream]);
      expectMatches(whole, reqs, 'one chunk');
      expectSameAsReference(whole, runRedisParser([stream]), 'one chunk');

      for (let k = 0; k < 3; k++) {
        const chunks = randomSplit(rng, stream, rng.pick([4, 40, 400]));
        const ours = runParser(chunks);
        expectMatches(ours, reqs, `${chunks.length} random chunks`);
        expectSameAsReference(ours, runRedisParser(chunks), `${chunks.length} random chunks`);
      }
      // Socket-like fixed-size reads.
      const size = rng.pick([1024, 16 * 1024, 65536]);
      const cuts: number[] = [];
      for (let at = size; at < stream.length; at += size) cuts.push(at);
      expectMatches(runParser(splitAt(stream, cuts)), reqs, `${size}-byte reads`);
    });
  });

  it('small requests, fed one byte at a time and split at every byte boundary', () => {
    seeded('every byte boundary', 60, (rng) => {
      const reqs: GenRequest[] = [];
      const count = rng.range(1, 5);
      for (let i = 0; i < count; i++) reqs.push(genMultibulk(rng, { allowLarge: false, maxArgs: 6, maxSmall: 24 }));
      const stream = Buffer.concat(reqs.map((r) => r.bytes));

      const single = bytewise(stream);
      const ours = runParser(single);
      expectMatches(ours, reqs, 'one byte at a time');
      expectSameAsReference(ours, runRedisParser(single), 'one byte at a time');

      for (let cut = 0; cut <= stream.length; cut++) {
        const chunks = splitAt(stream, [cut]);
        expectMatches(runParser(chunks), reqs, `split at ${cut}`);
      }
      const chunks = randomSplit(rng, stream, 12);
      expectSameAsReference(runParser(chunks), runRedisParser(chunks), 'random split');
    });
  });

  it('fast-check: any list of binary requests, any chunking', () => {
    const arg = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.constantFrom(new Uint8Array(0), Uint8Array.from([13, 10]), Uint8Array.from([42, 49, 13, 10, 36])),
    );
    const request = fc.array(arg, { minLength: 0, maxLength: 20 });
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), (requests, rawCuts) => {
        const reqs: GenRequest[] = requests.map((r) => {
          const args = r.map((a) => Buffer.from(a));
          return { bytes: multibulk(args), args: args.length === 0 ? null : args };
        });
        const stream = Buffer.concat(reqs.map((r) => r.bytes));
        const cuts = [...new Set(rawCuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const chunks = splitAt(stream, cuts);
        const ours = runParser(chunks);
        expectMatches(ours, reqs, 'fast-check');
        expectSameAsReference(ours, runRedisParser(chunks), 'fast-check');
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('*0 and *-1 produce no command, and do not disturb the requests around them', () => {
    for (const empty of ['*0\r\n', '*-1\r\n', '*-5\r\n']) {
      expect(runParser([B(empty)]).commands).toEqual([]);
      const stream = B(`${empty}*1\r\n$4\r\nPING\r\n${empty}${empty}*2\r\n$3\r\nGET\r\n$1\r\nk\r\n${empty}`);
      for (const chunks of [[stream], bytewise(stream)]) {
        const out = runParser(chunks);
        expect(strs(out)).toEqual([['PING'], ['GET', 'k']]);
        expect(out.commands[0].raw.toString('latin1')).toBe('*1\r\n$4\r\nPING\r\n');
        expect(out.commands[1].raw.toString('latin1')).toBe('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n');
        expect(out.errors).toEqual([]);
      }
    }
  });

  it('a large bulk arriving in small pieces is complete exactly once, with the right bytes', () => {
    const rng = new Rng(SEED);
    const big = largeBytes(rng, 1_000_000);
    const stream = Buffer.concat([multibulk([B('SET'), B('k'), big]), multibulk([B('GET'), B('k')])]);
    const { parser, out } = newCollector();
    for (let at = 0; at < stream.length; at += 1000) {
      parser.feed(Buffer.from(stream.subarray(at, at + 1000)));
      if (at + 1000 < stream.length - 20) expect(out.commands.length).toBe(0);
    }
    expect(out.commands.length).toBe(2);
    expect(out.commands[0].args[2].equals(big)).toBe(true);
    expect(strs(out)[1]).toEqual(['GET', 'k']);
    expect(parser.bufferedBytes).toBe(0);
  });

  it('bufferedBytes counts the bytes of the incomplete request only', () => {
    const { parser, out } = newCollector();
    parser.feed(B('*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET'));
    expect(out.commands.length).toBe(1);
    expect(parser.bufferedBytes).toBe('*2\r\n$3\r\nGET'.length);
    parser.feed(B('\r\n$1\r\nk\r\n'));
    expect(parser.bufferedBytes).toBe(0);
  });
});

describe('RequestParser never throws', () => {
  function mutate(rng: Rng, buf: Buffer): Buffer {
    const b = Buffer.from(buf);
    const parts: Buffer[] = [b];
    const n = rng.range(1, 4);
    for (let i = 0; i < n; i++) {
      const op = rng.int(5);
      const cur = Buffer.concat(parts);
      parts.length = 0;
      const at = rng.int(cur.length + 1);
      if (op === 0 && cur.length > 0) cur[Math.min(at, cur.length - 1)] = rng.pick(SPECIAL);
      else if (op === 1) parts.push(cur.subarray(0, at));
      else if (op === 2) parts.push(cur.subarray(0, at), B(rng.pick(['*', '$', '-1', '\r\n', '*-1\r\n', '$-1\r\n', '"', "'", '\n', '999999999999'])), cur.subarray(at));
      else if (op === 3) parts.push(cur.subarray(0, at), randomBytes(rng, rng.range(1, 8)), cur.subarray(at));
      else parts.push(cur.subarray(at), cur.subarray(0, at));
      if (parts.length === 0) parts.push(cur);
    }
    return Buffer.concat(parts);
  }

  it('random and mutated input: no throw, at most one error, nothing after it, same result for any chunking', () => {
    seeded('garbage', 400, (rng) => {
      const pieces: Buffer[] = [];
      const n = rng.range(1, 4);
      for (let i = 0; i < n; i++) {
        const k = rng.next();
        if (k < 0.4) pieces.push(genMultibulk(rng, { allowLarge: false, maxArgs: 5, maxSmall: 20 }).bytes);
        else if (k < 0.6) pieces.push(genInline(rng).bytes);
        else if (k < 0.8) pieces.push(randomBytes(rng, rng.range(1, 40)));
        else pieces.push(B(rng.pick(['*', '$', '*2\r\n$', '*1\r\n$5\r\nab', '"ab', "'x\\'", '*3\r\n', '$0\r\n'])));
      }
      const input = mutate(rng, Buffer.concat(pieces));
      const whole = runParser([input]);
      expect(whole.errors.length).toBeLessThanOrEqual(1);
      expect(whole.afterError).toBe(0);
      for (const chunks of [randomSplit(rng, input, 20), bytewise(input)]) {
        const out = runParser(chunks);
        expect(out.afterError).toBe(0);
        expect(out.errors, `input ${show(input)}`).toEqual(whole.errors);
        expect(out.commands.map((c) => [c.args, c.raw]), `input ${show(input)}`).toEqual(whole.commands.map((c) => [c.args, c.raw]));
      }
    });
  });

  it('random input with tiny limits: no throw, at most one error, nothing after it', () => {
    const limits: ParserLimits = { maxBulkLen: 8, maxMultibulkLen: 3, maxInlineLen: 10 };
    seeded('tiny limits', 300, (rng) => {
      const input = Buffer.concat([
        genMultibulk(rng, { allowLarge: false, maxArgs: 5, maxSmall: 12 }).bytes,
        rng.chance(0.5) ? genInline(rng).bytes : randomBytes(rng, rng.range(0, 30)),
      ]);
      for (const chunks of [[input], randomSplit(rng, input, 10), bytewise(input)]) {
        const out = runParser(chunks, limits);
        expect(out.errors.length).toBeLessThanOrEqual(1);
        expect(out.afterError).toBe(0);
      }
    });
  });
});

describe('inline commands', () => {
  it('PING, bare LF, runs of spaces and tabs', () => {
    const out = runParser([B('PING\r\nSET a b\nSET   k \t\t v  \r\n\tGET\tk\n')]);
    expect(strs(out)).toEqual([['PING'], ['SET', 'a', 'b'], ['SET', 'k', 'v'], ['GET', 'k']]);
    expect(out.errors).toEqual([]);
  });

  it('are re-encoded as multibulk in `raw`', () => {
    const out = runParser([B('SET a "b c"\r\n')]);
    expect(out.commands[0].raw.toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$1\r\na\r\n$3\r\nb c\r\n');
  });

  it('double quotes with escapes, single quotes with \\\'', () => {
    const out = runParser([B('ECHO "double quoted with \\x41 \\n escapes"\r\nECHO \'single \\\' quoted\'\r\n')]);
    expect(strs(out)).toEqual([
      ['ECHO', 'double quoted with A \n escapes'],
      ['ECHO', "single ' quoted"],
    ]);
  });

  it('empty and blank lines are ignored', () => {
    const out = runParser([B('\r\n\n   \r\n\t\nPING\r\n\r\n')]);
    expect(strs(out)).toEqual([['PING']]);
    expect(out.errors).toEqual([]);
  });

  it('a CR before the LF is not part of the last argument, a second CR is a separator', () => {
    expect(strs(runParser([B('ECHO a\r\r\n')]))).toEqual([['ECHO', 'a']]);
    expect(strs(runParser([B('ECHO "a"\r\r\n')]))).toEqual([['ECHO', 'a']]);
  });

  it('unbalanced quotes → protocol error, commands before it still emitted, nothing after', () => {
    for (const bad of ['ECHO "ab', "ECHO 'ab", 'ECHO "a\\"', "ECHO 'a\\\\'", 'ECHO "a\\']) {
      const { parser, out } = newCollector();
      parser.feed(B(`PING\r\n${bad}\r\nPING\r\n`));
      parser.feed(B('PING\r\n*1\r\n$4\r\nPING\r\n'));
      expect(strs(out), bad).toEqual([['PING']]);
      expect(out.errors, bad).toEqual(['Protocol error: unbalanced quotes in request']);
      expect(out.afterError).toBe(0);
    }
  });

  it('a closing quote followed by a non-space is a protocol error, as in Redis', () => {
    for (const bad of ['ECHO "a"b', "ECHO 'a'b", 'ECHO "a"\'b\'', "ECHO a'b'c", 'ECHO ""x']) {
      const out = runParser([B(`${bad}\r\n`)]);
      expect(out.commands, bad).toEqual([]);
      expect(out.errors, bad).toEqual(['Protocol error: unbalanced quotes in request']);
    }
  });

  it('random mixes of inline and multibulk requests, any chunking', () => {
    seeded('inline mix', 80, (rng) => {
      const reqs: GenRequest[] = [];
      const n = rng.range(1, 6);
      for (let i = 0; i < n; i++) {
        reqs.push(rng.chance(0.5) ? genInline(rng) : genMultibulk(rng, { allowLarge: false, maxArgs: 5, maxSmall: 16 }));
      }
      // For inline requests the expected `raw` is the multibulk re-encoding.
      const expected = reqs.map((r) => (r.args && r.bytes[0] !== 42 ? { bytes: multibulk(r.args), args: r.args } : r));
      const stream = Buffer.concat(reqs.map((r) => r.bytes));
      expectMatches(runParser([stream]), expected, 'one chunk');
      expectMatches(runParser(bytewise(stream)), expected, 'one byte at a time');
      expectMatches(runParser(randomSplit(rng, stream, 10)), expected, 'random split');
    });
  });
});

describe('splitInlineArgs (Redis sdssplitargs semantics)', () => {
  const split = (s: string) => {
    const r = splitInlineArgs(B(s));
    return r === null ? null : r.map((a) => a.toString('latin1'));
  };

  // Expected values follow sdssplitargs in redis/src/sds.c, and were checked with ECHO against
  // redis-server 7.0.15 over a raw socket.
  const table: Array<[string, string[] | null]> = [
    ['', []],
    ['   ', []],
    [' \t\r\n\v\f', []],
    ['PING', ['PING']],
    ['SET a b', ['SET', 'a', 'b']],
    ['  SET \t a\t\tb  ', ['SET', 'a', 'b']],
    ['a\rb', ['a', 'b']],
    ['a\nb', ['a', 'b']],
    ['\v\fPING', ['PING']], // leading blanks are skipped with isspace()
    ['"hello world"', ['hello world']],
    ['""', ['']],
    ["''", ['']],
    ['"" ""', ['', '']],
    ['"\\x41\\x4a\\x4A\\xff"', ['AJJ\xff']],
    ['"\\xZZ"', ['xZZ']], // not a hex escape: backslash dropped, x kept
    ['"\\x4"', ['x4']],
    ['"\\x4g"', ['x4g']],
    ['"\\n\\r\\t\\b\\a"', ['\n\r\t\b\x07']],
    ['"\\q\\\\\\""', ['q\\"']],
    ['"a\rb"', ['a\rb']],
    ['"tab\there"', ['tab\there']],
    ["'it\\'s'", ["it's"]],
    ["'a\\b'", ['a\\b']], // only \' is an escape inside single quotes
    ["'a\\nb'", ['a\\nb']],
    ["'\"'", ['"']],
    ['"\'"', ["'"]],
    ['a"b c"', ['ab c']], // a quote may start inside a word
    ["a'b c'", ['ab c']],
    ['"ab"\v', ['ab']], // after a closing quote any isspace() char is accepted
    ['"ab"\f x', ['ab', 'x']],
    ['"ab"\tb', ['ab', 'b']],
    ['"a" "b"', ['a', 'b']],
    ['"ab', null],
    ["'ab", null],
    ['"a\\"', null],
    ['"a\\', null],
    ["'a\\\\'", null], // \\ is not an escape in single quotes, so \' escapes the closing quote
    ['"a"b', null],
    ["'a'b", null],
    ['"a"\'b\'', null],
    ["a'b'c", null],
    ['""x', null],
  ];
  it.each(table)('%j → %j', (input, want) => {
    expect(split(input)).toEqual(want);
  });

  // Outside quotes, sdssplitargs ends a word only at ' ', '\t', '\r', '\n' (or the end): a vertical
  // tab or form feed inside a word is kept. redis-server 7.0.15: `ECHO a\vb\r\n` → "$3\r\na\vb\r\n".
  it.each([
    ['a\vb', ['a\vb']],
    ['a\fb', ['a\fb']],
    ['ECHO a\v', ['ECHO', 'a\v']],
    ['x \va', ['x', 'a']], // but \v between words is skipped as a blank
  ] as Array<[string, string[]]>)('vertical tab / form feed inside a word: %j → %j', (input, want) => {
    expect(split(input)).toEqual(want);
  });

  it('reads back sdscatrepr-quoted arguments (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 30 }), { maxLength: 8 }),
        fc.array(fc.constantFrom(' ', '\t', '  ', ' \t', '\r'), { minLength: 9, maxLength: 9 }),
        (args, seps) => {
          const line = args.map((a, i) => (i > 0 ? seps[i] : '') + repr(Buffer.from(a))).join('');
          const got = splitInlineArgs(B(line));
          expect(got).not.toBeNull();
          expect(got!.map((g) => [...g])).toEqual(args.map((a) => [...a]));
        },
      ),
      { seed: SEED, numRuns: 500 },
    );
  });

  /**
   * An independent model of sdssplitargs, written from its documented behaviour, for random
   * lines over an alphabet of the characters that matter. \v, \f (see the test above) and NUL
   * (Redis's C string stops at it) are left out of the alphabet.
   */
  function model(line: string): string[] | null {
    const blank = (c: string) => ' \t\n\r\v\f'.includes(c);
    const wordEnd = (c: string) => ' \t\n\r'.includes(c);
    const hex = (c: string | undefined) => c !== undefined && /^[0-9a-fA-F]$/.test(c);
    const args: string[] = [];
    let i = 0;
    for (;;) {
      while (i < line.length && blank(line[i])) i++;
      if (i >= line.length) return args;
      let word = '';
      for (;;) {
        if (i >= line.length) break;
        const c = line[i];
        if (wordEnd(c)) {
          i++;
          break;
        }
        if (c !== '"' && c !== "'") {
          word += c;
          i++;
          continue;
        }
        // A quoted part: it ends the word, and must be followed by a blank or the end.
        const q = c;
        i++;
        for (;;) {
          if (i >= line.length) return null;
          const d = line[i];
          if (q === '"' && d === '\\' && line[i + 1] === 'x' && hex(line[i + 2]) && hex(line[i + 3])) {
            word += String.fromCharCode(parseInt(line.slice(i + 2, i + 4), 16));
            i += 4;
          } else if (q === '"' && d === '\\' && i + 1 < line.length) {
            const e = line[i + 1];
            word += ({ n: '\n', r: '\r', t: '\t', b: '\b', a: '\x07' } as Record<string, string>)[e] ?? e;
            i += 2;
          } else if (q === "'" && d === '\\' && line[i + 1] === "'") {
            word += "'";
            i += 2;
          } else if (d === q) {
            i++;
            break;
          } else {
            word += d;
            i++;
          }
        }
        if (i < line.length && !blank(line[i])) return null;
        break;
      }
      args.push(word);
    }
  }

  it('matches a model of sdssplitargs on random lines', () => {
    const alphabet = ['a', 'b', 'x', '4', 'F', 'g', 'n', ' ', ' ', '\t', '\r', '\n', '"', '"', "'", "'", '\\', '\\', '\xff'];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 24 }), (chars) => {
        const line = chars.join('');
        const got = splitInlineArgs(B(line));
        expect(got === null ? null : got.map((g) => g.toString('latin1'))).toEqual(model(line));
      }),
      { seed: SEED, numRuns: 5000 },
    );
  });
});

describe('protocol errors and limits (Redis texts)', () => {
  const errorOf = (input: string, limits?: ParserLimits) => {
    const out = runParser([B(input)], limits);
    expect(out.afterError).toBe(0);
    return out.errors;
  };

  it.each([
    ['*abc\r\n', 'Protocol error: invalid multibulk length'],
    ['*\r\n', 'Protocol error: invalid multibulk length'],
    ['*01\r\n', 'Protocol error: invalid multibulk length'],
    ['*+1\r\n', 'Protocol error: invalid multibulk length'],
    ['*1 \r\n', 'Protocol error: invalid multibulk length'],
    ['*2147483648\r\n', 'Protocol error: invalid multibulk length'],
    ['*99999999999999999999999\r\n', 'Protocol error: invalid multibulk length'],
    ['*1\r\n+foo\r\n', "Protocol error: expected '$', got '+'"],
    ['*2\r\n$1\r\na\r\n:1\r\n', "Protocol error: expected '$', got ':'"],
    ['*1\r\n$-1\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$abc\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$-0\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$04\r\nPING\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$+4\r\nPING\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$ 4\r\nPING\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$536870913\r\n', 'Protocol error: invalid bulk length'],
  ])('%j → %s', (input, message) => {
    expect(errorOf(input)).toEqual([message]);
    // Also when it arrives one byte at a time.
    expect(runParser(bytewise(B(input))).errors).toEqual([message]);
  });

  it("a CR where '$' is expected is reported like Redis (which shows it as a space)", () => {
    const [msg] = errorOf('*1\r\n\r\n');
    expect(msg.replace(/[\r\n]+/g, ' ')).toBe("Protocol error: expected '$', got ' '");
  });

  it('the largest accepted lengths are not errors (the parser waits for the data)', () => {
    expect(errorOf('*2147483647\r\n')).toEqual([]);
    expect(errorOf('*1\r\n$536870912\r\n')).toEqual([]);
  });

  it('multibulk count above maxMultibulkLen → invalid multibulk length', () => {
    const limits = { ...DEFAULT_LIMITS, maxMultibulkLen: 10 };
    const ten = multibulk(Array.from({ length: 10 }, (_, i) => B(`a${i}`)));
    const ok = runParser([ten], limits);
    expect(ok.commands.length).toBe(1);
    expect(ok.errors).toEqual([]);
    const eleven = multibulk(Array.from({ length: 11 }, (_, i) => B(`a${i}`)));
    expect(runParser([eleven], limits).errors).toEqual(['Protocol error: invalid multibulk length']);
    // Refused on the header alone.
    expect(errorOf('*11\r\n', limits)).toEqual(['Protocol error: invalid multibulk length']);
  });

  it('bulk above maxBulkLen → invalid bulk length; exactly maxBulkLen is accepted', () => {
    const limits = { ...DEFAULT_LIMITS, maxBulkLen: 16 };
    expect(runParser([multibulk([B('x'.repeat(16))])], limits).commands.length).toBe(1);
    expect(runParser([multibulk([B('x'.repeat(17))])], limits).errors).toEqual(['Protocol error: invalid bulk length']);
  });

  it('a huge declared bulk above maxBulkLen is refused on its header, before any of its data', () => {
    const limits = { ...DEFAULT_LIMITS, maxBulkLen: 1024 * 1024 };
    const { parser, out } = newCollector(limits);
    const before = process.memoryUsage().arrayBuffers;
    parser.feed(B('*2\r\n$3\r\nSET\r\n$536870000\r\n'));
    expect(out.errors).toEqual(['Protocol error: invalid bulk length']);
    expect(parser.bufferedBytes).toBe(0);
    parser.feed(Buffer.alloc(64 * 1024, 0x61));
    expect(parser.bufferedBytes).toBe(0);
    expect(out.afterError).toBe(0);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('a huge declared bulk within the limit is not allocated up front', () => {
    const { parser, out } = newCollector();
    const before = process.memoryUsage().arrayBuffers;
    parser.feed(B('*2\r\n$3\r\nSET\r\n$536870000\r\n'));
    const piece = Buffer.alloc(64 * 1024, 0x62);
    for (let i = 0; i < 32; i++) parser.feed(piece);
    expect(out.errors).toEqual([]);
    expect(out.commands).toEqual([]);
    expect(parser.bufferedBytes).toBe('*2\r\n$3\r\nSET\r\n$536870000\r\n'.length + 32 * piece.length);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(128 * 1024 * 1024);
  });

  it('an inline line longer than maxInlineLen without a newline → too big inline request', () => {
    const limits = { ...DEFAULT_LIMITS, maxInlineLen: 64 };
    const { parser, out } = newCollector(limits);
    parser.feed(B('PING\r\n' + 'A'.repeat(64)));
    expect(out.errors).toEqual([]);
    parser.feed(B('A'));
    expect(out.errors).toEqual(['Protocol error: too big inline request']);
    parser.feed(B('\r\nPING\r\n'));
    expect(strs(out)).toEqual([['PING']]);
    expect(out.afterError).toBe(0);

    // Default limit: 64 KB.
    expect(runParser([Buffer.alloc(64 * 1024, 0x41)]).errors).toEqual([]);
    expect(runParser([Buffer.alloc(64 * 1024 + 1, 0x41)]).errors).toEqual(['Protocol error: too big inline request']);
  });

  it('over-long multibulk and bulk count lines are refused like Redis', () => {
    const limits = { ...DEFAULT_LIMITS, maxInlineLen: 32 };
    expect(errorOf('*' + '1'.repeat(40), limits)).toEqual(['Protocol error: too big mbulk count string']);
    expect(errorOf('*1\r\n$' + '1'.repeat(40), limits)).toEqual(['Protocol error: too big bulk count string']);
  });

  it('commands before the bad one in the same chunk are emitted; nothing after the error', () => {
    for (const bad of ['*abc\r\n', '*1\r\n+foo\r\n', '*1\r\n$-1\r\n', 'ECHO "x\r\n']) {
      const { parser, out } = newCollector();
      parser.feed(B(`*1\r\n$4\r\nPING\r\nECHO hi\r\n${bad}*1\r\n$4\r\nPING\r\n`));
      parser.feed(B('*1\r\n$4\r\nPING\r\nPING\r\n'));
      expect(strs(out), bad).toEqual([['PING'], ['ECHO', 'hi']]);
      expect(out.errors.length, bad).toBe(1);
      expect(out.afterError, bad).toBe(0);
      expect(parser.bufferedBytes).toBe(0);
    }
  });

  it('the trailing CRLF of a bulk is not checked (as in Redis)', () => {
    // redis-server answers `*1\r\n$4\r\nPINGxxPING\r\n` with two PONGs.
    expect(strs(runParser([B('*1\r\n$4\r\nPINGxxPING\r\n')]))).toEqual([['PING'], ['PING']]);
  });
});

describe('before AUTH: Redis\'s unauthenticated limits, and pausing after AUTH', () => {
  const unauthenticated = (chunks: Buffer[]) => {
    const { parser, out } = newCollector();
    parser.authRequired = true;
    for (const c of chunks) parser.feed(c);
    expect(out.afterError).toBe(0);
    return out;
  };
  const MB = 'Protocol error: unauthenticated multibulk length';
  const BULK = 'Protocol error: unauthenticated bulk length';

  it.each([
    ['*11\r\n', [MB]],
    ['*10\r\n', []],
    ['*-1\r\n*0\r\n', []],
    // Redis checks its ordinary limits first: these keep their usual errors.
    ['*2147483648\r\n', ['Protocol error: invalid multibulk length']],
    ['*1\r\n$-1\r\n', ['Protocol error: invalid bulk length']],
    ['*1\r\n$16385\r\n', [BULK]],
    ['*1\r\n$16384\r\n', []],
    ['*2\r\n$4\r\nECHO\r\n$99999\r\n', [BULK]],
  ])('%j → %j, whole or one byte at a time', (input, errors) => {
    expect(unauthenticated([B(input)]).errors).toEqual(errors);
    expect(unauthenticated(bytewise(B(input))).errors).toEqual(errors);
    // Without authRequired, none of the unauthenticated errors.
    expect(runParser([B(input)]).errors.filter((e) => e.includes('unauthenticated'))).toEqual([]);
  });

  it('inline requests have no unauthenticated limit (as in Redis); their raw is the line as received', () => {
    const many = 'SET ' + Array.from({ length: 20 }, (_, i) => `a${i}`).join(' ') + '\r\n';
    const long = ' ECHO "' + 'x'.repeat(20_000) + '"\n';
    const out = unauthenticated([B(many + long)]);
    expect(out.errors).toEqual([]);
    expect(out.commands.map((c) => c.args.length)).toEqual([21, 2]);
    // A backing Redis would refuse their multibulk form from an unauthenticated client.
    expect(out.commands.map((c) => c.raw.toString('latin1'))).toEqual([many, long]);
    expect(runParser([B(many)]).commands[0].raw[0]).toBe(42);
  });

  it('the limits follow authRequired as it changes between feeds', () => {
    const { parser, out } = newCollector();
    parser.authRequired = true;
    parser.feed(B('*10\r\n'));
    parser.authRequired = false;
    parser.feed(B(Array.from({ length: 10 }, () => '$20000\r\n' + 'x'.repeat(20_000) + '\r\n').join('')));
    expect(out.errors).toEqual([]);
    expect(out.commands.length).toBe(1);
  });

  it('pause() in onCommand keeps the rest, in order, until resume(); bytes fed meanwhile too', () => {
    let { parser, out } = newCollector();
    const events: string[] = [];
    parser = new RequestParser({
      onCommand(args, raw) {
        out.commands.push({ args: args.map((a) => Buffer.from(a)), raw: Buffer.from(raw) });
        events.push(args[0].toString('latin1'));
        if (args[0].toString('latin1') === 'AUTH') parser.pause();
      },
      onProtocolError(message) {
        out.errors.push(message);
      },
    });
    parser.authRequired = true;
    parser.feed(B('PING\r\nAUTH pw\r\n*12\r\n$1\r\na'));
    expect(events).toEqual(['PING', 'AUTH']);
    expect(parser.paused).toBe(true);
    parser.feed(B('\r\n'));
    parser.feed(B(Array.from({ length: 11 }, (_, i) => `$1\r\n${i % 10}\r\n`).join('') + 'PING\r\n'));
    expect(events).toEqual(['PING', 'AUTH']);
    expect(out.errors).toEqual([]);
    expect(parser.bufferedBytes).toBeGreaterThan(40);
    parser.authRequired = false;
    parser.resume();
    expect(parser.paused).toBe(false);
    expect(out.errors).toEqual([]);
    expect(events).toEqual(['PING', 'AUTH', 'a', 'PING']);
    expect(out.commands[2].args.length).toBe(12);
    expect(parser.bufferedBytes).toBe(0);
    // A failed AUTH: resumed with the limits still on.
    parser.authRequired = true;
    parser.feed(B('AUTH wrong\r\n*11\r\n'));
    expect(out.errors).toEqual([]);
    parser.resume();
    expect(out.errors).toEqual([MB]);
    parser.resume(); // not paused: nothing happens
    expect(events.length).toBe(5);
  });

  /**
   * The session's use: a request named AUTH pauses parsing; once it is "answered" (the right
   * password clears authRequired) parsing resumes. It is answered inside onCommand (resume() from
   * within the parse), after the feed, or only after the next feed (which the paused parser
   * keeps). Compared with a model that executes the requests one by one, as Redis does.
   */
  function runAuthSession(chunks: Buffer[], when: 'inside' | 'after' | 'late'): Outcome {
    const out: Outcome = { commands: [], errors: [], afterError: 0 };
    let pendingPw: string | null = null;
    const answer = () => {
      if (pendingPw === 'right') parser.authRequired = false;
      pendingPw = null;
      parser.resume();
    };
    const parser: RequestParser = new RequestParser({
      onCommand(args, raw) {
        if (out.errors.length > 0) out.afterError++;
        out.commands.push({ args: args.map((a) => Buffer.from(a)), raw: Buffer.from(raw) });
        if (args[0].toString('latin1') === 'AUTH') {
          pendingPw = args[1]?.toString('latin1') ?? '';
          parser.pause();
          if (when === 'inside') answer();
        }
      },
      onProtocolError(message) {
        if (out.errors.length > 0) out.afterError++;
        out.errors.push(message);
      },
    });
    parser.authRequired = true;
    for (const c of chunks) {
      const wasPaused = parser.paused;
      parser.feed(c);
      if (when === 'after' || wasPaused) while (parser.paused) answer();
    }
    while (parser.paused) answer();
    return out;
  }

  it('random pipelines of AUTH (right or wrong), big and small requests: as executed one by one, any chunking', () => {
    seeded('auth pipelines', 60, (rng) => {
      const reqs: GenRequest[] = [];
      const n = rng.range(1, 8);
      for (let i = 0; i < n; i++) {
        const k = rng.next();
        if (k < 0.3) {
          const pw = rng.pick(['right', 'wrong']);
          const args = [B('AUTH'), B(pw)];
          reqs.push({ bytes: rng.chance(0.5) ? multibulk(args) : B(`AUTH ${pw}\r\n`), args });
        } else if (k < 0.45) {
          reqs.push(genInline(rng));
        } else {
          reqs.push(genMultibulk(rng, { allowLarge: rng.chance(0.3), maxArgs: 14, maxSmall: 40 }));
        }
      }
      // The model: Redis's checks on each request in turn, with the auth state of its time.
      const want: Outcome = { commands: [], errors: [], afterError: 0 };
      let authRequired = true;
      for (const r of reqs) {
        const isMultibulk = r.bytes[0] === 42;
        if (authRequired && isMultibulk && r.args && r.args.length > 10) {
          want.errors.push(MB);
          break;
        }
        if (authRequired && isMultibulk && r.args?.some((a) => a.length > 16384)) {
          want.errors.push(BULK);
          break;
        }
        if (!r.args) continue;
        want.commands.push({ args: r.args, raw: isMultibulk || authRequired ? r.bytes : encodeRequest(r.args) });
        if (r.args[0].toString('latin1') === 'AUTH' && r.args[1].toString('latin1') === 'right') authRequired = false;
      }
      const stream = Buffer.concat(reqs.map((r) => r.bytes));
      const splits = [[stream], randomSplit(rng, stream, 30), splitAt(stream, Array.from({ length: Math.floor(stream.length / 1000) }, (_, i) => (i + 1) * 1000))];
      if (stream.length < 4000) splits.push(bytewise(stream));
      for (const chunks of splits) {
        for (const when of ['inside', 'after', 'late'] as const) {
          const got = runAuthSession(chunks, when);
          const how = `${chunks.length} chunks, AUTH answered ${when}`;
          expect(got.afterError, how).toBe(0);
          expect(got.errors, how).toEqual(want.errors);
          expect(got.commands.length, how).toBe(want.commands.length);
          for (let i = 0; i < want.commands.length; i++) {
            expect(got.commands[i].args.every((a, j) => a.equals(want.commands[i].args[j])) && got.commands[i].args.length === want.commands[i].args.length, `${how}: command ${i}`).toBe(true);
            expect(got.commands[i].raw.equals(want.commands[i].raw), `${how}: raw of command ${i}`).toBe(true);
          }
        }
      }
    });
  });
});

describe('parseStrictInt', () => {
  const p = (s: string) => parseStrictInt(B(`#${s}#`), 1, 1 + s.length);
  it.each([
    ['0', 0],
    ['1', 1],
    ['-1', -1],
    ['42', 42],
    ['-9007199254740991', -9007199254740991],
    ['9007199254740991', 9007199254740991],
    ['2147483648', 2147483648],
  ] as Array<[string, number]>)('%j → %d', (s, n) => {
    expect(p(s)).toBe(n);
  });

  it.each(['', '-', '-0', '00', '01', '-01', '+1', ' 1', '1 ', '1a', 'a1', '0x10', '1e3', '1.0', '123456789012345678901', '9007199254740993'])(
    '%j → null',
    (s) => {
      expect(p(s)).toBeNull();
    },
  );

  it('agrees with the decimal form of every safe integer (fast-check)', () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), (n) => {
        expect(p(String(n))).toBe(n);
        if (n > 0) expect(p('0' + String(n))).toBeNull();
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});

describe('encodeRequest', () => {
  it('encodes strings (as UTF-8) and buffers as a multibulk request', () => {
    expect(encodeRequest(['SET', 'k', 'é']).toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n');
    expect(encodeRequest([Buffer.from('a\r\nb'), '']).toString('latin1')).toBe('*2\r\n$4\r\na\r\nb\r\n$0\r\n\r\n');
    expect(encodeRequest([]).toString('latin1')).toBe('*0\r\n');
  });

  it('round-trips through RequestParser and redis-parser (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 50 }), { minLength: 1, maxLength: 10 }), (arr) => {
        const args = arr.map((a) => Buffer.from(a));
        const bytes = encodeRequest(args);
        expect(bytes.equals(multibulk(args))).toBe(true);
        const out = runParser([bytes]);
        expect(out.commands.map((c) => c.args)).toEqual([args]);
        expect(runRedisParser([bytes])).toEqual([args]);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe('commandName (the lower-cased name, cached by its bytes)', () => {
  it('is what toString("latin1").toLowerCase() gives, for any bytes, also after cache collisions and with views reused', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 50 }), (names) => {
        for (const round of [0, 1]) {
          for (const bytes of names) {
            // a view into a larger chunk that is overwritten afterwards, as a socket chunk is
            const chunk = Buffer.alloc(bytes.length + 8, 0x41);
            chunk.set(bytes, 4);
            const view = chunk.subarray(4, 4 + bytes.length);
            const want = Buffer.from(bytes).toString('latin1').toLowerCase();
            expect(commandName(view), `round ${round}`).toBe(want);
            chunk.fill(0x5a);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
