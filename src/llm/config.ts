/**
 * LLM configuration: validation and normalisation of `LLM.CREATE-LLM --TYPE t --PARAMS json`,
 * secret handling (`"$NAME"` api keys; literal keys and proxy credentials sealed for storage with
 * the server secret, see src/util/secret.ts), redaction for display, and the operator's host allow-list.
 *
 * Accepted params (snake_case, as the original redis-llm module; unknown keys are ignored for
 * compatibility with the original's configs):
 *
 * openai:
 *   api_key         (required) literal key, or "$NAME" / "${NAME}" = environment variable NAME read at call time
 *   base_url        default "https://api.openai.com"; any OpenAI-compatible endpoint (http/https only,
 *                   no credentials, query or fragment)
 *   chat            request body base, default model "gpt-3.5-turbo"; extra fields pass through
 *   embedding       request body base, default model "text-embedding-ada-002"; extra fields pass through
 *   chat_path       default "/v1/chat/completions"   (joined with base_url: see joinUrl)
 *   embedding_path  default "/v1/embeddings"
 *   http            see below
 * azure_openai:
 *   api_key, api_version (required); resource_name OR endpoint (one required);
 *   chat_deployment_id / embedding_deployment_id (at least one of them, or the original's
 *   deployment_id which serves both; an operation whose deployment is missing fails when used);
 *   chat, embedding (body bases, no default model: the deployment decides), http.
 *   timeout         deadline of each call ("30s", "500ms", a number of ms): waiting for a pool slot,
 *                   every attempt and backoff. Default: http.socket_timeout, else the server's llm-timeout (60 s).
 *                   A command's --TIMEOUT overrides it.
 *   idle_timeout    streaming: longest wait for the next chunk (default 30 s, never past the deadline)
 *   retries         attempts after the first on connection errors, 408, 429 and 5xx (0..10, default 2;
 *                   the same as http.max_retries, which it overrides)
 * local:
 *   dim             embedding dimension, default 256 (8..4096)
 * router (see router.ts):
 *   targets         other LLM keys of the same db, tried in the order the strategy gives
 *   strategy        fallback (default) | round-robin | weighted | least-busy | lowest-latency
 *   weights         for weighted: one positive number per target
 *   fallback_on     failures that move on to the next target: "429", "5xx", "4xx", a status such as
 *                   "503", "timeout", "connection", "context_length" (default: 429, 5xx, timeout,
 *                   connection, context_length)
 *   cooldown        seconds a failing target is skipped by every instance (default 30; 0 = never)
 *   failures        failures within failure_window that cool a target down (default 3)
 *   failure_window  seconds (default 60)
 *   timeout         deadline of the whole call (as above); target_timeout: longest share of one target
 *                   (default: the deadline left divided among the targets left)
 * http (openai and azure_openai):
 *   socket_timeout  default per-call deadline ("5s", "500ms", "1m", or a number of ms); default 60 s
 *   connect_timeout TCP/TLS connect timeout, default 5 s
 *   proxy_host, proxy_port   HTTP(S) proxy: a host name (port default 80) or an http(s):// URL
 *   enable_certificate_verification  default true (the original defaulted to false)
 *   max_retries     attempts after the first on 408/409/429/5xx/network errors, default 2 (0..10)
 *   retry_backoff   first backoff, doubled each retry with jitter, capped at 8 s; default 500 ms
 *   pool            { size: concurrent calls, default 16;
 *                     wait_timeout: longest wait for a free slot, 0 = only the call's deadline (default);
 *                     connection_lifetime: close pooled connections after this long, 0 = never (default) }
 */
import { CommandError } from '../errors.js';
import { SECRET_ENV, SealError, type SecretBox } from '../util/secret.js';
import { LlmError } from './errors.js';

export type JsonObject = { [k: string]: unknown };

export interface HttpConfig {
  /** Default call deadline (ms); undefined = DEFAULT_TIMEOUT_MS. */
  socketTimeoutMs?: number;
  connectTimeoutMs: number;
  /** Proxy as given (host or URL) and its port; `proxyUrl` is what the dispatcher uses. */
  proxyHost?: string;
  proxyPort?: number;
  proxyUrl?: string;
  verifyTls: boolean;
  maxRetries: number;
  retryBackoffMs: number;
  pool: { size: number; waitTimeoutMs: number; connectionLifetimeMs: number };
}

export interface OpenAIConfig {
  type: 'openai';
  /** Literal key or "$NAME": what is stored; resolved by resolveApiKey at call time. */
  apiKey: string;
  baseUrl: string;
  chatPath: string;
  embeddingPath: string;
  /** Full URLs computed from baseUrl and the paths. */
  chatUrl: string;
  embeddingUrl: string;
  chat: JsonObject;
  embedding: JsonObject;
  http: HttpConfig;
  /** Set for a stored definition whose sealed secrets this instance cannot open (see parseStoredConfig). */
  locked?: LockedSecrets;
  /** A stored key sealed before keys were bound to their hosts: sent only to the provider's own host. */
  legacyKey?: boolean;
}

export interface AzureOpenAIConfig {
  type: 'azure_openai';
  apiKey: string;
  resourceName?: string;
  /** Either given or `https://<resource_name>.openai.azure.com`; no trailing slash. */
  endpoint: string;
  /** True when the user gave `endpoint` rather than `resource_name`. */
  endpointGiven: boolean;
  apiVersion: string;
  chatDeploymentId?: string;
  embeddingDeploymentId?: string;
  chat: JsonObject;
  embedding: JsonObject;
  http: HttpConfig;
  locked?: LockedSecrets;
  legacyKey?: boolean;
}

export interface LocalConfig {
  type: 'local';
  dim: number;
}

/** Call limits of openai / azure_openai LLMs given at the top level of the params. */
export interface CallLimits {
  /** `timeout`: the LLM's own call deadline (ms). */
  timeoutMs?: number;
  /** `idle_timeout`: streaming, longest wait for the next chunk (ms). */
  idleTimeoutMs?: number;
}

