/**
 * Redis Cluster as the backing store: a real local 3-master cluster (created with
 * `redis-cli --cluster create`). The server presents itself as one node and routes by slot.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, startRedisCluster, type RedisServerHandle } from '../harness/redis-server.js';
import { client, expectSameExchanges, startServer } from '../harness/server.js';
import { encodeRequest } from '../src/protocol/request-parser.js';
import type { LlmServer } from '../src/server/server.js';
import { keySlot, commandKeys, slotOfKeys } from '../src/proxy/slots.js';
import { parseRedisUrl, describeAddress } from '../src/proxy/backend.js';
import { startFakeOpenAI } from '../harness/fake-openai.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const B = (s: string) => Buffer.from(s);

describe('hash slots', () => {
  it('known CRC16 slots and hash tags', () => {
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('bar')).toBe(5061);
    expect(keySlot('hello')).toBe(866);
    expect(keySlot('123456789')).toBe(0x31c3 & 16383); // the CRC16/XMODEM check value
    expect(keySlot('{foo}bar')).toBe(12182);
    expect(keySlot('x{foo}y{bar}')).toBe(12182);
    expect(keySlot('{}foo')).not.toBe(keySlot('foo')); // empty tag: the whole key
    expect(keySlot('foo{')).toBe(keySlot(B('foo{')));
    expect(keySlot('é')).toBe(keySlot(B('é')));
  });

  it('keys of movable-key commands', () => {
    const a = (...s: string[]) => s.map(B);
    expect(commandKeys('eval', a('eval', 's', '2', 'k1', 'k2', 'arg'), undefined).map(String)).toEqual(['k1', 'k2']);
    expect(commandKeys('evalsha', a('evalsha', 'x', '0', 'arg'), undefined)).toEqual([]);
    expect(commandKeys('xread', a('xread', 'COUNT', '1', 'STREAMS', 's1', 's2', '0', '0'), undefined).map(String)).toEqual(['s1', 's2']);
    expect(commandKeys('zunionstore', a('zunionstore', 'd', '2', 'a', 'b', 'WEIGHTS', '1', '2'), undefined).map(String)).toEqual(['d', 'a', 'b']);
    expect(commandKeys('mset', a('mset', 'a', '1', 'b', '2'), { first: 1, last: -1, step: 2 }).map(String)).toEqual(['a', 'b']);
    expect(commandKeys('blpop', a('blpop', 'a', 'b', '0'), { first: 1, last: -2, step: 1 }).map(String)).toEqual(['a', 'b']);
    expect(slotOfKeys(a('{t}a', '{t}b'))).toBe(keySlot('t'));
    expect(slotOfKeys(a('a', 'b'))).toBe(-2);
    expect(slotOfKeys([])).toBe(-1);
  });

  it('parses cluster URLs', () => {
    const a = parseRedisUrl('redis+cluster://u:p%40ss@h1:7000,h2:7001,[::1]:7002');
    expect(a.cluster).toEqual([{ host: 'h1', port: 7000 }, { host: 'h2', port: 7001 }, { host: '::1', port: 7002 }]);
    expect([a.username, a.password, a.db, a.tls]).toEqual(['u', 'p@ss', 0, false]);
    expect(parseRedisUrl('rediss+cluster://h1').cluster).toEqual([{ host: 'h1', port: 6379 }]);
    expect(parseRedisUrl('redis://h1:1,h2:2').cluster).toHaveLength(2);
    expect(parseRedisUrl('redis://h1:1/3').cluster).toBeUndefined();
    expect(() => parseRedisUrl('redis+cluster://h1:1/2')).toThrow(/only db 0/);
    expect(describeAddress(a)).toBe('redis+cluster://h1:7000,h2:7001,[::1]:7002');
  });
});

describe('a 3-master Redis Cluster behind the server', () => {
  const servers: RedisServerHandle[] = [];
  let nodes: Redis[] = [];
  let ids: string[] = [];
  let server: LlmServer;
  let url: string;
  const clients: Redis[] = [];
  const c = () => {
    const r = client(server.port);
    clients.push(r);
    return r;
  };
  /** Index of the node serving a slot. */
  const owner = async (slot: number) => {
    const slots = (await nodes[0]!.cluster('SLOTS')) as Array<[number, number, [string, number, string]]>;
    const r = slots.find(([s, e]) => slot >= s && slot <= e)!;
    return servers.findIndex((x) => x.port === Number(r[2][1]));
  };

  beforeAll(async () => {
    servers.push(...(await startRedisCluster(3)));
    nodes = servers.map((x) => new Redis(x.url));
    ids = await Promise.all(nodes.map((n) => n.cluster('MYID') as Promise<string>));
    url = `redis+cluster://${servers.map((x) => `127.0.0.1:${x.port}`).join(',')}`;
    server = await startServer({ redis: url });
    await server.loadingDone;
  }, 60_000);

  afterAll(async () => {
    const dbg = (m: string) => process.env.CLUSTER_TEST_DEBUG && console.log(m);
    for (const r of clients) r.disconnect();
    dbg('stopping server');
    await server?.stop();
    dbg('server stopped');
    for (const n of nodes) n.disconnect();
    for (const x of servers) await x.stop();
    dbg('nodes stopped');
  });

  it('an HTTP request line closes the connection silently, and protocol errors carry the bytes received, as a node does', async () => {
    await expectSameExchanges(server.port, servers[0]!.port, [
      ['POST', 'PING\r\nPOST / HTTP/1.1\r\nHost: x\r\n\r\n'],
      ['Host:', 'Host: evil.example\r\nPING\r\n'],
      ["expected '$' with a byte >= 0x80", Buffer.from('PING\r\n*1\r\n\xc9\r\n', 'latin1')],
      ['invalid multibulk length', '*x\r\n'],
    ]);
  });

  it('slots computed here match CLUSTER KEYSLOT of a real node', async () => {
    for (let i = 0; i < 200; i++) {
      const k = i % 3 === 0 ? `{${randomBytes(3).toString('hex')}}x${i}` : randomBytes(1 + (i % 20));
      expect(keySlot(k)).toBe(Number(await nodes[0]!.call('CLUSTER', 'KEYSLOT', k)));
    }
  });

  it('SET/GET across many keys land on all three nodes; pipelines keep order', async () => {
    const r = c();
    const p = r.pipeline();
    for (let i = 0; i < 300; i++) p.set(`key:${i}`, `v${i}`);
    for (let i = 0; i < 300; i++) p.get(`key:${i}`);
    const res = (await p.exec())!;
    expect(res.slice(300).map(([e, v]) => (e ? String(e) : v))).toEqual(Array.from({ length: 300 }, (_, i) => `v${i}`));
    const sizes = await Promise.all(nodes.map((n) => n.dbsize()));
    expect(sizes.every((s) => s > 50)).toBe(true);
    // fan-out over the masters
    expect(await r.dbsize()).toBe(sizes.reduce((a, b) => a + b, 0));
    expect((await r.keys('key:*')).sort()).toEqual(Array.from({ length: 300 }, (_, i) => `key:${i}`).sort());
    const seen = new Set<string>();
    let cursor = '0';
    do {
      const [next, page] = await r.scan(cursor, 'MATCH', 'key:*', 'COUNT', 50);
      for (const k of page) seen.add(k);
      cursor = next;
    } while (cursor !== '0');
    expect(seen.size).toBe(300);
  });

  it('multi-key commands: same slot works, cross-slot is CROSSSLOT; SELECT; EVAL; XREAD', async () => {
    const r = c();
    expect(await r.mset('{u1}a', '1', '{u1}b', '2')).toBe('OK');
    expect(await r.mget('{u1}a', '{u1}b', '{u1}c')).toEqual(['1', '2', null]);
    await expect(r.mset('a1', '1', 'b1', '2')).rejects.toThrow("CROSSSLOT Keys in request don't hash to the same slot");
    await expect(r.del('{u1}a', 'zz')).rejects.toThrow(/CROSSSLOT/);
    expect(await r.select(0)).toBe('OK');
    await expect(r.select(1)).rejects.toThrow('ERR SELECT is not allowed in cluster mode');
    expect(await r.eval("return redis.call('GET', KEYS[1]) .. ARGV[1]", 1, '{u1}a', '!')).toBe('1!');
    await expect(r.eval('return 1', 2, 'a1', 'b1')).rejects.toThrow(/CROSSSLOT/);
    await r.xadd('{s}1', '*', 'f', 'v');
    await r.xadd('{s}2', '*', 'g', 'w');
    const xr = (await r.xread('STREAMS', '{s}1', '{s}2', '0', '0')) as Array<[string, unknown]>;
    expect(xr.map((x) => x[0])).toEqual(['{s}1', '{s}2']);
    expect(await r.ping()).toBe('PONG');
  });

  it('MULTI/EXEC on one slot; another slot inside is refused and EXEC aborts', async () => {
    const r = c();
    const res = await r.multi().set('{tx}a', '1').incr('{tx}n').get('{tx}a').exec();
    expect(res!.map(([e, v]) => (e ? String(e) : v))).toEqual(['OK', 1, '1']);
    // raw, step by step, as an interactive client does
    expect(await r.call('MULTI')).toBe('OK');
    expect(await r.call('PING')).toBe('QUEUED');
    expect(await r.call('SET', '{tx}b', '2')).toBe('QUEUED');
    await expect(r.call('SET', 'elsewhere-' + randomBytes(4).toString('hex'), '3')).rejects.toThrow(/CROSSSLOT/);
    await expect(r.call('EXEC')).rejects.toThrow(/EXECABORT/);
    expect(await r.get('{tx}b')).toBeNull();
    expect(await r.call('MULTI')).toBe('OK');
    expect(await r.call('DISCARD')).toBe('OK');
    await expect(r.call('EXEC')).rejects.toThrow(/EXEC without MULTI/);
  });

  it('BLPOP is released by another client; later replies wait for it', async () => {
    const a = c();
    const b = c();
    const waiting = a.blpop('queue-x', 5);
    const after = a.get('key:1');
    await sleep(100);
    await b.rpush('queue-x', 'job');
    expect(await waiting).toEqual(['queue-x', 'job']);
    expect(await after).toBe('v1');
  });

  it('pub/sub: PUBLISH reaches a subscriber through the server', async () => {
    const sub = c();
    const got = new Promise<string>((resolve) => sub.on('message', (_ch, msg) => resolve(msg)));
    await sub.subscribe('news');
    await c().publish('news', 'hello');
    expect(await got).toBe('hello');
  });

  it('sharded pub/sub: SSUBSCRIBE on the channel\'s node, SPUBLISH routed by slot', async () => {
    const sub = c();
    const got = new Promise<string>((resolve) => sub.on('smessage', (_ch: string, msg: string) => resolve(msg)));
    await sub.ssubscribe('shard-news');
    expect(Number(await c().call('SPUBLISH', 'shard-news', 'hi'))).toBe(1);
    expect(await got).toBe('hi');
  });

  it('a slot moved by the test: ASK while migrating, MOVED after, resent transparently', async () => {
    const r = c();
    const key = 'mover';
    await r.set(key, 'before');
    await r.set('{mover}other', 'x');
    const slot = keySlot(key);
    const from = await owner(slot);
    const to = (from + 1) % 3;
    await nodes[to]!.cluster('SETSLOT', slot, 'IMPORTING', ids[from]!);
    await nodes[from]!.cluster('SETSLOT', slot, 'MIGRATING', ids[to]!);
    await nodes[from]!.migrate('127.0.0.1', servers[to]!.port, key, 0, 5000);
    // the key is gone from its old node, which answers ASK: the server follows it
    expect(await r.get(key)).toBe('before');
    expect(await r.get('{mover}other')).toBe('x');
    await nodes[from]!.migrate('127.0.0.1', servers[to]!.port, '{mover}other', 0, 5000);
    for (const n of nodes) await n.cluster('SETSLOT', slot, 'NODE', ids[to]!);
    expect(await owner(slot)).toBe(to);
    // the server still maps the slot to the old node: MOVED, map refreshed, resent
    expect(await r.get(key)).toBe('before');
    expect(await r.set(key, 'after')).toBe('OK');
    expect(await nodes[to]!.get(key)).toBe('after');
    expect(await c().get(key)).toBe('after');
    expect(server.backend!.slotNodes[slot]).toBe(`127.0.0.1:${servers[to]!.port}`);
  });

  it('caches, rate limits and LLM.RUN --STREAM use the cluster', async () => {
    const fake = await startFakeOpenAI({ dim: 8 });
    try {
      const r = c();
      const chats = () => fake.requests.filter((q) => q.path.includes('chat')).length;
      await r.call('LLM.CREATE-LLM', 'cgpt', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url }));
      await r.call('LLM.CREATE-APP', 'capp', '--LLM', 'cgpt', '--CACHE', '{"exact":true,"ttl":60}');
      const first = await r.call('LLM.RUN', 'capp', 'hello cluster');
      expect(await r.call('LLM.RUN', 'capp', 'hello cluster')).toEqual(first);
      expect(chats()).toBe(1);
      await r.call('LLM.CREATE-APP', 'crl', '--LLM', 'cgpt', '--RATELIMIT', '{"requests":1,"window":60}');
      await r.call('LLM.RUN', 'crl', 'a');
      await expect(r.call('LLM.RUN', 'crl', 'b')).rejects.toThrow('rate limit exceeded');
      fake.setBehavior({ reply: () => 'one two three four', chunkDelayMs: 2 });
      await r.call('LLM.RUN', 'capp', '--STREAM', 'cl-out', 'streamed please');
      const entries = (await r.xrange('cl-out', '-', '+')) as Array<[string, string[]]>;
      expect(entries.length).toBeGreaterThan(1);
      // on its slot's node only (KEYS: a node answers for its own keys, no redirection)
      const owners = await Promise.all(nodes.map((n) => n.keys('cl-out')));
      expect(owners.filter((x) => x.length === 1)).toHaveLength(1);
      expect(owners[await owner(keySlot('cl-out'))]).toEqual(['cl-out']);
    } finally {
      await fake.close();
    }
  });

  it("SLOWLOG GET does not show the server's own traffic (cut to the count asked for); inside MULTI it is refused", async () => {
    for (const n of nodes) {
      await n.config('SET', 'slowlog-log-slower-than', '0');
      await n.config('SET', 'slowlog-max-len', '100000'); // the instance's own follow polls are logged too
      await n.slowlog('RESET');
    }
    try {
      const r = c();
      await r.call('PING', 'mine');
      // stores whose storage lands on every node (a random id each: 20 miss one node with p < 0.001)
      for (let s = 0; s < 20; s++) {
        await r.call('LLM.CREATE-VECTOR-STORE', `slowc${s}`, '--PARAMS', '{"dim":2}');
        await r.call('LLM.ADD', `slowc${s}`, '--EMBEDDING', '1,2', 'x');
      }
      // the client's home node (keyless commands go there) logged the server's own commands too
      const logs = await Promise.all(nodes.map((n) => n.call('SLOWLOG', 'GET', '-1')));
      const home = nodes[logs.findIndex((l) => JSON.stringify(l).includes('"PING","mine"'))]!;
      const direct = JSON.stringify(await home.call('SLOWLOG', 'GET', '-1'));
      expect(direct).toMatch(/redis-llm-server|__llm__:/);
      const seen = (await r.call('SLOWLOG', 'GET', '-1')) as unknown[][];
      const text = JSON.stringify(seen);
      expect(text).not.toContain('redis-llm-server');
      expect(text).not.toContain('__llm__:');
      expect(seen.some((e) => JSON.stringify(e[3]) === '["PING","mine"]')).toBe(true);
      expect(await r.call('SLOWLOG', 'GET', '1')).toHaveLength(1);
      const tx = await r.multi().slowlog('GET', 1).exec().catch((e: Error) => e.message);
      expect(String(tx)).toMatch(/EXECABORT/);
    } finally {
      for (const n of nodes) {
        await n.config('SET', 'slowlog-log-slower-than', '10000');
        await n.config('SET', 'slowlog-max-len', '128');
      }
    }
  });

  it('a second instance on the cluster follows the first, and the first the second: objects, ADDs, REMs within a moment', async () => {
    const B = await startServer({ redis: url });
    try {
      await B.loadingDone;
      const a = c();
      const b = client(B.port);
      clients.push(b);
      const until = async (check: () => Promise<boolean>, ms = 5000) => {
        const end = Date.now() + ms;
        while (!(await check())) {
          if (Date.now() > end) return false;
          await sleep(25);
        }
        return true;
      };
      for (let s = 0; s < 5; s++) await a.call('LLM.CREATE-VECTOR-STORE', `fol${s}`, '--PARAMS', '{"dim":2}');
      expect(await until(async () => (await b.type('fol4')) === 'LLMVEC-SW')).toBe(true);
      const t0 = Date.now();
      for (let s = 0; s < 5; s++) for (let i = 1; i <= 20; i++) await a.call('LLM.ADD', `fol${s}`, '--ID', String(i), '--EMBEDDING', `${s},${i}`, `item ${s}/${i}`);
      expect(await until(async () => (await Promise.all([0, 1, 2, 3, 4].map((s) => b.call('LLM.SIZE', `fol${s}`)))).every((n) => n === 20))).toBe(true);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(await b.call('LLM.GET', 'fol3', '7')).toEqual(['item 3/7', '3,7']);
      await a.call('LLM.REM', 'fol2', '5');
      expect(await until(async () => (await b.call('LLM.SIZE', 'fol2')) === 19)).toBe(true);
      // and the other way round
      await b.call('LLM.ADD', 'fol1', '--ID', '99', '--EMBEDDING', '9,9', 'from B');
      expect(await until(async () => (await a.call('LLM.GET', 'fol1', '99')) !== null)).toBe(true);
      expect(await a.call('LLM.GET', 'fol1', '99')).toEqual(['from B', '9,9']);
      const info = await b.call('INFO', 'llm');
      expect(String(info)).toMatch(/llm_following:1/);
    } finally {
      await B.stop();
    }
  });

  it('RESP3 on a cluster: HELLO 3, maps and nulls from the nodes, pub/sub pushes, LLM.* maps, CLIENT REPLY; CLIENT TRACKING refused', async () => {
    const sock = net.connect(server.port, '127.0.0.1');
    let buf = '';
    sock.on('data', (d) => (buf += d.toString('latin1')));
    const cmd = (...a: string[]) => `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')}`;
    const until = async (re: RegExp) => {
      for (let i = 0; i < 300 && !re.test(buf); i++) await new Promise((r) => setTimeout(r, 10));
      expect(buf).toMatch(re);
    };
    try {
      const r = c();
      await r.hset('{r3c}h', 'a', '1');
      await r.call('LLM.CREATE-VECTOR-STORE', 'r3c-vs', '--PARAMS', '{"dim":2}');
      sock.write(
        cmd('HELLO', '3') + cmd('HGETALL', '{r3c}h') + cmd('GET', '{r3c}missing') + cmd('LLM.SIZE', 'r3c-vs') + cmd('LLM.GET', 'r3c-vs', '1') +
          cmd('CLIENT', 'REPLY', 'OFF') + cmd('SET', '{r3c}k', 'v') + cmd('CLIENT', 'REPLY', 'ON') + cmd('GET', '{r3c}k') + cmd('CLIENT', 'TRACKING', 'on') +
          cmd('SUBSCRIBE', 'r3c-ch'),
      );
      await until(/>3\r\n\$9\r\nsubscribe\r\n/);
      expect(buf).toMatch(/^%7\r\n/);
      const afterHello = buf.slice(buf.indexOf('%1\r\n'));
      const want = '%1\r\n$1\r\na\r\n$1\r\n1\r\n_\r\n:0\r\n_\r\n+OK\r\n$1\r\nv\r\n-ERR CLIENT TRACKING is not supported with a Redis Cluster backend';
      expect(afterHello.slice(0, want.length)).toBe(want);
      await r.publish('r3c-ch', 'hi');
      await until(/>3\r\n\$7\r\nmessage\r\n\$6\r\nr3c-ch\r\n\$2\r\nhi\r\n/);
      // RESP3: commands still run while subscribed.
      sock.write(cmd('LLM.INFO', 'r3c-vs'));
      await until(/%\d+\r\n\$4\r\ntype\r\n/);
    } finally {
      sock.destroy();
    }
  });

  it('LLM objects are durable on the cluster; an object\'s storage keys live on one node', async () => {
    const r = c();
    const added: string[] = [];
    for (let s = 0; s < 6; s++) {
      await r.call('LLM.CREATE-VECTOR-STORE', `cstore${s}`, '--PARAMS', '{"dim":3}');
      for (let i = 0; i < 5; i++) added.push(String(await r.call('LLM.ADD', `cstore${s}`, '--EMBEDDING', `${s},${i},1`, `item ${s}/${i}`)));
    }
    expect(await r.type('cstore0')).not.toBe('none');
    await server.stop();
    server = await startServer({ redis: url });
    await server.loadingDone;
    const r2 = c();
    for (let s = 0; s < 6; s++) expect(Number(await r2.call('LLM.SIZE', `cstore${s}`))).toBe(5);
    expect(await r2.call('LLM.GET', 'cstore2', added[2 * 5 + 3]!)).toEqual(['item 2/3', '2,3,1']);
    // storage keys grouped by hash tag: each tag on exactly one node; objects on more than one node
    const tagNodes = new Map<string, Set<number>>();
    for (const [i, n] of nodes.entries()) {
      for (const k of await n.keys('__llm__:{*')) {
        const tag = k.slice(k.indexOf('{'), k.indexOf('}') + 1);
        if (!tagNodes.has(tag)) tagNodes.set(tag, new Set());
        tagNodes.get(tag)!.add(i);
      }
    }
    expect(tagNodes.size).toBeGreaterThan(6);
    for (const s of tagNodes.values()) expect(s.size).toBe(1);
    expect(new Set([...tagNodes.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);
    // clients never see storage keys
    expect((await r2.keys('*')).some((k) => k.startsWith('__llm__:'))).toBe(false);
    // FLUSHALL fans out to every master (and drops the LLM objects)
    expect(await r2.flushall()).toBe('OK');
    expect(await r2.keys('*')).toEqual([]);
    for (const n of nodes) expect(await n.keys('key:*')).toEqual([]);
    expect(await r2.type('cstore0')).toBe('none');
  }, 30_000);
});

