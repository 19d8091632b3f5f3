/**
 * Attribute indexes of a vector store: answer indexable `--FILTER` expressions (filter.ts,
 * FilterNode) as a bitset over the index's slots, without evaluating the expression per item.
 *
 * Per attribute name, maintained incrementally by set/delete:
 * - per-value postings of scalar strings, numbers and booleans, and of array elements;
 * - per-type presence postings (string, number, boolean, array, empty array), for `!=`, bare
 *   fields and `not`;
 * - for numbers, once a range query needs it, a column of values by slot (Float64Array): a
 *   range is then a word-by-word scan of (domain ∧ number presence) comparing column values.
 *   A field with few distinct numbers (or few numbers) answers ranges as a union of postings.
 *
 * Postings are memory-adaptive: one slot is a plain number, a few are a Set, and more than
 * ~1/128 of the slots a bitset (grown as slots grow; back to a Set when it empties below 1/512).
 *
 * Evaluation carries a domain (initially live ∧ [0, slotLimit)): each node yields domain ∧ its
 * matches, and `and` narrows the domain child by child (most selective first), so a range after
 * an equality only scans the equality's matches. `not x` is domain ∧ ¬x. Every returned bitset
 * is new; `live` and earlier results are never modified.
 *
 * Attribute objects are kept by reference (`get`, the iterator): callers must not modify them.
 */
import type { Attrs, FilterLiteral, FilterNode, FilterOp } from './filter.js';
import { type Bitset, forEachBit, hasBit, setBit, wordsFor } from './bitset.js';

/** A bitset posting with its count of set bits. */
class BitPosting {
  constructor(
    public bits: Uint32Array,
    public n: number,
  ) {}
}

/** The slots holding one value: one slot, a few (Set), or many (bitset). */
type Posting = number | Set<number> | BitPosting;

/** Sets are promoted to bitsets above max(PROMOTE_MIN, high / 128) slots... */
const PROMOTE_SHIFT = 7;
const PROMOTE_MIN = 8;
/** ... and bitsets demoted back to Sets below high / 512. */
const DEMOTE_SHIFT = 9;
/**
 * A numeric range is a union of per-value postings (or its complement within the field's numbers)
 * when that is cheaper than the column scan, judged over at most this many distinct values.
 */
const RANGE_UNION_MAX_VALUES = 4096;
/** Relative costs: a column scan per slot, a bitset posting per word, a Set posting per slot. */
const COST_SCAN_SLOT = 1;
const COST_BITS_WORD = 1;
const COST_SET_SLOT = 4;

// Estimated heap sizes (V8, 64-bit with pointer compression), for indexBytes().
const MAP_ENTRY_BYTES = 28;
const SET_BASE_BYTES = 64;
const SET_ENTRY_BYTES = 20;
const BITS_BASE_BYTES = 96;
const FIELD_BASE_BYTES = 400;

function pSize(p: Posting | undefined): number {
  if (p === undefined) return 0;
  if (typeof p === 'number') return 1;
  if (p instanceof Set) return p.size;
  return p.n;
}

function pBytes(p: Posting): number {
  if (typeof p === 'number') return 0;
  if (p instanceof Set) return SET_BASE_BYTES + SET_ENTRY_BYTES * p.size;
  return BITS_BASE_BYTES + p.bits.byteLength;
}

/** The posting with `slot` added (may be the same object, changed). */
function pAdd(p: Posting | undefined, slot: number, high: number): Posting {
  if (p === undefined) return slot;
  if (typeof p === 'number') return p === slot ? p : new Set([p, slot]);
  if (p instanceof Set) {
    p.add(slot);
    if (p.size > Math.max(PROMOTE_MIN, high >>> PROMOTE_SHIFT)) {
      const bits = new Uint32Array(wordsFor(Math.max(high, slot + 1)));
      for (const s of p) setBit(bits, s);
      return new BitPosting(bits, p.size);
    }
    return p;
  }
  const w = slot >>> 5;
  if (w >= p.bits.length) {
    const grown = new Uint32Array(Math.max(w + 1, wordsFor(high), Math.ceil(p.bits.length * 1.5)));
    grown.set(p.bits);
    p.bits = grown;
  }
  const m = 1 << (slot & 31);
  if ((p.bits[w]! & m) === 0) {
    p.bits[w]! |= m;
    p.n++;
  }
  return p;
}

