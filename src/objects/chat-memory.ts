/**
 * Chat memory: the durable side of chat apps (objects/chat.ts holds their sessions). Every change
 * is a log entry of the chat object, durable before the reply and applied in log order (turns,
 * summaries, forgets); snapshots hold the sessions; sessions idle past the app's history ttl are
 * forgotten by a periodic sweep, as LLM.FORGET forgets them.
 */
import { logger } from '../log.js';
import type { LogEntry, Storage } from '../storage/types.js';
import { comparePos } from '../storage/index.js';
import type { ItemId } from '../vector/index.js';
import { ChatObject } from './chat.js';
import { StoreObject, type LlmObject } from './objects.js';
import { appendedRightAfter } from './log-order.js';

/** What chat memory needs of the object manager. */
export interface ChatHost {
  readonly storage: Storage;
  readonly readOnly: boolean;
  get(db: number, name: string): LlmObject | undefined;
  all(): IterableIterator<LlmObject>;
  storeRem(store: StoreObject, id: ItemId): Promise<boolean>;
  /** Appends log entries durably; `prev` is the position before them when the storage can tell. */
  appendLog(id: string, entries: LogEntry[]): Promise<{ positions: string[]; prev: string | undefined }>;
  /** Throws READONLY on a read-only instance. */
  checkWritable(): void;
}

export class ChatMemory {
  constructor(private readonly host: ChatHost) {}

  /** Appends chat memory entries durably, then applies them. */
  async append(chat: ChatObject, entries: LogEntry[]): Promise<void> {
    this.host.checkWritable();
    const { positions, prev } = await this.host.appendLog(chat.id, entries);
    const first = positions[0]!;
    if (chat.appliedPos !== '' && comparePos(first, chat.appliedPos) <= 0) return; // a follower applied them
    if (appendedRightAfter(chat.appliedPos, first, prev)) {
      entries.forEach((e, i) => chat.apply(positions[i]!, e));
      return;
    }
    // Another instance may have written in between: apply the log in order up to ours.
    const last = positions[positions.length - 1]!;
    for await (const batch of this.host.storage.readLog(chat.id, chat.appliedPos || undefined)) {
      for (const { pos, entry } of batch) {
        if (comparePos(pos, last) > 0) return;
        if (chat.appliedPos === '' || comparePos(pos, chat.appliedPos) > 0) chat.apply(pos, entry);
      }
    }
  }

  /** Writes a chat's sessions as its snapshot (after enough turns, and at shutdown). */
  async snapshot(chat: ChatObject): Promise<void> {
    if (chat.snapshotting || chat.changesSinceSnapshot === 0 || chat.appliedPos === '') return;
    chat.snapshotting = true;
    try {
      const pos = chat.appliedPos;
      const changes = chat.changesSinceSnapshot;
      await this.host.storage.writeSnapshot(chat.id, chat.serializeState(), pos);
      chat.changesSinceSnapshot -= changes;
    } catch (err) {
      logger.warn({ chat: chat.name, err: (err as Error).message }, 'chat snapshot failed; will retry');
    } finally {
      chat.snapshotting = false;
    }
  }

  /** Loads a chat's sessions: its snapshot, then the log after it. */
  async load(chat: ChatObject): Promise<void> {
    const snap = await this.host.storage.readSnapshot(chat.id);
    if (snap) chat.restoreState(snap.data, snap.pos);
    for await (const batch of this.host.storage.readLog(chat.id, snap?.pos)) {
      for (const { pos, entry } of batch) chat.apply(pos, entry);
    }
  }

  /** When the last sweep of idle sessions started. */
  lastSweep = Date.now();
  private sweeping = false;

  /**
   * Forgets the chat sessions idle for longer than their app's history ttl, as LLM.FORGET does:
   * their summaries leave the store and a `forget` entry is logged, so neither memory nor snapshot
   * keeps sessions nobody can see any more. Only an instance that may write does it.
   */
  async expireSessions(): Promise<number> {
    if (this.host.readOnly || this.sweeping) return 0;
    this.sweeping = true;
    this.lastSweep = Date.now();
    let forgotten = 0;
    try {
      for (const chat of [...this.host.all()]) {
        if (!(chat instanceof ChatObject) || chat.history.ttl <= 0) continue;
        for (const [name, s] of [...chat.sessions]) {
          if (!chat.expired(s, Date.now())) continue;
          try {
            // In the session's queue, and checked again there: a turn may have revived it meanwhile.
            const done = await chat.serialize(name, async () => {
              const current = chat.sessions.get(name);
              if (this.host.get(chat.db, chat.name) !== chat || !current || !chat.expired(current, Date.now())) return false;
              return this.forget(chat, name);
            });
            if (done) forgotten++;
          } catch (err) {
            logger.warn({ chat: chat.name, err: (err as Error).message }, 'could not forget an expired chat session; will retry');
          }
        }
      }
    } finally {
      this.sweeping = false;
    }
    if (forgotten > 0) logger.debug({ sessions: forgotten }, 'expired chat sessions forgotten');
    return forgotten;
  }

  /**
   * Forgets one chat session durably: its summaries leave the chat's store (when the store still
   * exists), then a `forget` entry is logged. False when there is no such session. The caller runs
   * this in the session's queue (chat.serialize).
   */
  async forget(chat: ChatObject, name: string): Promise<boolean> {
    const s = chat.sessions.get(name);
    if (!s) return false;
    const store = chat.def.store ? this.host.get(chat.db, chat.def.store) : undefined;
    if (store instanceof StoreObject) for (const id of s.summaryIds) await this.host.storeRem(store, id);
    await this.append(chat, [{ op: 'forget', session: name }]);
    return true;
  }
}
