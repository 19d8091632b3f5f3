/**
 * The OpenAI / Azure providers, through the real `openai` SDK, against the local fake server.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CommandError } from '../src/errors.js';
import { logger } from '../src/log.js';
import {
  LlmError,
  createProvider,
  localEmbed,
  parseLlmConfig,
  redactConfig,
  makeLlmPolicy,
  type LlmEnv,
  type LlmPolicy,
  type LlmProvider,
} from '../src/llm/index.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';

const KEY = 'sk-proj-TESTKEY-a1b2c3d4e5f6g7h8i9';
const AZ_KEY = 'azkey-0123456789abcdef0123456789ab';

let srv: FakeOpenAI;
const providers: LlmProvider[] = [];

function openai(extra: Record<string, unknown> = {}, http: Record<string, unknown> = {}): LlmProvider {
  const p = createProvider(
    parseLlmConfig('openai', {
      api_key: KEY,
      base_url: srv.url,
      ...extra,
      http: { retry_backoff: '5ms', socket_timeout: '3s', ...http },
    }),
  );
  providers.push(p);
  return p;
}

function azure(extra: Record<string, unknown> = {}, http: Record<string, unknown> = {}): LlmProvider {
  const p = createProvider(
    parseLlmConfig('azure_openai', {
      api_key: AZ_KEY,
      endpoint: srv.url,
      chat_deployment_id: 'chat-dep',
      embedding_deployment_id: 'emb-dep',
      api_version: '2024-02-01',
      ...extra,
      http: { retry_backoff: '5ms', socket_timeout: '3s', ...http },
    }),
  );
  providers.push(p);
  return p;
}

const user = (content: string) => [{ role: 'user' as const, content }];

async function failure(p: Promise<unknown>): Promise<LlmError> {
  const e = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(LlmError);
  expect(e).toBeInstanceOf(CommandError);
  return e as LlmError;
}

beforeAll(async () => {
  logger.level = process.env.LOG_LEVEL ?? 'silent'; // failures are logged at warn: keep test output readable
  srv = await startFakeOpenAI({ dim: 16 });
});
afterAll(async () => {
  await srv.close();
});
beforeEach(() => srv.reset());
afterEach(() => {
  for (const p of providers.splice(0)) p.close();
});

/** What a call gets from a server whose operator set `policy` (only the policy matters here). */
function envOf(policy: LlmPolicy): LlmEnv {
  return { db: 0, resolve: () => undefined, circuits: undefined as unknown as LlmEnv['circuits'], policy };
}