/** The posting with `slot` removed, or undefined when it is then empty. */
function pRemove(p: Posting | undefined, slot: number, high: number): Posting | undefined {
  if (p === undefined) return undefined;
  if (typeof p === 'number') return p === slot ? undefined : p;
  if (p instanceof Set) {
    p.delete(slot);
    if (p.size > 1) return p;
    if (p.size === 0) return undefined;
    return p.values().next().value as number;
  }
  const w = slot >>> 5;
  const m = 1 << (slot & 31);
  if (w < p.bits.length && (p.bits[w]! & m) !== 0) {
    p.bits[w]! &= ~m;
    p.n--;
  }
  if (p.n === 0) return undefined;
  if (p.n < high >>> DEMOTE_SHIFT) {
    const set = new Set<number>();
    forEachBit(p.bits, (s) => set.add(s));
    return set.size === 1 ? set.values().next().value! : set;
  }
  return p;
}

/** out |= p ∧ dom (out and dom have the same length). */
function orInto(out: Bitset, p: Posting | undefined, dom: Bitset): void {
  if (p === undefined) return;
  if (typeof p === 'number') {
    if (hasBit(dom, p)) setBit(out, p);
    return;
  }
  if (p instanceof Set) {
    for (const s of p) if (hasBit(dom, s)) setBit(out, s);
    return;
  }
  const b = p.bits;
  const n = Math.min(b.length, dom.length);
  for (let i = 0; i < n; i++) out[i]! |= b[i]! & dom[i]!;
}

/** out &= ¬p. */
function clearFrom(out: Bitset, p: Posting | undefined): void {
  if (p === undefined) return;
  if (typeof p === 'number') {
    if (p >>> 5 < out.length) out[p >>> 5]! &= ~(1 << (p & 31));
    return;
  }
  if (p instanceof Set) {
    for (const s of p) if (s >>> 5 < out.length) out[s >>> 5]! &= ~(1 << (s & 31));
    return;
  }
  const b = p.bits;
  const n = Math.min(b.length, out.length);
  for (let i = 0; i < n; i++) out[i]! &= ~b[i]!;
}

function isEmpty(b: Bitset): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** The indexes of one attribute name. */
class FieldIndex {
  /** Items holding this attribute (any value), to drop the field when it reaches 0. */
  count = 0;
  readonly strs = new Map<string, Posting>();
  readonly nums = new Map<number, Posting>();
  /** Boolean postings: [false, true]. */
  readonly bools: [Posting | undefined, Posting | undefined] = [undefined, undefined];
  /** Array elements (keyed by the element, SameValueZero like Array.prototype.includes). */
  readonly elems = new Map<unknown, Posting>();
  strP: Posting | undefined;
  numP: Posting | undefined;
  boolP: Posting | undefined;
  arrP: Posting | undefined;
  emptyArrP: Posting | undefined;
  /** Number values by slot (valid where numP has the slot), built by the first range that needs it. */
  col: Float64Array | null = null;

