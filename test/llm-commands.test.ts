/**
 * LLM providers, prompt apps and LLM.RUN end to end (issue 3): a real redis-server as the
 * backing Redis, the server in process (and as a child process for kill -9 and log capture),
 * the local fake OpenAI endpoint, ioredis and `redis-cli --raw`.
 */
import { execFile } from 'node:child_process';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { LlmServer } from '../src/server/server.js';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startChildServer, startServer, type ChildServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import { errOf, leaks } from '../harness/replies.js';

const ENV_KEY = 'sk-env-ENVKEY-0123456789abcdef0123';
const LIT_KEY = 'sk-literal-LITKEY-fedcba9876543210';
const AZ_KEY = 'azkey-AZLIT-00112233445566778899aabb';

let redis: RedisServerHandle;
let fake: FakeOpenAI;
let server: LlmServer;
let r: Redis;
let r2: Redis;
const extraClients: Redis[] = [];

/** LLM.INFO as a map. */
async function info(c: Redis, key: string): Promise<Record<string, string> | null> {
  const a = (await c.call('LLM.INFO', key)) as unknown[] | null;
  if (a === null) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < a.length; i += 2) out[String(a[i])] = String(a[i + 1]);
  return out;
}

async function configOf(c: Redis, key: string): Promise<any> {
  const i = await info(c, key);
  return i ? JSON.parse(i.config!) : null;
}

/** `model<i>:` lines of INFO llm, as name -> fields. */
async function modelLines(c: Redis): Promise<Record<string, Record<string, string>>> {
  const text = await c.info('llm');
  const out: Record<string, Record<string, string>> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^model\d+:(.*)$/.exec(line);
    if (!m) continue;
    const fields = Object.fromEntries(m[1]!.split(',').map((kv) => kv.split('=') as [string, string]));
    out[fields.name!] = fields;
  }
  return out;
}

/** openai params against the fake, env key, fast retries. */
function openaiParams(extra: Record<string, unknown> = {}, http: Record<string, unknown> = {}): string {
  return JSON.stringify({ api_key: '$OPENAI_API_KEY', base_url: fake.url, ...extra, http: { retry_backoff: '5ms', ...http } });
}

/** Runs redis-cli --raw (asynchronously: the server is in this process). */
function redisCli(port: number, args: string[], stdin?: string): Promise<{ stdout: string; code: number }> {
  return new Promise((resolve, reject) => {
    const child = execFile('redis-cli', ['-p', String(port), '--raw', ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(new Error(`${err.message}\n${stderr}`));
      resolve({ stdout, code: err ? ((err as { code?: number }).code ?? 1) : 0 });
    });
    child.stdin!.end(stdin ?? '');
  });
}

function newClient(port = server.port): Redis {
  const c = client(port);
  extraClients.push(c);
  return c;
}

beforeAll(async () => {
  process.env.OPENAI_API_KEY = ENV_KEY;
  redis = await startRedis();
  fake = await startFakeOpenAI({ apiKey: ENV_KEY, azureApiKey: AZ_KEY });
  server = await startServer({ redis: redis.url, llmKeyHosts: { OPENAI_API_KEY: ['127.0.0.1'] } });
  await server.loadingDone;
  r = client(server.port);
  r2 = client(server.port);
});

afterAll(async () => {
  for (const c of [r, r2, ...extraClients]) c?.disconnect();
  await server?.stop();
  await fake?.close();
  await redis?.stop();
});

beforeEach(async () => {
  process.env.OPENAI_API_KEY = ENV_KEY;
  fake.reset();
  await r.flushall();
});

afterEach(() => {
  for (const c of extraClients.splice(0)) c.disconnect();
});

// -------------------------------------------------------------------------------------------------

