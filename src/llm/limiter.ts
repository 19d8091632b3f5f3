/**
 * A counting semaphore with a FIFO wait queue: at most `size` calls of one provider are in
 * flight; the others wait, each until a slot frees, its wait limit passes or its signal fires.
 */
import { LlmError } from './errors.js';

interface Waiter {
  grant: () => void;
  fail: (err: Error) => void;
}

export class Limiter {
  private active = 0;
  private readonly queue: Waiter[] = [];
  private closed = false;

  constructor(readonly size: number) {}

  get inFlight(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Resolves with a release function once a slot is held. Rejects with `onTimeout()` when
   * `waitMs` (> 0) passes first, with `onAbort()` when `signal` fires first.
   */
  acquire(waitMs: number, signal: AbortSignal | undefined, onTimeout: () => Error, onAbort: () => Error): Promise<() => void> {
    if (this.closed) return Promise.reject(new LlmError('LLM provider is closed', 'pool'));
    if (signal?.aborted) return Promise.reject(onAbort());
    if (this.active < this.size && this.queue.length === 0) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise<() => void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
      };
      const remove = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
      };
      const waiter: Waiter = {
        grant: () => {
          cleanup();
          resolve(this.releaser());
        },
        fail: (err) => {
          cleanup();
          reject(err);
        },
      };
      const abort = () => {
        remove();
        waiter.fail(onAbort());
      };
      if (waitMs > 0) {
        timer = setTimeout(() => {
          remove();
          waiter.fail(onTimeout());
        }, waitMs);
      }
      signal?.addEventListener('abort', abort, { once: true });
      this.queue.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next) next.grant(); // the slot passes directly to the next waiter
      else this.active--;
    };
  }

  /** Fails every waiter; later acquires fail at once. Slots already held finish normally. */
  close(): void {
    this.closed = true;
    for (const w of this.queue.splice(0)) w.fail(new LlmError('LLM provider is closed', 'pool'));
  }
}