  add(slot: number, v: unknown, high: number): void {
    this.count++;
    if (typeof v === 'string') {
      this.strs.set(v, pAdd(this.strs.get(v), slot, high));
      this.strP = pAdd(this.strP, slot, high);
    } else if (typeof v === 'number') {
      this.nums.set(v, pAdd(this.nums.get(v), slot, high));
      this.numP = pAdd(this.numP, slot, high);
      if (this.col !== null) this.colPut(slot, v, high);
    } else if (typeof v === 'boolean') {
      const i = v ? 1 : 0;
      this.bools[i] = pAdd(this.bools[i], slot, high);
      this.boolP = pAdd(this.boolP, slot, high);
    } else if (Array.isArray(v)) {
      this.arrP = pAdd(this.arrP, slot, high);
      if (v.length === 0) this.emptyArrP = pAdd(this.emptyArrP, slot, high);
      for (const e of new Set<unknown>(v)) this.elems.set(e, pAdd(this.elems.get(e), slot, high));
    }
    // Other values (null, objects) match no comparison: only `not` sees them, via the domain.
  }

  remove(slot: number, v: unknown, high: number): void {
    this.count--;
    if (typeof v === 'string') {
      setOrDelete(this.strs, v, pRemove(this.strs.get(v), slot, high));
      this.strP = pRemove(this.strP, slot, high);
    } else if (typeof v === 'number') {
      setOrDelete(this.nums, v, pRemove(this.nums.get(v), slot, high));
      this.numP = pRemove(this.numP, slot, high);
    } else if (typeof v === 'boolean') {
      const i = v ? 1 : 0;
      this.bools[i] = pRemove(this.bools[i], slot, high);
      this.boolP = pRemove(this.boolP, slot, high);
    } else if (Array.isArray(v)) {
      this.arrP = pRemove(this.arrP, slot, high);
      if (v.length === 0) this.emptyArrP = pRemove(this.emptyArrP, slot, high);
      for (const e of new Set<unknown>(v)) setOrDelete(this.elems, e, pRemove(this.elems.get(e), slot, high));
    }
  }

  private colPut(slot: number, v: number, high: number): void {
    let col = this.col!;
    if (slot >= col.length) {
      const grown = new Float64Array(roundUp32(Math.max(slot + 1, high, Math.ceil(col.length * 1.5))));
      grown.set(col);
      this.col = col = grown;
    }
    col[slot] = v;
  }

  /** The number column, built from the postings on first use. */
  column(high: number): Float64Array {
    if (this.col === null) {
      const col = new Float64Array(roundUp32(Math.max(high, 32)));
      for (const [v, p] of this.nums) {
        if (typeof p === 'number') col[p] = v;
        else if (p instanceof Set) for (const s of p) col[s] = v;
        else forEachBit(p.bits, (s) => (col[s] = v));
      }
      this.col = col;
    }
    return this.col;
  }

  bytes(): number {
    let n = FIELD_BASE_BYTES;
    for (const m of [this.strs, this.nums, this.elems] as Map<unknown, Posting>[]) {
      n += m.size * MAP_ENTRY_BYTES;
      for (const p of m.values()) n += pBytes(p);
    }
    for (const p of [this.bools[0], this.bools[1], this.strP, this.numP, this.boolP, this.arrP, this.emptyArrP]) if (p !== undefined) n += pBytes(p);
    if (this.col !== null) n += this.col.byteLength;
    return n;
  }
}

const roundUp32 = (n: number): number => (n + 31) & ~31;

function setOrDelete<K>(m: Map<K, Posting>, k: K, p: Posting | undefined): void {
  if (p === undefined) m.delete(k);
  else m.set(k, p);
}

interface Entry {
  /** The item's slot, or -1 when not indexed (no valid slot, or the slot was taken by another item). */
  slot: number;
  attrs: Attrs;
}

const ownNames = (a: Attrs): string[] => Object.getOwnPropertyNames(a);
const ownValue = (a: Attrs, k: string): unknown => (a as Record<string, unknown>)[k];

const f64 = new Float64Array(1);
const i64 = new BigInt64Array(f64.buffer);

/** The least double above x (x itself for NaN and +Infinity). */
function nextUp(x: number): number {
  if (Number.isNaN(x) || x === Infinity) return x;
  if (x === 0) return Number.MIN_VALUE;
  f64[0] = x;
  i64[0] = i64[0]! + (x > 0 ? 1n : -1n);
  return f64[0]!;
}

