/**
 * The registry of LLM objects: every object by (db, key), with a count per db (0 lets the proxy
 * skip key checks for a db entirely). What is registered is what clients see; making it durable is
 * the ObjectManager's (manager.ts), which extends this.
 */
import type { LlmObject } from './objects.js';

const keyOf = (db: number, name: string) => `${db}\u0000${name}`;

export class ObjectRegistry {
  protected readonly objects = new Map<string, LlmObject>();
  private readonly perDb = new Map<number, number>();
  /** Called when the set of objects changes (the follower re-arms its blocking read). */
  onChange: () => void = () => {};

  /** The object at (db, name); an expired one is gone for every reader (and removed: `expired`). */
  get(db: number, name: string): LlmObject | undefined {
    const o = this.objects.get(keyOf(db, name));
    if (o !== undefined && o.expiresAt !== null && o.expiresAt <= Date.now()) {
      this.expired(o);
      return undefined;
    }
    return o;
  }

  /** The object at (db, name) even when it has expired (the write path removing it). */
  protected getRaw(db: number, name: string): LlmObject | undefined {
    return this.objects.get(keyOf(db, name));
  }

  /** An object was found expired: the ObjectManager removes it durably. */
  protected expired(_o: LlmObject): void {}

  /** Number of objects in a db (0 lets the proxy skip key checks entirely). */
  countInDb(db: number): number {
    return this.perDb.get(db) ?? 0;
  }

  get size(): number {
    return this.objects.size;
  }

  *inDb(db: number): IterableIterator<LlmObject> {
    const now = Date.now();
    for (const o of this.objects.values()) if (o.db === db && (o.expiresAt === null || o.expiresAt > now)) yield o;
  }

  all(): IterableIterator<LlmObject> {
    return this.objects.values();
  }

  protected register(obj: LlmObject): void {
    const k = keyOf(obj.db, obj.name);
    const old = this.objects.get(k);
    if (old) old.close();
    else this.perDb.set(obj.db, (this.perDb.get(obj.db) ?? 0) + 1);
    this.objects.set(k, obj);
    this.onChange();
  }

  protected unregister(db: number, name: string): LlmObject | undefined {
    const k = keyOf(db, name);
    const old = this.objects.get(k);
    if (!old) return undefined;
    this.objects.delete(k);
    const n = (this.perDb.get(db) ?? 1) - 1;
    if (n <= 0) this.perDb.delete(db);
    else this.perDb.set(db, n);
    this.onChange();
    return old;
  }


  /** The object with this id, wherever it is (a rename moved it). */
  byId(id: string): LlmObject | undefined {
    for (const o of this.objects.values()) if (o.id === id) return o;
    return undefined;
  }
}
