/**
 * LLM calls that survive provider trouble: deadlines (llm-timeout, the LLM's timeout, --TIMEOUT,
 * the stream idle limit) that abort the HTTP request, retries with Retry-After /
 * x-ratelimit-reset-*, router LLMs (fallbacks, strategies, embeddings) and cooldowns shared by
 * two server instances through the backing Redis. Real servers, real Redis, the real openai SDK
 * against the local fake provider.
 */
import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, startRedisCluster, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import { errOf, leaks } from '../harness/replies.js';
import { MemoryKV, RedisKV, type KV } from '../src/storage/kv.js';
import { CIRCUIT_CACHE_MS, circuitBase, parseLlmConfig, parseStoredConfig, sealConfig } from '../src/llm/index.js';
import { parseResetDuration, providerMessage, rateLimitWaitMs } from '../src/llm/errors.js';
import { SecretBox } from '../src/util/secret.js';
import type { LlmServer } from '../src/server/server.js';

const KEY = 'sk-proj-RESILIENCE-0123456789abcdefXYZ';

let redis: RedisServerHandle;
let fa: FakeOpenAI; // the target that fails in the tests
let fb: FakeOpenAI; // the healthy one
let s1: LlmServer;
let s2: LlmServer;
let r1: Redis;
let r2: Redis;
let closedPort: number;
const conns: Redis[] = [];

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function eventually(check: () => Promise<void> | void, ms = 2000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() - t0 > ms) throw err;
      await sleep(10);
    }
  }
}

