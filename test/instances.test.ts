/**
 * Several server instances on one Redis follow each other's writes through the per-object logs
 * and the catalog event stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startChildServer, startServer, type ChildServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import type { LlmServer } from '../src/server/server.js';

let redis: RedisServerHandle;
let fake: FakeOpenAI;
const servers: LlmServer[] = [];
let a: Redis;
let b: Redis;
let c: Redis;
const conns: Redis[] = [];

const conn = (port: number) => {
  const r = client(port);
  conns.push(r);
  return r;
};

/** Polls until `check` passes, failing after `ms`. Resolves the time it took. */
async function eventually(check: () => Promise<void>, ms = 1000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try {
      await check();
      return Date.now() - t0;
    } catch (err) {
      if (Date.now() - t0 > ms) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const infoField = async (r: Redis, f: string) => {
  const m = new RegExp(`${f}:(.*)\\r`).exec((await r.info('llm')) as string);
  return m?.[1];
};

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI({ dim: 64 });
  for (let i = 0; i < 3; i++) {
    const s = await startServer({ redis: redis.url });
    await s.loadingDone;
    servers.push(s);
  }
  [a, b, c] = servers.map((s) => conn(s.port));
});

afterAll(async () => {
  for (const r of conns) r.disconnect();
  for (const s of servers) await s.stop();
  await fake.close();
  await redis.stop();
});