/**
 * A numeric range op as inclusive bounds, lo <= x <= hi, or null when nothing matches: between two
 * adjacent doubles there is none, so `x > v` is `x >= nextUp(v)`. NaN is in no range (as with the
 * operators).
 */
function rangeOf(op: FilterOp, v: number): { lo: number; hi: number } | null {
  if (Number.isNaN(v)) return null;
  switch (op) {
    case '<':
      return v === -Infinity ? null : { lo: -Infinity, hi: -nextUp(-v) };
    case '<=':
      return { lo: -Infinity, hi: v };
    case '>':
      return v === Infinity ? null : { lo: nextUp(v), hi: Infinity };
    default:
      return { lo: v, hi: Infinity };
  }
}

function cmpLit(x: number | string, op: FilterOp, v: number | string): boolean {
  switch (op) {
    case '<':
      return x < v;
    case '<=':
      return x <= v;
    case '>':
      return x > v;
    default:
      return x >= v;
  }
}

/** Whether the node tree can be answered from indexes (no opaque node, nothing malformed). */
function indexable(n: FilterNode, depth = 0): boolean {
  if (depth > 10_000 || n === null || typeof n !== 'object') return false;
  switch (n.kind) {
    case 'const':
      return true;
    case 'and':
    case 'or':
      return Array.isArray(n.children) && n.children.every((c) => indexable(c, depth + 1));
    case 'not':
      return indexable(n.child, depth + 1);
    case 'truthy':
      return typeof n.field === 'string';
    case 'cmp':
      return typeof n.field === 'string' && typeof n.op === 'string';
    case 'in':
      return typeof n.field === 'string' && Array.isArray(n.values);
    case 'contains':
      return typeof n.field === 'string';
    default:
      return false;
  }
}

function fieldsOf(n: FilterNode, out: Set<string>): void {
  switch (n.kind) {
    case 'and':
    case 'or':
      for (const c of n.children) fieldsOf(c, out);
      return;
    case 'not':
      fieldsOf(n.child, out);
      return;
    case 'truthy':
    case 'cmp':
    case 'in':
    case 'contains':
      out.add(n.field);
      return;
    default:
      return;
  }
}

/** A numeric range lo <= x <= hi of one field: the ranges on a field under one `and`, merged. */
type NumRange = { kind: 'numrange'; field: string; lo: number; hi: number };
type EvalNode = FilterNode | NumRange;

const isNumRange = (n: EvalNode): n is Extract<FilterNode, { kind: 'cmp' }> & { value: number } =>
  n.kind === 'cmp' && typeof n.value === 'number' && (n.op === '<' || n.op === '<=' || n.op === '>' || n.op === '>=');

/** `and` operands with the numeric ranges on a field merged into one (`p >= 1 and p < 5`: one scan). */
function mergeRanges(children: EvalNode[]): EvalNode[] {
  let ranges: Map<string, NumRange> | undefined;
  const out: EvalNode[] = [];
  for (const c of children) {
    if (!isNumRange(c)) {
      out.push(c);
      continue;
    }
    const r = rangeOf(c.op, c.value);
    const bounds = r ?? { lo: Infinity, hi: -Infinity }; // nothing matches
    ranges ??= new Map();
    const prev = ranges.get(c.field);
    if (prev === undefined) {
      const nr: NumRange = { kind: 'numrange', field: c.field, lo: bounds.lo, hi: bounds.hi };
      ranges.set(c.field, nr);
      out.push(nr);
    } else {
      prev.lo = Math.max(prev.lo, bounds.lo);
      prev.hi = Math.min(prev.hi, bounds.hi);
    }
  }
  return out;
}

