/**
 * A chat app and its memory. Memory is per session (the original had one conversation per app):
 * the recent messages, how many turns since the last summary, and the ids of the session's
 * summaries in the vector store. Sessions never see each other's messages or summaries.
 *
 * Every change is a log entry of the chat object (durable before the reply), replayed on load:
 *   turn     {session, user, assistant, ts}
 *   summary  {session, id}          a summary item was added to the store
 *   forget   {session}
 * Snapshots hold the sessions as JSON.
 */
import type { LogEntry } from '../storage/types.js';
import type { ChatMessage } from '../llm/index.js';
import { KeyedSerialQueue } from '../util/serial.js';
import { AppObject, type AppDefinition } from './objects.js';

export interface ChatSession {
  messages: ChatMessage[];
  /** Messages (user + assistant) since the last summary. */
  sinceSummary: number;
  summaryIds: number[];
  lastActive: number;
}

export const DEFAULT_SESSION = 'default';

export class ChatObject extends AppObject {
  readonly sessions = new Map<string, ChatSession>();
  appliedPos = '';
  changesSinceSnapshot = 0;
  snapshotting = false;
  /** Per-session queue: concurrent RUNs on one session run one after the other. */
  private readonly locks = new KeyedSerialQueue();

  constructor(id: string, db: number, name: string, createdAt: number, def: AppDefinition) {
    super('chat', id, db, name, createdAt, def);
  }

  get history() {
    return this.def.history!;
  }

  /** Messages kept per session: enough for the context window and for the next summary. */
  private get keep(): number {
    return Math.max(this.history.msg_ctx_cnt, this.history.summary_cnt, 1);
  }

  session(name: string): ChatSession | undefined {
    const s = this.sessions.get(name);
    if (s && this.expired(s, Date.now())) return undefined;
    return s;
  }

  expired(s: ChatSession, now: number): boolean {
    return this.history.ttl > 0 && now - s.lastActive > this.history.ttl * 1000;
  }

  /** Runs `fn` after every earlier call on the same session finished. */
  serialize<T>(session: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(session, fn);
  }

  /** Applies one log entry (live or replayed). */
  apply(pos: string, e: LogEntry): void {
    this.appliedPos = pos;
    this.changesSinceSnapshot++;
    const name = String(e.session ?? DEFAULT_SESSION);
    const op = String(e.op);
    if (op === 'forget') {
      this.sessions.delete(name);
      return;
    }
    let s = this.sessions.get(name);
    const ts = Number(e.ts ?? Date.now());
    if (op === 'turn') {
      if (!s || this.expired(s, ts)) {
        s = { messages: [], sinceSummary: 0, summaryIds: [], lastActive: ts };
        this.sessions.set(name, s);
      }
      s.messages.push({ role: 'user', content: String(e.user) }, { role: 'assistant', content: String(e.assistant) });
      if (s.messages.length > this.keep) s.messages.splice(0, s.messages.length - this.keep);
      s.sinceSummary += 2;
      s.lastActive = ts;
    } else if (op === 'summary' && s) {
      s.summaryIds.push(Number(e.id));
      s.sinceSummary = 0;
    }
  }

  serializeState(): Buffer {
    return Buffer.from(JSON.stringify([...this.sessions.entries()]), 'utf8');
  }

  restoreState(buf: Buffer, pos: string): void {
    const entries = JSON.parse(buf.toString('utf8')) as Array<[string, ChatSession]>;
    this.sessions.clear();
    for (const [k, v] of entries) this.sessions.set(k, v);
    this.appliedPos = pos;
  }
}
