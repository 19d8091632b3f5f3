/**
 * The provider of an LLM whose stored secrets this instance cannot open (sealed with another
 * server secret, or damaged): it sends nothing and every call fails with the reason.
 */
import { LlmError } from './errors.js';
import { LlmStats } from './stats.js';
import type { ChatMessage, ChatOptions, ChatResult, EmbedOptions, LlmProvider } from './types.js';

export class LockedProvider implements LlmProvider {
  readonly stats = new LlmStats();

  constructor(
    readonly type: 'openai' | 'azure_openai',
    private readonly reason: () => string,
  ) {}

  private refuse(): never {
    this.stats.record(0, false);
    throw new LlmError(this.reason(), 'config');
  }

  async chat(_messages: ChatMessage[], _opts?: ChatOptions): Promise<ChatResult> {
    this.refuse();
  }

  async embed(texts: string[], _opts?: EmbedOptions): Promise<number[][]> {
    if (Array.isArray(texts) && texts.length === 0) return [];
    this.refuse();
  }

  close(): void {}
}
