/**
 * Reads and writes string values (snapshot chunks) of a standalone Redis over a dedicated
 * short-lived connection, straight from and into caller memory.
 *
 * Why not through ioredis: every socket read there gets a fresh 64 KiB buffer from the C
 * allocator, freed only when V8 collects it, and a bulk spanning reads is copied once more into
 * redis-parser's process-wide pool. Streaming a 68 MB snapshot that way left 30-50 MB of glibc heap
 * resident for good after a restart (freed, but fragmented below long-lived allocations). Here the
 * socket reads into one reused buffer (net.Socket `onread`) and each bulk's bytes are copied once,
 * into their place in the destination.
 *
 * Writing: ioredis joins a command's arguments into one new buffer (for a 1 MB chunk a 1 MB
 * allocation and copy on the event loop, and external memory that makes V8 run full collections
 * every few chunks); here each SET goes out as header + the caller's chunk + CRLF in one writev.
 *
 * Plain TCP or unix socket to one Redis only: a TLS or cluster connection uses the ioredis path.
 */
import net from 'node:net';
import { encode } from '../protocol/resp.js';
import { pauseForIo } from '../util/io-slice.js';

export interface ValueReaderTarget {
  host?: string;
  port?: number;
  /** Unix socket path (instead of host/port). */
  path?: string;
  username?: string | null;
  password?: string | null;
  db?: number;
  /** Connect timeout, and the longest pause between two reads once connected (ms). */
  timeoutMs: number;
}

/**
 * `ok`: every value was copied, back to back from offset 0, `filled` bytes in all. `missing`: a key
 * did not exist. `overflow`: the values are longer than `into`. Nothing is trusted beyond that: the
 * caller checks the total length and checksum.
 */
export type ValueReadResult = { status: 'ok'; filled: number } | { status: 'missing' } | { status: 'overflow' };

const READ_BUFFER = 64 * 1024;
/**
 * Values requested (or written) ahead of the one being transferred. One request for every chunk at
 * once would make Redis copy them all into its output buffer in one go (70 MB: tens of ms during
 * which it serves nobody else, and 70 MB more of its memory); two keep the socket busy.
 */
const WINDOW = 2;
/** Longest status/error/length line accepted from the server. */
const MAX_LINE = 4096;

/** AUTH and SELECT as the storage connection does them. */
function preludeOf(target: ValueReaderTarget): string[][] {
  const prelude: string[][] = [];
  if (target.password) {
    prelude.push(target.username ? ['AUTH', target.username, target.password] : ['AUTH', target.password]);
  }
  if (target.db) prelude.push(['SELECT', String(target.db)]);
  return prelude;
}

function endpointOf(target: ValueReaderTarget): { path: string } | { host: string; port: number } {
  return target.path ? { path: target.path } : { host: target.host ?? '127.0.0.1', port: target.port ?? 6379 };
}

/** A reply's status or header line, gathered across reads; each whole line (no CRLF) goes to onLine. */
class LineReader {
  private line = '';
  constructor(
    private readonly onLine: (l: string) => void,
    private readonly fail: (err: Error) => void,
  ) {}

  /** Reads from buf[i] up to the end of a line or `n`; returns where it stopped. */
  take(buf: Buffer, i: number, n: number): number {
    const nl = buf.indexOf(10, i);
    const end = nl < 0 || nl >= n ? n : nl + 1;
    this.line += buf.toString('latin1', i, end);
    if (this.line.length > MAX_LINE) {
      this.fail(new Error('backing Redis: reply line too long'));
      return n;
    }
    if (this.line.endsWith('\r\n')) {
      const l = this.line.slice(0, -2);
      this.line = '';
      this.onLine(l);
    }
    return end;
  }
}

