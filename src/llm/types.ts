/**
 * Public types of the LLM provider layer. The command layer only needs these plus
 * `parseLlmConfig`, `createProvider`, `redactConfig`, `sealConfig` and `parseStoredConfig` from `./index.js`.
 */
import type { LlmStats } from './stats.js';

export type { LlmStats, LlmStatsSnapshot } from './stats.js';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface CallOptions {
  /**
   * Deadline for the whole call in ms: waiting for a pool slot, every attempt and every
   * retry backoff. Default: the config's `http.socket_timeout`, else 60 s.
   */
  timeoutMs?: number;
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

export type LlmType = 'openai' | 'azure_openai' | 'local';

export interface LlmProvider {
  readonly type: LlmType;
  /** One chat completion. Throws `LlmError` (a `CommandError`) with a clear, secret-free message. */
  chat(messages: ChatMessage[], opts?: ChatOptions): Promise<ChatResult>;
  /** One vector per text, in input order. `embed([])` resolves to `[]` without a request. */
  embed(texts: string[], opts?: EmbedOptions): Promise<number[][]>;
  readonly stats: LlmStats;
  /** Releases connections; calls still waiting for a slot fail. Idempotent. */
  close(): void;
}
