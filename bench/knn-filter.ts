/**
 * Filtered KNN: QPS and recall@10 at 50 %, 5 % and 0.1 % selectivity, against brute force over the
 * matching subset, with the same compiled --FILTER predicate over item attributes that the
 * server uses (src/vector/filter.ts + VectorIndex.knnExplain).
 *
 *   npx tsx bench/knn-filter.ts [--n 100000] [--dim 128] [--queries 200]
 */
import { VectorIndex } from '../src/vector/index.js';
import { compileFilter, type Attrs } from '../src/vector/filter.js';
import { bruteForce, clustered, recall } from '../harness/vector-data.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const n = arg('n', 100_000);
const dim = arg('dim', 128);
const nq = arg('queries', 200);
const k = 10;

const set = clustered(n, dim, 64, 7);
const attrs: Attrs[] = [];
const index = new VectorIndex({ space: 'l2', dim, m: 16, efConstruction: 200, maxElements: n });
let t = Date.now();
for (let i = 0; i < n; i++) {
  // bucket 0..999 spread independently of the clusters
  const bucket = (i * 7919) % 1000;
  attrs.push({ bucket, tenant: bucket < 500 ? 'big' : 'other' });
  index.add(i, set.row(i), '');
}
console.log(`built ${n} × ${dim} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
const queries = set.queries(nq);

const cases: Array<[string, string, (row: number) => boolean]> = [
  ['50%', 'tenant == "big"', (i) => attrs[i].bucket as number < 500],
  ['5%', 'bucket < 50', (i) => (attrs[i].bucket as number) < 50],
  ['0.1%', 'bucket == 7', (i) => attrs[i].bucket === 7],
];

console.log('\n| selectivity | filter | path(s) | QPS filtered | QPS brute force (subset) | ratio | recall@10 |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const [label, expr, accept] of cases) {
  const pred = compileFilter(expr);
  const filter = (id: number) => pred(attrs[id]);
  const paths = new Map<string, number>();
  let rec = 0;
  t = performance.now();
  const results = queries.map((q) => {
    const r = index.knnExplain(q, k, { filter });
    paths.set(r.path, (paths.get(r.path) ?? 0) + 1);
    return r.hits;
  });
  const filteredMs = performance.now() - t;
  t = performance.now();
  const truth = queries.map((q) => bruteForce(set, 'l2', q, k, (i) => filter(i)));
  const bruteMs = performance.now() - t;
  results.forEach((hits, i) => (rec += recall(hits, truth[i])));
  const qps = (nq / filteredMs) * 1000;
  const bqps = (nq / bruteMs) * 1000;
  const pathText = [...paths].map(([p, c]) => `${p} ${c}`).join(', ');
  console.log(`| ${label} | \`${expr}\` | ${pathText} | ${qps.toFixed(0)} | ${bqps.toFixed(0)} | ${(qps / bqps).toFixed(1)}× | ${(rec / nq).toFixed(3)} |`);
}
