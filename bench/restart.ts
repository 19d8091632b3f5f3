/**
 * Restart of a server holding a big vector store (issue 4): a child redis-llm-server gets n vectors
 * (default 100k × 128 dims, clustered) through pipelined `LLM.ADD --EMBEDDING-FP32`, is stopped with
 * SIGTERM (which writes the shutdown snapshot: the graph in hnswlib's own format plus the items),
 * then started --runs times. Each start is timed
 *   - from spawning the process until LLM.* answers (no more -LOADING), and
 *   - the load phase itself, as the server logs it ("LLM objects loaded", ms),
 * giving vectors loaded per second (target ≥ 200k/s: the graph is read, never rebuilt).
 * Memory per vector, against the hnswlib file size per vector (target ≤ 1.3×), two ways:
 *   - per vector: a small store of --small vectors (the first rows, in another storage db) is
 *     restarted --runs times too; (RSS with n − RSS with small) / (n − small) is what each vector
 *     costs once the load code has run (the code V8 compiles for loading, hnswlib's 65,536 label
 *     locks and other fixed costs are in both);
 *   - total: (RSS with n − RSS of the same server with no objects) / n, fixed costs included.
 *
 * Usage: npx tsx bench/restart.ts [--n 100000] [--dim 128] [--clusters 100] [--runs 3]
 *          [--small 1000] [--load-clients 50] [--settle-ms 1500] [--no-build] [--server-node-args "..."]
 */
import { Redis } from 'ioredis';
import { RedisStorage } from '../src/storage/index.js';
import { clustered, type Clustered } from '../harness/vector-data.js';
import { rssOf } from '../harness/child.js';
import {
  build,
  cleanup,
  fmt,
  header,
  loadThroughServer,
  numArg,
  row,
  startBackingRedis,
  startServerChild,
  stopChild,
  waitReady,
  fp32,
  type Child,
} from './knn-server.js';