export class AttrIndex {
  private readonly items = new Map<number, Entry>();
  private readonly fields = new Map<string, FieldIndex>();
  /** The label at each indexed slot (-1: none). */
  private slotLabel = new Float64Array(0);
  /** One past the highest slot ever indexed (the posting thresholds are relative to it). */
  private high = 0;

  /** Items with attributes. */
  get size(): number {
    return this.items.size;
  }

  /** The item's attributes (labels are the index's uint32 item ids). */
  get(label: number): Attrs | undefined {
    return this.items.get(label)?.attrs;
  }

  /** Sets (replaces) the attributes of item `label` living at `slot`; undefined or {} clears them. */
  set(label: number, slot: number, attrs: Attrs | undefined): void {
    const old = this.items.get(label);
    if (old !== undefined) {
      this.unindex(label, old);
      this.items.delete(label);
    }
    if (attrs === undefined || attrs === null || typeof attrs !== 'object' || ownNames(attrs).length === 0) return;
    const e: Entry = { slot: -1, attrs };
    this.items.set(label, e);
    if (!Number.isInteger(slot) || slot < 0 || slot > 0x7fffffff) return;
    if (slot >= this.slotLabel.length) {
      const grown = new Float64Array(Math.max(slot + 1, 16, Math.ceil(this.slotLabel.length * 1.5))).fill(-1);
      grown.set(this.slotLabel);
      this.slotLabel = grown;
    }
    const other = this.slotLabel[slot]!;
    if (other >= 0 && other !== label) {
      // The slot was reused without a delete: the previous item keeps its attributes, unindexed.
      const o = this.items.get(other);
      if (o !== undefined && o.slot === slot) this.unindex(other, o);
    }
    if (slot >= this.high) this.high = slot + 1;
    e.slot = slot;
    this.slotLabel[slot] = label;
    for (const k of ownNames(attrs)) {
      let f = this.fields.get(k);
      if (f === undefined) this.fields.set(k, (f = new FieldIndex()));
      f.add(slot, ownValue(attrs, k), this.high);
    }
  }

  /** Removes the item's attributes (its recorded slot is used; `slot` is the caller's view of it). */
  delete(label: number, slot: number): void {
    void slot;
    const e = this.items.get(label);
    if (e === undefined) return;
    this.unindex(label, e);
    this.items.delete(label);
  }

  clear(): void {
    this.items.clear();
    this.fields.clear();
    this.slotLabel = new Float64Array(0);
    this.high = 0;
  }

  /** [label, attrs] pairs (snapshots serialise these). */
  *[Symbol.iterator](): IterableIterator<[number, Attrs]> {
    for (const [label, e] of this.items) yield [label, e.attrs];
  }

  /** Estimated bytes held by the indexes (postings, columns, the slot table; not the attribute objects). */
  indexBytes(): number {
    let n = this.slotLabel.byteLength + this.items.size * 16; // + the slot field of each entry
    for (const f of this.fields.values()) n += MAP_ENTRY_BYTES + f.bytes();
    return n;
  }

  /**
   * The slots matching `node` among `live` (a bitset of live slots; slotLimit = one past the
   * highest slot), or null when the expression is not indexable (contains `opaque`).
   * `index` names what answered, for --EXPLAIN: "attr:" and the attribute names used
   * ("attr:tenant,year"), or "attr:const" for an expression without attributes.
   */
  match(node: FilterNode, live: Bitset, slotLimit: number): { bits: Bitset; index: string } | null {
    try {
      if (!indexable(node)) return null;
      const limit = Number.isFinite(slotLimit) && slotLimit > 0 ? Math.min(Math.floor(slotLimit), 2 ** 31) : 0;
      const words = wordsFor(limit);
      const tail = limit & 31 ? (1 << (limit & 31)) - 1 : -1;
      // The domain: live cut to slotLimit (live itself when it already is; it is only read).
      let dom: Bitset = live;
      if (live.length !== words || (words > 0 && (live[words - 1]! & ~tail) !== 0)) {
        dom = new Uint32Array(words);
        dom.set(live.length > words ? live.subarray(0, words) : live);
        if (words > 0) dom[words - 1]! &= tail;
      }
      const bits = this.eval(node, dom);
      const names = new Set<string>();
      fieldsOf(node, names);
      return { bits, index: names.size > 0 ? `attr:${[...names].join(',')}` : 'attr:const' };
    } catch {
      return null; // the caller then evaluates the predicate per item
    }
  }