export type RouterStrategy = 'fallback' | 'round-robin' | 'weighted' | 'least-busy' | 'lowest-latency';
export const ROUTER_STRATEGIES: readonly RouterStrategy[] = ['fallback', 'round-robin', 'weighted', 'least-busy', 'lowest-latency'];
export const DEFAULT_FALLBACK_ON: readonly string[] = ['429', '5xx', 'timeout', 'connection', 'context_length'];

export interface RouterConfig {
  type: 'router';
  targets: string[];
  strategy: RouterStrategy;
  weights?: number[];
  fallbackOn: string[];
  cooldownS: number;
  failures: number;
  failureWindowS: number;
  timeoutMs?: number;
  targetTimeoutMs?: number;
  locked?: never;
}

export type LlmConfig = ((OpenAIConfig | AzureOpenAIConfig) & CallLimits) | LocalConfig | RouterConfig;

export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_BASE_URL = 'https://api.openai.com';
export const DEFAULT_CHAT_PATH = '/v1/chat/completions';
export const DEFAULT_EMBEDDING_PATH = '/v1/embeddings';
export const DEFAULT_CHAT_MODEL = 'gpt-3.5-turbo';
export const DEFAULT_EMBEDDING_MODEL = 'text-embedding-ada-002';
export const DEFAULT_LOCAL_DIM = 256;
export const MAX_RETRY_BACKOFF_MS = 8_000;

// ---------------------------------------------------------------------------------------------
// The operator's policy: which provider hosts may be named, which environment variables an
// api_key may name, and to which hosts each such key may be sent. It is configuration passed down
// (LlmEnv.policy at call time, parseLlmConfig's opts at create time), never process-global state,
// so two servers in one process can hold different policies.

/** A host entry: `host` (any port), `host:port`, `*.domain` (any subdomain), IPv6 as `[::1]`. */
type HostEntry = string;

export interface LlmPolicy {
  /** --llm-allow-hosts: hosts a base_url / endpoint / proxy may name (null = no restriction). */
  readonly allowedHosts: readonly HostEntry[] | null;
  /** llm-env-allow: environment variables an api_key "$NAME" may name. */
  readonly envAllow: { readonly text: string; readonly patterns: readonly RegExp[] };
  /**
   * llm-key-hosts: the hosts the key of each environment variable may be sent to. A variable not
   * listed goes only to its provider's own host (DEFAULT_KEY_HOSTS).
   */
  readonly keyHosts: ReadonlyMap<string, readonly HostEntry[]>;
}

export interface LlmPolicyOptions {
  allowHosts?: readonly string[] | null;
  envAllow?: readonly string[] | null;
  /** Variable name -> hosts (entries as in allowHosts; URLs are reduced to host[:port]). */
  keyHosts?: Readonly<Record<string, readonly string[]>> | null;
}

/** The hosts of each provider that its keys may reach without the operator listing them. */
export const DEFAULT_KEY_HOSTS: Readonly<Record<'openai' | 'azure_openai', readonly string[]>> = {
  openai: ['api.openai.com:443'],
  azure_openai: ['*.openai.azure.com:443'],
};

export function makeLlmPolicy(o: LlmPolicyOptions = {}): LlmPolicy {
  const allow = o.allowHosts ?? null;
  const keyHosts = new Map<string, HostEntry[]>();
  for (const [name, hosts] of Object.entries(o.keyHosts ?? {})) {
    keyHosts.set(name, hosts.map(normaliseHostEntry).filter((h) => h.length > 0));
  }
  return {
    allowedHosts: allow === null ? null : allow.map(normaliseHostEntry).filter((h) => h.length > 0),
    envAllow: compileEnvAllow(o.envAllow ?? DEFAULT_ENV_ALLOW),
    keyHosts,
  };
}

/** "https://Host:8443/x" -> "host:8443", "::1" -> "[::1]", "Example.COM" -> "example.com". */
function normaliseHostEntry(entry: string): string {
  let e = entry.trim().toLowerCase();
  if (e.includes('://')) {
    try {
      const u = new URL(e);
      e = u.port ? `${u.hostname}:${u.port}` : u.hostname;
    } catch {
      return '';
    }
  }
  if (!e.startsWith('[') && (e.match(/:/g) ?? []).length >= 2) e = `[${e}]`; // bare IPv6
  return e;
}

function defaultPort(url: URL): string {
  return url.port || (url.protocol === 'https:' ? '443' : '80');
}

/** Whether the host of `urlText` matches one of `entries`. */
function hostMatches(entries: readonly HostEntry[], urlText: string): boolean {
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    return false;
  }
  const host = url.hostname.toLowerCase();
  const port = defaultPort(url);
  return entries.some((entry) => {
    let eh = entry;
    let ep: string | undefined;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      eh = m[1]!;
      ep = m[2];
    }
    if (ep !== undefined && ep !== port) return false;
    if (eh.startsWith('*.')) return host.endsWith(eh.slice(1)) && host.length > eh.length - 1;
    return eh === host;
  });
}

function hostOf(urlText: string): string {
  try {
    return new URL(urlText).host;
  } catch {
    return '?';
  }
}

export function isHostAllowed(urlText: string, policy: LlmPolicy = DEFAULT_LLM_POLICY): boolean {
  return policy.allowedHosts === null || hostMatches(policy.allowedHosts, urlText);
}

/** Throws when the host of `url` is not on the allow-list. */
export function assertHostAllowed(url: string, what: string, policy: LlmPolicy = DEFAULT_LLM_POLICY): void {
  if (!isHostAllowed(url, policy)) throw new LlmError(`${what} host '${hostOf(url)}' is not in the allowed LLM hosts`, 'config');
}

/**
 * Refuses to send a key where its operator did not allow it. A "$NAME" key goes to the hosts
 * llm-key-hosts lists for NAME, else only to its provider's own host (api.openai.com,
 * <resource>.openai.azure.com). A literal key goes to the base_url / endpoint it was given with
 * (a stored one is sealed bound to that host, see sealConfig); a key sealed before keys were bound
 * to hosts (`legacyKey`) only to its provider's own host. Over plain http, or with certificate
 * verification off, through a proxy, the proxy can read the key: it must be allowed for it as well.
 */