const N = numArg('n', 100_000);
const DIM = numArg('dim', 128);
const CLUSTERS = numArg('clusters', 100);
const RUNS = numArg('runs', 3);
const SMALL = numArg('small', 1000);
const LOAD_CLIENTS = numArg('load-clients', 50);
const SETTLE_MS = numArg('settle-ms', 1500);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The header of the vector index snapshot inside a store snapshot (it may be wrapped with other
 * store state): "RLVI" | u16 version | u16 | u32 header length | header JSON (graphBytes = the
 * size of hnswlib's own index file).
 */
function graphHeaderOf(data: Buffer): { graphBytes: number; items: number } {
  for (let at = data.indexOf('RLVI'); at >= 0; at = data.indexOf('RLVI', at + 1)) {
    try {
      const len = data.readUInt32LE(at + 8);
      const h = JSON.parse(data.toString('utf8', at + 12, at + 12 + len)) as { graphBytes: number; items: number };
      if (Number.isInteger(h.graphBytes)) return h;
    } catch {
      // not the header: keep looking
    }
  }
  throw new Error('no vector index header found in the snapshot');
}

/** The first `n` rows of a data set (same clusters, same ids). */
function firstRows(set: Clustered, n: number): Clustered {
  return { ...set, data: set.data.subarray(0, n * set.dim), cluster: set.cluster.subarray(0, n) };
}

/** The `ms` of the server's "LLM objects loaded" log line. */
function loadMsOf(c: Child): number {
  for (const line of c.output().split('\n')) {
    if (!line.includes('LLM objects loaded')) continue;
    try {
      return Number((JSON.parse(line) as { ms: number }).ms);
    } catch {
      const m = /"ms":(\d+)/.exec(line);
      if (m) return Number(m[1]);
    }
  }
  return NaN;
}

async function main(): Promise<void> {
  build();
  console.log(`# restart: n=${N} dim=${DIM} clusters=${CLUSTERS} runs=${RUNS}, node ${process.version}`);
  const set = clustered(N, DIM, CLUSTERS, 7);
  const redis = await startBackingRedis();

  // --- fill the stores through the server, stop it gracefully (shutdown snapshot) -------------------
  const fill = async (url: string, rows: Clustered): Promise<{ loadMs: number; stopMs: number }> => {
    const c = await startServerChild(['--redis', url]);
    await waitReady(c.port, c.startedAt);
    const r = new Redis({ port: c.port, host: '127.0.0.1' });
    await r.call('LLM.CREATE-VECTOR-STORE', 'big', '--PARAMS', '{"space":"l2","m":16,"ef_construction":200}');
    const loadMs = await loadThroughServer(c.port, 'big', rows, LOAD_CLIENTS);
    r.disconnect();
    const t0 = performance.now();
    await stopChild(c, 'SIGTERM');
    return { loadMs, stopMs: performance.now() - t0 };
  };
  const full = redis.url;
  const small = `${redis.url}/1`;
  const { loadMs, stopMs } = await fill(full, set);
  await fill(small, firstRows(set, SMALL));

  // what is stored: the snapshot (graph + items) and what is left in the log
  const storage = new RedisStorage(redis.url);
  await storage.open();
  const rec = (await storage.loadCatalog()).find((x) => x.name === 'big')!;
  const snap = (await storage.readSnapshot(rec.id))!;
  const logLeft = await storage.logLength(rec.id);
  await storage.close();
  const head = graphHeaderOf(snap.data);
  const graphPerVector = head.graphBytes / N;

  // --- baseline: the same server with no objects (an empty storage db) -----------------------------
  const empty = await startServerChild(['--redis', `${redis.url}/9`]);
  await waitReady(empty.port, empty.startedAt);
  await sleep(SETTLE_MS);
  const baseRss = rssOf(empty.proc.pid!);
  await stopChild(empty, 'SIGKILL');

  // --- restarts, alternating the n and the small store ------------------------------------------------
  const restart = async (url: string, n: number) => {
    const c = await startServerChild(['--redis', url]);
    const readyMs = await waitReady(c.port, c.startedAt);
    const r = new Redis({ port: c.port, host: '127.0.0.1' });
    const size = await r.call('LLM.SIZE', 'big');
    if (size !== n) throw new Error(`loaded ${String(size)} items, expected ${n}`);
    const q = set.row(12345 % n);
    const hit = (await r.call('LLM.KNN', 'big', '--K', '1', '--EMBEDDING-FP32', fp32(q))) as [number, string][];
    if (hit[0]![0] !== (12345 % n) + 1) throw new Error(`KNN after restart found ${hit[0]![0]}`);
    r.disconnect();
    await sleep(SETTLE_MS);
    const out = { readyMs, loadMs: loadMsOf(c), rss: rssOf(c.proc.pid!) };
    await stopChild(c, 'SIGKILL');
    return out;
  };
  const results: Array<{ readyMs: number; loadMs: number; rss: number }> = [];
  const smallRss: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    results.push(await restart(full, N));
    smallRss.push((await restart(small, SMALL)).rss);
  }

  header('fill', 'value');
  row('vectors added through the server', `${fmt(N)} in ${fmt(loadMs / 1000, 1)} s = ${fmt(N / (loadMs / 1000))} vectors/s`);
  row('graceful stop (shutdown snapshot)', `${fmt(stopMs)} ms`);
  row('snapshot', `${fmt(snap.data.length / 1e6, 1)} MB (hnswlib graph ${fmt(head.graphBytes / 1e6, 1)} MB = ${fmt(graphPerVector)} B/vector), log entries left: ${logLeft}`);

  header('restart', 'spawn → ready (ms)', 'load phase (ms, server log)', 'vectors/s (load phase)', 'vectors/s (spawn → ready)', 'RSS (MB)');
  for (const [i, x] of results.entries()) {
    row(`#${i + 1}`, fmt(x.readyMs), fmt(x.loadMs), fmt(N / (x.loadMs / 1000)), fmt(N / (x.readyMs / 1000)), fmt(x.rss / 1e6, 1));
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const mLoad = med(results.map((x) => x.loadMs));
  const mReady = med(results.map((x) => x.readyMs));
  row('median', fmt(mReady), fmt(mLoad), fmt(N / (mLoad / 1000)), fmt(N / (mReady / 1000)), fmt(med(results.map((x) => x.rss)) / 1e6, 1));

  const fullRss = results.map((x) => x.rss);
  const range = (a: number[]) => `${fmt(Math.min(...a), 2)}–${fmt(Math.max(...a), 2)}`;
  const perVector = fullRss.map((x, i) => (x - smallRss[i]!) / (N - SMALL));
  const total = fullRss.map((x) => (x - baseRss) / N);
  header('memory', 'B/vector (median)', '× hnswlib file (median)', '× hnswlib file (per run)');
  row(`per vector: (RSS n − RSS ${fmt(SMALL)}) / (n − ${fmt(SMALL)})`, fmt(med(perVector)), fmt(med(perVector) / graphPerVector, 2), range(perVector.map((x) => x / graphPerVector)));
  row(`total: (RSS n − RSS empty server) / n`, fmt(med(total)), fmt(med(total) / graphPerVector, 2), range(total.map((x) => x / graphPerVector)));
  console.log(`# RSS medians: empty server ${fmt(baseRss / 1e6, 1)} MB, ${fmt(SMALL)} vectors ${fmt(med(smallRss) / 1e6, 1)} MB, n ${fmt(med(fullRss) / 1e6, 1)} MB; read ${SETTLE_MS} ms after ready`);
  console.log('# targets: ≥ 200,000 vectors/s loaded; RSS per vector ≤ 1.3× the hnswlib file size per vector');
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