describe('followers', () => {
  it('a store created on A is a key on B and C; ADDs on A are visible on B within 1 s', async () => {
    await a.call('LLM.CREATE-VECTOR-STORE', 'f1', '--PARAMS', '{"dim":4}');
    await eventually(async () => expect(await b.type('f1')).toBe('LLMVEC-SW'));
    await eventually(async () => expect(await c.exists('f1')).toBe(1));
    const id = await a.call('LLM.ADD', 'f1', '--EMBEDDING', '1,2,3,4', 'hello');
    const took = await eventually(async () => expect(await b.call('LLM.GET', 'f1', String(id))).toEqual(['hello', '1,2,3,4']));
    expect(took).toBeLessThan(1000);
    await eventually(async () => expect(await c.call('LLM.KNN', 'f1', '--K', '1', '--EMBEDDING', '1,2,3,4')).toEqual([[id, '0']]));
  });

  it('concurrent writes from three instances get unique ids and converge to the same state', async () => {
    await a.call('LLM.CREATE-VECTOR-STORE', 'f2', '--PARAMS', '{"dim":2}');
    await eventually(async () => {
      expect(await b.exists('f2')).toBe(1);
      expect(await c.exists('f2')).toBe(1);
    });
    const clients = [a, b, c];
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 300; i++) {
      const r = clients[i % 3];
      if (i % 10 === 9) writes.push(r.call('LLM.ADD', 'f2', '--ID', '7', '--EMBEDDING', `${i},0`, `seven from ${i % 3}`));
      else writes.push(r.call('LLM.ADD', 'f2', '--EMBEDDING', `${i},1`, `item ${i}`));
    }
    const ids = (await Promise.all(writes)) as number[];
    const autos = ids.filter((_, i) => i % 10 !== 9);
    expect(new Set(autos).size).toBe(autos.length);
    // Every instance ends with the same items, including the same winner for id 7 (the log's order).
    await eventually(async () => {
      const sizes = await Promise.all(clients.map((r) => r.call('LLM.SIZE', 'f2')));
      expect(new Set(sizes).size).toBe(1);
      const sevens = await Promise.all(clients.map((r) => r.call('LLM.GET', 'f2', '7')));
      expect(sevens[1]).toEqual(sevens[0]);
      expect(sevens[2]).toEqual(sevens[0]);
    }, 3000);
    for (const id of autos.slice(0, 30)) {
      const got = await Promise.all(clients.map((r) => r.call('LLM.GET', 'f2', String(id))));
      expect(got[1]).toEqual(got[0]);
      expect(got[2]).toEqual(got[0]);
    }
  });

  it('an instance busy writing a store still takes in the writes of another to it, during and right after its own', async () => {
    await a.call('LLM.CREATE-VECTOR-STORE', 'f9', '--PARAMS', '{"dim":2}');
    await a.call('LLM.CREATE-VECTOR-STORE', 'f9-idle', '--PARAMS', '{"dim":2}'); // A's follower then has a log to block on
    await eventually(async () => expect(await b.exists('f9')).toBe(1));
    // While A writes, its follower leaves f9 to A's writes (each catches up on other writers first) ...
    const p = a.pipeline();
    for (let i = 1; i <= 300; i++) p.call('LLM.ADD', 'f9', '--ID', String(i), '--EMBEDDING', `${i},1`, `a${i}`);
    const burst = p.exec();
    await new Promise((r) => setTimeout(r, 5));
    await b.call('LLM.ADD', 'f9', '--ID', '10000', '--EMBEDDING', '5,5', 'from b, during');
    await burst;
    // ... and reads it again once A's writes settled.
    await b.call('LLM.ADD', 'f9', '--ID', '10001', '--EMBEDDING', '6,6', 'from b, after');
    await eventually(async () => {
      expect(await a.call('LLM.GET', 'f9', '10000')).toEqual(['from b, during', '5,5']);
      expect(await a.call('LLM.GET', 'f9', '10001')).toEqual(['from b, after', '6,6']);
    }, 700); // not the 2 s a blocked read of the other logs would take to come round
    expect(await a.call('LLM.SIZE', 'f9')).toBe(302);
    await eventually(async () => expect(await b.call('LLM.SIZE', 'f9')).toBe(302));
    expect(await b.call('LLM.GET', 'f9', '300')).toEqual(['a300', '300,1']);
  });

  it('REM and attributes propagate', async () => {
    const id = await a.call('LLM.ADD', 'f1', '--ATTRS', '{"t":"x"}', '--EMBEDDING', '0,0,0,1', 'to remove');
    await eventually(async () => expect(await b.call('LLM.KNN', 'f1', '--FILTER', 't == "x"', '--EMBEDDING', '0,0,0,1')).toHaveLength(1));
    await b.call('LLM.SETATTRS', 'f1', String(id), '{"t":"y"}');
    await eventually(async () => expect(await a.call('LLM.KNN', 'f1', '--FILTER', 't == "y"', '--EMBEDDING', '0,0,0,1')).toHaveLength(1));
    expect(await c.call('LLM.REM', 'f1', String(id))).toBe(1);
    await eventually(async () => expect(await a.call('LLM.GET', 'f1', String(id))).toBeNull());
  });

  it('creates, overwrites, renames and deletes of LLMs and apps propagate', async () => {
    await a.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url }));
    await a.call('LLM.CREATE-APP', 'greet', '--LLM', 'gpt', '--PROMPT', 'Hello {{who}}');
    await eventually(async () => expect(await b.call('LLM.RUN', 'greet', '--VARS', '{"who":"B"}')).toBe('echo: Hello B'));
    await c.call('LLM.CREATE-APP', 'greet', '--LLM', 'gpt', '--PROMPT', 'Bonjour {{who}}');
    await eventually(async () => expect(await a.call('LLM.RUN', 'greet', '--VARS', '{"who":"A"}')).toBe('echo: Bonjour A'));
    await b.rename('greet', 'greet2');
    await eventually(async () => {
      expect(await a.exists('greet')).toBe(0);
      expect(await c.type('greet2')).toBe('LLMAPP-SW');
    });
    await a.del('greet2');
    await eventually(async () => expect(await b.exists('greet2')).toBe(0));
  });

  it('chat memory written on one instance is there on another', async () => {
    await a.call('LLM.CREATE-CHAT', 'talk', '--LLM', 'gpt');
    await eventually(async () => expect(await b.exists('talk')).toBe(1));
    await a.call('LLM.RUN', 'talk', '--SESSION', 's', 'remember blue');
    await eventually(async () => expect(await b.call('LLM.HISTORY', 'talk', '--SESSION', 's')).toHaveLength(2));
    await b.call('LLM.RUN', 'talk', '--SESSION', 's', 'what color');
    const body = fake.requests.at(-1)!.body as { messages: Array<{ content: string }> };
    expect(JSON.stringify(body.messages)).toContain('remember blue');
    await eventually(async () => expect(await a.call('LLM.HISTORY', 'talk', '--SESSION', 's')).toHaveLength(4));
  });

  it('INFO llm shows an instance id and the follow lag', async () => {
    const ids = await Promise.all([a, b, c].map((r) => infoField(r, 'llm_instance_id')));
    expect(new Set(ids).size).toBe(3);
    expect(await infoField(b, 'llm_following')).toBe('1');
    expect(Number(await infoField(b, 'llm_follow_entries'))).toBeGreaterThan(0);
    expect(Number(await infoField(b, 'llm_follow_lag_p99_ms'))).toBeLessThan(1000);
  });

  it('a new instance starts from the latest snapshot plus the log tail', async () => {
    const d = await startServer({ redis: redis.url });
    servers.push(d);
    await d.loadingDone;
    const r = conn(d.port);
    expect(await r.call('LLM.SIZE', 'f2')).toBe(await a.call('LLM.SIZE', 'f2'));
    expect(await r.call('LLM.GET', 'f2', '7')).toEqual(await a.call('LLM.GET', 'f2', '7'));
  });
});

describe('read-only followers', () => {
  it('refuse writes to LLM objects, follow the others, still serve reads and ordinary commands', async () => {
    const ro = await startServer({ redis: redis.url, readOnly: true });
    servers.push(ro);
    await ro.loadingDone;
    const r = conn(ro.port);
    await expect(r.call('LLM.ADD', 'f1', '--EMBEDDING', '1,1,1,1', 'x')).rejects.toThrow(/^READONLY this instance is read-only/);
    await expect(r.call('LLM.CREATE-VECTOR-STORE', 'nope')).rejects.toThrow('READONLY');
    await expect(r.del('f1')).rejects.toThrow('READONLY');
    await expect(r.call('LLM.RUN', 'talk', 'hi')).rejects.toThrow('READONLY');
    expect(await r.exists('f1')).toBe(1);
    const id = await a.call('LLM.ADD', 'f1', '--EMBEDDING', '9,9,9,9', 'from a writer');
    await eventually(async () => expect(await r.call('LLM.GET', 'f1', String(id))).toEqual(['from a writer', '9,9,9,9']));
    expect(await r.set('plain', '1')).toBe('OK');
    expect(await infoField(r, 'llm_read_only')).toBe('1');
  });
});