describe('openai chat', () => {
  it('sends the exact body and returns text, usage, finish reason, model', async () => {
    const p = openai({ chat: { model: 'gpt-4o-mini', temperature: 0.25, max_tokens: 50 } });
    const r = await p.chat([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hello there world' },
    ]);
    expect(r).toEqual({
      text: 'echo: hello there world',
      finishReason: 'stop',
      usage: { promptTokens: 5, completionTokens: 4 },
      model: 'gpt-4o-mini',
    });
    expect(srv.requests).toHaveLength(1);
    const req = srv.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/chat/completions');
    expect(req.body).toEqual({
      model: 'gpt-4o-mini',
      temperature: 0.25,
      max_tokens: 50,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hello there world' },
      ],
    });
    expect(req.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(req.headers['api-key']).toBeUndefined();
    expect(p.stats.snapshot()).toMatchObject({ requests: 1, errors: 0, promptTokens: 5, completionTokens: 4 });
  });

  it('uses the default model', async () => {
    await openai().chat(user('x'));
    expect(srv.lastRequest()!.body.model).toBe('gpt-3.5-turbo');
  });

  it('joins an Ollama-style /v1 base_url with the default path', async () => {
    const p = openai({ base_url: `${srv.url}/v1` });
    await p.chat(user('a'));
    await p.embed(['b']);
    expect(srv.requests.map((r) => r.path)).toEqual(['/v1/chat/completions', '/v1/embeddings']);
  });

  it('honours custom chat_path / embedding_path under a base path', async () => {
    const p = openai({ base_url: `${srv.url}/proxy/openai`, chat_path: '/chat/completions', embedding_path: 'embeddings' });
    await p.chat(user('a'));
    await p.embed(['b']);
    expect(srv.requests.map((r) => r.path)).toEqual(['/proxy/openai/chat/completions', '/proxy/openai/embeddings']);
  });

  it('streams: deltas concatenate to the text, usage is reported', async () => {
    srv.setBehavior({ reply: () => 'one two three four five', chunkDelayMs: 2 });
    const p = openai();
    const deltas: string[] = [];
    const r = await p.chat(user('count to five'), { onDelta: (d) => deltas.push(d) });
    expect(deltas.length).toBeGreaterThanOrEqual(5);
    expect(deltas.join('')).toBe('one two three four five');
    expect(r).toEqual({
      text: 'one two three four five',
      finishReason: 'stop',
      usage: { promptTokens: 3, completionTokens: 5 },
      model: 'gpt-3.5-turbo',
    });
    const body = srv.lastRequest()!.body;
    expect(body.stream).toBe(true);
    expect(body.stream_options).toEqual({ include_usage: true });
    expect(body.messages).toEqual(user('count to five'));
    expect(p.stats.snapshot()).toMatchObject({ requests: 1, completionTokens: 5 });
  });

  it('reports finish_reason length (stream and not)', async () => {
    srv.enqueue({ type: 'length' }, 2);
    const p = openai();
    expect((await p.chat(user('long'))).finishReason).toBe('length');
    expect((await p.chat(user('long'), { onDelta: () => {} })).finishReason).toBe('length');
  });
});

describe('embeddings', () => {
  it('sends model, input and passes dimensions through; float vectors in input order', async () => {
    const p = openai({ embedding: { model: 'text-embedding-3-small', dimensions: 24 } });
    const vs = await p.embed(['first text', 'second one', 'third']);
    expect(vs).toHaveLength(3);
    expect(vs[0]).toEqual(localEmbed('first text', 24));
    expect(vs[2]).toEqual(localEmbed('third', 24));
    expect(srv.lastRequest()!.body).toEqual({ model: 'text-embedding-3-small', dimensions: 24, input: ['first text', 'second one', 'third'] });
    expect(srv.lastRequest()!.path).toBe('/v1/embeddings');
    expect(p.stats.snapshot()).toMatchObject({ requests: 1, promptTokens: 5 });
  });

  it('sends one text as a string, like the original', async () => {
    const vs = await openai().embed(['only one']);
    expect(srv.lastRequest()!.body).toEqual({ model: 'text-embedding-ada-002', input: 'only one' });
    expect(vs).toEqual([localEmbed('only one', 16)]);
  });

  it('decodes base64 (little-endian float32) embeddings', async () => {
    const p = openai({ embedding: { encoding_format: 'base64' } });
    const vs = await p.embed(['alpha beta', 'gamma']);
    expect(srv.lastRequest()!.body.encoding_format).toBe('base64');
    expect(vs[0]).toEqual(localEmbed('alpha beta', 16).map(Math.fround));
    expect(vs[1]).toEqual(localEmbed('gamma', 16).map(Math.fround));
  });

  it('orders by index whatever order the server answers in', async () => {
    srv.enqueue({
      type: 'status',
      status: 200,
      body: { object: 'list', data: [{ index: 1, embedding: [0, 1] }, { index: 0, embedding: [1, 0] }], model: 'm' },
    });
    expect(await openai().embed(['a', 'b'])).toEqual([[1, 0], [0, 1]]);
  });

  it.each([
    ['wrong count', { data: [{ index: 0, embedding: [1] }] }],
    ['duplicate index', { data: [{ index: 0, embedding: [1] }, { index: 0, embedding: [2] }] }],
    ['ragged dims', { data: [{ index: 0, embedding: [1, 2] }, { index: 1, embedding: [2] }] }],
    ['non-numbers', { data: [{ index: 0, embedding: ['x'] }, { index: 1, embedding: [2] }] }],
    ['bad base64', { data: [{ index: 0, embedding: 'AAA' }, { index: 1, embedding: 'AAAAAA==' }] }],
    ['no data', { object: 'list' }],
  ])('rejects a malformed answer: %s', async (_name, body) => {
    srv.enqueue({ type: 'status', status: 200, body });
    const e = await failure(openai().embed(['a', 'b']));
    expect(e.message).toBe('LLM response was malformed');
  });

  it(`splits more than ${2048} texts into batches, keeping the order`, async () => {
    const texts = Array.from({ length: 2050 }, (_, i) => `text number ${i}`);
    const vs = await openai().embed(texts);
    expect(srv.calls('/embeddings')).toBe(2);
    expect(srv.requests.map((r) => (r.body.input as string[]).length)).toEqual([2048, 2]);
    expect(vs).toHaveLength(2050);
    expect(vs[2049]).toEqual(localEmbed('text number 2049', 16));
    expect(vs[7]).toEqual(localEmbed('text number 7', 16));
  });

  it('embed([]) makes no request', async () => {
    expect(await openai().embed([])).toEqual([]);
    expect(srv.calls()).toBe(0);
  });
});

