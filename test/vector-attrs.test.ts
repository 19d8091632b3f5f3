/**
 * Attributes and filtered KNN through the server: filtered results equal brute force over the
 * matching subset at high and very low selectivity; attributes are durable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import type { LlmServer } from '../src/server/server.js';

let redis: RedisServerHandle;
let server: LlmServer;
let r: Redis;
let fake: FakeOpenAI;

const N = 4000;
const DIM = 16;
const fp32 = (v: number[]) => Buffer.from(new Float32Array(v).buffer);

/** Deterministic clustered vectors. */
function vectors(): number[][] {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
  const centers = Array.from({ length: 10 }, () => Array.from({ length: DIM }, () => rnd() * 10));
  return Array.from({ length: N }, (_, i) => centers[i % 10].map((c) => c + rnd()));
}
const data = vectors();
const attrsOf = (i: number) => ({ grp: i % 1000, even: i % 2 === 0, tags: i % 3 === 0 ? ['three'] : [] });

function bruteForce(q: number[], k: number, keep: (i: number) => boolean): number[] {
  return data
    .map((v, i) => ({ i, d: v.reduce((s, x, j) => s + (x - q[j]) ** 2, 0) }))
    .filter(({ i }) => keep(i))
    .sort((a, b) => a.d - b.d)
    .slice(0, k)
    .map(({ i }) => i + 1);
}

async function boot() {
  server = await startServer({ redis: redis.url, snapshotOptions: { snapshotChanges: 3000, snapshotIntervalMs: 3_600_000 } });
  await server.loadingDone;
  r = client(server.port);
}

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI({ dim: 64 });
  await boot();
  await r.call('LLM.CREATE-VECTOR-STORE', 'vs', '--PARAMS', JSON.stringify({ m: 16, ef_construction: 100 }));
  const p = r.pipeline();
  data.forEach((v, i) => p.call('LLM.ADD', 'vs', '--ID', String(i + 1), '--ATTRS', JSON.stringify(attrsOf(i)), '--EMBEDDING-FP32', fp32(v), `item ${i}`));
  const res = await p.exec();
  expect(res!.every(([e]) => e === null)).toBe(true);
});

afterAll(async () => {
  r.disconnect();
  await server.stop();
  await fake.close();
  await redis.stop();
});

describe('attributes', () => {
  it('GET keeps its two-element reply; --WITHATTRS adds the attributes', async () => {
    const plain = (await r.call('LLM.GET', 'vs', '4')) as unknown[];
    expect(plain).toHaveLength(2);
    const withAttrs = (await r.call('LLM.GET', 'vs', '--WITHATTRS', '4')) as unknown[];
    expect(JSON.parse(withAttrs[2] as string)).toEqual(attrsOf(3));
  });

  it('LLM.SETATTRS replaces them; bad attributes change nothing', async () => {
    expect(await r.call('LLM.SETATTRS', 'vs', '5', '{"grp":-1,"label":"x"}')).toBe(1);
    expect(JSON.parse(((await r.call('LLM.GET', 'vs', '--WITHATTRS', '5')) as string[])[2])).toEqual({ grp: -1, label: 'x' });
    expect(await r.call('LLM.SETATTRS', 'vs', '999999', '{"a":1}')).toBe(0);
    await expect(r.call('LLM.SETATTRS', 'vs', '5', '{"a":{"b":1}}')).rejects.toThrow("attribute 'a'");
    await expect(r.call('LLM.ADD', 'vs', '--ATTRS', '[1]', '--EMBEDDING-FP32', fp32(data[0]), 'x')).rejects.toThrow('--ATTRS must be a flat JSON object');
    expect(await r.call('LLM.SIZE', 'vs')).toBe(N);
    expect(JSON.parse(((await r.call('LLM.GET', 'vs', '--WITHATTRS', '5')) as string[])[2])).toEqual({ grp: -1, label: 'x' });
    await r.call('LLM.SETATTRS', 'vs', '5', JSON.stringify(attrsOf(4)));
  });

  it('a bad filter is a clear error', async () => {
    await expect(r.call('LLM.KNN', 'vs', '--FILTER', 'grp = 1', '--EMBEDDING-FP32', fp32(data[0]))).rejects.toThrow("invalid filter: '=' at 4: use '==' to compare");
  });
});

