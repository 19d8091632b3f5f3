/**
 * In-process figures of the vector index layer (src/vector), the baseline the server benchmarks
 * compare against:
 *   - build: VectorIndex.add throughput (vectors with cluster structure, not uniform noise)
 *   - KNN k=10: QPS for several ef values, recall@10 vs brute force; VectorIndex.knn and raw
 *     hnswlib-node searchKnn on the same graph with the same ef
 *   - filtered KNN at 50% / 5% / 0.1% selectivity: QPS, recall@10 vs brute force over the subset,
 *     and the path taken
 *   - serialize / deserialize: vectors/s, event-loop stall of the snapshot capture
 *   - memory per vector (RSS delta) vs the hnswlib index file size per vector
 *   - per-call cost of add and knn at 128 and 1536 dimensions
 *
 * Usage: npx tsx bench/knn-inprocess.ts [--n 100000] [--dim 128] [--queries 200]
 *                                       [--n1536 10000] [--clusters 100]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { VectorIndex } from '../src/vector/index.js';
import { bruteForce, clustered, recall, type Clustered } from '../harness/vector-data.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`bad --${name}`);
  return v;
}

const N = arg('n', 100_000);
const DIM = arg('dim', 128);
const QUERIES = arg('queries', 200);
const N1536 = arg('n1536', 10_000);
const CLUSTERS = arg('clusters', 100);
const K = 10;

/** Prints a markdown table header (with its separator line). */
function header(...cols: string[]): void {
  console.log(`\n| ${cols.join(' | ')} |`);
  console.log(`|${cols.map(() => '---').join('|')}|`);
}
function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
function settle(): void {
  for (let i = 0; i < 3; i++) gc();
}
function mem() {
  settle();
  return process.memoryUsage();
}

// Internal handle of the graph (bench only): raw hnswlib-node calls on the same index.
interface RawHnsw {
  searchKnn(q: number[], k: number, f?: (l: number) => boolean): { neighbors: number[]; distances: number[] };
  setEf(ef: number): void;
  writeIndexSync(path: string): void;
}
const rawOf = (ix: VectorIndex) => (ix as unknown as { hnsw: RawHnsw }).hnsw;