describe('the README flow', () => {
  it('CREATE-LLM with $OPENAI_API_KEY, CREATE-APP, RUN: the exact request and the reply', async () => {
    expect(await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', JSON.stringify({ api_key: '$OPENAI_API_KEY', base_url: fake.url }))).toBe(1);
    expect(await r.call('LLM.CREATE-APP', 'hello-world', '--LLM', 'openai', '--PROMPT', 'Say hello to {{name}}')).toBe(1);
    expect(await r.call('LLM.RUN', 'hello-world', '--VARS', '{"name":"LLM"}')).toBe('echo: Say hello to LLM');

    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/chat/completions');
    expect(req.body).toEqual({ model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'Say hello to LLM' }] });
    expect(req.headers.authorization).toBe(`Bearer ${ENV_KEY}`);
    expect(await r.type('openai')).toBe('LLMMOD-SW');
    expect(await r.type('hello-world')).toBe('LLMAPP-SW');
  });

  it('extra chat params pass through; the input follows a blank line', async () => {
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams({ chat: { model: 'gpt-4o-mini', temperature: 0.2, max_tokens: 50, top_p: 0.9 } }));
    await r.call('LLM.CREATE-APP', 'hello-world', '--LLM', 'openai', '--PROMPT', 'Say hello to {{name}}');
    expect(await r.call('LLM.RUN', 'hello-world', '--VARS', '{"name":"LLM"}', 'and how are you?')).toBe('echo: Say hello to LLM\n\nand how are you?');
    expect(fake.lastRequest()!.body).toEqual({
      model: 'gpt-4o-mini',
      temperature: 0.2,
      max_tokens: 50,
      top_p: 0.9,
      messages: [{ role: 'user', content: 'Say hello to LLM\n\nand how are you?' }],
    });
    // No prompt: the input alone; empty input: the prompt alone.
    await r.call('LLM.CREATE-APP', 'bare', '--LLM', 'openai');
    expect(await r.call('LLM.RUN', 'bare', 'just this')).toBe('echo: just this');
    expect(await r.call('LLM.RUN', 'hello-world', '--VARS', '{"name":"X"}', '')).toBe('echo: Say hello to X');
    expect(fake.lastRequest()!.body.messages).toEqual([{ role: 'user', content: 'Say hello to X' }]);
  });

  it("an app's --PARAMS are laid over the LLM's chat params for its calls only; a store's --LLM params over its embedding calls", async () => {
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams({ chat: { model: 'gpt-4o-mini', temperature: 0.2 }, embedding: { model: 'emb-base' } }));
    await r.call('LLM.CREATE-APP', 'cold', '--LLM', 'openai', '--PROMPT', 'p', '--PARAMS', JSON.stringify({ temperature: 0, model: 'gpt-4o', seed: 7, messages: [{ role: 'system', content: 'x' }], stream: true }));
    await r.call('LLM.CREATE-APP', 'plain', '--LLM', 'openai', '--PROMPT', 'p');
    expect(await r.call('LLM.RUN', 'cold', 'hi')).toBe('echo: p\n\nhi');
    // the app's fields win over the LLM's; the ones LLM.RUN sets (messages, stream) are its own
    expect(fake.lastRequest()!.body).toEqual({ model: 'gpt-4o', temperature: 0, seed: 7, messages: [{ role: 'user', content: 'p\n\nhi' }] });
    expect(await r.call('LLM.RUN', 'plain', 'hi')).toBe('echo: p\n\nhi');
    expect(fake.lastRequest()!.body).toEqual({ model: 'gpt-4o-mini', temperature: 0.2, messages: [{ role: 'user', content: 'p\n\nhi' }] });
    // streamed runs too
    await r.call('LLM.RUN', 'cold', '--STREAM', 'cold-stream', 'hi');
    expect(fake.lastRequest()!.body).toMatchObject({ model: 'gpt-4o', temperature: 0, seed: 7, stream: true });

    await r.call('LLM.CREATE-VECTOR-STORE', 'small', '--LLM', JSON.stringify({ key: 'openai', params: { model: 'emb-small', dimensions: 8 } }));
    await r.call('LLM.CREATE-VECTOR-STORE', 'base', '--LLM', 'openai');
    await r.call('LLM.ADD', 'small', 'some text');
    expect(fake.lastRequest()!.body).toEqual({ model: 'emb-small', dimensions: 8, input: 'some text' });
    expect((await r.call('LLM.KNN', 'small', '--K', '1', 'query')) as unknown[]).toHaveLength(1);
    expect(fake.lastRequest()!.body).toEqual({ model: 'emb-small', dimensions: 8, input: 'query' });
    await r.call('LLM.ADD', 'base', 'other text');
    expect(fake.lastRequest()!.body).toEqual({ model: 'emb-base', input: 'other text' });

    // checked as the LLM's own params are
    for (const [args, err] of [
      [['LLM.CREATE-APP', 'bad', '--LLM', 'openai', '--PARAMS', '{"model":""}'], "invalid --PARAMS: 'model' must be a non-empty string"],
      [['LLM.CREATE-APP', 'bad', '--LLM', 'openai', '--PARAMS', '[1]'], '--PARAMS must be a JSON object'],
      [['LLM.CREATE-VECTOR-STORE', 'bad', '--LLM', '{"key":"openai","params":{"dimensions":0}}'], "invalid --LLM 'params': 'dimensions' must be a positive integer"],
      [['LLM.CREATE-VECTOR-STORE', 'bad', '--LLM', '{"key":"openai","params":[]}'], "invalid --LLM 'params': expected a JSON object"],
    ] as const) {
      expect(await errOf(r.call(...(args as unknown as [string, ...string[]])))).toBe(`ERR ${err}`);
    }
    expect(await r.exists('bad')).toBe(0);
  });

  it('base_url with a path (OpenAI-compatible servers) and custom chat_path', async () => {
    await r.call('LLM.CREATE-LLM', 'ollama', '--PARAMS', openaiParams({ base_url: `${fake.url}/v1/`, chat: { model: 'llama3' } }));
    await r.call('LLM.CREATE-LLM', 'groq', '--PARAMS', openaiParams({ base_url: `${fake.url}/openai/v1` }));
    await r.call('LLM.CREATE-LLM', 'gemini', '--PARAMS', openaiParams({ base_url: `${fake.url}/v1beta/openai`, chat_path: 'chat/completions' }));
    const paths: string[] = [];
    for (const llm of ['ollama', 'groq', 'gemini']) {
      await r.call('LLM.CREATE-APP', `app-${llm}`, '--LLM', llm, '--PROMPT', `via ${llm}`);
      expect(await r.call('LLM.RUN', `app-${llm}`)).toBe(`echo: via ${llm}`);
      paths.push(fake.lastRequest()!.path);
    }
    expect(paths).toEqual(['/v1/chat/completions', '/openai/v1/chat/completions', '/v1beta/openai/chat/completions']);
    expect(fake.requests[0]!.body.model).toBe('llama3');
    expect((await configOf(r, 'gemini')).urls.chat).toBe(`${fake.url}/v1beta/openai/chat/completions`);
    expect(await r.call('LLM.INFO', 'nosuch')).toBeNull();
  });

  it('the env variable is read at call time', async () => {
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'app', '--LLM', 'openai', '--PROMPT', 'hi');
    const rotated = 'sk-env-ROTATED-99999999999999';
    process.env.OPENAI_API_KEY = rotated;
    fake.setBehavior({ apiKey: rotated });
    expect(await r.call('LLM.RUN', 'app')).toBe('echo: hi');
    expect(fake.lastRequest()!.headers.authorization).toBe(`Bearer ${rotated}`);
    delete process.env.OPENAI_API_KEY;
    const n = fake.calls();
    expect(await errOf(r.call('LLM.RUN', 'app'))).toBe("ERR LLM 'openai': api_key refers to environment variable OPENAI_API_KEY, which is not set");
    expect(fake.calls()).toBe(n);
    // What is stored (and shown) is the reference, not the value.
    expect((await configOf(r, 'openai')).params.api_key).toBe('$OPENAI_API_KEY');
  });

  it('templates are not HTML-escaped', async () => {
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'esc', '--LLM', 'openai', '--PROMPT', 'a {{x}} b {{{x}}} c {{&x}} d {{o.y}}{{#list}}[{{.}}]{{/list}}');
    const vars = { x: `<b>&"'</b>`, o: { y: '<i>' }, list: ['<1>', '&2'] };
    const out = await r.call('LLM.RUN', 'esc', '--VARS', JSON.stringify(vars));
    const content = `a <b>&"'</b> b <b>&"'</b> c <b>&"'</b> d <i>[<1>][&2]`;
    expect(fake.lastRequest()!.body.messages[0].content).toBe(content);
    expect(out).toBe(`echo: ${content}`);
  });

  it('strict variables: inside sections too; a missing section name is just false', async () => {
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'list', '--LLM', 'openai', '--PROMPT', '{{greeting}}:{{#items}} {{title}}/{{who}}{{/items}}{{#flag}} FLAG{{/flag}}{{^flag}} noflag{{/flag}}');
    const ok = { greeting: 'hi', who: 'me', items: [{ title: 'a' }, { title: 'b', who: 'you' }] };
    expect(await r.call('LLM.RUN', 'list', '--VARS', JSON.stringify(ok))).toBe('echo: hi: a/me b/you noflag');
    expect(await r.call('LLM.RUN', 'list', '--VARS', JSON.stringify({ ...ok, flag: true }))).toBe('echo: hi: a/me b/you FLAG');
    // null and 0 are values, not missing.
    expect(await r.call('LLM.RUN', 'list', '--VARS', JSON.stringify({ greeting: null, who: 0, items: [{ title: 'x' }] }))).toBe('echo: : x/0 noflag');
    const n = fake.calls();
    expect(await errOf(r.call('LLM.RUN', 'list', '--VARS', JSON.stringify({ greeting: 'hi', items: [{ title: 'a' }] })))).toBe(
      "ERR failed to render prompt: variable 'who' not found",
    );
    expect(await errOf(r.call('LLM.RUN', 'list', '--VARS', JSON.stringify({ greeting: 'hi', who: 'me', items: [{ name: 'a' }] })))).toBe(
      "ERR failed to render prompt: variable 'title' not found",
    );
    expect(fake.calls()).toBe(n);
    // An object section: its fields first, then the outer context.
    expect(await r.call('LLM.RUN', 'list', '--VARS', '{"greeting":"hi","items":{"title":"t"},"who":"w"}')).toBe('echo: hi: t/w noflag');
    // Dotted names are checked to the last part.
    await r.call('LLM.CREATE-APP', 'dot', '--LLM', 'openai', '--PROMPT', 'to {{user.name}}');
    expect(await errOf(r.call('LLM.RUN', 'dot', '--VARS', '{"user":{"nom":"x"}}'))).toBe("ERR failed to render prompt: variable 'user.name' not found");
    expect(await r.call('LLM.RUN', 'dot', '--VARS', '{"user":{"name":"Ann"}}')).toBe('echo: to Ann');
  });

  it('templates of overwritten and deleted apps are not kept in a process-wide cache', async () => {
    const Mustache = (await import('mustache')).default as unknown as { templateCache?: { _cache?: Record<string, unknown> } };
    const cached = () => Object.keys(Mustache.templateCache?._cache ?? {}).length;
    const before = cached();
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams());
    for (let i = 0; i < 50; i++) {
      await r.call('LLM.CREATE-APP', 'churn', '--LLM', 'openai', '--PROMPT', `prompt number ${i} for {{name}}`);
      expect(await r.call('LLM.RUN', 'churn', '--VARS', '{"name":"x"}')).toBe(`echo: prompt number ${i} for x`);
    }
    expect(cached()).toBe(before);
  });

  it('options in any order, case-insensitive; command names too', async () => {
    expect(await r.call('llm.create-llm', 'm', '--type', 'OpenAI', '--params', openaiParams())).toBe(1);
    expect(await r.call('LLM.CREATE-APP', 'a', '--PROMPT', 'Hi {{who}}', '--llm', 'm', '--Nx')).toBe(1);
    expect(await r.call('llm.run', 'a', '--timeout', '5000', '--vars', '{"who":"there"}', 'input')).toBe('echo: Hi there\n\ninput');
    expect(await r.call('LLM.RUN', 'a', '--VARS', '{"who":"x"}', '--TiMeOuT', '5000')).toBe('echo: Hi x');
    // A token after the input is not an option any more: one positional too many.
    expect(await errOf(r.call('LLM.RUN', 'a', 'input', '--VARS', '{"who":"x"}'))).toMatch(/^ERR wrong number of arguments for 'llm.run' command$/i);
  });

  it('works from a redis-cli --raw session and from redis-cli arguments', async () => {
    const script = [
      `LLM.CREATE-LLM openai --PARAMS '{"api_key":"$OPENAI_API_KEY","base_url":"${fake.url}"}'`,
      `LLM.CREATE-APP hello-world --LLM openai --PROMPT 'Say hello to {{name}}'`,
      `LLM.RUN hello-world --VARS '{"name":"LLM"}'`,
      `LLM.RUN hello-world --VARS '{"name":"LLM"}' "what's up?"`,
      `LLM.RUN nope`,
      `LLM.CREATE-LLM bad --PARAMS '{"api_key":'`,
      `TYPE hello-world`,
      '',
    ].join('\n');
    const { stdout } = await redisCli(server.port, [], script);
    // --raw: replies one per line, an error reply followed by an empty line.
    expect(stdout).toMatch(/ERR failed to parse json: \S[^\n]*\n/);
    expect(stdout.replace(/(failed to parse json: )[^\n]+/, '$1...')).toBe(
      "1\n1\necho: Say hello to LLM\necho: Say hello to LLM\n\nwhat's up?\n" +
        'ERR Application does not exist: nope\n\nERR failed to parse json: ...\n\nLLMAPP-SW\n',
    );
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1]!.body.messages[0].content).toBe("Say hello to LLM\n\nwhat's up?");

    const one = await redisCli(server.port, ['LLM.RUN', 'hello-world', '--VARS', '{"name":"cli"}']);
    expect(one.stdout).toBe('echo: Say hello to cli\n');
    const info = await redisCli(server.port, ['LLM.INFO', 'openai']);
    expect(info.stdout.split('\n')[0]).toBe('type');
  });
});

