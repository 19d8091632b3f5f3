/**
 * Response caches of an app (`--CACHE json` at create time):
 *
 *   {"exact": true, "semantic": {"threshold": 0.92, "llm": "emb"}, "ttl": 3600, "extend_on_hit": false}
 *
 * - exact: keyed by a SHA-256 of the LLM (type, endpoint, model, request parameters) and the full
 *   rendered messages — never by the raw input alone. Checked first.
 * - semantic: an HNSW index (cosine) of embeddings of the prompt text; a hit needs cosine
 *   similarity ≥ threshold, on one documented scale: similarity = cos(a, b) clamped to [0, 1]
 *   (1 identical direction, 0 orthogonal or opposite). 0 is a valid threshold (any entry hits);
 *   1 means only the same direction. Embeddings come from `semantic.llm` (default: the app's LLM).
 * - scope: every entry belongs to a scope (`LLM.RUN --SCOPE s`, default ""); a lookup only ever
 *   sees its own scope — a separate key space and a separate index, not a trick in the text.
 * - ttl (seconds, 0 = none): entries are keys of the backing Redis with that TTL, so an expired
 *   entry is gone — also across restarts — and is never served; a semantic hit is re-read from
 *   its key before it is served. `extend_on_hit` resets the TTL on every hit.
 * - Only complete answers are stored: errors, aborted calls and finish_reason "length" are not.
 *
 * Keys (hidden from clients like all `__llm__:` keys): `__llm__:{cache:<appId>}:e:<scope>:<sha>`,
 * `__llm__:{cache:<appId>}:s:<scope>:<n>` and the index `__llm__:{cache:<appId>}:idx` (member →
 * expiry), which lets the semantic index be rebuilt after a restart and the cache be cleared.
 */
import { createHash, randomBytes } from 'node:crypto';
import { CommandError } from '../errors.js';
import { VectorIndex } from '../vector/index.js';
import type { KV } from '../storage/kv.js';

export interface CacheConfig {
  exact: boolean;
  semantic: { threshold: number; llm: string | null } | null;
  ttl: number;
  extend_on_hit: boolean;
}

export function parseCacheConfig(v: unknown): CacheConfig | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new CommandError('--CACHE must be a JSON object');
  const o = v as Record<string, unknown>;
  const bad = (m: string) => new CommandError(`invalid cache config: ${m}`);
  for (const k of Object.keys(o)) if (!['exact', 'semantic', 'ttl', 'extend_on_hit'].includes(k)) throw bad(`unknown field '${k}'`);
  const cfg: CacheConfig = { exact: false, semantic: null, ttl: 0, extend_on_hit: false };
  if (o.exact !== undefined) {
    if (typeof o.exact !== 'boolean') throw bad("'exact' must be true or false");
    cfg.exact = o.exact;
  }
  if (o.semantic !== undefined && o.semantic !== false && o.semantic !== null) {
    const s = o.semantic as Record<string, unknown>;
    if (typeof s !== 'object' || Array.isArray(s)) throw bad("'semantic' must be an object like {\"threshold\":0.9}");
    const t = s.threshold;
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > 1) throw bad("'semantic.threshold' must be a cosine similarity in [0, 1]");
    if (s.llm !== undefined && typeof s.llm !== 'string') throw bad("'semantic.llm' must be a key name");
    cfg.semantic = { threshold: t, llm: (s.llm as string | undefined) ?? null };
  }
  if (o.ttl !== undefined) {
    if (typeof o.ttl !== 'number' || !Number.isInteger(o.ttl) || o.ttl < 0 || o.ttl > 10 * 365 * 86400) throw bad("'ttl' must be whole seconds (0 = no expiry)");
    cfg.ttl = o.ttl;
  }
  if (o.extend_on_hit !== undefined) {
    if (typeof o.extend_on_hit !== 'boolean') throw bad("'extend_on_hit' must be true or false");
    cfg.extend_on_hit = o.extend_on_hit;
  }
  if (!cfg.exact && !cfg.semantic) throw bad("enable 'exact' and/or 'semantic'");
  return cfg;
}

export interface CachedAnswer {
  text: string;
  finishReason: string | null;
  usage: { promptTokens: number; completionTokens: number };
}

/** cosine distance (1 − cos) → similarity on [0, 1] */
export const similarityOf = (cosineDistance: number) => Math.min(1, Math.max(0, 1 - cosineDistance));

interface SemanticScope {
  index: VectorIndex;
  keys: Map<number, string>;
}

export class ResponseCache {
  private readonly prefix: string;
  private readonly idxKey: string;
  private semantic = new Map<string, SemanticScope>();
  private loaded: Promise<void> | null = null;

  constructor(appId: string, readonly cfg: CacheConfig, private readonly kv: KV) {
    this.prefix = `__llm__:{cache:${appId}}`;
    this.idxKey = `${this.prefix}:idx`;
  }

  private get ttlMs(): number {
    return this.cfg.ttl * 1000;
  }