  private unindex(label: number, e: Entry): void {
    const slot = e.slot;
    if (slot < 0) return;
    for (const k of ownNames(e.attrs)) {
      const f = this.fields.get(k);
      if (f === undefined) continue;
      f.remove(slot, ownValue(e.attrs, k), this.high);
      if (f.count <= 0) this.fields.delete(k);
    }
    if (this.slotLabel[slot] === label) this.slotLabel[slot] = -1;
    e.slot = -1;
  }

  /** dom ∧ [node], always a new bitset of dom's size (dom is only read). */
  private eval(n: EvalNode, dom: Bitset): Bitset {
    switch (n.kind) {
      case 'const':
        return n.value ? dom.slice() : new Uint32Array(dom.length);
      case 'and': {
        const kids = mergeRanges(n.children).map((c) => ({ c, est: this.estimate(c, dom.length << 5) }));
        kids.sort((a, b) => a.est - b.est);
        if (kids.length === 0) return dom.slice();
        let cur = dom;
        for (const { c } of kids) {
          cur = this.eval(c, cur); // always a new bitset: dom is never returned
          if (isEmpty(cur)) break;
        }
        return cur;
      }
      case 'or': {
        const out = new Uint32Array(dom.length);
        for (const c of n.children) {
          const r = this.eval(c, dom);
          for (let i = 0; i < out.length; i++) out[i]! |= r[i]!;
        }
        return out;
      }
      case 'not': {
        const out = dom.slice();
        const r = this.eval(n.child, dom);
        for (let i = 0; i < out.length; i++) out[i]! &= ~r[i]!;
        return out;
      }
      case 'numrange': {
        const out = new Uint32Array(dom.length);
        const f = this.fields.get(n.field);
        if (f !== undefined && n.lo <= n.hi) this.numRange(out, f, n.lo, n.hi, dom);
        return out;
      }
      default:
        return this.leaf(n, dom);
    }
  }

  /** An upper bound of a node's matches, to evaluate the most selective `and` operand first. */
  private estimate(n: EvalNode, all: number): number {
    const f = 'field' in n ? this.fields.get(n.field) : undefined;
    switch (n.kind) {
      case 'numrange':
        return pSize(f?.numP) * 1.5;
      case 'const':
        return n.value ? all : 0;
      case 'and':
        return Math.min(all, ...n.children.map((c) => this.estimate(c, all)));
      case 'or':
        return n.children.reduce((s, c) => s + this.estimate(c, all), 0);
      case 'not':
        return all;
      case 'truthy':
        return f?.count ?? 0;
      case 'contains':
        return pSize(f?.elems.get(n.value));
      case 'in':
        return f === undefined ? 0 : n.values.reduce<number>((s, v) => s + this.valueSize(f, v), 0);
      case 'cmp': {
        if (f === undefined) return 0;
        const v = n.value;
        if (n.op === '==') return this.valueSize(f, v) + (typeof v === 'string' ? pSize(f.elems.get(v)) : 0);
        const typed = typeof v === 'string' ? pSize(f.strP) + (n.op === '!=' ? pSize(f.arrP) : 0) : typeof v === 'number' ? pSize(f.numP) : typeof v === 'boolean' && n.op === '!=' ? pSize(f.boolP) : 0;
        // ranges cost a comparison per candidate: after equalities of the same size
        return n.op === '!=' ? typed : typed * 1.5;
      }
      default:
        return all;
    }
  }

