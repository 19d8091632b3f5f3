/**
 * Protocol fuzzing toolkit shared by test/fuzz-protocol.test.ts (a fast seeded subset) and
 * bench/soak.ts (100k+ frames): a seeded RNG, generators of request bytes (ordinary Redis traffic
 * and malformed frames of every kind), an exchange that sends bytes over a fresh connection and
 * collects the answer, a strict RESP2 reply reader, and the comparison with redis-server.
 *
 * Generated "ordinary" traffic keeps to commands whose replies do not depend on the instance
 * (no INFO, CLIENT, KEYS, DBSIZE, HELLO, COMMAND, TIME...), and puts every key under a
 * per-case namespace, so the same bytes sent to redis-server and to the server must get the same
 * bytes back — protocol errors included.
 */
import net from 'node:net';
import type { CommandSpec } from '../src/commands/spec.js';

// ---- randomness ---------------------------------------------------------------------------------

import { Rng } from './rng.js';

export { Rng };

/** Seed of case `i` of a run seeded `seed` (so one case can be replayed alone). */
export const caseSeed = (seed: number, i: number): number => (seed + Math.imul(i + 1, 0x9e3779b1)) >>> 0;

// ---- encoders -----------------------------------------------------------------------------------

const B = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s);

export function multibulk(args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [B(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = B(a);
    parts.push(B(`$${b.length}\r\n`), b, B('\r\n'));
  }
  return Buffer.concat(parts);
}

/** One argument written for an inline request: bare, "double quoted" with escapes, or 'single quoted'. */
function inlineArg(rng: Rng, a: Buffer): string {
  const s = a.toString('latin1');
  const plain = s.length > 0 && /^[\x21-\x7e]+$/.test(s) && !/["']/.test(s);
  const k = rng.int(4);
  if (plain && k < 2) return s;
  if (k === 2 && /^[\x20-\x7e]*$/.test(s) && !s.includes("'") && !s.includes('\\')) return `'${s}'`;
  let out = '"';
  for (const ch of a) {
    if (ch === 0x22) out += '\\"';
    else if (ch === 0x5c) out += '\\\\';
    else if (ch === 10) out += rng.chance(0.5) ? '\\n' : '\\x0a';
    else if (ch === 13) out += '\\r';
    else if (ch === 9) out += '\\t';
    else if (ch < 0x20 || ch > 0x7e) {
      const h = ch.toString(16).padStart(2, '0');
      out += '\\x' + (rng.chance(0.5) ? h : h.toUpperCase());
    }
    else out += String.fromCharCode(ch);
  }
  return out + '"';
}

export function inline(rng: Rng, args: Array<string | Buffer>): Buffer {
  const seps = [' ', '  ', '\t', ' \t '];
  const line = args.map((a) => inlineArg(rng, B(a))).join(rng.pick(seps));
  return B(line + (rng.chance(0.8) ? '\r\n' : '\n'));
}

// ---- ordinary Redis traffic ---------------------------------------------------------------------

function word(rng: Rng, max = 8): string {
  const n = rng.range(1, max);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(97 + rng.int(26));
  return s;
}

function value(rng: Rng): Buffer {
  switch (rng.int(6)) {
    case 0:
      return B(String(rng.range(-1000, 1000)));
    case 1:
      return B('');
    case 2:
      return rng.bytes(rng.range(1, 24));
    case 3:
      return B(rng.pick(['1e3', '-1', '4294967296', '12abc', '9223372036854775808', ' 1', '0x10', '"q"', "it's", 'a b']));
    default:
      return B(word(rng, 12));
  }
}

/** A command of ordinary Redis traffic; keys live under `fz:<ns>:`. */
export function redisCommand(rng: Rng, ns: string): Array<string | Buffer> {
  const key = () => `fz:${ns}:${rng.pick(['a', 'b', 'c', 'l', 'h'])}`;
  const k = rng.int(24);
  switch (k) {
    case 0:
      return rng.chance(0.5) ? ['PING'] : ['PING', value(rng)];
    case 1:
      return ['ECHO', value(rng)];
    case 2:
      return ['SET', key(), value(rng)];
    case 3:
      return ['GET', key()];
    case 4:
      return ['DEL', key(), ...(rng.chance(0.5) ? [key()] : [])];
    case 5:
      return ['INCR', key()];
    case 6:
      return ['INCRBY', key(), value(rng)];
    case 7:
      return ['APPEND', key(), value(rng)];
    case 8:
      return ['STRLEN', key()];
    case 9:
      return ['EXISTS', key(), key()];
    case 10:
      return ['RPUSH', key(), value(rng), value(rng)];
    case 11:
      return ['LRANGE', key(), '0', rng.pick(['-1', '1', 'x'])];
    case 12:
      return ['HSET', key(), word(rng), value(rng)];
    case 13:
      return ['HGETALL', key()];
    case 14:
      return ['MGET', key(), key(), key()];
    case 15:
      return ['TYPE', key()];
    case 16:
      return rng.pick([['GET'], ['SET', key()], ['ECHO'], ['PING', 'a', 'b'], ['INCRBY', key()]]); // arity errors
    case 17: {
      // An unknown command (never a real name: `zz` prefix), with its arguments echoed back.
      const args: Array<string | Buffer> = [`zz${word(rng, 6)}`];
      for (let i = rng.int(4); i > 0; i--) args.push(value(rng));
      return args;
    }
    case 18:
      return ['SELECT', rng.pick(['0', '1', '3', '7', '16', 'x', '-1'])];
    case 19:
      return [rng.pick(['MULTI', 'EXEC', 'DISCARD'])];
    case 20:
      return rng.chance(0.7) ? ['SUBSCRIBE', `fz:${ns}:ch`] : ['UNSUBSCRIBE'];
    case 21:
      return ['GETRANGE', key(), value(rng), value(rng)];
    case 22:
      return rng.chance(0.1) ? ['QUIT'] : ['PING'];
    default:
      return ['SETRANGE', key(), rng.pick(['0', '3', '-1', '536870912']), value(rng)];
  }
}

// ---- malformed frames ---------------------------------------------------------------------------

const HUGE = [
  '*2147483648\r\n',
  '*2147483647\r\n',
  '*9223372036854775807\r\n',
  '*9223372036854775808\r\n',
  '*99999999999999999999\r\n',
  '*1\r\n$999999999999\r\n',
  '*1\r\n$536870913\r\n',
  '*1\r\n$536870912\r\n',
  '*2\r\n$3\r\nGET\r\n$9223372036854775807\r\n',
  '$999999999999\r\n',
  '*-9223372036854775808\r\n',
  '*-9223372036854775809\r\n',
  '*-2147483649\r\n',
];
const NEGATIVE = ['*-1\r\n', '*-0\r\n', '*0\r\n', '*1\r\n$-1\r\n', '*1\r\n$-5\r\n', '*1\r\n$-0\r\n', '*2\r\n$4\r\nECHO\r\n$-2\r\n'];
const BAD_HEADERS = [
  '*1x\r\n',
  '* 1\r\n',
  '*+1\r\n',
  '*01\r\n',
  '*\r\n',
  '*1\r\n+OK\r\n',
  '*1\r\n:1\r\n',
  '*1\r\n$\r\n',
  '*1\r\n$04\r\nPING\r\n',
  '*1\r\n$4\rXPING\r\n',
  '*1\rX$4\r\nPING\r\n',
  '*1\r\n$4\r\nPINGxx',
  '*1\r\n$1\r\nabc\r\n',
  '*1\r\n$3\r\nab\r\n',
  '*2\r\n$4\r\nECHO\r\n*1\r\n',
  '*1\n$4\nPING\n',
  '*1\r\n\r\n',
  '*1\r\n$4\r\nPI\x00G\r\n',
  '*1\x00\r\n',
  '*1\r\n$4\x00\r\n',
];
const ODD_INLINE = [
  'ECHO "unterminated\r\n',
  'ECHO "a"b\r\n',
  "ECHO 'a'b\r\n",
  "ECHO 'a\\'b'\r\n",
  'ECHO "\\x4"\r\n',
  'ECHO "\\xzz\\x41\\x4a"\r\n',
  'ECHO ""\r\n',
  "ECHO ''\r\n",
  'ECHO "a\\\\"\r\n',
  'ECHO "\\"\r\n',
  'ECHO "a\\"\r\n',
  "ECHO '\\\\'\r\n",
  'ECHO a"b"c\r\n',
  'ECHO \x0bx\x0c\r\n',
  '   \t  \r\n',
  '\r\n',
  '\n',
  'ECHO \r\r\n',
  'PING\rPING\r\n',
  'ECHO "\t\r\n',
  "ECHO 'x\r\n",
  'ECHO "\\n\\r\\t\\b\\a\\z"\r\n',
  'PING\x00\r\n',
];

function nested(rng: Rng): Buffer {
  const depth = rng.range(2, 200);
  const tail = rng.pick(['$4\r\nPING\r\n', '*0\r\n', '', '*-1\r\n']);
  return B('*1\r\n'.repeat(depth) + tail);
}

function quoteSoup(rng: Rng): Buffer {
  const alphabet = ['"', "'", '\\', 'x', '4', 'a', ' ', '\t', 'ECHO', 'zzq', '\\x', '\\"', "\\'"];
  let s = rng.pick(['ECHO ', 'zzq ', '']);
  for (let i = rng.range(1, 12); i > 0; i--) s += rng.pick(alphabet);
  return B(s + rng.pick(['\r\n', '\n', '\r\n', '']));
}

function mutate(rng: Rng, buf: Buffer): Buffer {
  if (buf.length === 0) return buf;
  const b = Buffer.from(buf);
  const at = rng.int(b.length);
  switch (rng.int(4)) {
    case 0:
      b[at] = rng.pick([0, 10, 13, 36, 42, 45, 48, 57, 34, 39, 0xff]);
      return b;
    case 1:
      return Buffer.concat([b.subarray(0, at), B(rng.pick(['\r', '\n', '\r\n', '\x00', '*', '$', '-', '9'])), b.subarray(at)]);
    case 2:
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    default:
      return b.subarray(0, at);
  }
}

export type PieceKind = 'valid' | 'inline' | 'random' | 'printable' | 'truncated' | 'huge' | 'negative' | 'bad' | 'odd-inline' | 'nested' | 'quotes' | 'mutated';

export interface Piece {
  kind: PieceKind;
  bytes: Buffer;
}

/** One piece of a case: mostly valid commands (so errors have something around them), plus every kind of malformation. */
export function piece(rng: Rng, ns: string, command: (rng: Rng) => Array<string | Buffer> = (r) => redisCommand(r, ns)): Piece {
  const k = rng.int(100);
  if (k < 30) return { kind: 'valid', bytes: multibulk(command(rng)) };
  if (k < 42) return { kind: 'inline', bytes: inline(rng, command(rng)) };
  if (k < 48) return { kind: 'random', bytes: rng.bytes(rng.range(1, 48)) };
  if (k < 53) return { kind: 'printable', bytes: Buffer.concat([rng.bytes(rng.range(1, 40), true), B(rng.pick(['\r\n', '\n', '']))]) };
  if (k < 59) {
    const full = multibulk(command(rng));
    return { kind: 'truncated', bytes: full.subarray(0, rng.int(full.length)) };
  }
  if (k < 63) return { kind: 'huge', bytes: B(rng.pick(HUGE)) };
  if (k < 67) return { kind: 'negative', bytes: B(rng.pick(NEGATIVE)) };
  if (k < 75) return { kind: 'bad', bytes: B(rng.pick(BAD_HEADERS)) };
  if (k < 83) return { kind: 'odd-inline', bytes: B(rng.pick(ODD_INLINE)) };
  if (k < 86) return { kind: 'nested', bytes: nested(rng) };
  if (k < 91) return { kind: 'quotes', bytes: quoteSoup(rng) };
  return { kind: 'mutated', bytes: mutate(rng, multibulk(command(rng))) };
}

export interface FuzzCase {
  /** The bytes, in the writes they are sent as. */
  writes: Buffer[];
  kinds: PieceKind[];
}

/** A case: 1..maxPieces pieces, sent whole or split into up to 3 writes at random points. */
export function fuzzCase(rng: Rng, ns: string, maxPieces = 6, command?: (rng: Rng) => Array<string | Buffer>): FuzzCase {
  const pieces: Piece[] = [];
  for (let i = rng.range(1, maxPieces); i > 0; i--) pieces.push(piece(rng, ns, command));
  const all = Buffer.concat(pieces.map((p) => p.bytes));
  const writes: Buffer[] = [];
  if (all.length > 1 && rng.chance(0.4)) {
    const cuts = [...new Set([rng.range(1, all.length - 1), rng.range(1, all.length - 1)])].sort((a, b) => a - b);
    let at = 0;
    for (const c of cuts) {
      writes.push(all.subarray(at, c));
      at = c;
    }
    writes.push(all.subarray(at));
  } else writes.push(all);
  return { writes, kinds: pieces.map((p) => p.kind) };
}

// ---- LLM.* commands from the command table --------------------------------------------------------

/** A random LLM.* command built from its declaration (options in any order and case, sometimes wrong). */
export function llmCommand(rng: Rng, specs: CommandSpec[], keys: string[], values: (rng: Rng) => string | Buffer = value): Array<string | Buffer> {
  const spec = rng.pick(specs);
  const args: Array<string | Buffer> = [rng.chance(0.8) ? spec.name : spec.name.toLowerCase()];
  if (rng.chance(0.95)) args.push(rng.pick(keys));
  for (let i = rng.int(4); i > 0 && spec.options.length > 0; i--) {
    const o = rng.pick(spec.options);
    args.push(rng.chance(0.8) ? o.token : o.token.toLowerCase());
    if (o.type !== 'pure-token' && rng.chance(0.9)) args.push(values(rng));
  }
  for (let i = rng.int(spec.args.length + 2); i > 0; i--) args.push(values(rng));
  return args;
}

// ---- exchanging bytes -----------------------------------------------------------------------------

export interface Exchange {
  bytes: Buffer;
  /** The peer closed the connection. */
  closed: boolean;
  /** Milliseconds from the first write to the last byte received (or the close). */
  ms: number;
}

export interface ExchangeOptions {
  /** Pause between writes (so they arrive as separate reads). */
  gapMs?: number;
  /** Done when nothing arrived for this long after the last write. */
  quietMs?: number;
  /** Hard limit. */
  maxMs?: number;
  /** Done as soon as the bytes received satisfy this (e.g. a complete reply). */
  until?: (received: Buffer) => boolean;
}

/** Sends `writes` on a fresh connection; collects the answer until the peer closes or goes quiet. */
export function exchange(port: number, writes: Buffer[], opts: ExchangeOptions = {}): Promise<Exchange> {
  const { gapMs = 2, quietMs = 120, maxMs = 5000, until } = opts;
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    const parts: Buffer[] = [];
    let t0 = 0;
    let last = 0;
    let done = false;
    let quiet: NodeJS.Timeout | undefined;
    let writesDone = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(quiet);
      clearTimeout(hard);
      sock.destroy();
      resolve({ bytes: Buffer.concat(parts), closed, ms: (last || Date.now()) - t0 });
    };
    const arm = () => {
      if (!writesDone) return;
      clearTimeout(quiet);
      quiet = setTimeout(() => finish(false), quietMs);
    };
    sock.on('data', (d) => {
      parts.push(d);
      last = Date.now();
      if (until?.(Buffer.concat(parts))) finish(false);
      else arm();
    });
    sock.on('close', () => {
      last = Date.now();
      finish(true);
    });
    sock.on('error', () => {});
    const hard = setTimeout(() => finish(false), maxMs);
    sock.once('connect', async () => {
      t0 = Date.now();
      for (let i = 0; i < writes.length; i++) {
        if (done) return;
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        // Wait until the bytes are handed to the kernel: the quiet period starts after that.
        if (!sock.destroyed && sock.writable) await new Promise<void>((r) => sock.write(writes[i]!, () => r()));
      }
      writesDone = true;
      arm();
    });
  });
}

