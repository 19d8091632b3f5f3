/**
 * RedisStorage on a real 3-master Redis Cluster: the hash tags keep each object's log, snapshot meta and
 * chunks on one slot (scripts and MGET work), the catalog keys share the {catalog} slot (atomic catalog
 * scripts, MULTI), and objects spread over the nodes.
 */
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type RedisServerHandle } from '../harness/redis-server.js';
import { RedisStorage, comparePos, newObjectId, type LogEntry, type ObjectRecord } from '../src/storage/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


const rec = (over: Partial<ObjectRecord> = {}): ObjectRecord => ({
  id: newObjectId(),
  db: 0,
  name: 'store',
  kind: 'store',
  config: { type: 'hnsw' },
  createdAt: 1,
  ...over,
});

async function readAll(s: RedisStorage, id: string, after?: string) {
  const out: Array<{ pos: string; entry: LogEntry }> = [];
  for await (const b of s.readLog(id, after)) out.push(...b);
  return out;
}

describe('RedisStorage on a 3-master Redis Cluster', () => {
  const servers: RedisServerHandle[] = [];
  let nodes: Redis[] = [];
  let cluster: Cluster;
  let s: RedisStorage;

  beforeAll(async () => {
    servers.push(...(await startRedisCluster(3)));
    nodes = servers.map((x) => new Redis(x.url));
    cluster = new Cluster([{ host: '127.0.0.1', port: servers[0]!.port }]);
    s = new RedisStorage(cluster, { chunkSize: 64 * 1024 });
    await s.open();
  }, 30_000);

  afterAll(async () => {
    await s?.close();
    cluster?.disconnect();
    for (const n of nodes) n.disconnect();
    for (const x of servers) await x.stop();
  });

  it('catalog, logs spread over the nodes, chunked snapshots, drops, events, sweep', async () => {
    const start = await s.loadCatalogAt();
    const recs = Array.from({ length: 12 }, (_, i) => rec({ name: `s${i}` }));
    for (const r of recs) await s.putRecord(r);
    // concurrent appends to all objects (on different nodes)
    const results = await Promise.all(
      Array.from({ length: 600 }, (_, i) => s.append(recs[i % 12]!.id, i % 5 === 0 ? [{ i: String(i), v: randomBytes(64) }, { i: `${i}b` }] : [{ i: String(i) }])),
    );
    for (const [k, r] of recs.entries()) {
      const log = await readAll(s, r.id);
      expect(log.map((e) => e.pos)).toEqual(results.filter((_, i) => i % 12 === k).flat());
    }
    // the logs live on more than one node, each object's keys on one node
    const holders = new Set<number>();
    for (const r of recs) {
      const on = (await Promise.all(nodes.map((n) => n.keys(`__llm__:{${r.id}}:*`)))).map((x, i) => (x.length ? i : -1)).filter((i) => i >= 0);
      expect(on).toHaveLength(1);
      holders.add(on[0]!);
    }
    expect(holders.size).toBeGreaterThan(1);

    // chunked snapshot: chunks and meta on the object's node; the switch script deletes old chunks and trims
    const r0 = recs[0]!;
    const log0 = await readAll(s, r0.id);
    const big = randomBytes(300_000);
    expect(await s.writeSnapshot(r0.id, big, log0[10]!.pos)).toBe(true);
    expect((await s.readSnapshot(r0.id))!.data.equals(big)).toBe(true);
    const big2 = randomBytes(200_000);
    expect(await s.writeSnapshot(r0.id, big2, log0[20]!.pos)).toBe(true);
    expect((await s.readSnapshot(r0.id))!.data.equals(big2)).toBe(true);
    expect(await s.logLength(r0.id)).toBe(log0.length - 21);
    const chunkKeys = (await Promise.all(nodes.map((n) => n.keys(`__llm__:{${r0.id}}:snap:*`)))).flat();
    expect(chunkKeys).toHaveLength(4);

    // rename over another object drops its storage (on another node, possibly)
    await s.renameRecord(0, 's0', 's1');
    expect(await s.getRecord(0, 's1')).toEqual({ ...r0, name: 's1' });
    expect(await s.logLength(recs[1]!.id)).toBe(0);
    await s.deleteRecord(0, 's1');
    const left = (await Promise.all(nodes.map((n) => n.keys(`__llm__:{${r0.id}}*`)))).flat();
    expect(left).toEqual([]);

    const evs = await s.readCatalogEvents(start.pos);
    expect(evs.map((e) => e.op)).toEqual([...Array(12).fill('put'), 'rename', 'delete']);
    for (let i = 1; i < evs.length; i++) expect(comparePos(evs[i - 1]!.pos, evs[i]!.pos)).toBeLessThan(0);

    const waiting = s.tailCatalog(evs[evs.length - 1]!.pos, 5000);
    await sleep(50);
    await s.putRecord(rec({ name: 'late' }));
    expect((await waiting).map((e) => e.name)).toEqual(['late']);

    const orphan = newObjectId();
    await s.append(orphan, [{ a: '1' }]);
    expect(await s.sweepOrphans()).toEqual([orphan]);
    expect((await s.loadCatalog()).length).toBe(11);
  });
});