// -------------------------------------------------------------------------------------------------

describe('create semantics', () => {
  it('--NX / --XX reply 0 and change nothing; plain create overwrites and replies 1', async () => {
    expect(await r.call('LLM.CREATE-LLM', 'm', '--XX', '--PARAMS', openaiParams())).toBe(0);
    expect(await r.exists('m')).toBe(0);
    expect(await r.call('LLM.CREATE-LLM', 'm', '--NX', '--PARAMS', openaiParams())).toBe(1);
    const before = await info(r, 'm');
    expect(await r.call('LLM.CREATE-LLM', 'm', '--NX', '--PARAMS', openaiParams({ chat: { model: 'gpt-4o' } }))).toBe(0);
    expect(await info(r, 'm')).toEqual(before);
    expect(await r.call('LLM.CREATE-LLM', 'm', '--XX', '--PARAMS', openaiParams({ chat: { model: 'gpt-4o' } }))).toBe(1);
    expect((await configOf(r, 'm')).params.chat).toEqual({ model: 'gpt-4o' });
    expect(await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams({ chat: { model: 'gpt-4.1', temperature: 1 } }))).toBe(1);
    expect((await configOf(r, 'm')).params.chat).toEqual({ model: 'gpt-4.1', temperature: 1 });
    expect(await errOf(r.call('LLM.CREATE-LLM', 'm', '--NX', '--XX', '--PARAMS', openaiParams()))).toBe('ERR syntax error');

    // Apps too; an app follows an overwritten LLM at its next run.
    expect(await r.call('LLM.CREATE-APP', 'a', '--XX', '--LLM', 'm', '--PROMPT', 'one')).toBe(0);
    expect(await r.exists('a')).toBe(0);
    expect(await r.call('LLM.CREATE-APP', 'a', '--LLM', 'm', '--PROMPT', 'one')).toBe(1);
    expect(await r.call('LLM.CREATE-APP', 'a', '--NX', '--LLM', 'm', '--PROMPT', 'two')).toBe(0);
    expect(JSON.parse((await info(r, 'a'))!.config!).prompt).toBe('one');
    expect(await r.call('LLM.CREATE-APP', 'a', '--XX', '--LLM', 'm', '--PROMPT', 'three {{x}}')).toBe(1);
    expect(JSON.parse((await info(r, 'a'))!.config!)).toEqual({ llm: 'm', prompt: 'three {{x}}', params: {} });
    expect(await r.call('LLM.RUN', 'a', '--VARS', '{"x":1}')).toBe('echo: three 1');
    expect(fake.lastRequest()!.body.model).toBe('gpt-4.1');
    expect(fake.lastRequest()!.body.temperature).toBe(1);
  });

  it('WRONGTYPE over an ordinary key and over an LLM object of another kind', async () => {
    await r.set('k', 'v');
    for (const args of [
      ['LLM.CREATE-LLM', 'k', '--PARAMS', openaiParams()],
      ['LLM.CREATE-LLM', 'k', '--NX', '--PARAMS', openaiParams()],
      ['LLM.CREATE-LLM', 'k', '--XX', '--PARAMS', openaiParams()],
      ['LLM.CREATE-APP', 'k', '--PROMPT', 'x'],
    ]) {
      expect(await errOf(r.call(args[0]!, ...args.slice(1)))).toMatch(/^WRONGTYPE /);
    }
    expect(await r.get('k')).toBe('v');
    expect(await r.type('k')).toBe('string');

    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'm', '--PROMPT', 'x');
    const mi = await info(r, 'm');
    const ai = await info(r, 'a');
    expect(await errOf(r.call('LLM.CREATE-APP', 'm', '--PROMPT', 'y'))).toMatch(/^WRONGTYPE /);
    expect(await errOf(r.call('LLM.CREATE-APP', 'm', '--NX', '--PROMPT', 'y'))).toMatch(/^WRONGTYPE /);
    expect(await errOf(r.call('LLM.CREATE-LLM', 'a', '--PARAMS', openaiParams()))).toMatch(/^WRONGTYPE /);
    expect(await errOf(r.call('LLM.CREATE-LLM', 'a', '--TYPE', 'local'))).toMatch(/^WRONGTYPE /);
    expect(await errOf(r.call('LLM.RUN', 'm'))).toMatch(/^WRONGTYPE /);
    expect(await errOf(r.call('GET', 'm'))).toMatch(/^WRONGTYPE /);
    expect(await info(r, 'm')).toEqual(mi);
    expect(await info(r, 'a')).toEqual(ai);
  });

  // FAILS (bug in src/commands/llm/_objects.ts createObject, see the report): the existence,
  // kind and NX/XX checks are made before two awaits (EXISTS on the backing Redis, the durable
  // put), so concurrent creates of one key all pass them.
  it('concurrent creates of one key: --NX lets exactly one through; another kind is WRONGTYPE', async () => {
    const conns = Array.from({ length: 8 }, () => newClient());
    await Promise.all(conns.map((c) => c.ping()));
    const nx = await Promise.all(
      conns.map((c, i) => c.call('LLM.CREATE-LLM', 'race', '--NX', '--PARAMS', openaiParams({ chat: { model: `m${i}` } }))),
    );
    expect(nx.filter((x) => x === 1)).toHaveLength(1);
    const winner = nx.indexOf(1);
    expect((await configOf(r, 'race')).params.chat.model).toBe(`m${winner}`);

    const mixed = await Promise.all(
      conns.map((c, i) =>
        (i % 2 === 0 ? c.call('LLM.CREATE-APP', 'race2', '--PROMPT', 'x') : c.call('LLM.CREATE-LLM', 'race2', '--PARAMS', openaiParams())).then(
          (v) => `${i % 2 === 0 ? 'app' : 'llm'}:${v}`,
          (e: Error) => `${i % 2 === 0 ? 'app' : 'llm'}:${e.message.split(' ')[0]}`,
        ),
      ),
    );
    const type = await r.type('race2');
    const kind = type === 'LLMAPP-SW' ? 'app' : 'llm';
    const other = kind === 'app' ? 'llm' : 'app';
    // Whichever kind is there now, every create of the other kind must have been refused.
    expect(mixed.filter((m) => m.startsWith(`${other}:`)).every((m) => m === `${other}:WRONGTYPE`)).toBe(true);
  });

  it('azure_openai: deployment path, api-version query, api-key header', async () => {
    const params = {
      api_key: AZ_KEY,
      endpoint: fake.url,
      chat_deployment_id: 'gpt-35-dep',
      embedding_deployment_id: 'ada-dep',
      api_version: '2024-02-01',
      chat: { temperature: 0 },
      http: { retry_backoff: '5ms' },
    };
    expect(await r.call('LLM.CREATE-LLM', 'az', '--TYPE', 'azure_openai', '--PARAMS', JSON.stringify(params))).toBe(1);
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'az', '--PROMPT', 'Say hello to {{name}}');
    expect(await r.call('LLM.RUN', 'a', '--VARS', '{"name":"Azure"}')).toBe('echo: Say hello to Azure');
    const req = fake.lastRequest()!;
    expect(req.path).toBe('/openai/deployments/gpt-35-dep/chat/completions');
    expect(req.query).toEqual({ 'api-version': '2024-02-01' });
    expect(req.headers['api-key']).toBe(AZ_KEY);
    expect(req.headers.authorization).toBeUndefined();
    expect(req.body).toEqual({ temperature: 0, messages: [{ role: 'user', content: 'Say hello to Azure' }] });
    const cfg = await configOf(r, 'az');
    expect(cfg.type).toBe('azure_openai');
    expect(cfg.params.api_key).toBe('[redacted]');
    expect(JSON.stringify(await info(r, 'az'))).not.toContain(AZ_KEY);

    // The original's resource_name form.
    const orig = { api_key: '$AZURE_OPENAI_API_KEY', resource_name: 'myres', chat_deployment_id: 'gpt-35', embedding_deployment_id: 'ada', api_version: '2023-05-15' };
    expect(await r.call('LLM.CREATE-LLM', 'az2', '--TYPE', 'AZURE_OPENAI', '--PARAMS', JSON.stringify(orig))).toBe(1);
    const c2 = await configOf(r, 'az2');
    expect(c2.params.api_key).toBe('$AZURE_OPENAI_API_KEY');
    expect(c2.urls.chat).toBe('https://myres.openai.azure.com/openai/deployments/gpt-35/chat/completions?api-version=2023-05-15');
    expect(c2.urls.embedding).toBe('https://myres.openai.azure.com/openai/deployments/ada/embeddings?api-version=2023-05-15');

    // Wrong key: 401 from the fake (which echoes the key sent) -> an error without the key.
    await r.call('LLM.CREATE-LLM', 'az3', '--TYPE', 'azure_openai', '--PARAMS', JSON.stringify({ ...params, api_key: LIT_KEY }));
    await r.call('LLM.CREATE-APP', 'a3', '--LLM', 'az3', '--PROMPT', 'x');
    const e = await errOf(r.call('LLM.RUN', 'a3'));
    expect(e).toMatch(/^ERR failed to predict with openai: LLM 'az3': failed to do post: 401 Unauthorized \(401\)(: .+)?$/);
    expect(e).not.toContain(LIT_KEY);

    // Missing required azure params.
    for (const drop of ['api_key', 'api_version']) {
      const p: Record<string, unknown> = { ...params };
      delete p[drop];
      expect(await errOf(r.call('LLM.CREATE-LLM', 'az4', '--TYPE', 'azure_openai', '--PARAMS', JSON.stringify(p)))).toBe(
        `ERR failed to parse openai options: '${drop}' is required for type azure_openai`,
      );
    }
    const noEndpoint: Record<string, unknown> = { ...params };
    delete noEndpoint.endpoint;
    expect(await errOf(r.call('LLM.CREATE-LLM', 'az4', '--TYPE', 'azure_openai', '--PARAMS', JSON.stringify(noEndpoint)))).toMatch(
      /^ERR failed to parse openai options: 'resource_name' or 'endpoint' is required/,
    );
    expect(await r.exists('az4')).toBe(0);
  });

  it('--TYPE local: embeddings only, LLM.RUN on an app using it is a clear error', async () => {
    expect(await r.call('LLM.CREATE-LLM', 'loc', '--TYPE', 'local')).toBe(1);
    expect(await r.call('LLM.CREATE-LLM', 'loc2', '--TYPE', 'local', '--PARAMS', '{"dim":32}')).toBe(1);
    expect(await configOf(r, 'loc2')).toEqual({ type: 'local', params: { dim: 32 } });
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'loc', '--PROMPT', 'hello');
    expect(await errOf(r.call('LLM.RUN', 'a'))).toBe("ERR LLM type 'local' only computes embeddings; chat needs an openai or azure_openai LLM");
    expect(fake.calls()).toBe(0);
    expect(await errOf(r.call('LLM.CREATE-LLM', 'loc3', '--TYPE', 'local', '--PARAMS', '{"dim":"big"}'))).toMatch(/^ERR failed to parse local options: 'dim' must be an integer/);
    expect(await r.exists('loc3')).toBe(0);
  });
});

