/**
 * What the server offers command handlers, as an interface so the commands layer does not
 * depend on the server layer. The server (src/server) provides the implementation.
 */
export type BackendMode = 'proxy' | 'managed' | 'standalone';

export interface Services {
  readonly mode: BackendMode;
  readonly startedAt: number;
  /** True while LLM objects are loading after a start: LLM.* answers -LOADING meanwhile. */
  readonly loading: boolean;
  /** Lines of the `# LLM` INFO section (without the header). */
  llmInfo(): string[];
}
