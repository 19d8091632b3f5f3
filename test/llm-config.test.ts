import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandError } from '../src/errors.js';
import {
  LATENCY_WINDOW,
  LlmError,
  LlmStats,
  createProvider,
  parseStoredConfig,
  sealConfig,
  unsealedSecrets,
  joinUrl,
  localEmbed,
  parseDuration,
  parseLlmConfig,
  redactConfig,
  makeLlmPolicy,
  assertKeyHostAllowed,
  type LlmPolicy,
  resolveApiKey,
  type AzureOpenAIConfig,
  type OpenAIConfig,
} from '../src/llm/index.js';
import { SecretBox } from '../src/util/secret.js';

const KEY = 'sk-test-CONFIG-5f3a9b1c7d';
const BOX = SecretBox.fromSecret('test secret of the llm-config suite');

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}


describe('parseLlmConfig: openai', () => {
  it('applies the original defaults plus base_url', () => {
    const cfg = parseLlmConfig(undefined, { api_key: KEY }) as OpenAIConfig;
    expect(cfg.type).toBe('openai');
    expect(cfg.baseUrl).toBe('https://api.openai.com');
    expect(cfg.chatPath).toBe('/v1/chat/completions');
    expect(cfg.embeddingPath).toBe('/v1/embeddings');
    expect(cfg.chatUrl).toBe('https://api.openai.com/v1/chat/completions');
    expect(cfg.embeddingUrl).toBe('https://api.openai.com/v1/embeddings');
    expect(cfg.chat).toEqual({ model: 'gpt-3.5-turbo' });
    expect(cfg.embedding).toEqual({ model: 'text-embedding-ada-002' });
    expect(cfg.http).toMatchObject({
      socketTimeoutMs: undefined,
      connectTimeoutMs: 5000,
      verifyTls: true,
      maxRetries: 2,
      retryBackoffMs: 500,
      pool: { size: 16, waitTimeoutMs: 0, connectionLifetimeMs: 0 },
    });
  });

  it('keeps extra body fields, drops the ones the layer controls, and parses http', () => {
    const cfg = parseLlmConfig('OpenAI', {
      api_key: KEY,
      base_url: 'http://localhost:11434/v1/',
      chat: { model: 'llama3', temperature: 0.2, messages: ['x'], stream: true },
      embedding: { model: 'nomic', dimensions: 8, input: 'x' },
      http: {
        socket_timeout: '5s',
        connect_timeout: '500ms',
        max_retries: 0,
        retry_backoff: 10,
        proxy_host: 'proxy.local',
        proxy_port: 3128,
        pool: { size: 3, wait_timeout: '1m', connection_lifetime: '2s' },
      },
    }) as OpenAIConfig;
    expect(cfg.baseUrl).toBe('http://localhost:11434/v1');
    expect(cfg.chatUrl).toBe('http://localhost:11434/v1/chat/completions');
    expect(cfg.chat).toEqual({ model: 'llama3', temperature: 0.2 });
    expect(cfg.embedding).toEqual({ model: 'nomic', dimensions: 8 });
    expect(cfg.http).toMatchObject({
      socketTimeoutMs: 5000,
      connectTimeoutMs: 500,
      maxRetries: 0,
      retryBackoffMs: 10,
      proxyUrl: 'http://proxy.local:3128/',
      pool: { size: 3, waitTimeoutMs: 60_000, connectionLifetimeMs: 2000 },
    });
  });

  it('refuses an unknown type', () => {
    const e = errorOf(() => parseLlmConfig('llama', { api_key: KEY }));
    expect(e).toBeInstanceOf(CommandError);
    expect(e.message).toBe('unknown LLM model: llama');
  });

  it.each<[unknown, RegExp]>([
    ['not an object', /expected a JSON object/],
    [[1, 2], /expected a JSON object/],
    [{}, /'api_key' is required for type openai/],
    [{ api_key: 42 }, /'api_key' must be a non-empty string/],
    [{ api_key: '' }, /'api_key' must be a non-empty string/],
    [{ api_key: `${KEY}\r\nX-Evil: 1` }, /'api_key' must be printable ASCII/],
    [{ api_key: `${KEY}é` }, /'api_key' must be printable ASCII/],
    [{ api_key: KEY, chat: 'gpt-4' }, /'chat' must be a JSON object/],
    [{ api_key: KEY, chat: { model: 5 } }, /'chat.model' must be a non-empty string/],
    [{ api_key: KEY, embedding: { dimensions: -3 } }, /'embedding.dimensions'/],
    [{ api_key: KEY, embedding: { encoding_format: 'int8' } }, /'embedding.encoding_format'/],
    [{ api_key: KEY, base_url: 'ftp://example.com' }, /'base_url' must use http or https/],
    [{ api_key: KEY, base_url: 'file:///etc/passwd' }, /'base_url' must use http or https/],
    [{ api_key: KEY, base_url: 'javascript:alert(1)' }, /'base_url' must use http or https/],
    [{ api_key: KEY, base_url: 'not a url' }, /'base_url' is not a valid URL/],
    [{ api_key: KEY, base_url: 'https://u:p@example.com' }, /must not contain credentials/],
    [{ api_key: KEY, base_url: 'https://example.com/v1?x=1' }, /must not contain a query/],
    [{ api_key: KEY, base_url: 7 }, /'base_url' must be a non-empty string/],
    [{ api_key: KEY, chat_path: 'http://evil/x' }, /'chat_path' must be a URL path/],
    [{ api_key: KEY, chat_path: '/a/../b' }, /'chat_path' must not contain/],
    [{ api_key: KEY, http: 'fast' }, /'http' must be a JSON object/],
    [{ api_key: KEY, http: { socket_timeout: '1.2.3s' } }, /'http.socket_timeout' must be a duration/],
    [{ api_key: KEY, http: { socket_timeout: -1 } }, /'http.socket_timeout' must be a duration/],
    [{ api_key: KEY, http: { socket_timeout: '0s' } }, /'http.socket_timeout' must be a duration/],
    [{ api_key: KEY, http: { connect_timeout: true } }, /'http.connect_timeout' must be a duration/],
    [{ api_key: KEY, http: { pool: { size: 0 } } }, /'http.pool.size' must be an integer between 1 and 1024/],
    [{ api_key: KEY, http: { pool: { size: 2.5 } } }, /'http.pool.size'/],
    [{ api_key: KEY, http: { pool: [] } }, /'http.pool' must be a JSON object/],
    [{ api_key: KEY, http: { max_retries: 99 } }, /'http.max_retries'/],
    [{ api_key: KEY, http: { proxy_port: 8080 } }, /'http.proxy_port' needs 'http.proxy_host'/],
    [{ api_key: KEY, http: { proxy_host: 'a b' } }, /'http.proxy_host' is not a valid host/],
    [{ api_key: KEY, http: { proxy_host: 'socks5://p:1' } }, /'http.proxy_host' must use http or https/],
    [{ api_key: KEY, http: { enable_certificate_verification: 'no' } }, /enable_certificate_verification/],
  ])('rejects %j', (params, re) => {
    const e = errorOf(() => parseLlmConfig('openai', params));
    expect(e).toBeInstanceOf(CommandError);
    expect(e.message).toMatch(/^invalid LLM params: /);
    expect(e.message).toMatch(re);
    expect(e.message).not.toContain(KEY);
  });

  it.each(['12abc', '5x', '3 days'])("a duration with an unknown unit names it, in the original's words: %j", (v) => {
    const e = errorOf(() => parseLlmConfig('openai', { api_key: KEY, http: { connect_timeout: v } }));
    expect(e.message).toBe(`unknown timeout unit: ${v.replace(/^[\d ]+/, '')} (in 'http.connect_timeout': use ms, s, m or h)`);
  });
});