// -------------------------------------------------------------------------------------------------

describe('bad input: a clear -ERR and nothing changes', () => {
  beforeEach(async () => {
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'app', '--LLM', 'm', '--PROMPT', 'Hello {{name}}');
  });

  async function unchanged(run: () => Promise<void>): Promise<void> {
    const keys = ['m', 'app', 'new'];
    const before = await Promise.all(keys.map((k) => info(r, k)));
    const existsBefore = await r.exists('new');
    await run();
    expect(await Promise.all(keys.map((k) => info(r, k)))).toEqual(before);
    expect(await r.exists('new')).toBe(existsBefore);
    expect(await r.dbsize()).toBe(2);
  }

  it('CREATE-LLM: bad JSON, unknown type, missing api_key, wrong-typed params', async () => {
    await unchanged(async () => {
      for (const key of ['new', 'm']) {
        expect(await errOf(r.call('LLM.CREATE-LLM', key, '--PARAMS', '{"api_key":'))).toMatch(/^ERR failed to parse json: \S/);
        expect(await errOf(r.call('LLM.CREATE-LLM', key, '--PARAMS', 'not json'))).toMatch(/^ERR failed to parse json: \S/);
        expect(await errOf(r.call('LLM.CREATE-LLM', key, '--TYPE', 'foo', '--PARAMS', openaiParams()))).toBe('ERR unknown LLM model: foo');
        expect(await errOf(r.call('LLM.CREATE-LLM', key, '--PARAMS', JSON.stringify({ base_url: fake.url })))).toBe(
          "ERR failed to parse openai options: 'api_key' is required for type openai",
        );
        expect(await errOf(r.call('LLM.CREATE-LLM', key))).toBe("ERR failed to parse openai options: 'api_key' is required for type openai");
        const wrong: Array<[Record<string, unknown>, RegExp]> = [
          [{ api_key: 5 }, /'api_key' must be a non-empty string/],
          [{ api_key: '' }, /'api_key' must be a non-empty string/],
          [{ api_key: 'k', chat: 'gpt-4' }, /'chat' must be a JSON object/],
          [{ api_key: 'k', chat: { model: 4 } }, /'chat.model' must be a non-empty string/],
          [{ api_key: 'k', embedding: [] }, /'embedding' must be a JSON object/],
          [{ api_key: 'k', base_url: 42 }, /'base_url' must be a non-empty string/],
          [{ api_key: 'k', base_url: 'ftp://x' }, /'base_url' must use http or https/],
          [{ api_key: 'k', base_url: 'not a url' }, /'base_url' is not a valid URL/],
          [{ api_key: 'k', http: { socket_timeout: 'soon' } }, /'http.socket_timeout' must be a duration/],
          [{ api_key: 'k', http: { pool: { size: 'big' } } }, /'http.pool.size' must be an integer/],
          [{ api_key: 'k', http: { pool: { size: 0 } } }, /'http.pool.size' must be an integer/],
          [{ api_key: 'k', http: { max_retries: -1 } }, /'http.max_retries' must be an integer/],
          [{ api_key: 'k', http: 'fast' }, /'http' must be a JSON object/],
        ];
        for (const [p, re] of wrong) {
          const e = await errOf(r.call('LLM.CREATE-LLM', key, '--PARAMS', JSON.stringify(p)));
          expect(e).toMatch(/^ERR failed to parse openai options: /);
          expect(e).toMatch(re);
        }
        for (const p of ['[1,2]', '"x"', '42']) {
          expect(await errOf(r.call('LLM.CREATE-LLM', key, '--PARAMS', p))).toBe('ERR failed to parse openai options: expected a JSON object');
        }
      }
    });
  });

  it('CREATE-APP: bad template, --PARAMS not an object', async () => {
    await unchanged(async () => {
      for (const key of ['new', 'app']) {
        for (const t of ['Hello {{name', 'Hello {{#a}}x', 'Hello {{/a}}', '{{#a}}{{/b}}', 'x {{> part}}']) {
          expect(await errOf(r.call('LLM.CREATE-APP', key, '--LLM', 'm', '--PROMPT', t))).toMatch(/^ERR invalid prompt template: \S/);
        }
        expect(await errOf(r.call('LLM.CREATE-APP', key, '--PARAMS', '[1]', '--PROMPT', 'x'))).toBe('ERR --PARAMS must be a JSON object');
        expect(await errOf(r.call('LLM.CREATE-APP', key, '--PARAMS', '{x', '--PROMPT', 'x'))).toMatch(/^ERR failed to parse json: /);
      }
    });
  });

  it('RUN: missing variable, unknown app, missing LLM, bad --VARS, bad --TIMEOUT', async () => {
    await unchanged(async () => {
      expect(await errOf(r.call('LLM.RUN', 'app'))).toBe("ERR failed to render prompt: variable 'name' not found");
      expect(await errOf(r.call('LLM.RUN', 'app', '--VARS', '{"nom":"x"}', 'input'))).toBe("ERR failed to render prompt: variable 'name' not found");
      expect(await errOf(r.call('LLM.RUN', 'nope', '--VARS', '{"name":"x"}'))).toBe('ERR Application does not exist: nope');
      for (const v of ['[1]', '"name"', '3', 'null']) {
        expect(await errOf(r.call('LLM.RUN', 'app', '--VARS', v))).toBe('ERR failed to render prompt: --VARS must be a JSON object');
      }
      expect(await errOf(r.call('LLM.RUN', 'app', '--VARS', '{name:1}'))).toMatch(/^ERR failed to parse json: /);
      for (const t of ['abc', '12abc', '1.5', '-5', '0', '']) {
        expect(await errOf(r.call('LLM.RUN', 'app', '--VARS', '{"name":"x"}', '--TIMEOUT', t))).toBe('ERR timeout should be a number: --TIMEOUT must be an integer in [1, 86400000]');
      }
    });
    expect(fake.calls()).toBe(0);
  });

  it('an app whose LLM key is missing, or that names none', async () => {
    await r.call('LLM.CREATE-APP', 'orphan', '--LLM', 'nosuch', '--PROMPT', 'x');
    expect(await errOf(r.call('LLM.RUN', 'orphan'))).toBe('ERR LLM model not exist: nosuch');
    await r.call('LLM.CREATE-APP', 'nollm', '--PROMPT', 'x');
    expect(await errOf(r.call('LLM.RUN', 'nollm'))).toBe('ERR LLM model not exist: no --LLM was given to this application');
    // --LLM naming something that is not an LLM.
    await r.set('plain', 'v');
    await r.call('LLM.CREATE-APP', 'wrongllm', '--LLM', 'plain', '--PROMPT', 'x');
    expect(await errOf(r.call('LLM.RUN', 'wrongllm'))).toBe('ERR LLM model not exist: plain');
    await r.call('LLM.CREATE-APP', 'wrongllm2', '--LLM', 'app', '--PROMPT', 'x');
    expect(await errOf(r.call('LLM.RUN', 'wrongllm2'))).toBe('ERR LLM model not exist: app');
    expect(fake.calls()).toBe(0);
  });

  it('option without value, extra arguments, missing key', async () => {
    await unchanged(async () => {
      expect(await errOf(r.call('LLM.CREATE-LLM', 'new', '--PARAMS'))).toBe('ERR syntax error');
      expect(await errOf(r.call('LLM.CREATE-LLM', 'new', '--TYPE'))).toBe('ERR syntax error');
      expect(await errOf(r.call('LLM.CREATE-APP', 'new', '--LLM', 'm', '--PROMPT'))).toBe('ERR syntax error');
      expect(await errOf(r.call('LLM.CREATE-APP', 'new', '--LLM'))).toBe('ERR syntax error');
      expect(await errOf(r.call('LLM.RUN', 'app', '--VARS'))).toBe('ERR syntax error');
      expect(await errOf(r.call('LLM.RUN', 'app', '--VARS', '{"name":"x"}', '--TIMEOUT'))).toBe('ERR syntax error');
      const arity = (cmd: string) => new RegExp(`^ERR wrong number of arguments for '${cmd}' command$`, 'i');
      expect(await errOf(r.call('LLM.CREATE-LLM', 'new', '--PARAMS', openaiParams(), 'extra'))).toMatch(arity('llm.create-llm'));
      expect(await errOf(r.call('LLM.CREATE-LLM', 'new', 'openai'))).toMatch(arity('llm.create-llm'));
      expect(await errOf(r.call('LLM.CREATE-APP', 'new', '--PROMPT', 'x', 'extra'))).toMatch(arity('llm.create-app'));
      expect(await errOf(r.call('LLM.RUN', 'app', '--VARS', '{"name":"x"}', 'in1', 'in2'))).toMatch(arity('llm.run'));
      expect(await errOf(r.call('LLM.RUN'))).toMatch(arity('llm.run'));
      expect(await errOf(r.call('LLM.CREATE-LLM'))).toMatch(arity('llm.create-llm'));
      expect(await errOf(r.call('LLM.CREATE-APP'))).toMatch(arity('llm.create-app'));
    });
    expect(fake.calls()).toBe(0);
  });
});

