/**
 * Vector stores end to end through the server (issue 4): the original's documented examples,
 * KNN against brute force in every space, the binary vector form, text through the store's LLM,
 * id semantics, growth, strict parsing, the original's error texts, and LLM objects as keys
 * (TYPE/EXISTS/DEL/UNLINK/RENAME/KEYS/SCAN/FLUSH*, WRONGTYPE, reserved storage keys).
 * A real redis-server behind an in-process server; ioredis as the client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import { localEmbed } from '../src/llm/local.js';
import type { LlmServer } from '../src/server/server.js';
import { bruteForce, clustered, distance, recall, type Clustered, type SpaceName } from '../harness/vector-data.js';
import { errOf } from '../harness/replies.js';

let redis: RedisServerHandle;
let server: LlmServer;
let openai: FakeOpenAI;
const clients: Redis[] = [];
let r: Redis;

const c = (opts: Record<string, unknown> = {}): Redis => {
  const x = client(server.port, opts);
  clients.push(x);
  return x;
};

beforeAll(async () => {
  redis = await startRedis();
  openai = await startFakeOpenAI({ dim: 32 });
  server = await startServer({ redis: redis.url });
  await server.loadingDone;
  r = c();
});

afterAll(async () => {
  for (const x of clients) x.disconnect();
  await server?.stop();
  await redis?.stop();
  await openai?.close();
});

// ---- helpers ---------------------------------------------------------------------------------

type Arg = string | number | Buffer;
const call = (cmd: string, ...args: Arg[]): Promise<any> => r.call(cmd, ...args);
/** Little-endian float32 bytes. */
function fp32(v: ArrayLike<number>): Buffer {
  const b = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i]!, i * 4);
  return b;
}
/** CSV that reads back as exactly the same float32 values. */
const csv = (v: ArrayLike<number>): string => Array.from(v, (x) => String(Math.fround(x))).join(',');
const f32 = (v: ArrayLike<number>) => Float32Array.from(v);

/** Loads rows of `set` as ids idBase.. through pipelined ADDs (binary or CSV form). */
async function load(key: string, set: Clustered, form: 'fp32' | 'csv' = 'fp32', idBase = 1, conn = r): Promise<void> {
  const n = set.data.length / set.dim;
  for (let start = 0; start < n; start += 1000) {
    const p = conn.pipeline();
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      const v = set.row(i);
      if (form === 'fp32') p.call('LLM.ADD', key, '--ID', String(i + idBase), '--EMBEDDING-FP32', fp32(v), `item-${i + idBase}`);
      else p.call('LLM.ADD', key, '--ID', String(i + idBase), '--EMBEDDING', csv(v), `item-${i + idBase}`);
    }
    const res = (await p.exec())!;
    for (const [e, id] of res) {
      expect(e).toBeNull();
      expect(typeof id).toBe('number');
    }
  }
}

type Hit = { id: number; distance: number };
const hitsOf = (reply: Array<[number, string]>): Hit[] => reply.map(([id, d]) => ({ id, distance: Number(d) }));

/** SIZE and a few GETs: what must not change when a command fails. */
async function stateOf(key: string, ids: number[]): Promise<unknown> {
  return [await call('LLM.SIZE', key), ...(await Promise.all(ids.map((id) => call('LLM.GET', key, String(id)))))];
}
async function unchanged(key: string, ids: number[], f: () => Promise<void>): Promise<void> {
  const before = await stateOf(key, ids);
  await f();
  expect(await stateOf(key, ids)).toEqual(before);
}

const close = (a: number, b: number, rel = 1e-4) => Math.abs(a - b) <= rel * Math.max(1, Math.abs(b));

// ---- the original's documented examples -------------------------------------------------------