/** LLM.STATS as an object. */
async function stats(r: Redis, key: string): Promise<Record<string, string>> {
  const flat = (await r.call('LLM.STATS', key)) as string[];
  const out: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

/** An openai LLM on `url`; `extra` top-level params, `http` params. */
async function openaiLlm(r: Redis, key: string, url: string, extra: Record<string, unknown> = {}, http: Record<string, unknown> = {}): Promise<void> {
  const params = { api_key: KEY, base_url: url, ...extra, http: { retry_backoff: '5ms', ...http } };
  expect(await r.call('LLM.CREATE-LLM', key, '--PARAMS', JSON.stringify(params))).toBe(1);
}

async function router(r: Redis, key: string, params: Record<string, unknown>): Promise<void> {
  expect(await r.call('LLM.CREATE-LLM', key, '--TYPE', 'router', '--PARAMS', JSON.stringify(params))).toBe(1);
}

async function app(r: Redis, key: string, llm: string): Promise<void> {
  expect(await r.call('LLM.CREATE-APP', key, '--LLM', llm, '--PROMPT', 'say hi')).toBe(1);
}

beforeAll(async () => {
  redis = await startRedis();
  fa = await startFakeOpenAI({ dim: 16, reply: () => 'from a' });
  fb = await startFakeOpenAI({ dim: 16, reply: () => 'from b' });
  s1 = await startServer({ redis: redis.url });
  s2 = await startServer({ redis: redis.url });
  await s1.loadingDone;
  await s2.loadingDone;
  r1 = client(s1.port);
  r2 = client(s2.port);
  conns.push(r1, r2);
  // A port nobody listens on: connection refused.
  const srv = net.createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
  closedPort = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((res) => srv.close(() => res()));
});

afterAll(async () => {
  for (const c of conns) c.disconnect();
  await s1?.stop();
  await s2?.stop();
  await fa?.close();
  await fb?.close();
  await redis?.stop();
});

beforeEach(async () => {
  fa.reset();
  fb.reset();
  await r1.flushdb();
  // Circuit keys of earlier tests (the server's own keys are not visible through it).
  const direct = new Redis(redis.url);
  const keys = await direct.keys('__llm__:{cb:*');
  if (keys.length) await direct.del(...keys);
  direct.disconnect();
});

describe('parsing', () => {
  it('x-ratelimit-reset durations and the wait a 429 asks for', () => {
    expect(parseResetDuration('1s')).toBe(1000);
    expect(parseResetDuration('6m0s')).toBe(360_000);
    expect(parseResetDuration('20ms')).toBe(20);
    expect(parseResetDuration('1h2m3.5s')).toBe(3_723_500);
    expect(parseResetDuration('2')).toBe(2000);
    expect(parseResetDuration('soon')).toBeUndefined();
    expect(parseResetDuration('1s garbage')).toBeUndefined();
    expect(rateLimitWaitMs(new Headers({ 'retry-after-ms': '120', 'x-ratelimit-reset-requests': '5s' }))).toBe(120);
    expect(rateLimitWaitMs(new Headers({ 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-reset-tokens': '1.5s' }))).toBe(1500);
    expect(rateLimitWaitMs(new Headers({}))).toBeUndefined();
  });

  it("the provider's message is kept without secrets, on one line, bounded", () => {
    const azureKey = '0123456789abcdef0123456789abcdef';
    expect(providerMessage({ message: `Incorrect API key provided: ${KEY}.` }, [KEY])).toBe('Incorrect API key provided: [redacted].');
    expect(providerMessage({ message: 'key sk-proj-****wxyz is wrong' }, [])).toBe('key [redacted] is wrong');
    expect(providerMessage({ message: `Access denied due to invalid subscription key ${azureKey}.` }, [])).toBe('Access denied due to invalid subscription key [redacted].');
    expect(providerMessage({ message: 'via http://user:pw@proxy:3128/ failed\n\tline two' }, [])).toBe('via http://[redacted]@proxy:3128/ failed line two');
    expect(providerMessage({ message: 'Bearer abc.def-ghi denied' }, [])).toBe('Bearer [redacted] denied');
    expect(providerMessage({ message: 'x'.repeat(500) }, [])!.length).toBe(200);
    expect(providerMessage({ code: 'x' }, [])).toBeUndefined();
  });

  it('timeout, idle_timeout and retries are kept through storage; routers too', () => {
    const box = SecretBox.fromSecret('a-test-secret-of-some-length');
    const cfg = parseLlmConfig('openai', { api_key: KEY, timeout: '20s', idle_timeout: 5000, retries: 4 });
    expect(cfg).toMatchObject({ timeoutMs: 20_000, idleTimeoutMs: 5000, http: { maxRetries: 4 } });
    const sealed = sealConfig(cfg, box);
    expect(sealed.params).toMatchObject({ timeout: '20000ms', idle_timeout: '5000ms', http: { max_retries: 4 } });
    expect(parseStoredConfig(sealed.type, sealed.params, box)).toEqual(cfg);
    expect(() => parseLlmConfig('openai', { api_key: KEY, retries: 11 })).toThrow("invalid LLM params: 'retries' must be an integer between 0 and 10");
    expect(() => parseLlmConfig('openai', { api_key: KEY, timeout: 'soon' })).toThrow(/'timeout' must be a duration/);
    const rc = parseLlmConfig('router', { targets: ['a', 'b'], strategy: 'least-busy', fallback_on: ['503', '4xx'], cooldown: 0.5, target_timeout: '2s' });
    const rs = sealConfig(rc, box);
    expect(parseStoredConfig(rs.type, rs.params, box)).toEqual(rc);
  });
});

describe('deadlines', () => {
  it('llm-timeout, else the LLM timeout, else --TIMEOUT; the request is aborted and no socket stays open', async () => {
    const hang = await startFakeOpenAI({ dim: 16 });
    const s = await startServer({ redis: redis.url, llmTimeout: 300 });
    const r = client(s.port);
    conns.push(r);
    try {
      await s.loadingDone;
      hang.setBehavior({ fault: { type: 'hang' } });
      await openaiLlm(r, 'slow', hang.url, { retries: 0 });
      await openaiLlm(r, 'own', hang.url, { retries: 0, timeout: '200ms' });
      await app(r, 'a-slow', 'slow');
      await app(r, 'a-own', 'own');
      let t0 = performance.now();
      expect(await errOf(r.call('LLM.RUN', 'a-slow'))).toBe("ERR failed to predict with openai: LLM 'slow' request timed out after 300 ms");
      expect(performance.now() - t0).toBeLessThan(2000);
      t0 = performance.now();
      expect(await errOf(r.call('LLM.RUN', 'a-own'))).toBe("ERR failed to predict with openai: LLM 'own' request timed out after 200 ms");
      expect(await errOf(r.call('LLM.RUN', 'a-own', '--TIMEOUT', '100'))).toBe("ERR failed to predict with openai: LLM 'own' request timed out after 100 ms");
      // Embeddings too (a store's LLM).
      expect(await r.call('LLM.CREATE-VECTOR-STORE', 'vs', '--LLM', 'own')).toBe(1);
      expect(await errOf(r.call('LLM.ADD', 'vs', 'text'))).toBe("ERR failed to request embedding: LLM 'own' request timed out after 200 ms");
      expect(hang.calls()).toBe(4);
      // Every aborted request closed its connection: nothing is left open at the provider.
      await eventually(() => expect(hang.connections).toBe(0));
      expect(hang.inFlight).toBe(0);
    } finally {
      await s.stop();
      await hang.close();
    }
  });

  it('a stream that stalls is aborted after idle_timeout, with its socket', async () => {
    const st = await startFakeOpenAI({ dim: 16 });
    try {
      await openaiLlm(r1, 'm', st.url, { retries: 0, idle_timeout: '200ms', timeout: '10s' });
      await app(r1, 'a', 'm');
      st.setBehavior({ fault: { type: 'stall', afterChunks: 1 }, reply: () => 'one two three' });
      const t0 = performance.now();
      const e = await errOf(r1.call('LLM.RUN', 'a', '--STREAM', 'out'));
      expect(e).toBe("ERR failed to predict with openai: LLM 'm' request timed out after 200 ms without a stream chunk");
      expect(performance.now() - t0).toBeLessThan(3000);
      const entries = (await r1.xrange('out', '-', '+')) as Array<[string, string[]]>;
      expect(entries.some((x) => x[1].includes('chunk'))).toBe(true); // the first chunk was delivered
      expect(st.calls()).toBe(1); // never retried after a chunk
      await eventually(() => expect(st.connections).toBe(0));
      // The limit is between chunks: a slow but steady stream passes.
      st.setBehavior({ fault: null, chunkDelayMs: 50 });
      expect(await r1.call('LLM.RUN', 'a', '--STREAM', 'out2')).toBe('one two three');
    } finally {
      await st.close();
    }
  });

  it('the socket_timeout / connect_timeout of the original keep their meaning', async () => {
    fa.setBehavior({ fault: { type: 'hang' } });
    await openaiLlm(r1, 'm', fa.url, { retries: 0 }, { socket_timeout: '150ms', connect_timeout: '1s' });
    await app(r1, 'a', 'm');
    expect(await errOf(r1.call('LLM.RUN', 'a'))).toBe("ERR failed to predict with openai: LLM 'm' request timed out after 150 ms");
    const info = (await r1.call('LLM.INFO', 'm')) as string[];
    const cfg = JSON.parse(info[info.indexOf('config') + 1]!);
    expect(cfg.params.http.socket_timeout).toBe('150ms');
    expect(cfg.params.http.connect_timeout).toBe('1000ms');
  });
});

describe('retries', () => {
  it('429 with Retry-After is waited for, then retried; counted in LLM.STATS', async () => {
    await openaiLlm(r1, 'm', fb.url);
    await app(r1, 'a', 'm');
    fb.enqueue({ type: 'status', status: 429, retryAfterMs: 300 }, 1);
    const t0 = performance.now();
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(fb.calls()).toBe(2);
    expect((await stats(r1, 'm')).retries).toBe('1');
  });

  it('x-ratelimit-reset-requests is honoured when there is no Retry-After', async () => {
    await openaiLlm(r1, 'm', fb.url);
    await app(r1, 'a', 'm');
    fb.enqueue({ type: 'status', status: 429, retryAfterMs: null, headers: { 'x-ratelimit-reset-requests': '250ms', 'x-ratelimit-reset-tokens': '0.1s' } }, 1);
    const t0 = performance.now();
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240);
  });

  it('a wait past the deadline is not made: the 429 is the answer at once', async () => {
    await openaiLlm(r1, 'm', fb.url);
    await app(r1, 'a', 'm');
    fb.enqueue({ type: 'status', status: 429, retryAfterMs: 5000 }, 1);
    const t0 = performance.now();
    expect(await errOf(r1.call('LLM.RUN', 'a', '--TIMEOUT', '1000'))).toBe(
      "ERR failed to predict with openai: LLM 'm': failed to do post: 429 Too Many Requests (rate_limit_exceeded): injected 429",
    );
    expect(performance.now() - t0).toBeLessThan(900);
    expect(fb.calls()).toBe(1);
  });

  it('500, 503, 408 and connection errors are retried `retries` times; 400 never; retries 0 means one attempt', async () => {
    await openaiLlm(r1, 'm', fb.url, { retries: 3 });
    await app(r1, 'a', 'm');
    fb.enqueue({ type: 'status', status: 500 }, 1);
    fb.enqueue({ type: 'status', status: 503 }, 1);
    fb.enqueue({ type: 'status', status: 408 }, 1);
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b');
    expect(fb.calls()).toBe(4);
    fb.reset();
    fb.enqueue({ type: 'destroy' }, 1);
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b');
    expect(fb.calls()).toBe(2);
    fb.reset();
    fb.enqueue({ type: 'status', status: 400 }, 1);
    expect(await errOf(r1.call('LLM.RUN', 'a'))).toBe("ERR failed to predict with openai: LLM 'm': failed to do post: 400 Bad Request: injected 400");
    expect(fb.calls()).toBe(1);
    expect((await stats(r1, 'm')).retries).toBe('4');
    fb.reset();
    await openaiLlm(r1, 'once', fb.url, { retries: 0 });
    await app(r1, 'b', 'once');
    fb.enqueue({ type: 'status', status: 503 }, 1);
    expect(await errOf(r1.call('LLM.RUN', 'b'))).toBe("ERR failed to predict with openai: LLM 'once': failed to do post: 503 Service Unavailable: injected 503");
    expect(fb.calls()).toBe(1);
  });

  it('embeddings are retried the same way; a stream is not retried after its first chunk', async () => {
    await openaiLlm(r1, 'm', fb.url);
    expect(await r1.call('LLM.CREATE-VECTOR-STORE', 'vs', '--LLM', 'm')).toBe(1);
    fb.enqueue({ type: 'status', status: 503 }, 1, '/embeddings');
    expect(await r1.call('LLM.ADD', 'vs', 'some text')).toBe(1);
    expect(fb.calls('/embeddings')).toBe(2);
    await app(r1, 'a', 'm');
    fb.setBehavior({ reply: () => 'one two three four' });
    fb.enqueue({ type: 'break-stream', afterChunks: 1 }, 1);
    expect(await errOf(r1.call('LLM.RUN', 'a', '--STREAM', 'out'))).toBe("ERR failed to predict with openai: LLM 'm' response stream was interrupted");
    expect(fb.calls('/chat')).toBe(1);
  });
});

describe('router LLMs', () => {
  it('create: params are checked; a router may not list itself; LLM.INFO shows the normalised config', async () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{}, "ERR failed to parse router options: 'targets' must be a non-empty list of LLM keys"],
      [{ targets: ['a', 'a'] }, "ERR failed to parse router options: 'targets' lists an LLM twice"],
      [{ targets: ['a'], strategy: 'random' }, "ERR failed to parse router options: 'strategy' must be one of fallback, round-robin, weighted, least-busy, lowest-latency"],
      [{ targets: ['a', 'b'], strategy: 'weighted' }, "ERR failed to parse router options: strategy 'weighted' needs 'weights'"],
      [{ targets: ['a', 'b'], weights: [1] }, "ERR failed to parse router options: 'weights' must list one positive number per target (2)"],
      [{ targets: ['a'], fallback_on: ['teapot'] }, `ERR failed to parse router options: 'fallback_on' must list "429", "5xx", "4xx", a status such as "503", "timeout", "connection" or "context_length"`],
      [{ targets: ['a'], cooldown: -1 }, "ERR failed to parse router options: 'cooldown' must be a number between 0 and 86400"],
      [{ targets: ['pool', 'a'] }, "ERR failed to parse router options: a router may not list itself ('pool') in 'targets'"],
    ];
    for (const [params, want] of bad) {
      expect(await errOf(r1.call('LLM.CREATE-LLM', 'pool', '--TYPE', 'router', '--PARAMS', JSON.stringify(params))), JSON.stringify(params)).toBe(want);
    }
    expect(await r1.exists('pool')).toBe(0);
    await router(r1, 'pool', { targets: ['x', 'y'], strategy: 'weighted', weights: [3, 1], cooldown: 5, timeout: '2s' });
    const info = (await r1.call('LLM.INFO', 'pool')) as string[];
    expect(JSON.parse(info[info.indexOf('config') + 1]!)).toEqual({
      type: 'router',
      params: {
        targets: ['x', 'y'],
        strategy: 'weighted',
        weights: [3, 1],
        fallback_on: ['429', '5xx', 'timeout', 'connection', 'context_length'],
        cooldown: 5,
        failures: 3,
        failure_window: 60,
        timeout: '2000ms',
      },
    });
    expect(await r1.type('pool')).toBe('LLMMOD-SW');
    // The other instance follows the definition.
    await eventually(async () => expect(await r2.type('pool')).toBe('LLMMOD-SW'));
  });

  it('fallback on 500, 429, 503, timeout, connection refused and context length; the answer comes from the healthy target', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'refused', `http://127.0.0.1:${closedPort}`, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 0, target_timeout: '300ms' });
    await app(r1, 'a', 'pool');
    const faults = [
      { type: 'status', status: 500 },
      { type: 'status', status: 429, retryAfterMs: 10 },
      { type: 'status', status: 503 },
      { type: 'hang' },
      { type: 'context-length' },
    ] as const;
    for (const f of faults) {
      fa.setBehavior({ fault: f });
      expect(await r1.call('LLM.RUN', 'a'), f.type).toBe('from b');
    }
    expect(fa.calls()).toBe(5);
    await router(r1, 'pool2', { targets: ['refused', 'gb'], cooldown: 0 });
    await app(r1, 'a2', 'pool2');
    expect(await r1.call('LLM.RUN', 'a2')).toBe('from b');
    // Streaming falls back too while nothing was delivered.
    fa.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await r1.call('LLM.RUN', 'a', '--STREAM', 'out')).toBe('from b');
    const st = await stats(r1, 'pool');
    expect(st.calls).toBe('6');
    expect(st.errors).toBe('0');
    expect(st['target.ga.calls']).toBe('6');
    expect(st['target.ga.failures']).toBe('6');
    expect(st['target.ga.fallbacks']).toBe('6');
    expect(st['target.gb.calls']).toBe('6');
    expect(st['target.gb.failures']).toBe('0');
    expect(Number(st['target.gb.latency_p50_ms'])).toBeGreaterThan(0);
    expect(st['target.ga.state']).toBe('closed');
    const info = (await r1.info('llm')) as string;
    expect(info).toMatch(/target\d+:router=pool,db=0,name=ga,state=closed,calls=6,failures=6,retries=0,fallbacks=6,cooldowns=0,/);
  });

  it('a failure not in fallback_on is the answer, naming the router and the target; every target failing lists each', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'refused', `http://127.0.0.1:${closedPort}`, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 0 });
    await app(r1, 'a', 'pool');
    fa.setBehavior({ fault: { type: 'status', status: 400 } });
    expect(await errOf(r1.call('LLM.RUN', 'a'))).toBe("ERR failed to predict with openai: LLM 'pool' target 'ga': failed to do post: 400 Bad Request: injected 400");
    expect(fb.calls()).toBe(0);
    // fallback_on without 5xx: a 500 is the answer.
    await router(r1, 'only429', { targets: ['ga', 'gb'], cooldown: 0, fallback_on: ['429'] });
    await app(r1, 'b', 'only429');
    fa.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await errOf(r1.call('LLM.RUN', 'b'))).toBe("ERR failed to predict with openai: LLM 'only429' target 'ga': failed to do post: 500 Internal Server Error: injected 500");
    // Every target failing: each one's last error, briefly; a missing target is named too.
    fb.setBehavior({ fault: { type: 'status', status: 503 } });
    fa.setBehavior({ apiKey: 'another-key', fault: null }); // 401 whose body echoes the key sent
    await router(r1, 'all', { targets: ['ga', 'refused', 'nosuch', 'gb'], cooldown: 0, fallback_on: ['4xx', '5xx', 'connection'] });
    await app(r1, 'c', 'all');
    const e = await errOf(r1.call('LLM.RUN', 'c'));
    expect(e).toBe(
      "ERR failed to predict with openai: LLM 'all': every target failed: 'ga': failed to do post: 401 Unauthorized (invalid_api_key): Incorrect API key provided: [redacted]. " +
        "You can find your API key at https://platform.openai.com/account/api-keys.; 'refused' request failed: connection refused; " +
        "'nosuch' does not exist or is not an LLM; 'gb': failed to do post: 503 Service Unavailable: injected 503",
    );
    expect(leaks(e, KEY)).toBe(false);
    expect(leaks(JSON.stringify(await r1.call('LLM.STATS', 'all')), KEY)).toBe(false);
  });

  it("a target's own retries happen inside its share and are counted per target", async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 2 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 0 });
    await app(r1, 'a', 'pool');
    fa.enqueue({ type: 'status', status: 503 }, 1);
    expect(await r1.call('LLM.RUN', 'a')).toBe('from a'); // retried on ga, no fallback
    fa.enqueue({ type: 'status', status: 503 }, 3);
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b'); // ga's retries used up: the next target
    const st = await stats(r1, 'pool');
    expect(st.retries).toBe('3');
    expect(st['target.ga.retries']).toBe('3');
    expect(st['target.ga.calls']).toBe('2');
    expect(st['target.ga.failures']).toBe('1');
    expect(st['target.ga.fallbacks']).toBe('1');
    expect((await stats(r1, 'ga')).retries).toBe('3');
  });

  it('a stream that delivered text is not moved to another target', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 0 });
    await app(r1, 'a', 'pool');
    fa.setBehavior({ reply: () => 'one two three', fault: { type: 'break-stream', afterChunks: 1 } });
    expect(await errOf(r1.call('LLM.RUN', 'a', '--STREAM', 'out'))).toBe("ERR failed to predict with openai: LLM 'pool' target 'ga' response stream was interrupted");
    expect(fb.calls()).toBe(0);
  });

  it('deadline: the router splits what is left among its targets, so a hanging first target leaves time for the next', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 0, timeout: '1s' });
    await app(r1, 'a', 'pool');
    fa.setBehavior({ fault: { type: 'hang' } });
    const t0 = performance.now();
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b');
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(1000);
    // Both hanging: the whole call ends at its deadline, naming the time-outs.
    fb.setBehavior({ fault: { type: 'hang' } });
    const t1 = performance.now();
    const e = await errOf(r1.call('LLM.RUN', 'a', '--TIMEOUT', '400'));
    expect(performance.now() - t1).toBeLessThan(1000);
    expect(e).toMatch(/^ERR failed to predict with openai: LLM 'pool': every target failed: 'ga' request timed out after (1\d\d|200) ms; 'gb' request timed out after (1\d\d|200) ms$/);
    await eventually(() => expect(fa.connections).toBe(0));
    // Both hanging requests were aborted with their sockets (the fake sees them close).
    await eventually(() => expect(fa.inFlight + fb.inFlight).toBe(0));
    expect(fb.connections).toBeLessThanOrEqual(1); // the earlier answer's keep-alive at most
  });

  it('strategies: round-robin alternates, weighted follows the weights, least-busy and lowest-latency avoid the slow one', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'rr', { targets: ['ga', 'gb'], strategy: 'round-robin' });
    await app(r1, 'a', 'rr');
    for (let i = 0; i < 10; i++) await r1.call('LLM.RUN', 'a');
    expect([fa.calls(), fb.calls()]).toEqual([5, 5]);
    fa.reset();
    fb.reset();
    await router(r1, 'w', { targets: ['ga', 'gb'], strategy: 'weighted', weights: [3, 1] });
    await app(r1, 'b', 'w');
    await Promise.all(Array.from({ length: 200 }, () => r1.call('LLM.RUN', 'b')));
    expect(fa.calls() + fb.calls()).toBe(200);
    expect(fa.calls() / 200).toBeGreaterThan(0.62);
    expect(fa.calls() / 200).toBeLessThan(0.88);
    fa.reset();
    fb.reset();
    fa.setBehavior({ responseDelayMs: 150 });
    await router(r1, 'lb', { targets: ['ga', 'gb'], strategy: 'least-busy' });
    await app(r1, 'c', 'lb');
    const other = client(s1.port);
    conns.push(other);
    const slow = r1.call('LLM.RUN', 'c'); // to ga (first), which is then busy
    await eventually(() => expect(fa.inFlight).toBe(1));
    expect(await other.call('LLM.RUN', 'c')).toBe('from b');
    expect(await slow).toBe('from a');
    fa.reset();
    fb.reset();
    fa.setBehavior({ responseDelayMs: 100 });
    await router(r1, 'll', { targets: ['ga', 'gb'], strategy: 'lowest-latency' });
    await app(r1, 'd', 'll');
    for (let i = 0; i < 10; i++) await r1.call('LLM.RUN', 'd');
    expect(fa.calls()).toBe(1); // tried once, then the faster one
    expect(fb.calls()).toBe(9);
  });

  it('a router of routers works; one that reaches itself is refused', async () => {
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'inner', { targets: ['gb'] });
    await router(r1, 'outer', { targets: ['inner'] });
    await app(r1, 'a', 'outer');
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b');
    await router(r1, 'r1', { targets: ['r2'] });
    await router(r1, 'r2', { targets: ['r1'] });
    await app(r1, 'b', 'r1');
    const e = await errOf(r1.call('LLM.RUN', 'b'));
    expect(e).toBe("ERR LLM 'r1': every target failed: 'r2': every target failed: 'r1': the router reaches itself through its targets");
  });

  it('embeddings: targets must give one dimension (at create when known, at use otherwise); a router embeds for a store', async () => {
    await r1.call('LLM.CREATE-LLM', 'l16', '--TYPE', 'local', '--PARAMS', '{"dim":16}');
    await r1.call('LLM.CREATE-LLM', 'l32', '--TYPE', 'local', '--PARAMS', '{"dim":32}');
    expect(await errOf(r1.call('LLM.CREATE-LLM', 'pool', '--TYPE', 'router', '--PARAMS', '{"targets":["l16","l32"]}'))).toBe(
      "ERR failed to parse router options: target 'l32' gives 32-dimensional embeddings, 'l16' gives 16: the targets of a router must give one dimension",
    );
    // fa gives 16 dimensions like l16: the store works through the router, falling back to l16.
    await openaiLlm(r1, 'ea', fa.url, { retries: 0 });
    await router(r1, 'emb', { targets: ['ea', 'l16'], cooldown: 0 });
    expect(await r1.call('LLM.CREATE-VECTOR-STORE', 'vs', '--LLM', 'emb')).toBe(1);
    expect(await r1.call('LLM.ADD', 'vs', 'redis keeps data in memory')).toBe(1);
    fa.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await r1.call('LLM.ADD', 'vs', 'postgres keeps data on disk')).toBe(2);
    expect(fa.calls('/embeddings')).toBe(2);
    // A target whose dimension differs is found at first use.
    fb.setBehavior({ dim: 24 });
    await openaiLlm(r1, 'eb', fb.url, { retries: 0 });
    await router(r1, 'mixed', { targets: ['l16', 'eb'], cooldown: 0, strategy: 'round-robin' });
    expect(await r1.call('LLM.CREATE-VECTOR-STORE', 'vs2', '--LLM', 'mixed')).toBe(1);
    expect(await r1.call('LLM.ADD', 'vs2', 'one')).toBe(1);
    expect(await errOf(r1.call('LLM.ADD', 'vs2', 'two'))).toBe(
      "ERR LLM 'mixed': target 'eb' gives 24-dimensional embeddings, target 'l16' gave 16: the targets of a router must give one dimension",
    );
  });
});