// -------------------------------------------------------------------------------------------------

describe('secrets', () => {
  it('a literal api_key is in no reply: LLM.INFO, INFO llm, error replies', async () => {
    // The fake wants ENV_KEY: a literal key gets a 401 whose body echoes the key.
    expect(await r.call('LLM.CREATE-LLM', 'lit', '--PARAMS', JSON.stringify({ api_key: LIT_KEY, base_url: fake.url, http: { retry_backoff: '5ms' } }))).toBe(1);
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'lit', '--PROMPT', 'x');
    const replies: string[] = [];
    const e401 = await errOf(r.call('LLM.RUN', 'a'));
    expect(e401).toMatch(/^ERR failed to predict with openai: LLM 'lit': failed to do post: 401 Unauthorized \(invalid_api_key\)(: .+)?$/);
    expect(fake.lastRequest()!.headers.authorization).toBe(`Bearer ${LIT_KEY}`);
    replies.push(e401);
    const cfg = await configOf(r, 'lit');
    expect(cfg.params.api_key).toBe('[redacted]');
    replies.push(JSON.stringify(await info(r, 'lit')));
    replies.push(await r.info('llm'), await r.info(), await r.info('everything'));
    // Errors at create time with the key in the params.
    replies.push(await errOf(r.call('LLM.CREATE-LLM', 'x', '--PARAMS', JSON.stringify({ api_key: LIT_KEY, base_url: 'ftp://h' }))));
    replies.push(await errOf(r.call('LLM.CREATE-LLM', 'x', '--TYPE', 'nope', '--PARAMS', JSON.stringify({ api_key: LIT_KEY }))));
    replies.push(await errOf(r.call('LLM.CREATE-LLM', 'x', '--PARAMS', JSON.stringify({ api_key: `${LIT_KEY}\u00e9` }))));
    // The original put the key in error texts; so does JSON.parse (a snippet of the input).
    for (const bad of [`{"api_key":${LIT_KEY}}`, `${LIT_KEY}`, `{"api_key":"${LIT_KEY}" x}`, `{"api_key":"${LIT_KEY}\\q"}`]) {
      const e = await errOf(r.call('LLM.CREATE-LLM', 'x', '--PARAMS', bad));
      expect(e).toMatch(/^ERR failed to parse json: \S/);
      replies.push(e);
    }
    // A server that puts the key it was sent in the error `code` (identifier-shaped, so it
    // would pass as a code): the code is dropped from the reply.
    fake.setBehavior({ apiKey: undefined });
    fake.enqueue({ type: 'status', status: 401, body: { error: { message: `bad key ${LIT_KEY}`, code: LIT_KEY } } }, 1);
    const eCode = await errOf(r.call('LLM.RUN', 'a'));
    expect(eCode).toMatch(/^ERR failed to predict with openai: LLM 'lit': failed to do post: 401 Unauthorized(: .+)?$/);
    replies.push(eCode);
    fake.enqueue({ type: 'status', status: 403, body: { error: { message: 'x', code: 'LITKEY-fedcba9876543210' } } }, 1);
    replies.push(await errOf(r.call('LLM.RUN', 'a')));
    expect(replies.at(-1)).toMatch(/^ERR failed to predict with openai: LLM 'lit': failed to do post: 403 Forbidden(: .+)?$/);
    // A key-like fragment of the literal key must not appear either.
    for (const text of replies) expect(leaks(text, LIT_KEY), text).toBe(false);
    expect(await r.exists('x')).toBe(0);
  });

  it('proxy credentials are masked in LLM.INFO', async () => {
    const p = { api_key: LIT_KEY, base_url: fake.url, http: { proxy_host: 'http://proxyuser:PROXYPASSWORD@127.0.0.1', proxy_port: 3128 } };
    expect(await r.call('LLM.CREATE-LLM', 'px', '--PARAMS', JSON.stringify(p))).toBe(1);
    const text = JSON.stringify(await info(r, 'px'));
    expect(text).not.toContain('PROXYPASSWORD');
    expect(leaks(text, LIT_KEY)).toBe(false);
    expect((await configOf(r, 'px')).params.http.proxy_host).toBe('http://[redacted]@127.0.0.1');
  });

  // FAILS (bug outside this suite's files, see the report): MONITOR relays the backing Redis's
  // monitor lines, including the server's own storage writes (EVAL/HSET/XADD of the catalog
  // record, which holds the literal api_key).
  it('a literal api_key is not shown to a MONITOR client', async () => {
    const m = newClient();
    const mon = await m.monitor();
    const lines: string[] = [];
    mon.on('monitor', (_time: string, args: string[]) => lines.push(args.join(' ')));
    await new Promise((res) => setTimeout(res, 50));
    expect(await r.call('LLM.CREATE-LLM', 'mon', '--PARAMS', JSON.stringify({ api_key: LIT_KEY, base_url: fake.url }))).toBe(1);
    await r.set('after', '1');
    for (let i = 0; i < 100 && !lines.some((l) => l.includes('after')); i++) await new Promise((res) => setTimeout(res, 10));
    mon.disconnect();
    expect(lines.some((l) => l.includes('after'))).toBe(true);
    expect(lines.filter((l) => leaks(l, LIT_KEY))).toEqual([]);
  });

  it('a literal api_key never reaches the server log (child server, --log-level debug)', async () => {
    const child = await startChildServer(['--redis', redis.url, '--log-level', 'debug', '--llm-key-hosts', 'OPENAI_API_KEY=127.0.0.1'], { OPENAI_API_KEY: ENV_KEY });
    try {
      const c = newClient(child.port);
      await waitLoaded(c);
      const p = { api_key: LIT_KEY, base_url: fake.url, http: { retry_backoff: '5ms' } };
      expect(await c.call('LLM.CREATE-LLM', 'logkey', '--PARAMS', JSON.stringify(p))).toBe(1);
      await c.call('LLM.CREATE-APP', 'logapp', '--LLM', 'logkey', '--PROMPT', 'x');
      // 401 (body echoes the key), 429 retried, 500 forever, malformed, hang + timeout.
      expect(await errOf(c.call('LLM.RUN', 'logapp'))).toMatch(/401/);
      fake.setBehavior({ apiKey: undefined });
      fake.enqueue({ type: 'status', status: 429, body: { error: { message: `rate limited for key ${LIT_KEY}`, code: LIT_KEY } } }, 1);
      expect(await c.call('LLM.RUN', 'logapp')).toBe('echo: x');
      fake.setBehavior({ fault: { type: 'status', status: 500, body: { error: { message: `boom ${LIT_KEY}` } } } });
      expect(await errOf(c.call('LLM.RUN', 'logapp'))).toMatch(/^ERR failed to predict with openai: LLM 'logkey': failed to do post: 500 Internal Server Error(: .+)?$/);
      fake.setBehavior({ fault: { type: 'malformed' } });
      expect(await errOf(c.call('LLM.RUN', 'logapp'))).toBe("ERR failed to predict with openai: LLM 'logkey' response was malformed");
      fake.setBehavior({ fault: { type: 'hang' } });
      expect(await errOf(c.call('LLM.RUN', 'logapp', '--TIMEOUT', '100'))).toBe("ERR failed to predict with openai: LLM 'logkey' request timed out after 100 ms");
      fake.setBehavior({ fault: null });
      await errOf(c.call('LLM.CREATE-LLM', 'logkey2', '--PARAMS', `{"api_key":${LIT_KEY}}`));
      await errOf(c.call('LLM.CREATE-LLM', 'logkey2', '--PARAMS', JSON.stringify({ ...p, chat: 'x' })));
      await c.call('LLM.INFO', 'logkey');
      await c.info('llm');
      await c.call('DEL', 'logkey', 'logapp');
      await new Promise((res) => setTimeout(res, 200));
      const out = child.output();
      expect(out).toMatch(/retrying/); // debug lines are there
      expect(out).toMatch(/500 Internal Server Error/);
      expect(leaks(out, LIT_KEY), out).toBe(false);
    } finally {
      await child.stop('SIGKILL');
    }
  });
});

