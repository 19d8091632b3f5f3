/**
 * A drop-in for redis-llm users (issue 18): the replies, error texts, COMMAND INFO and defaults
 * the original module gives for the same requests (see ../shared/spec/redis-llm-reference.md,
 * "Details checked by running the original side by side"), next to the fixes this project keeps.
 * A real redis-server behind an in-process server, the fake OpenAI endpoint, ioredis and redis-cli.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { LlmServer } from '../src/server/server.js';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import { errOf, leaks } from '../harness/replies.js';
import { APIError } from 'openai';
import { LlmError, OPERATION, toLlmError, withOperation } from '../src/llm/errors.js';
import type { StoreObject } from '../src/objects/objects.js';
import { IdAliases } from '../src/vector/id-alias.js';
import { unwrapStoreSnapshot, wrapStoreSnapshot } from '../src/objects/snapshot-format.js';

const KEY = 'sk-compat-COMPATKEY-0123456789abcdef';

let redis: RedisServerHandle;
let fake: FakeOpenAI;
let server: LlmServer;
let r: Redis;

type Arg = string | number | Buffer;
const call = (cmd: string, ...args: Arg[]): Promise<any> => r.call(cmd, ...args);

function params(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ api_key: '$OPENAI_API_KEY', base_url: fake.url, http: { retry_backoff: '5ms', max_retries: 0 }, ...extra });
}

function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-p', String(server.port), ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(new Error(`${err.message}\n${stderr}`));
      resolve(stdout);
    });
  });
}

beforeAll(async () => {
  process.env.OPENAI_API_KEY = KEY;
  redis = await startRedis();
  fake = await startFakeOpenAI({ apiKey: KEY, dim: 16 });
  server = await startServer({ redis: redis.url, llmKeyHosts: { OPENAI_API_KEY: ['127.0.0.1'] } });
  await server.loadingDone;
  r = client(server.port);
});

afterAll(async () => {
  r?.disconnect();
  await server?.stop();
  await fake?.close();
  await redis?.stop();
});

beforeEach(async () => {
  process.env.OPENAI_API_KEY = KEY;
  fake.reset();
  await r.flushall();
});

describe('TYPE and COMMAND INFO as the original', () => {
  it("TYPE answers the module's type names; SCAN TYPE filters on them", async () => {
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-APP', 'app', '--LLM', 'gpt');
    await call('LLM.CREATE-VECTOR-STORE', 'store', '--LLM', 'gpt');
    await call('LLM.CREATE-SEARCH', 'search', '--LLM', 'gpt', '--VECTOR-STORE', 'store');
    await call('LLM.CREATE-CHAT', 'chat', '--LLM', 'gpt', '--VECTOR-STORE', 'store');
    const types: Record<string, string> = {};
    for (const k of ['gpt', 'app', 'store', 'search', 'chat']) types[k] = await r.type(k);
    expect(types).toEqual({ gpt: 'LLMMOD-SW', app: 'LLMAPP-SW', store: 'LLMVEC-SW', search: 'LLMAPP-SW', chat: 'LLMAPP-SW' });
    expect((await r.scan('0', 'TYPE', 'LLMAPP-SW'))[1].sort()).toEqual(['app', 'chat', 'search']);
    expect((await r.scan('0', 'TYPE', 'LLMVEC-SW'))[1]).toEqual(['store']);
    expect((await r.scan('0', 'TYPE', 'llmmod-sw'))[1]).toEqual(['gpt']);
    // The descriptive kind is in LLM.INFO.
    expect(((await call('LLM.INFO', 'search')) as string[]).slice(0, 2)).toEqual(['type', 'llm-search']);
  });

  it('COMMAND INFO: arity -1, keys 1/1/1 and the flags of the original for its eleven commands', async () => {
    const want: Record<string, string[]> = {
      'llm.create-llm': ['write', 'denyoom', 'module'],
      'llm.create-app': ['write', 'denyoom', 'module'],
      'llm.create-search': ['write', 'denyoom', 'module'],
      'llm.create-chat': ['write', 'denyoom', 'module'],
      'llm.create-vector-store': ['write', 'denyoom', 'module'],
      'llm.add': ['write', 'denyoom', 'module'],
      'llm.rem': ['write', 'denyoom', 'module'],
      'llm.get': ['readonly', 'module'],
      'llm.run': ['readonly', 'module'],
      'llm.knn': ['readonly', 'module'],
      'llm.size': ['readonly', 'module'],
    };
    const names = Object.keys(want);
    const info = (await r.call('COMMAND', 'INFO', ...names)) as unknown[][];
    for (const [i, name] of names.entries()) {
      const e = info[i]!;
      expect(e[0], name).toBe(name);
      expect(e.slice(1, 2).concat(e.slice(3, 6)), name).toEqual([-1, 1, 1, 1]);
      expect(e[2], name).toEqual(want[name]);
      // ACL categories as Redis derives them from a module command's flags.
      expect(e[6], name).toEqual([want[name]!.includes('write') ? '@write' : '@read', '@slow']);
    }
    // Our own commands are module commands too.
    const extra = (await r.call('COMMAND', 'INFO', 'llm.info', 'llm.history', 'llm.setattrs')) as unknown[][];
    expect(extra.map((e) => e[1])).toEqual([-1, -1, -1]);
  });
});

describe('error texts: the original words, then the detail', () => {
  it('arity errors name the command as registered', async () => {
    expect(await errOf(call('LLM.ADD', 'store'))).toBe("ERR wrong number of arguments for 'LLM.ADD' command");
    expect(await errOf(call('LLM.SIZE'))).toBe("ERR wrong number of arguments for 'LLM.SIZE' command");
    expect(await errOf(call('LLM.GET', 'store', '1', '2'))).toBe("ERR wrong number of arguments for 'LLM.GET' command");
    expect(await errOf(call('LLM.REM', 'store'))).toBe("ERR wrong number of arguments for 'LLM.REM' command");
    expect(await errOf(call('LLM.CREATE-APP', 'a', 'extra'))).toBe("ERR wrong number of arguments for 'LLM.CREATE-APP' command");
    expect(await errOf(call('LLM.RUN'))).toBe("ERR wrong number of arguments for 'LLM.RUN' command");
    expect(await errOf(call('llm.knn', 'store'))).toBe("ERR wrong number of arguments for 'LLM.KNN' command");
  });

  it('missing objects are named after the original text', async () => {
    expect(await errOf(call('LLM.RUN', 'faq', 'hi'))).toBe('ERR Application does not exist: faq');
    expect(await errOf(call('LLM.ADD', 'nostore', '--EMBEDDING', '1,2', 'x'))).toBe('ERR vector store does not exist: nostore');
    expect(await errOf(call('LLM.KNN', 'nostore', '--EMBEDDING', '1,2'))).toBe('ERR vector store does not exist: nostore');
    expect(await errOf(call('LLM.KNN', 'nostore', 'a query'))).toBe('ERR vector store does not exist: nostore');

    // References stay lazy: an app may be created before its LLM and store.
    expect(await call('LLM.CREATE-APP', 'early', '--LLM', 'nosuchllm', '--PROMPT', 'hi')).toBe(1);
    expect(await errOf(call('LLM.RUN', 'early'))).toBe('ERR LLM model not exist: nosuchllm');
    expect(await call('LLM.CREATE-CHAT', 'talk', '--LLM', 'gpt', '--VECTOR-STORE', 'chat-memory')).toBe(1);
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    expect(await errOf(call('LLM.RUN', 'talk', 'hello'))).toBe('ERR vector store does not exist: chat-memory');

    // A store whose LLM is missing: LLM.ADD of text, and a search app even while the store is empty.
    await call('LLM.CREATE-VECTOR-STORE', 'docs', '--LLM', 'embedder');
    expect(await errOf(call('LLM.ADD', 'docs', 'some text'))).toBe('ERR LLM model for vector store does not exist: embedder');
    await call('LLM.CREATE-SEARCH', 'qa', '--LLM', 'gpt', '--VECTOR-STORE', 'docs');
    expect(await errOf(call('LLM.RUN', 'qa', 'a question'))).toBe('ERR LLM model does not exist: embedder');
    await call('LLM.CREATE-VECTOR-STORE', 'bare');
    await call('LLM.CREATE-SEARCH', 'qa2', '--LLM', 'gpt', '--VECTOR-STORE', 'bare');
    expect(await errOf(call('LLM.RUN', 'qa2', 'a question'))).toBe("ERR LLM model does not exist: vector store 'bare' has no --LLM");
    expect(fake.calls()).toBe(0);
  });

  it('dimension errors give both dimensions', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 's');
    await call('LLM.ADD', 's', '--EMBEDDING', '1,2,3', 'three');
    expect(await errOf(call('LLM.ADD', 's', '--EMBEDDING', '1,2', 'two'))).toBe('ERR vector dimension does not match: store has 3, got 2');
    expect(await errOf(call('LLM.KNN', 's', '--EMBEDDING', '1,2,3,4'))).toBe('ERR vector dimension does not match: store has 3, got 4');
    expect(await call('LLM.SIZE', 's')).toBe(1);
  });

  it('bad options: provider and store options, timeout units, k and timeout numbers, --VARS', async () => {
    expect(await errOf(call('LLM.CREATE-LLM', 'x', '--PARAMS', JSON.stringify({ base_url: fake.url })))).toBe(
      "ERR failed to parse openai options: 'api_key' is required for type openai",
    );
    const azure = await errOf(call('LLM.CREATE-LLM', 'x', '--TYPE', 'azure_openai', '--PARAMS', JSON.stringify({ api_key: KEY })));
    expect(azure).toMatch(/^ERR failed to parse openai options: /);
    expect(leaks(azure, KEY)).toBe(false); // the original put the whole params (and the key) in this error
    expect(await errOf(call('LLM.CREATE-LLM', 'x', '--PARAMS', params({ http: { socket_timeout: '5x' } })))).toMatch(/^ERR unknown timeout unit: x\b/);
    expect(await errOf(call('LLM.CREATE-VECTOR-STORE', 'v', '--PARAMS', '{"m":"many"}'))).toMatch(/^ERR failed to parse vector store options: m /);
    await call('LLM.CREATE-VECTOR-STORE', 'v');
    for (const k of ['x', '-1', '1.5']) expect(await errOf(call('LLM.KNN', 'v', '--K', k, '--EMBEDDING', '1'))).toMatch(/^ERR invalid k: /);
    expect(await errOf(call('LLM.CREATE-SEARCH', 'q', '--VECTOR-STORE', 'v', '--K', 'ten'))).toMatch(/^ERR invalid k: /);
    expect(await errOf(call('LLM.KNN', 'v', '--TIMEOUT', '5s', 'q'))).toMatch(/^ERR timeout should be a number: /);
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-APP', 'app', '--LLM', 'gpt', '--PROMPT', 'Hi {{name}}');
    expect(await errOf(call('LLM.RUN', 'app', '--VARS', '[1]'))).toBe('ERR failed to render prompt: --VARS must be a JSON object');
    expect(await errOf(call('LLM.RUN', 'app', '--VARS', '{}'))).toBe("ERR failed to render prompt: variable 'name' not found");
    for (const k of ['x', 'v', 'q']) expect(await r.exists(k)).toBe(k === 'v' ? 1 : 0);
    expect(fake.calls()).toBe(0);
  });

  it("provider failures say what the provider said, never the key, and long bodies are cut", async () => {
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-APP', 'app', '--LLM', 'gpt', '--PROMPT', 'hello');
    fake.enqueue({ type: 'status', status: 400, body: { error: { message: "Invalid value for 'temperature': must be <= 2", type: 'invalid_request_error', code: null } } });
    expect(await errOf(call('LLM.RUN', 'app'))).toBe("ERR failed to predict with openai: LLM 'gpt': failed to do post: 400 Bad Request: Invalid value for 'temperature': must be <= 2");

    // A wrong key: the fake's 401 body echoes the key it was sent.
    await call('LLM.CREATE-LLM', 'wrong', '--PARAMS', JSON.stringify({ api_key: 'sk-wrong-WRONGKEY-0123456789', base_url: fake.url, http: { max_retries: 0 } }));
    await call('LLM.CREATE-APP', 'app2', '--LLM', 'wrong', '--PROMPT', 'hello');
    const e401 = await errOf(call('LLM.RUN', 'app2'));
    expect(e401).toMatch(/^ERR failed to predict with openai: LLM 'wrong': failed to do post: 401 Unauthorized/);
    expect(e401).toContain('[redacted]');
    expect(leaks(e401, 'sk-wrong-WRONGKEY-0123456789')).toBe(false);
    expect(leaks(e401, KEY)).toBe(false);

    // A very long message is cut.
    fake.enqueue({ type: 'status', status: 502, body: { error: { message: `Bad gateway: ${'x'.repeat(5000)}` } } });
    const e502 = await errOf(call('LLM.RUN', 'app'));
    expect(e502).toMatch(/^ERR failed to predict with openai: LLM 'gpt': failed to do post: 502 Bad Gateway: Bad gateway: x+\.\.\.$/);
    expect(e502.length).toBeLessThan(700);
  });

  it('a text body (a proxy error page) is what the provider said; the operation is named as the original names it', () => {
    const page = APIError.generate(502, undefined, `<html>bad gateway, key ${KEY}</html>`, new Headers());
    const e = toLlmError(page, { secrets: [KEY] });
    expect(e.message).toBe('failed to do post: 502 Bad Gateway: <html>bad gateway, key [redacted]</html>');
    expect((withOperation(e, OPERATION.predict) as Error).message).toBe(`failed to predict with openai: ${e.message}`);
    const empty = toLlmError(APIError.generate(500, undefined, undefined, new Headers()));
    expect((withOperation(empty, OPERATION.embed) as Error).message).toBe('failed to request embedding: failed to do post: 500 Internal Server Error');
    // This server's own configuration errors are not provider failures.
    const cfg = new LlmError('api_key refers to environment variable X_API_KEY, which is not set', 'config');
    expect(withOperation(cfg, OPERATION.chat)).toBe(cfg);
  });

  it('timeouts and failures of chat apps and embeddings carry the operation too', async () => {
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-VECTOR-STORE', 'docs', '--LLM', 'gpt');
    await call('LLM.CREATE-CHAT', 'chat', '--LLM', 'gpt');
    await call('LLM.CREATE-APP', 'app', '--LLM', 'gpt', '--PROMPT', 'hi');
    fake.setBehavior({ fault: { type: 'hang' } });
    expect(await errOf(call('LLM.RUN', 'app', '--TIMEOUT', '100'))).toBe("ERR failed to predict with openai: LLM 'gpt' request timed out after 100 ms");
    expect(await errOf(call('LLM.RUN', 'chat', '--TIMEOUT', '100', 'hello'))).toBe("ERR failed to predict: LLM 'gpt' request timed out after 100 ms");
    expect(await errOf(call('LLM.ADD', 'docs', '--TIMEOUT', '100', 'text'))).toBe("ERR failed to request embedding: LLM 'gpt' request timed out after 100 ms");
    fake.reset();
    fake.enqueue({ type: 'status', status: 404 });
    expect(await errOf(call('LLM.KNN', 'docs', 'query'))).toBe("ERR failed to request embedding: LLM 'gpt': failed to do post: 404 Not Found: injected 404");
  });
});

describe('LLM.RUN --VERBOSE', () => {
  it('replies the rendered request, a blank line, then the completion, for every app kind and option position', async () => {
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-APP', 'app', '--LLM', 'gpt', '--PROMPT', 'Say hello to {{name}}');
    const vars = '{"name":"LLM"}';
    expect(await call('LLM.RUN', 'app', '--VERBOSE', '--VARS', vars, 'how are you?')).toBe(
      'Say hello to LLM\n\nhow are you?\n\necho: Say hello to LLM\n\nhow are you?',
    );
    expect(await call('LLM.RUN', 'app', '--VARS', vars, '--verbose')).toBe('Say hello to LLM\n\necho: Say hello to LLM');
    // Not sent to the LLM as the input.
    expect(fake.requests.at(-1)!.body.messages).toEqual([{ role: 'user', content: 'Say hello to LLM' }]);

    await call('LLM.CREATE-VECTOR-STORE', 'docs', '--LLM', 'gpt');
    await call('LLM.ADD', 'docs', 'Redis keeps data in memory');
    await call('LLM.CREATE-SEARCH', 'qa', '--LLM', 'gpt', '--VECTOR-STORE', 'docs', '--K', '1');
    const request =
      'Please answer the following question based on the given context.\nContext: """\nRedis keeps data in memory\n"""\nQuestion: """\nwhere is data?\n"""\nAnswer: ';
    expect(await call('LLM.RUN', 'qa', '--VERBOSE', 'where is data?')).toBe(`${request}\n\necho: ${request}`);

    await call('LLM.CREATE-CHAT', 'chat', '--LLM', 'gpt', '--VECTOR-STORE', 'docs');
    const out = (await call('LLM.RUN', 'chat', '--VERBOSE', 'hi there')) as string;
    const system = 'You are a friendly chatbot. The following is a summary of parts of your chat history with user: """\n\n"""';
    expect(out).toBe(`system: ${system}\nuser: hi there\n\necho: hi there`);
  });
});

describe('prompt and LLM sources, default prompts', () => {
  it('"prompt" in --PARAMS is a prompt source (--PROMPT wins); the rest are request fields', async () => {
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-APP', 'a', '--LLM', 'gpt', '--PARAMS', '{"prompt":"Tell {{who}} a joke","temperature":0.5}');
    expect(await call('LLM.RUN', 'a', '--VARS', '{"who":"Bob"}')).toBe('echo: Tell Bob a joke');
    expect(fake.requests.at(-1)!.body.temperature).toBe(0.5);
    expect(fake.requests.at(-1)!.body.prompt).toBeUndefined();
    await call('LLM.CREATE-APP', 'b', '--LLM', 'gpt', '--PROMPT', 'From the option', '--PARAMS', '{"prompt":"From params"}');
    expect(await call('LLM.RUN', 'b')).toBe('echo: From the option');
    expect(await errOf(call('LLM.CREATE-APP', 'c', '--PARAMS', '{"prompt":5}'))).toBe("ERR invalid --PARAMS: 'prompt' must be a string");

    await call('LLM.CREATE-VECTOR-STORE', 'docs', '--LLM', 'gpt');
    await call('LLM.ADD', 'docs', 'Paris is in France');
    await call('LLM.CREATE-SEARCH', 's', '--LLM', 'gpt', '--VECTOR-STORE', 'docs', '--PARAMS', '{"prompt":"C={{context}} Q={{question}}"}');
    expect(await call('LLM.RUN', 's', 'where is Paris?')).toBe('echo: C=Paris is in France Q=where is Paris?');
    await call('LLM.CREATE-CHAT', 'c', '--LLM', 'gpt', '--PARAMS', '{"prompt":"You are terse. {{history}}"}');
    await call('LLM.RUN', 'c', 'hello');
    expect(fake.requests.at(-1)!.body.messages[0]).toEqual({ role: 'system', content: 'You are terse. ' });
  });

  it('the definition keys of the original inside --PARAMS (vector-store, k, history) are no request fields', async () => {
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-VECTOR-STORE', 'docs', '--LLM', 'gpt');
    for (const t of ['one', 'two', 'three']) await call('LLM.ADD', 'docs', `fact ${t}`);
    await call('LLM.CREATE-SEARCH', 's', '--LLM', 'gpt', '--PARAMS', '{"vector-store":"docs","k":2,"prompt":"{{context}}|{{question}}","temperature":0}');
    expect(await call('LLM.RUN', 's', 'fact one')).toMatch(/^echo: fact one\nfact \w+\|fact one$/);
    expect(fake.requests.at(-1)!.body).toMatchObject({ temperature: 0 });
    expect(fake.requests.at(-1)!.body).not.toHaveProperty('k');
    expect(fake.requests.at(-1)!.body).not.toHaveProperty('vector-store');
    expect(await errOf(call('LLM.CREATE-SEARCH', 's2', '--PARAMS', '{"k":2}'))).toBe('ERR no vector store is specified');
    expect(await errOf(call('LLM.CREATE-SEARCH', 's2', '--PARAMS', '{"vector_store":"docs","k":0}'))).toMatch(/^ERR invalid k: /);
    await call('LLM.CREATE-CHAT', 'c', '--LLM', 'gpt', '--PARAMS', '{"vector-store":"docs","history":{"msg_ctx_cnt":1,"summary_cnt":0}}');
    await call('LLM.RUN', 'c', 'first');
    await call('LLM.RUN', 'c', 'second');
    // msg_ctx_cnt 1: the system message, one earlier message, the input
    expect(fake.requests.at(-1)!.body.messages).toHaveLength(3);
    expect(fake.requests.at(-1)!.body).not.toHaveProperty('history');
    const cfg = JSON.parse(((await call('LLM.INFO', 'c')) as string[])[5]!);
    expect(cfg).toMatchObject({ store: 'docs', history: { msg_ctx_cnt: 1, summary_cnt: 0 } });
    expect(await errOf(call('LLM.CREATE-CHAT', 'c2', '--PARAMS', '{"history":{"summary_cnt":"x"}}'))).toMatch(/^ERR invalid history param/);
  });

  it('--LLM \'{"key":...,"params":{...}}\' for apps (chat fields) and stores (embedding fields)', async () => {
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-APP', 'a', '--LLM', '{"key":"gpt","params":{"model":"gpt-4o-mini","temperature":0}}', '--PROMPT', 'hi');
    expect(await call('LLM.RUN', 'a')).toBe('echo: hi');
    expect(fake.requests.at(-1)!.body).toMatchObject({ model: 'gpt-4o-mini', temperature: 0 });
    // --PARAMS fields are laid over the --LLM params.
    await call('LLM.CREATE-APP', 'b', '--LLM', '{"key":"gpt","params":{"temperature":0}}', '--PARAMS', '{"temperature":1}', '--PROMPT', 'hi');
    await call('LLM.RUN', 'b');
    expect(fake.requests.at(-1)!.body.temperature).toBe(1);
    await call('LLM.CREATE-VECTOR-STORE', 'st', '--LLM', '{"key":"gpt","params":{"dimensions":8}}');
    await call('LLM.ADD', 'st', 'text');
    expect(fake.requests.at(-1)!.body.dimensions).toBe(8);
    expect(((await call('LLM.GET', 'st', '1')) as string[])[1]!.split(',')).toHaveLength(8);
    expect(await errOf(call('LLM.CREATE-APP', 'c', '--LLM', '{"params":{}}'))).toMatch(/^ERR --LLM JSON needs a string 'key'/);
    expect(await errOf(call('LLM.CREATE-APP', 'c', '--LLM', '{"key":"gpt","params":5}'))).toMatch(/^ERR invalid --LLM 'params'/);
  });

  it("the default prompts are the original's, verbatim", async () => {
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-VECTOR-STORE', 'mem', '--LLM', 'gpt');
    await call('LLM.CREATE-CHAT', 'c', '--LLM', 'gpt', '--VECTOR-STORE', 'mem', '--HISTORY', '{"summary_cnt":2}');
    await call('LLM.RUN', 'c', 'I like tea');
    const summary = fake.requests.filter((q) => q.path.endsWith('/chat/completions')).at(-1)!.body.messages;
    expect(summary).toEqual([
      {
        role: 'user',
        content:
          'Give a concise and comprehensive summary of the given conversation (in JSON format). The summary should capture the main points and supporting details.\nConversation: """\nuser: I like tea\nassistant: echo: I like tea\n"""\nSummary: ',
      },
    ]);
    const cfg = JSON.parse(((await call('LLM.INFO', 'c')) as string[])[5]!);
    expect(cfg.prompt).toBe('You are a friendly chatbot. The following is a summary of parts of your chat history with user: """\n{{history}}\n"""');
  });
});

describe('vector commands as the original', () => {
  it('--K 0 is an empty array; KNN without query or vector: the arity error, or no query; --EMBEDDING "" is no vector', async () => {
    await call('LLM.CREATE-VECTOR-STORE', 'v');
    await call('LLM.ADD', 'v', '--EMBEDDING', '1,0', 'a');
    expect(await call('LLM.KNN', 'v', '--K', '0', '--EMBEDDING', '1,0')).toEqual([]);
    expect(await errOf(call('LLM.KNN', 'v'))).toBe("ERR wrong number of arguments for 'LLM.KNN' command");
    expect(await errOf(call('LLM.KNN', 'v', '--K', '3'))).toBe('ERR no query is specified');
    expect(await errOf(call('LLM.KNN', 'v', '--EMBEDDING', ''))).toBe('ERR no query is specified');
    // As the original: an empty --EMBEDDING means "embed the text" (this store has no LLM for it).
    expect(await errOf(call('LLM.ADD', 'v', '--EMBEDDING', '', 'x'))).toBe("ERR LLM model for vector store does not exist: vector store 'v' has no --LLM");
    expect(await errOf(call('LLM.ADD', 'v', '--EMBEDDING', ' ', 'x'))).toBe('ERR invalid embedding: size is 0');
    expect(await call('LLM.SIZE', 'v')).toBe(1);
    await call('LLM.CREATE-LLM', 'gpt', '--PARAMS', params());
    await call('LLM.CREATE-VECTOR-STORE', 'w', '--LLM', 'gpt');
    expect(await call('LLM.ADD', 'w', '--EMBEDDING', '', 'embedded text')).toBe(1);
    expect(fake.calls('/embeddings')).toBe(1);
    expect(((await call('LLM.KNN', 'w', '--EMBEDDING', '', 'embedded text')) as unknown[][])[0]![0]).toBe(1);
  });

  it('ids are unsigned 64-bit: add, get, knn, setattrs, rem; auto ids are not moved by huge ids', async () => {
    const MAX = '18446744073709551615';
    await call('LLM.CREATE-VECTOR-STORE', 'big');
    // Above 2^63 − 1 a RESP integer cannot carry the id: it is replied as its decimal text.
    expect(await call('LLM.ADD', 'big', '--ID', MAX, '--EMBEDDING', '1,0', 'max')).toBe(MAX);
    expect((await redisCli(['LLM.ADD', 'big', '--ID', '9223372036854775807', '--EMBEDDING', '0,1', 'int64 max'])).trim()).toBe('9223372036854775807');
    expect(await call('LLM.ADD', 'big', '--ID', '4294967296', '--EMBEDDING', '1,1', '2^32')).toBe(4294967296);
    // Huge ids do not move the auto ids (nor take theirs).
    expect(await call('LLM.ADD', 'big', '--EMBEDDING', '3,3', 'auto')).toBe(1);
    // 4294967295 is an ordinary id, even though the first huge id took that label.
    expect(await call('LLM.ADD', 'big', '--ID', '4294967295', '--EMBEDDING', '2,2', 'u32 max')).toBe(4294967295);
    // Explicit ids below 2^32 still move the auto ids above them (here: to the end, as before).
    expect(await errOf(call('LLM.ADD', 'big', '--EMBEDDING', '3,3', 'auto'))).toMatch(/^ERR no more auto ids available/);
    for (const bad of ['18446744073709551616', '-1', '99999999999999999999', '01']) {
      expect(await errOf(call('LLM.ADD', 'big', '--ID', bad, '--EMBEDDING', '1,0', 'x')), bad).toBe('ERR invalid id');
      expect(await errOf(call('LLM.GET', 'big', bad)), bad).toBe('ERR invalid id');
    }
    expect(await call('LLM.SIZE', 'big')).toBe(5);
    expect(await call('LLM.GET', 'big', MAX)).toEqual(['max', '1,0']);
    expect(await call('LLM.GET', 'big', '4294967295')).toEqual(['u32 max', '2,2']);
    expect(await call('LLM.GET', 'big', '4294967296')).toEqual(['2^32', '1,1']);
    expect(await call('LLM.GET', 'big', '18446744073709551614')).toBeNull();
    const near = (await call('LLM.KNN', 'big', '--K', '2', '--EMBEDDING', '1,0')) as Array<[unknown, string]>;
    expect(near.map((h) => h[0])).toEqual([MAX, 4294967296]);
    expect(await call('LLM.SETATTRS', 'big', MAX, '{"tag":"max"}')).toBe(1);
    expect(await call('LLM.KNN', 'big', '--FILTER', 'tag == "max"', '--EMBEDDING', '2,2')).toEqual([[MAX, '5']]);
    expect(await call('LLM.REM', 'big', MAX)).toBe(1);
    expect(await call('LLM.REM', 'big', MAX)).toBe(0);
    expect(await call('LLM.GET', 'big', MAX)).toBeNull();
    expect(await call('LLM.GET', 'big', '4294967295')).toEqual(['u32 max', '2,2']);
    expect(await call('LLM.ADD', 'big', '--ID', MAX, '--EMBEDDING', '5,5', 'max again')).toBe(MAX);

    // Durable: a second instance loads the same items from the log, then from a snapshot plus log.
    const check = async (port: number) => {
      const c = client(port);
      try {
        expect(await c.call('LLM.SIZE', 'big')).toBe(5);
        expect(await c.call('LLM.GET', 'big', MAX)).toEqual(['max again', '5,5']);
        expect(await c.call('LLM.GET', 'big', '4294967295')).toEqual(['u32 max', '2,2']);
        expect(await c.call('LLM.GET', 'big', '4294967296')).toEqual(['2^32', '1,1']);
        expect(await c.call('LLM.GET', 'big', '9223372036854775807')).toEqual(['int64 max', '0,1']);
        expect(await c.call('LLM.KNN', 'big', '--K', '1', '--FILTER', 'tag == "max"', '--EMBEDDING', '5,5')).toEqual([]);
        expect(((await c.call('LLM.KNN', 'big', '--K', '1', '--EMBEDDING', '5,5')) as unknown[][])[0]![0]).toBe(MAX);
        // A new huge id on the reloaded store gets a label of its own.
        expect(await c.call('LLM.ADD', 'big', '--ID', '18446744073709551614', '--EMBEDDING', '6,6', 'another')).toBe('18446744073709551614');
        expect(await c.call('LLM.GET', 'big', MAX)).toEqual(['max again', '5,5']);
        expect(await c.call('LLM.REM', 'big', '18446744073709551614')).toBe(1);
      } finally {
        c.disconnect();
      }
    };
    for (const snapshot of [false, true]) {
      if (snapshot) {
        const store = server.objects!.get(0, 'big') as StoreObject;
        expect(await server.objects!.snapshot(store, true)).toBe(true);
      }
      const other = await startServer({ redis: redis.url, follow: false, llmKeyHosts: { OPENAI_API_KEY: ['127.0.0.1'] } });
      try {
        await other.loadingDone;
        await check(other.port);
      } finally {
        await other.stop();
      }
    }
  });

  it('redis-cli sees the same texts', async () => {
    expect((await redisCli(['LLM.ADD', 'k'])).trim()).toBe("ERR wrong number of arguments for 'LLM.ADD' command");
    expect((await redisCli(['LLM.RUN', 'faq', 'q'])).trim()).toBe('ERR Application does not exist: faq');
  });
});

describe('id aliases (unit)', () => {
  it('ids below 2^32 are their own label; others get labels from the top, deterministically; freed on release', () => {
    const inUse = new Set<number>([4294967295]);
    const a = new IdAliases();
    expect(a.labelOf(7)).toBe(7);
    expect(a.labelOf(4294967296)).toBeUndefined();
    const l1 = a.labelForAdd(18446744073709551615n, (l) => inUse.has(l));
    expect(l1).toBe(4294967294); // 4294967295 is held by an item
    inUse.add(l1);
    expect(a.labelForAdd(4294967296, (l) => inUse.has(l))).toBe(4294967293);
    // The id 4294967294 cannot be its own label any more: it gets one of its own.
    expect(a.labelOf(4294967294)).toBeUndefined();
    expect(a.labelForAdd(4294967294, (l) => inUse.has(l))).toBe(4294967292);
    expect(a.idOf(4294967294)).toBe(18446744073709551615n);
    expect(a.idOf(12)).toBe(12);
    // The same sequence from the saved state gives the same labels.
    const b = IdAliases.fromState(JSON.parse(JSON.stringify(a.state())));
    expect(b.labelOf(18446744073709551615n)).toBe(4294967294);
    expect(b.labelForAdd(9007199254740993n, () => false)).toBe(a.labelForAdd(9007199254740993n, () => false));
    a.release(4294967294);
    expect(a.labelOf(18446744073709551615n)).toBeUndefined();
    expect(a.labelOf(4294967294)).toBe(4294967292);
    expect(new IdAliases().state()).toBeNull();
  });

  it('store snapshots without aliases keep the earlier format; with aliases they carry them', () => {
    const graph = Buffer.from('graph');
    const plain = unwrapStoreSnapshot(wrapStoreSnapshot(graph, JSON.stringify([[1, { t: 'x' }]])));
    expect(plain).toEqual({ graph, attrs: [[1, { t: 'x' }]], aliases: null });
    const state = { aliases: [[4294967295, '18446744073709551615']] as Array<[number, string]>, next: 4294967294 };
    const withAliases = unwrapStoreSnapshot(wrapStoreSnapshot(graph, JSON.stringify({ attrs: [], aliases: state })));
    expect(withAliases).toEqual({ graph, attrs: [], aliases: state });
  });
});
