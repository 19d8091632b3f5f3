/**
 * Failure mapping for provider calls. Every failure becomes ONE `LlmError`. A provider that
 * answered with an error status gets the original module's text, with what the provider said:
 * `failed to do post: <status> <reason> (<code>): <its message>`; a named LLM puts its name in
 * front (namedError: `LLM 'gpt': failed to do post: ...`) and the app layer the original's words
 * for the operation (withOperation: `failed to predict with openai: ...`). What the provider said
 * can echo the API key (OpenAI's 401 body does) or a proxy URL with credentials, so the keys sent,
 * bearer tokens, key-shaped words and URL credentials are removed and the text is cut to
 * PROVIDER_MESSAGE_MAX characters. Other failures (timeouts, connections) are built from
 * whitelisted pieces only (a fixed cause phrase).
 */
import { STATUS_CODES } from 'node:http';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { CommandError } from '../errors.js';

export type LlmErrorKind =
  | 'config' // bad or incomplete configuration, missing env var, host not allowed
  | 'http' // the server answered with an error status
  | 'timeout' // the call's deadline passed
  | 'aborted' // the caller's AbortSignal fired
  | 'connection' // could not connect / connection dropped before the answer
  | 'stream' // a streaming answer broke off midway
  | 'malformed' // the answer could not be understood
  | 'pool' // no pool slot within pool.wait_timeout, or provider closed
  | 'unsupported'; // operation not offered by this provider type

export class LlmError extends CommandError {
  readonly kind: LlmErrorKind;
  /** HTTP status for kind 'http'. */
  readonly status?: number;
  /** Whether the retry policy may try again. */
  readonly retryable: boolean;
  /** Server-requested wait (retry-after-ms / retry-after / x-ratelimit-reset-*) in ms, if any. */
  readonly retryAfterMs?: number;
  /** The provider said the input does not fit the model's context window. */
  readonly contextLength: boolean;
  /**
   * The message without the naming of the LLM ("request failed: 500 ..."), so a router can name
   * the target inside its own message. Unset for messages that were never named.
   */
  readonly bare?: string;

  constructor(
    message: string,
    kind: LlmErrorKind,
    extra: { status?: number; retryable?: boolean; retryAfterMs?: number; contextLength?: boolean; bare?: string } = {},
  ) {
    super(message);
    this.name = 'LlmError';
    this.kind = kind;
    this.status = extra.status;
    this.retryable = extra.retryable ?? false;
    this.retryAfterMs = extra.retryAfterMs;
    this.contextLength = extra.contextLength ?? false;
    this.bare = extra.bare;
  }

  /** The same failure with another message (kind, status, retry facts kept). */
  withMessage(message: string, bare?: string): LlmError {
    return new LlmError(message, this.kind, {
      status: this.status,
      retryable: this.retryable,
      retryAfterMs: this.retryAfterMs,
      contextLength: this.contextLength,
      bare,
    });
  }
}

/** The part of a message after "LLM " / "LLM '<name>' " (what a router quotes per target). */
export function bareMessage(err: LlmError): string {
  if (err.bare !== undefined) return err.bare;
  return err.message.startsWith('LLM ') ? err.message.slice(4) : err.message;
}

/**
 * The error as the LLM `name` reports it: "LLM request timed out after 100 ms" becomes
 * "LLM 'gpt' request timed out after 100 ms"; other messages get the prefix "LLM 'gpt': ".
 */
export function namedError(err: LlmError, name: string): LlmError {
  const bare = bareMessage(err);
  const msg = /^(request|response)\b/.test(bare) ? `LLM '${name}' ${bare}` : `LLM '${name}': ${bare}`;
  return err.withMessage(msg, bare);
}

export const timeoutError = (ms: number) => new LlmError(`LLM request timed out after ${ms} ms`, 'timeout');
export const abortedError = () => new LlmError('LLM request aborted', 'aborted');
export const malformedError = () => new LlmError('LLM response was malformed', 'malformed');

/** Statuses worth another attempt: 408, 429 and 5xx. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Longest provider message kept in an error reply. */
export const PROVIDER_MESSAGE_MAX = 200;