async function waitLoaded(c: Redis): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const t = await c.info('llm');
    if (/llm_loading:0/.test(t)) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error('server did not finish loading');
}

// -------------------------------------------------------------------------------------------------

describe('provider calls are asynchronous, bounded, retried', () => {
  it('50 LLM.RUN in flight against a slow endpoint: PING from another connection answers at once', async () => {
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams({}, { pool: { size: 64 } }));
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'm', '--PROMPT', 'n={{n}}');
    fake.setBehavior({ responseDelayMs: 1000 });
    const conns = Array.from({ length: 50 }, () => newClient());
    await Promise.all(conns.map((c) => c.ping()));
    const t0 = performance.now();
    const runs = conns.map((c, i) => c.call('LLM.RUN', 'a', '--VARS', JSON.stringify({ n: i })));
    // Wait until every request reached the endpoint, then measure PINGs while they hang there.
    while (fake.inFlight < 50 && performance.now() - t0 < 900) await new Promise((res) => setTimeout(res, 5));
    expect(fake.inFlight).toBe(50);
    const pings: number[] = [];
    for (let i = 0; i < 10; i++) {
      const p0 = performance.now();
      expect(await r2.ping()).toBe('PONG');
      pings.push(performance.now() - p0);
    }
    expect(await r2.set('during', '1')).toBe('OK');
    expect(Math.max(...pings)).toBeLessThan(50);
    const replies = await Promise.all(runs);
    const elapsed = performance.now() - t0;
    expect(replies).toEqual(conns.map((_, i) => `echo: n=${i}`));
    expect(fake.maxInFlight).toBe(50);
    expect(elapsed).toBeLessThan(2500); // concurrent, not 50 x 1 s
  });

  it('--TIMEOUT 200 against a hanging endpoint: a quick, clear error', async () => {
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'm', '--PROMPT', 'x');
    fake.setBehavior({ fault: { type: 'hang' } });
    const t0 = performance.now();
    expect(await errOf(r.call('LLM.RUN', 'a', '--TIMEOUT', '200'))).toBe("ERR failed to predict with openai: LLM 'm' request timed out after 200 ms");
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(600);
    expect(await r.ping()).toBe('PONG');
  });

  it('the default timeout (http.socket_timeout) applies without --TIMEOUT', async () => {
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams({}, { socket_timeout: '300ms' }));
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'm', '--PROMPT', 'x');
    fake.setBehavior({ fault: { type: 'hang' } });
    const t0 = performance.now();
    expect(await errOf(r.call('LLM.RUN', 'a'))).toBe("ERR failed to predict with openai: LLM 'm' request timed out after 300 ms");
    expect(performance.now() - t0).toBeLessThan(800);
    // --TIMEOUT overrides it.
    fake.setBehavior({ fault: null, responseDelayMs: 500 });
    expect(await r.call('LLM.RUN', 'a', '--TIMEOUT', '3000')).toBe('echo: x');
  });

  it('429 then success is retried; 500 forever is one clear error naming the status', async () => {
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'm', '--PROMPT', 'x');
    fake.enqueue({ type: 'status', status: 429 }, 2);
    expect(await r.call('LLM.RUN', 'a')).toBe('echo: x');
    expect(fake.calls('/chat/completions')).toBe(3);
    expect((await info(r, 'm'))!.retries).toBe('2');

    fake.reset();
    fake.setBehavior({ fault: { type: 'status', status: 500 } });
    expect(await errOf(r.call('LLM.RUN', 'a'))).toMatch(/^ERR failed to predict with openai: LLM 'm': failed to do post: 500 Internal Server Error(: .+)?$/);
    expect(fake.calls()).toBe(3); // first attempt + max_retries (2)

    fake.reset();
    fake.setBehavior({ fault: { type: 'status', status: 503 } });
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams({}, { max_retries: 0 }));
    expect(await errOf(r.call('LLM.RUN', 'a'))).toMatch(/^ERR failed to predict with openai: LLM 'm': failed to do post: 503 Service Unavailable(: .+)?$/);
    expect(fake.calls()).toBe(1);

    fake.reset();
    fake.setBehavior({ fault: { type: 'status', status: 400 } });
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams());
    expect(await errOf(r.call('LLM.RUN', 'a'))).toMatch(/^ERR failed to predict with openai: LLM 'm': failed to do post: 400 Bad Request(: .+)?$/);
    expect(fake.calls()).toBe(1); // not retried

    fake.reset();
    fake.enqueue({ type: 'destroy' }, 1);
    expect(await r.call('LLM.RUN', 'a')).toBe('echo: x'); // network error retried
    fake.setBehavior({ fault: { type: 'malformed' } });
    expect(await errOf(r.call('LLM.RUN', 'a'))).toBe("ERR failed to predict with openai: LLM 'm' response was malformed");
  });

  it('connection refused names the cause', async () => {
    const dead = await startFakeOpenAI();
    const url = dead.url;
    await dead.close();
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', JSON.stringify({ api_key: LIT_KEY, base_url: url, http: { retry_backoff: '5ms' } }));
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'm', '--PROMPT', 'x');
    expect(await errOf(r.call('LLM.RUN', 'a'))).toBe("ERR failed to predict with openai: LLM 'm' request failed: connection refused");
  });

  it('http.pool.size is honoured; pool.wait_timeout bounds the wait for a slot', async () => {
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams({}, { pool: { size: 2 } }));
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'm', '--PROMPT', '{{i}}');
    fake.setBehavior({ responseDelayMs: 150 });
    const conns = Array.from({ length: 6 }, () => newClient());
    const t0 = performance.now();
    const replies = await Promise.all(conns.map((c, i) => c.call('LLM.RUN', 'a', '--VARS', JSON.stringify({ i }))));
    expect(replies).toEqual(conns.map((_, i) => `echo: ${i}`));
    expect(fake.maxInFlight).toBe(2);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(3 * 150 - 20);

    fake.reset();
    await r.call('LLM.CREATE-LLM', 'm', '--PARAMS', openaiParams({}, { pool: { size: 1, wait_timeout: '50ms' } }));
    fake.setBehavior({ responseDelayMs: 400 });
    const [c1, c2] = [newClient(), newClient()];
    const first = c1.call('LLM.RUN', 'a', '--VARS', '{"i":1}');
    await new Promise((res) => setTimeout(res, 50));
    expect(await errOf(c2.call('LLM.RUN', 'a', '--VARS', '{"i":2}'))).toBe("ERR failed to predict with openai: LLM 'm' request failed: no free connection within 50 ms (pool size 1)");
    expect(await first).toBe('echo: 1');
    expect(fake.maxInFlight).toBe(1);
  });
});