// ---- reading replies ------------------------------------------------------------------------------

export interface ReplyRead {
  /** Complete top-level frames. */
  frames: number;
  /** Error frames (`-...`), as text. */
  errors: string[];
  /** Bytes of an incomplete trailing frame. */
  rest: number;
  /** Set when the bytes are not RESP2. */
  malformed?: string;
}

/** Strict RESP2 reader (what a client library accepts): + - : $ * frames with CRLF line ends. */
export function readReplies(buf: Buffer): ReplyRead {
  const errors: string[] = [];
  let frames = 0;
  let pos = 0;
  const line = (at: number): number => {
    const cr = buf.indexOf('\r\n', at, 'latin1');
    return cr;
  };
  const intOf = (s: string): number | null => (/^-?\d+$/.test(s) ? Number(s) : null);
  // Returns the end of the frame at `at`, -1 if incomplete, throws on malformed input.
  const frame = (at: number, depth: number): number => {
    if (depth > 64) throw new Error('nesting deeper than 64');
    if (at >= buf.length) return -1;
    const t = buf[at];
    const cr = line(at);
    if (cr < 0) return -1;
    const text = buf.toString('latin1', at + 1, cr);
    if (text.includes('\n') || text.includes('\r')) throw new Error(`CR or LF inside a line at ${at}`);
    switch (t) {
      case 43: // +
      case 45: // -
        return cr + 2;
      case 58: // :
        if (intOf(text) === null) throw new Error(`bad integer ${JSON.stringify(text)}`);
        return cr + 2;
      case 36: {
        const n = intOf(text);
        if (n === null || n < -1) throw new Error(`bad bulk length ${JSON.stringify(text)}`);
        if (n === -1) return cr + 2;
        const end = cr + 2 + n;
        if (end + 2 > buf.length) return -1;
        if (buf[end] !== 13 || buf[end + 1] !== 10) throw new Error(`bulk not followed by CRLF at ${end}`);
        return end + 2;
      }
      case 42: {
        const n = intOf(text);
        if (n === null || n < -1) throw new Error(`bad array length ${JSON.stringify(text)}`);
        let p = cr + 2;
        for (let i = 0; i < n; i++) {
          p = frame(p, depth + 1);
          if (p < 0) return -1;
        }
        return p;
      }
      default:
        throw new Error(`unexpected type byte 0x${t!.toString(16)} at ${at}`);
    }
  };
  try {
    while (pos < buf.length) {
      const end = frame(pos, 0);
      if (end < 0) break;
      if (buf[pos] === 45) errors.push(buf.toString('latin1', pos + 1, end - 2));
      frames++;
      pos = end;
    }
  } catch (e) {
    return { frames, errors, rest: buf.length - pos, malformed: (e as Error).message };
  }
  return { frames, errors, rest: buf.length - pos };
}

