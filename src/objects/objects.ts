/**
 * LLM objects as keys: LLM providers, prompt/search/chat apps and vector stores.
 * Each object has a stable id (names its storage, survives RENAME), a kind, and a definition
 * (`config`) that is exactly what is persisted in the catalog.
 */
import { CommandError } from '../errors.js';
import { logger } from '../log.js';
import { assertKeyHostAllowed, createProvider, parseRequestFields, parseStoredConfig, sealConfig, unsealedSecrets, type LlmConfig, type LlmProvider } from '../llm/index.js';
import type { SecretBox } from '../util/secret.js';
import { IdAliases, VectorIndex, paramsToJson, parseStoreParams, type ItemId, type VectorIndexParams } from '../vector/index.js';
import { compileTemplate, type Template } from './template.js';
import type { LogEntry, ObjectRecord } from '../storage/types.js';
import type { HistoryParams } from './history.js';
import { AttrIndex } from '../vector/attr-index.js';
import { RwGate } from '../util/rw-gate.js';
import { UsageCounters } from './usage.js';
import { ResponseCache, type CacheConfig } from './cache.js';
import { RateLimiter, type RateLimitConfig } from './ratelimit.js';
import type { KV } from '../storage/kv.js';

export type ObjectKind = 'llm' | 'app' | 'search' | 'chat' | 'store';


/**
 * What TYPE answers for each kind: the original module's type names (its RedisModuleType names),
 * so scripts that check `TYPE` (or `SCAN ... TYPE`) keep working. Every app kind is `LLMAPP-SW`.
 */
export const TYPE_NAMES: Record<ObjectKind, string> = {
  llm: 'LLMMOD-SW',
  app: 'LLMAPP-SW',
  search: 'LLMAPP-SW',
  chat: 'LLMAPP-SW',
  store: 'LLMVEC-SW',
};

/** The descriptive kind of each object, shown by LLM.INFO (`type`), where TYPE cannot tell apps apart. */
export const KIND_NAMES: Record<ObjectKind, string> = {
  llm: 'llm-model',
  app: 'llm-app',
  search: 'llm-search',
  chat: 'llm-chat',
  store: 'llm-vector-store',
};

/** The original's default prompts, verbatim (apps created before keep the prompt they were created with). */
export const DEFAULT_SEARCH_PROMPT =
  'Please answer the following question based on the given context.\nContext: """\n{{context}}\n"""\nQuestion: """\n{{question}}\n"""\nAnswer: ';

export const DEFAULT_CHAT_PROMPT =
  'You are a friendly chatbot. The following is a summary of parts of your chat history with user: """\n{{history}}\n"""';

export abstract class LlmObject {
  abstract readonly kind: ObjectKind;
  constructor(
    readonly id: string,
    public db: number,
    public name: string,
    readonly createdAt: number,
  ) {}
  abstract get config(): unknown;
  /** Release resources (HTTP pools) when the key is overwritten or deleted. */
  close(): void {}
  /** When the key expires (ms since the epoch; EXPIRE and friends), or null: never. Durable in the catalog. */
  expiresAt: number | null = null;
  record(): ObjectRecord {
    const rec: ObjectRecord = { id: this.id, db: this.db, name: this.name, kind: this.kind, config: this.config, createdAt: this.createdAt };
    if (this.expiresAt !== null) rec.expiresAt = this.expiresAt;
    return rec;
  }
}

