/**
 * What the server offers command handlers, as an interface so the commands layer does not
 * depend on the server layer. The server (src/server) provides the implementation.
 */
import type { ObjectManager } from '../objects/manager.js';
import type { KV } from '../storage/kv.js';
import type { LlmPolicy } from '../llm/index.js';
import type { AclKeyCache } from './acl-cache.js';

export interface KeyRange {
  first: number;
  /** Negative: counted from the end (-1 = last argument). */
  last: number;
  step: number;
}

export type BackendMode = 'proxy' | 'managed' | 'standalone';

export interface Services {
  readonly mode: BackendMode;
  readonly startedAt: number;
  /** True while LLM objects are loading after a start: LLM.* answers -LOADING meanwhile. */
  readonly loading: boolean;
  /** Why loading has not finished yet, when an attempt failed (e.g. an unwritable --dir). */
  readonly loadError: string | null;
  /** The LLM objects (null until storage is open). */
  readonly objects: ObjectManager | null;
  /** The db of the backing Redis that holds the server's own storage keys. */
  readonly storageDb: number;
  /** Legacy key range of an ordinary Redis command (from the backend's COMMAND table), or undefined. */
  keyRange(name: string): KeyRange | undefined;
  /**
   * Appends one entry to a stream of the backing Redis in db `db` (XADD key MAXLEN ~ maxlen *),
   * on the server's own connection. Rejects when there is no backing Redis.
   */
  xadd(db: number, key: Buffer, maxlen: number, fields: string[]): Promise<void>;
  /** Where caches and rate-limit counters live (the backing Redis, or memory when standalone). */
  readonly kv: KV;
  /** Deadline (ms) of an LLM call when neither --TIMEOUT nor the LLM's own timeout sets one (llm-timeout). */
  readonly llmTimeoutMs: number;
  /** The operator's LLM policy: allowed hosts, env variables an api_key may name, hosts each key may reach. */
  readonly llmPolicy: LlmPolicy;
  /** Default MAXLEN ~ of streams written by LLM.RUN --STREAM. */
  readonly streamMaxlen: number;
  /** --read-only: writes to LLM objects are refused. */
  readonly readOnly: boolean;
  /** ACL DRYRUN on the server's own connection (LLM.* key permissions, see acl.ts); absent without a backing Redis. */
  aclDryRun?(user: string, args: Array<string | Buffer>): Promise<string>;
  readonly aclCache?: AclKeyCache;
  /** Lines of the `# LLM` INFO section (without the header). */
  llmInfo(): string[];
  /** The clients connected to this server (CLIENT LIST, CLIENT KILL and INFO clients describe them). */
  clientConnections(): Iterable<ClientConnectionView>;
}

/** What CLIENT LIST / CLIENT KILL / INFO clients need of one client connection. */
export interface ClientConnectionView {
  readonly addr: string;
  readonly laddr: string;
  readonly backendId: number | null;
  /** Closes the connection (CLIENT KILL of a client that has no link to the backing Redis). */
  close(): void;
}