describe('azure_openai', () => {
  it('uses deployment paths, api-version and the api-key header', async () => {
    srv.setBehavior({ azureApiKey: AZ_KEY });
    const p = azure({ chat: { temperature: 0 } });
    const r = await p.chat(user('hi azure'));
    expect(r.text).toBe('echo: hi azure');
    expect(r.model).toBe('chat-dep');
    await p.embed(['x', 'y']);
    const [c, e] = srv.requests;
    expect(c!.path).toBe('/openai/deployments/chat-dep/chat/completions');
    expect(c!.query).toEqual({ 'api-version': '2024-02-01' });
    expect(c!.headers['api-key']).toBe(AZ_KEY);
    expect(c!.headers.authorization).toBeUndefined();
    expect(c!.body).toEqual({ temperature: 0, messages: user('hi azure') });
    expect(e!.path).toBe('/openai/deployments/emb-dep/embeddings');
    expect(e!.query).toEqual({ 'api-version': '2024-02-01' });
    expect(e!.body).toEqual({ input: ['x', 'y'] });
  });

  it('streams through Azure too', async () => {
    const deltas: string[] = [];
    const r = await azure().chat(user('a b c'), { onDelta: (d) => deltas.push(d) });
    expect(deltas.join('')).toBe('echo: a b c');
    expect(r.usage).toEqual({ promptTokens: 3, completionTokens: 4 });
    expect(srv.lastRequest()!.path).toBe('/openai/deployments/chat-dep/chat/completions');
  });

  it('an operation without its deployment fails clearly, without a request', async () => {
    const p = azure({ embedding_deployment_id: undefined });
    const e = await failure(p.embed(['x']));
    expect(e.message).toBe('this azure_openai LLM has no embedding_deployment_id: it cannot embed');
    expect(srv.calls()).toBe(0);
  });

  it('a wrong key gives 401 without echoing the key', async () => {
    srv.setBehavior({ azureApiKey: 'the-right-key' });
    const e = await failure(azure().chat(user('x')));
    expect(e.message).toMatch(/^failed to do post: 401 Unauthorized \(401\)(: .+)?$/);
    expect(e.message).not.toContain(AZ_KEY);
    expect(srv.calls()).toBe(1); // 401 is not retried
  });
});