describe('parseLlmConfig: azure_openai and local', () => {
  it('builds the endpoint from resource_name and accepts either deployment', () => {
    const cfg = parseLlmConfig('azure_openai', {
      api_key: KEY,
      resource_name: 'my-res',
      chat_deployment_id: 'gpt4o',
      api_version: '2024-02-01',
    }) as AzureOpenAIConfig;
    expect(cfg.endpoint).toBe('https://my-res.openai.azure.com');
    expect(cfg.chatDeploymentId).toBe('gpt4o');
    expect(cfg.embeddingDeploymentId).toBeUndefined();
    expect(cfg.chat).toEqual({}); // no default model: the deployment decides
    const legacy = parseLlmConfig('azure_openai', {
      api_key: KEY,
      endpoint: 'https://x.example.com/',
      deployment_id: 'both',
      api_version: 'v1',
    }) as AzureOpenAIConfig;
    expect(legacy.endpoint).toBe('https://x.example.com');
    expect(legacy.chatDeploymentId).toBe('both');
    expect(legacy.embeddingDeploymentId).toBe('both');
  });

  it.each<[unknown, RegExp]>([
    [{ resource_name: 'r', chat_deployment_id: 'd', api_version: 'v' }, /'api_key' is required/],
    [{ api_key: KEY, resource_name: 'r', chat_deployment_id: 'd' }, /'api_version' is required/],
    [{ api_key: KEY, chat_deployment_id: 'd', api_version: 'v' }, /'resource_name' or 'endpoint' is required/],
    [{ api_key: KEY, resource_name: 'r', endpoint: 'https://e', chat_deployment_id: 'd', api_version: 'v' }, /either 'resource_name' or 'endpoint'/],
    [{ api_key: KEY, resource_name: 'r', api_version: 'v' }, /'chat_deployment_id' or 'embedding_deployment_id' is required/],
    [{ api_key: KEY, resource_name: 'bad/name', chat_deployment_id: 'd', api_version: 'v' }, /'resource_name'/],
    [{ api_key: KEY, endpoint: 'gopher://x', chat_deployment_id: 'd', api_version: 'v' }, /'endpoint' must use http or https/],
  ])('rejects %j', (params, re) => {
    const e = errorOf(() => parseLlmConfig('azure_openai', params));
    expect(e).toBeInstanceOf(CommandError);
    expect(e.message).toMatch(re);
    expect(e.message).not.toContain(KEY);
  });

  it('local: dim default and range', () => {
    expect(parseLlmConfig('local', undefined)).toEqual({ type: 'local', dim: 256 });
    expect(parseLlmConfig('LOCAL', { dim: 32 })).toEqual({ type: 'local', dim: 32 });
    expect(errorOf(() => parseLlmConfig('local', { dim: 'big' })).message).toMatch(/'dim' must be an integer between 8 and 4096/);
    expect(errorOf(() => parseLlmConfig('local', { dim: 1e6 })).message).toMatch(/'dim'/);
  });
});

