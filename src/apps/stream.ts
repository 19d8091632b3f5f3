/**
 * LLM output streamed into a Redis Stream (LLM.RUN ... --STREAM key). Entry fields:
 *   chunk entries:  run <id>  seq <n>  chunk <text>
 *   final entry:    run <id>  seq <n>  done 1  finish_reason <r>  prompt_tokens <n>  completion_tokens <n>
 *   failure entry:  run <id>  seq <n>  done 1  error <message>
 * `seq` counts from 0 within a run. Entries are appended in order on one connection (pipelined,
 * so a fast stream does not wait a round trip per chunk).
 */
import { randomUUID } from 'node:crypto';
import type { RunResult } from './run.js';

export type StreamSink = (fields: string[]) => Promise<void>;

export class RunStream {
  readonly runId = randomUUID();
  private seq = 0;
  private pending: Array<Promise<void>> = [];
  private failure: Error | null = null;

  constructor(private readonly sink: StreamSink) {}

  private push(fields: string[]): void {
    const p = this.sink(['run', this.runId, 'seq', String(this.seq++), ...fields]).catch((e: Error) => {
      this.failure ??= e;
    });
    this.pending.push(p);
  }

  chunk(text: string): void {
    if (text) this.push(['chunk', text]);
  }

  done(r: RunResult): void {
    this.push([
      'done', '1',
      'finish_reason', r.finishReason ?? '',
      'prompt_tokens', String(r.usage?.promptTokens ?? 0),
      'completion_tokens', String(r.usage?.completionTokens ?? 0),
    ]);
  }

  error(message: string): void {
    this.push(['done', '1', 'error', message]);
  }

  /** Waits until every entry is written; rejects with the first write error. */
  async flush(): Promise<void> {
    const all = this.pending;
    this.pending = [];
    await Promise.all(all);
    if (this.failure) throw this.failure;
  }
}