describe('api_key from the environment', () => {
  afterEach(() => {
    delete process.env.LLM_TEST_A_API_KEY;
  });

  it('reads $NAME at call time', async () => {
    process.env.LLM_TEST_A_API_KEY = 'sk-env-first-0000000000';
    const policy = makeLlmPolicy({ keyHosts: { LLM_TEST_A_API_KEY: [`127.0.0.1:${srv.port}`] } });
    const cfg = parseLlmConfig('openai', { api_key: '$LLM_TEST_A_API_KEY', base_url: srv.url }, { policy });
    expect(redactConfig(cfg)).toMatchObject({ params: { api_key: '$LLM_TEST_A_API_KEY' } });
    const p = createProvider(cfg);
    providers.push(p);
    await p.chat(user('1'), { env: envOf(policy) });
    process.env.LLM_TEST_A_API_KEY = 'sk-env-second-1111111111';
    await p.chat(user('2'), { env: envOf(policy) });
    expect(srv.requests.map((r) => r.headers.authorization)).toEqual([
      'Bearer sk-env-first-0000000000',
      'Bearer sk-env-second-1111111111',
    ]);
  });

  it('${NAME} works for Azure', async () => {
    process.env.LLM_TEST_A_API_KEY = 'az-env-key-22222222';
    const policy = makeLlmPolicy({ keyHosts: { LLM_TEST_A_API_KEY: [`127.0.0.1:${srv.port}`] } });
    const p = createProvider(
      parseLlmConfig('azure_openai', { api_key: '${LLM_TEST_A_API_KEY}', endpoint: srv.url, embedding_deployment_id: 'emb-dep', api_version: '2024-02-01' }, { policy }),
    );
    providers.push(p);
    await p.embed(['q'], { env: envOf(policy) });
    expect(srv.lastRequest()!.headers['api-key']).toBe('az-env-key-22222222');
  });

  it('a missing variable is a clear error naming it, and no request is made', async () => {
    const policy = makeLlmPolicy({ keyHosts: { LLM_TEST_MISSING_API_KEY: [`127.0.0.1:${srv.port}`] } });
    const p = createProvider(parseLlmConfig('openai', { api_key: '$LLM_TEST_MISSING_API_KEY', base_url: srv.url }, { policy }));
    providers.push(p);
    const e = await failure(p.chat(user('x'), { env: envOf(policy) }));
    expect(e.message).toBe('api_key refers to environment variable LLM_TEST_MISSING_API_KEY, which is not set');
    const e2 = await failure(p.embed(['x'], { env: envOf(policy) }));
    expect(e2.message).toBe(e.message);
    expect(srv.calls()).toBe(0);
    expect(p.stats.snapshot()).toMatchObject({ requests: 2, errors: 2 });
  });
});

describe('retries', () => {
  it('retries 429 then succeeds, honouring retry-after-ms', async () => {
    srv.enqueue({ type: 'status', status: 429, retryAfterMs: 120 }, 2);
    const p = openai();
    const t0 = performance.now();
    const r = await p.chat(user('hi'));
    expect(r.text).toBe('echo: hi');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(230);
    expect(srv.calls()).toBe(3);
    expect(p.stats.snapshot()).toMatchObject({ requests: 1, errors: 0, retries: 2 });
  });

  it('retries 500 / 502 / 503 then succeeds', async () => {
    srv.enqueue({ type: 'status', status: 500 });
    srv.enqueue({ type: 'status', status: 503 });
    const vs = await openai().embed(['a']);
    expect(vs).toHaveLength(1);
    expect(srv.calls()).toBe(3);
  });

  it('gives up after max_retries with a clear error', async () => {
    srv.setBehavior({ fault: { type: 'status', status: 500 } });
    const p = openai({}, { max_retries: 3 });
    const e = await failure(p.chat(user('x')));
    expect(e.message).toMatch(/^failed to do post: 500 Internal Server Error(: .+)?$/);
    expect(e.status).toBe(500);
    expect(srv.calls()).toBe(4);
    expect(p.stats.snapshot()).toMatchObject({ requests: 1, errors: 1, retries: 3 });
  });

  it('429 after the retries names the status and the server code', async () => {
    srv.setBehavior({ fault: { type: 'status', status: 429, retryAfterMs: 1 } });
    const e = await failure(openai({}, { max_retries: 1 }).chat(user('x')));
    expect(e.message).toMatch(/^failed to do post: 429 Too Many Requests \(rate_limit_exceeded\)(: .+)?$/);
    expect(srv.calls()).toBe(2);
  });

  it('does not retry 400 / 404', async () => {
    srv.enqueue({ type: 'status', status: 400 });
    const e = await failure(openai().chat(user('x')));
    expect(e.message).toMatch(/^failed to do post: 400 Bad Request(: .+)?$/);
    expect(srv.calls()).toBe(1);
    srv.reset();
    const e404 = await failure(openai({ chat_path: '/nope' }).chat(user('x')));
    expect(e404.message).toMatch(/^failed to do post: 404 Not Found \(not_found\)(: .+)?$/);
    expect(srv.calls()).toBe(1);
  });

  it('does not wait past the deadline for a long retry-after', async () => {
    srv.enqueue({ type: 'status', status: 429, retryAfterMs: 5000 });
    const t0 = performance.now();
    const e = await failure(openai().chat(user('x'), { timeoutMs: 1000 }));
    expect(e.message).toMatch(/^failed to do post: 429 Too Many Requests/);
    expect(performance.now() - t0).toBeLessThan(900);
  });

  it('retries a dropped connection, then reports it', async () => {
    srv.enqueue({ type: 'destroy' });
    expect((await openai().chat(user('ok'))).text).toBe('echo: ok');
    expect(srv.calls()).toBe(2);
    srv.reset();
    srv.setBehavior({ fault: { type: 'destroy' } });
    const e = await failure(openai({}, { max_retries: 2 }).chat(user('x')));
    expect(e.message).toBe('LLM request failed: connection reset');
    expect(srv.calls()).toBe(3);
  });

  it('a body cut in the middle is retried like a dropped connection', async () => {
    srv.enqueue({ type: 'break-stream' });
    expect(await openai().embed(['a', 'b'])).toHaveLength(2);
    expect(srv.calls()).toBe(2);
  });
});