describe("the original's documented examples", () => {
  it('vector store without LLM support (README "Vector Store")', async () => {
    const s = 'store-without-llm-support';
    expect(await call('LLM.CREATE-VECTOR-STORE', s)).toBe(1);
    expect(await call('LLM.ADD', s, '--ID', '1', '--EMBEDDING', '1.1,2.2,3.3', 'some data')).toBe(1);
    expect(await call('LLM.ADD', s, '--ID', '2', '--EMBEDDING', '2.2,3.3,4.4', 'some other data')).toBe(2);
    expect(await call('LLM.SIZE', s)).toBe(2);
    // The exact text of the README: squared L2 of float32 values, printed as a double.
    expect(await call('LLM.KNN', s, '--K', '1', '--EMBEDDING', '1,2,3')).toEqual([[1, '0.14000000059604645']]);
    // The original printed "1.100000,2.200000,3.300000" (std::to_string, 6 decimals, which loses
    // small values); we print the shortest text that reads back as the same float32.
    expect(await call('LLM.GET', s, '1')).toEqual(['some data', '1.1,2.2,3.3']);
    expect(await call('LLM.REM', s, '1')).toBe(1);
    expect(await call('LLM.SIZE', s)).toBe(1);
  });

  it('LLM.ADD / GET / REM / SIZE examples of the command reference', async () => {
    expect(await call('LLM.CREATE-VECTOR-STORE', 'store')).toBe(1);
    expect(await call('LLM.ADD', 'store', '--ID', '1', '--EMBEDDING', '1,2,3', 'some data')).toBe(1);
    // "will fail, since the added embedding does not match the dimension of the store"
    expect(await errOf(call('LLM.ADD', 'store', '--ID', '2', '--EMBEDDING', '1,2', 'some other data'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
    expect(await call('LLM.ADD', 'store', '--ID', '2', '--EMBEDDING', '1,2,5', 'some other data')).toBe(2);
    expect(await call('LLM.GET', 'store', '1')).toEqual(['some data', '1,2,3']);
    expect(await call('LLM.SIZE', 'store')).toBe(2);
    expect(await call('LLM.REM', 'store', '1')).toBe(1);
    expect(await call('LLM.SIZE', 'store')).toBe(1);
    // command and option names are case-insensitive
    expect(await call('llm.add', 'store', '--id', '3', '--embedding', '0,0,0', 'lower')).toBe(3);
    expect(await call('Llm.Knn', 'store', '--k', '1', '--Embedding', '0,0,0')).toEqual([[3, '0']]);
  });

  it('vector store with LLM support: text is embedded by the store LLM', async () => {
    expect(await call('LLM.CREATE-LLM', 'model', '--TYPE', 'local', '--PARAMS', '{"dim":64}')).toBe(1);
    expect(await call('LLM.CREATE-VECTOR-STORE', 'llmstore', '--LLM', 'model')).toBe(1);
    expect(await call('LLM.ADD', 'llmstore', 'redis-llm is a Redis module that integrates LLM (Large Language Model) with Redis')).toBe(1);
    const hits = await call('LLM.KNN', 'llmstore', 'redis-llm is a Redis module');
    expect(hits).toHaveLength(1);
    expect(hits[0][0]).toBe(1);
    // the distance is the squared L2 of the two local embeddings
    const a = localEmbed('redis-llm is a Redis module that integrates LLM (Large Language Model) with Redis', 64);
    const b = localEmbed('redis-llm is a Redis module', 64);
    expect(close(Number(hits[0][1]), distance('l2', f32(a), f32(b)))).toBe(true);
    // --TIMEOUT (the original's option) is accepted on ADD and KNN
    expect(await call('LLM.ADD', 'llmstore', '--TIMEOUT', '2000', 'some other data')).toBe(2);
    expect((await call('LLM.KNN', 'llmstore', '--TIMEOUT', '2000', '--K', '2', 'other data'))[0][0]).toBe(2);
    // --LLM as JSON {"key": ...}
    expect(await call('LLM.CREATE-VECTOR-STORE', 'llmstore2', '--LLM', '{"key":"model","params":{}}')).toBe(1);
    expect(await call('LLM.ADD', 'llmstore2', 'hello world')).toBe(1);
  });

  it('create flags: --NX, --XX, overwrite, --TYPE hnsw', async () => {
    expect(await call('LLM.CREATE-VECTOR-STORE', 'cf', '--XX')).toBe(0);
    expect(await r.exists('cf')).toBe(0);
    expect(await call('LLM.CREATE-VECTOR-STORE', 'cf', '--NX', '--TYPE', 'HNSW')).toBe(1);
    await call('LLM.ADD', 'cf', '--EMBEDDING', '1,2', 'x');
    expect(await call('LLM.CREATE-VECTOR-STORE', 'cf', '--NX')).toBe(0);
    expect(await call('LLM.SIZE', 'cf')).toBe(1);
    expect(await call('LLM.CREATE-VECTOR-STORE', 'cf', '--XX', '--PARAMS', '{"max_elements": 20000}')).toBe(1);
    expect(await call('LLM.SIZE', 'cf')).toBe(0); // overwritten: a new, empty store
    expect(await call('LLM.CREATE-VECTOR-STORE', 'cf')).toBe(1);
    expect(await errOf(call('LLM.CREATE-VECTOR-STORE', 'cf', '--NX', '--XX'))).toBe('ERR syntax error');
  });
});

// ---- KNN against brute force ------------------------------------------------------------------

describe('KNN distances against brute force', () => {
  const set = clustered(600, 16, 12, 42);
  const queries = set.queries(25, 4242);

  for (const space of ['l2', 'cosine', 'ip'] as SpaceName[]) {
    it(`${space}: ids, distances and order as brute force (through the server)`, async () => {
      const key = `bf-${space}`;
      expect(await call('LLM.CREATE-VECTOR-STORE', key, '--PARAMS', JSON.stringify({ space }))).toBe(1);
      await load(key, set);
      expect(await call('LLM.SIZE', key)).toBe(600);
      for (const q of queries) {
        const truth = bruteForce(set, space, q, 10, undefined, 1);
        const reply = await call('LLM.KNN', key, '--K', '10', '--EF', '600', '--EMBEDDING-FP32', fp32(q));
        expect(reply).toHaveLength(10);
        for (const row of reply) {
          expect(row).toHaveLength(2);
          expect(typeof row[0]).toBe('number');
          expect(typeof row[1]).toBe('string');
        }
        const hits = hitsOf(reply);
        // nearest first
        for (let i = 1; i < hits.length; i++) expect(hits[i]!.distance).toBeGreaterThanOrEqual(hits[i - 1]!.distance);
        // each distance is that item's true distance in this space
        for (const h of hits) {
          const d = distance(space, set.row(h.id - 1), q);
          expect(close(h.distance, d), `${space} id ${h.id}: ${h.distance} vs ${d}`).toBe(true);
        }
        // and they are the true 10 nearest (ties within float32 error aside)
        expect(recall(hits, truth)).toBe(1);
        hits.forEach((h, i) => expect(close(h.distance, truth[i]!.distance)).toBe(true));
      }
      // k larger than the store: every item, still sorted
      const all = hitsOf(await call('LLM.KNN', key, '--K', '1000', '--EMBEDDING-FP32', fp32(queries[0]!)));
      expect(all).toHaveLength(600);
      expect(new Set(all.map((h) => h.id)).size).toBe(600);
      for (let i = 1; i < all.length; i++) expect(all[i]!.distance).toBeGreaterThanOrEqual(all[i - 1]!.distance);
      // default K is 10
      expect(await call('LLM.KNN', key, '--EMBEDDING-FP32', fp32(queries[1]!))).toHaveLength(10);
    });
  }

  it('cosine space: a zero vector is refused (no direction), on ADD and KNN', async () => {
    expect(await errOf(call('LLM.ADD', 'bf-cosine', '--EMBEDDING-FP32', fp32(new Float32Array(16)), 'zero'))).toMatch(/^ERR invalid embedding/);
    expect(await errOf(call('LLM.KNN', 'bf-cosine', '--EMBEDDING-FP32', fp32(new Float32Array(16))))).toMatch(/^ERR invalid embedding/);
    expect(await call('LLM.SIZE', 'bf-cosine')).toBe(600);
  });

  it('--WITHDATA replies [id, distance, data] triples', async () => {
    const q = queries[3]!;
    const plain = await call('LLM.KNN', 'bf-l2', '--K', '5', '--EMBEDDING-FP32', fp32(q));
    const triples = await call('LLM.KNN', 'bf-l2', '--K', '5', '--WITHDATA', '--EMBEDDING-FP32', fp32(q));
    expect(triples).toHaveLength(5);
    triples.forEach((t: [number, string, string], i: number) => {
      expect(t).toEqual([plain[i][0], plain[i][1], `item-${plain[i][0]}`]);
    });
  });

  it('CSV and --EMBEDDING-FP32 give the same results (ADD and KNN, all four combinations)', async () => {
    const small = clustered(300, 24, 6, 5);
    await call('LLM.CREATE-VECTOR-STORE', 'form-csv');
    await call('LLM.CREATE-VECTOR-STORE', 'form-bin');
    await load('form-csv', small, 'csv');
    await load('form-bin', small, 'fp32');
    for (const id of [1, 77, 300]) expect(await call('LLM.GET', 'form-csv', String(id))).toEqual(await call('LLM.GET', 'form-bin', String(id)));
    for (const q of small.queries(10, 9)) {
      const a = await call('LLM.KNN', 'form-csv', '--K', '7', '--EMBEDDING', csv(q));
      const b = await call('LLM.KNN', 'form-csv', '--K', '7', '--EMBEDDING-FP32', fp32(q));
      const c2 = await call('LLM.KNN', 'form-bin', '--K', '7', '--EMBEDDING', csv(q));
      const d = await call('LLM.KNN', 'form-bin', '--K', '7', '--EMBEDDING-FP32', fp32(q));
      expect(a).toHaveLength(7);
      expect(b).toEqual(a);
      expect(c2).toEqual(a);
      expect(d).toEqual(a);
    }
    // GET's text fed back to ADD gives the same vector
    const [, text] = await call('LLM.GET', 'form-bin', '5');
    await call('LLM.ADD', 'form-bin', '--ID', '5000', '--EMBEDDING', text, 'copy');
    expect((await call('LLM.GET', 'form-bin', '5000'))[1]).toBe(text);
    expect(await errOf(call('LLM.ADD', 'form-bin', '--EMBEDDING', '1', '--EMBEDDING-FP32', fp32([1]), 'both'))).toMatch(/^ERR .*either/);
  });

  it('--EF per query: a wider search finds at least as many true neighbours', async () => {
    const big = clustered(3000, 32, 30, 11);
    await call('LLM.CREATE-VECTOR-STORE', 'ef', '--PARAMS', '{"m": 4, "ef_construction": 20, "ef": 10}');
    await load('ef', big);
    const qs = big.queries(40, 12);
    let narrow = 0;
    let wide = 0;
    let dflt = 0;
    for (const q of qs) {
      const truth = bruteForce(big, 'l2', q, 10, undefined, 1);
      narrow += recall(hitsOf(await call('LLM.KNN', 'ef', '--K', '10', '--EF', '10', '--EMBEDDING-FP32', fp32(q))), truth);
      wide += recall(hitsOf(await call('LLM.KNN', 'ef', '--K', '10', '--EF', '3000', '--EMBEDDING-FP32', fp32(q))), truth);
      dflt += recall(hitsOf(await call('LLM.KNN', 'ef', '--K', '10', '--EMBEDDING-FP32', fp32(q))), truth);
    }
    expect(wide / qs.length).toBeGreaterThanOrEqual(0.99);
    expect(wide).toBeGreaterThan(narrow); // a sparse graph (m=4) and ef=10 miss neighbours
    expect(dflt).toBe(narrow); // the store's ef (10) is the default
    expect(await errOf(call('LLM.KNN', 'ef', '--EF', '0', '--EMBEDDING-FP32', fp32(qs[0]!)))).toMatch(/^ERR --EF/);
  });
});

// ---- text through the store's LLM --------------------------------------------------------------

describe("text ADD/KNN through the store's LLM", () => {
  const texts = [
    'Redis is an in-memory data store',
    'HNSW is a graph index for approximate nearest neighbours',
    'The cat sat on the mat',
    'Vector stores keep embeddings of texts',
    'Paris is the capital of France',
  ];

  it('local embedder: ids from 1, vectors are the embeddings, KNN as brute force', async () => {
    await call('LLM.CREATE-LLM', 'emb', '--TYPE', 'local', '--PARAMS', '{"dim":64}');
    await call('LLM.CREATE-VECTOR-STORE', 'texts', '--LLM', 'emb', '--PARAMS', '{"space":"cosine"}');
    for (let i = 0; i < texts.length; i++) expect(await call('LLM.ADD', 'texts', texts[i]!)).toBe(i + 1);
    const [data, vec] = await call('LLM.GET', 'texts', '2');
    expect(data).toBe(texts[1]);
    const want = f32(localEmbed(texts[1]!, 64));
    expect(f32(vec.split(',').map(Number))).toEqual(want);
    const q = 'which index finds nearest neighbours';
    const qv = localEmbed(q, 64);
    const truth = texts.map((t, i) => ({ id: i + 1, distance: distance('cosine', f32(localEmbed(t, 64)), qv) })).sort((a, b) => a.distance - b.distance);
    const hits = hitsOf(await call('LLM.KNN', 'texts', '--K', '3', q));
    expect(hits.map((h) => h.id)).toEqual(truth.slice(0, 3).map((h) => h.id));
    hits.forEach((h, i) => expect(close(h.distance, truth[i]!.distance)).toBe(true));
    const withData = await call('LLM.KNN', 'texts', '--K', '1', '--WITHDATA', q);
    expect(withData).toEqual([[2, expect.any(String), texts[1]]]);
    // a given vector still wins over the text
    expect((await call('LLM.KNN', 'texts', '--K', '1', '--EMBEDDING-FP32', fp32(localEmbed(texts[4]!, 64)), 'ignored text'))[0][0]).toBe(5);
  });

  it('fake OpenAI endpoint with base64 embeddings', async () => {
    openai.reset();
    const params = { api_key: 'sk-test', base_url: openai.url, embedding: { model: 'text-embedding-3-small', encoding_format: 'base64' } };
    expect(await call('LLM.CREATE-LLM', 'oai', '--TYPE', 'openai', '--PARAMS', JSON.stringify(params))).toBe(1);
    await call('LLM.CREATE-VECTOR-STORE', 'oaistore', '--LLM', 'oai');
    for (let i = 0; i < texts.length; i++) expect(await call('LLM.ADD', 'oaistore', texts[i]!)).toBe(i + 1);
    const req = openai.lastRequest('/embeddings')!;
    expect(req.body.encoding_format).toBe('base64');
    expect(req.body.model).toBe('text-embedding-3-small');
    const [, vec] = await call('LLM.GET', 'oaistore', '1');
    expect(f32(vec.split(',').map(Number))).toEqual(f32(localEmbed(texts[0]!, 32)));
    const q = 'capital of France';
    const truth = texts.map((t, i) => ({ id: i + 1, distance: distance('l2', f32(localEmbed(t, 32)), f32(localEmbed(q, 32))) })).sort((a, b) => a.distance - b.distance);
    const hits = hitsOf(await call('LLM.KNN', 'oaistore', '--K', '2', q));
    expect(hits.map((h) => h.id)).toEqual(truth.slice(0, 2).map((h) => h.id));
    hits.forEach((h, i) => expect(close(h.distance, truth[i]!.distance)).toBe(true));
    // the provider's failure is an error reply and adds nothing
    openai.enqueue({ type: 'status', status: 400 }, 1, '/embeddings');
    await unchanged('oaistore', [1, 6], async () => {
      expect(await errOf(call('LLM.ADD', 'oaistore', 'rejected by the provider'))).toMatch(/^ERR /);
    });
  });

  it('an explicit --ID with text is reserved before the embedding call: a faster auto ADD cannot take it', async () => {
    const params = { api_key: 'sk-test', base_url: openai.url, embedding: { model: 'm', encoding_format: 'base64' } };
    await call('LLM.CREATE-LLM', 'slow', '--TYPE', 'openai', '--PARAMS', JSON.stringify(params));
    await call('LLM.CREATE-VECTOR-STORE', 'race1', '--LLM', 'slow');
    openai.setBehavior({ responseDelayMs: 400 });
    try {
      const a = c();
      const before = openai.calls('/embeddings');
      const explicit = a.call('LLM.ADD', 'race1', '--ID', '1', 'explicit text, slow embedding');
      // Wait until the explicit ADD is in its embedding call (not a fixed sleep: CI may be slow).
      while (openai.calls('/embeddings') === before) await new Promise((res) => setTimeout(res, 5));
      const auto = await call('LLM.ADD', 'race1', '--EMBEDDING-FP32', fp32(localEmbed('fast', 32)), 'auto, given vector');
      expect(auto).toBe(2);
      expect(await explicit).toBe(1);
    } finally {
      openai.setBehavior({ responseDelayMs: 0 });
    }
    expect((await call('LLM.GET', 'race1', '1'))[0]).toBe('explicit text, slow embedding');
    expect((await call('LLM.GET', 'race1', '2'))[0]).toBe('auto, given vector');
  });

  it('an explicit --ID advances the auto ids of ADDs already in flight (waiting for their embedding)', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'race2', '--LLM', 'slow');
    openai.setBehavior({ responseDelayMs: 300 });
    try {
      const a = c();
      const before = openai.calls('/embeddings');
      const auto = a.call('LLM.ADD', 'race2', 'auto text, slow embedding');
      // Wait until the auto ADD is in its embedding call (not a fixed sleep: CI may be slow).
      while (openai.calls('/embeddings') === before) await new Promise((res) => setTimeout(res, 5));
      expect(await call('LLM.ADD', 'race2', '--ID', '1', '--EMBEDDING-FP32', fp32(localEmbed('x', 32)), 'explicit 1')).toBe(1);
      expect(await auto).toBe(2);
    } finally {
      openai.setBehavior({ responseDelayMs: 0 });
    }
    expect((await call('LLM.GET', 'race2', '1'))[0]).toBe('explicit 1');
    expect((await call('LLM.GET', 'race2', '2'))[0]).toBe('auto text, slow embedding');
  });
});

// ---- ids ---------------------------------------------------------------------------------------

describe('id semantics', () => {
  const v = (x: number) => `${x},${x + 1},${x + 2}`;

  it('auto ids start at 1; explicit ids advance them; auto never overwrites an explicit id', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'ids');
    expect(await call('LLM.ADD', 'ids', '--EMBEDDING', v(1), 'a')).toBe(1);
    expect(await call('LLM.ADD', 'ids', '--EMBEDDING', v(2), 'b')).toBe(2);
    expect(await call('LLM.ADD', 'ids', '--ID', '10', '--EMBEDDING', v(10), 'ten')).toBe(10);
    expect(await call('LLM.ADD', 'ids', '--EMBEDDING', v(11), 'c')).toBe(11);
    expect(await call('LLM.ADD', 'ids', '--ID', '5', '--EMBEDDING', v(5), 'five')).toBe(5);
    expect(await call('LLM.ADD', 'ids', '--EMBEDDING', v(12), 'd')).toBe(12);
    expect((await call('LLM.GET', 'ids', '10'))[0]).toBe('ten');
    expect((await call('LLM.GET', 'ids', '5'))[0]).toBe('five');
    expect(await call('LLM.SIZE', 'ids')).toBe(6);
  });

  it('explicit ids sent while pipelined auto ADDs are in flight on other connections are never overwritten', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'ids-race');
    const autos = [c(), c(), c()];
    const explicitConn = c();
    const N = 400;
    const sendAutos = autos.map(async (conn, k) => {
      const p = conn.pipeline();
      for (let i = 0; i < N; i++) p.call('LLM.ADD', 'ids-race', '--EMBEDDING-FP32', fp32([k, i, 1]), `auto-${k}-${i}`);
      return (await p.exec())!.map(([e, id]) => {
        expect(e).toBeNull();
        return id as number;
      });
    });
    // Explicit ids just ahead of the auto counter, chosen while the autos run.
    const explicit = new Map<number, string>();
    const sendExplicit = (async () => {
      for (let round = 0; round < 20; round++) {
        const probe = (await explicitConn.call('LLM.ADD', 'ids-race', '--EMBEDDING-FP32', fp32([9, round, 0]), `probe-${round}`)) as number;
        const id = probe + 50; // an id the autos have most likely not reached yet when it is sent
        await explicitConn.call('LLM.ADD', 'ids-race', '--ID', String(id), '--EMBEDDING-FP32', fp32([9, round, 1]), `explicit-${id}`);
        explicit.set(id, `explicit-${id}`);
        await new Promise((res) => setTimeout(res, 2));
      }
    })();
    const autoIds = (await Promise.all(sendAutos)).flat();
    await sendExplicit;
    expect(new Set(autoIds).size).toBe(autoIds.length);
    // An auto ADD may have taken probe+3 before the explicit one arrived (then the explicit ADD is
    // an update of that item, which is fine); but no auto id handed out after it may equal it.
    for (const [id, data] of explicit) expect((await call('LLM.GET', 'ids-race', String(id)))[0]).toBe(data);
    const overwrittenAutos = autoIds.filter((id) => explicit.has(id));
    for (const id of autoIds) {
      if (explicit.has(id)) continue;
      expect((await call('LLM.GET', 'ids-race', String(id)))[0]).toMatch(/^auto-/);
    }
    expect(overwrittenAutos.length).toBeLessThan(explicit.size / 2); // mostly the explicit id was ahead
  });

  it('same id again updates (vector and text), SIZE unchanged', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'upd');
    await call('LLM.ADD', 'upd', '--ID', '7', '--EMBEDDING', '0,0,0', 'old');
    await call('LLM.ADD', 'upd', '--ID', '8', '--EMBEDDING', '5,5,5', 'other');
    expect(await call('LLM.ADD', 'upd', '--ID', '7', '--EMBEDDING', '10,10,10', 'new')).toBe(7);
    expect(await call('LLM.SIZE', 'upd')).toBe(2);
    expect(await call('LLM.GET', 'upd', '7')).toEqual(['new', '10,10,10']);
    expect(await call('LLM.KNN', 'upd', '--K', '1', '--EMBEDDING', '10,10,10')).toEqual([[7, '0']]);
    expect(await call('LLM.KNN', 'upd', '--K', '1', '--EMBEDDING', '0,0,0')).toEqual([[8, '75']]);
  });

  it('0 and 4294967295 are valid; auto ids are exhausted after 4294967295', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'edge');
    expect(await call('LLM.ADD', 'edge', '--ID', '0', '--EMBEDDING', '1,1', 'zero')).toBe(0);
    expect(await call('LLM.GET', 'edge', '0')).toEqual(['zero', '1,1']);
    expect(await call('LLM.ADD', 'edge', '--EMBEDDING', '2,2', 'auto')).toBe(1);
    expect(await call('LLM.ADD', 'edge', '--ID', '4294967295', '--EMBEDDING', '3,3', 'max')).toBe(4294967295);
    expect(await call('LLM.GET', 'edge', '4294967295')).toEqual(['max', '3,3']);
    expect(await call('LLM.KNN', 'edge', '--K', '1', '--EMBEDDING', '3,3')).toEqual([[4294967295, '0']]);
    await unchanged('edge', [0, 1, 4294967295], async () => {
      expect(await errOf(call('LLM.ADD', 'edge', '--EMBEDDING', '4,4', 'no id left'))).toMatch(/^ERR no more auto ids/);
    });
    expect(await call('LLM.REM', 'edge', '0')).toBe(1);
    expect(await call('LLM.REM', 'edge', '4294967295')).toBe(1);
    expect(await call('LLM.SIZE', 'edge')).toBe(1);
  });

  it('ids outside uint64 or not integers are `invalid id` (ADD, GET, REM) and change nothing', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'badid');
    await call('LLM.ADD', 'badid', '--ID', '1', '--EMBEDDING', '1,2', 'one');
    for (const bad of ['18446744073709551616', '-1', '1.5', '12abc', '', ' 1', '1e3', '+1', '0x10', '18446744073709551617']) {
      await unchanged('badid', [1, 12], async () => {
        expect(await errOf(call('LLM.ADD', 'badid', '--ID', bad, '--EMBEDDING', '3,4', 'x')), `ADD --ID '${bad}'`).toBe('ERR invalid id');
        expect(await errOf(call('LLM.GET', 'badid', bad)), `GET '${bad}'`).toBe('ERR invalid id');
        expect(await errOf(call('LLM.REM', 'badid', bad)), `REM '${bad}'`).toBe('ERR invalid id');
      });
    }
    // a later auto id is unaffected by the refused ones
    expect(await call('LLM.ADD', 'badid', '--EMBEDDING', '5,6', 'two')).toBe(2);
  });
});

