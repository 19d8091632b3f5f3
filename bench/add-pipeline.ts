/**
 * LLM.ADD throughput with given vectors (--EMBEDDING-FP32): one pipelined connection against
 * several, and against adding the same vectors to a VectorIndex in this process (no storage, no
 * network: the bound). Pipelined ADDs of one connection run concurrently (their log appends share
 * a storage round trip) and still apply in request order.
 *
 * Usage: npx tsx bench/add-pipeline.ts [--n 20000] [--dim 32] [--ef-construction 40] [--conns 8]
 *          [--window 256] [--runs 3] [--no-build]
 */
import { Redis } from 'ioredis';
import { VectorIndex } from '../src/vector/index.js';
import { clustered } from '../harness/vector-data.js';
import { build, cleanup, fmt, header, loadThroughServer, numArg, row, startBackingRedis, startServerChild, stopChild, waitReady } from './knn-server.js';

const N = numArg('n', 20_000);
const DIM = numArg('dim', 32);
const EFC = numArg('ef-construction', 40);
const CONNS = numArg('conns', 8);
const WINDOW = numArg('window', 256);
const RUNS = numArg('runs', 3);

async function main(): Promise<void> {
  build();
  console.log(`# add-pipeline: n=${N} dim=${DIM} ef_construction=${EFC} window=${WINDOW} runs=${RUNS}, node ${process.version}`);
  const set = clustered(N, DIM, 50, 3);
  const redis = await startBackingRedis();
  const c = await startServerChild(['--redis', redis.url]);
  await waitReady(c.port, c.startedAt);
  const r = new Redis({ port: c.port, host: '127.0.0.1' });
  const params = JSON.stringify({ dim: DIM, ef_construction: EFC });
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

  const through = async (conns: number, run: number): Promise<number> => {
    const key = `add-${conns}-${run}`;
    await r.call('LLM.CREATE-VECTOR-STORE', key, '--PARAMS', params);
    const ms = await loadThroughServer(c.port, key, set, conns, WINDOW);
    if ((await r.call('LLM.SIZE', key)) !== N) throw new Error(`${key}: not every ADD landed`);
    await r.del(key);
    return N / (ms / 1000);
  };
  const inProcess = (): number => {
    const ix = new VectorIndex({ space: 'l2', dim: DIM, efConstruction: EFC });
    const t0 = performance.now();
    for (let i = 0; i < N; i++) ix.add(i + 1, set.row(i), `item-${i + 1}`);
    return N / ((performance.now() - t0) / 1000);
  };

  const one: number[] = [];
  const many: number[] = [];
  const local: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    one.push(await through(1, run));
    many.push(await through(CONNS, run));
    local.push(inProcess());
  }
  r.disconnect();
  await stopChild(c, 'SIGTERM');

  header('LLM.ADD with given vectors', 'ADDs/s (median)', 'runs', '× in process');
  row('in process (VectorIndex.add, no storage)', fmt(med(local)), local.map((x) => fmt(x)).join(', '), '1.00');
  row('through the server, 1 pipelined connection', fmt(med(one)), one.map((x) => fmt(x)).join(', '), fmt(med(one) / med(local), 2));
  row(`through the server, ${CONNS} pipelined connections`, fmt(med(many)), many.map((x) => fmt(x)).join(', '), fmt(med(many) / med(local), 2));
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