describe('cooldowns shared by every instance', () => {
  it('a failing target is cooled down on both instances; one probe after the cooldown closes it again', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 1, failures: 2 });
    await app(r1, 'a', 'pool');
    await eventually(async () => expect(await r2.type('a')).toBe('LLMAPP-SW'));
    await eventually(async () => expect(await r2.call('LLM.RUN', 'a')).toBe('from a')); // s2 applied this test's objects (fa healthy here)
    fa.reset();
    fb.reset();
    fa.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b');
    expect(await r2.call('LLM.RUN', 'a')).toBe('from b'); // the second failure, on the other instance
    expect(fa.calls()).toBe(2);
    // Open now: neither instance calls ga.
    for (const r of [r1, r2, r1, r2]) expect(await r.call('LLM.RUN', 'a')).toBe('from b');
    expect(fa.calls()).toBe(2);
    const st2 = await stats(r2, 'pool');
    expect(st2['target.ga.state']).toBe('open');
    expect(Number((await stats(r1, 'pool'))['target.ga.cooldowns']) + Number(st2['target.ga.cooldowns'])).toBe(1);
    expect((await r2.info('llm')) as string).toMatch(/router=pool,db=0,name=ga,state=open,/);
    // Every target cooling down: the reply says so without calling anyone.
    await router(r1, 'solo', { targets: ['ga'], cooldown: 1 });
    await app(r1, 'b', 'solo');
    expect(await errOf(r1.call('LLM.RUN', 'b'))).toMatch(/^ERR failed to predict with openai: LLM 'solo': every target failed: 'ga' cooling down \(1 s left\)$/);
    expect(fa.calls()).toBe(2);
    // After the cooldown, one probe: it fails, so the circuit opens again at once (one failure).
    await sleep(1100);
    expect(await r2.call('LLM.RUN', 'a')).toBe('from b');
    expect(fa.calls()).toBe(3);
    expect(await r1.call('LLM.RUN', 'a')).toBe('from b');
    expect(fa.calls()).toBe(3);
    // The provider recovers; after the cooldown the next call probes it and it is back for everyone.
    fa.setBehavior({ fault: null });
    await sleep(1100);
    expect(await r1.call('LLM.RUN', 'a')).toBe('from a');
    expect(await r2.call('LLM.RUN', 'a')).toBe('from a');
    expect(fa.calls()).toBe(5);
    expect((await stats(r1, 'pool'))['target.ga.state']).toBe('closed');
  });

  it('an instance that just saw the target healthy learns of a cooldown opened elsewhere within CIRCUIT_CACHE_MS', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 5, failures: 1 });
    await app(r1, 'seen-a', 'pool');
    await eventually(async () => expect(await r2.type('seen-a')).toBe('LLMAPP-SW'));
    expect(await r2.call('LLM.RUN', 'seen-a')).toBe('from a'); // s2 now holds a fresh "closed" reading
    fa.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await r1.call('LLM.RUN', 'seen-a')).toBe('from b'); // s1 opens the circuit
    const before = fa.calls();
    await sleep(CIRCUIT_CACHE_MS + 20);
    expect(await r2.call('LLM.RUN', 'seen-a')).toBe('from b');
    expect(fa.calls()).toBe(before); // s2 skipped ga without calling it
    expect((await stats(r2, 'pool'))['target.ga.state']).toBe('open');
  });

  it('only one caller probes a half-open target, whichever instance it is on', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 1, failures: 1 });
    await app(r1, 'probe-a', 'pool');
    await eventually(async () => expect(await r2.type('probe-a')).toBe('LLMAPP-SW'));
    fa.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await r1.call('LLM.RUN', 'probe-a')).toBe('from b');
    expect(fa.calls()).toBe(1);
    const many = Array.from({ length: 10 }, (_, i) => client(i % 2 ? s2.port : s1.port));
    conns.push(...many);
    await Promise.all(many.map((c) => c.ping()));
    await sleep(1100);
    fa.setBehavior({ fault: null, responseDelayMs: 200 });
    // Ten calls at once over both instances: one probes ga, the others go to gb meanwhile.
    const replies = await Promise.all(many.map((c) => c.call('LLM.RUN', 'probe-a')));
    expect(replies.filter((x) => x === 'from a')).toHaveLength(1);
    expect(fa.calls()).toBe(2);
  });

  it('a probe the target answers with a 400 closes the circuit (the target is up; the input was refused)', async () => {
    await openaiLlm(r1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(r1, 'gb', fb.url, { retries: 0 });
    await router(r1, 'pool', { targets: ['ga', 'gb'], cooldown: 1, failures: 1 });
    await app(r1, 'p400', 'pool');
    fa.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await r1.call('LLM.RUN', 'p400')).toBe('from b');
    await sleep(1100);
    fa.setBehavior({ fault: { type: 'status', status: 400 } });
    expect(await errOf(r1.call('LLM.RUN', 'p400'))).toBe("ERR failed to predict with openai: LLM 'pool' target 'ga': failed to do post: 400 Bad Request: injected 400");
    fa.setBehavior({ fault: null });
    expect(await r1.call('LLM.RUN', 'p400')).toBe('from a');
    const direct = new Redis(redis.url);
    try {
      expect(await direct.keys(`${circuitBase(0, 'ga')}:*`)).toEqual([]); // closed for every instance
    } finally {
      direct.disconnect();
    }
  });

  it('circuit store: the same semantics in Redis and in memory', async () => {
    const direct = new Redis(redis.url);
    try {
      for (const kv of [new RedisKV(direct), new MemoryKV()] as KV[]) {
        const base = circuitBase(0, `t-${kv.shared}`);
        expect(await kv.circuitCheck(base, Date.now(), 500)).toEqual([0, 0]);
        expect(await kv.circuitFail(base, 2, 10_000, 300, false)).toBe(false);
        expect(await kv.circuitFail(base, 2, 10_000, 300, false)).toBe(true);
        const [state, left] = await kv.circuitCheck(base, Date.now(), 500);
        expect(state).toBe(1);
        expect(left).toBeGreaterThan(0);
        expect(left).toBeLessThanOrEqual(300);
        expect(await kv.circuitFail(base, 2, 10_000, 300, false)).toBe(false); // already open
        await sleep(320);
        expect(await kv.circuitCheck(base, Date.now(), 500)).toEqual([2, 0]); // this caller probes
        expect((await kv.circuitCheck(base, Date.now(), 500))[0]).toBe(3); // the next one waits
        await kv.circuitOk(base);
        expect(await kv.circuitCheck(base, Date.now(), 500)).toEqual([0, 0]);
        // A failed probe opens at once.
        await kv.circuitFail(base, 1, 10_000, 200, false);
        await sleep(220);
        expect(await kv.circuitCheck(base, Date.now(), 500)).toEqual([2, 0]);
        expect(await kv.circuitFail(base, 5, 10_000, 200, true)).toBe(true);
        expect((await kv.circuitCheck(base, Date.now(), 500))[0]).toBe(1);
      }
      // Keys share one hash tag (Redis Cluster).
      const keys = await direct.keys('__llm__:{cb:*');
      expect(keys.length).toBeGreaterThan(0);
      expect(new Set(keys.map((k) => /\{[^}]*\}/.exec(k)![0])).size).toBe(1);
    } finally {
      direct.disconnect();
    }
  });
});