describe('a password-protected Redis Cluster', () => {
  const servers: RedisServerHandle[] = [];
  let server: LlmServer;
  const clients: Redis[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      servers.push(
        await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--requirepass', 's3cret', '--masterauth', 's3cret'] }),
      );
    }
    await run('redis-cli', ['-a', 's3cret', '--no-auth-warning', '--cluster', 'create', ...servers.map((x) => `127.0.0.1:${x.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    const t0 = Date.now();
    for (const x of servers) {
      const n = new Redis({ port: x.port, password: 's3cret' });
      for (let i = 0; ; i++) {
        const info = await n.cluster('INFO');
        if (/cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info)) break;
        if (i > 200) throw new Error('cluster did not become ready');
        await sleep(50);
      }
      n.disconnect();
    }
    if (process.env.CLUSTER_TEST_DEBUG) console.log('cluster ready', Date.now() - t0);
    server = await startServer({ redis: `redis+cluster://:s3cret@${servers.map((x) => `127.0.0.1:${x.port}`).join(',')}` });
    if (process.env.CLUSTER_TEST_DEBUG) console.log('server started', Date.now() - t0);
    await server.loadingDone;
    if (process.env.CLUSTER_TEST_DEBUG) console.log('objects loaded', Date.now() - t0);
  }, 60_000);

  afterAll(async () => {
    for (const r of clients) r.disconnect();
    await server?.stop();
    for (const x of servers) await x.stop();
  });

  it('clients AUTH once; the credentials reach every node they use; LLM objects work', async () => {
    const anon = client(server.port);
    anon.on('error', () => {});
    clients.push(anon);
    await expect(anon.get('a')).rejects.toThrow(/NOAUTH/);
    const r = client(server.port, { password: 's3cret' });
    clients.push(r);
    for (let i = 0; i < 50; i++) await r.set(`p${i}`, String(i));
    expect(await r.mget('{t}x', '{t}y')).toEqual([null, null]);
    expect(await r.get('p42')).toBe('42');
    expect((await r.keys('p*')).length).toBe(50);
    await r.call('LLM.CREATE-VECTOR-STORE', 'pstore', '--PARAMS', '{"dim":2}');
    const id = await r.call('LLM.ADD', 'pstore', '--EMBEDDING', '1,2', 'x');
    expect(await r.call('LLM.GET', 'pstore', String(id))).toEqual(['x', '1,2']);
  });

  it("before AUTH, Redis's request size limits, as a node applies them (keyless requests, compared with the first node)", async () => {
    const req = (...args: string[]) => encodeRequest(args).toString('latin1');
    const big = 'x'.repeat(20_000);
    const many = Array.from({ length: 12 }, (_, i) => `a${i}`);
    await expectSameExchanges(server.port, servers[0]!.port, [
      ['more than 10 arguments', '*20\r\n'],
      ['a bulk over 16384 bytes', '*2\r\n$4\r\nECHO\r\n$20000\r\n'],
      ['requests before the refused one are answered first', 'PING\r\n*11\r\n'],
      ['inline requests have no such limit', `ECHO ${many.join(' ')}\r\nECHO ${big}\r\nQUIT\r\n`],
      ['AUTH, then big requests in the same write', 'AUTH s3cret\r\n' + req('ECHO', big) + req('ECHO', ...many) + 'QUIT\r\n'],
      ['HELLO 2 AUTH, then a big request', req('HELLO', '2', 'AUTH', 'default', 's3cret') + req('ECHO', big) + 'QUIT\r\n'],
      ['a wrong AUTH keeps the limits', 'AUTH nope\r\n' + req('ECHO', big)],
      ['RESET makes the client unauthenticated again', 'AUTH s3cret\r\nRESET\r\n*20\r\n'],
      ['SUBSCRIBE before AUTH, then AUTH', 'SUBSCRIBE ch\r\nAUTH s3cret\r\nPING\r\nQUIT\r\n'],
    ], (t) => t.replace(/(\$2\r\nid\r\n:)\d+/, '$1<id>'));
  });
});