// -------------------------------------------------------------------------------------------------

describe('INFO llm and LLM.INFO counters', () => {
  it('per-LLM calls, errors, tokens and latency', async () => {
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-LLM', 'other', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'hello-world', '--LLM', 'openai', '--PROMPT', 'Say hello to {{name}}');
    for (let i = 0; i < 3; i++) await r.call('LLM.RUN', 'hello-world', '--VARS', '{"name":"LLM"}');
    fake.enqueue({ type: 'status', status: 500 }, 3);
    await errOf(r.call('LLM.RUN', 'hello-world', '--VARS', '{"name":"LLM"}'));
    const lines = await modelLines(r);
    expect(Object.keys(lines).sort()).toEqual(['openai', 'other']);
    const m = lines.openai!;
    expect(m.db).toBe('0');
    expect(m.type).toBe('openai');
    expect(m.calls).toBe('4');
    expect(m.errors).toBe('1');
    expect(m.prompt_tokens).toBe('12'); // 3 x "Say hello to LLM"
    expect(m.completion_tokens).toBe('15'); // 3 x "echo: Say hello to LLM"
    expect(Number(m.latency_p50_ms)).toBeGreaterThan(0);
    expect(Number(m.latency_p99_ms)).toBeGreaterThanOrEqual(Number(m.latency_p50_ms));
    expect(lines.other!.calls).toBe('0');
    const text = await r.info('llm');
    expect(text).toMatch(/^llm_objects:3$/m);
    const li = (await info(r, 'openai'))!;
    expect(li.type).toBe('llm-model');
    expect(li.calls).toBe('4');
    expect(li.errors).toBe('1');
    expect(li.prompt_tokens).toBe('12');
  });

  it('one vocabulary: LLM.STATS, LLM.INFO and INFO llm give an LLM, an app and a store the same fields with the same values', async () => {
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'cached', '--LLM', 'openai', '--PROMPT', 'Say hello to {{name}}', '--CACHE', '{"exact":true}');
    await r.call('LLM.CREATE-VECTOR-STORE', 'vs', '--LLM', 'openai');
    await r.call('LLM.ADD', 'vs', 'Redis is an in-memory data store');
    await r.call('LLM.ADD', 'vs', 'Postgres is a relational database');
    for (let i = 0; i < 2; i++) await r.call('LLM.RUN', 'cached', '--VARS', '{"name":"LLM"}');
    const stats = async (key: string) => {
      const a = (await r.call('LLM.STATS', key)) as string[];
      return Object.fromEntries(Array.from({ length: a.length / 2 }, (_, i) => [a[2 * i]!, a[2 * i + 1]!]));
    };
    const infoLines = async () => {
      const out: Record<string, Record<string, string>> = {};
      for (const line of (await r.info('llm')).split(/\r?\n/)) {
        const m = /^(?:model|app|store)\d+:(.*)$/.exec(line);
        if (!m) continue;
        const f = Object.fromEntries(m[1]!.split(',').map((kv) => kv.split('=') as [string, string]));
        out[f.name!] = f;
      }
      return out;
    };
    const counters = ['calls', 'cache_hits_exact', 'cache_hits_semantic', 'cache_misses', 'prompt_tokens', 'completion_tokens', 'errors', 'rate_limited', 'latency_p50_ms', 'latency_p99_ms'];
    const llm = await stats('openai');
    const app = await stats('cached');
    const store = await stats('vs');
    expect(Object.keys(llm)).toEqual([...counters, 'retries', 'in_flight', 'queued']);
    expect(Object.keys(app)).toEqual(counters);
    expect(Object.keys(store)).toEqual(['items', 'dim', 'space', 'capacity', 'memory', 'attr_index_memory', 'engine_failures', 'log_length', 'last_snapshot']);
    // The same meanings: an LLM's calls are provider requests (2 embeddings + 1 chat: the second
    // run was an exact cache hit), an app's calls are runs; cache lookups count on both.
    expect(llm).toMatchObject({ calls: '3', cache_hits_exact: '1', cache_misses: '1', errors: '0' });
    expect(app).toMatchObject({ calls: '2', cache_hits_exact: '1', cache_misses: '1', errors: '0' });
    expect(store).toMatchObject({ items: '2', dim: '64', space: 'l2' });
    const lines = await infoLines();
    const li = (await info(r, 'openai'))!;
    const ai = (await info(r, 'cached'))!;
    const si = (await info(r, 'vs'))!;
    for (const [key, st, i] of [['openai', llm, li], ['cached', app, ai], ['vs', store, si]] as const) {
      for (const [k, v] of Object.entries(st)) {
        if (k.startsWith('latency') || k === 'memory') continue; // may move between the reads
        expect(lines[key]![k], `INFO llm ${key} ${k}`).toBe(v);
        expect(i[k], `LLM.INFO ${key} ${k}`).toBe(v);
      }
    }
    // --RESET zeroes counters; a store has none, its fields describe its state.
    await r.call('LLM.STATS', 'vs', '--RESET');
    expect((await stats('vs')).items).toBe('2');
    await r.call('LLM.STATS', 'openai', '--RESET');
    expect(await stats('openai')).toMatchObject({ calls: '0', cache_hits_exact: '0', cache_misses: '0' });
  });
});

