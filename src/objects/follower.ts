/**
 * Following the other server instances on the same backing Redis.
 *
 * Two loops, both blocking reads: the catalog event stream (creates, overwrites, deletes, renames
 * of objects) and one XREAD over the logs of every store and chat app (polled on a Redis Cluster,
 * where one XREAD cannot span slots: RedisStorage.tailLogs). Entries
 * are applied in log order and only once (positions at or below what is applied are skipped),
 * so this instance's own writes — already applied when they were acknowledged — pass through
 * unchanged, and concurrent writers converge on the log's order.
 *
 * A store this instance is writing to is left out of the read (ObjectManager.writingTo): its
 * writes would all come back through it (under a steady ADD load, one more reply to parse per
 * ADD, in long event-loop turns), and each of them already catches up on other writers' entries
 * before it is applied. When its writes settle the store is read again, QUIET_MS later.
 */
import { randomBytes } from 'node:crypto';
import { logger } from '../log.js';
import type { Storage } from '../storage/types.js';
import { CatalogGapError } from '../storage/index.js';
import type { ObjectManager } from './manager.js';

import { LatencyWindow } from '../util/latency-window.js';

/** How long a store left out of the read must stay without writes in flight before the read is re-armed. */
const QUIET_MS = 5;

export class Follower {
  readonly instanceId = randomBytes(6).toString('hex');
  private running = false;
  /** Stores left out of the read in progress (this instance was writing to them). */
  private readonly leftOut = new Set<string>();
  private quietTimer: NodeJS.Timeout | null = null;
  /** This follower ended the read in progress itself (a left-out store went quiet). */
  private rearmed = false;
  private readonly lags = new LatencyWindow();
  followedEntries = 0;
  lastLagMs = 0;

  constructor(
    private readonly manager: ObjectManager,
    private readonly storage: Storage,
    private catalogPos: string,
  ) {}

  get enabled(): boolean {
    return this.running;
  }

  start(): void {
    if (!this.storage.tailLogs) {
      logger.info('this storage cannot be followed (standalone files): instances do not follow each other');
      return;
    }
    this.running = true;
    this.manager.onChange = () => void this.storage.wakeLogs?.();
    this.manager.onStoreQuiet = (id) => this.storeQuiet(id);
    void this.catalogLoop();
    void this.logLoop();
  }

  stop(): void {
    this.running = false;
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = null;
    void this.storage.wakeLogs?.();
  }

  /** A store's writes settled: if the read in progress left it out, re-arm the read once it stays quiet. */
  private storeQuiet(id: string): void {
    if (!this.running || this.quietTimer || !this.leftOut.has(id)) return;
    this.quietTimer = setTimeout(() => {
      this.quietTimer = null;
      if (!this.running || [...this.leftOut].every((s) => this.manager.writingTo(s))) return;
      this.rearmed = true;
      void this.storage.wakeLogs?.();
    }, QUIET_MS);
    this.quietTimer.unref();
  }

  /** Follow lag percentile (p in (0, 100]) over the last entries applied from other instances (ms). */
  lagPercentile(p: number): number {
    return this.lags.percentile(p);
  }

  private async catalogLoop(): Promise<void> {
    let backoff = 100;
    while (this.running) {
      try {
        const events = await this.storage.tailCatalog(this.catalogPos, 2000);
        for (const e of events) {
          await this.manager.applyCatalogEvent(e);
          this.catalogPos = e.pos;
        }
        backoff = 100;
      } catch (err) {
        if (!this.running) return;
        if (err instanceof CatalogGapError) {
          logger.warn('catalog events were trimmed before this instance read them: reloading the catalog');
          this.catalogPos = await this.manager.resyncCatalog().catch(() => this.catalogPos);
          continue;
        }
        logger.debug({ err: (err as Error).message }, 'catalog follow failed; retrying');
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  private async logLoop(): Promise<void> {
    let backoff = 100;
    while (this.running) {
      try {
        const positions = this.manager.followPositions();
        this.leftOut.clear();
        for (const id of positions.keys()) {
          if (this.manager.writingTo(id)) {
            positions.delete(id);
            this.leftOut.add(id);
          }
        }
        this.rearmed = false;
        const res = await this.storage.tailLogs!(positions, 2000);
        // Nothing came in the whole wait: look for snapshots that passed idle objects (not after a re-arm).
        if (res.length === 0 && !this.rearmed) await this.manager.checkSnapshotGaps();
        for (const { id, entries } of res) {
          const applied = await this.manager.applyFollowed(id, entries);
          const now = Date.now();
          for (const pos of applied) {
            const lag = Math.max(0, now - Number(pos.slice(0, pos.indexOf('-'))));
            this.lags.add(lag);
            this.lastLagMs = lag;
            this.followedEntries++;
          }
        }
        backoff = 100;
      } catch (err) {
        if (!this.running) return;
        logger.debug({ err: (err as Error).message }, 'log follow failed; retrying');
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }
}