  /** The posting size of a scalar value (not array elements). */
  private valueSize(f: FieldIndex, v: unknown): number {
    if (typeof v === 'string') return pSize(f.strs.get(v));
    if (typeof v === 'number') return pSize(f.nums.get(v));
    if (typeof v === 'boolean') return pSize(f.bools[v ? 1 : 0]);
    return 0;
  }

  private scalarPosting(f: FieldIndex, v: unknown): Posting | undefined {
    if (typeof v === 'string') return f.strs.get(v);
    if (typeof v === 'number') return f.nums.get(v);
    if (typeof v === 'boolean') return f.bools[v ? 1 : 0];
    return undefined;
  }

  private leaf(n: FilterNode, dom: Bitset): Bitset {
    const out = new Uint32Array(dom.length);
    if (!('field' in n)) return out;
    const f = this.fields.get(n.field);
    if (f === undefined) return out;
    switch (n.kind) {
      case 'truthy': {
        orInto(out, f.bools[1], dom);
        this.orMinus(out, f.numP, f.nums.get(0), dom);
        this.orMinus(out, f.strP, f.strs.get(''), dom);
        this.orMinus(out, f.arrP, f.emptyArrP, dom);
        return out;
      }
      case 'contains':
        orInto(out, f.elems.get(n.value), dom);
        return out;
      case 'in':
        // List membership with SameValueZero on scalars (an array value is never in a list).
        for (const v of new Set<unknown>(n.values)) orInto(out, this.scalarPosting(f, v), dom);
        return out;
      case 'cmp':
        this.cmp(out, f, n.op, n.value, dom);
        return out;
      default:
        return out;
    }
  }

  /** out |= dom ∧ p ∧ ¬minus. */
  private orMinus(out: Bitset, p: Posting | undefined, minus: Posting | undefined, dom: Bitset): void {
    if (p === undefined) return;
    if (minus === undefined) return orInto(out, p, dom);
    const t = new Uint32Array(dom.length);
    orInto(t, p, dom);
    clearFrom(t, minus);
    for (let i = 0; i < out.length; i++) out[i]! |= t[i]!;
  }

  private cmp(out: Bitset, f: FieldIndex, op: FilterOp, v: FilterLiteral, dom: Bitset): void {
    const t = typeof v;
    if (t !== 'string' && t !== 'number' && t !== 'boolean') return;
    if (op === '==') {
      orInto(out, this.scalarPosting(f, v), dom);
      if (t === 'string') orInto(out, f.elems.get(v), dom); // an array attribute == "s": contains
      return;
    }
    if (op === '!=') {
      if (t === 'string') {
        this.orMinus(out, f.strP, f.strs.get(v as string), dom);
        this.orMinus(out, f.arrP, f.elems.get(v), dom);
      } else if (t === 'number') this.orMinus(out, f.numP, f.nums.get(v as number), dom);
      else this.orMinus(out, f.boolP, f.bools[v ? 1 : 0], dom);
      return;
    }
    if (op !== '<' && op !== '<=' && op !== '>' && op !== '>=') return;
    if (t === 'string') {
      // Strings compare with strings only: a union over the field's distinct strings.
      for (const [k, p] of f.strs) if (cmpLit(k, op, v as string)) orInto(out, p, dom);
      return;
    }
    if (t !== 'number') return; // booleans are not ordered: never true
    const r = rangeOf(op, v as number);
    if (r !== null) this.numRange(out, f, r.lo, r.hi, dom);
  }