describe('failures', () => {
  it('times out a hanging server with the call timeout', async () => {
    srv.setBehavior({ fault: { type: 'hang' } });
    const p = openai();
    const t0 = performance.now();
    const e = await failure(p.chat(user('x'), { timeoutMs: 200 }));
    const took = performance.now() - t0;
    expect(e.message).toBe('LLM request timed out after 200 ms');
    expect(e.kind).toBe('timeout');
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1500);
    expect(p.stats.snapshot()).toMatchObject({ requests: 1, errors: 1 });
  });

  it('uses http.socket_timeout when the call gives none', async () => {
    srv.setBehavior({ fault: { type: 'hang' } });
    const e = await failure(openai({}, { socket_timeout: '150ms' }).embed(['x']));
    expect(e.message).toBe('LLM request timed out after 150 ms');
  });

  it('times out a stream that stalls', async () => {
    srv.setBehavior({ reply: () => 'a b c d e f g h', chunkDelayMs: 150 });
    const deltas: string[] = [];
    const e = await failure(openai().chat(user('x'), { timeoutMs: 500, onDelta: (d) => deltas.push(d) }));
    expect(e.message).toBe('LLM request timed out after 500 ms');
    expect(deltas.length).toBeGreaterThan(0);
  });

  it('reports malformed JSON (not retried)', async () => {
    srv.setBehavior({ fault: { type: 'malformed' } });
    const p = openai();
    expect((await failure(p.chat(user('x')))).message).toBe('LLM response was malformed');
    expect((await failure(p.embed(['x']))).message).toBe('LLM response was malformed');
    expect((await failure(p.chat(user('x'), { onDelta: () => {} }))).message).toBe('LLM response was malformed');
    expect(srv.calls()).toBe(3);
  });

  it('reports a malformed but valid-JSON chat answer', async () => {
    srv.enqueue({ type: 'status', status: 200, body: { choices: [] } });
    expect((await failure(openai().chat(user('x')))).message).toBe('LLM response was malformed');
  });

  it('reports a stream that breaks midway, without retrying it', async () => {
    srv.setBehavior({ fault: { type: 'break-stream', afterChunks: 2 }, reply: () => 'w1 w2 w3 w4 w5' });
    const deltas: string[] = [];
    const e = await failure(openai().chat(user('x'), { onDelta: (d) => deltas.push(d) }));
    expect(e.message).toBe('LLM response stream was interrupted');
    expect(deltas.join('')).toBe('w1 w2 ');
    expect(srv.calls()).toBe(1);
  });

  it('reports connection refused', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const p = openai({ base_url: `http://127.0.0.1:${port}` }, { max_retries: 1 });
    const e = await failure(p.chat(user('x')));
    expect(e.message).toBe('LLM request failed: connection refused');
    expect(p.stats.snapshot()).toMatchObject({ retries: 1, errors: 1 });
  });

  it('aborts on the caller signal, in flight and before start', async () => {
    srv.setBehavior({ fault: { type: 'hang' } });
    const p = openai();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    expect((await failure(p.chat(user('x'), { signal: ac.signal }))).message).toBe('LLM request aborted');
    expect((await failure(p.embed(['x'], { signal: AbortSignal.abort() }))).message).toBe('LLM request aborted');
  });

  it('rejects bad arguments without a request', async () => {
    const p = openai();
    expect((await failure(p.chat([]))).message).toMatch(/messages must be a non-empty list/);
    expect((await failure(p.chat([{ role: 'robot', content: 'x' } as never]))).message).toMatch(/messages/);
    expect((await failure(p.embed([1 as never]))).message).toMatch(/texts must be strings/);
    expect((await failure(p.chat(user('x'), { timeoutMs: -1 }))).message).toMatch(/timeout must be a positive/);
    expect(srv.calls()).toBe(0);
  });

  it('does not follow redirects', async () => {
    srv.enqueue({ type: 'status', status: 307, headers: { location: 'http://169.254.169.254/latest/meta-data' } });
    const e = await failure(openai().chat(user('x')));
    expect(e.message).toMatch(/^failed to do post: 307 Temporary Redirect(: .+)?$/);
    expect(srv.calls()).toBe(1);
  });

  it('a closed provider refuses calls', async () => {
    const p = openai();
    p.close();
    p.close();
    expect((await failure(p.chat(user('x')))).message).toBe('LLM provider is closed');
  });

  it('re-checks the host allow-list at call time', async () => {
    const p = openai();
    const e = await failure(p.chat(user('x'), { env: envOf(makeLlmPolicy({ allowHosts: ['api.openai.com'] })) }));
    expect(e.message).toBe(`base_url host '127.0.0.1:${srv.port}' is not in the allowed LLM hosts`);
    expect(srv.calls()).toBe(0);
    expect((await p.chat(user('y'), { env: envOf(makeLlmPolicy({ allowHosts: [`127.0.0.1:${srv.port}`] })) })).text).toBe('echo: y');
  });

  it('re-checks where a "$NAME" key may go at call time: a definition stored under a wider policy sends nothing', async () => {
    process.env.LLM_TEST_A_API_KEY = 'sk-env-bound-3333333333';
    const wide = makeLlmPolicy({ keyHosts: { LLM_TEST_A_API_KEY: [`127.0.0.1:${srv.port}`] } });
    const p = createProvider(parseLlmConfig('openai', { api_key: '$LLM_TEST_A_API_KEY', base_url: srv.url }, { policy: wide }));
    providers.push(p);
    for (const call of [() => p.chat(user('x')), () => p.embed(['x']), () => p.chat(user('x'), { env: envOf(makeLlmPolicy()) })]) {
      const e = await failure(call());
      expect(e.message).toMatch(/^api_key \$LLM_TEST_A_API_KEY may be sent only to api\.openai\.com:443 .*llm-key-hosts LLM_TEST_A_API_KEY/);
      expect(e.message).not.toContain('sk-env-bound');
    }
    expect(srv.calls()).toBe(0);
    expect((await p.chat(user('ok'), { env: envOf(wide) })).text).toBe('echo: ok');
  });
});