// ---- comparing with redis-server --------------------------------------------------------------------

/**
 * Byte-for-byte comparison with redis-server: the same bytes and the same close. (The divergences
 * the fuzzer once found — replies lost before a protocol error, reading past QUIT, the error byte
 * sent as UTF-8, SUBSCRIBE pipelined after MULTI — are fixed; nothing is allowed any more.)
 */
export type Verdict = 'same' | 'different';

export function compareReplies(redis: Exchange, server: Exchange, _input?: Buffer[]): Verdict {
  return redis.closed === server.closed && redis.bytes.equals(server.bytes) ? 'same' : 'different';
}

/** Printable form of bytes for failure messages (JSON string of latin1). */
export const show = (b: Buffer | Buffer[]): string => JSON.stringify((Array.isArray(b) ? Buffer.concat(b) : b).toString('latin1'));

// ---- process figures ----------------------------------------------------------------------------------

/** Lines of a server log that show a crash or an unexpected failure. */
export function alarmingLogLines(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => {
      if (/uncaught|unhandled|triggerUncaughtException/i.test(l)) return true;
      if (/FATAL ERROR|Segmentation fault|Aborted \(core dumped\)|heap out of memory/.test(l)) return true;
      if (!l.startsWith('{')) return true; // not a log line: a stack trace or a runtime message
      try {
        const o = JSON.parse(l) as { level?: number; msg?: string };
        return (o.level ?? 0) >= 50; // error or fatal
      } catch {
        return true;
      }
    });
}