  /**
   * out |= dom ∧ {slots whose value is a number in [lo, hi]}: the cheapest of the union of the
   * matching values' postings, its complement among the field's numbers, and the column scan
   * (which only visits words where dom and the field's numbers meet).
   */
  private numRange(out: Bitset, f: FieldIndex, lo: number, hi: number, dom: Bitset): void {
    const np = f.numP;
    if (np === undefined) return;
    const words = dom.length;
    let scanCost = Infinity;
    if (np instanceof BitPosting) {
      if (f.nums.size > RANGE_UNION_MAX_VALUES) return scanRange(out, dom, np.bits, f.column(this.high), lo, hi);
      const b = np.bits;
      const m = Math.min(words, b.length);
      // 32 comparisons per word with candidates, fewer for a word with a few (see scanRange)
      let slots = 0;
      for (let i = 0; i < m; i++) {
        const v = dom[i]! & b[i]!;
        if (v !== 0) {
          const c = bitCount(v);
          slots += c > SPARSE_WORD ? 32 : 3 * c;
        }
      }
      scanCost = COST_SCAN_SLOT * slots;
    }
    let inCost = 0;
    let outCost = COST_BITS_WORD * words; // the complement starts from dom ∧ numbers
    for (const [k, p] of f.nums) {
      const c = typeof p === 'number' ? COST_SET_SLOT : p instanceof Set ? COST_SET_SLOT * p.size : COST_BITS_WORD * words;
      if (k >= lo && k <= hi) inCost += c;
      else outCost += c;
    }
    if (np instanceof BitPosting && scanCost < inCost && scanCost < outCost) return scanRange(out, dom, np.bits, f.column(this.high), lo, hi);
    if (inCost <= outCost) {
      for (const [k, p] of f.nums) if (k >= lo && k <= hi) orInto(out, p, dom);
      return;
    }
    const t = new Uint32Array(words);
    orInto(t, np, dom);
    for (const [k, p] of f.nums) if (!(k >= lo && k <= hi)) clearFrom(t, p);
    for (let i = 0; i < words; i++) out[i]! |= t[i]!;
  }
}

/** Set bits of a 32-bit word. */
function bitCount(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Words with at most this many candidates are scanned candidate by candidate, others whole. */
const SPARSE_WORD = 6;

/**
 * out |= dom ∧ present ∧ {s : lo <= col[s] <= hi}, word by word, branch-free: 32 comparisons in
 * a row for a word with many candidates, one per candidate otherwise (the column's length is a
 * multiple of 32; stale values of absent slots are masked out). NaN is in no range.
 */
function scanRange(out: Bitset, dom: Bitset, present: Uint32Array, col: Float64Array, lo: number, hi: number): void {
  const n = Math.min(dom.length, present.length, col.length >>> 5);
  for (let w = 0; w < n; w++) {
    const v = dom[w]! & present[w]!;
    if (v === 0) continue;
    const base = w << 5;
    let r = 0;
    if (bitCount(v) > SPARSE_WORD) {
      if (hi === Infinity) for (let i = 0; i < 32; i++) r |= +(col[base + i]! >= lo) << i;
      else if (lo === -Infinity) for (let i = 0; i < 32; i++) r |= +(col[base + i]! <= hi) << i;
      else
        for (let i = 0; i < 32; i++) {
          const c = col[base + i]!;
          r |= (+(c >= lo) & +(c <= hi)) << i;
        }
    } else {
      let x = v;
      while (x !== 0) {
        const t = x & -x;
        const c = col[base + 31 - Math.clz32(t)]!;
        r |= t & -(+(c >= lo) & +(c <= hi));
        x ^= t;
      }
    }
    out[w]! |= r & v;
  }
}

/** For tests: the representation of the posting of `value` in `field` ('number' | 'set' | 'bits'), or undefined. */
export function postingKind(index: AttrIndex, field: string, value: FilterLiteral): 'number' | 'set' | 'bits' | undefined {
  const f = (index as unknown as { fields: Map<string, FieldIndex> }).fields.get(field);
  if (f === undefined) return undefined;
  const p = typeof value === 'string' ? f.strs.get(value) : typeof value === 'number' ? f.nums.get(value) : f.bools[value ? 1 : 0];
  if (p === undefined) return undefined;
  return typeof p === 'number' ? 'number' : p instanceof Set ? 'set' : 'bits';
}
