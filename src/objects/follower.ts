/**
 * Following the other server instances on the same backing Redis.
 *
 * Two loops, both blocking reads: the catalog event stream (creates, overwrites, deletes, renames
 * of objects) and one XREAD over the logs of every store and chat app (polled on a Redis Cluster,
 * where one XREAD cannot span slots: RedisStorage.tailLogs). Entries
 * are applied in log order and only once (positions at or below what is applied are skipped),
 * so this instance's own writes — already applied when they were acknowledged — pass through
 * unchanged, and concurrent writers converge on the log's order.
 */
import { randomBytes } from 'node:crypto';
import { logger } from '../log.js';
import type { Storage } from '../storage/types.js';
import { CatalogGapError } from '../storage/index.js';
import type { ObjectManager } from './manager.js';

import { LatencyWindow } from '../util/latency-window.js';

export class Follower {
  readonly instanceId = randomBytes(6).toString('hex');
  private running = false;
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
    void this.catalogLoop();
    void this.logLoop();
  }

  stop(): void {
    this.running = false;
    void this.storage.wakeLogs?.();
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
        const res = await this.storage.tailLogs!(this.manager.followPositions(), 2000);
        if (res.length === 0) await this.manager.checkSnapshotGaps();
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
