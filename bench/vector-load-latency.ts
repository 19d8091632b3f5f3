/**
 * Ordinary Redis traffic under vector load (issue 16): p50 / p99 / max of SET and GET through the
 * server, one request at a time on one connection (a probe in its own process:
 * harness/latency-probe.mjs), side by side for
 *
 *   idle                — nothing else runs (and the same probe straight to redis-server);
 *   (a) KNN saturation  — 4 connections × pipeline 8 of LLM.KNN --EMBEDDING-FP32 on a --n store;
 *   (b) ADD saturation  — 4 connections × pipeline 16 of LLM.ADD --EMBEDDING-FP32 into it;
 *   (c) snapshots       — a --big store snapshotted back to back (each triggered by one ADD);
 *                         only requests answered while a snapshot was due or running count;
 *   (d) follower reload — a second instance on the same Redis starting up and loading the --big
 *                         store from its snapshot; only requests answered while it loads count.
 *
 * The load generators (this process) run at nice 10, the server's vector threads too: on this
 * 2-core box that stands in for clients on other machines; the server, redis-server and the probe
 * run at nice 0.
 *
 * Usage: npx tsx bench/vector-load-latency.ts [--n 50000] [--big 100000] [--dim 128] [--ms 6000] [--only a,b,c,d]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { encodeRequest } from '../src/protocol/request-parser.js';
import { freePort } from '../harness/redis-server.js';
import { clustered } from '../harness/vector-data.js';
import {
  ROOT,
  build,
  cleanup,
  fmt,
  fp32,
  header,
  loadThroughServer,
  numArg,
  pump,
  strArg,
  row,
  startBackingRedis,
  startServerChild,
  stopChild,
  waitReady,
} from './knn-server.js';

const N = numArg('n', 50_000);
const BIG = numArg('big', 100_000);
const DIM = numArg('dim', 128);
const MS = numArg('ms', 6000);
/** --only a,b: run only these of the loaded phases (idle always runs). */
const ONLY = strArg('only')?.split(',') ?? ['a', 'b', 'c', 'd'];

interface Probe {
  t: number[];
  lat: number[];
  op: string[];
}

function probe(port: number, ms: number): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(ROOT, 'harness/latency-probe.mjs'), '--port', String(port), '--ms', String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Probe) : reject(new Error(`probe exited ${code}`))));
  });
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** [label, requests, SET p50/p99, GET p50/p99, max] over the requests answered inside `windows`. */
function report(label: string, p: Probe, windows?: Array<[number, number]>, note = ''): void {
  const inside = (t: number) => !windows || windows.some(([a, b]) => t >= a && t <= b);
  const pick = (o: string) =>
    p.lat
      .filter((_, i) => p.op[i] === o && inside(p.t[i]!))
      .map((x) => x / 1000)
      .sort((a, b) => a - b);
  const s = pick('S');
  const g = pick('G');
  const all = [...s, ...g].sort((a, b) => a - b);
  row(label, fmt(all.length), fmt(pct(s, 50), 2), fmt(pct(s, 99), 2), fmt(pct(g, 50), 2), fmt(pct(g, 99), 2), fmt(pct(all, 99), 2), fmt(all[all.length - 1] ?? NaN, 1), note);
}

