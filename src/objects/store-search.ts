/**
 * Reading a vector store: nearest-neighbour queries (LLM.KNN, search apps, chat summaries) and
 * item reads (LLM.GET, DUMP). Each runs in a shared turn of the store's gate, so it sees the
 * index between two applied mutations, never during one; the searches themselves run on the
 * engine's searcher threads (VectorIndex.knnExplainAsync).
 *
 * Filters become a matching set (a bitset over slots) before the search: from the store's
 * attribute indexes when the expression is indexable (vector/attr-index.ts), else by evaluating
 * the expression once per item, in slices that let other clients in between.
 */
import type { Bitset } from '../vector/bitset.js';
import { and, emptyBits, setBit } from '../vector/bitset.js';
import type { Attrs, FilterPlan } from '../vector/filter.js';
import type { KnnExplain } from '../vector/index.js';
import type { StoreObject } from './objects.js';

export interface StoreQuery {
  k: number;
  ef?: number;
  /** Compiled filter expressions (all must match). */
  filters?: FilterPlan[];
  /** Only these index labels (chat summaries). */
  labels?: Iterable<number>;
  /** Also read each hit's text. */
  withData?: boolean;
}

export interface StoreHits {
  explain: KnnExplain;
  /** Each hit's text, with withData. */
  data: string[] | null;
}

/** Items evaluated per slice when a filter has no index (then other clients get a turn). */
const SCAN_SLICE = 8192;

export function searchStore(store: StoreObject, vector: Float32Array, q: StoreQuery): Promise<StoreHits> {
  const plans = q.filters ?? [];
  return store.gate.shared(async () => {
    const index = store.index;
    let allow: Bitset | undefined;
    const used: string[] = [];
    for (const plan of plans) {
      const live = index.liveMask();
      const m = store.attrs.match(plan.node, live, index.slotLimit);
      let bits: Bitset;
      if (m !== null) {
        bits = m.bits;
        used.push(m.index);
      } else {
        bits = await scanFilter(store, (a) => plan.predicate(a), live);
        used.push('scan');
      }
      allow = allow === undefined ? bits : and(allow, bits);
    }
    if (q.labels !== undefined) {
      const bits = emptyBits(index.slotLimit);
      for (const label of q.labels) {
        const s = index.slotOf(label);
        if (s >= 0) setBit(bits, s);
      }
      allow = allow === undefined ? bits : and(allow, bits);
      used.push('ids');
    }
    const explain = await index.knnExplainAsync(vector, q.k, {
      ...(q.ef === undefined ? {} : { ef: q.ef }),
      ...(allow === undefined ? {} : { allow, index: used.join('+') }),
    });
    const data = q.withData ? explain.hits.map((h) => index.getData(h.id) ?? '') : null;
    return { explain, data };
  });
}

/** The live slots whose attributes satisfy `pred`, evaluated in slices. */
async function scanFilter(store: StoreObject, pred: (a: Attrs | undefined) => boolean, live: Bitset): Promise<Bitset> {
  const index = store.index;
  const out = emptyBits(index.slotLimit);
  let n = 0;
  for (let w = 0; w < live.length; w++) {
    let v = live[w]!;
    while (v !== 0) {
      const t = v & -v;
      const s = (w << 5) + (31 - Math.clz32(t));
      v ^= t;
      if (pred(store.attrs.get(index.idAt(s)))) setBit(out, s);
      if (++n % SCAN_SLICE === 0) await new Promise<void>((r) => setImmediate(r));
    }
  }
  return out;
}

export interface StoreItem {
  data: string;
  vector: Float32Array;
  attrs: Attrs | undefined;
}

/** One item by index label, or null. */
export function readItem(store: StoreObject, label: number): Promise<StoreItem | null> {
  return store.gate.shared(() => {
    const item = store.index.get(label);
    return item ? { ...item, attrs: store.attrs.get(label) } : null;
  });
}
