/**
 * RESP3 through the server: HELLO 3, every reply type passed through as redis-server sends it,
 * push frames (pub/sub, tracking invalidations) interleaved with replies without disturbing their
 * order, LLM.* replies in RESP3 types, CLIENT TRACKING in every mode, CLIENT REPLY, and the
 * clients users get today with their default settings: node-redis 6 (RESP3, client-side
 * caching) and redis-cli -3.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, BasicClientSideCache } from 'redis';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, expectSameExchanges, startServer } from '../harness/server.js';
import type { LlmServer } from '../src/server/server.js';

const cli = async (args: string[]) => (await promisify(execFile)('redis-cli', args)).stdout;
let redis: RedisServerHandle;
/** A second redis-server, the reference the server's bytes are compared with (the first one's keys are shared with the server). */
let reference: RedisServerHandle;
let server: LlmServer;
const closers: Array<() => unknown> = [];
const io = (opts: Record<string, unknown> = {}): Redis => {
  const r = client(server.port, opts);
  closers.push(() => r.disconnect());
  return r;
};

beforeAll(async () => {
  redis = await startRedis({ args: ['--enable-debug-command', 'yes'] });
  reference = await startRedis({ args: ['--enable-debug-command', 'yes'] });
  server = await startServer({ redis: redis.url });
  await server.loadingDone;
});

afterAll(async () => {
  for (const c of closers) await c();
  await server.stop();
  await redis.stop();
  await reference.stop();
});

const cmd = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
/** HELLO's `id` differs between the two connections; nothing else may. */
const sameButId = (t: string) => t.replace(/\$2\r\nid\r\n:\d+\r\n/g, '$2\r\nid\r\n:N\r\n');

/** A raw RESP3 connection that reads frames one by one (by the RESP grammar, not the server's code). */
class Raw {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  readonly sock: net.Socket;
  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (const w of this.waiters.splice(0)) w();
    });
    closers.push(() => this.sock.destroy());
  }
  send(...requests: string[]): void {
    this.sock.write(requests.join(''));
  }
  /** The next whole frame's bytes (waits up to 5 s). */
  async frame(): Promise<string> {
    for (let i = 0; i < 500; i++) {
      const end = frameEnd(this.buf, 0);
      if (end > 0) {
        const f = this.buf.subarray(0, end).toString('latin1');
        this.buf = this.buf.subarray(end);
        return f;
      }
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 10);
      });
    }
    throw new Error(`no whole frame; have ${JSON.stringify(this.buf.toString('latin1'))}`);
  }
  async frames(n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await this.frame());
    return out;
  }
  pending(): string {
    return this.buf.toString('latin1');
  }
}

/** End offset of the RESP2/RESP3 frame at `pos`, or -1 when incomplete. */
function frameEnd(b: Buffer, pos: number): number {
  const nl = b.indexOf('\r\n', pos);
  if (nl < 0) return -1;
  const t = String.fromCharCode(b[pos]!);
  const n = Number(b.toString('latin1', pos + 1, nl));
  let p = nl + 2;
  if ('+-:_,#('.includes(t)) return p;
  if ('$=!'.includes(t)) return n < 0 ? p : b.length >= p + n + 2 ? p + n + 2 : -1;
  const count = '%|'.includes(t) ? n * 2 : n;
  for (let i = 0; i < Math.max(count, 0); i++) {
    p = frameEnd(b, p);
    if (p < 0) return -1;
  }
  return t === '|' ? frameEnd(b, p) : p;
}