describe('on Redis Cluster', () => {
  const nodes: RedisServerHandle[] = [];
  const servers: LlmServer[] = [];
  const cs: Redis[] = [];
  beforeAll(async () => {
    nodes.push(...(await startRedisCluster(3)));
    const url = `redis+cluster://${nodes.map((x) => `127.0.0.1:${x.port}`).join(',')}`;
    for (let i = 0; i < 2; i++) {
      const s = await startServer({ redis: url });
      await s.loadingDone;
      servers.push(s);
      cs.push(client(s.port));
    }
  }, 60_000);
  afterAll(async () => {
    for (const c of cs) c.disconnect();
    for (const s of servers) await s.stop();
    for (const n of nodes) await n.stop();
  });

  it('two instances on a cluster share a cooldown (the circuit keys of a target share one slot)', async () => {
    const [c1, c2] = cs as [Redis, Redis];
    await openaiLlm(c1, 'ga', fa.url, { retries: 0 });
    await openaiLlm(c1, 'gb', fb.url, { retries: 0 });
    await router(c1, 'pool', { targets: ['ga', 'gb'], cooldown: 5, failures: 2 });
    await app(c1, 'cl', 'pool');
    await eventually(async () => expect(await c2.type('cl')).toBe('LLMAPP-SW'), 5000);
    fa.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await c1.call('LLM.RUN', 'cl')).toBe('from b');
    expect(await c2.call('LLM.RUN', 'cl')).toBe('from b');
    expect(fa.calls()).toBe(2);
    for (const c of [c1, c2, c1, c2]) expect(await c.call('LLM.RUN', 'cl')).toBe('from b');
    expect(fa.calls()).toBe(2);
    expect((await stats(c1, 'pool'))['target.ga.state']).toBe('open');
    expect((await stats(c2, 'pool'))['target.ga.state']).toBe('open');
  });
});