/** The provider's own error message, made safe to show: secrets removed, one line, bounded. */
export function providerMessage(body: unknown, secrets: readonly (string | undefined)[]): string | undefined {
  let text: unknown;
  if (typeof body === 'string') text = body;
  else if (body && typeof body === 'object') {
    const o = body as { message?: unknown; error?: unknown };
    text = typeof o.message === 'string' ? o.message : o.error && typeof o.error === 'object' ? (o.error as { message?: unknown }).message : undefined;
  }
  if (typeof text !== 'string') return undefined;
  let t = scrub(text, secrets)
    // Key-shaped words a server may echo (Azure keys are 32 hex digits; long base64-ish tokens).
    .replace(/\b[A-Fa-f0-9]{24,}\b/g, '[redacted]')
    .replace(/\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}\b/g, '[redacted]')
    .replace(/[\x00-\x1f\x7f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (t.length === 0) return undefined;
  if (t.length > PROVIDER_MESSAGE_MAX) t = `${t.slice(0, PROVIDER_MESSAGE_MAX - 3)}...`;
  return t;
}

/** A context-window overflow, as OpenAI-compatible servers report it. */
function isContextLength(status: number | undefined, code: unknown, message: string | undefined): boolean {
  if (code === 'context_length_exceeded' || code === 'string_above_max_length') return true;
  if (status !== undefined && status !== 400 && status !== 413) return false;
  return message !== undefined && /context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long/i.test(message);
}

/**
 * An error code from the server body is shown only if it looks like an identifier and carries
 * no secret: a server (or a proxy) may put the key it was sent in `code` (an identifier-shaped
 * key such as "sk-proj-..." passes the shape test), and the code ends up in the reply.
 */
function safeCode(code: unknown, secrets: readonly (string | undefined)[] = []): string | undefined {
  if (typeof code !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(code)) return undefined;
  if (scrub(code, secrets) !== code) return undefined;
  const lower = code.toLowerCase();
  for (const s of secrets) {
    if (!s || s.length < 4) continue;
    const ls = s.toLowerCase();
    // The key inside the code, or a sizeable piece of the key as the code.
    if (lower.includes(ls) || (lower.length >= 8 && ls.includes(lower))) return undefined;
  }
  return code;
}

function reason(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown Status';
}

/** Parses retry-after-ms (ms) or retry-after (seconds or an HTTP date). */
export function retryAfterMs(headers: Headers | undefined | null): number | undefined {
  if (!headers || typeof headers.get !== 'function') return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms != null && /^\d+(\.\d+)?$/.test(ms.trim())) return Number(ms);
  const ra = headers.get('retry-after');
  if (ra == null) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra.trim())) return Number(ra) * 1000;
  const date = Date.parse(ra);
  if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  return undefined;
}

/** OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s", or a number of seconds. */
export function parseResetDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  if (!/^(\d+(\.\d+)?(ms|h|m|s))+$/.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
  }
  return ms;
}

/**
 * The wait a 429 asks for: retry-after-ms / retry-after, else the longest of the
 * x-ratelimit-reset-requests / x-ratelimit-reset-tokens durations.
 */
export function rateLimitWaitMs(headers: Headers | undefined | null): number | undefined {
  const ra = retryAfterMs(headers);
  if (ra !== undefined || !headers || typeof headers.get !== 'function') return ra;
  let best: number | undefined;
  for (const name of ['x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens', 'x-ratelimit-reset']) {
    const v = headers.get(name);
    const ms = v == null ? undefined : parseResetDuration(v);
    if (ms !== undefined && (best === undefined || ms > best)) best = ms;
  }
  return best;
}

/** All `code` values and error names in an error's cause chain. */
function causeCodes(err: unknown): string[] {
  const out: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e && typeof e === 'object'; depth++) {
    const o = e as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    if (typeof o.code === 'string') out.push(o.code);
    if (typeof o.name === 'string') out.push(o.name);
    if (typeof o.message === 'string' && o.message === 'terminated') out.push('terminated');
    e = o.cause;
  }
  return out;
}