describe('parseLlmConfig never crashes', () => {
  it('throws only CommandError for arbitrary params', () => {
    const keys = ['api_key', 'base_url', 'chat', 'embedding', 'chat_path', 'embedding_path', 'http', 'resource_name',
      'endpoint', 'api_version', 'chat_deployment_id', 'embedding_deployment_id', 'deployment_id', 'dim'];
    const httpKeys = ['socket_timeout', 'connect_timeout', 'proxy_host', 'proxy_port', 'pool', 'max_retries',
      'retry_backoff', 'enable_certificate_verification'];
    const poolKeys = ['size', 'wait_timeout', 'connection_lifetime'];
    const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('5s', '0', '-1', '12abc', 'http://x', 'ftp://y', '$X', ''));
    const pool = fc.dictionary(fc.constantFrom(...poolKeys), value);
    const httpArb = fc.dictionary(fc.constantFrom(...httpKeys), fc.oneof(value, pool));
    const params = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.dictionary(fc.constantFrom(...keys), fc.oneof(value, httpArb)),
      fc.record({ api_key: fc.string({ minLength: 1 }), http: httpArb }),
    );
    fc.assert(
      fc.property(fc.constantFrom('openai', 'azure_openai', 'local', undefined, 'x'), params, (type, p) => {
        try {
          const cfg = parseLlmConfig(type, p);
          JSON.stringify(redactConfig(cfg));
        } catch (e) {
          if (!(e instanceof CommandError)) throw e;
        }
      }),
      { numRuns: 500, seed: 42 },
    );
  });
});

describe('durations and URL joining', () => {
  it('parses durations like the original, plus numbers of ms', () => {
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration('250')).toBe(250);
    for (const bad of ['12abc', '-1s', 's', '', '1d', NaN, -5, Infinity, null, {}]) expect(parseDuration(bad)).toBeUndefined();
  });

  it.each([
    ['https://api.openai.com', '/v1/chat/completions', 'https://api.openai.com/v1/chat/completions'],
    ['https://api.openai.com/', 'v1/embeddings', 'https://api.openai.com/v1/embeddings'],
    ['http://host:11434/v1', '/v1/chat/completions', 'http://host:11434/v1/chat/completions'],
    ['http://host:11434/v1', '/chat/completions', 'http://host:11434/v1/chat/completions'],
    ['https://api.groq.com/openai/v1', '/v1/chat/completions', 'https://api.groq.com/openai/v1/chat/completions'],
    ['https://api.deepseek.com', '/v1/chat/completions', 'https://api.deepseek.com/v1/chat/completions'],
    ['http://host/api', '/v1/embeddings', 'http://host/api/v1/embeddings'],
    ['http://host/api/v1', '/api/v1/embeddings', 'http://host/api/v1/embeddings'],
    ['https://g.example.com/v1beta/openai', '/chat/completions', 'https://g.example.com/v1beta/openai/chat/completions'],
  ])('joinUrl(%s, %s)', (base, path, want) => {
    expect(joinUrl(base, path)).toBe(want);
  });
});