// ---- REM, growth, dimensions, parsing ----------------------------------------------------------

describe('pipelined LLM.ADDs on one connection', () => {
  it('run concurrently but answer and apply in request order, mixed with other commands and errors; the result survives a restart', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'pipe', '--PARAMS', '{"dim":3}');
    const p = r.pipeline();
    // what one-at-a-time execution answers: a model of the store (explicit ids advance auto ids)
    const want: unknown[] = [];
    const items = new Map<number, [string, string]>();
    let next = 1;
    const add = (id: number | undefined, data: string, csv: string) => {
      const at = id ?? next;
      next = Math.max(next, at + 1);
      items.set(at, [data, csv]);
      want.push(at);
    };
    for (let i = 0; i < 300; i++) {
      const base = 100_000 + i - (i % 10);
      switch (i % 10) {
        case 0: // an explicit id, replaced by the next request (the later one wins)
          p.call('LLM.ADD', 'pipe', '--ID', String(base), '--EMBEDDING', `${i},0,0`, `first-${i}`);
          add(base, `first-${i}`, `${i},0,0`);
          break;
        case 1:
          p.call('LLM.ADD', 'pipe', '--ID', String(base), '--EMBEDDING-FP32', fp32([i, 1, 0]), `second-${base}`);
          add(base, `second-${base}`, `${i},1,0`);
          break;
        case 2: // a wrong dimension: an error in its place, nothing else changes
          p.call('LLM.ADD', 'pipe', '--EMBEDDING', '1,2', `bad-${i}`);
          want.push('ERR vector dimension does not match: store has 3, got 2');
          break;
        case 3: // a local command that is not pipelined sees everything before it
          p.call('LLM.GET', 'pipe', String(base));
          want.push(items.get(base));
          break;
        case 4: // a forwarded command between them
          p.set(`pipe-key-${i}`, String(i));
          want.push('OK');
          break;
        case 5:
          p.call('LLM.SIZE', 'pipe');
          want.push(items.size);
          break;
        default: // auto ids, in request order
          p.call('LLM.ADD', 'pipe', '--EMBEDDING', `${i},${i},${i}`, `auto-${i}`);
          add(undefined, `auto-${i}`, `${i},${i},${i}`);
      }
    }
    const got = (await p.exec())!.map(([err, v]) => (err ? (err as Error).message : v));
    expect(got).toEqual(want);
    const size = items.size;
    expect(await call('LLM.SIZE', 'pipe')).toBe(size);
    for (const id of [100_290, next - 1]) expect(await call('LLM.GET', 'pipe', String(id))).toEqual(items.get(id));
    // the log holds them in request order: a restart rebuilds the same store
    r.disconnect();
    await server.stop();
    server = await startServer({ redis: redis.url });
    await server.loadingDone;
    r = c();
    expect(await call('LLM.SIZE', 'pipe')).toBe(size);
    for (const [id, item] of items) expect(await call('LLM.GET', 'pipe', String(id)), String(id)).toEqual(item);
  });
});