function timeLoop(count: number, f: (i: number) => void): number {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) f(i);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  console.log(`# knn-inprocess: n=${N} dim=${DIM} clusters=${CLUSTERS} k=${K} queries=${QUERIES}, node ${process.version}`);
  const set = clustered(N, DIM, CLUSTERS, 7);
  const queries = set.queries(QUERIES, 1234);
  const m0 = mem();

  // --- build ---------------------------------------------------------------------------------
  const index = new VectorIndex({ space: 'l2' });
  const buildMs = timeLoop(N, (i) => index.add(i + 1, set.row(i), `item-${i}`));
  const m1 = mem();
  console.log(`build: ${fmt(N / (buildMs / 1000))} adds/s (${fmt((buildMs * 1000) / N, 1)} µs/add, ${fmt(buildMs / 1000, 1)} s)`);

  // --- ground truth -----------------------------------------------------------------------------
  const t0 = performance.now();
  const truth = queries.map((q) => bruteForce(set, 'l2', q, K, undefined, 1));
  console.log(`# brute force ground truth: ${fmt(performance.now() - t0)} ms for ${QUERIES} queries`);

  // --- KNN -------------------------------------------------------------------------------------
  header('ef', 'recall@10', 'VectorIndex.knn QPS', 'µs/query', 'raw hnswlib QPS', 'wrapper/raw');
  const raw = rawOf(index);
  const plain = queries.map((q) => Array.from(q));
  const reps = Math.max(1, Math.ceil(2000 / QUERIES));
  for (const ef of [10, 20, 50, 100, 200]) {
    let r = 0;
    for (let i = 0; i < QUERIES; i++) r += recall(index.knn(queries[i]!, K, { ef }), truth[i]!);
    // wrapper and raw calls alternate in small batches so load changes hit both alike
    let wrapMs = 0;
    let rawMs = 0;
    for (let rep = 0; rep < reps; rep++) {
      wrapMs += timeLoop(QUERIES, (i) => index.knn(queries[i]!, K, { ef }));
      raw.setEf(ef);
      rawMs += timeLoop(QUERIES, (i) => raw.searchKnn(plain[i]!, K));
    }
    const qps = (reps * QUERIES) / (wrapMs / 1000);
    const rawQps = (reps * QUERIES) / (rawMs / 1000);
    const def = ef === index.ef ? ' (default)' : '';
    console.log(`| ${ef}${def} | ${fmt(r / QUERIES, 3)} | ${fmt(qps)} | ${fmt((wrapMs * 1000) / (reps * QUERIES), 1)} | ${fmt(rawQps)} | ${fmt(qps / rawQps, 2)} |`);
  }

  // --- filtered KNN ----------------------------------------------------------------------------
  header('filter selectivity', 'path', 'recall@10', 'QPS', 'ms/query');
  const fq = Math.min(QUERIES, 50);
  for (const sel of [0.5, 0.05, 0.001]) {
    const mod = Math.round(1 / sel);
    const filter = (id: number) => id % mod === 0;
    let r = 0;
    const paths = new Set<string>();
    const ftruth = queries.slice(0, fq).map((q) => bruteForce(set, 'l2', q, K, (row) => (row + 1) % mod === 0, 1));
    for (let i = 0; i < fq; i++) {
      const e = index.knnExplain(queries[i]!, K, { filter });
      paths.add(e.path);
      r += recall(e.hits, ftruth[i]!);
    }
    const ms = timeLoop(fq, (i) => index.knn(queries[i]!, K, { filter }));
    console.log(`| ${sel * 100}% | ${[...paths].join('+')} | ${fmt(r / fq, 3)} | ${fmt(fq / (ms / 1000))} | ${fmt(ms / fq, 2)} |`);
  }

  // --- snapshots -------------------------------------------------------------------------------
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let ts = performance.now();
  const snap = await index.serialize();
  const serMs = performance.now() - ts;
  h.disable();
  const stallMs = h.max / 1e6;
  const fileBytes = snap.length; // dominated by the hnswlib file; items add ~16 B/vector
  const itemsHeader = JSON.parse(snap.toString('utf8', 12, 12 + snap.readUInt32LE(8))) as { graphBytes: number };
  const graphBytes = itemsHeader.graphBytes;

  const hb = monitorEventLoopDelay({ resolution: 1 });
  hb.enable();
  ts = performance.now();
  const snapBg = await index.serialize({ background: true });
  const serBgMs = performance.now() - ts;
  hb.disable();
  const stallBgMs = hb.max / 1e6;
  if (!snapBg.equals(snap)) throw new Error('background snapshot differs');

  ts = performance.now();
  const loaded = await VectorIndex.deserialize(snap);
  const deserMs = performance.now() - ts;
  let same = 0;
  for (let i = 0; i < QUERIES; i++) {
    const a = index.knn(queries[i]!, K);
    const b = loaded.knn(queries[i]!, K);
    if (JSON.stringify(a) === JSON.stringify(b)) same++;
  }
  header('snapshot', 'value');
  console.log(`| size | ${fmt(fileBytes / 1e6, 1)} MB (hnswlib graph ${fmt(graphBytes / 1e6, 1)} MB = ${fmt(graphBytes / N)} B/vector) |`);
  console.log(`| serialize | ${fmt(serMs)} ms = ${fmt(N / (serMs / 1000))} vectors/s; event loop blocked ≤ ${fmt(stallMs, 1)} ms (writeIndexSync capture) |`);
  console.log(`| serialize, background | ${fmt(serBgMs)} ms = ${fmt(N / (serBgMs / 1000))} vectors/s; event loop blocked ≤ ${fmt(stallBgMs, 1)} ms (graph written on the thread pool; add/remove wait) |`);
  console.log(`| deserialize | ${fmt(deserMs)} ms = ${fmt(N / (deserMs / 1000))} vectors/s (graph loaded, no rebuild) |`);
  console.log(`| same KNN after load | ${same}/${QUERIES} queries |`);

  // --- memory ----------------------------------------------------------------------------------
  const builtRss = m1.rss - m0.rss;
  const builtHeap = m1.heapUsed - m0.heapUsed;
  const builtExt = m1.external + m1.arrayBuffers - (m0.external + m0.arrayBuffers);
  // Loaded copy, in a fresh child process (no allocator or GC leftovers from the build, and no
  // freed memory of this process to reuse): RSS before and after deserialize.
  const dir = mkdtempSync(join(tmpdir(), 'knn-bench-'));
  let child: { rss: number; heap: number; ext: number; ms: number };
  try {
    writeFileSync(join(dir, 'snap.bin'), snap);
    // three fresh processes, the median by RSS (RSS deltas of single runs vary by a few %)
    const runs: (typeof child)[] = [];
    for (let i = 0; i < 3; i++) {
      const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--mem-child', join(dir, 'snap.bin')];
      const out = execFileSync(process.execPath, args, { encoding: 'utf8' });
      runs.push(JSON.parse(out.trim().split('\n').pop()!) as typeof child);
    }
    runs.sort((a, b) => a.rss - b.rss);
    child = runs[1]!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const est = index.memoryBytes();
  header('memory per vector', 'bytes', '× hnswlib file');
  const per = (b: number) => `| ${fmt(b / N)} | ${fmt(b / graphBytes, 2)} |`;
  console.log(`| hnswlib file | ${fmt(graphBytes / N)} | 1.00 |`);
  console.log(`| loaded index (fresh process, median of 3), RSS delta ${per(child.rss)}`);
  console.log(`| (of which JS heap) ${per(child.heap)}`);
  console.log(`| (of which external: id table, slot arrays, texts) ${per(child.ext)}`);
  console.log(`| built by ADDs (this process), RSS delta ${per(builtRss)}`);
  console.log(`| (of which JS heap) ${per(builtHeap)}`);
  console.log(`| (of which external/ArrayBuffers) ${per(builtExt)}`);
  console.log(`| memoryBytes() estimate ${per(est)}`);
  console.log(`# fresh-process load of the ${fmt(snap.length / 1e6, 1)} MB snapshot: ${fmt(child.ms)} ms = ${fmt(N / (child.ms / 1000))} vectors/s`);
  void loaded.size;

  // --- per-call cost at 128 and 1536 dims ------------------------------------------------------
  header('dims', 'n', 'add µs/call', 'knn µs/call (default ef, k=10)', 'knn p99 µs');
  const perCall = (ix: VectorIndex, s: Clustered, n: number, addMs: number) => {
    const qs = s.queries(200, 77);
    for (const q of qs.slice(0, 20)) ix.knn(q, K); // warm
    const lat: number[] = [];
    for (const q of qs) {
      const t = performance.now();
      ix.knn(q, K);
      lat.push((performance.now() - t) * 1000);
    }
    lat.sort((a, b) => a - b);
    const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
    console.log(`| ${s.dim} | ${n} | ${fmt((addMs * 1000) / n, 1)} | ${fmt(mean, 1)} | ${fmt(lat[Math.floor(lat.length * 0.99)]!, 1)} |`);
  };
  perCall(index, set, N, buildMs);
  if (N1536 > 0) {
    const s2 = clustered(N1536, 1536, CLUSTERS, 9);
    const ix2 = new VectorIndex({ space: 'cosine' });
    const ms2 = timeLoop(N1536, (i) => ix2.add(i + 1, s2.row(i), `item-${i}`));
    perCall(ix2, s2, N1536, ms2);
  }
}

async function memChild(path: string): Promise<void> {
  const buf = readFileSync(path);
  const before = mem();
  const t = performance.now();
  const ix = await VectorIndex.deserialize(buf);
  const ms = performance.now() - t;
  const after = mem();
  console.log(
    JSON.stringify({
      rss: after.rss - before.rss,
      heap: after.heapUsed - before.heapUsed,
      ext: after.external - before.external,
      ms,
      size: ix.size,
    }),
  );
  void buf.length;
}

const childAt = process.argv.indexOf('--mem-child');
(childAt >= 0 ? memChild(process.argv[childAt + 1]!) : main()).catch((e) => {
  console.error(e);
  process.exit(1);
});