describe('secrets and redaction', () => {
  it('redactConfig hides a literal key and shows an env reference', () => {
    const literal = parseLlmConfig('openai', { api_key: KEY, base_url: 'http://127.0.0.1:9/v1' });
    const shown = redactConfig(literal);
    expect(JSON.stringify(shown)).not.toContain(KEY);
    expect(shown).toMatchObject({
      type: 'openai',
      params: { api_key: '[redacted]', base_url: 'http://127.0.0.1:9/v1' },
      urls: { chat: 'http://127.0.0.1:9/v1/chat/completions' },
    });
    const env = parseLlmConfig('openai', { api_key: '$OPENAI_API_KEY' });
    expect(redactConfig(env)).toMatchObject({ params: { api_key: '$OPENAI_API_KEY' } });
    const azure = parseLlmConfig('azure_openai', { api_key: KEY, resource_name: 'r', embedding_deployment_id: 'emb', api_version: '2024-02-01' });
    const az = redactConfig(azure);
    expect(JSON.stringify(az)).not.toContain(KEY);
    expect(az).toMatchObject({ urls: { embedding: 'https://r.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-02-01' } });
  });

  it('redactConfig masks proxy credentials', () => {
    const cfg = parseLlmConfig('openai', { api_key: KEY, http: { proxy_host: 'http://user:hunter2@proxy:8080' } });
    expect(JSON.stringify(redactConfig(cfg))).not.toContain('hunter2');
  });

  it('sealConfig round-trips through parseStoredConfig', () => {
    const samples = [
      parseLlmConfig('openai', {
        api_key: '$K_API_KEY',
        base_url: 'http://h:1/v1',
        chat: { model: 'm', temperature: 0 },
        http: { socket_timeout: '3s', pool: { size: 2, wait_timeout: '1s' }, proxy_host: 'p', proxy_port: 1 },
      }, { policy: makeLlmPolicy({ keyHosts: { K_API_KEY: ['h:1', 'p:1'] } }) }),
      parseLlmConfig('azure_openai', { api_key: KEY, endpoint: 'https://e.example', chat_deployment_id: 'c', api_version: 'v' }),
      parseLlmConfig('azure_openai', { api_key: KEY, resource_name: 'r', deployment_id: 'c', api_version: 'v' }),
      parseLlmConfig('local', { dim: 64 }),
    ];
    for (const cfg of samples) {
      const { type, params } = sealConfig(cfg, BOX);
      expect(parseStoredConfig(type, JSON.parse(JSON.stringify(params)), BOX)).toEqual(cfg);
    }
  });
});

