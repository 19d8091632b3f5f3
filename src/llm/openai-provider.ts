/**
 * OpenAI-compatible providers (`openai`, and `azure_openai` through `AzureOpenAI`), on the
 * official `openai` SDK with an undici dispatcher per provider (connect timeout, pool, proxy,
 * TLS verification ON unless the config explicitly turns it off).
 *
 * The SDK's own retry is disabled (maxRetries 0): this layer retries, so that one deadline
 * covers queueing + attempts + backoffs, the backoff is configurable (tests use a few ms), a
 * stream is never retried after text was reported, and stats count retries.
 *
 * Call life cycle:  deadline starts -> wait for a pool slot (Limiter; bounded by
 * pool.wait_timeout and the deadline) -> attempt -> on a retryable failure, backoff
 * (retry-after-ms / retry-after honoured) and attempt again, at most max_retries times, never
 * past the deadline -> release the slot. Every failure becomes one LlmError (see errors.ts).
 */
import OpenAI, { AzureOpenAI } from 'openai';
import { Agent, ProxyAgent, fetch as undiciFetch, type Dispatcher } from 'undici';
import { logger } from '../log.js';
import {
  CHAT_CONTROLLED,
  DEFAULT_TIMEOUT_MS,
  EMBEDDING_CONTROLLED,
  MAX_RETRY_BACKOFF_MS,
  DEFAULT_LLM_POLICY,
  assertHostAllowed,
  assertKeyHostAllowed,
  resolveApiKey,
  type AzureOpenAIConfig,
  type CallLimits,
  type JsonObject,
  type OpenAIConfig,
} from './config.js';
import { LlmError, abortedError, malformedError, namedError, scrub, timeoutError, toLlmError } from './errors.js';
import { Limiter } from './limiter.js';
import { LlmStats } from './stats.js';
import type { CallOptions, ChatMessage, ChatOptions, ChatResult, EmbedOptions, LlmProvider } from './types.js';

/** OpenAI accepts at most 2048 inputs per embeddings request; larger calls are split. */
export const MAX_EMBED_BATCH = 2048;

const ROLES = new Set(['system', 'user', 'assistant']);

interface AttemptContext {
  signal: AbortSignal;
  /** ms left before the call's deadline. */
  remainingMs: number;
  /** Set by a streaming attempt once text was reported: no retry after that. */
  emitted: boolean;
  /** Streaming: (re)starts the wait for the next chunk (the idle limit). */
  armIdle: () => void;
}

