/**
 * A load generator in its own process, for bench/vector-load-latency.ts: `--mode knn` keeps
 * `--conns` connections × `--window` pipelined LLM.KNN --EMBEDDING-FP32 on `--store`; `--mode add`
 * pipelined LLM.ADD --EMBEDDING-FP32 of new ids from `--from`. Vectors: harness/vector-data.ts with
 * the given --n/--dim/--seed. Runs until SIGTERM, then prints {"replies": n, "seconds": s}.
 * The benchmark starts it under `chrt -i 0` (SCHED_IDLE), standing in for clients on other machines.
 */
import { encodeRequest } from '../src/protocol/request-parser.js';
import { clustered } from '../harness/vector-data.js';
import { fp32, numArg, pump, strArg } from './knn-server.js';

const port = numArg('port', 6379);
const mode = strArg('mode') ?? 'knn';
const store = strArg('store') ?? 'load';
const conns = numArg('conns', 4);
const window = numArg('window', 8);
const n = numArg('n', 50_000);
const dim = numArg('dim', 128);
const from = numArg('from', n);
const set = clustered(n + 200_000, dim, 100, 7);
let stop = false;
process.on('SIGTERM', () => (stop = true));
let next = from;
const queries = set.queries(500, 99).map((q) => encodeRequest(['LLM.KNN', store, '--K', '10', '--EMBEDDING-FP32', fp32(q)]));
let qi = 0;
const request = (): Buffer | null => {
  if (stop) return null;
  if (mode === 'knn') return queries[qi++ % queries.length]!;
  if (next >= n + 200_000) return null;
  const k = next++;
  return encodeRequest(['LLM.ADD', store, '--ID', String(k + 1), '--EMBEDDING-FP32', fp32(set.row(k)), `item-${k + 1}`]);
};
process.stdout.write('ready\n');
const t0 = performance.now();
const res = await Promise.all(Array.from({ length: conns }, () => pump(port, request, window)));
process.stdout.write(JSON.stringify({ replies: res.reduce((a, x) => a + x.replies, 0), seconds: (performance.now() - t0) / 1000 }) + '\n');
process.exit(0);