describe('secrets sealed at rest', () => {
  const PROXY_PASS = 'proxy-PASSWORD-77aa';
  const params = { api_key: KEY, base_url: 'http://127.0.0.1:9/v1', http: { proxy_host: `http://user:${PROXY_PASS}@proxy:8080` } };

  it('sealConfig seals a literal api_key and proxy credentials, keeps "$NAME" and a plain proxy host readable', () => {
    const sealed = sealConfig(parseLlmConfig('openai', params), BOX);
    const text = JSON.stringify(sealed);
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(PROXY_PASS);
    expect(text).not.toContain('user:');
    const p = sealed.params as { api_key: { sealed: string }; http: { proxy_host: { sealed: string } } };
    expect(p.api_key.sealed).toMatch(new RegExp(`^v1:${BOX.keyId}:[A-Za-z0-9+/]+=*$`));
    expect(p.http.proxy_host.sealed).toMatch(/^v1:/);
    // Fresh IVs: sealing again gives other texts.
    expect((sealConfig(parseLlmConfig('openai', params), BOX).params as typeof p).api_key.sealed).not.toBe(p.api_key.sealed);
    expect(sealConfig(parseLlmConfig('openai', { api_key: '$OPENAI_API_KEY', http: { proxy_host: 'proxy', proxy_port: 3128 } }), BOX).params).toMatchObject({
      api_key: '$OPENAI_API_KEY',
      http: { proxy_host: 'proxy', proxy_port: 3128 },
    });
    const azure = sealConfig(parseLlmConfig('azure_openai', { api_key: KEY, resource_name: 'r', deployment_id: 'd', api_version: 'v' }), BOX);
    expect(JSON.stringify(azure)).not.toContain(KEY);
    expect(parseStoredConfig(azure.type, azure.params, BOX)).toMatchObject({ apiKey: KEY });
  });

  it('opened with the same secret: the literal values again; the proxy URL keeps its credentials', () => {
    const stored = sealConfig(parseLlmConfig('openai', params), BOX);
    const cfg = parseStoredConfig(stored.type, stored.params, BOX) as OpenAIConfig;
    expect(cfg.apiKey).toBe(KEY);
    expect(cfg.http.proxyUrl).toBe(`http://user:${PROXY_PASS}@proxy:8080/`);
    expect(cfg.locked).toBeUndefined();
  });

  it('opened with another secret: the config loads locked, shows [redacted], is written back unchanged, its calls fail clearly', async () => {
    const stored = sealConfig(parseLlmConfig('openai', params), BOX);
    const other = SecretBox.fromSecret('a different secret, same length!');
    const cfg = parseStoredConfig(stored.type, stored.params, other) as OpenAIConfig;
    expect(cfg.locked).toMatchObject({ fields: ['api_key', 'http.proxy_host'], reason: 'other-secret', keyId: BOX.keyId });
    expect(redactConfig(cfg)).toMatchObject({ params: { api_key: '[redacted]', base_url: 'http://127.0.0.1:9/v1', http: { proxy_host: '[redacted]' } } });
    expect(sealConfig(cfg, other)).toEqual(stored);
    const p = createProvider(cfg, () => 'mine');
    const e = await p.chat([{ role: 'user', content: 'hi' }]).catch((x: Error) => x);
    expect(e).toBeInstanceOf(LlmError);
    expect((e as Error).message).toBe(
      "api_key and http.proxy_host of LLM 'mine' were sealed with a different server secret (set the same secret-file / REDIS_LLM_SECRET as the instance that created it, or recreate the LLM)",
    );
    expect(((await p.embed(['x']).catch((x: Error) => x)) as Error).message).toMatch(/^api_key and http.proxy_host of LLM 'mine' were sealed/);
    expect(p.stats.snapshot().errors).toBe(2);
    // Only the key sealed: one field named.
    const keyOnly = sealConfig(parseLlmConfig('openai', { api_key: KEY }), BOX);
    const e2 = await createProvider(parseStoredConfig('openai', keyOnly.params, other), () => 'k').embed(['x']).catch((x: Error) => x);
    expect((e2 as Error).message).toMatch(/^api_key of LLM 'k' was sealed with a different server secret/);
  });

  it('a damaged sealed value loads locked with its own message; nothing secret in it', async () => {
    const stored = sealConfig(parseLlmConfig('openai', { api_key: KEY }), BOX);
    const sealedText = (stored.params.api_key as { sealed: string }).sealed;
    const flipped = sealedText.slice(0, -4) + (sealedText.at(-4) === 'A' ? 'B' : 'A') + sealedText.slice(-3);
    for (const bad of [flipped, 'v1:zz:nope', `v1:${BOX.keyId}:AAAA`]) {
      const cfg = parseStoredConfig('openai', { ...stored.params, api_key: { sealed: bad } }, BOX) as OpenAIConfig;
      expect(cfg.locked?.reason, bad).toBe('damaged');
      const e = await createProvider(cfg, () => 'd').chat([{ role: 'user', content: 'x' }]).catch((x: Error) => x);
      expect((e as Error).message).toBe("api_key of LLM 'd' cannot be opened: the sealed value is damaged (recreate the LLM)");
    }
  });

  it('a definition stored before sealing (plaintext) still loads; unsealedSecrets names its secrets', () => {
    const legacy = { api_key: KEY, http: { proxy_host: `http://u:${PROXY_PASS}@p:1` } };
    expect((parseStoredConfig('openai', legacy, BOX) as OpenAIConfig).apiKey).toBe(KEY);
    expect(unsealedSecrets(legacy)).toEqual(['api_key', 'http.proxy_host']);
    expect(unsealedSecrets({ api_key: '$K_API_KEY', http: { proxy_host: 'p' } })).toEqual([]);
    expect(unsealedSecrets(sealConfig(parseLlmConfig('openai', legacy), BOX).params)).toEqual([]);
  });

  it('CREATE-LLM params cannot carry a sealed value (it would be opened and sent to a host of their choosing) nor name REDIS_LLM_SECRET', () => {
    const stored = sealConfig(parseLlmConfig('openai', params), BOX).params;
    expect(errorOf(() => parseLlmConfig('openai', { api_key: stored.api_key })).message).toBe("invalid LLM params: 'api_key' must be a non-empty string");
    expect(errorOf(() => parseLlmConfig('openai', { api_key: '$K_API_KEY', http: stored.http })).message).toBe(
      "invalid LLM params: 'http.proxy_host' must be a non-empty string",
    );
    for (const ref of ['$REDIS_LLM_SECRET', '${REDIS_LLM_SECRET}']) {
      expect(errorOf(() => parseLlmConfig('openai', { api_key: ref })).message).toBe(
        'invalid LLM params: api_key must not refer to REDIS_LLM_SECRET (the server secret)',
      );
    }
  });
});