/** A fixed phrase for a network failure, derived only from error codes. */
function connectionCause(err: unknown): { phrase: string; retryable: boolean } {
  const codes = causeCodes(err);
  const has = (...c: string[]) => codes.some((x) => c.includes(x));
  if (has('ECONNREFUSED')) return { phrase: 'connection refused', retryable: true };
  if (has('ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME')) return { phrase: 'host not found', retryable: true };
  if (has('UND_ERR_CONNECT_TIMEOUT', 'ConnectTimeoutError', 'ETIMEDOUT'))
    return { phrase: 'connect timed out', retryable: true };
  if (has('EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN')) return { phrase: 'host unreachable', retryable: true };
  if (codes.some((c) => /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT/.test(c)))
    return { phrase: 'TLS certificate verification failed', retryable: false };
  if (codes.some((c) => /^ERR_SSL|^ERR_TLS|^EPROTO$/.test(c))) return { phrase: 'TLS handshake failed', retryable: true };
  if (has('UND_ERR_PRX_TLS', 'UND_ERR_ABORTED') && codes.some((c) => /proxy/i.test(c)))
    return { phrase: 'proxy connection failed', retryable: true };
  if (has('ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'SocketError', 'terminated', 'UND_ERR_CLOSED'))
    return { phrase: 'connection reset', retryable: true };
  return { phrase: 'connection error', retryable: true };
}

/**
 * Maps anything a provider call can throw to an LlmError. `streaming` tells that response
 * chunks had started to arrive: a broken connection is then a broken stream. `secrets` (the
 * key sent, the stored key) are kept out of the message even where the server echoes them.
 */
export function toLlmError(err: unknown, ctx: { streaming?: boolean; secrets?: readonly (string | undefined)[] } = {}): LlmError {
  const secrets = ctx.secrets ?? [];
  if (err instanceof LlmError) return err;
  if (err instanceof CommandError) return new LlmError(err.message, 'config');
  if (err instanceof APIUserAbortError) return abortedError();
  if (err instanceof APIConnectionTimeoutError) return new LlmError('LLM request timed out', 'timeout');
  if (err instanceof APIConnectionError) {
    const { phrase, retryable } = connectionCause(err);
    return new LlmError(`LLM request failed: ${phrase}`, 'connection', { retryable });
  }
  if (err instanceof APIError) {
    // A JSON body's `error` (the SDK keeps only that), else a text body (in the SDK's message).
    const textBody = typeof err.status === 'number' && !/^\d{3} status code \(no body\)$/.test(err.message) ? err.message.replace(/^\d{3} /, '') : undefined;
    const said = providerMessage(err.error !== undefined && err.error !== null ? err.error : textBody, secrets);
    const tail = said ? `: ${said}` : '';
    if (typeof err.status === 'number') {
      const status = err.status;
      const code = safeCode(err.code, secrets);
      return new LlmError(`failed to do post: ${status} ${reason(status)}${code ? ` (${code})` : ''}${tail}`, 'http', {
        status,
        retryable: isRetryableStatus(status),
        retryAfterMs: status === 429 ? rateLimitWaitMs(err.headers) : retryAfterMs(err.headers),
        contextLength: isContextLength(status, err.code, said),
      });
    }
    // An `error` object sent inside a stream (no HTTP status).
    const code = safeCode(err.code, secrets) ?? safeCode(err.type, secrets);
    return new LlmError(`LLM request failed: the server reported an error${code ? ` (${code})` : ''}${tail}`, 'http', {
      contextLength: isContextLength(undefined, err.code, said),
    });
  }
  if (err instanceof SyntaxError) return malformedError();
  if (err && typeof err === 'object' && (err as { name?: unknown }).name === 'AbortError') return abortedError();
  // Errors raised while reading a body (undici: TypeError('terminated') with a SocketError cause).
  const codes = causeCodes(err);
  if (codes.length > 0 && codes.some((c) => /^(E[A-Z]+|UND_ERR_.*|terminated|SocketError)$/.test(c))) {
    if (ctx.streaming) return new LlmError('LLM response stream was interrupted', 'stream', { retryable: true });
    const { phrase, retryable } = connectionCause(err);
    return new LlmError(`LLM request failed: ${phrase}`, 'connection', { retryable });
  }
  return new LlmError('LLM request failed: unexpected error', 'connection');
}

/** The original module's words for each operation, put before a provider failure. */
export const OPERATION = {
  /** LLM.RUN of a prompt or search app */
  predict: 'failed to predict with openai',
  /** LLM.RUN of a chat app */
  chat: 'failed to predict',
  /** an embedding (LLM.ADD / LLM.KNN of a text, a search question, a semantic cache key) */
  embed: 'failed to request embedding',
} as const;

/**
 * A provider failure with the original's words for the operation before it, e.g. `failed to
 * predict with openai: failed to do post: 429 Too Many Requests ...` or `failed to request
 * embedding: LLM request timed out after 5000 ms`. Configuration errors of this server's own
 * features (sealed keys, allowed hosts and variables) and anything that is not a provider
 * failure pass unchanged.
 */
export function withOperation(err: unknown, what: string): unknown {
  if (!(err instanceof LlmError) || err.kind === 'config' || err.kind === 'unsupported' || err.message.startsWith(`${what}: `)) return err;
  return new LlmError(`${what}: ${err.message}`, err.kind, { status: err.status, retryable: false, retryAfterMs: err.retryAfterMs });
}

/**
 * Removes secrets from text meant for logs: the given literal secrets, bearer tokens,
 * OpenAI-style keys and URL credentials.
 */
export function scrub(text: string, secrets: Iterable<string | undefined> = []): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  }
  return out
    .replace(/(Bearer\s+)[^\s"',]+/gi, '$1[redacted]')
    .replace(/\bsk-[A-Za-z0-9_*.-]{6,}/g, '[redacted]')
    .replace(/(\/\/)[^/@\s:]+:[^/@\s]*@/g, '$1[redacted]@');
}