async function main(): Promise<void> {
  build();
  // The load generators run in this process. On a 2-core box they would otherwise compete with the
  // server's event loop for a core as no remote client does: like the server's vector threads,
  // they run at nice 10 (the server, redis-server and the probe stay at 0).
  os.setPriority(10);
  console.log(`# vector-load-latency: store n=${N}, big store ${BIG}, dim=${DIM}, probe ${MS} ms per phase, node ${process.version}, ${readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length} cores`);
  const redis = await startBackingRedis();
  const w = await startServerChild(['--redis', redis.url, '--snapshot-interval', '300', '--snapshot-changes', '100000000']);
  await waitReady(w.port, w.startedAt);
  const r = new Redis({ port: w.port, host: '127.0.0.1' });
  await r.call('LLM.CREATE-VECTOR-STORE', 'load', '--PARAMS', JSON.stringify({ space: 'l2', m: 16, ef_construction: 200 }));
  await r.call('LLM.CREATE-VECTOR-STORE', 'big', '--PARAMS', JSON.stringify({ space: 'l2', m: 16, ef_construction: 200 }));
  const set = clustered(Math.max(N, BIG) + 200_000, DIM, 100, 7);
  const small = { ...set, data: set.data.subarray(0, N * DIM) };
  const bigSet = { ...set, data: set.data.subarray(0, BIG * DIM) };
  let t = performance.now();
  await loadThroughServer(w.port, 'load', small, 8);
  await loadThroughServer(w.port, 'big', bigSet, 8);
  console.log(`# loaded ${fmt(N)} + ${fmt(BIG)} vectors in ${fmt((performance.now() - t) / 1000, 1)} s`);
  // the first snapshot of both stores
  const logLength = async (store: string, port = w.port) => {
    const c = port === w.port ? r : new Redis({ port, host: '127.0.0.1' });
    const info = (await c.call('LLM.INFO', store)) as unknown[];
    if (c !== r) c.disconnect();
    return Number(info[info.indexOf('log_length') + 1]);
  };
  while ((await logLength('big')) > 0 || (await logLength('load')) > 0) await new Promise((res) => setTimeout(res, 200));

  header('load', 'requests', 'SET p50 ms', 'SET p99 ms', 'GET p50 ms', 'GET p99 ms', 'all p99 ms', 'max ms', 'meanwhile');
  report('idle, straight to redis-server', await probe(redis.port, MS));
  report('idle, through the server', await probe(w.port, MS));

  let stop = false;
  // (a) KNN saturation
  if (ONLY.includes('a')) {
  const queries = set.queries(500, 99).map((q) => encodeRequest(['LLM.KNN', 'load', '--K', '10', '--EMBEDDING-FP32', fp32(q)]));
  let qi = 0;
  const knnLoad = Promise.all(Array.from({ length: 4 }, () => pump(w.port, () => (stop ? null : queries[qi++ % queries.length]!), 8)));
  t = performance.now();
  const pa = await probe(w.port, MS);
  stop = true;
  const knn = (await knnLoad).reduce((a, x) => a + x.replies, 0);
  report('(a) LLM.KNN saturating the store', pa, undefined, `${fmt(knn / ((performance.now() - t) / 1000))} KNN/s`);
  }

  // (b) ADD saturation: new ids after the store's
  if (ONLY.includes('b')) {
  stop = false;
  let next = N;
  const limit = set.data.length / DIM;
  const addLoad = Promise.all(
    Array.from({ length: 4 }, () =>
      pump(
        w.port,
        () => {
          if (stop || next >= limit) return null;
          const k = next++;
          return encodeRequest(['LLM.ADD', 'load', '--ID', String(k + 1), '--EMBEDDING-FP32', fp32(set.row(k)), `item-${k + 1}`]);
        },
        16,
      ),
    ),
  );
  t = performance.now();
  const pb = await probe(w.port, MS);
  stop = true;
  const adds = (await addLoad).reduce((a, x) => a + x.replies, 0);
  report('(b) LLM.ADD saturating the store', pb, undefined, `${fmt(adds / ((performance.now() - t) / 1000))} ADD/s`);
  while ((await logLength('load')) > 0) await new Promise((res) => setTimeout(res, 100));
  }

  // (c) snapshots of the big store, back to back: one ADD makes it due (interval 300 ms)
  if (ONLY.includes('c')) {
  const windows: Array<[number, number]> = [];
  stop = false;
  let id = 10_000_000;
  const snapLoop = (async () => {
    while (!stop) {
      const a = Date.now();
      await r.call('LLM.ADD', 'big', '--ID', String(id++), '--EMBEDDING-FP32', fp32(set.row(id % BIG)), 'x');
      while (!stop && (await logLength('big')) > 0) await new Promise((res) => setTimeout(res, 10));
      windows.push([a, Date.now()]);
    }
  })();
  const pc = await probe(w.port, MS);
  stop = true;
  await snapLoop;
  report(`(c) snapshots of the ${fmt(BIG)}-vector store`, pc, windows, `${windows.length} snapshots`);
  }

  // (d) a follower starting on the same Redis loads the big store from its snapshot
  if (ONLY.includes('d')) {
  const port = await freePort();
  const started = Date.now();
  const pdP = probe(port, MS);
  const f = await startServerChild(['--redis', redis.url], port);
  const loadedMs = await waitReady(f.port, f.startedAt);
  const loadedAt = Date.now();
  const pd = await pdP;
  report(`(d) a follower loading the ${fmt(BIG)}-vector store`, pd, [[started, loadedAt]], `loaded in ${fmt(loadedMs)} ms`);
  await stopChild(f);
  }

  console.log(`# load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log('# target: p99 ≤ 2 ms through the server under each load');
  r.disconnect();
  await stopChild(w);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
