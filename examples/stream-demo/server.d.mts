/** Types for server.mjs (plain ESM, no build step), for TypeScript callers such as the tests. */
export interface DemoOptions {
  /** redis-llm-server URL. Default redis://127.0.0.1:6379. */
  redis?: string;
  /** HTTP port (0 = a free one). Default 8080. */
  port?: number;
  /** HTTP bind address. Default 127.0.0.1. */
  host?: string;
  /** The app LLM.RUN runs. Default "demo". */
  app?: string;
  /** Per-question stream keys are `${streamPrefix}<uuid>`. Default "demo:answer:". */
  streamPrefix?: string;
  /** Seconds a question's stream is kept. Default 3600. */
  streamTtl?: number;
  /** XREAD BLOCK timeout, ms. Default 15000. */
  blockMs?: number;
  /** Concurrent SSE clients. Default 100. */
  maxClients?: number;
  /** Run setupDemo first. */
  setup?: boolean;
  baseUrl?: string;
  model?: string;
  apiKeyEnv?: string;
  log?: (msg: string) => void;
}

export interface Demo {
  readonly url: string;
  readonly port: number;
  readonly app: string;
  /** SSE clients connected right now. */
  readonly clients: number;
  close(): Promise<void>;
}

export interface SetupOptions {
  redis?: string;
  app?: string;
  baseUrl?: string;
  model?: string;
  apiKeyEnv?: string;
}

export const DEFAULTS: Required<Pick<DemoOptions, 'redis' | 'port' | 'host' | 'app' | 'streamPrefix' | 'streamTtl' | 'blockMs' | 'maxClients'>>;
export const DEMO_PROMPT: string;
export function startDemo(opts?: DemoOptions): Promise<Demo>;
export function setupDemo(opts?: SetupOptions): Promise<{ llm: string; app: string; params: Record<string, unknown> }>;
