/**
 * A first-come readers–writer gate. Shared turns overlap each other; an exclusive turn runs alone.
 * Turns start in arrival order: a waiting exclusive turn holds back shared turns that came after
 * it, so writers are never starved and a read that came after a write sees it. A turn that can
 * start at once starts synchronously (no extra tick on the hot path).
 */
interface Waiter {
  exclusive: boolean;
  start: () => void;
}

export class RwGate {
  private sharedRunning = 0;
  private exclusiveRunning = false;
  private readonly waiting: Waiter[] = [];
  private head = 0;

  /** Runs fn when no exclusive turn runs or waits ahead of it. */
  shared<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.turn(false, fn);
  }

  /** Runs fn alone, after every turn that came before it. */
  exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.turn(true, fn);
  }

  /** True when nothing runs or waits. */
  get idle(): boolean {
    return this.sharedRunning === 0 && !this.exclusiveRunning && this.head === this.waiting.length;
  }

  private turn<T>(exclusive: boolean, fn: () => Promise<T> | T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        if (exclusive) this.exclusiveRunning = true;
        else this.sharedRunning++;
        let p: Promise<T>;
        try {
          p = Promise.resolve(fn());
        } catch (e) {
          p = Promise.reject(e);
        }
        p.then(resolve, reject).finally(() => {
          if (exclusive) this.exclusiveRunning = false;
          else this.sharedRunning--;
          this.pump();
        });
      };
      if (this.head === this.waiting.length && this.canStart(exclusive)) start();
      else this.waiting.push({ exclusive, start });
    });
  }

  private canStart(exclusive: boolean): boolean {
    return exclusive ? this.sharedRunning === 0 && !this.exclusiveRunning : !this.exclusiveRunning;
  }

  private pump(): void {
    while (this.head < this.waiting.length) {
      const w = this.waiting[this.head]!;
      if (!this.canStart(w.exclusive)) break;
      this.head++;
      w.start();
      if (w.exclusive) break;
    }
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    } else if (this.head > 1024) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }
}