  private expiry(): number {
    return this.cfg.ttl > 0 ? Date.now() + this.ttlMs : Number.MAX_SAFE_INTEGER;
  }

  static exactKeyMaterial(llm: unknown, messages: unknown): string {
    return createHash('sha256').update(JSON.stringify({ llm, messages })).digest('hex');
  }

  private scopeTag(scope: string): string {
    return createHash('sha256').update(scope).digest('hex').slice(0, 16);
  }

  async getExact(scope: string, material: string): Promise<CachedAnswer | null> {
    const key = `${this.prefix}:e:${this.scopeTag(scope)}:${material}`;
    const raw = await this.kv.get(key);
    if (raw === null) return null;
    if (this.cfg.extend_on_hit && this.cfg.ttl > 0) await this.touch(key);
    return JSON.parse(raw) as CachedAnswer;
  }

  async putExact(scope: string, material: string, answer: CachedAnswer): Promise<void> {
    const key = `${this.prefix}:e:${this.scopeTag(scope)}:${material}`;
    await this.kv.set(key, JSON.stringify(answer), this.ttlMs);
    await this.kv.zadd(this.idxKey, this.expiry(), key);
  }

  private async touch(key: string): Promise<void> {
    await this.kv.pexpire(key, this.ttlMs);
    await this.kv.zadd(this.idxKey, this.expiry(), key);
  }

  /** Rebuilds the semantic indexes from the live entries (after a restart). */
  private load(): Promise<void> {
    this.loaded ??= (async () => {
      const keys = await this.kv.zrangeByScore(this.idxKey, Date.now(), Infinity);
      for (const key of keys) {
        if (!key.includes(':s:')) continue;
        const raw = await this.kv.get(key);
        if (raw === null) continue;
        const e = JSON.parse(raw) as { scope: string; vec: string };
        const b = Buffer.from(e.vec, 'base64');
        this.addToIndex(e.scope, key, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
      }
    })();
    return this.loaded;
  }

  private scopeIndex(scope: string): SemanticScope {
    let s = this.semantic.get(scope);
    if (!s) {
      s = { index: new VectorIndex({ space: 'cosine', maxElements: 1024 }), keys: new Map() };
      this.semantic.set(scope, s);
    }
    return s;
  }

  private addToIndex(scope: string, key: string, vec: Float32Array): void {
    if (vec.length === 0 || vec.every((x) => x === 0)) return;
    const s = this.scopeIndex(scope);
    if (s.index.dim !== undefined && s.index.dim !== vec.length) return;
    const id = s.index.nextId();
    s.index.add(id, vec, '');
    s.keys.set(id, key);
  }

  /** The best live entry of `scope` with similarity ≥ threshold, or null. */
  async getSemantic(scope: string, vec: Float32Array): Promise<(CachedAnswer & { similarity: number }) | null> {
    await this.load();
    const s = this.semantic.get(scope);
    if (!s || s.index.size === 0 || s.index.dim !== vec.length || vec.every((x) => x === 0)) return null;
    const hits = s.index.knn(vec, Math.min(5, s.index.size));
    for (const h of hits) {
      const similarity = similarityOf(h.distance);
      if (similarity < this.cfg.semantic!.threshold) break;
      const key = s.keys.get(h.id)!;
      const raw = await this.kv.get(key);
      if (raw === null) {
        // Expired in Redis: drop it here too; it is never served.
        s.index.remove(h.id);
        s.keys.delete(h.id);
        continue;
      }
      if (this.cfg.extend_on_hit && this.cfg.ttl > 0) await this.touch(key);
      const e = JSON.parse(raw) as CachedAnswer;
      return { text: e.text, finishReason: e.finishReason, usage: e.usage, similarity };
    }
    return null;
  }

  async putSemantic(scope: string, vec: Float32Array, answer: CachedAnswer): Promise<void> {
    await this.load();
    const key = `${this.prefix}:s:${this.scopeTag(scope)}:${randomBytes(8).toString('hex')}`;
    const value = { ...answer, scope, vec: Buffer.from(vec.buffer, vec.byteOffset, vec.byteLength).toString('base64') };
    await this.kv.set(key, JSON.stringify(value), this.ttlMs);
    await this.kv.zadd(this.idxKey, this.expiry(), key);
    this.addToIndex(scope, key, vec);
  }

  /** Removes every entry (or those of one scope). Returns how many were removed. */
  async clear(scope?: string): Promise<number> {
    const keys = await this.kv.zrangeByScore(this.idxKey, -Infinity, Infinity);
    const tag = scope === undefined ? null : `:${this.scopeTag(scope)}:`;
    const victims = keys.filter((k) => tag === null || k.includes(tag));
    const n = victims.length ? await this.kv.del(victims) : 0;
    for (const k of victims) await this.kv.zrem(this.idxKey, k);
    if (scope === undefined) this.semantic.clear();
    else this.semantic.delete(scope);
    return n;
  }
}