describe('pool', () => {
  it('with pool size 2, at most 2 requests are in flight at the server', async () => {
    srv.setBehavior({ responseDelayMs: 60 });
    const p = openai({}, { pool: { size: 2 } });
    const results = Promise.all([0, 1, 2, 3, 4].map((i) => p.chat(user(`m${i}`))));
    await new Promise((r) => setTimeout(r, 20));
    expect(p.stats.snapshot()).toMatchObject({ inFlight: 2, queued: 3 });
    const rs = await results;
    expect(rs.map((r) => r.text)).toEqual(['echo: m0', 'echo: m1', 'echo: m2', 'echo: m3', 'echo: m4']);
    expect(srv.calls()).toBe(5);
    expect(srv.maxInFlight).toBe(2);
    expect(p.stats.snapshot()).toMatchObject({ inFlight: 0, queued: 0, requests: 5 });
  });

  it('a waiter gives up after pool.wait_timeout', async () => {
    srv.setBehavior({ responseDelayMs: 300 });
    const p = openai({}, { pool: { size: 1, wait_timeout: '50ms' } });
    const first = p.chat(user('slow'));
    const e = await failure(p.chat(user('queued')));
    expect(e.message).toBe('LLM request failed: no free connection within 50 ms (pool size 1)');
    expect((await first).text).toBe('echo: slow');
    expect(srv.calls()).toBe(1);
  });

  it('the call deadline also bounds the wait for a slot', async () => {
    srv.setBehavior({ fault: { type: 'hang' } });
    const p = openai({}, { pool: { size: 1 } });
    const first = p.chat(user('hang'), { timeoutMs: 400 }).catch((x: Error) => x);
    const e = await failure(p.chat(user('queued'), { timeoutMs: 100 }));
    expect(e.message).toBe('LLM request timed out after 100 ms');
    expect(((await first) as Error).message).toBe('LLM request timed out after 400 ms');
    expect(srv.calls()).toBe(1);
  });
});