/** Streaming: default longest wait for the next chunk. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tokenCount(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0;
}

function parseUsage(u: unknown): TokenUsage {
  if (!isObj(u)) return { promptTokens: 0, completionTokens: 0 };
  return { promptTokens: tokenCount(u.prompt_tokens), completionTokens: tokenCount(u.completion_tokens) };
}

/** A base64 embedding: little-endian float32 values. */
function decodeBase64Floats(s: string): number[] {
  const buf = Buffer.from(s, 'base64');
  if (buf.length === 0 || buf.length % 4 !== 0) throw malformedError();
  const out = new Array<number>(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error('aborted'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function checkTimeout(ms: unknown): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) throw new LlmError('timeout must be a positive number of ms', 'config');
  return Math.ceil(ms);
}

export class OpenAICompatibleProvider implements LlmProvider {
  readonly type: 'openai' | 'azure_openai';
  readonly stats = new LlmStats();
  private readonly client: OpenAI;
  private readonly dispatcher: Dispatcher;
  private readonly limiter: Limiter;
  private closed = false;

  constructor(
    private readonly cfg: (OpenAIConfig | AzureOpenAIConfig) & CallLimits,
    /** The LLM's key: errors name it (it follows RENAME). */
    private readonly name?: () => string,
  ) {
    this.type = cfg.type;
    const h = cfg.http;
    const agentOpts = {
      connections: h.pool.size,
      clientTtl: h.pool.connectionLifetimeMs > 0 ? h.pool.connectionLifetimeMs : null,
      connect: { timeout: h.connectTimeoutMs, rejectUnauthorized: h.verifyTls },
      // The call deadline bounds the whole exchange; no separate header/body timers.
      headersTimeout: 0,
      bodyTimeout: 0,
    };
    this.dispatcher = h.proxyUrl
      ? new ProxyAgent({ ...agentOpts, uri: h.proxyUrl, requestTls: { rejectUnauthorized: h.verifyTls } })
      : new Agent(agentOpts);
    if (!h.verifyTls) logger.warn({ llm: cfg.type }, 'LLM provider created with TLS certificate verification disabled');
    this.limiter = new Limiter(h.pool.size);

    const common = {
      // The real key is sent per request (resolved at call time); the SDK needs a placeholder.
      apiKey: 'unused-placeholder',
      maxRetries: 0,
      timeout: DEFAULT_TIMEOUT_MS,
      fetch: undiciFetch as unknown as typeof globalThis.fetch,
      // Redirects are not followed: an API endpoint has no reason to redirect a POST, and
      // following one could lead a request (with its key) to a host outside the allow-list.
      fetchOptions: { dispatcher: this.dispatcher, redirect: 'manual' } as Record<string, unknown>,
      logLevel: 'off' as const,
    };
    if (cfg.type === 'openai') {
      this.client = new OpenAI({
        ...common,
        baseURL: cfg.baseUrl,
        // Do not pick these up from the server's environment.
        adminAPIKey: null,
        organization: null,
        project: null,
        webhookSecret: null,
      });
    } else {
      this.client = new AzureOpenAI({
        ...common,
        baseURL: `${cfg.endpoint}/openai`,
        apiVersion: cfg.apiVersion,
        adminAPIKey: null,
        organization: null,
        project: null,
        webhookSecret: null,
      });
    }
  }

  get configuredTimeoutMs(): number | undefined {
    return this.cfg.timeoutMs ?? this.cfg.http.socketTimeoutMs;
  }

  /** The call's deadline: --TIMEOUT, else the LLM's timeout / socket_timeout, else the server's llm-timeout. */
  private deadlineOf(opts: CallOptions): number {
    return checkTimeout(opts.timeoutMs) ?? this.configuredTimeoutMs ?? opts.env?.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Errors leave the provider naming the LLM when it has a name. */
  private named(e: unknown): LlmError {
    const err = toLlmError(e);
    return this.name ? namedError(err, this.name()) : err;
  }

  // -------------------------------------------------------------------------------------------

  private authHeaders(key: string): Record<string, string> {
    return this.cfg.type === 'azure_openai' ? { 'api-key': key } : { Authorization: `Bearer ${key}` };
  }

  private url(op: 'chat' | 'embed'): string {
    const cfg = this.cfg;
    if (cfg.type === 'openai') return op === 'chat' ? cfg.chatUrl : cfg.embeddingUrl;
    const id = op === 'chat' ? cfg.chatDeploymentId : cfg.embeddingDeploymentId;
    if (id === undefined) {
      throw new LlmError(
        op === 'chat'
          ? 'this azure_openai LLM has no chat_deployment_id: it cannot chat'
          : 'this azure_openai LLM has no embedding_deployment_id: it cannot embed',
        'unsupported',
      );
    }
    // The SDK adds ?api-version=<api_version> (defaultQuery of AzureOpenAI).
    return `${cfg.endpoint}/openai/deployments/${encodeURIComponent(id)}/${op === 'chat' ? 'chat/completions' : 'embeddings'}`;
  }

  private backoff(retry: number, retryAfter: number | undefined): number {
    if (retryAfter !== undefined && Number.isFinite(retryAfter) && retryAfter >= 0) return Math.min(retryAfter, 60_000);
    const base = Math.min(this.cfg.http.retryBackoffMs * 2 ** retry, Math.max(MAX_RETRY_BACKOFF_MS, this.cfg.http.retryBackoffMs));
    return base * (1 - Math.random() * 0.25);
  }

  /**
   * Runs one call: deadline, pool slot, attempts with retries, stats, error mapping, logging.
   * `attempt` receives the key resolved for this call.
   */
  private async call<T>(
    op: 'chat' | 'embed',
    opts: CallOptions,
    attempt: (key: string, ctx: AttemptContext) => Promise<T>,
    usageOf: (r: T) => TokenUsage,
  ): Promise<T> {
    const start = performance.now();
    let timeoutMs: number;
    let key: string | undefined;
    try {
      timeoutMs = this.deadlineOf(opts);
      if (this.closed) throw new LlmError('LLM provider is closed', 'pool');
      const url = this.url(op);
      // The policy of the server the call comes through (checked at every call: a stored
      // definition may predate a narrower policy).
      const policy = opts.env?.policy ?? DEFAULT_LLM_POLICY;
      assertHostAllowed(url, this.cfg.type === 'openai' ? 'base_url' : 'endpoint', policy);
      if (this.cfg.http.proxyUrl) assertHostAllowed(this.cfg.http.proxyUrl, 'proxy', policy);
      key = resolveApiKey(this.cfg.apiKey, policy);
      assertKeyHostAllowed(this.cfg, policy);
    } catch (e) {
      this.stats.record(performance.now() - start, false);
      throw toLlmError(e);
    }

    const deadline = start + timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    // Streaming: the wait for the next chunk is bounded too (a stalled stream is aborted).
    const idleMs = this.cfg.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    let idleFired = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      if (idleTimer) clearTimeout(idleTimer);
      if (idleMs >= deadline - performance.now()) return; // the deadline comes first anyway
      idleTimer = setTimeout(() => {
        idleFired = true;
        controller.abort();
      }, idleMs);
    };
    const userSignal = opts.signal;
    const onUserAbort = () => controller.abort();
    if (userSignal?.aborted) controller.abort();
    else userSignal?.addEventListener('abort', onUserAbort, { once: true });

    const ctx: AttemptContext = { signal: controller.signal, remainingMs: timeoutMs, emitted: false, armIdle };
    const classify = (e: unknown): LlmError => {
      if (timedOut) return timeoutError(timeoutMs);
      if (idleFired) return new LlmError(`LLM request timed out after ${idleMs} ms without a stream chunk`, 'timeout');
      if (userSignal?.aborted) return abortedError();
      const err = toLlmError(e, { streaming: ctx.emitted, secrets: [key, this.cfg.apiKey] });
      if (ctx.emitted && err.retryable) return new LlmError(err.message, err.kind, { status: err.status, retryable: false });
      return err;
    };

    let release: (() => void) | undefined;
    let attempts = 0;
    let raw: unknown;
    this.stats.queued++;
    try {
      const pool = this.cfg.http.pool;
      try {
        release = await this.limiter.acquire(
          pool.waitTimeoutMs,
          controller.signal,
          () => new LlmError(`LLM request failed: no free connection within ${pool.waitTimeoutMs} ms (pool size ${pool.size})`, 'pool'),
          () => (timedOut ? timeoutError(timeoutMs) : abortedError()),
        );
      } finally {
        this.stats.queued--;
      }
      this.stats.inFlight++;
      let result: T;
      for (;;) {
        attempts++;
        try {
          ctx.remainingMs = Math.max(1, deadline - performance.now());
          result = await attempt(key, ctx);
          if (controller.signal.aborted) throw new Error('aborted'); // a stream can end quietly on abort
          break;
        } catch (e) {
          raw = e;
          const err = classify(e);
          if (!err.retryable || attempts > this.cfg.http.maxRetries) throw err;
          const wait = this.backoff(attempts - 1, err.retryAfterMs);
          if (performance.now() + wait >= deadline) throw err;
          this.stats.retries++;
          opts.onRetry?.();
          logger.debug({ llm: this.type, op, attempt: attempts, waitMs: Math.round(wait), cause: err.message }, 'LLM call retrying');
          await sleep(wait, controller.signal);
        }
      }
      const usage = usageOf(result);
      this.stats.record(performance.now() - start, true, usage.promptTokens, usage.completionTokens);
      return result;
    } catch (e) {
      const err = e instanceof LlmError ? e : classify(e);
      this.stats.record(performance.now() - start, false);
      logger.warn(
        {
          llm: this.type,
          op,
          kind: err.kind,
          status: err.status,
          attempts,
          // The raw error text, with any secret removed, for operators debugging a provider.
          detail: raw instanceof Error ? scrub(raw.message, [key, this.cfg.apiKey]).slice(0, 300) : undefined,
        },
        err.message,
      );
      throw err;
    } finally {
      clearTimeout(timer);
      if (idleTimer) clearTimeout(idleTimer);
      userSignal?.removeEventListener('abort', onUserAbort);
      if (release) {
        this.stats.inFlight--;
        release();
      }
    }
  }

  // -------------------------------------------------------------------------------------------

  async chat(messages: ChatMessage[], opts: ChatOptions = {}): Promise<ChatResult> {
    try {
      return await this.chatUnnamed(messages, opts);
    } catch (e) {
      throw this.named(e);
    }
  }

  private async chatUnnamed(messages: ChatMessage[], opts: ChatOptions): Promise<ChatResult> {
    if (!Array.isArray(messages) || messages.length === 0 || !messages.every((m) => isObj(m) && ROLES.has(m.role as string) && typeof m.content === 'string')) {
      this.stats.record(0, false);
      throw new LlmError('chat: messages must be a non-empty list of {role, content}', 'config');
    }
    const body: JsonObject = {
      ...this.cfg.chat,
      ...withoutControlled(opts.body, CHAT_CONTROLLED),
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
    };
    const requestedModel =
      typeof body.model === 'string'
        ? body.model
        : this.cfg.type === 'azure_openai'
          ? (this.cfg.chatDeploymentId ?? '')
          : '';
    const onDelta = opts.onDelta;
    return this.call(
      'chat',
      opts,
      (key, ctx) =>
        onDelta
          ? this.chatStream(key, ctx, body, requestedModel, onDelta)
          : this.chatOnce(key, ctx, body, requestedModel),
      (r) => r.usage,
    );
  }

  private requestOptions(key: string, ctx: AttemptContext, body: JsonObject) {
    return {
      body,
      headers: this.authHeaders(key),
      signal: ctx.signal,
      timeout: Math.ceil(ctx.remainingMs) + 1000, // our deadline fires first
      maxRetries: 0,
    };
  }

  private async chatOnce(key: string, ctx: AttemptContext, body: JsonObject, model: string): Promise<ChatResult> {
    const res: unknown = await this.client.post<unknown>(this.url('chat'), this.requestOptions(key, ctx, body));
    if (!isObj(res) || !Array.isArray(res.choices) || res.choices.length === 0) throw malformedError();
    const choice: unknown = res.choices[0];
    if (!isObj(choice) || !isObj(choice.message)) throw malformedError();
    const content = choice.message.content;
    if (content !== null && content !== undefined && typeof content !== 'string') throw malformedError();
    return {
      text: content ?? '',
      finishReason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
      usage: parseUsage(res.usage),
      model: typeof res.model === 'string' && res.model ? res.model : model,
    };
  }

  private async chatStream(
    key: string,
    ctx: AttemptContext,
    base: JsonObject,
    model: string,
    onDelta: (text: string) => void,
  ): Promise<ChatResult> {
    const body = { ...base, stream: true, stream_options: { include_usage: true } };
    const stream = (await this.client.post<unknown>(this.url('chat'), {
      ...this.requestOptions(key, ctx, body),
      stream: true,
    })) as unknown as AsyncIterable<unknown>;
    let text = '';
    let finishReason: string | null = null;
    let usage: TokenUsage = { promptTokens: 0, completionTokens: 0 };
    let answeredModel = model;
    ctx.armIdle();
    for await (const chunk of stream) {
      ctx.armIdle();
      if (!isObj(chunk)) throw malformedError();
      if (typeof chunk.model === 'string' && chunk.model) answeredModel = chunk.model;
      if (isObj(chunk.usage)) usage = parseUsage(chunk.usage);
      if (chunk.choices !== undefined && chunk.choices !== null && !Array.isArray(chunk.choices)) throw malformedError();
      const choice: unknown = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
      if (choice === undefined) continue;
      if (!isObj(choice)) throw malformedError();
      const delta = choice.delta;
      if (isObj(delta) && typeof delta.content === 'string' && delta.content.length > 0) {
        text += delta.content;
        ctx.emitted = true;
        try {
          onDelta(delta.content);
        } catch {
          throw new LlmError('LLM request aborted: the stream consumer failed', 'aborted');
        }
      }
      if (typeof choice.finish_reason === 'string') finishReason = choice.finish_reason;
    }
    return { text, finishReason, usage, model: answeredModel };
  }

  // -------------------------------------------------------------------------------------------

  async embed(texts: string[], opts: EmbedOptions = {}): Promise<number[][]> {
    try {
      return await this.embedUnnamed(texts, opts);
    } catch (e) {
      throw this.named(e);
    }
  }

  private async embedUnnamed(texts: string[], opts: EmbedOptions): Promise<number[][]> {
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) {
      this.stats.record(0, false);
      throw new LlmError('embed: texts must be strings', 'config');
    }
    if (texts.length === 0) return [];
    if (texts.length <= MAX_EMBED_BATCH) return this.embedBatch(texts, opts);
    // Split: one deadline for all the batches.
    const timeoutMs = this.deadlineOf(opts);
    const deadline = performance.now() + timeoutMs;
    const out: number[][] = [];
    for (let i = 0; i < texts.length; i += MAX_EMBED_BATCH) {
      const left = Math.ceil(deadline - performance.now());
      if (left <= 0) throw timeoutError(timeoutMs);
      out.push(...(await this.embedBatch(texts.slice(i, i + MAX_EMBED_BATCH), { ...opts, timeoutMs: left })));
    }
    return out;
  }

  private embedBatch(texts: string[], opts: EmbedOptions): Promise<number[][]> {
    // One text goes as a string (as the original sent it), several as an array.
    const body: JsonObject = { ...this.cfg.embedding, ...withoutControlled(opts.body, EMBEDDING_CONTROLLED), input: texts.length === 1 ? texts[0] : texts };
    let usage: TokenUsage = { promptTokens: 0, completionTokens: 0 };
    return this.call(
      'embed',
      opts,
      async (key, ctx) => {
        const res: unknown = await this.client.post<unknown>(this.url('embed'), this.requestOptions(key, ctx, body));
        const { vectors, usage: u } = this.parseEmbeddings(res, texts.length);
        usage = u;
        return vectors;
      },
      () => usage,
    );
  }

  private parseEmbeddings(res: unknown, n: number): { vectors: number[][]; usage: TokenUsage } {
    if (!isObj(res) || !Array.isArray(res.data) || res.data.length !== n) throw malformedError();
    const vectors = new Array<number[] | undefined>(n);
    let dim = -1;
    res.data.forEach((item: unknown, pos: number) => {
      if (!isObj(item)) throw malformedError();
      const index = item.index === undefined ? pos : item.index;
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= n || vectors[index]) throw malformedError();
      let v: number[];
      if (typeof item.embedding === 'string') v = decodeBase64Floats(item.embedding);
      else if (Array.isArray(item.embedding)) v = item.embedding as number[];
      else throw malformedError();
      if (v.length === 0 || (dim >= 0 && v.length !== dim)) throw malformedError();
      dim = v.length;
      for (const x of v) if (typeof x !== 'number' || !Number.isFinite(x)) throw malformedError();
      vectors[index] = v;
    });
    const usage = isObj(res.usage)
      ? { promptTokens: tokenCount(res.usage.prompt_tokens), completionTokens: 0 }
      : { promptTokens: 0, completionTokens: 0 };
    return { vectors: vectors as number[][], usage };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.limiter.close();
    // Graceful: calls in flight finish (each is bounded by its deadline), then sockets close.
    this.dispatcher.close().catch(() => undefined);
  }
}

/** Call fields (an app's stored params) without the ones the call sets itself. */
function withoutControlled(fields: Record<string, unknown> | undefined, controlled: readonly string[]): JsonObject {
  if (!fields) return {};
  const out = { ...fields } as JsonObject;
  for (const k of controlled) delete out[k];
  return out;
}
