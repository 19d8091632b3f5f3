/**
 * Synthetic vectors with cluster structure (not uniform noise) and brute-force ground truth,
 * shared by the vector benchmarks.
 */

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal via Box-Muller. */
export function gauss(r: () => number): () => number {
  return () => {
    const u = 1 - r();
    const v = r();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export interface Clustered {
  dim: number;
  /** Row-major n × dim. */
  data: Float32Array;
  /** Cluster of each row. */
  cluster: Uint16Array;
  row(i: number): Float32Array;
  /** Fresh query points drawn from the same clusters. */
  queries(count: number, seed?: number): Float32Array[];
}

/**
 * n points in `clusters` Gaussian clusters: centres ~ N(0, 1) per coordinate, points = centre +
 * N(0, spread²). spread 0.35 gives well separated but internally non-trivial clusters.
 */
export function clustered(n: number, dim: number, clusters: number, seed = 1, spread = 0.35): Clustered {
  const r = rng(seed);
  const g = gauss(r);
  const centres = new Float32Array(clusters * dim);
  for (let i = 0; i < centres.length; i++) centres[i] = g();
  const data = new Float32Array(n * dim);
  const cluster = new Uint16Array(n);
  const point = (out: Float32Array, o: number, c: number, gg: () => number) => {
    for (let j = 0; j < dim; j++) out[o + j] = centres[c * dim + j]! + spread * gg();
  };
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * clusters);
    cluster[i] = c;
    point(data, i * dim, c, g);
  }
  return {
    dim,
    data,
    cluster,
    row: (i) => data.subarray(i * dim, (i + 1) * dim),
    queries(count, qseed = seed + 1000) {
      const qr = rng(qseed);
      const qg = gauss(qr);
      const out: Float32Array[] = [];
      for (let i = 0; i < count; i++) {
        const q = new Float32Array(dim);
        point(q, 0, Math.floor(qr() * clusters), qg);
        out.push(q);
      }
      return out;
    },
  };
}

export type SpaceName = 'l2' | 'cosine' | 'ip';

/** Distance as the index defines it (float64 arithmetic). */
export function distance(space: SpaceName, a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let l2 = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    const d = x - y;
    l2 += d * d;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (space === 'l2') return l2;
  if (space === 'ip') return 1 - dot;
  return 1 - dot / Math.sqrt(na * nb);
}

/** Exact K nearest (ids = row numbers + idBase) among rows accepted by `accept`. */
export function bruteForce(
  set: Clustered,
  space: SpaceName,
  q: Float32Array,
  k: number,
  accept?: (row: number) => boolean,
  idBase = 0,
): { id: number; distance: number }[] {
  const { data, dim } = set;
  const n = data.length / dim;
  let qn = 0;
  for (let j = 0; j < dim; j++) qn += q[j]! * q[j]!;
  qn = Math.sqrt(qn);
  // bounded candidate list, pruned by the current k-th distance
  let best: { id: number; distance: number }[] = [];
  let worst = Infinity;
  for (let i = 0; i < n; i++) {
    if (accept && !accept(i)) continue;
    const o = i * dim;
    let d: number;
    if (space === 'l2') {
      d = 0;
      for (let j = 0; j < dim; j++) {
        const t = q[j]! - data[o + j]!;
        d += t * t;
      }
    } else {
      let dot = 0;
      let nn = 0;
      for (let j = 0; j < dim; j++) {
        const x = data[o + j]!;
        dot += q[j]! * x;
        nn += x * x;
      }
      d = space === 'ip' ? 1 - dot : 1 - dot / (qn * Math.sqrt(nn));
    }
    if (d > worst) continue;
    best.push({ id: i + idBase, distance: d });
    if (best.length >= 8 * k + 64) {
      best.sort((a, b) => a.distance - b.distance || a.id - b.id);
      best = best.slice(0, k);
      worst = best[k - 1]!.distance;
    }
  }
  best.sort((a, b) => a.distance - b.distance || a.id - b.id);
  return best.slice(0, k);
}

/** |found ∩ truth| / |truth| */
export function recall(found: { id: number }[], truth: { id: number }[]): number {
  if (truth.length === 0) return 1;
  const t = new Set(truth.map((h) => h.id));
  let hit = 0;
  for (const h of found) if (t.has(h.id)) hit++;
  return hit / truth.length;
}