describe('HELLO 3 and every reply type', () => {
  it('byte for byte as redis-server sends them: map, set, double, boolean, big number, verbatim, null, attribute, blob error', async () => {
    const lua = (body: string) => cmd('EVAL', `redis.setresp(3); ${body}`, '0');
    const script = [
      cmd('HELLO', '3'),
      cmd('SET', 'r3:k', 'v'),
      cmd('GET', 'r3:k'),
      cmd('GET', 'r3:missing'),
      cmd('HSET', 'r3:h', 'a', '1', 'b', '2'),
      cmd('HGETALL', 'r3:h'),
      cmd('SADD', 'r3:s', 'x'),
      cmd('SMEMBERS', 'r3:s'),
      cmd('ZADD', 'r3:z', '1.5', 'm'),
      cmd('ZSCORE', 'r3:z', 'm'),
      lua('return true'),
      lua('return false'),
      lua("return {double='3.25'}"),
      lua("return {big_number='123456789012345678901234567890'}"),
      lua("return {verbatim_string={format='txt', string='hi'}}"),
      lua("return {map={a=1}}"),
      lua("return {set={a=true}}"),
      lua('return nil'),
      cmd('DEBUG', 'PROTOCOL', 'attrib'),
      cmd('DEBUG', 'PROTOCOL', 'bignum'),
      cmd('DEBUG', 'PROTOCOL', 'verbatim'),
      cmd('CONFIG', 'GET', 'maxmemory-policy'),
      cmd('NOSUCHCOMMAND'),
      cmd('HELLO', '2'),
      cmd('HGETALL', 'r3:h'),
      cmd('QUIT'),
    ].join('');
    await expectSameExchanges(server.port, reference.port, [['RESP3 script', script]], sameButId);
  });

  it("redis-py 8's default handshake (HELLO 3, CLIENT SETINFO LIB-NAME / LIB-VER) and first commands, byte for byte as redis-server answers them", async () => {
    // redis-py cannot be installed here (no PyPI): its on_connect is replayed instead. Against Redis
    // 7.0 CLIENT SETINFO is an unknown subcommand, which redis-py ignores; the replies must be Redis's.
    const handshake =
      cmd('HELLO', '3') + cmd('CLIENT', 'SETINFO', 'LIB-NAME', 'redis-py') + cmd('CLIENT', 'SETINFO', 'LIB-VER', '8.0.1') +
      cmd('SET', 'r3:py', 'v') + cmd('GET', 'r3:py') + cmd('HSET', 'r3:pyh', 'f', '1') + cmd('HGETALL', 'r3:pyh') +
      cmd('MULTI') + cmd('INCR', 'r3:pyc') + cmd('EXEC') + cmd('SUBSCRIBE', 'r3:pych') + cmd('PING') + cmd('UNSUBSCRIBE', 'r3:pych') + cmd('QUIT');
    await expectSameExchanges(server.port, reference.port, [['redis-py 8 handshake', handshake]], sameButId);
  });

  it('HELLO 3 AUTH and SETNAME; a wrong protocol version is refused as Redis refuses it', async () => {
    await expectSameExchanges(
      server.port,
      redis.port,
      [
        ['HELLO 3 AUTH SETNAME', cmd('HELLO', '3', 'AUTH', 'default', 'nopass-ignored', 'SETNAME', 'me') + cmd('QUIT')],
        ['HELLO 4', cmd('HELLO', '4') + cmd('PING') + cmd('QUIT')],
        ['HELLO x', cmd('HELLO', 'x') + cmd('QUIT')],
        ['HELLO 3 SETNAME, CLIENT GETNAME', cmd('HELLO', '3', 'SETNAME', 'me') + cmd('CLIENT', 'GETNAME') + cmd('QUIT')],
      ],
      sameButId,
    );
  });

  it('HELLO 3 AUTH against a password-protected backend authenticates LLM.* too', async () => {
    const locked = await startRedis({ args: ['--requirepass', 'pw3'] });
    const s = await startServer({ redis: `redis://:pw3@127.0.0.1:${locked.port}` });
    await s.loadingDone;
    try {
      const raw = new Raw(s.port);
      raw.send(cmd('LLM.SIZE', 'nothing'), cmd('HELLO', '3', 'AUTH', 'default', 'pw3'), cmd('LLM.SIZE', 'nothing'), cmd('GET', 'x'));
      const [noauth, hello, size, get] = await raw.frames(4);
      expect(noauth).toMatch(/^-NOAUTH/);
      expect(hello).toMatch(/^%7\r\n/);
      expect(size).toBe(':0\r\n');
      expect(get).toBe('_\r\n');
    } finally {
      await s.stop();
      await locked.stop();
    }
  });

  it('LLM.* replies in RESP3 types (maps, doubles, null); RESP2 replies stay as they were', async () => {
    const r2 = io();
    await r2.call('LLM.CREATE-VECTOR-STORE', 'r3:vs', '--PARAMS', '{"dim":2}');
    await r2.call('LLM.ADD', 'r3:vs', '--ID', '1', '--EMBEDDING', '1,0', 'one');
    await r2.call('LLM.ADD', 'r3:vs', '--ID', '2', '--EMBEDDING', '0,1', 'two');
    const raw = new Raw(server.port);
    raw.send(cmd('HELLO', '3'), cmd('LLM.KNN', 'r3:vs', '--K', '2', '--EMBEDDING', '1,0.5'), cmd('LLM.INFO', 'r3:vs'), cmd('LLM.GET', 'r3:vs', '99'), cmd('LLM.INFO', 'r3:nothing'));
    const [, knn, info, get, none] = await raw.frames(5);
    // l2 distances are squared, as hnswlib gives them: 0.25 and 1.25.
    expect(knn).toBe('*2\r\n*2\r\n:1\r\n,0.25\r\n*2\r\n:2\r\n,1.25\r\n');
    expect(info).toMatch(/^%\d+\r\n\$4\r\ntype\r\n/);
    expect(info).toContain('$5\r\nitems\r\n:2\r\n');
    expect(get).toBe('_\r\n');
    expect(none).toBe('_\r\n');
    // RESP2: distances as bulk strings, INFO as a flat array of strings and numbers, nil bulk.
    expect(await r2.call('LLM.KNN', 'r3:vs', '--K', '1', '--EMBEDDING', '1,0.5')).toEqual([[1, '0.25']]);
    const flat = (await r2.call('LLM.INFO', 'r3:vs')) as unknown[];
    expect(flat[flat.indexOf('items') + 1]).toBe(2);
    expect(await r2.call('LLM.GET', 'r3:vs', '99')).toBeNull();
  });
});