describe('environment variables an api_key may name (llm-env-allow)', () => {
  const notAllowed = (name: string, list = '*_API_KEY') => `api_key may name only environment variables matching llm-env-allow (${list}): ${name} does not`;

  it('by default only *_API_KEY: other variables of the server are refused at create time', () => {
    for (const ok of ['$OPENAI_API_KEY', '${AZURE_OPENAI_API_KEY}', '$X_API_KEY']) {
      expect(redactConfig(parseLlmConfig('openai', { api_key: ok })).params).toMatchObject({ api_key: ok });
    }
    for (const [ref, name] of [['$HOME', 'HOME'], ['${AWS_SECRET_ACCESS_KEY}', 'AWS_SECRET_ACCESS_KEY'], ['$REDIS_LLM_REDIS', 'REDIS_LLM_REDIS'], ['$OPENAI_API_KEYS', 'OPENAI_API_KEYS'], ['$openai_api_key', 'openai_api_key']]) {
      expect(errorOf(() => parseLlmConfig('openai', { api_key: ref })).message, ref).toBe(`invalid LLM params: ${notAllowed(name!)}`);
      expect(errorOf(() => parseLlmConfig('azure_openai', { api_key: ref, api_version: 'v', resource_name: 'r' })).message, ref).toBe(`invalid LLM params: ${notAllowed(name!)}`);
    }
    // a literal key that merely looks odd is no reference
    expect(parseLlmConfig('openai', { api_key: '$not a name' }).type).toBe('openai');
  });

  it('names and * patterns; * allows any variable but the server secret; the list is checked again at call time', () => {
    let policy: LlmPolicy = makeLlmPolicy({ envAllow: ['HF_TOKEN', 'MY_*'] });
    expect(parseLlmConfig('openai', { api_key: '$HF_TOKEN' }, { policy }).type).toBe('openai');
    expect(parseLlmConfig('openai', { api_key: '$MY_' }, { policy }).type).toBe('openai');
    expect(errorOf(() => parseLlmConfig('openai', { api_key: '$OPENAI_API_KEY' }, { policy })).message).toBe(`invalid LLM params: ${notAllowed('OPENAI_API_KEY', 'HF_TOKEN MY_*')}`);
    expect(errorOf(() => parseLlmConfig('openai', { api_key: '$HF_TOKENS' }, { policy })).message).toMatch(/HF_TOKENS does not$/);
    // the default policy is untouched by another one (no process-global state)
    expect(parseLlmConfig('openai', { api_key: '$OPENAI_API_KEY' }).type).toBe('openai');
    policy = makeLlmPolicy({ envAllow: ['*'] });
    expect(parseLlmConfig('openai', { api_key: '$HOME' }, { policy }).type).toBe('openai');
    expect(errorOf(() => parseLlmConfig('openai', { api_key: '$REDIS_LLM_SECRET' }, { policy })).message).toBe(
      'invalid LLM params: api_key must not refer to REDIS_LLM_SECRET (the server secret)',
    );
    // a stored definition loads whatever the list says now (as for hosts); its calls are refused
    process.env.LLM_ENV_ALLOW_TEST = 'sk-from-env-0000';
    try {
      const cfg = parseLlmConfig('openai', { api_key: '$LLM_ENV_ALLOW_TEST' }, { policy });
      expect(resolveApiKey('$LLM_ENV_ALLOW_TEST', policy)).toBe('sk-from-env-0000');
      expect(parseStoredConfig('openai', { api_key: '$LLM_ENV_ALLOW_TEST' }, BOX).type).toBe('openai');
      expect(errorOf(() => resolveApiKey(cfg.type === 'local' ? '' : cfg.apiKey)).message).toBe(notAllowed('LLM_ENV_ALLOW_TEST'));
    } finally {
      delete process.env.LLM_ENV_ALLOW_TEST;
    }
  });
});

describe('host allow-list', () => {
  it('refuses hosts not listed, at parse time', () => {
    let policy = makeLlmPolicy({ allowHosts: ['api.openai.com', 'localhost:11434', '*.openai.azure.com'] });
    expect(() => parseLlmConfig('openai', { api_key: KEY }, { policy })).not.toThrow();
    expect(() => parseLlmConfig('openai', { api_key: KEY, base_url: 'http://localhost:11434/v1' }, { policy })).not.toThrow();
    expect(() =>
      parseLlmConfig('azure_openai', { api_key: KEY, resource_name: 'r', deployment_id: 'd', api_version: 'v' }, { policy }),
    ).not.toThrow();
    const e1 = errorOf(() => parseLlmConfig('openai', { api_key: KEY, base_url: 'http://169.254.169.254/latest' }, { policy }));
    expect(e1).toBeInstanceOf(CommandError);
    expect(e1.message).toBe("base_url host '169.254.169.254' is not in the allowed LLM hosts");
    expect(() => parseLlmConfig('openai', { api_key: KEY, base_url: 'http://localhost:6379' }, { policy })).toThrow(/not in the allowed/);
    expect(() => parseLlmConfig('openai', { api_key: KEY, base_url: 'https://openai.azure.com.evil.io' }, { policy })).toThrow(/not in the allowed/);
    expect(() =>
      parseLlmConfig('azure_openai', { api_key: KEY, endpoint: 'http://10.0.0.1', deployment_id: 'd', api_version: 'v' }, { policy }),
    ).toThrow(/endpoint host '10.0.0.1' is not in the allowed/);
    expect(() =>
      parseLlmConfig('openai', { api_key: KEY, http: { proxy_host: '10.0.0.2', proxy_port: 3128 } }, { policy }),
    ).toThrow(/proxy host '10.0.0.2:3128' is not in the allowed/);
    policy = makeLlmPolicy({ allowHosts: ['https://API.example.com:8443/v1', '::1'] });
    expect(() => parseLlmConfig('openai', { api_key: KEY, base_url: 'https://api.example.com:8443' }, { policy })).not.toThrow();
    expect(() => parseLlmConfig('openai', { api_key: KEY, base_url: 'https://api.example.com' }, { policy })).toThrow(/not in the allowed/);
    expect(() => parseLlmConfig('openai', { api_key: KEY, base_url: 'http://[::1]:11434/v1' }, { policy })).not.toThrow();
    // local never touches the network
    expect(() => parseLlmConfig('local', {})).not.toThrow();
    expect(() => parseLlmConfig('openai', { api_key: KEY, base_url: 'http://169.254.169.254' })).not.toThrow();
  });
});