describe('REM, growth and input checks', () => {
  it('REM then re-add: removed ids never come back from KNN; re-added ids carry the new vectors', async () => {
    const a = clustered(200, 8, 5, 21);
    const b = clustered(200, 8, 5, 22);
    await call('LLM.CREATE-VECTOR-STORE', 'rem');
    await load('rem', a);
    const p = r.pipeline();
    for (let id = 1; id <= 100; id++) p.call('LLM.REM', 'rem', String(id));
    expect((await p.exec())!.map(([, x]) => x)).toEqual(Array(100).fill(1));
    expect(await call('LLM.SIZE', 'rem')).toBe(100);
    expect(await call('LLM.GET', 'rem', '1')).toBeNull();
    expect(await call('LLM.REM', 'rem', '1')).toBe(0);
    for (const q of a.queries(10, 3)) {
      const hits = hitsOf(await call('LLM.KNN', 'rem', '--K', '100', '--EF', '400', '--EMBEDDING-FP32', fp32(q)));
      expect(hits).toHaveLength(100);
      expect(hits.every((h) => h.id > 100)).toBe(true);
    }
    // re-add ids 1..100 with vectors of another set
    const p2 = r.pipeline();
    for (let i = 0; i < 100; i++) p2.call('LLM.ADD', 'rem', '--ID', String(i + 1), '--EMBEDDING-FP32', fp32(b.row(i)), `again-${i + 1}`);
    await p2.exec();
    expect(await call('LLM.SIZE', 'rem')).toBe(200);
    for (const id of [1, 50, 100]) {
      const [data, vec] = await call('LLM.GET', 'rem', String(id));
      expect(data).toBe(`again-${id}`);
      expect(f32(vec.split(',').map(Number))).toEqual(b.row(id - 1));
      expect((await call('LLM.KNN', 'rem', '--K', '1', '--EMBEDDING-FP32', fp32(b.row(id - 1))))[0]).toEqual([id, '0']);
    }
    // churn: remove and re-add the same id many times
    for (let i = 0; i < 50; i++) {
      expect(await call('LLM.REM', 'rem', '150')).toBe(1);
      expect(await call('LLM.ADD', 'rem', '--ID', '150', '--EMBEDDING-FP32', fp32(b.row(i)), `churn-${i}`)).toBe(150);
    }
    expect(await call('LLM.GET', 'rem', '150')).toEqual(['churn-49', expect.any(String)]);
    expect(await call('LLM.SIZE', 'rem')).toBe(200);
  });

  it('grows far past max_elements', async () => {
    const set = clustered(3000, 8, 20, 31);
    await call('LLM.CREATE-VECTOR-STORE', 'grow', '--PARAMS', '{"max_elements": 10}');
    await load('grow', set);
    expect(await call('LLM.SIZE', 'grow')).toBe(3000);
    for (const id of [1, 11, 1024, 1025, 3000]) {
      const [data, vec] = await call('LLM.GET', 'grow', String(id));
      expect(data).toBe(`item-${id}`);
      expect(f32(vec.split(',').map(Number))).toEqual(set.row(id - 1));
    }
    let rc = 0;
    const qs = set.queries(20, 5);
    for (const q of qs) rc += recall(hitsOf(await call('LLM.KNN', 'grow', '--K', '10', '--EMBEDDING-FP32', fp32(q))), bruteForce(set, 'l2', q, 10, undefined, 1));
    expect(rc / qs.length).toBeGreaterThanOrEqual(0.95);
    const info = (await r.info('llm')) as string;
    const line = info.split('\r\n').find((l) => l.includes('name=grow,'))!;
    expect(Number(/capacity=(\d+)/.exec(line)![1])).toBeGreaterThanOrEqual(3000);
    expect(line).toContain('items=3000');
  });

  it('dimension checks on ADD and KNN (first vector fixes it; or --PARAMS dim)', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'dims');
    expect(await call('LLM.KNN', 'dims', '--EMBEDDING', '1,2,3')).toEqual([]); // empty store
    await call('LLM.ADD', 'dims', '--ID', '1', '--EMBEDDING', '1,2,3', 'three');
    await unchanged('dims', [1, 2], async () => {
      expect(await errOf(call('LLM.ADD', 'dims', '--ID', '2', '--EMBEDDING', '1,2', 'two'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
      expect(await errOf(call('LLM.ADD', 'dims', '--ID', '2', '--EMBEDDING-FP32', fp32([1, 2, 3, 4]), 'four'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
      expect(await errOf(call('LLM.ADD', 'dims', '--ID', '1', '--EMBEDDING', '1,2,3,4', 'update'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
    });
    expect(await errOf(call('LLM.KNN', 'dims', '--EMBEDDING', '1,2'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
    expect(await errOf(call('LLM.KNN', 'dims', '--EMBEDDING-FP32', fp32([1, 2, 3, 4])))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
    await call('LLM.CREATE-VECTOR-STORE', 'dims4', '--PARAMS', '{"dim": 4}');
    expect(await errOf(call('LLM.ADD', 'dims4', '--EMBEDDING', '1,2,3', 'x'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
    expect(await errOf(call('LLM.KNN', 'dims4', '--EMBEDDING', '1,2,3'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
    expect(await call('LLM.SIZE', 'dims4')).toBe(0);
    // the store LLM's dimension is checked too (local embedder: 64 dims)
    await call('LLM.CREATE-LLM', 'e64', '--TYPE', 'local', '--PARAMS', '{"dim":64}');
    await call('LLM.CREATE-VECTOR-STORE', 'dims8', '--LLM', 'e64', '--PARAMS', '{"dim": 8}');
    expect(await errOf(call('LLM.ADD', 'dims8', 'some text'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
    expect(await errOf(call('LLM.KNN', 'dims8', 'some text'))).toMatch(/^ERR vector dimension does not match: store has \d+, got \d+$/);
  });

  it('strict numbers and vectors: leftovers, signs, fractions, NaN are errors and change nothing', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'strict');
    await call('LLM.ADD', 'strict', '--ID', '1', '--EMBEDDING', '1,2,3', 'one');
    await unchanged('strict', [1, 2], async () => {
      for (const k of ['12abc', '-1', '1.5', '', ' 3', '1e1', '100001']) {
        expect(await errOf(call('LLM.KNN', 'strict', '--K', k, '--EMBEDDING', '1,2,3')), `--K '${k}'`).toMatch(/^ERR invalid k: /);
      }
      expect(await errOf(call('LLM.KNN', 'strict', '--EF', '12abc', '--EMBEDDING', '1,2,3'))).toMatch(/^ERR --EF/);
      expect(await errOf(call('LLM.ADD', 'strict', '--TIMEOUT', '12abc', '--EMBEDDING', '1,2,3', 'x'))).toMatch(/^ERR timeout should be a number: /);
      for (const e of ['1,2,x', '1,,3', '1,2,3abc', 'nan,1,2', '1,inf,2', '1,2,1e39', '0x1,2,3', '1;2;3']) {
        expect(await errOf(call('LLM.ADD', 'strict', '--ID', '2', '--EMBEDDING', e, 'x')), `--EMBEDDING '${e}'`).toBe('ERR invalid embedding');
        expect(await errOf(call('LLM.KNN', 'strict', '--EMBEDDING', e)), `KNN --EMBEDDING '${e}'`).toBe('ERR invalid embedding');
      }
      expect(await errOf(call('LLM.ADD', 'strict', '--ID', '2', '--EMBEDDING', ' ', 'x'))).toBe('ERR invalid embedding: size is 0');
      // '' is no vector, as in the original: the text needs the store's LLM
      expect(await errOf(call('LLM.ADD', 'strict', '--ID', '2', '--EMBEDDING', '', 'x'))).toMatch(/^ERR LLM model for vector store does not exist/);
      expect(await errOf(call('LLM.ADD', 'strict', '--ID', '2', '--EMBEDDING-FP32', Buffer.alloc(0), 'x'))).toBe('ERR invalid embedding: size is 0');
      expect(await errOf(call('LLM.ADD', 'strict', '--ID', '2', '--EMBEDDING-FP32', Buffer.alloc(11), 'x'))).toBe('ERR invalid embedding');
      expect(await errOf(call('LLM.ADD', 'strict', '--ID', '2', '--EMBEDDING-FP32', fp32([1, NaN, 3]), 'x'))).toBe('ERR invalid embedding');
      expect(await errOf(call('LLM.KNN', 'strict', '--EMBEDDING-FP32', fp32([1, Infinity, 3])))).toBe('ERR invalid embedding');
      // an option missing its value; leftover arguments
      expect(await errOf(call('LLM.KNN', 'strict', '--K'))).toBe('ERR syntax error');
      expect(await errOf(call('LLM.ADD', 'strict', '--EMBEDDING', '1,2,3', 'a', 'b'))).toBe("ERR wrong number of arguments for 'LLM.ADD' command");
      expect(await errOf(call('LLM.GET', 'strict'))).toBe("ERR wrong number of arguments for 'LLM.GET' command");
      expect(await errOf(call('LLM.ADD', 'strict', '--EMBEDDING', '1,2,3'))).toBe("ERR wrong number of arguments for 'LLM.ADD' command");
    });
    // blanks around numbers are fine, as the original's strtof
    expect(await call('LLM.ADD', 'strict', '--ID', '3', '--EMBEDDING', ' 1, 2 ,3 ', 'blanks')).toBe(3);
  });
});

// ---- errors and missing keys --------------------------------------------------------------------

describe("the original's errors; missing keys", () => {
  it('error texts', async () => {
    expect(await errOf(call('LLM.ADD', 'no-such-store', '--EMBEDDING', '1,2', 'x'))).toBe('ERR vector store does not exist: no-such-store');
    await call('LLM.CREATE-VECTOR-STORE', 'nollm');
    expect(await errOf(call('LLM.ADD', 'nollm', 'text needs an LLM'))).toBe("ERR LLM model for vector store does not exist: vector store 'nollm' has no --LLM");
    await call('LLM.ADD', 'nollm', '--EMBEDDING', '1,2', 'x');
    expect(await errOf(call('LLM.KNN', 'nollm', 'text needs an LLM'))).toBe("ERR LLM model for vector store does not exist: vector store 'nollm' has no --LLM");
    await call('LLM.CREATE-VECTOR-STORE', 'deadllm', '--LLM', 'no-such-llm');
    expect(await errOf(call('LLM.ADD', 'deadllm', 'x'))).toBe('ERR LLM model for vector store does not exist: no-such-llm');
    // Neither a query nor a vector: the original's arity error for `LLM.KNN key`, else its words.
    expect(await errOf(call('LLM.KNN', 'nollm'))).toBe("ERR wrong number of arguments for 'LLM.KNN' command");
    expect(await errOf(call('LLM.KNN', 'nollm', '--K', '3'))).toBe('ERR no query is specified');
    expect(await errOf(call('LLM.CREATE-VECTOR-STORE', 'typed', '--TYPE', 'x'))).toBe('ERR unknown vector store: x');
    expect(await call('EXISTS', 'typed')).toBe(0);
    expect(await errOf(call('LLM.CREATE-VECTOR-STORE', 'badjson', '--PARAMS', '{nope'))).toMatch(/^ERR failed to parse json: /);
    expect(await errOf(call('LLM.CREATE-VECTOR-STORE', 'badparam', '--PARAMS', '{"space":"hamming"}'))).toMatch(/^ERR failed to parse vector store options: space/);
    expect(await errOf(call('LLM.CREATE-VECTOR-STORE', 'badparam', '--PARAMS', '{"m": 1.5}'))).toMatch(/^ERR failed to parse vector store options: m/);
    expect(await call('EXISTS', 'badjson', 'badparam')).toBe(0);
  });

  it('GET/REM/SIZE/KNN on missing keys: nil / 0 / 0 / the original error', async () => {
    expect(await call('LLM.GET', 'missing-key', '1')).toBeNull();
    expect(await call('LLM.REM', 'missing-key', '1')).toBe(0);
    expect(await call('LLM.SIZE', 'missing-key')).toBe(0);
    expect(await errOf(call('LLM.KNN', 'missing-key', '--EMBEDDING', '1,2'))).toBe('ERR vector store does not exist: missing-key');
    await call('LLM.CREATE-VECTOR-STORE', 'empty');
    expect(await call('LLM.GET', 'empty', '1')).toBeNull();
    expect(await call('LLM.REM', 'empty', '1')).toBe(0);
    expect(await call('LLM.SIZE', 'empty')).toBe(0);
    expect(await call('LLM.KNN', 'empty', '--EMBEDDING', '1,2')).toEqual([]);
  });

  it('LLM.* vector commands on an LLM object of another kind or an ordinary key: WRONGTYPE', async () => {
    await call('LLM.CREATE-LLM', 'a-model', '--TYPE', 'local');
    await r.set('plain-string', 'v');
    for (const key of ['a-model', 'plain-string']) {
      expect(await errOf(call('LLM.ADD', key, '--EMBEDDING', '1,2', 'x')), key).toMatch(/^WRONGTYPE/);
      expect(await errOf(call('LLM.GET', key, '1')), key).toMatch(/^WRONGTYPE/);
      expect(await errOf(call('LLM.REM', key, '1')), key).toMatch(/^WRONGTYPE/);
      expect(await errOf(call('LLM.SIZE', key)), key).toMatch(/^WRONGTYPE/);
      expect(await errOf(call('LLM.KNN', key, '--EMBEDDING', '1,2')), key).toMatch(/^WRONGTYPE/);
    }
    expect(await r.get('plain-string')).toBe('v');
  });
});

// ---- LLM objects are keys -------------------------------------------------------------------------

describe('LLM objects are keys', () => {
  beforeAll(async () => {
    await call('LLM.CREATE-LLM', 'k-llm', '--TYPE', 'local', '--PARAMS', '{"dim":8}');
    await call('LLM.CREATE-APP', 'k-app', '--LLM', 'k-llm');
    await call('LLM.CREATE-VECTOR-STORE', 'k-store', '--LLM', 'k-llm');
    await call('LLM.CREATE-SEARCH', 'k-search', '--LLM', 'k-llm', '--VECTOR-STORE', 'k-store');
    await call('LLM.CREATE-CHAT', 'k-chat', '--LLM', 'k-llm', '--VECTOR-STORE', 'k-store');
  });

  it('TYPE names', async () => {
    expect(await r.type('k-llm')).toBe('LLMMOD-SW');
    expect(await r.type('k-app')).toBe('LLMAPP-SW');
    expect(await r.type('k-store')).toBe('LLMVEC-SW');
    expect(await r.type('k-search')).toBe('LLMAPP-SW');
    expect(await r.type('k-chat')).toBe('LLMAPP-SW');
    // The descriptive kind is in LLM.INFO.
    const kinds: string[] = [];
    for (const k of ['k-llm', 'k-app', 'k-store', 'k-search', 'k-chat']) kinds.push(((await call('LLM.INFO', k)) as string[])[1]!);
    expect(kinds).toEqual(['llm-model', 'llm-app', 'llm-vector-store', 'llm-search', 'llm-chat']);
    await r.set('k-str', 'x');
    expect(await r.type('k-str')).toBe('string');
    expect(await r.type('k-none')).toBe('none');
  });

  it('EXISTS / DEL / UNLINK mixed with ordinary keys in one call count right', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'm1');
    await call('LLM.CREATE-VECTOR-STORE', 'm2');
    await call('LLM.CREATE-VECTOR-STORE', 'm3');
    await r.set('o1', '1');
    await r.set('o2', '2');
    await r.set('o3', '3');
    expect(await r.exists('m1', 'o1', 'nope', 'm1', 'm2', 'o2')).toBe(5); // duplicates count, as Redis
    expect(await r.del('m1', 'o1', 'nope', 'm1')).toBe(2);
    expect(await r.exists('m1', 'o1')).toBe(0);
    expect(await call('LLM.SIZE', 'm1')).toBe(0);
    expect(await r.unlink('m2', 'o2', 'm3', 'o3', 'o3')).toBe(4);
    expect(await r.exists('m2', 'm3', 'o2', 'o3')).toBe(0);
    expect(await errOf(call('LLM.ADD', 'm2', '--EMBEDDING', '1', 'x'))).toBe('ERR vector store does not exist: m2');
    // and the name is free for any type again
    expect(await r.set('m2', 'now a string')).toBe('OK');
    expect(await r.type('m2')).toBe('string');
  });

  it('RENAME / RENAMENX of objects onto free names, ordinary keys and other objects', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'rn-a');
    await call('LLM.ADD', 'rn-a', '--ID', '1', '--EMBEDDING', '1,2', 'a1');
    expect(await r.rename('rn-a', 'rn-b')).toBe('OK');
    expect(await r.exists('rn-a')).toBe(0);
    expect(await r.type('rn-b')).toBe('LLMVEC-SW');
    expect(await call('LLM.GET', 'rn-b', '1')).toEqual(['a1', '1,2']);
    // new writes go to the renamed store
    expect(await call('LLM.ADD', 'rn-b', '--EMBEDDING', '3,4', 'b2')).toBe(2);
    // onto an ordinary key: RENAME overwrites, RENAMENX refuses
    await r.set('rn-str', 'v');
    expect(await r.renamenx('rn-b', 'rn-str')).toBe(0);
    expect(await r.get('rn-str')).toBe('v');
    expect(await r.rename('rn-b', 'rn-str')).toBe('OK');
    expect(await r.type('rn-str')).toBe('LLMVEC-SW');
    expect(await call('LLM.SIZE', 'rn-str')).toBe(2);
    // onto another object: RENAME replaces it, RENAMENX refuses
    await call('LLM.CREATE-VECTOR-STORE', 'rn-other');
    await call('LLM.ADD', 'rn-other', '--EMBEDDING', '9,9,9', 'other');
    expect(await r.renamenx('rn-str', 'rn-other')).toBe(0);
    expect(await call('LLM.SIZE', 'rn-other')).toBe(1);
    expect(await r.rename('rn-str', 'rn-other')).toBe('OK');
    expect(await call('LLM.SIZE', 'rn-other')).toBe(2);
    expect(await call('LLM.GET', 'rn-other', '1')).toEqual(['a1', '1,2']);
    expect(await r.exists('rn-str')).toBe(0);
    // RENAMENX onto a free name; RENAME onto itself
    expect(await r.renamenx('rn-other', 'rn-free')).toBe(1);
    expect(await r.rename('rn-free', 'rn-free')).toBe('OK');
    expect(await call('LLM.SIZE', 'rn-free')).toBe(2);
    // an ordinary key onto an object: RENAME overwrites the object, RENAMENX refuses
    await r.set('rn-s2', 'string wins');
    expect(await r.renamenx('rn-s2', 'rn-free')).toBe(0);
    expect(await r.type('rn-free')).toBe('LLMVEC-SW');
    expect(await r.rename('rn-s2', 'rn-free')).toBe('OK');
    expect(await r.get('rn-free')).toBe('string wins');
    expect(await errOf(call('LLM.SIZE', 'rn-free'))).toMatch(/^WRONGTYPE/);
    // a missing source
    expect(await errOf(r.rename('rn-missing', 'rn-x'))).toBe('ERR no such key');
    await call('LLM.CREATE-VECTOR-STORE', 'rn-target');
    expect(await errOf(r.rename('rn-missing', 'rn-target'))).toBe('ERR no such key');
    expect(await r.type('rn-target')).toBe('LLMVEC-SW');
  });

  it('ordinary commands on an LLM key: WRONGTYPE; creating an object over an ordinary key: WRONGTYPE', async () => {
    const wrong = /^WRONGTYPE Operation against a key holding the wrong kind of value/;
    expect(await errOf(r.get('k-store'))).toMatch(wrong);
    expect(await errOf(r.set('k-store', 'x'))).toMatch(wrong);
    expect(await errOf(r.hset('k-llm', 'f', 'v'))).toMatch(wrong);
    expect(await errOf(r.lpush('k-app', 'v'))).toMatch(wrong);
    expect(await errOf(r.incr('k-search'))).toMatch(wrong);
    expect(await errOf(r.call('GETEX', 'k-chat', 'EX', '100'))).toMatch(wrong);
    // EXPIRE is a key command: it works on LLM keys (see proxy.test.ts), and PERSIST undoes it here.
    expect(await r.expire('k-chat', 100)).toBe(1);
    expect(await r.persist('k-chat')).toBe(1);
    expect(await errOf(r.mget('k-str', 'k-store'))).toMatch(wrong);
    expect(await r.type('k-store')).toBe('LLMVEC-SW');
    // another db does not see the object
    const db1 = c({ db: 1 });
    expect(await db1.get('k-store')).toBeNull();
    expect(await db1.type('k-store')).toBe('none');
    await r.set('plain', 'v');
    await r.hset('plainhash', 'f', 'v');
    for (const key of ['plain', 'plainhash']) {
      expect(await errOf(call('LLM.CREATE-VECTOR-STORE', key))).toMatch(wrong);
      expect(await errOf(call('LLM.CREATE-LLM', key, '--TYPE', 'local'))).toMatch(wrong);
      expect(await errOf(call('LLM.CREATE-APP', key, '--LLM', 'k-llm'))).toMatch(wrong);
    }
    expect(await r.get('plain')).toBe('v');
    // an object of another kind: WRONGTYPE too
    expect(await errOf(call('LLM.CREATE-VECTOR-STORE', 'k-llm'))).toMatch(wrong);
    expect(await errOf(call('LLM.CREATE-LLM', 'k-store', '--TYPE', 'local'))).toMatch(wrong);
    expect(await r.type('k-llm')).toBe('LLMMOD-SW');
  });

  it('KEYS and SCAN list objects (MATCH, TYPE) and never the storage keys', async () => {
    await call('LLM.ADD', 'k-store', '--EMBEDDING-FP32', fp32(localEmbed('x', 8)), 'x'); // makes a log
    const internal = await clientDirect().keys('*');
    expect(internal.some((k) => k.startsWith('__llm__:'))).toBe(true); // they exist in the backing Redis...
    const keys = (await r.keys('*')) as string[];
    expect(keys.some((k) => k.startsWith('__llm__:'))).toBe(false); // ...but clients never see them
    for (const k of ['k-llm', 'k-app', 'k-store', 'k-search', 'k-chat', 'k-str']) expect(keys).toContain(k);
    expect(new Set(keys).size).toBe(keys.length);
    expect((await r.keys('k-s*')).sort()).toEqual(['k-search', 'k-store', 'k-str']);
    expect(await r.keys('__llm__:*')).toEqual([]);
    // full SCAN iteration
    const seen: string[] = [];
    let cursor = '0';
    do {
      const [next, page] = await r.scan(cursor, 'COUNT', 5);
      seen.push(...page);
      cursor = next;
    } while (cursor !== '0');
    expect(seen.some((k) => k.startsWith('__llm__:'))).toBe(false);
    expect(new Set(seen)).toEqual(new Set(keys));
    const [, matched] = await r.scan('0', 'MATCH', 'k-s*', 'COUNT', 1000);
    expect(matched.sort()).toEqual(['k-search', 'k-store', 'k-str']);
    const [cur, stores] = await r.scan('0', 'TYPE', 'LLMVEC-SW');
    expect(cur).toBe('0');
    expect(stores).toContain('k-store');
    expect(stores).not.toContain('k-llm');
    expect(stores).not.toContain('k-str');
    const [, models] = await r.scan('0', 'MATCH', 'k-*', 'TYPE', 'LLMMOD-SW');
    expect(models).toEqual(['k-llm']);
    // The original's type names; every app kind is LLMAPP-SW, and SCAN's TYPE is case-insensitive as in Redis.
    const [, apps] = await r.scan('0', 'MATCH', 'k-*', 'TYPE', 'llmapp-sw');
    expect(apps.sort()).toEqual(['k-app', 'k-chat', 'k-search']);
    const strings: string[] = [];
    cursor = '0';
    do {
      const [next, page] = await r.scan(cursor, 'TYPE', 'string');
      strings.push(...page);
      cursor = next;
    } while (cursor !== '0');
    expect(strings).toContain('k-str');
    expect(strings).not.toContain('k-store');
    expect(strings.some((k) => k.startsWith('__llm__:'))).toBe(false);
  });

  it('commands on `__llm__:` keys are refused (ordinary and LLM.*), and nothing is created there', async () => {
    const internal = await clientDirect().keys('__llm__:*');
    expect(internal.length).toBeGreaterThan(0);
    const k = internal[0]!;
    const reserved = /^ERR keys with the '__llm__:' prefix are reserved/;
    expect(await errOf(r.get(k))).toMatch(reserved);
    expect(await errOf(r.type(k))).toMatch(reserved);
    expect(await errOf(r.del(k))).toMatch(reserved);
    expect(await errOf(r.exists(k))).toMatch(reserved);
    expect(await errOf(r.set('__llm__:mine', 'x'))).toMatch(reserved);
    expect(await errOf(r.rename('k-store', '__llm__:stolen'))).toMatch(reserved);
    expect(await errOf(call('LLM.CREATE-VECTOR-STORE', '__llm__:store'))).toMatch(reserved);
    expect(await errOf(call('LLM.CREATE-LLM', '__llm__:model', '--TYPE', 'local'))).toMatch(reserved);
    expect(await errOf(call('LLM.SIZE', k))).toMatch(reserved);
    expect(await errOf(call('LLM.ADD', '__llm__:store', '--EMBEDDING', '1', 'x'))).toMatch(reserved);
    expect(await r.keys('*llm__*')).toEqual([]);
    expect((await clientDirect().keys('*')).includes(k)).toBe(true); // untouched
  });

  it('storage keys do not leak through RANDOMKEY, XREAD, EVAL KEYS, OBJECT/MEMORY; SWAPDB of the storage db is refused', async () => {
    const internal = await clientDirect().keys('__llm__:*');
    const log = internal.find((k) => k.endsWith(':log'))!;
    expect(log).toBeDefined();
    const reserved = /^ERR keys with the '__llm__:' prefix are reserved/;
    for (let i = 0; i < 30; i++) {
      const k = await r.randomkey();
      expect(k === null || !k.startsWith('__llm__:')).toBe(true);
    }
    expect(await errOf(r.xread('COUNT', 1, 'STREAMS', log, '0'))).toMatch(reserved);
    expect(await errOf(r.call('EVAL', "return redis.call('TYPE', KEYS[1])", '1', log))).toMatch(reserved);
    expect(await errOf(r.call('OBJECT', 'ENCODING', log))).toMatch(reserved);
    expect(await errOf(r.call('MEMORY', 'USAGE', log))).toMatch(reserved);
    expect(await errOf(r.call('OBJECT', 'ENCODING', 'k-store'))).toMatch(/^WRONGTYPE/);
    expect(await errOf(r.call('ZUNIONSTORE', 'zout', '2', 'zin', log))).toMatch(reserved);
    expect(await errOf(r.call('SWAPDB', '0', '5'))).toMatch(/^ERR SWAPDB is not supported/);
    expect(await r.call('SWAPDB', '6', '7')).toBe('OK');
    expect(await r.type('k-store')).toBe('LLMVEC-SW');
  });

  it('inside MULTI: commands involving LLM objects or storage keys are refused and abort the transaction; others queue', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'tx-store');
    await call('LLM.ADD', 'tx-store', '--EMBEDDING', '1,2', 'x');
    const m = c();
    const execAbort = async (queue: (t: ReturnType<Redis['multi']>) => void) => {
      const t = m.multi();
      queue(t);
      return errOf(t.exec());
    };
    for (const queue of [
      (t: any) => t.del('tx-store'),
      (t: any) => t.type('tx-store'),
      (t: any) => t.rename('tx-store', 'tx-renamed'),
      (t: any) => t.get('tx-store'),
      (t: any) => t.keys('*'),
      (t: any) => t.flushdb(),
    ]) {
      expect(await execAbort((t) => { t.set('tx-a', '1'); queue(t); })).toMatch(/EXECABORT/);
      expect(await m.exists('tx-a')).toBe(0); // nothing of the transaction ran
      expect(await call('LLM.SIZE', 'tx-store')).toBe(1);
      expect(await m.type('tx-store')).toBe('LLMVEC-SW');
    }
    // ordinary keys only: queued and run by EXEC as usual
    const res = await m.multi().set('tx-b', '1').del('tx-b', 'tx-c').exists('tx-b').exec();
    expect(res).toEqual([[null, 'OK'], [null, 1], [null, 0]]);
    // raw protocol: the refusal text and EXECABORT
    const raw = await m.multi().call('DEL', 'tx-store').exec().catch((e: Error & { previousErrors?: Error[] }) => e.previousErrors?.[0]?.message);
    expect(raw).toMatch(/^ERR DEL cannot run inside MULTI/);
  });

  it('deleting a store a search app uses: its RUN fails clearly; a new store of that name serves it again', async () => {
    const params = { api_key: 'sk-test', base_url: openai.url };
    await call('LLM.CREATE-LLM', 'run-llm', '--TYPE', 'openai', '--PARAMS', JSON.stringify(params));
    await call('LLM.CREATE-VECTOR-STORE', 'run-store', '--LLM', 'run-llm');
    await call('LLM.ADD', 'run-store', 'the author of redis-llm is sewenew');
    await call('LLM.CREATE-SEARCH', 'run-app', '--LLM', 'run-llm', '--VECTOR-STORE', 'run-store');
    expect(await call('LLM.RUN', 'run-app', 'who is the author of redis-llm')).toMatch(/sewenew/);
    expect(await r.del('run-store')).toBe(1);
    expect(await errOf(call('LLM.RUN', 'run-app', 'who is the author of redis-llm'))).toBe('ERR vector store does not exist: run-store');
    expect(await r.type('run-app')).toBe('LLMAPP-SW');
    await call('LLM.CREATE-VECTOR-STORE', 'run-store', '--LLM', 'run-llm');
    await call('LLM.ADD', 'run-store', 'redis-llm was rewritten in TypeScript');
    expect(await call('LLM.RUN', 'run-app', 'who rewrote redis-llm')).toMatch(/TypeScript/);
    // a store renamed away is gone for the app too
    await r.rename('run-store', 'run-store-2');
    expect(await errOf(call('LLM.RUN', 'run-app', 'q'))).toBe('ERR vector store does not exist: run-store');
  });

  it('FLUSHDB drops the objects of that db only; FLUSHALL drops every object', async () => {
    const db1 = c({ db: 1 });
    await db1.call('LLM.CREATE-VECTOR-STORE', 'f-store1');
    await db1.call('LLM.ADD', 'f-store1', '--EMBEDDING', '1,2', 'x');
    await db1.set('f-str1', 'v');
    await call('LLM.CREATE-VECTOR-STORE', 'f-store0');
    await call('LLM.ADD', 'f-store0', '--EMBEDDING', '1,2', 'x');
    expect(await db1.flushdb()).toBe('OK');
    expect(await db1.keys('*')).toEqual([]);
    expect(await db1.call('LLM.SIZE', 'f-store1')).toBe(0);
    expect(await call('LLM.SIZE', 'f-store0')).toBe(1);
    // FLUSHDB of db 0 (which holds the storage keys) keeps db 1's objects, storage included
    await db1.call('LLM.CREATE-VECTOR-STORE', 'f-keep');
    await db1.call('LLM.ADD', 'f-keep', '--ID', '4', '--EMBEDDING', '4,4', 'kept');
    expect(await r.flushdb()).toBe('OK');
    expect(await r.keys('*')).toEqual([]);
    expect(await call('LLM.SIZE', 'f-store0')).toBe(0);
    expect(await db1.call('LLM.GET', 'f-keep', '4')).toEqual(['kept', '4,4']);
    expect(await db1.keys('*')).toEqual(['f-keep']);
    const rec = (await clientDirect().keys('__llm__:*')) as string[];
    expect(rec.length).toBeGreaterThan(0); // rewritten
    expect(await r.flushall()).toBe('OK');
    expect(await db1.keys('*')).toEqual([]);
    expect(await db1.call('LLM.GET', 'f-keep', '4')).toBeNull();
    expect(await db1.type('f-keep')).toBe('none');
    expect(await clientDirect().keys('*')).toEqual([]);
  });
});

let direct: Redis | undefined;
/** A client of the backing Redis itself (sees the storage keys). */
function clientDirect(): Redis {
  direct ??= client(redis.port);
  if (!clients.includes(direct)) clients.push(direct);
  return direct;
}