/** GETs `keys` (a few at a time) and copies their values, in order, into `into`. */
export function readValuesInto(target: ValueReaderTarget, keys: string[], into: Buffer): Promise<ValueReadResult> {
  const prelude = preludeOf(target);
  if (keys.length === 0) return Promise.resolve({ status: 'ok', filled: 0 });
  const start = Buffer.concat(prelude.map((c) => encode(c)));

  return new Promise<ValueReadResult>((resolve, reject) => {
    let settled = false;
    let statusLeft = prelude.length; // +OK replies still expected before the values
    let valuesLeft = keys.length;
    let bulkLeft = -1; // bytes of the current value still to copy (-1: reading a header)
    let crlfLeft = 0; // the \r\n after a value
    let at = 0;
    let sent = 0; // GETs sent: at most WINDOW values in flight

    const sendMore = (): void => {
      const out: Buffer[] = [];
      while (sent < keys.length && sent - (keys.length - valuesLeft) < WINDOW) out.push(encode(['GET', keys[sent++]!]));
      if (out.length > 0) socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    };

    const finish = (err: Error | null, result?: ValueReadResult): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(result!);
    };

    const onLine = (l: string): void => {
      if (l[0] === '-') return finish(new Error(`backing Redis: ${l.slice(1)}`));
      if (statusLeft > 0) {
        if (l !== '+OK') return finish(new Error(`backing Redis: unexpected reply to AUTH/SELECT`));
        statusLeft--;
      } else if (l[0] === '$') {
        const len = Number(l.slice(1));
        if (len === -1) return finish(null, { status: 'missing' });
        if (!Number.isSafeInteger(len) || len < 0) return finish(new Error('backing Redis: malformed bulk length'));
        if (at + len > into.length) return finish(null, { status: 'overflow' });
        bulkLeft = len;
        if (len === 0) endValue();
      } else {
        return finish(new Error('backing Redis: unexpected reply to GET'));
      }
      if (statusLeft === 0 && valuesLeft === 0) finish(null, { status: 'ok', filled: at });
    };

    const lines = new LineReader(onLine, (err) => finish(err));

    const endValue = (): void => {
      bulkLeft = -1;
      crlfLeft = 2;
      valuesLeft--;
      sendMore();
    };

    const consume = (n: number, buf: Buffer): void => {
      let i = 0;
      while (i < n && !settled) {
        if (bulkLeft > 0) {
          const take = Math.min(bulkLeft, n - i);
          buf.copy(into, at, i, i + take);
          at += take;
          i += take;
          bulkLeft -= take;
          if (bulkLeft === 0) endValue();
        } else if (crlfLeft > 0) {
          const take = Math.min(crlfLeft, n - i);
          i += take;
          crlfLeft -= take;
          if (crlfLeft === 0 && valuesLeft === 0) finish(null, { status: 'ok', filled: at });
        } else {
          i = lines.take(buf, i, n);
        }
      }
    };

    const socket = net.connect({
      ...endpointOf(target),
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER),
        callback: (n: number, buf: Uint8Array) => {
          consume(n, buf as Buffer);
          // libuv drains a busy socket in one go (up to 32 reads per poll: 2 MB of copying into
          // fresh, page-faulting memory): past this turn's slice the rest waits for the next turn,
          // so other clients' requests are read in between.
          const later = settled ? null : pauseForIo();
          if (later) {
            socket.pause();
            void later.then(() => {
              if (!settled) socket.resume();
            });
          }
          return true;
        },
      },
    });
    socket.setNoDelay(true);
    socket.setTimeout(target.timeoutMs, () => finish(new Error('backing Redis: snapshot read timed out')));
    socket.on('connect', () => {
      if (start.length > 0) socket.write(start);
      sendMore();
    });
    socket.on('error', (err) => finish(new Error(`backing Redis: ${err.message}`)));
    socket.on('close', () => finish(new Error('backing Redis: connection closed during a snapshot read')));
  });
}

/**
 * SETs each `keys[i]` to `values[i]`, a few at a time (WINDOW), writing the values from the
 * caller's buffers without copying them. Resolves when Redis acknowledged every SET.
 */
export function writeValuesFrom(target: ValueReaderTarget, keys: string[], values: Buffer[]): Promise<void> {
  const prelude = preludeOf(target);
  if (keys.length !== values.length) return Promise.reject(new Error('writeValuesFrom: keys and values differ in length'));
  if (keys.length === 0) return Promise.resolve();
  const CRLF = Buffer.from('\r\n');

  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let statusLeft = prelude.length; // +OK replies to AUTH/SELECT still expected
    let acked = 0; // SETs Redis answered
    let sent = 0;

    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };

    const sendMore = (): void => {
      if (sent - acked >= WINDOW || sent >= keys.length) return;
      socket.cork();
      while (sent < keys.length && sent - acked < WINDOW) {
        const key = Buffer.from(keys[sent]!, 'utf8');
        const v = values[sent++]!;
        socket.write(Buffer.from(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key.toString('latin1')}\r\n$${v.length}\r\n`, 'latin1'));
        socket.write(v);
        socket.write(CRLF);
      }
      socket.uncork(); // one writev of every header, chunk and CRLF
    };

    const onLine = (l: string): void => {
      if (l[0] === '-') return finish(new Error(`backing Redis: ${l.slice(1)}`));
      if (l !== '+OK') return finish(new Error('backing Redis: unexpected reply to SET'));
      if (statusLeft > 0) {
        statusLeft--;
        return;
      }
      acked++;
      if (acked === keys.length) return finish(null);
      sendMore();
    };

    const lines = new LineReader(onLine, (err) => finish(err));

    const socket = net.connect({
      ...endpointOf(target),
    });
    socket.setNoDelay(true);
    socket.setTimeout(target.timeoutMs, () => finish(new Error('backing Redis: snapshot write timed out')));
    socket.on('data', (buf: Buffer) => {
      for (let i = 0; i < buf.length && !settled; ) i = lines.take(buf, i, buf.length);
    });
    socket.on('connect', () => {
      for (const c of prelude) socket.write(encode(c));
      sendMore();
    });
    socket.on('error', (err) => finish(new Error(`backing Redis: ${err.message}`)));
    socket.on('close', () => finish(new Error('backing Redis: connection closed during a snapshot write')));
  });
}