describe('keys bound to their hosts (llm-key-hosts)', () => {
  it('a "$NAME" key goes only to its provider\'s own host unless the operator lists others for it', () => {
    const e = errorOf(() => parseLlmConfig('openai', { api_key: '$FOO_API_KEY', base_url: 'http://127.0.0.1:18080/v1' }));
    expect(e).toBeInstanceOf(CommandError);
    expect(e.message).toBe(
      "api_key $FOO_API_KEY may be sent only to api.openai.com:443 (its provider's own host; an operator may allow others with llm-key-hosts FOO_API_KEY <host[:port],...>): not to base_url host '127.0.0.1:18080'",
    );
    expect(parseLlmConfig('openai', { api_key: '$FOO_API_KEY' }).type).toBe('openai');
    expect(() => parseLlmConfig('openai', { api_key: '$FOO_API_KEY', base_url: 'https://api.openai.com.evil.io/v1' })).toThrow(/llm-key-hosts FOO_API_KEY/);
    expect(() => parseLlmConfig('azure_openai', { api_key: '$AZ_API_KEY', resource_name: 'r', deployment_id: 'd', api_version: 'v' })).not.toThrow();
    expect(() => parseLlmConfig('azure_openai', { api_key: '$AZ_API_KEY', endpoint: 'http://127.0.0.1:9', deployment_id: 'd', api_version: 'v' })).toThrow(
      /api_key \$AZ_API_KEY may be sent only to \*\.openai\.azure\.com:443/,
    );
    const policy = makeLlmPolicy({ keyHosts: { FOO_API_KEY: ['llm.internal:8000', 'http://127.0.0.1:18080'] } });
    expect(parseLlmConfig('openai', { api_key: '$FOO_API_KEY', base_url: 'http://127.0.0.1:18080/v1' }, { policy }).type).toBe('openai');
    expect(parseLlmConfig('openai', { api_key: '$FOO_API_KEY', base_url: 'http://llm.internal:8000' }, { policy }).type).toBe('openai');
    // listing hosts replaces the default: the operator said where this key goes
    expect(errorOf(() => parseLlmConfig('openai', { api_key: '$FOO_API_KEY' }, { policy })).message).toMatch(/the hosts llm-key-hosts lists for FOO_API_KEY/);
    // another variable keeps its default
    expect(() => parseLlmConfig('openai', { api_key: '$BAR_API_KEY', base_url: 'http://127.0.0.1:18080/v1' }, { policy })).toThrow(/llm-key-hosts BAR_API_KEY/);
    // over plain http through a proxy, the proxy reads the key: it must be allowed for it too
    expect(() =>
      parseLlmConfig('openai', { api_key: '$FOO_API_KEY', base_url: 'http://127.0.0.1:18080/v1', http: { proxy_host: 'evil.example', proxy_port: 3128 } }, { policy }),
    ).toThrow(/not to proxy \(plain http: it can read the key\) host 'evil.example:3128'/);
    // https through a proxy: the proxy sees a tunnel only, unless certificates are not verified
    const viaProxy = (verify: boolean) => parseLlmConfig('openai', { api_key: '$OPENAI_API_KEY', http: { proxy_host: 'evil.example', proxy_port: 3128, enable_certificate_verification: verify } });
    expect(viaProxy(true).type).toBe('openai');
    expect(() => viaProxy(false)).toThrow(/not to proxy \(certificate verification off: it can read the key\) host 'evil.example:3128'/);
  });

  it('a literal key goes to the base_url given with it; sealed, it is bound to that host', () => {
    const cfg = parseLlmConfig('openai', { api_key: KEY, base_url: 'http://127.0.0.1:18080/v1' }) as OpenAIConfig;
    const stored = sealConfig(cfg, BOX);
    expect(parseStoredConfig(stored.type, stored.params, BOX)).toEqual(cfg);
    // someone with write access to the backing Redis points the stored definition elsewhere
    const moved = parseStoredConfig(stored.type, { ...stored.params, base_url: 'http://127.0.0.1:18081/v1' }, BOX) as OpenAIConfig;
    expect(moved.apiKey).not.toBe(KEY);
    expect(moved.locked?.fields).toEqual(['api_key']);
    // ... or to send it in clear, or through a proxy that could read it
    for (const change of [{ base_url: 'https://127.0.0.1:18080/v1' }, { http: { ...(stored.params.http as object), proxy_host: 'evil.example', proxy_port: 8080 } }]) {
      const changed = parseStoredConfig(stored.type, { ...stored.params, ...change }, BOX) as OpenAIConfig;
      expect(changed.locked?.fields, JSON.stringify(change)).toEqual(['api_key']);
    }
    // a key sealed before keys were bound (label 'api_key') goes only to the provider's own host
    const legacy = { ...stored.params, api_key: { sealed: BOX.seal(KEY, 'api_key') } };
    const old = parseStoredConfig('openai', legacy, BOX) as OpenAIConfig;
    expect(old.apiKey).toBe(KEY);
    expect(old.legacyKey).toBe(true);
    expect(() => assertKeyHostAllowed(old)).toThrow(/sealed before keys were bound to their hosts: it may be sent only to api.openai.com:443, not to base_url host '127.0.0.1:18080'/);
    const oldDefault = parseStoredConfig('openai', { ...legacy, base_url: 'https://api.openai.com' }, BOX) as OpenAIConfig;
    expect(() => assertKeyHostAllowed(oldDefault)).not.toThrow();
  });
});

