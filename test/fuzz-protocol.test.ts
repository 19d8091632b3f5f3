/**
 * Protocol fuzzing against the running server (a child process, as deployed), compared byte for
 * byte with a real redis-server: random bytes, truncated frames, huge and negative lengths, nesting
 * attempts, inline commands with odd quoting, valid pipelines split at every byte boundary, and
 * mixes of valid and invalid frames. For every case the server must answer exactly what
 * redis-server answers to the same bytes (protocol errors included, and closing only that
 * connection); a long-lived connection must get PONG after every batch; the process must never
 * die or log an uncaught error.
 *
 * Seeded: FUZZ_SEED=<n> replays a run; a failure prints the seed, the case index and its bytes.
 * The bench/soak.ts script runs the same generators for 100k+ frames.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { startChildServer, type ChildServer } from '../harness/server.js';
import { RequestParser } from '../src/protocol/request-parser.js';
import { LLM_COMMANDS } from '../src/commands/table.js';
import {
  Rng,
  alarmingLogLines,
  caseSeed,
  compareReplies,
  exchange,
  fuzzCase,
  llmCommand,
  multibulk,
  readReplies,
  redisCommand,
  show,
  type Exchange,
  type Verdict,
} from '../harness/fuzz-frames.js';
import { rssOf } from '../harness/child.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x7e57f022);
const CONCURRENCY = 24;

let ref: RedisServerHandle; // the reference redis-server
let backend: RedisServerHandle; // the server's backing Redis
let srv: ChildServer;
let watch: Watch;

/** A long-lived connection that must keep getting PONG while other connections misbehave. */
class Watch {
  private sock!: net.Socket;
  private buf = '';
  private waiters: Array<() => void> = [];
  async open(port: number): Promise<void> {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d) => {
      this.buf += d.toString('latin1');
      while (this.buf.startsWith('+PONG\r\n')) {
        this.buf = this.buf.slice(7);
        this.waiters.shift()?.();
      }
    });
    this.sock.on('error', () => {});
    await new Promise((r) => this.sock.once('connect', r));
  }
  ping(ms = 3000): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no PONG on the long-lived connection within ${ms} ms (buffer ${JSON.stringify(this.buf)}, destroyed ${this.sock.destroyed})`)), ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
      this.sock.write('PING\r\n');
    });
  }
  close(): void {
    this.sock.destroy();
  }
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) {
    await Promise.all(items.slice(i, i + size).map(fn));
    await watch.ping();
  }
}

function describeCase(seed: number, index: number, writes: Buffer[], r: Exchange, s: Exchange): string {
  return [
    `FUZZ_SEED=${seed} case ${index}`,
    `  writes:  ${writes.map((w) => show(w)).join(' | ')}`,
    `  redis:   ${show(r.bytes)} closed=${r.closed}`,
    `  server:  ${show(s.bytes)} closed=${s.closed}`,
  ].join('\n');
}

beforeAll(async () => {
  [ref, backend] = await Promise.all([startRedis(), startRedis()]);
  srv = await startChildServer(['--redis', backend.url]);
  watch = new Watch();
  await watch.open(srv.port);
  await watch.ping(10_000);
}, 60_000);

afterAll(async () => {
  watch?.close();
  await srv?.stop();
  await Promise.all([ref?.stop(), backend?.stop()]);
});

describe('the server answers malformed and odd input exactly as redis-server does', () => {
  const tally: Record<Verdict, number> = { same: 0, different: 0 };

  it('random mixes of valid and invalid frames, whole or split: byte-identical replies, same closes', async () => {
    const N = 480;
    const failures: string[] = [];
    await inBatches([...Array(N).keys()], CONCURRENCY, async (i) => {
      // The namespace letter changes on retries; its length does not, so the case is the same.
      const run = async (letter: string) => {
        const c = fuzzCase(new Rng(caseSeed(SEED, i)), `${letter}${i}`);
        const quietMs = letter === 'p' ? 150 : letter === 'q' ? 700 : 2500;
        const [r, s] = await Promise.all([exchange(ref.port, c.writes, { quietMs }), exchange(srv.port, c.writes, { quietMs })]);
        return { c, r, s, verdict: compareReplies(r, s, c.writes) };
      };
      let res = await run('p');
      // A difference is confirmed on fresh keys with a longer wait before it counts.
      for (const letter of ['q', 'r']) if (res.verdict === 'different') res = await run(letter);
      tally[res.verdict]++;
      if (res.verdict === 'different') failures.push(describeCase(SEED, i, res.c.writes, res.r, res.s));
    });
    console.log(`protocol fuzz: ${N} cases, seed ${SEED}:`, JSON.stringify(tally));
    expect(failures, failures.slice(0, 5).join('\n')).toEqual([]);
  }, 60_000);

  it('valid pipelines split at every byte boundary get the reply of the whole pipeline', async () => {
    const pipelines: Array<(ns: string) => Buffer> = [
      (ns) => Buffer.concat([multibulk(['SET', `${ns}:k`, 'v\r\n1']), multibulk(['GET', `${ns}:k`]), multibulk(['PING'])]),
      (ns) => Buffer.concat([Buffer.from(`INCR ${ns}:n\r\nECHO "a\\x00b c"\r\n`), multibulk(['INCR', `${ns}:n`]), Buffer.from('*-1\r\n*0\r\nPING\n')]),
      (ns) => Buffer.concat([multibulk(['RPUSH', `${ns}:l`, '', 'x']), Buffer.from(`LRANGE ${ns}:l 0 -1\r\n`), multibulk(['DEL', `${ns}:l`, `${ns}:m`])]),
      (ns) => Buffer.concat([multibulk(['HSET', `${ns}:h`, 'f', Buffer.from([0, 255, 13, 10])]), multibulk(['HGETALL', `${ns}:h`]), Buffer.from("ECHO 'it\\'s'\r\n")]),
    ];
    const failures: string[] = [];
    let exchanges = 0;
    for (const [pi, make] of pipelines.entries()) {
      const whole = make(`sa${pi}000`);
      const expected = await exchange(ref.port, [whole]);
      expect(expected.bytes.length).toBeGreaterThan(0);
      const splits = [...Array(whole.length - 1).keys()].map((k) => k + 1);
      await inBatches(splits, CONCURRENCY, async (at) => {
        let bytes!: Buffer;
        let got!: Exchange;
        // A mismatch is confirmed on fresh keys, with a longer wait, before it counts.
        for (const [letter, quietMs] of [['b', 150], ['c', 800]] as const) {
          bytes = make(`s${letter}${pi}${String(at).padStart(3, '0')}`);
          got = await exchange(srv.port, [bytes.subarray(0, at), bytes.subarray(at)], { gapMs: 3, quietMs });
          if (got.bytes.equals(expected.bytes) && got.closed === expected.closed) break;
        }
        exchanges++;
        if (!got.bytes.equals(expected.bytes) || got.closed !== expected.closed) {
          failures.push(`pipeline ${pi} split at ${at}: ${show(bytes.subarray(0, at))} | ${show(bytes.subarray(at))}\n  expected ${show(expected.bytes)}\n  got      ${show(got.bytes)}`);
        }
      });
    }
    expect(exchanges).toBeGreaterThan(200);
    expect(failures, failures.slice(0, 5).join('\n')).toEqual([]);
  }, 60_000);

  it('one byte per write: the same replies as redis-server (valid pipelines and protocol errors)', async () => {
    const inputs = [
      Buffer.concat([multibulk(['SET', 'fz:bw:k', 'hello']), Buffer.from('GET fz:bw:k\r\n'), multibulk(['DEL', 'fz:bw:k'])]),
      Buffer.from('*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$-3\r\n'),
      Buffer.from('ECHO "a b" \'c\'\r\nECHO "x\r\n'),
      Buffer.from('*1\rX$4\rYPING\r\n'),
    ];
    for (const input of inputs) {
      const writes = [...input].map((b) => Buffer.from([b]));
      const [r, s] = await Promise.all([exchange(ref.port, writes, { gapMs: 1, quietMs: 300 }), exchange(srv.port, writes, { gapMs: 1, quietMs: 300 })]);
      expect(compareReplies(r, s), describeCase(SEED, -1, [input], r, s)).toBe('same');
      await watch.ping();
    }
  }, 30_000);

  it('huge declared lengths: refused like Redis, or awaited without allocating them', async () => {
    const rssBefore = await rssOf(srv.proc.pid!);
    // Each kept open: the server must hold them without reserving what they declare.
    const held: net.Socket[] = [];
    const hold = (bytes: string) =>
      new Promise<void>((resolve) => {
        const s = net.connect(srv.port, '127.0.0.1', () => s.write(bytes, () => resolve()));
        s.on('error', () => {});
        held.push(s);
      });
    for (let i = 0; i < 20; i++) {
      await hold('*1\r\n$536870912\r\n' + 'x'.repeat(1000));
      await hold('*2147483647\r\n' + '$1\r\na\r\n'.repeat(1000));
      await hold('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870000\r\n');
    }
    await watch.ping();
    await new Promise((r) => setTimeout(r, 300));
    const rssHeld = await rssOf(srv.proc.pid!);
    for (const s of held) s.destroy();
    expect(rssHeld - rssBefore, `RSS before ${rssBefore}, while holding ${rssHeld}`).toBeLessThan(64 * 1024 * 1024);

    const headers = ['*2147483648\r\n', '*9223372036854775807\r\n', '*9223372036854775808\r\n', '*1\r\n$999999999999\r\n', '*1\r\n$536870913\r\n', '*2147483647\r\n', '*1\r\n$536870912\r\n', '*-9223372036854775808\r\nPING\r\n', '*-9223372036854775809\r\n'];
    for (const h of headers) {
      const w = [Buffer.from(h)];
      const [r, s] = await Promise.all([exchange(ref.port, w, { quietMs: 200 }), exchange(srv.port, w, { quietMs: 200 })]);
      expect(compareReplies(r, s), describeCase(SEED, -1, w, r, s)).toBe('same');
    }
  }, 30_000);

  it('a request of 500,000 arguments is parsed in linear time (was quadratic: ~20 s with the event loop busy)', async () => {
    const n = 500_000;
    const parts = [`*${n + 1}\r\n$3\r\nDEL\r\n`];
    for (let i = 0; i < n; i++) {
      const k = `fz:big:${i}`;
      parts.push(`$${k.length}\r\n${k}\r\n`);
    }
    const t0 = Date.now();
    const pings: number[] = [];
    const pinger = setInterval(() => {
      const t = Date.now();
      void watch.ping(10_000).then(() => pings.push(Date.now() - t));
    }, 100);
    const got = await exchange(srv.port, [Buffer.from(parts.join(''))], { quietMs: 30_000, maxMs: 30_000, until: (b) => b.includes('\r\n') });
    clearInterval(pinger);
    const ms = Date.now() - t0;
    expect(got.bytes.toString()).toBe(':0\r\n');
    expect(ms).toBeLessThan(5000);
    await watch.ping();
    expect(Math.max(0, ...pings)).toBeLessThan(2000);
  }, 60_000);
});

describe('LLM.* commands mixed with malformed frames', () => {
  const DB = '12';
  beforeAll(async () => {
    const setup = [
      ['SELECT', DB],
      ['LLM.CREATE-LLM', 'fz:llm', '--TYPE', 'local', '--PARAMS', '{"dim":8}'],
      ['LLM.CREATE-VECTOR-STORE', 'fz:store', '--LLM', 'fz:llm'],
      ['LLM.ADD', 'fz:store', '--ID', '1', 'alpha'],
      ['LLM.ADD', 'fz:store', '--ID', '2', '--ATTRS', '{"t":"x"}', 'beta'],
      ['LLM.CREATE-APP', 'fz:app', '--LLM', 'fz:llm', '--PROMPT', 'say {{x}}'],
      ['LLM.CREATE-SEARCH', 'fz:search', '--LLM', 'fz:llm', '--VECTOR-STORE', 'fz:store'],
      ['LLM.CREATE-CHAT', 'fz:chat', '--LLM', 'fz:llm'],
    ];
    const got = await exchange(srv.port, [Buffer.concat(setup.map(multibulk))], { quietMs: 300 });
    const read = readReplies(got.bytes);
    expect(read.frames, show(got.bytes)).toBe(setup.length);
    expect(read.errors, show(got.bytes)).toEqual([]);
  });

  it('one well-formed reply per command, in order; a protocol error last and only that connection closed', async () => {
    const keys = ['fz:llm', 'fz:store', 'fz:app', 'fz:search', 'fz:chat', 'fz:none', 'fz:mx:a', ''];
    const pick = (rng: Rng) => (rng.chance(0.6) ? llmCommand(rng, LLM_COMMANDS, keys) : redisCommand(rng, 'mx').filter(() => true));
    const safe = (rng: Rng) => {
      // No QUIT, SUBSCRIBE, SELECT or MULTI here: the model below counts one reply per command.
      for (;;) {
        const c = pick(rng);
        const name = String(c[0]).toLowerCase();
        if (!['quit', 'subscribe', 'unsubscribe', 'select', 'multi', 'exec', 'discard'].includes(name)) return c;
      }
    };
    const N = 200;
    const failures: string[] = [];
    await inBatches([...Array(N).keys()], CONCURRENCY, async (i) => {
      const rng = new Rng(caseSeed(SEED ^ 0x11, i));
      const c = fuzzCase(rng, `m${i}`, 6, safe);
      const writes = [multibulk(['SELECT', DB]), ...c.writes];
      // The model: what the parser (checked against redis-server above) makes of the bytes.
      let commands = 0;
      let protocolError: string | null = null;
      const model = new RequestParser({ onCommand: () => void commands++, onProtocolError: (m) => void (protocolError = m) });
      for (const w of writes) model.feed(w);
      const judge = (got: Exchange): { problem?: string } => {
        const read = readReplies(got.bytes);
        const where = `FUZZ_SEED=${SEED ^ 0x11} case ${i}: ${writes.map((w) => show(w)).join(' | ')}\n  got ${show(got.bytes)} closed=${got.closed}`;
        if (read.malformed || read.rest !== 0) return { problem: `malformed reply (${read.malformed ?? `${read.rest} trailing bytes`}) ${where}` };
        if (protocolError === null) {
          return read.frames !== commands || got.closed ? { problem: `expected ${commands} replies and an open connection: ${where}` } : {};
        }
        const last = read.errors.at(-1);
        if (!got.closed || last !== `ERR ${String(protocolError).replace(/[\r\n]/g, ' ')}`) {
          return got.bytes.includes('Protocol error: expected') && got.closed ? {} : { problem: `expected the protocol error last and a close: ${where}` };
        }
        if (read.frames === commands + 1) return {};
        return { problem: `expected ${commands} replies then the error: ${where}` };
      };
      let verdict = judge(await exchange(srv.port, writes, { quietMs: 200, maxMs: 8000 }));
      // Confirmed with a longer wait before it counts (the box is shared).
      if (verdict.problem) verdict = judge(await exchange(srv.port, writes, { quietMs: 1500, maxMs: 15_000 }));
      if (verdict.problem) failures.push(verdict.problem);
    });
    expect(failures, failures.slice(0, 5).join('\n')).toEqual([]);
  }, 60_000);
});

/** Divergences from redis-server the fuzzer found (all fixed): byte-identical now. */
describe('once-divergent cases, byte-identical to redis-server', () => {
  const same = async (input: string) => {
    const w = [Buffer.from(input, 'latin1')];
    const [r, s] = await Promise.all([exchange(ref.port, w, { quietMs: 300 }), exchange(srv.port, w, { quietMs: 300 })]);
    expect(s.bytes.toString('latin1'), describeCase(SEED, -1, w, r, s)).toBe(r.bytes.toString('latin1'));
    expect(s.closed).toBe(r.closed);
  };
  it('session.ts: replies to requests before a protocol error are written first (Redis: +PONG then the error)', async () => {
    await same('PING\r\nSET fz:k:early v\r\n*x\r\n');
  });
  it('session.ts: nothing after QUIT is parsed: a protocol error later in the same read does not replace +OK', async () => {
    await same('PING\r\nQUIT\r\n*x\r\n');
  });
  it("session.ts: `expected '$', got 'X'` carries the byte X itself, not its UTF-8 encoding", async () => {
    await same('*1\r\n\xff\r\n');
  });
  it('dispatcher.ts: SUBSCRIBE pipelined after MULTI is queued alone (no internal sentinel PING in the transaction)', async () => {
    await same('MULTI\r\nSUBSCRIBE fz:k:ch\r\nEXEC\r\nPING\r\n');
  });
  it('POST / Host: (cross-protocol scripting) closes the connection silently, as Redis does', async () => {
    await same('PING\r\nPOST / HTTP/1.1\r\nHost: x\r\n\r\n');
  });
});

describe('after all of the above', () => {
  it('the server process is alive, answers, and logged no uncaught error', async () => {
    await watch.ping();
    expect(srv.proc.exitCode).toBeNull();
    expect(srv.proc.signalCode).toBeNull();
    expect(alarmingLogLines(srv.output())).toEqual([]);
  });
});