// -------------------------------------------------------------------------------------------------

describe('deleting or renaming the LLM an app uses', () => {
  it('LLM.RUN then gives a clear error; a run in flight still completes', async () => {
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams());
    await r.call('LLM.CREATE-APP', 'a', '--LLM', 'openai', '--PROMPT', 'x');
    fake.setBehavior({ responseDelayMs: 300 });
    const inFlight = r2.call('LLM.RUN', 'a');
    await new Promise((res) => setTimeout(res, 100));
    expect(await r.del('openai')).toBe(1);
    expect(await inFlight).toBe('echo: x');
    expect(await errOf(r.call('LLM.RUN', 'a'))).toBe('ERR LLM model not exist: openai');
    // Recreated: works again.
    fake.setBehavior({ responseDelayMs: 0 });
    await r.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams());
    expect(await r.call('LLM.RUN', 'a')).toBe('echo: x');
    expect(await r.rename('openai', 'renamed')).toBe('OK');
    expect(await errOf(r.call('LLM.RUN', 'a'))).toBe('ERR LLM model not exist: openai');
    expect(await r.call('LLM.CREATE-APP', 'a', '--XX', '--LLM', 'renamed', '--PROMPT', 'x')).toBe(1);
    expect(await r.call('LLM.RUN', 'a')).toBe('echo: x');
  });
});

// -------------------------------------------------------------------------------------------------

describe('durability', () => {
  let redis2: RedisServerHandle;
  beforeAll(async () => {
    redis2 = await startRedis({ persistent: true });
  });
  afterAll(async () => {
    await redis2?.stop();
  });

  it('definitions survive a restart of the server on the same Redis', async () => {
    let s = await startServer({ redis: redis2.url, llmKeyHosts: { OPENAI_API_KEY: ['127.0.0.1'] } });
    await s.loadingDone;
    let c = client(s.port);
    await c.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams({ chat: { model: 'gpt-4o', temperature: 0.5 } }));
    await c.call('LLM.CREATE-LLM', 'lit', '--PARAMS', JSON.stringify({ api_key: ENV_KEY, base_url: fake.url }));
    await c.call('LLM.CREATE-APP', 'hello-world', '--LLM', 'openai', '--PROMPT', 'Say hello to {{name}}');
    await c.call('LLM.CREATE-APP', 'lit-app', '--LLM', 'lit', '--PROMPT', 'literal');
    const before = await Promise.all(['openai', 'lit', 'hello-world', 'lit-app'].map((k) => info(c, k)));
    c.disconnect();
    await s.stop();

    s = await startServer({ redis: redis2.url, llmKeyHosts: { OPENAI_API_KEY: ['127.0.0.1'] } });
    try {
      await s.loadingDone;
      c = client(s.port);
      expect(await Promise.all(['openai', 'lit', 'hello-world', 'lit-app'].map((k) => info(c, k)))).toEqual(before);
      expect(await c.call('LLM.RUN', 'hello-world', '--VARS', '{"name":"again"}')).toBe('echo: Say hello to again');
      expect(fake.lastRequest()!.body).toEqual({ model: 'gpt-4o', temperature: 0.5, messages: [{ role: 'user', content: 'Say hello to again' }] });
      // The literal key survived too (it is what is sent), though it is never shown.
      expect(await c.call('LLM.RUN', 'lit-app')).toBe('echo: literal');
      expect(fake.lastRequest()!.headers.authorization).toBe(`Bearer ${ENV_KEY}`);
      // Deletions are durable too.
      expect(await c.del('lit-app')).toBe(1);
      c.disconnect();
      await s.stop();
      s = await startServer({ redis: redis2.url, llmKeyHosts: { OPENAI_API_KEY: ['127.0.0.1'] } });
      await s.loadingDone;
      c = client(s.port);
      expect(await c.exists('lit-app', 'hello-world')).toBe(1);
      await c.flushall();
    } finally {
      c.disconnect();
      await s.stop();
    }
  });

  it('definitions survive kill -9 of a child server', async () => {
    let child: ChildServer | undefined = await startChildServer(['--redis', redis2.url, '--llm-key-hosts', 'OPENAI_API_KEY=127.0.0.1'], { OPENAI_API_KEY: ENV_KEY });
    try {
      let c = newClient(child.port);
      await waitLoaded(c);
      expect(await c.call('LLM.CREATE-LLM', 'openai', '--PARAMS', openaiParams({ chat: { temperature: 0.7 } }))).toBe(1);
      expect(await c.call('LLM.CREATE-APP', 'hello-world', '--LLM', 'openai', '--PROMPT', 'Say hello to {{name}}')).toBe(1);
      // Overwrite acknowledged just before the kill must be what survives.
      expect(await c.call('LLM.CREATE-APP', 'hello-world', '--LLM', 'openai', '--PROMPT', 'Bonjour {{name}}')).toBe(1);
      expect(await child.stop('SIGKILL')).toBeNull();
      child = await startChildServer(['--redis', redis2.url, '--llm-key-hosts', 'OPENAI_API_KEY=127.0.0.1'], { OPENAI_API_KEY: ENV_KEY });
      c = newClient(child.port);
      await waitLoaded(c);
      expect(await c.call('LLM.RUN', 'hello-world', '--VARS', '{"name":"LLM"}')).toBe('echo: Bonjour LLM');
      expect(fake.lastRequest()!.body).toEqual({ model: 'gpt-3.5-turbo', temperature: 0.7, messages: [{ role: 'user', content: 'Bonjour LLM' }] });
      expect(fake.lastRequest()!.headers.authorization).toBe(`Bearer ${ENV_KEY}`);
      await c.flushall();
    } finally {
      await child?.stop('SIGKILL');
    }
  });
});
