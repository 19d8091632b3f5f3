/**
 * The server is Redis plus LLM.*: ordinary commands through it behave as against Redis.
 * A real redis-server, real TCP, ioredis and redis-cli as clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import net from 'node:net';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, rawExchange, startServer } from '../harness/server.js';
import type { LlmServer } from '../src/server/server.js';
import { LLM_COMMANDS } from '../src/commands/table.js';

const run = async (args: string[]) => (await promisify(execFile)('redis-cli', args)).stdout;
let redis: RedisServerHandle;
let server: LlmServer;
const clients: Redis[] = [];
const c = (opts: Record<string, unknown> = {}) => {
  const r = client(server.port, opts);
  clients.push(r);
  return r;
};

beforeAll(async () => {
  redis = await startRedis();
  server = await startServer({ redis: redis.url });
});

afterAll(async () => {
  for (const r of clients) r.disconnect();
  await server.stop();
  await redis.stop();
});

describe('ordinary commands', () => {
  it('SET/GET with binary and non-ASCII values', async () => {
    const r = c();
    await r.set('k1', 'héllo wörld ✓');
    expect(await r.get('k1')).toBe('héllo wörld ✓');
    const bin = Buffer.from([0, 13, 10, 255, 36, 42]);
    await r.set('bin', bin);
    expect(await r.getBuffer('bin')).toEqual(bin);
  });

  it('a large value streams through intact', async () => {
    const r = c();
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    big[12345] = 1;
    await r.set('big', big);
    expect((await r.getBuffer('big'))!.equals(big)).toBe(true);
  });

  it('pipelines mixing LLM.* and GET/SET keep request order', async () => {
    const r = c();
    const p = r.pipeline();
    for (let i = 0; i < 50; i++) {
      p.set(`p${i}`, String(i));
      p.call('LLM.SIZE', `nostore${i}`);
      p.get(`p${i}`);
      p.call('LLM.BOGUS');
    }
    const res = await p.exec();
    for (let i = 0; i < 50; i++) {
      expect(res![i * 4][1]).toBe('OK');
      expect(res![i * 4 + 2][1]).toBe(String(i));
      expect(String(res![i * 4 + 3][0])).toContain("unknown command 'LLM.BOGUS'");
    }
  });

  it('redis-cli --raw shows non-ASCII text as is', async () => {
    const out = await run(['-p', String(server.port), '--raw', 'SET', 'utf', 'Grüße, 世界']);
    expect(out.trim()).toBe('OK');
    const got = await run(['-p', String(server.port), '--raw', 'GET', 'utf']);
    expect(got).toBe('Grüße, 世界\n');
  });

  it('MULTI/EXEC and WATCH behave as Redis', async () => {
    const r = c();
    const res = await r.multi().set('m1', 'a').incr('m2').get('m1').exec();
    expect(res).toEqual([[null, 'OK'], [null, 1], [null, 'a']]);
    // WATCH: a write from another client aborts EXEC.
    const other = c();
    await r.watch('w1');
    await other.set('w1', 'changed');
    const aborted = await r.multi().set('w1', 'mine').exec();
    expect(aborted).toBeNull();
    expect(await r.get('w1')).toBe('changed');
  });

  it('LLM.* inside MULTI is queued and runs at EXEC in its place; one that calls an LLM answers the original\'s error in its slot', async () => {
    const r = c();
    await r.call('LLM.CREATE-VECTOR-STORE', 'txs', '--PARAMS', '{"dim":2}');
    const { text } = await rawExchange(
      server.port,
      'MULTI\r\nSET tx 1\r\nLLM.ADD txs --EMBEDDING 1,2 one\r\nLLM.SIZE txs\r\nLLM.RUN noapp hi\r\nLLM.ADD txs needs-an-embedding\r\nGET tx\r\nEXEC\r\nLLM.SIZE txs\r\n',
    );
    expect(text).toBe(
      '+OK\r\n' + '+QUEUED\r\n'.repeat(6) +
        '*6\r\n+OK\r\n:1\r\n:1\r\n-ERR Blocking module command called from transaction\r\n-ERR Blocking module command called from transaction\r\n$1\r\n1\r\n' +
        ':1\r\n',
    );
  });

  it('LLM.* inside MULTI: an arity error aborts the transaction (EXECABORT); DISCARD and a failed WATCH run none of them', async () => {
    const r = c();
    await r.call('LLM.CREATE-VECTOR-STORE', 'txs2', '--PARAMS', '{"dim":2}');
    const aborted = await rawExchange(server.port, 'MULTI\r\nSET tx2 1\r\nLLM.ADD\r\nEXEC\r\nGET tx2\r\n');
    const lines = aborted.text.split('\r\n');
    expect(lines.slice(0, 3)).toEqual(['+OK', '+QUEUED', "-ERR wrong number of arguments for 'LLM.ADD' command"]);
    expect(lines[3]).toMatch(/^-EXECABORT/);
    expect(lines[4]).toBe('$-1');
    const discarded = await rawExchange(server.port, 'MULTI\r\nLLM.ADD txs2 --EMBEDDING 1,1 x\r\nDISCARD\r\nLLM.SIZE txs2\r\n');
    expect(discarded.text).toBe('+OK\r\n+QUEUED\r\n+OK\r\n:0\r\n');
    const other = c();
    await r.set('tx-w', 'a');
    const watcher = net.connect(server.port, '127.0.0.1');
    let out = '';
    watcher.on('data', (d) => (out += d));
    watcher.write('WATCH tx-w\r\nMULTI\r\nLLM.ADD txs2 --EMBEDDING 1,1 x\r\n');
    for (let i = 0; i < 100 && !out.includes('QUEUED'); i++) await new Promise((res) => setTimeout(res, 10));
    await other.set('tx-w', 'b');
    watcher.write('EXEC\r\nLLM.SIZE txs2\r\n');
    for (let i = 0; i < 100 && !out.endsWith(':0\r\n'); i++) await new Promise((res) => setTimeout(res, 10));
    watcher.destroy();
    expect(out).toBe('+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n:0\r\n');
  });

  it('BLPOP is released by another client', async () => {
    const a = c();
    const b = c();
    const waiting = a.blpop('queue', 5);
    await new Promise((r) => setTimeout(r, 100));
    await b.rpush('queue', 'job');
    expect(await waiting).toEqual(['queue', 'job']);
  });

  it('XREAD BLOCK is released by XADD', async () => {
    const a = c();
    const b = c();
    const waiting = a.xread('BLOCK', 5000, 'STREAMS', 'st', '$');
    await new Promise((r) => setTimeout(r, 100));
    await b.xadd('st', '*', 'f', 'v');
    const res = await waiting;
    expect(res![0][0]).toBe('st');
    expect(res![0][1][0][1]).toEqual(['f', 'v']);
  });

  it('SELECT is per client', async () => {
    const a = c();
    const b = c();
    await a.select(3);
    await a.set('sel', 'db3');
    await b.set('sel', 'db0');
    expect(await a.get('sel')).toBe('db3');
    expect(await b.get('sel')).toBe('db0');
  });

  it('CLIENT SETNAME/GETNAME/ID and CLIENT KILL of another client close it', async () => {
    const a = c();
    const b = c();
    await a.client('SETNAME', 'alpha');
    expect(await a.client('GETNAME')).toBe('alpha');
    const idB = (await b.client('ID')) as number;
    expect(typeof idB).toBe('number');
    const closed = new Promise<void>((resolve) => b.once('close', () => resolve()));
    expect(await a.client('KILL', 'ID', String(idB))).toBe(1);
    await closed;
  });
});

describe('pub/sub and monitor', () => {
  it('SUBSCRIBE/PSUBSCRIBE receive PUBLISH; after UNSUBSCRIBE normal commands work', async () => {
    const sub = c();
    const pub = c();
    const got: string[] = [];
    sub.on('message', (ch, msg) => got.push(`${ch}:${msg}`));
    sub.on('pmessage', (_p, ch, msg) => got.push(`p:${ch}:${msg}`));
    await sub.subscribe('news', 'sports');
    await sub.psubscribe('n*');
    expect(await pub.publish('news', 'hello')).toBe(2);
    await pub.publish('sports', 'goal');
    await new Promise((r) => setTimeout(r, 100));
    expect(got.sort()).toEqual(['news:hello', 'p:news:hello', 'sports:goal'].sort());
    // (ioredis hangs on a bare UNSUBSCRIBE while patterns remain, against Redis too: name them.)
    await sub.unsubscribe('news', 'sports');
    await sub.punsubscribe('n*');
    expect(await sub.set('after-sub', '1')).toBe('OK');
    expect(await sub.get('after-sub')).toBe('1');
    await expect(sub.call('LLM.BOGUS')).rejects.toThrow(/unknown command 'LLM.BOGUS'/);
    expect(await sub.call('LLM.SIZE', 'x')).toBe(0);
  });

  it('in subscribed mode LLM.* gets the same refusal as other commands', async () => {
    const { text } = await rawExchange(server.port, 'SUBSCRIBE ch\r\nLLM.SIZE x\r\nGET k\r\n');
    const lines = text.split('\r\n');
    expect(lines[6]).toBe("-ERR Can't execute 'llm.size': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
    expect(lines[7]).toBe("-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
  });

  it('pipelined SUBSCRIBE then PING over a raw socket keeps order', async () => {
    const { text } = await rawExchange(server.port, 'SUBSCRIBE a b\r\nPING\r\nUNSUBSCRIBE\r\nGET nothing\r\n');
    const head = '*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n' + '*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n' + '*2\r\n$4\r\npong\r\n$0\r\n\r\n';
    // UNSUBSCRIBE without arguments goes through the channels in Redis's hash order.
    const unsub = (first: string, second: string) =>
      `*3\r\n$11\r\nunsubscribe\r\n$1\r\n${first}\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\n${second}\r\n:0\r\n`;
    expect([head + unsub('a', 'b') + '$-1\r\n', head + unsub('b', 'a') + '$-1\r\n']).toContain(text);
  });

  it('MONITOR streams commands of other clients', async () => {
    const lines: string[] = [];
    const sock = net.connect(server.port, '127.0.0.1');
    sock.on('data', (d) => lines.push(d.toString()));
    sock.write('MONITOR\r\n');
    await new Promise((r) => setTimeout(r, 100));
    await c().set('monitored-key', 'x');
    await new Promise((r) => setTimeout(r, 100));
    sock.destroy();
    const all = lines.join('');
    expect(all.startsWith('+OK\r\n')).toBe(true);
    expect(all).toContain('"monitored-key"');
  });
});

describe('protocol', () => {
  it('inline commands typed over a raw socket', async () => {
    const { text } = await rawExchange(server.port, 'PING\r\nSET inl "a b"\r\nGET inl\r\nllm.bogus  \'x y\'\nllm.size "no store"\r\n');
    expect(text).toBe("+PONG\r\n+OK\r\n$3\r\na b\r\n-ERR unknown command 'llm.bogus', with args beginning with: 'x y' \r\n:0\r\n");
  });

  it('malformed RESP: Redis error text, only that connection closes', async () => {
    const other = c();
    const bad = await rawExchange(server.port, '*1\r\n$3\r\nGET\r\n*2\r\n+foo\r\n', 1000);
    expect(bad.text).toContain("-ERR Protocol error: expected '$', got '+'");
    expect(bad.closed).toBe(true);
    const big = await rawExchange(server.port, '*1\r\n$99999999999\r\n', 1000);
    expect(big.text).toBe('-ERR Protocol error: invalid bulk length\r\n');
    expect(big.closed).toBe(true);
    const quotes = await rawExchange(server.port, 'SET a "unterminated\r\n', 1000);
    expect(quotes.text).toBe('-ERR Protocol error: unbalanced quotes in request\r\n');
    expect(await other.ping()).toBe('PONG');
  });

  it('HELLO 3 switches to RESP3 (a map), HELLO 2 back (a flat array); HELLO 4 gets NOPROTO (more in resp3.test.ts)', async () => {
    const { text } = await rawExchange(server.port, 'HELLO 3\r\nHELLO 2\r\nHELLO 4\r\n');
    expect(text).toMatch(/^%7\r\n[\s\S]*\*14\r\n[\s\S]*-NOPROTO unsupported protocol version\r\n$/);
  });

  it('QUIT answers OK and closes', async () => {
    const res = await rawExchange(server.port, 'QUIT\r\n', 1000);
    expect(res).toEqual({ text: '+OK\r\n', closed: true });
  });
});

describe('local commands', () => {
  it('MODULE LIST shows LLM ver 1', async () => {
    const list = (await c().call('MODULE', 'LIST')) as unknown[][];
    expect(list).toContainEqual(['name', 'LLM', 'ver', 1, 'path', 'redis-llm-server', 'args', []]);
  });

  it('COMMAND COUNT, INFO and DOCS merge LLM.* entries with the backend', async () => {
    const r = c();
    const direct = client(redis.port);
    clients.push(direct);
    const base = (await direct.call('COMMAND', 'COUNT')) as number;
    expect(await r.call('COMMAND', 'COUNT')).toBe(base + LLM_COMMANDS.length);
    const info = (await r.call('COMMAND', 'INFO', 'get', 'llm.add', 'nosuch')) as unknown[];
    expect((info[0] as unknown[])[0]).toBe('get');
    expect((info[1] as unknown[]).slice(0, 2)).toEqual(['llm.add', -1]);
    expect(info[2]).toBeNull();
    const docs = (await r.call('COMMAND', 'DOCS', 'llm.knn')) as unknown[];
    expect(docs[0]).toBe('llm.knn');
    const fields = docs[1] as unknown[];
    expect(fields[fields.indexOf('summary') + 1]).toMatch(/nearest/);
    const all = (await r.call('COMMAND')) as unknown[][];
    expect(all.length).toBe(base + LLM_COMMANDS.length);
    expect(all.map((e) => e[0])).toContain('llm.run');
  });

  it('INFO has an # LLM section; INFO llm alone works', async () => {
    const r = c();
    const full = (await r.info()) as string;
    expect(full).toContain('# Server');
    expect(full).toContain('# LLM');
    const llm = (await r.info('llm')) as string;
    expect(llm.startsWith('# LLM')).toBe(true);
    expect(llm).not.toContain('# Server');
    const server = (await r.info('server')) as string;
    expect(server).not.toContain('# LLM');
  });

  it('redis-cli shows syntax hints from COMMAND DOCS', async () => {
    const out = await run(['-p', String(server.port), 'COMMAND', 'DOCS', 'LLM.ADD']);
    expect(out).toContain('--EMBEDDING');
  });
});

describe('maxclients', () => {
  it('refuses clients beyond the limit with the Redis error', async () => {
    const small = await startServer({ redis: redis.url, maxclients: 2 });
    try {
      const a = client(small.port);
      const b = client(small.port);
      await a.ping();
      await b.ping();
      const third = await rawExchange(small.port, 'PING\r\n', 1000);
      expect(third.text).toBe('-ERR max number of clients reached\r\n');
      a.disconnect();
      b.disconnect();
    } finally {
      await small.stop();
    }
  });
});

describe('argument conventions', () => {
  it('options are case-insensitive, any order; a lone -- ends them', async () => {
    const r = c();
    await r.call('LLM.CREATE-VECTOR-STORE', 'argstore', '--params', '{"dim":2}');
    expect(await r.call('LLM.ADD', 'argstore', '--embedding', '1,2', '--id', '5', '--', '--ID')).toBe(5);
    expect(await r.call('LLM.GET', 'argstore', '5')).toEqual(['--ID', '1,2']);
    await expect(r.call('LLM.ADD', 'argstore', '--ID')).rejects.toThrow('syntax error');
    await expect(r.call('LLM.ADD', 'argstore', '--EMBEDDING', '1,2', 'a', 'b')).rejects.toThrow("wrong number of arguments for 'LLM.ADD' command");
    await r.del('argstore');
  });
});

describe('LLM objects are keys: expiry and DBSIZE', () => {
  it('EXPIRE / PEXPIRE / EXPIREAT with NX, XX, GT, LT; TTL, PTTL, EXPIRETIME, PERSIST; the object is gone when it expires', async () => {
    const r = c();
    await r.call('LLM.CREATE-VECTOR-STORE', 'exp-s', '--PARAMS', '{"dim":2}');
    expect(await r.ttl('exp-s')).toBe(-1);
    expect(await r.call('EXPIRE', 'exp-s', '100', 'XX')).toBe(0);
    expect(await r.call('EXPIRE', 'exp-s', '100', 'GT')).toBe(0); // no expiry is an infinite one
    expect(await r.call('EXPIRE', 'exp-s', '100', 'NX')).toBe(1);
    expect(await r.call('EXPIRE', 'exp-s', '50', 'NX')).toBe(0);
    expect(await r.call('EXPIRE', 'exp-s', '200', 'LT')).toBe(0);
    expect(await r.call('EXPIRE', 'exp-s', '200', 'GT')).toBe(1);
    expect(await r.ttl('exp-s')).toBe(200);
    expect(await r.pttl('exp-s')).toBeGreaterThan(199_000);
    const at = Math.floor(Date.now() / 1000) + 500;
    expect(await r.call('EXPIREAT', 'exp-s', String(at))).toBe(1);
    expect(await r.call('EXPIRETIME', 'exp-s')).toBe(at);
    expect(await r.call('PEXPIRETIME', 'exp-s')).toBe(at * 1000);
    expect(await r.persist('exp-s')).toBe(1);
    expect(await r.persist('exp-s')).toBe(0);
    expect(await r.ttl('exp-s')).toBe(-1);
    await expect(r.call('EXPIRE', 'exp-s', 'soon')).rejects.toThrow('ERR value is not an integer or out of range');
    await expect(r.call('EXPIRE', 'exp-s', '10', 'NX', 'XX')).rejects.toThrow(/not compatible/);
    // Ordinary keys are Redis's own.
    await r.set('exp-k', 'v');
    expect(await r.expire('exp-k', 100)).toBe(1);
    expect(await r.ttl('exp-k')).toBe(100);
    expect(await r.ttl('exp-none')).toBe(-2);
    // Expiry: gone for every reader at once, and removed.
    await r.call('LLM.ADD', 'exp-s', '--EMBEDDING', '1,1', 'x');
    expect(await r.pexpire('exp-s', 150)).toBe(1);
    expect(await r.type('exp-s')).not.toBe('none');
    await new Promise((res) => setTimeout(res, 300));
    expect(await r.type('exp-s')).toBe('none');
    expect(await r.exists('exp-s')).toBe(0);
    await expect(r.call('LLM.SIZE', 'exp-s')).resolves.toBe(0);
    expect(await r.ttl('exp-s')).toBe(-2);
    // A time in the past removes it at once.
    await r.call('LLM.CREATE-VECTOR-STORE', 'exp-s2', '--PARAMS', '{"dim":2}');
    expect(await r.call('EXPIREAT', 'exp-s2', '1')).toBe(1);
    expect(await r.exists('exp-s2')).toBe(0);
  });

  it('an expiry is durable and seen by another instance; PERSIST there too', async () => {
    const r = c();
    await r.call('LLM.CREATE-VECTOR-STORE', 'exp-shared', '--PARAMS', '{"dim":2}');
    expect(await r.expire('exp-shared', 1000)).toBe(1);
    const second = await startServer({ redis: redis.url });
    await second.loadingDone;
    const r2 = client(second.port);
    try {
      const ttl = await r2.ttl('exp-shared');
      expect(ttl).toBeGreaterThan(990);
      expect(await r2.persist('exp-shared')).toBe(1);
      let seen = 0;
      for (let i = 0; i < 100; i++) {
        seen = await r.ttl('exp-shared');
        if (seen === -1) break;
        await new Promise((res) => setTimeout(res, 20));
      }
      expect(seen).toBe(-1);
    } finally {
      r2.disconnect();
      await second.stop();
    }
  });

  it('DBSIZE counts LLM objects and not the server\'s own storage keys', async () => {
    const r = c();
    await r.select(7);
    await r.flushdb();
    await r.set('a', '1');
    await r.call('LLM.CREATE-VECTOR-STORE', 'db7-store', '--PARAMS', '{"dim":2}');
    expect(await r.dbsize()).toBe(2);
    await r.select(0);
    // The storage db holds the catalog and logs (__llm__: keys): KEYS hides them, DBSIZE does not count them.
    const keys = await r.keys('*');
    expect(keys.some((k) => k.startsWith('__llm__:'))).toBe(false);
    expect(await r.dbsize()).toBe(keys.length);
    const direct = client(redis.port);
    expect(await direct.dbsize()).toBeGreaterThan(keys.length);
    direct.disconnect();
  });
});

describe('LLM objects are keys: DUMP, RESTORE and COPY', () => {
  it('DUMP then RESTORE gives the same store (items, vectors, texts, attributes, KNN); BUSYKEY, REPLACE, TTL, ABSTTL', async () => {
    const r = c();
    await r.call('LLM.CREATE-VECTOR-STORE', 'dr-src', '--PARAMS', '{"dim":3,"space":"cosine"}');
    for (let i = 1; i <= 30; i++) {
      await r.call('LLM.ADD', 'dr-src', '--ID', String(i), '--EMBEDDING', `${i},${(i * 7) % 5},${(i * 3) % 11}`, '--ATTRS', JSON.stringify({ n: i, even: i % 2 === 0 }), `text ${i} ✓`);
    }
    await r.call('LLM.ADD', 'dr-src', '--ID', '18446744073709551615', '--EMBEDDING', '1,1,1', 'huge id');
    const payload = (await r.callBuffer('DUMP', 'dr-src')) as Buffer;
    expect(await r.call('RESTORE', 'dr-copy', '0', payload)).toBe('OK');
    expect(await r.type('dr-copy')).toBe(await r.type('dr-src'));
    expect(await r.call('LLM.SIZE', 'dr-copy')).toBe(31);
    for (const id of ['1', '17', '30', '18446744073709551615']) {
      expect(await r.call('LLM.GET', 'dr-copy', '--WITHATTRS', id)).toEqual(await r.call('LLM.GET', 'dr-src', '--WITHATTRS', id));
    }
    const q = ['--K', '5', '--EMBEDDING', '3,1,2'];
    expect(await r.call('LLM.KNN', 'dr-copy', ...q)).toEqual(await r.call('LLM.KNN', 'dr-src', ...q));
    await expect(r.call('RESTORE', 'dr-copy', '0', payload)).rejects.toThrow('BUSYKEY Target key name already exists.');
    await r.set('dr-plain', 'x');
    await expect(r.call('RESTORE', 'dr-plain', '0', payload)).rejects.toThrow(/BUSYKEY/);
    expect(await r.call('RESTORE', 'dr-plain', '5000', payload, 'REPLACE')).toBe('OK');
    expect(await r.call('LLM.SIZE', 'dr-plain')).toBe(31);
    expect(await r.pttl('dr-plain')).toBeGreaterThan(4000);
    const at = Date.now() + 60_000;
    expect(await r.call('RESTORE', 'dr-abs', String(at), payload, 'ABSTTL')).toBe('OK');
    expect(await r.call('PEXPIRETIME', 'dr-abs')).toBe(at);
    const bad = Buffer.from(payload);
    bad[bad.length - 20] ^= 0xff;
    await expect(r.call('RESTORE', 'dr-bad', '0', bad)).rejects.toThrow('ERR DUMP payload version or checksum are wrong');
    expect(await r.exists('dr-bad')).toBe(0);
    // A second instance (and a restart) sees the restored items: they went through the store's log.
    const second = await startServer({ redis: redis.url });
    await second.loadingDone;
    const r2 = client(second.port);
    try {
      expect(await r2.call('LLM.SIZE', 'dr-copy')).toBe(31);
    } finally {
      r2.disconnect();
      await second.stop();
    }
  });

  it('an LLM\'s payload never holds its API key in the clear; RESTORE gives the same definition. Redis\'s own DUMP/RESTORE untouched', async () => {
    const r = c();
    const key = 'sk-dumptest-0123456789abcdef';
    await r.call('LLM.CREATE-LLM', 'dr-llm', '--PARAMS', JSON.stringify({ api_key: key, base_url: 'http://127.0.0.1:9/v1' }));
    await r.call('LLM.CREATE-APP', 'dr-app', '--LLM', 'dr-llm', '--PROMPT', 'Hi {{name}}');
    const p = (await r.callBuffer('DUMP', 'dr-llm')) as Buffer;
    expect(p.toString('latin1')).not.toContain(key);
    expect(await r.call('RESTORE', 'dr-llm2', '0', p)).toBe('OK');
    const info = async (k: string) => {
      const f = (await r.call('LLM.INFO', k)) as string[];
      return f[f.indexOf('config') + 1];
    };
    expect(await info('dr-llm2')).toBe(await info('dr-llm'));
    expect(await r.call('RESTORE', 'dr-app2', '0', await r.callBuffer('DUMP', 'dr-app'))).toBe('OK');
    expect(await info('dr-app2')).toBe(await info('dr-app'));
    await r.set('dr-str', 'value');
    const redisPayload = await r.callBuffer('DUMP', 'dr-str');
    expect(await r.call('RESTORE', 'dr-str2', '0', redisPayload)).toBe('OK');
    expect(await r.get('dr-str2')).toBe('value');
    await expect(r.call('RESTORE', 'dr-llm', '0', redisPayload)).rejects.toThrow(/BUSYKEY/);
    expect(await r.call('RESTORE', 'dr-llm', '0', redisPayload, 'REPLACE')).toBe('OK');
    expect(await r.get('dr-llm')).toBe('value');
  });

  it('COPY copies an LLM object with its TTL; 0 over an existing key unless REPLACE', async () => {
    const r = c();
    await r.call('LLM.CREATE-VECTOR-STORE', 'cp-src', '--PARAMS', '{"dim":2}');
    await r.call('LLM.ADD', 'cp-src', '--EMBEDDING', '1,2', 'one');
    await r.expire('cp-src', 1000);
    expect(await r.copy('cp-src', 'cp-dst')).toBe(1);
    expect(await r.call('LLM.SIZE', 'cp-dst')).toBe(1);
    expect(await r.ttl('cp-dst')).toBeGreaterThan(990);
    expect(await r.copy('cp-src', 'cp-dst')).toBe(0);
    await r.call('LLM.ADD', 'cp-src', '--EMBEDDING', '3,4', 'two');
    expect(await r.copy('cp-src', 'cp-dst', 'REPLACE')).toBe(1);
    expect(await r.call('LLM.SIZE', 'cp-dst')).toBe(2);
    // Copies are independent.
    await r.call('LLM.ADD', 'cp-dst', '--EMBEDDING', '5,6', 'three');
    expect(await r.call('LLM.SIZE', 'cp-src')).toBe(2);
  });
});

describe('replication through the server', () => {
  it('redis-cli --rdb gets the backing Redis\'s RDB; after SYNC the replication stream carries later writes, unframed', async () => {
    const direct = client(redis.port);
    await direct.config('SET', 'repl-diskless-sync-delay', '0'); // no 5 s wait for more replicas
    direct.disconnect();
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/rls-rdb-'));
    await run(['-p', String(server.port), 'SET', 'rdb-k', 'v']);
    await run(['-p', String(server.port), '--rdb', `${dir}/dump.rdb`]);
    const rdb = await import('node:fs/promises').then((fs) => fs.readFile(`${dir}/dump.rdb`));
    expect(rdb.subarray(0, 5).toString()).toBe('REDIS');
    expect(rdb.includes(Buffer.from('rdb-k'))).toBe(true);
    const sock = net.connect(server.port, '127.0.0.1');
    let got = Buffer.alloc(0);
    sock.on('data', (d) => (got = Buffer.concat([got, d])));
    sock.write('SYNC\r\n');
    for (let i = 0; i < 500 && !got.includes(Buffer.from('REDIS')); i++) await new Promise((r) => setTimeout(r, 10));
    await c().set('rdb-after-sync', 'streamed');
    for (let i = 0; i < 200 && !got.includes(Buffer.from('rdb-after-sync')); i++) await new Promise((r) => setTimeout(r, 10));
    sock.destroy();
    expect(got.includes(Buffer.from('$14\r\nrdb-after-sync\r\n$8\r\nstreamed\r\n'))).toBe(true);
  });
});