describe('an instance killed during writes', () => {
  let A: ChildServer;
  let B: ChildServer;
  beforeAll(async () => {
    A = await startChildServer(['--redis', redis.url]);
    B = await startChildServer(['--redis', redis.url]);
  });
  afterAll(async () => {
    await A.stop('SIGKILL');
    await B.stop();
  });

  it('the others are unaffected and no acknowledged write is lost', async () => {
    const ra = conn(A.port);
    const rb = conn(B.port);
    await eventually(async () => expect(await ra.call('LLM.SIZE', 'x')).toBe(0), 10_000);
    await eventually(async () => expect(await rb.call('LLM.SIZE', 'x')).toBe(0), 10_000);
    await ra.call('LLM.CREATE-VECTOR-STORE', 'k9', '--PARAMS', '{"dim":2}');
    await eventually(async () => expect(await rb.exists('k9')).toBe(1));
    const acked: number[] = [];
    ra.on('error', () => {});
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          acked.push((await ra.call('LLM.ADD', 'k9', '--EMBEDDING', `${i},1`, `w${i}`)) as number);
        } catch {
          return;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    A.proc.kill('SIGKILL');
    stop = true;
    await writer;
    expect(acked.length).toBeGreaterThan(10);
    // B keeps serving, and has every write A acknowledged.
    expect(await rb.ping()).toBe('PONG');
    await eventually(async () => {
      for (const id of acked) expect(await rb.call('LLM.GET', 'k9', String(id))).not.toBeNull();
    }, 3000);
    expect(await rb.call('LLM.ADD', 'k9', '--EMBEDDING', '0,0', 'after the kill')).toBeGreaterThan(Math.max(...acked));
  });
});

describe('snapshots by another instance trim the log', () => {
  it('a follower that was behind reloads from the snapshot instead of missing the trimmed entries', async () => {
    const A = await startServer({ redis: redis.url, snapshotOptions: { snapshotChanges: 50, snapshotIntervalMs: 3_600_000 } });
    const B = await startServer({ redis: redis.url });
    servers.push(A, B);
    await A.loadingDone;
    await B.loadingDone;
    const ra = conn(A.port);
    const rb = conn(B.port);
    await ra.call('LLM.CREATE-VECTOR-STORE', 'gap', '--PARAMS', '{"dim":2}');
    await eventually(async () => expect(await rb.exists('gap')).toBe(1));
    B.follower!.stop(); // B falls behind
    const p = ra.pipeline();
    for (let i = 0; i < 200; i++) p.call('LLM.ADD', 'gap', '--EMBEDDING', `${i},1`, `g${i}`);
    await p.exec();
    // A's snapshot (≥ 50 changes, 1 s timer) trims the log past everything B has applied.
    await eventually(async () => {
      const info = (await ra.call('LLM.INFO', 'gap')) as unknown[];
      expect(Number(info[info.indexOf('log_length') + 1])).toBeLessThan(200);
    }, 5000);
    B.follower!.start();
    await eventually(async () => expect(await rb.call('LLM.SIZE', 'gap')).toBe(200), 5000);
    expect(await rb.call('LLM.GET', 'gap', '1')).toEqual(['g0', '0,1']);
  });

  it('a writer that was behind catches up through the snapshot before applying its write', async () => {
    const A = await startServer({ redis: redis.url, snapshotOptions: { snapshotChanges: 50, snapshotIntervalMs: 3_600_000 } });
    servers.push(A);
    await A.loadingDone;
    const ra = conn(A.port);
    await ra.call('LLM.CREATE-VECTOR-STORE', 'gap2', '--PARAMS', '{"dim":2}');
    // B does not follow: it knows the store from its start and learns the rest only when it writes.
    const B = await startServer({ redis: redis.url, follow: false });
    servers.push(B);
    await B.loadingDone;
    const rb = conn(B.port);
    expect(await rb.call('LLM.SIZE', 'gap2')).toBe(0);
    const p = ra.pipeline();
    for (let i = 0; i < 120; i++) p.call('LLM.ADD', 'gap2', '--EMBEDDING', `${i},1`, `h${i}`);
    await p.exec();
    await eventually(async () => {
      const info = (await ra.call('LLM.INFO', 'gap2')) as unknown[];
      expect(Number(info[info.indexOf('log_length') + 1])).toBeLessThan(120);
    }, 5000);
    const id = await rb.call('LLM.ADD', 'gap2', '--EMBEDDING', '5,5', 'from B');
    expect(id).toBe(121);
    expect(await rb.call('LLM.SIZE', 'gap2')).toBe(121);
  });
});