describe('proxy', () => {
  it('sends requests through http.proxy_host / proxy_port', async () => {
    let tunnels = 0;
    const proxy = http.createServer((_req, res) => {
      res.writeHead(502).end();
    });
    proxy.on('connect', (req, client, head) => {
      tunnels++;
      const [host, port] = String(req.url).split(':');
      const upstream = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    try {
      const pport = (proxy.address() as AddressInfo).port;
      const p = openai({}, { proxy_host: '127.0.0.1', proxy_port: pport });
      expect((await p.chat(user('via proxy'))).text).toBe('echo: via proxy');
      expect(tunnels).toBe(1);
      p.close();
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});

// A self-signed certificate for 127.0.0.1 / localhost (test fixture only, valid until 2126).
const TEST_TLS = {
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJP7Ojd7uxo0TxRBe
lwIKU2ecroHpbHCN1Mis/6pEmtyhRANCAARhAJpSIOgj0nvAsltFipRaukKc2ZOJ
sYEoQUjlOIW8suSwQ8uHKBrCnTYXE3WXdGjw7UzU+tJDlJVDpLe/rNLH
-----END PRIVATE KEY-----
`,
  cert: `-----BEGIN CERTIFICATE-----
MIIBnDCCAUGgAwIBAgIULPMiy3DtJH/X2R4ktGLHVuOLzLEwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMTEzMjYwNloYDzIxMjYxMDI4
MTMyNjA2WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARhAJpSIOgj0nvAsltFipRaukKc2ZOJsYEoQUjlOIW8suSwQ8uHKBrC
nTYXE3WXdGjw7UzU+tJDlJVDpLe/rNLHo28wbTAdBgNVHQ4EFgQUKHWcGXbj+yNQ
Yisq/GKuMtWnap4wHwYDVR0jBBgwFoAUKHWcGXbj+yNQYisq/GKuMtWnap4wDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSQAwRgIhAOV2nBdEVFR+IS76rgAGRrrBWY52Qwc16qjPcFBpDq8WAiEA
vcjBMPiSwPZ8ctcPWegkfPF2aNQITcQ5boku+0PSRv4=
-----END CERTIFICATE-----
`,
};

describe('TLS', () => {
  it('verifies certificates by default; enable_certificate_verification: false opts out', async () => {
    const tls = await startFakeOpenAI({ tls: TEST_TLS });
    try {
      expect(tls.url).toMatch(/^https:/);
      const strict = openai({ base_url: tls.url });
      const e = await failure(strict.chat(user('x')));
      expect(e.message).toBe('LLM request failed: TLS certificate verification failed');
      expect(tls.calls()).toBe(0);
      const lax = openai({ base_url: tls.url }, { enable_certificate_verification: false });
      expect((await lax.chat(user('over tls'))).text).toBe('echo: over tls');
      expect(tls.calls()).toBe(1);
    } finally {
      await tls.close();
    }
  });
});

describe('secrets never leak', () => {
  it('no error message, log line or redacted config contains the key', async () => {
    const messages: string[] = [];
    const logged: string[] = [];
    const spies = (['warn', 'error', 'info', 'debug'] as const).map((lvl) =>
      vi.spyOn(logger, lvl).mockImplementation(((...args: unknown[]) => {
        logged.push(JSON.stringify(args));
      }) as never),
    );
    try {
      srv.setBehavior({ apiKey: 'sk-the-server-wants-another-key' }); // 401 bodies echo the key sent
      const p = openai({}, { max_retries: 1 });
      const proxyCfg = parseLlmConfig('openai', {
        api_key: KEY,
        http: { retry_backoff: '1ms', proxy_host: `http://u:${KEY}@127.0.0.1:1` },
      });
      const viaProxy = createProvider(proxyCfg);
      providers.push(viaProxy);
      // Each is handled at once (failure), so one that fails before the others is not unhandled.
      const attempts = [
        p.chat(user('x')),
        p.chat(user('x'), { onDelta: () => {} }),
        p.embed(['x']),
        viaProxy.chat(user('x'), { timeoutMs: 2000 }),
      ].map((a) => failure(a));
      for (const a of attempts) messages.push((await a).message);
      expect(messages[0]).toMatch(/^failed to do post: 401 Unauthorized \(invalid_api_key\)(: .+)?$/);
      srv.setBehavior({ apiKey: undefined });
      for (const fault of [
        { type: 'status', status: 500 },
        { type: 'status', status: 429 },
        { type: 'malformed' },
        { type: 'destroy' },
        { type: 'break-stream' },
      ] as const) {
        srv.setBehavior({ fault });
        messages.push((await failure(p.chat(user('x'), { onDelta: () => {} }))).message);
        messages.push((await failure(p.embed(['x']))).message);
      }
      srv.setBehavior({ fault: { type: 'hang' } });
      messages.push((await failure(p.chat(user('x'), { timeoutMs: 50 }))).message);
      for (const bad of [{ api_key: KEY, base_url: 'ftp://x' }, { api_key: KEY, http: { pool: { size: -1 } } }]) {
        try {
          parseLlmConfig('openai', bad);
        } catch (e) {
          messages.push((e as Error).message);
        }
      }
      const shown = JSON.stringify([redactConfig(proxyCfg), redactConfig(parseLlmConfig('openai', { api_key: KEY }))]);
      if (process.env.SHOW_LOGS) console.log(logged.join('\n'));
      expect(messages.length).toBeGreaterThan(14);
      expect(logged.length).toBeGreaterThan(0);
      for (const text of [...messages, ...logged, shown]) {
        expect(text).not.toContain(KEY);
        expect(text).not.toContain('TESTKEY');
      }
    } finally {
      for (const s of spies) s.mockRestore();
    }
  });
});

describe('stats', () => {
  it('tracks latency percentiles of real calls', async () => {
    const p = openai();
    for (let i = 0; i < 10; i++) await p.chat(user(`q${i}`));
    srv.setBehavior({ responseDelayMs: 80 });
    await p.chat(user('slow'));
    const s = p.stats.snapshot();
    expect(s.requests).toBe(11);
    expect(s.latencyP50Ms).toBeGreaterThan(0);
    expect(s.latencyP50Ms).toBeLessThan(80);
    expect(s.latencyP99Ms).toBeGreaterThanOrEqual(80);
    p.stats.reset();
    expect(p.stats.snapshot()).toMatchObject({ requests: 0, latencyP99Ms: 0 });
  });
});