export function assertKeyHostAllowed(cfg: OpenAIConfig | AzureOpenAIConfig, policy: LlmPolicy = DEFAULT_LLM_POLICY): void {
  const name = envVarName(cfg.apiKey);
  if (name === undefined && !cfg.legacyKey) return;
  const listed = name === undefined ? undefined : policy.keyHosts.get(name);
  const entries = listed ?? DEFAULT_KEY_HOSTS[cfg.type];
  const dest = cfg.type === 'openai' ? cfg.baseUrl : cfg.endpoint;
  const what = cfg.type === 'openai' ? 'base_url' : 'endpoint';
  const targets: [string, string][] = [[dest, what]];
  // Through a proxy, the proxy reads the key when the request is plain http, or when certificates
  // are not verified (it can then answer the TLS handshake itself).
  if (cfg.http.proxyUrl && (dest.startsWith('http:') || !cfg.http.verifyTls)) {
    targets.push([cfg.http.proxyUrl, `proxy (${dest.startsWith('http:') ? 'plain http' : 'certificate verification off'}: it can read the key)`]);
  }
  for (const [url, label] of targets) {
    if (hostMatches(entries, url)) continue;
    if (name === undefined) {
      throw new LlmError(
        `api_key of this LLM was sealed before keys were bound to their hosts: it may be sent only to ${entries.join(', ')}, not to ${label} host '${hostOf(url)}' (recreate the LLM with its key)`,
        'config',
      );
    }
    const how = listed
      ? `the hosts llm-key-hosts lists for ${name}`
      : `its provider's own host; an operator may allow others with llm-key-hosts ${name} <host[:port],...>`;
    throw new LlmError(`api_key $${name} may be sent only to ${entries.join(', ')} (${how}): not to ${label} host '${hostOf(url)}'`, 'config');
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets

const ENV_REF = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$/;

/** The environment variable an api_key refers to, or undefined for a literal key. */
export function envVarName(apiKey: string): string | undefined {
  const m = ENV_REF.exec(apiKey);
  return m ? (m[1] ?? m[2]) : undefined;
}

// Allow-list of environment variables an api_key may name (operator setting llm-env-allow)

/**
 * By default "$NAME" may name only *_API_KEY variables: "$AWS_SECRET_ACCESS_KEY" or
 * "$REDIS_LLM_REDIS" must not be readable that way. Names or `*` wildcard patterns, case-sensitive
 * (`*` alone: any). Checked when a config is parsed (create time) and again before every request.
 */
export const DEFAULT_ENV_ALLOW: readonly string[] = ['*_API_KEY'];

/** No allow-list, *_API_KEY variables, keys only to their providers' own hosts. */
export const DEFAULT_LLM_POLICY: LlmPolicy = makeLlmPolicy();


function compileEnvAllow(patterns: readonly string[]): { text: string; patterns: RegExp[] } {
  const list = patterns.map((p) => p.trim()).filter((p) => p.length > 0);
  const rx = list.map((p) => new RegExp(`^${p.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
  return { text: list.join(' ') || '(none)', patterns: rx };
}

export function isEnvAllowed(name: string, policy: LlmPolicy = DEFAULT_LLM_POLICY): boolean {
  return name !== SECRET_ENV && policy.envAllow.patterns.some((p) => p.test(name));
}

function envNotAllowed(name: string, policy: LlmPolicy): string {
  if (name === SECRET_ENV) return SECRET_REF_ERROR;
  return `api_key may name only environment variables matching llm-env-allow (${policy.envAllow.text}): ${name} does not`;
}

/** The server secret is no API key: sending it as one would hand it to whoever runs the endpoint. */
const SECRET_REF_ERROR = `api_key must not refer to ${SECRET_ENV} (the server secret)`;

/** Printable ASCII: what an HTTP header value can carry safely. */
const HEADER_SAFE = /^[\x20-\x7e]+$/;

/** The key to send now: the literal, or the current value of the referenced variable. */
export function resolveApiKey(apiKey: string, policy: LlmPolicy = DEFAULT_LLM_POLICY): string {
  const name = envVarName(apiKey);
  if (name === undefined) return apiKey;
  if (!isEnvAllowed(name, policy)) throw new LlmError(envNotAllowed(name, policy), 'config');
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new LlmError(`api_key refers to environment variable ${name}, which is not set`, 'config');
  }
  const trimmed = value.trim();
  if (!HEADER_SAFE.test(trimmed)) {
    throw new LlmError(`api_key from environment variable ${name} must be printable ASCII`, 'config');
  }
  return trimmed;
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

function bad(msg: string): never {
  throw new CommandError(`invalid LLM params: ${msg}`);
}

function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optObject(o: JsonObject, key: string, path: string): JsonObject | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isPlainObject(v)) bad(`'${path}' must be a JSON object`);
  return v;
}

function optString(o: JsonObject, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length === 0) bad(`'${path}' must be a non-empty string`);
  return v;
}

function reqString(o: JsonObject, key: string, path: string, type: string): string {
  const v = optString(o, key, path);
  if (v === undefined) throw new CommandError(`invalid LLM params: '${path}' is required for type ${type}`);
  return v;
}

function optInt(o: JsonObject, key: string, path: string, min: number, max: number): number | undefined {
  let v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && /^\d+$/.test(v.trim())) v = Number(v.trim());
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    bad(`'${path}' must be an integer between ${min} and ${max}`);
  }
  return v;
}

function optBool(o: JsonObject, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') bad(`'${path}' must be true or false`);
  return v;
}

const MAX_DURATION_MS = 24 * 3600 * 1000;

/** "5s", "500ms", "2m", "1h", "1.5s", a bare number (ms, as a number or a digit string). */
export function parseDuration(v: unknown): number | undefined {
  let ms: number;
  if (typeof v === 'number') {
    ms = v;
  } else if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$/i.exec(v);
    if (!m) return undefined;
    const n = Number(m[1]);
    const unit = (m[2] ?? 'ms').toLowerCase();
    const mult = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'h' ? 3_600_000 : 60_000;
    ms = n * mult;
  } else {
    return undefined;
  }
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_DURATION_MS) return undefined;
  return Math.round(ms);
}

function optDuration(o: JsonObject, key: string, path: string, allowZero: boolean): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const ms = parseDuration(v);
  // The original's text for "5x" / "5sec": the unit is named.
  const unit = ms === undefined && typeof v === 'string' ? /^\s*\d+(?:\.\d+)?\s*([A-Za-z]+)\s*$/.exec(v)?.[1] : undefined;
  if (unit !== undefined && !/^(ms|s|m|min|h)$/i.test(unit)) throw new CommandError(`unknown timeout unit: ${unit} (in '${path}': use ms, s, m or h)`);
  if (ms === undefined || (!allowZero && ms === 0)) {
    bad(`'${path}' must be a duration such as "5s", "500ms", "1m" or a number of ms${allowZero ? '' : ' (> 0)'}, at most 24h`);
  }
  return ms;
}

/** Parses and checks an http(s) URL given by the user. */
function parseHttpUrl(text: string, path: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    bad(`'${path}' is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') bad(`'${path}' must use http or https`);
  if (url.username || url.password) bad(`'${path}' must not contain credentials (use api_key)`);
  if (url.search || url.hash || text.includes('?') || text.includes('#')) bad(`'${path}' must not contain a query or fragment`);
  return url;
}

function bodyBase(o: JsonObject, key: 'chat' | 'embedding', defaultModel: string | undefined): JsonObject {
  const base = bodyFields(optObject(o, key, key) ?? {}, key, `${key}.`, bad);
  if (base.model === undefined && defaultModel !== undefined) base.model = defaultModel;
  return base;
}

/**
 * Request body fields checked as the LLM's own `chat` / `embedding` base is: a detached copy,
 * without the fields the provider sets itself, `model` a non-empty string when given (null:
 * dropped), `dimensions` / `encoding_format` valid. `label` prefixes the field names in errors.
 */
function bodyFields(given: JsonObject, kind: 'chat' | 'embedding', label: string, fail: (msg: string) => never): JsonObject {
  // Deep copy through JSON so the stored config is plain data, detached from the caller.
  const base = JSON.parse(JSON.stringify(given)) as JsonObject;
  for (const k of kind === 'chat' ? CHAT_CONTROLLED : EMBEDDING_CONTROLLED) delete base[k];
  if (base.model === null) delete base.model;
  else if (base.model !== undefined && (typeof base.model !== 'string' || base.model.length === 0)) fail(`'${label}model' must be a non-empty string`);
  if (kind === 'embedding' && base.dimensions !== undefined) {
    const d = base.dimensions;
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > 65536) fail(`'${label}dimensions' must be a positive integer`);
  }
  if (kind === 'embedding' && base.encoding_format !== undefined) {
    if (base.encoding_format !== 'float' && base.encoding_format !== 'base64') fail(`'${label}encoding_format' must be "float" or "base64"`);
  }
  return base;
}

/**
 * An app's --PARAMS (chat request fields) or a store's --LLM params (embedding request fields),
 * checked as an LLM's own base is; errors name `what` (e.g. "--PARAMS").
 */
export function parseRequestFields(kind: 'chat' | 'embedding', given: unknown, what: string): JsonObject {
  const fail = (msg: string): never => {
    throw new CommandError(`invalid ${what}: ${msg}`);
  };
  if (!isPlainObject(given)) fail('expected a JSON object');
  return bodyFields(given as JsonObject, kind, '', fail);
}

// Fields the provider layer sets itself on every request.
export const CHAT_CONTROLLED: readonly string[] = ['messages', 'stream', 'stream_options'];
export const EMBEDDING_CONTROLLED: readonly string[] = ['input'];

function parseHttp(o: JsonObject): HttpConfig {
  const h = optObject(o, 'http', 'http') ?? {};
  const pool = optObject(h, 'pool', 'http.pool') ?? {};
  const cfg: HttpConfig = {
    socketTimeoutMs: optDuration(h, 'socket_timeout', 'http.socket_timeout', false),
    connectTimeoutMs: optDuration(h, 'connect_timeout', 'http.connect_timeout', false) ?? 5000,
    verifyTls: optBool(h, 'enable_certificate_verification', 'http.enable_certificate_verification') ?? true,
    maxRetries: optInt(h, 'max_retries', 'http.max_retries', 0, 10) ?? 2,
    retryBackoffMs: optDuration(h, 'retry_backoff', 'http.retry_backoff', true) ?? 500,
    pool: {
      size: optInt(pool, 'size', 'http.pool.size', 1, 1024) ?? 16,
      waitTimeoutMs: optDuration(pool, 'wait_timeout', 'http.pool.wait_timeout', true) ?? 0,
      connectionLifetimeMs: optDuration(pool, 'connection_lifetime', 'http.pool.connection_lifetime', true) ?? 0,
    },
  };
  const proxyHost = h.proxy_host === '' ? undefined : optString(h, 'proxy_host', 'http.proxy_host');
  const proxyPort = h.proxy_port === 0 ? undefined : optInt(h, 'proxy_port', 'http.proxy_port', 1, 65535);
  if (proxyHost !== undefined) {
    cfg.proxyHost = proxyHost;
    cfg.proxyPort = proxyPort;
    let url: URL;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(proxyHost)) {
      try {
        url = new URL(proxyHost);
      } catch {
        bad(`'http.proxy_host' is not a valid host or URL`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') bad(`'http.proxy_host' must use http or https`);
      if (proxyPort !== undefined) url.port = String(proxyPort);
    } else {
      if (!/^(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]+)$/i.test(proxyHost)) bad(`'http.proxy_host' is not a valid host`);
      try {
        url = new URL(`http://${proxyHost}:${proxyPort ?? 80}`);
      } catch {
        bad(`'http.proxy_host' is not a valid host`);
      }
    }
    cfg.proxyUrl = url.toString();
  } else if (proxyPort !== undefined) {
    bad(`'http.proxy_port' needs 'http.proxy_host'`);
  }
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// URL joining

/**
 * Joins base_url and a request path. The rule:
 *  1. The path gets a leading '/' if it has none; base_url's trailing '/' is dropped.
 *  2. If base_url has no path, the result is base_url + path (the original's behaviour:
 *     "https://api.openai.com" + "/v1/chat/completions").
 *  3. Otherwise the longest run of segments that ENDS base_url's path and STARTS the path is
 *     written once: "http://host:11434/v1" + "/v1/chat/completions" -> ".../v1/chat/completions",
 *     "https://api.groq.com/openai/v1" + "/v1/chat/completions" -> ".../openai/v1/chat/completions",
 *     "http://host/api" + "/v1/embeddings" -> "http://host/api/v1/embeddings" (no overlap).
 * So the default paths work with both styles of base URL (with or without "/v1"). For an
 * endpoint without "/v1" under a prefix (e.g. ".../v1beta/openai"), give chat_path
 * "/chat/completions" and embedding_path "/embeddings".
 */
export function joinUrl(baseUrl: string, path: string): string {
  const base = new URL(baseUrl);
  const p = path.startsWith('/') ? path : `/${path}`;
  const baseSegs = base.pathname.split('/').filter((s) => s.length > 0);
  const pathSegs = p.split('/').filter((s, i) => i > 0 || s.length > 0);
  let overlap = 0;
  for (let k = Math.min(baseSegs.length, pathSegs.length); k > 0; k--) {
    let ok = true;
    for (let i = 0; i < k; i++) {
      if (baseSegs[baseSegs.length - k + i] !== pathSegs[i]) {
        ok = false;
        break;
      }
    }
    if (ok) {
      overlap = k;
      break;
    }
  }
  const segs = [...baseSegs, ...pathSegs.slice(overlap)];
  return `${base.origin}/${segs.join('/')}`;
}

function normalisePath(o: JsonObject, key: string, dflt: string): string {
  const v = optString(o, key, key) ?? dflt;
  if (/[?#\s]/.test(v) || /^[a-z][a-z0-9+.-]*:/i.test(v)) bad(`'${key}' must be a URL path such as "${dflt}"`);
  const p = v.startsWith('/') ? v : `/${v}`;
  if (p.split('/').some((s) => s === '..' || s === '.')) bad(`'${key}' must not contain '.' or '..' segments`);
  return p;
}

function stripTrailingSlash(s: string): string {
  return s.replace(/\/+$/, '');
}

// ---------------------------------------------------------------------------------------------
// parseLlmConfig

/**
 * Validates and normalises a CREATE-LLM type and params. Throws CommandError with a clear
 * message (never containing the api key) on any problem.
 */
export function parseLlmConfig(type: string | undefined, params: unknown, opts: { checkHosts?: boolean; policy?: LlmPolicy } = {}): LlmConfig {
  const policy = opts.policy ?? DEFAULT_LLM_POLICY;
  const cfg = parseLlmConfigUnchecked(type, params, opts.checkHosts !== false, policy);
  // Where the key would go: refused at create time rather than at the first call.
  if (opts.checkHosts !== false && (cfg.type === 'openai' || cfg.type === 'azure_openai')) assertKeyHostAllowed(cfg, policy);
  return cfg;
}

function parseLlmConfigUnchecked(type: string | undefined, params: unknown, checkHosts: boolean, policy: LlmPolicy): LlmConfig {
  // A stored definition (loaded or followed from the catalog) is parsed with checkHosts false: it
  // must stay an object (TYPE, LLM.INFO, DEL work) after the allow-list was narrowed; its calls are
  // then refused by the check every request makes, with the error naming the host.
  const checkHost = (url: string, what: string) => {
    if (checkHosts) assertHostAllowed(url, what, policy);
  };
  const t = (type ?? 'openai').toLowerCase();
  if (t !== 'openai' && t !== 'azure_openai' && t !== 'local' && t !== 'router') throw new CommandError(`unknown LLM model: ${type}`);
  if (params !== undefined && params !== null && !isPlainObject(params)) bad('expected a JSON object');
  const o: JsonObject = (params as JsonObject | null | undefined) ?? {};

  if (t === 'local') {
    return { type: 'local', dim: optInt(o, 'dim', 'dim', 8, 4096) ?? DEFAULT_LOCAL_DIM };
  }
  if (t === 'router') return parseRouter(o);

  const apiKey = reqString(o, 'api_key', 'api_key', t);
  if (!HEADER_SAFE.test(apiKey)) bad(`'api_key' must be printable ASCII (it is sent in an HTTP header)`);
  const ref = envVarName(apiKey);
  if (ref === SECRET_ENV || (ref !== undefined && checkHosts && !isEnvAllowed(ref, policy))) bad(envNotAllowed(ref, policy));
  const http = parseHttp(o);
  if (http.proxyUrl !== undefined) checkHost(http.proxyUrl, 'proxy');
  const retries = optInt(o, 'retries', 'retries', 0, 10);
  if (retries !== undefined) http.maxRetries = retries;
  const limits: CallLimits = {};
  const timeoutMs = optDuration(o, 'timeout', 'timeout', false);
  if (timeoutMs !== undefined) limits.timeoutMs = timeoutMs;
  const idleTimeoutMs = optDuration(o, 'idle_timeout', 'idle_timeout', false);
  if (idleTimeoutMs !== undefined) limits.idleTimeoutMs = idleTimeoutMs;

  if (t === 'openai') {
    const baseText = stripTrailingSlash(optString(o, 'base_url', 'base_url') ?? DEFAULT_BASE_URL);
    const base = parseHttpUrl(baseText, 'base_url');
    const baseUrl = stripTrailingSlash(`${base.origin}${base.pathname}`);
    checkHost(baseUrl, 'base_url');
    const chatPath = normalisePath(o, 'chat_path', DEFAULT_CHAT_PATH);
    const embeddingPath = normalisePath(o, 'embedding_path', DEFAULT_EMBEDDING_PATH);
    return {
      type: 'openai',
      apiKey,
      baseUrl,
      chatPath,
      embeddingPath,
      chatUrl: joinUrl(baseUrl, chatPath),
      embeddingUrl: joinUrl(baseUrl, embeddingPath),
      chat: bodyBase(o, 'chat', DEFAULT_CHAT_MODEL),
      embedding: bodyBase(o, 'embedding', DEFAULT_EMBEDDING_MODEL),
      http,
      ...limits,
    };
  }

  // azure_openai
  const apiVersion = reqString(o, 'api_version', 'api_version', t);
  if (!/^[A-Za-z0-9._-]+$/.test(apiVersion)) bad(`'api_version' must look like "2024-02-01"`);
  const resourceName = optString(o, 'resource_name', 'resource_name');
  const endpointText = optString(o, 'endpoint', 'endpoint');
  if (resourceName !== undefined && endpointText !== undefined) bad(`give either 'resource_name' or 'endpoint', not both`);
  let endpoint: string;
  if (endpointText !== undefined) {
    const u = parseHttpUrl(stripTrailingSlash(endpointText), 'endpoint');
    endpoint = stripTrailingSlash(`${u.origin}${u.pathname}`);
  } else if (resourceName !== undefined) {
    if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(resourceName)) bad(`'resource_name' must be an Azure resource name (letters, digits, '-')`);
    endpoint = `https://${resourceName}.openai.azure.com`;
  } else {
    throw new CommandError(`invalid LLM params: 'resource_name' or 'endpoint' is required for type azure_openai`);
  }
  checkHost(endpoint, 'endpoint');
  const both = optString(o, 'deployment_id', 'deployment_id');
  const chatDeploymentId = optString(o, 'chat_deployment_id', 'chat_deployment_id') ?? both;
  const embeddingDeploymentId = optString(o, 'embedding_deployment_id', 'embedding_deployment_id') ?? both;
  if (chatDeploymentId === undefined && embeddingDeploymentId === undefined) {
    throw new CommandError(
      `invalid LLM params: 'chat_deployment_id' or 'embedding_deployment_id' is required for type azure_openai`,
    );
  }
  return {
    type: 'azure_openai',
    apiKey,
    resourceName,
    endpoint,
    endpointGiven: endpointText !== undefined,
    apiVersion,
    chatDeploymentId,
    embeddingDeploymentId,
    chat: bodyBase(o, 'chat', undefined),
    embedding: bodyBase(o, 'embedding', undefined),
    http,
    ...limits,
  };
}

function parseRouter(o: JsonObject): RouterConfig {
  const targets = o.targets;
  if (!Array.isArray(targets) || targets.length === 0) bad(`'targets' must be a non-empty list of LLM keys`);
  if (targets.length > 32) bad(`'targets' may list at most 32 LLMs`);
  if (!targets.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 512)) bad(`'targets' must be LLM keys (non-empty strings)`);
  if (new Set(targets).size !== targets.length) bad(`'targets' lists an LLM twice`);
  const strategy = (optString(o, 'strategy', 'strategy') ?? 'fallback') as RouterStrategy;
  if (!ROUTER_STRATEGIES.includes(strategy)) bad(`'strategy' must be one of ${ROUTER_STRATEGIES.join(', ')}`);
  let weights: number[] | undefined;
  if (o.weights !== undefined && o.weights !== null) {
    const w = o.weights;
    if (!Array.isArray(w) || w.length !== targets.length || !w.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0 && x <= 1e6)) {
      bad(`'weights' must list one positive number per target (${targets.length})`);
    }
    weights = w as number[];
  }
  if (strategy === 'weighted' && weights === undefined) bad(`strategy 'weighted' needs 'weights'`);
  let fallbackOn = [...DEFAULT_FALLBACK_ON];
  if (o.fallback_on !== undefined && o.fallback_on !== null) {
    const f = o.fallback_on;
    if (!Array.isArray(f) || !f.every((x) => typeof x === 'string' && /^([45]\d\d|[45]xx|timeout|connection|context_length)$/.test(x))) {
      bad(`'fallback_on' must list "429", "5xx", "4xx", a status such as "503", "timeout", "connection" or "context_length"`);
    }
    fallbackOn = [...new Set(f as string[])];
  }
  const num = (k: string, min: number, max: number, dflt: number): number => {
    const v = o[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) bad(`'${k}' must be a number between ${min} and ${max}`);
    return v;
  };
  const cfg: RouterConfig = {
    type: 'router',
    targets: [...(targets as string[])],
    strategy,
    fallbackOn,
    cooldownS: num('cooldown', 0, 86400, 30),
    failures: Math.round(num('failures', 1, 1000, 3)),
    failureWindowS: num('failure_window', 1, 86400, 60),
  };
  if (weights) cfg.weights = [...weights];
  const timeoutMs = optDuration(o, 'timeout', 'timeout', false);
  if (timeoutMs !== undefined) cfg.timeoutMs = timeoutMs;
  const targetTimeoutMs = optDuration(o, 'target_timeout', 'target_timeout', false);
  if (targetTimeoutMs !== undefined) cfg.targetTimeoutMs = targetTimeoutMs;
  return cfg;
}

function routerToParams(cfg: RouterConfig): JsonObject {
  const out: JsonObject = { targets: [...cfg.targets], strategy: cfg.strategy };
  if (cfg.weights) out.weights = [...cfg.weights];
  out.fallback_on = [...cfg.fallbackOn];
  out.cooldown = cfg.cooldownS;
  out.failures = cfg.failures;
  out.failure_window = cfg.failureWindowS;
  if (cfg.timeoutMs !== undefined) out.timeout = `${cfg.timeoutMs}ms`;
  if (cfg.targetTimeoutMs !== undefined) out.target_timeout = `${cfg.targetTimeoutMs}ms`;
  return out;
}

function limitsToParams(cfg: CallLimits, out: JsonObject): JsonObject {
  if (cfg.timeoutMs !== undefined) out.timeout = `${cfg.timeoutMs}ms`;
  if (cfg.idleTimeoutMs !== undefined) out.idle_timeout = `${cfg.idleTimeoutMs}ms`;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Back to params: persistence (secrets sealed), redaction

/** Labels of the secret fields: the additional authenticated data of their sealed values. */
const API_KEY_LABEL = 'api_key';
const PROXY_HOST_LABEL = 'http.proxy_host';

const URL_CREDENTIALS = /^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i;

/** A stored secret: `{"sealed": "v1:<keyid>:<base64>"}` (a literal the user typed is always a string). */
interface SealedField {
  sealed: string;
}

function isSealedField(v: unknown): v is SealedField {
  return isPlainObject(v) && typeof v.sealed === 'string' && Object.keys(v).length === 1;
}

/**
 * Secrets of a stored definition that this instance cannot open: sealed with another server
 * secret, or damaged. The LLM stays an object (TYPE, LLM.INFO, DEL, RENAME work) whose calls fail
 * with lockedMessage(), and its definition is written back exactly as it was stored.
 */
export interface LockedSecrets {
  /** Labels of the fields: 'api_key', 'http.proxy_host'. */
  fields: string[];
  reason: SealError['reason'];
  /** The key id the sealed value names (other-secret): for logs, it reveals nothing of the key. */
  keyId?: string;
  /** The params as stored, sealed values included. */
  params: JsonObject;
}

/** Stands in for an api_key that could not be opened: never sent (the provider refuses every call). */
const LOCKED_KEY = 'sealed-key-not-opened';

/** How each secret value is written out: as is, sealed, or redacted. */
type SecretOut = (value: string, label: string) => unknown;

function httpToParams(h: HttpConfig, secret: SecretOut): JsonObject {
  const out: JsonObject = {};
  if (h.socketTimeoutMs !== undefined) out.socket_timeout = `${h.socketTimeoutMs}ms`;
  out.connect_timeout = `${h.connectTimeoutMs}ms`;
  if (h.proxyHost !== undefined) {
    // Only a proxy URL with credentials is secret; a host name stays readable.
    out.proxy_host = URL_CREDENTIALS.test(h.proxyHost) ? secret(h.proxyHost, PROXY_HOST_LABEL) : h.proxyHost;
    if (h.proxyPort !== undefined) out.proxy_port = h.proxyPort;
  }
  out.enable_certificate_verification = h.verifyTls;
  out.max_retries = h.maxRetries;
  out.retry_backoff = `${h.retryBackoffMs}ms`;
  out.pool = {
    size: h.pool.size,
    wait_timeout: `${h.pool.waitTimeoutMs}ms`,
    connection_lifetime: `${h.pool.connectionLifetimeMs}ms`,
  };
  return out;
}

function redactUrlCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1[redacted]@');
}

/** Shown instead of a literal api key. An env reference ("$NAME") is not secret and is shown. */
export const REDACTED = '[redacted]';

function paramsOf(cfg: LlmConfig, secret: SecretOut): JsonObject {
  const key = (k: string) => (envVarName(k) === undefined ? secret(k, API_KEY_LABEL) : k);
  switch (cfg.type) {
    case 'local':
      return { dim: cfg.dim };
    case 'router':
      return routerToParams(cfg);
    case 'openai':
      return limitsToParams(cfg, {
        api_key: key(cfg.apiKey),
        base_url: cfg.baseUrl,
        chat_path: cfg.chatPath,
        embedding_path: cfg.embeddingPath,
        chat: structuredClone(cfg.chat),
        embedding: structuredClone(cfg.embedding),
        http: httpToParams(cfg.http, secret),
      });
    case 'azure_openai': {
      const out: JsonObject = { api_key: key(cfg.apiKey), api_version: cfg.apiVersion };
      if (cfg.endpointGiven) out.endpoint = cfg.endpoint;
      else out.resource_name = cfg.resourceName;
      if (cfg.chatDeploymentId !== undefined) out.chat_deployment_id = cfg.chatDeploymentId;
      if (cfg.embeddingDeploymentId !== undefined) out.embedding_deployment_id = cfg.embeddingDeploymentId;
      out.chat = structuredClone(cfg.chat);
      out.embedding = structuredClone(cfg.embedding);
      out.http = httpToParams(cfg.http, secret);
      return limitsToParams(cfg, out);
    }
  }
}

/**
 * The normalised config as CREATE-LLM type + params for persistence: a literal api_key and a
 * proxy URL with credentials are sealed with `box` (`{"sealed": "v1:..."}`), "$NAME" references
 * stay as they are. `parseStoredConfig(r.type, r.params, box)` gives back an equivalent config.
 * A locked config (secrets not opened) is written back as it was stored.
 */
export function sealConfig(cfg: LlmConfig, box: SecretBox): { type: LlmConfig['type']; params: JsonObject } {
  if (cfg.type !== 'local' && cfg.locked) return { type: cfg.type, params: structuredClone(cfg.locked.params) };
  // A literal key is sealed bound to the host it is sent to: a stored definition whose base_url
  // or endpoint was changed (by anyone who can write the backing Redis) no longer opens.
  const boundLabel = (label: string) => (label === API_KEY_LABEL && (cfg.type === 'openai' || cfg.type === 'azure_openai') && !cfg.legacyKey ? keyLabel(cfg) : label);
  return { type: cfg.type, params: paramsOf(cfg, (value, label) => ({ sealed: box.seal(value, boundLabel(label)) }) satisfies SealedField) };
}

/**
 * The label a literal key is sealed with: bound to the origin (scheme, host, port) it is sent to,
 * and to the proxy when that can read it (plain http, or certificate verification off). A stored
 * definition changed to send the key elsewhere (or in clear, or through a proxy that could read it)
 * no longer opens.
 */
function keyLabel(cfg: OpenAIConfig | AzureOpenAIConfig): string {
  const dest = cfg.type === 'openai' ? cfg.baseUrl : cfg.endpoint;
  let origin = '?';
  try {
    origin = new URL(dest).origin.toLowerCase();
  } catch {
    /* keep '?' */
  }
  const proxy = cfg.http.proxyUrl && (dest.startsWith('http:') || !cfg.http.verifyTls) ? ` via ${hostOf(cfg.http.proxyUrl).toLowerCase()}` : '';
  return `${API_KEY_LABEL}@${origin}${proxy}`;
}

/**
 * A stored definition (loaded, or followed from the catalog) back to a config: sealed secrets are
 * opened with `box`; plaintext ones (written before secrets were sealed) are taken as they are.
 * A sealed secret that cannot be opened does not make the definition fail: the config comes back
 * with `locked` set (see LockedSecrets). The host allow-list is not checked here (each call is).
 */
export function parseStoredConfig(type: string | undefined, params: unknown, box: SecretBox): LlmConfig {
  if (!isPlainObject(params)) return parseLlmConfig(type, params, { checkHosts: false });
  const plain = structuredClone(params);
  const fields: string[] = [];
  let failure: SealError | undefined;
  const open = (holder: JsonObject, key: string, label: string): boolean => {
    const v = holder[key];
    if (!isSealedField(v)) return true;
    try {
      holder[key] = box.open(v.sealed, label);
      return true;
    } catch (err) {
      if (!(err instanceof SealError)) throw err;
      failure ??= err;
      fields.push(label);
      return false;
    }
  };
  // The key is opened once the config tells its host (its label, see sealConfig).
  const sealedKey = isSealedField(plain.api_key) ? plain.api_key : undefined;
  if (sealedKey) plain.api_key = LOCKED_KEY;
  if (isPlainObject(plain.http) && !open(plain.http, 'proxy_host', PROXY_HOST_LABEL)) {
    delete plain.http.proxy_host;
    delete plain.http.proxy_port;
  }
  const cfg = parseLlmConfig(type, plain, { checkHosts: false });
  if (sealedKey && (cfg.type === 'openai' || cfg.type === 'azure_openai')) {
    // Bound to its host; else sealed before keys were bound to hosts: then it goes only to the
    // provider's own host (legacyKey, see assertKeyHostAllowed).
    const tryOpen = (label: string): string | SealError => {
      try {
        return box.open(sealedKey.sealed, label);
      } catch (err) {
        if (!(err instanceof SealError)) throw err;
        return err;
      }
    };
    let key = tryOpen(keyLabel(cfg));
    if (key instanceof SealError) {
      const legacy = tryOpen(API_KEY_LABEL);
      if (!(legacy instanceof SealError)) cfg.legacyKey = true;
      else if (legacy.reason === 'other-secret') key = legacy;
      if (!(legacy instanceof SealError)) key = legacy;
    }
    if (key instanceof SealError) {
      failure = key;
      fields.unshift(API_KEY_LABEL);
    } else {
      cfg.apiKey = key;
    }
  }
  if (failure && cfg.type !== 'local' && cfg.type !== 'router') cfg.locked = { fields, reason: failure.reason, keyId: failure.keyId, params: structuredClone(params) };
  return cfg;
}

/** Secrets a stored definition holds in plaintext (written before they were sealed): their labels. */
export function unsealedSecrets(params: unknown): string[] {
  if (!isPlainObject(params)) return [];
  const out: string[] = [];
  if (typeof params.api_key === 'string' && envVarName(params.api_key) === undefined) out.push(API_KEY_LABEL);
  const proxy = isPlainObject(params.http) ? params.http.proxy_host : undefined;
  if (typeof proxy === 'string' && URL_CREDENTIALS.test(proxy)) out.push(PROXY_HOST_LABEL);
  return out;
}

/** The error of every call to an LLM whose secrets are locked; names fields, never values. */
export function lockedMessage(locked: LockedSecrets, name?: string): string {
  const what = `${locked.fields.join(' and ')} of ${name === undefined ? 'this LLM' : `LLM '${name}'`}`;
  const was = locked.fields.length > 1 ? 'were' : 'was';
  if (locked.reason === 'other-secret') {
    return `${what} ${was} sealed with a different server secret (set the same secret-file / REDIS_LLM_SECRET as the instance that created it, or recreate the LLM)`;
  }
  return `${what} cannot be opened: the sealed value is damaged (recreate the LLM)`;
}

/**
 * A JSON-able copy for display (LLM.INFO): the config as params, a literal api_key replaced by
 * "[redacted]" and proxy credentials masked. "$NAME" references are kept. Also lists the
 * effective request URLs.
 */
export function redactConfig(cfg: LlmConfig): JsonObject {
  const params = paramsOf(cfg, (value, label) => (label === API_KEY_LABEL ? REDACTED : redactUrlCredentials(value)));
  if (cfg.type !== 'local' && cfg.type !== 'router' && cfg.locked?.fields.includes(PROXY_HOST_LABEL)) {
    const stored = cfg.locked.params.http as JsonObject;
    (params.http as JsonObject).proxy_host = REDACTED;
    if (stored.proxy_port !== undefined) (params.http as JsonObject).proxy_port = stored.proxy_port;
  }
  const out: JsonObject = { type: cfg.type, params };
  if (cfg.type === 'openai') out.urls = { chat: cfg.chatUrl, embedding: cfg.embeddingUrl };
  if (cfg.type === 'azure_openai') {
    const urls: JsonObject = {};
    if (cfg.chatDeploymentId) urls.chat = azureUrl(cfg, cfg.chatDeploymentId, 'chat/completions');
    if (cfg.embeddingDeploymentId) urls.embedding = azureUrl(cfg, cfg.embeddingDeploymentId, 'embeddings');
    out.urls = urls;
  }
  return out;
}

/** `<endpoint>/openai/deployments/<id>/<op>?api-version=<v>` as the Azure SDK builds it. */
export function azureUrl(cfg: AzureOpenAIConfig, deployment: string, op: string): string {
  return `${cfg.endpoint}/openai/deployments/${encodeURIComponent(deployment)}/${op}?api-version=${encodeURIComponent(cfg.apiVersion)}`;
}