describe('local embedder', () => {
  const cos = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

  it('is deterministic, unit length, of the configured dimension', () => {
    const a = localEmbed('The quick brown fox jumps over the lazy dog', 128);
    const b = localEmbed('The quick brown fox jumps over the lazy dog', 128);
    expect(a).toEqual(b);
    expect(a).toHaveLength(128);
    expect(Math.abs(cos(a, a) - 1)).toBeLessThan(1e-9);
    // case, accents and punctuation are normalised away
    expect(localEmbed('Café, RÉSUMÉ!', 64)).toEqual(localEmbed('cafe resume', 64));
  });

  it('gives the zero vector to text without letters or digits', () => {
    expect(localEmbed('', 16)).toEqual(new Array(16).fill(0));
    expect(localEmbed('?!  ...', 16)).toEqual(new Array(16).fill(0));
  });

  it('puts paraphrases sharing words closer than unrelated text', () => {
    const dim = 256;
    const cases: [string, string, string][] = [
      ['How do I reset my password?', 'how can I reset the password for my account', 'The weather in Paris is sunny today'],
      ['Redis is an in-memory data store', 'an in-memory data store called Redis', 'Bananas are rich in potassium'],
      ['vector search with HNSW indexes', 'HNSW index for vector searching', 'my cat sleeps all afternoon'],
    ];
    for (const [q, para, other] of cases) {
      const eq = localEmbed(q, dim);
      expect(cos(eq, localEmbed(para, dim))).toBeGreaterThan(cos(eq, localEmbed(other, dim)) + 0.2);
    }
  });

  it('the local provider embeds offline and refuses chat clearly', async () => {
    const p = createProvider(parseLlmConfig('local', { dim: 32 }));
    expect(p.type).toBe('local');
    const [v1, v2] = await p.embed(['hello world', 'hello there']);
    expect(v1).toEqual(localEmbed('hello world', 32));
    expect(v2).toHaveLength(32);
    expect(await p.embed([])).toEqual([]);
    const e = await p.chat([{ role: 'user', content: 'hi' }]).catch((x: Error) => x);
    expect(e).toBeInstanceOf(LlmError);
    expect(e).toBeInstanceOf(CommandError);
    expect((e as Error).message).toBe("LLM type 'local' only computes embeddings; chat needs an openai or azure_openai LLM");
    expect(p.stats.snapshot()).toMatchObject({ requests: 3, errors: 1 });
    p.close();
  });

  it('is fast', () => {
    const text = 'lorem ipsum dolor sit amet '.repeat(40); // ~1 KB
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) localEmbed(text, 256);
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});

describe('LlmStats', () => {
  it('computes nearest-rank p50/p99 and sums tokens', () => {
    const s = new LlmStats();
    expect(s.snapshot()).toMatchObject({ requests: 0, latencyP50Ms: 0, latencyP99Ms: 0 });
    for (let i = 1; i <= 100; i++) s.record(i, i % 10 !== 0, 2, 3);
    const snap = s.snapshot();
    expect(snap).toMatchObject({ requests: 100, errors: 10, promptTokens: 200, completionTokens: 300, latencyP50Ms: 50, latencyP99Ms: 99 });
    s.reset();
    expect(s.snapshot()).toMatchObject({ requests: 0, errors: 0, promptTokens: 0, latencyP50Ms: 0, latencyP99Ms: 0 });
  });

  it('keeps a bounded window of the most recent latencies', () => {
    const s = new LlmStats();
    for (let i = 0; i < LATENCY_WINDOW * 3; i++) s.record(1000, true);
    for (let i = 0; i < LATENCY_WINDOW; i++) s.record(5, true);
    expect(s.snapshot()).toMatchObject({ requests: LATENCY_WINDOW * 4, latencyP50Ms: 5, latencyP99Ms: 5 });
  });
});