export class ModelObject extends LlmObject {
  readonly kind = 'llm' as const;
  readonly provider: LlmProvider;
  /** Cache hits, misses and rate-limited runs of apps using this LLM (the provider counts the rest). */
  readonly usage = new UsageCounters();
  /** Secrets its stored definition holds in plaintext (written before they were sealed; loaded records only). */
  unsealedAtRest: string[] = [];
  constructor(
    id: string,
    db: number,
    name: string,
    createdAt: number,
    readonly llm: LlmConfig,
    readonly ratelimit: RateLimitConfig | null,
    /** Seals the secrets of the definition whenever it is written. */
    private readonly secrets: SecretBox,
  ) {
    super(id, db, name, createdAt);
    this.provider = createProvider(llm, () => this.name);
  }
  get config(): unknown {
    const c = sealConfig(this.llm, this.secrets) as Record<string, unknown>;
    return this.ratelimit ? { ...c, ratelimit: this.ratelimit } : c;
  }
  limiterFor(kv: KV): RateLimiter | null {
    if (!this.ratelimit) return null;
    return new RateLimiter(`llm:${this.db}:${this.name}`, this.ratelimit, kv); // by name: follows RENAME
  }
  override close(): void {
    this.provider.close();
  }
  static fromConfig(id: string, db: number, name: string, createdAt: number, config: unknown, secrets: SecretBox): ModelObject {
    const c = config as { type?: string; params?: unknown; ratelimit?: RateLimitConfig };
    // Stored definitions load even if --llm-allow-hosts was narrowed since (each call is still
    // checked), and when their sealed secrets cannot be opened (each call then fails saying why).
    const cfg = parseStoredConfig(c.type, c.params, secrets);
    // A key sealed before keys were bound to hosts goes only to its provider's own host: say so
    // when loading, not only at its first call.
    if ((cfg.type === 'openai' || cfg.type === 'azure_openai') && cfg.legacyKey) {
      try {
        assertKeyHostAllowed(cfg);
      } catch (e) {
        logger.warn({ key: name, db }, `LLM '${name}': ${(e as Error).message}`);
      }
    }
    const obj = new ModelObject(id, db, name, createdAt, cfg, c.ratelimit ?? null, secrets);
    obj.unsealedAtRest = unsealedSecrets(c.params);
    return obj;
  }
}

/** `--LLM` of a vector store: a key, or `{"key": "...", "params": {...}}` (embedding request fields for this store's calls). */
export interface LlmRef {
  key: string;
  params?: Record<string, unknown>;
}

/** `kind`: which request the params are fields of (a store embeds, an app chats). */
export function parseLlmRef(raw: string | undefined, kind: 'chat' | 'embedding' = 'embedding'): LlmRef | null {
  if (raw === undefined) return null;
  const t = raw.trim();
  if (t.startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new CommandError(`failed to parse json: ${(e as Error).message}`);
    }
    const o = v as { key?: unknown; params?: unknown };
    if (typeof o.key !== 'string' || o.key === '') throw new CommandError("--LLM JSON needs a string 'key'");
    if (o.params === undefined) return { key: o.key };
    return { key: o.key, params: parseRequestFields(kind, o.params, "--LLM 'params'") };
  }
  return { key: raw };
}

/** A log entry taken for applying to a store's index, with its writer's callbacks (ObjectManager.apply). */
export interface QueuedApply {
  pos: string;
  entry: LogEntry;
  vector?: Float32Array;
  resolve: (result: ItemId | boolean | undefined) => void;
  reject: (err: unknown) => void;
}

