/**
 * Public types of the LLM provider layer. The command layer only needs these plus
 * `parseLlmConfig`, `createProvider`, `redactConfig`, `sealConfig` and `parseStoredConfig` from `./index.js`.
 */
import type { LlmStats } from './stats.js';
import type { LlmPolicy } from './config.js';

export type { LlmStats, LlmStatsSnapshot } from './stats.js';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/**
 * Where a router keeps the circuit (cooldown) state of its targets: the backing Redis (shared by
 * every instance) or memory. `base` is the key prefix of one target (one hash tag).
 */
export interface CircuitStore {
  /**
   * The circuit of a target now: [0, 0] closed; [1, ms] open (cooling down, ms left); [2, 0]
   * this caller holds the one probe of a half-open circuit for `probeMs`; [3, ms] another
   * caller is probing.
   */
  circuitCheck(base: string, now: number, probeMs: number): Promise<[number, number]>;
  /**
   * Counts a failure; opens the circuit for `cooldownMs` when `threshold` failures fell within
   * `windowMs`, or at once when the failed call was the probe. Resolves true when it opened.
   */
  circuitFail(base: string, threshold: number, windowMs: number, cooldownMs: number, probe: boolean): Promise<boolean>;
  /** A probe succeeded: the circuit is closed again. */
  circuitOk(base: string): Promise<void>;
}

/** What a router needs from the server: its targets by key, the circuit store, the server default deadline. */
export interface LlmEnv {
  /** The db the keys are resolved in. */
  db: number;
  /** The provider of the LLM at `key` in that db; undefined when there is none. */
  resolve(key: string): LlmProvider | undefined;
  circuits: CircuitStore;
  /** The server's llm-timeout (ms): the deadline when neither the call nor the LLM sets one. */
  defaultTimeoutMs?: number;
  /** The operator's hosts and key policy (default: DEFAULT_LLM_POLICY). */
  policy?: LlmPolicy;
}

export interface CallOptions {
  /**
   * Deadline for the whole call in ms: waiting for a pool slot, every attempt and every
   * retry backoff. Default: the LLM's `timeout`, else its `http.socket_timeout`, else the
   * server's llm-timeout (`env.defaultTimeoutMs`), else 60 s.
   */
  timeoutMs?: number;
  /** The server around the call (needed by routers; gives the default deadline). */
  env?: LlmEnv;
  /** Called at every retry the provider makes (a router counts them per target). */
  onRetry?: () => void;
  /** Routers the call went through (a router refuses to reach itself). */
  via?: readonly LlmProvider[];
  /** Cancels the call (waiting in the queue or in flight); it then fails with `LLM request aborted`. */
  signal?: AbortSignal;
  /**
   * Request body fields laid over the LLM's own `chat` / `embedding` base for this call (an app's
   * --PARAMS, a store's --LLM params), e.g. {"temperature":0} or {"model":"..."}. What the call sets
   * itself (`messages`, `input`, `stream`) always wins. Ignored by the local embedder.
   */
  body?: Record<string, unknown>;
}

export interface ChatOptions extends CallOptions {
  /**
   * When set, the provider is called in streaming mode and every non-empty text chunk is
   * reported here as it arrives. The concatenation of the chunks is the result's `text`.
   * A streaming call is not retried once a chunk has been reported.
   */
  onDelta?: (text: string) => void;
}

export interface ChatResult {
  text: string;
  /** `stop`, `length`, `content_filter`, ... as the server sent it; null if it sent none. */
  finishReason: string | null;
  /** Zeros when the server did not report usage. */
  usage: { promptTokens: number; completionTokens: number };
  /** The model the server says answered (falls back to the requested model / deployment). */
  model: string;
}

export type EmbedOptions = CallOptions;

export type LlmType = 'openai' | 'azure_openai' | 'local' | 'router';

export interface LlmProvider {
  readonly type: LlmType;
  /** One chat completion. Throws `LlmError` (a `CommandError`) with a clear, secret-free message. */
  chat(messages: ChatMessage[], opts?: ChatOptions): Promise<ChatResult>;
  /** One vector per text, in input order. `embed([])` resolves to `[]` without a request. */
  embed(texts: string[], opts?: EmbedOptions): Promise<number[][]>;
  readonly stats: LlmStats;
  /** The deadline the LLM's own config sets (`timeout` / `http.socket_timeout`), if any. */
  readonly configuredTimeoutMs?: number;
  /** Releases connections; calls still waiting for a slot fail. Idempotent. */
  close(): void;
}
