/**
 * Item ids are unsigned 64-bit, as the original module's (`--ID 18446744073709551615`), while
 * index labels are uint32 (hnswlib). IdAliases maps the ids that cannot be their own label.
 *
 * - An id below 2^32 is its own label (identity): every store written before 64-bit ids existed
 *   is exactly this, so old snapshots and logs load unchanged and need no table.
 * - An id of 2^32 or more gets an alias label, taken from the top of the label space downward
 *   (4294967295, 4294967294, ...), skipping labels in use. An id below 2^32 whose own label is
 *   already an alias gets an alias too. Allocation happens when a log entry is applied, in log
 *   order, and depends only on the state before it: replays and other instances get the same
 *   labels. The table (and the allocation cursor) is part of the store snapshot.
 * - Removing an aliased item frees its alias.
 *
 * Ids in the JS world: a number up to Number.MAX_SAFE_INTEGER, a bigint above (ItemId).
 */
import { CommandError } from '../errors.js';

export type ItemId = number | bigint;

export const MAX_LABEL = 0xffff_ffff;
export const MAX_ITEM_ID = 0xffff_ffff_ffff_ffffn;
const MAX_RESP_INTEGER = 0x7fff_ffff_ffff_ffffn;

/** The id from its canonical decimal text (already validated). */
export function itemIdFromText(t: string): ItemId {
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : BigInt(t);
}

/** How an id is replied: an integer, or (above 2^63 − 1, which a RESP integer cannot carry) its decimal text. */
export function idReply(id: ItemId): number | bigint | string {
  return typeof id === 'bigint' && id > MAX_RESP_INTEGER ? id.toString() : id;
}

export interface AliasState {
  /** [label, id as decimal text] */
  aliases: Array<[number, string]>;
  next: number;
}

export class IdAliases {
  private readonly byId = new Map<string, number>();
  private readonly byLabel = new Map<number, string>();
  /** Next label to try for a new alias (going down). */
  private next = MAX_LABEL;

  get size(): number {
    return this.byId.size;
  }

  /** The label of `id` (whether or not an item holds it now), or undefined when it has none. */
  labelOf(id: ItemId): number | undefined {
    // The common case, every store without huge ids: no table, the id is the label.
    if (this.byId.size === 0 && typeof id === 'number') return id <= MAX_LABEL ? id : undefined;
    const a = this.byId.get(String(id));
    if (a !== undefined) return a;
    if (typeof id === 'number' && id <= MAX_LABEL && !this.byLabel.has(id)) return id;
    return undefined;
  }

  /** The id whose item holds `label`. */
  idOf(label: number): ItemId {
    if (this.byLabel.size === 0) return label;
    const id = this.byLabel.get(label);
    return id === undefined ? label : itemIdFromText(id);
  }

  /** The label to add `id` under: its own, else a new alias. `inUse(label)`: an item holds it. */
  labelForAdd(id: ItemId, inUse: (label: number) => boolean): number {
    const l = this.labelOf(id);
    if (l !== undefined) return l;
    let c = this.next;
    while (c >= 0 && (inUse(c) || this.byLabel.has(c))) c--;
    if (c < 0) throw new CommandError('no free label left for this id (the store holds 4294967296 items)');
    this.next = c - 1;
    const key = String(id);
    this.byId.set(key, c);
    this.byLabel.set(c, key);
    return c;
  }

  /** Frees the alias of a removed item (no-op for an identity label). */
  release(label: number): void {
    const id = this.byLabel.get(label);
    if (id === undefined) return;
    this.byLabel.delete(label);
    this.byId.delete(id);
  }

  state(): AliasState | null {
    if (this.byId.size === 0 && this.next === MAX_LABEL) return null;
    return { aliases: [...this.byLabel], next: this.next };
  }

  static fromState(s: AliasState | null | undefined): IdAliases {
    const a = new IdAliases();
    if (!s) return a;
    for (const [label, id] of s.aliases) {
      a.byLabel.set(label, id);
      a.byId.set(id, label);
    }
    a.next = s.next;
    return a;
  }
}