export class StoreObject extends LlmObject {
  readonly kind = 'store' as const;
  /**
   * Log position of the last mutation taken for applying ('' before any): entries are applied in
   * this order through the gate, so this is the position the store will be at once they ran.
   */
  appliedPos = '';
  /** Log position of the last mutation that has run on the index (what a snapshot holds). */
  indexedPos = '';
  /** Mutations run on the index since the last snapshot. */
  changesSinceSnapshot = 0;
  /**
   * Who may use the index when: searches, reads and snapshots take shared turns, each applied
   * mutation an exclusive one, in arrival (= log) order. The graph work itself runs on the thread
   * pool, so the event loop never waits for it (see vector/native.ts).
   */
  readonly gate = new RwGate();
  /** Item attributes (LLM.ADD --ATTRS, LLM.SETATTRS) by index label (see aliases), with their indexes. */
  readonly attrs = new AttrIndex();
  /** The vector engine failed on a logged change (each time the store was reloaded from its log). */
  engineFailures = 0;
  /** A reload from the snapshot and log is running (in an exclusive turn). */
  reloading = false;
  /** Labels of ids that cannot be their own (2^32 and more): ids are 64-bit, labels uint32. */
  aliases = new IdAliases();
  /** A new store waits a full interval (or enough changes) before its first snapshot. */
  lastSnapshotAt = Date.now();
  /** Writes this instance made since the last snapshot (followers leave snapshots to writers). */
  ownWrites = 0;
  lastSnapshotPos = '';
  snapshotting = false;
  /** Dimension promised by an ADD still being written (so a concurrent ADD is checked against it). */
  pendingDim: number | undefined;
  /**
   * Lowest auto id this instance may hint next: above every id seen in commands that arrived,
   * even before they are applied (an explicit --ID still in its embedding call reserves it).
   */
  hintNext = 1;
  /** Entries taken for applying whose exclusive turn has not started (ObjectManager.apply). */
  applyQueue: QueuedApply[] = [];
  /** An exclusive turn for applyQueue is waiting for the gate. */
  applyTurnWaiting = false;
  /** This instance's mutations of the store being logged and applied (manager.logAndSettle). */
  writesInFlight = 0;
  /** Results of entries applied by the log follower or a catch-up, for the writer waiting on them. */
  readonly results = new Map<string, unknown>();
  logLength = 0;

  constructor(
    id: string,
    db: number,
    name: string,
    createdAt: number,
    public index: VectorIndex,
    readonly params: VectorIndexParams,
    readonly llmRef: LlmRef | null,
  ) {
    super(id, db, name, createdAt);
  }

  get config(): unknown {
    return { type: 'hnsw', params: paramsToJson(this.params), llm: this.llmRef };
  }

  /** The dimension new vectors must have, if known. */
  get expectedDim(): number | undefined {
    return this.index.dim ?? this.pendingDim;
  }

  static fromConfig(id: string, db: number, name: string, createdAt: number, config: unknown): StoreObject {
    const c = config as { type?: string; params?: unknown; llm?: LlmRef | null };
    if (c.type !== undefined && c.type !== 'hnsw') throw new CommandError(`unknown vector store: ${c.type}`);
    const params = parseStoreParams(c.params ?? {});
    return new StoreObject(id, db, name, createdAt, new VectorIndex(params), params, c.llm ?? null);
  }
}

export interface AppDefinition {
  /** LLM key the app calls. */
  llm: string | null;
  prompt: string | null;
  params: Record<string, unknown>;
  /** search and chat apps */
  store?: string | null;
  k?: number;
  /** search apps: only items matching this filter become context */
  filter?: string | null;
  /** --CACHE */
  cache?: CacheConfig | null;
  /** --RATELIMIT */
  ratelimit?: RateLimitConfig | null;
  history?: HistoryParams;
}

export class AppObject extends LlmObject {
  readonly template: Template | null;
  readonly usage = new UsageCounters();
  private cache: ResponseCache | null = null;
  cacheFor(kv: KV): ResponseCache | null {
    if (!this.def.cache) return null;
    return (this.cache ??= new ResponseCache(this.id, this.def.cache, kv));
  }
  limiterFor(kv: KV): RateLimiter | null {
    if (!this.def.ratelimit) return null;
    return new RateLimiter(`app:${this.db}:${this.name}`, this.def.ratelimit, kv); // by name: follows RENAME
  }
  constructor(
    readonly kind: 'app' | 'search' | 'chat',
    id: string,
    db: number,
    name: string,
    createdAt: number,
    readonly def: AppDefinition,
  ) {
    super(id, db, name, createdAt);
    this.template = def.prompt === null ? null : compileTemplate(def.prompt);
  }
  get config(): unknown {
    // Features not in use are left out, so definitions read like what was given.
    const { cache, ratelimit, ...rest } = this.def;
    return { ...rest, ...(cache ? { cache } : {}), ...(ratelimit ? { ratelimit } : {}) };
  }
}