describe('push frames and reply order', () => {
  it('pub/sub messages interleave with the replies of a pipeline mixing LLM.* and proxied commands; replies keep their order', async () => {
    const r2 = io();
    await r2.call('LLM.CREATE-VECTOR-STORE', 'r3:pvs', '--PARAMS', '{"dim":2}');
    await r2.call('LLM.ADD', 'r3:pvs', '--ID', '7', '--EMBEDDING', '1,1', 'seven');
    await r2.set('r3:pk', 'pv');
    const raw = new Raw(server.port);
    raw.send(cmd('HELLO', '3'), cmd('SUBSCRIBE', 'r3:ch'));
    const [hello, confirm] = await raw.frames(2);
    expect(hello).toMatch(/^%7/);
    expect(confirm).toBe('>3\r\n$9\r\nsubscribe\r\n$5\r\nr3:ch\r\n:1\r\n');
    const publisher = io();
    const publishing = (async () => {
      for (let i = 0; i < 40; i++) {
        await publisher.publish('r3:ch', `m${i}`);
        if (i % 8 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    const rounds = 20;
    const expected: string[] = [];
    for (let i = 0; i < rounds; i++) {
      raw.send(cmd('LLM.SIZE', 'r3:pvs'), cmd('GET', 'r3:pk'), cmd('LLM.KNN', 'r3:pvs', '--K', '1', '--EMBEDDING', '1,1'), cmd('PING', `p${i}`), cmd('LLM.GET', 'r3:pvs', '7'));
      expected.push(':1\r\n', '$2\r\npv\r\n', '*1\r\n*2\r\n:7\r\n,0\r\n', `$${`p${i}`.length}\r\np${i}\r\n`, '*2\r\n$5\r\nseven\r\n$3\r\n1,1\r\n');
    }
    await publishing;
    const replies: string[] = [];
    const messages: string[] = [];
    while (replies.length < expected.length || messages.length < 40) {
      const f = await raw.frame();
      if (f.startsWith('>')) messages.push(f);
      else replies.push(f);
    }
    expect(replies).toEqual(expected);
    expect(messages).toEqual(Array.from({ length: 40 }, (_, i) => `>3\r\n$7\r\nmessage\r\n$5\r\nr3:ch\r\n$${`m${i}`.length}\r\nm${i}\r\n`));
  });

  it('RESP3 allows any command while subscribed (LLM.* included); UNSUBSCRIBE confirmations are pushes', async () => {
    const raw = new Raw(server.port);
    raw.send(cmd('HELLO', '3'), cmd('SUBSCRIBE', 'r3:a', 'r3:b'), cmd('LLM.SIZE', 'r3:nothing'), cmd('SET', 'r3:x', '1'), cmd('UNSUBSCRIBE'), cmd('PING'));
    const frames = await raw.frames(8);
    expect(frames.filter((f) => f.startsWith('>')).map((f) => f.split('\r\n')[2])).toEqual(['subscribe', 'subscribe', 'unsubscribe', 'unsubscribe']);
    expect(frames.filter((f) => !f.startsWith('>')).slice(1)).toEqual([':0\r\n', '+OK\r\n', '+PONG\r\n']);
  });
});

describe('CLIENT TRACKING through the server', () => {
  async function invalidations(raw: Raw, ms = 300): Promise<string[]> {
    const out: string[] = [];
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (frameEnd(Buffer.from(raw.pending(), 'latin1'), 0) > 0) out.push(await raw.frame());
      else await new Promise((r) => setTimeout(r, 10));
    }
    return out;
  }

  it('default mode: a key read by the client is invalidated when another client writes it', async () => {
    const raw = new Raw(server.port);
    raw.send(cmd('HELLO', '3'), cmd('CLIENT', 'TRACKING', 'on'), cmd('SET', 'r3:t1', 'a'), cmd('GET', 'r3:t1'));
    expect((await raw.frames(4)).slice(1)).toEqual(['+OK\r\n', '+OK\r\n', '$1\r\na\r\n']);
    await io().set('r3:t1', 'b');
    expect(await invalidations(raw)).toEqual(['>2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nr3:t1\r\n']);
  });

  it('BCAST with a prefix: only keys under it; never the server\'s own storage keys (BCAST without a prefix)', async () => {
    const raw = new Raw(server.port);
    raw.send(cmd('HELLO', '3'), cmd('CLIENT', 'TRACKING', 'on', 'BCAST', 'PREFIX', 'r3:b:'));
    await raw.frames(2);
    const w = io();
    await w.set('r3:b:one', '1');
    await w.set('r3:other', '1');
    expect(await invalidations(raw)).toEqual(['>2\r\n$10\r\ninvalidate\r\n*1\r\n$8\r\nr3:b:one\r\n']);
    const all = new Raw(server.port);
    all.send(cmd('HELLO', '3'), cmd('CLIENT', 'TRACKING', 'on', 'BCAST'));
    await all.frames(2);
    // An LLM object write: the server's storage keys change (catalog, log), the client sees none of them.
    await w.call('LLM.CREATE-VECTOR-STORE', 'r3:bvs', '--PARAMS', '{"dim":2}');
    await w.call('LLM.ADD', 'r3:bvs', '--EMBEDDING', '1,2', 'x');
    await w.set('r3:visible', '1');
    const seen = await invalidations(all, 500);
    expect(seen.join('')).not.toContain('__llm__');
    expect(seen).toContain('>2\r\n$10\r\ninvalidate\r\n*1\r\n$10\r\nr3:visible\r\n');
  });

  it('OPTIN / OPTOUT with CLIENT CACHING', async () => {
    const optin = new Raw(server.port);
    optin.send(cmd('HELLO', '3'), cmd('CLIENT', 'TRACKING', 'on', 'OPTIN'), cmd('GET', 'r3:o1'), cmd('CLIENT', 'CACHING', 'yes'), cmd('GET', 'r3:o2'));
    await optin.frames(5);
    const optout = new Raw(server.port);
    optout.send(cmd('HELLO', '3'), cmd('CLIENT', 'TRACKING', 'on', 'OPTOUT'), cmd('CLIENT', 'CACHING', 'no'), cmd('GET', 'r3:o3'), cmd('GET', 'r3:o4'));
    await optout.frames(5);
    const w = io();
    for (const k of ['r3:o1', 'r3:o2', 'r3:o3', 'r3:o4']) await w.set(k, 'x');
    expect(await invalidations(optin)).toEqual(['>2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nr3:o2\r\n']);
    expect(await invalidations(optout)).toEqual(['>2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nr3:o4\r\n']);
  });

  it('REDIRECT under RESP2: invalidations reach the redirect target\'s __redis__:invalidate subscription', async () => {
    const target = new Raw(server.port);
    target.send(cmd('CLIENT', 'ID'));
    const id = /^:(\d+)/.exec(await target.frame())![1]!;
    target.send(cmd('SUBSCRIBE', '__redis__:invalidate'));
    await target.frame();
    const tracked = new Raw(server.port);
    tracked.send(cmd('CLIENT', 'TRACKING', 'on', 'REDIRECT', id), cmd('GET', 'r3:rd'));
    expect(await tracked.frames(2)).toEqual(['+OK\r\n', '$-1\r\n']);
    await io().set('r3:rd', 'x');
    expect(await invalidations(target)).toEqual(['*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$5\r\nr3:rd\r\n']);
  });
});

describe('CLIENT REPLY keeps the reply order', () => {
  it('OFF, SKIP and ON as redis-server answers them (Redis commands only)', async () => {
    await expectSameExchanges(server.port, reference.port, [
      ['OFF then ON', cmd('CLIENT', 'REPLY', 'OFF') + cmd('SET', 'r3:cr', '1') + cmd('GET', 'r3:cr') + cmd('CLIENT', 'REPLY', 'ON') + cmd('GET', 'r3:cr') + cmd('QUIT')],
      ['SKIP', cmd('CLIENT', 'REPLY', 'SKIP') + cmd('SET', 'r3:cr', '2') + cmd('GET', 'r3:cr') + cmd('QUIT')],
      ['SKIP then ON', cmd('CLIENT', 'REPLY', 'SKIP') + cmd('CLIENT', 'REPLY', 'ON') + cmd('GET', 'r3:cr') + cmd('QUIT')],
    ]);
  });

  it('with LLM.* among them: a local reply is skipped or suppressed in its place, and an LLM command that calls Redis itself does not hang', async () => {
    const raw = new Raw(server.port);
    raw.send(
      cmd('CLIENT', 'REPLY', 'OFF'),
      cmd('LLM.CREATE-VECTOR-STORE', 'r3:crvs', '--PARAMS', '{"dim":2}'), // checks the key in Redis on the client's link
      cmd('LLM.SIZE', 'r3:crvs'),
      cmd('SET', 'r3:crk', 'v'),
      cmd('CLIENT', 'REPLY', 'SKIP'),
      cmd('LLM.SIZE', 'r3:crvs'), // skipped here: Redis must not skip the next GET
      cmd('GET', 'r3:crk'),
      cmd('CLIENT', 'REPLY', 'SKIP'),
      cmd('GET', 'r3:crk'), // skipped by Redis
      cmd('LLM.SIZE', 'r3:crvs'),
      cmd('CLIENT', 'REPLY', 'ON'),
      cmd('LLM.SIZE', 'r3:crvs'),
    );
    expect(await raw.frames(4)).toEqual(['$1\r\nv\r\n', ':0\r\n', '+OK\r\n', ':0\r\n']);
    await new Promise((r) => setTimeout(r, 100));
    expect(raw.pending()).toBe('');
    expect(await io().call('LLM.SIZE', 'r3:crvs')).toBe(0);
  });

  it('a SKIP used up by a local command: a slow reply after it still comes before the next local reply', async () => {
    // The local command cancels the SKIP the link passed to Redis (CLIENT REPLY ON, its +OK dropped
    // by the link). That dropped reply's slot once absorbed the next forwarded request's: the +OK
    // then cleared both, and the LLM.SIZE after the BLPOP (which answers 0.2 s later, without
    // holding Redis) was answered before it. A race in the test above; here every time.
    await io().call('LLM.CREATE-VECTOR-STORE', 'r3:crslow', '--PARAMS', '{"dim":2}');
    const raw = new Raw(server.port);
    raw.send(
      cmd('CLIENT', 'REPLY', 'OFF'),
      cmd('CLIENT', 'REPLY', 'SKIP'),
      cmd('LLM.SIZE', 'r3:crslow'), // skipped here
      cmd('BLPOP', 'r3:crnone', '0.2'),
      cmd('LLM.SIZE', 'r3:crslow'),
    );
    expect(await raw.frames(2)).toEqual(['*-1\r\n', ':0\r\n']);
  });
});

describe('clients as users get them', () => {
  it('node-redis 6 with its defaults (RESP3): commands, pipelines, transactions, pub/sub and LLM.* via sendCommand', async () => {
    const c = createClient({ url: `redis://127.0.0.1:${server.port}` });
    c.on('error', () => {});
    await c.connect();
    closers.push(() => c.destroy());
    expect(await c.hello()).toMatchObject({ proto: 3 });
    await c.set('r3:n:a', '1');
    expect(await c.get('r3:n:a')).toBe('1');
    await c.hSet('r3:n:h', { f: 'v' });
    expect(await c.hGetAll('r3:n:h')).toEqual({ f: 'v' });
    const [x, y] = await Promise.all([c.incr('r3:n:i'), c.incr('r3:n:i')]);
    expect([x, y]).toEqual([1, 2]);
    expect(await c.multi().set('r3:n:m', 'x').get('r3:n:m').exec()).toEqual(['OK', 'x']);
    expect(await c.sendCommand(['LLM.CREATE-VECTOR-STORE', 'r3:n:vs', '--PARAMS', '{"dim":2}'])).toBe(1);
    expect(await c.sendCommand(['LLM.ADD', 'r3:n:vs', '--EMBEDDING', '0.5,0.5', 'doc'])).toBe(1);
    expect(await c.sendCommand(['LLM.KNN', 'r3:n:vs', '--K', '1', '--EMBEDDING', '0.5,0.5'])).toEqual([[1, 0]]);
    const info = (await c.sendCommand(['LLM.INFO', 'r3:n:vs'])) as Record<string, unknown>;
    expect(info.items).toBe(1);
    const sub = c.duplicate();
    sub.on('error', () => {});
    await sub.connect();
    closers.push(() => sub.destroy());
    const got: string[] = [];
    await sub.subscribe('r3:n:ch', (m) => got.push(m));
    await c.publish('r3:n:ch', 'hello');
    for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(['hello']);
    // RESP3: the subscribed connection still runs commands, LLM.* included.
    expect(await sub.sendCommand(['LLM.SIZE', 'r3:n:vs'])).toBe(1);
  });

  it('node-redis 6 clientSideCache: a cached GET is invalidated by another client\'s write', async () => {
    const cache = new BasicClientSideCache({ ttl: 0, maxEntries: 0 });
    const c = createClient({ url: `redis://127.0.0.1:${server.port}`, RESP: 3, clientSideCache: cache });
    c.on('error', () => {});
    await c.connect();
    closers.push(() => c.destroy());
    const other = io();
    await other.set('r3:csc', 'first');
    expect(await c.get('r3:csc')).toBe('first');
    expect(await c.get('r3:csc')).toBe('first');
    expect(cache.stats().hitCount).toBe(1);
    const evictions = cache.stats().evictionCount;
    await other.set('r3:csc', 'second');
    let v = await c.get('r3:csc');
    for (let i = 0; i < 100 && v !== 'second'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      v = await c.get('r3:csc');
    }
    expect(v).toBe('second');
    // The invalidation arrived as a push and dropped the entry: the GET after it went to the server.
    expect(cache.stats().missCount).toBeGreaterThanOrEqual(2);
    expect(cache.stats().evictionCount).toBeGreaterThanOrEqual(evictions);
  });

  it('redis-cli -3 shows maps, doubles and nulls as against redis-server', async () => {
    await io().hset('r3:cli', 'a', '1');
    const args = (port: number, ...rest: string[]) => ['-3', '--no-raw', '-p', String(port), ...rest];
    expect(await cli(args(server.port, 'HGETALL', 'r3:cli'))).toBe(await cli(args(redis.port, 'HGETALL', 'r3:cli')));
    expect(await cli(args(server.port, 'HGETALL', 'r3:cli'))).toBe('1# "a" => "1"\n');
    expect(await cli(args(server.port, 'GET', 'r3:nothing'))).toBe(await cli(args(redis.port, 'GET', 'r3:nothing')));
    await io().call('LLM.CREATE-VECTOR-STORE', 'r3:clivs', '--PARAMS', '{"dim":2}');
    await io().call('LLM.ADD', 'r3:clivs', '--EMBEDDING', '3,4', 'x');
    expect(await cli(args(server.port, 'LLM.KNN', 'r3:clivs', '--EMBEDDING', '0,0'))).toBe('1) 1) (integer) 1\n   2) (double) 25\n');
    expect(await cli(args(server.port, 'LLM.INFO', 'r3:clivs'))).toMatch(/^ *1# "type" => "[^"]+"\n *2# "created_at" => \(integer\) \d+\n/);
  });
});

describe('clients as the server\'s clients see them (CLIENT LIST / INFO / KILL, INFO clients)', () => {
  const local = (r: Redis) => {
    const s = (r as unknown as { stream: net.Socket }).stream;
    return `${s.localAddress!.replace(/^::ffff:/, '')}:${s.localPort}`;
  };

  it('CLIENT LIST and CLIENT INFO show a client\'s own address, never the server\'s own connections', async () => {
    const a = io();
    await a.ping();
    const list = (await a.client('LIST')) as string;
    expect(list).not.toContain('name=redis-llm-server');
    const mine = list.split('\n').find((l) => l.includes(`addr=${local(a)} `));
    expect(mine).toBeDefined();
    expect(mine).toMatch(new RegExp(`laddr=127\\.0\\.0\\.1:${server.port} `));
    expect(mine).toContain(`id=${await a.client('ID')} `);
    const info = (await a.client('INFO')) as string;
    expect(info).toContain(`addr=${local(a)} laddr=127.0.0.1:${server.port} `);
    // Directly against Redis the server's own connections are there, named.
    expect(await cli(['-p', String(redis.port), 'CLIENT', 'LIST'])).toContain('name=redis-llm-server');
  });

  it('INFO clients: connected_clients counts clients, blocked_clients a client in BLPOP but not the server\'s own blocking reads', async () => {
    const field = (text: string, f: string) => Number(new RegExp(`^${f}:(\\d+)`, 'm').exec(text)![1]);
    const a = io();
    const before = await a.info('clients');
    expect(field(before, 'blocked_clients')).toBe(0);
    // Directly, Redis counts the server's own blocking reads (it follows other instances' writes).
    expect(field(await cli(['-p', String(redis.port), 'INFO', 'clients']), 'blocked_clients')).toBeGreaterThan(0);
    const blocker = io();
    const blocked = blocker.blpop('r3:never', 0);
    let now = 0;
    for (let i = 0; i < 100 && now !== 1; i++) {
      now = field(await a.info('clients'), 'blocked_clients');
      if (now !== 1) await new Promise((r) => setTimeout(r, 20));
    }
    expect(now).toBe(1);
    const connected = field(await a.info(), 'connected_clients');
    expect(connected).toBe(server.sessions.size);
    await a.lpush('r3:never', 'x');
    await blocked;
  });

  it('CLIENT KILL ADDR (and the old form) kill the client with that address, with or without a link of its own', async () => {
    const killer = io();
    const victim = io({ retryStrategy: () => null });
    await victim.ping(); // has a link
    const closed = new Promise((r) => victim.once('end', r));
    expect(await killer.client('KILL', 'ADDR', local(victim))).toBe(1);
    await closed;
    // A client that has sent nothing: no link to Redis, closed by the server itself.
    const idle = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => idle.once('connect', r));
    const idleClosed = new Promise((r) => idle.once('close', r));
    expect(await killer.client('KILL', `${idle.localAddress}:${idle.localPort}`)).toBe('OK');
    await idleClosed;
    expect(await errOfCall(killer.client('KILL', '127.0.0.1:1'))).toMatch(/No such client/);
  });
});

async function errOfCall(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

describe('CLIENT KILL with filters through the server', () => {
  it('TYPE normal and SKIPME kill clients, never the server\'s own connections (the server keeps working)', async () => {
    const killer = io();
    await killer.ping();
    const victims = [io({ retryStrategy: () => null }), io({ retryStrategy: () => null })];
    for (const v of victims) await v.ping();
    const ended = victims.map((v) => new Promise((r) => v.once('end', r)));
    const n = (await killer.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')) as number;
    expect(n).toBeGreaterThanOrEqual(2);
    await Promise.all(ended);
    // The killer lives, and the server's own connections were not touched: LLM.* and storage work at once.
    expect(await killer.ping()).toBe('PONG');
    expect(await killer.call('LLM.CREATE-VECTOR-STORE', 'kill-vs', '--PARAMS', '{"dim":2}')).toBe(1);
    expect(await killer.call('LLM.ADD', 'kill-vs', '--EMBEDDING', '1,2', 'x')).toBe(1);
    expect(await cli(['-p', String(redis.port), 'CLIENT', 'LIST'])).toContain('name=redis-llm-server');
  });

  it('errors as Redis gives them; SKIPME no kills the caller after its reply', async () => {
    const r = io({ retryStrategy: () => null });
    await expect(r.client('KILL')).rejects.toThrow("ERR wrong number of arguments for 'client|kill' command");
    await expect(r.client('KILL', 'ID', '0')).rejects.toThrow(/greater than 0/);
    await expect(r.client('KILL', 'TYPE', 'nosuch')).rejects.toThrow(/Unknown client type/);
    await expect(r.client('KILL', 'USER', 'nosuchuser')).rejects.toThrow(/No such user/);
    await expect(r.client('KILL', 'SKIPME', 'maybe')).rejects.toThrow(/syntax error/);
    const id = String(await r.client('ID'));
    const ended = new Promise((res) => r.once('end', res));
    expect(await r.client('KILL', 'ID', id, 'SKIPME', 'no')).toBe(1);
    await ended;
  });
});