describe('filtered KNN equals brute force over the matching subset', () => {
  const queries = [0, 17, 333, 1234, 3999].map((i) => data[i].map((x) => x + 0.05));

  it.each([
    ['even', (i: number) => i % 2 === 0, 'hnsw'],
    ['grp < 50', (i: number) => i % 1000 < 50, null],
    ['grp == 7', (i: number) => i % 1000 === 7, 'exact'],
  ] as const)('%s', async (expr, keep, expectedPath) => {
    let recallHits = 0;
    let total = 0;
    for (const q of queries) {
      const [rows, info] = (await r.call('LLM.KNN', 'vs', '--K', '10', '--EF', '200', '--FILTER', expr, '--EXPLAIN', '--EMBEDDING-FP32', fp32(q))) as [
        Array<[number, string]>,
        unknown[],
      ];
      const want = bruteForce(q, 10, keep);
      const got = rows.map((x) => x[0]);
      expect(got.length).toBe(want.length);
      for (const id of got) expect(keep(id - 1)).toBe(true);
      recallHits += got.filter((id) => want.includes(id)).length;
      total += want.length;
      if (expectedPath) expect(info.slice(0, 2)).toEqual(['path', expectedPath]);
    }
    expect(recallHits / total).toBeGreaterThanOrEqual(0.95);
  });

  it('membership and missing fields', async () => {
    const rows = (await r.call('LLM.KNN', 'vs', '--K', '5', '--FILTER', '"three" in tags and not even', '--EMBEDDING-FP32', fp32(data[3]))) as Array<[number]>;
    for (const [id] of rows) expect((id - 1) % 3 === 0 && (id - 1) % 2 === 1).toBe(true);
    expect(await r.call('LLM.KNN', 'vs', '--FILTER', 'nosuchfield == 1', '--EMBEDDING-FP32', fp32(data[3]))).toEqual([]);
  });
});

describe('search apps with filters', () => {
  it('a filter at create time and per RUN scope the context', async () => {
    await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url }));
    await r.call('LLM.CREATE-VECTOR-STORE', 'docs', '--LLM', 'gpt');
    await r.call('LLM.ADD', 'docs', '--ATTRS', '{"tenant":"acme"}', 'acme pricing is 10 dollars');
    await r.call('LLM.ADD', 'docs', '--ATTRS', '{"tenant":"globex"}', 'globex pricing is 20 dollars');
    await r.call('LLM.CREATE-SEARCH', 'qa-acme', '--LLM', 'gpt', '--VECTOR-STORE', 'docs', '--FILTER', 'tenant == "acme"');
    fake.reset();
    await r.call('LLM.RUN', 'qa-acme', 'what is the pricing');
    const prompt = (fake.requests.find((q) => q.path.includes('chat'))!.body as { messages: Array<{ content: string }> }).messages[0].content;
    expect(prompt).toContain('acme pricing');
    expect(prompt).not.toContain('globex');
    await r.call('LLM.CREATE-SEARCH', 'qa-all', '--LLM', 'gpt', '--VECTOR-STORE', 'docs');
    const [, ids] = (await r.call('LLM.RUN', 'qa-all', '--WITHCONTEXT', '--FILTER', 'tenant == "globex"', 'what is the pricing')) as [string, number[]];
    expect(ids).toEqual([2]);
    await expect(r.call('LLM.CREATE-SEARCH', 'qa-bad', '--LLM', 'gpt', '--VECTOR-STORE', 'docs', '--FILTER', 'tenant ==')).rejects.toThrow('invalid filter');
    expect(await r.exists('qa-bad')).toBe(0);
  });
});

describe('durability', () => {
  it('attributes survive a restart (snapshot plus log tail)', async () => {
    // N adds passed the snapshot threshold; add a tail after it.
    await new Promise((res) => setTimeout(res, 1500));
    const info = (await r.call('LLM.INFO', 'vs')) as unknown[];
    expect(Number(info[info.indexOf('log_length') + 1])).toBeLessThan(N);
    await r.call('LLM.SETATTRS', 'vs', '10', '{"after":"snapshot"}');
    r.disconnect();
    await server.stop();
    await boot();
    expect(JSON.parse(((await r.call('LLM.GET', 'vs', '--WITHATTRS', '10')) as string[])[2])).toEqual({ after: 'snapshot' });
    expect(JSON.parse(((await r.call('LLM.GET', 'vs', '--WITHATTRS', '11')) as string[])[2])).toEqual(attrsOf(10));
    const rows = (await r.call('LLM.KNN', 'vs', '--K', '3', '--FILTER', 'grp == 7', '--EMBEDDING-FP32', fp32(data[7]))) as Array<[number]>;
    expect(rows.map((x) => x[0])).toEqual(bruteForce(data[7], 3, (i) => i % 1000 === 7));
  });
});
