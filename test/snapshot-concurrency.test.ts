/**
 * Background snapshots run while writes keep coming: every write is applied in log order
 * (last write wins), in memory and after a restart from snapshot + log tail.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startServer } from '../harness/server.js';
import type { LlmServer } from '../src/server/server.js';

let redis: RedisServerHandle;
let server: LlmServer;
let r: Redis;

const boot = async () => {
  server = await startServer({ redis: redis.url, snapshotOptions: { snapshotChanges: 300, snapshotIntervalMs: 3_600_000 } });
  await server.loadingDone;
  r = client(server.port);
};

beforeAll(async () => {
  redis = await startRedis();
  await boot();
});

afterAll(async () => {
  r.disconnect();
  await server.stop();
  await redis.stop();
});

it('writes racing background snapshots keep log order', async () => {
  await r.call('LLM.CREATE-VECTOR-STORE', 'busy', '--PARAMS', '{"dim":8}');
  const ids = 200;
  const expected = new Map<number, string>();
  for (let round = 0; round < 12; round++) {
    const p = r.pipeline();
    for (let i = 1; i <= ids; i++) {
      const v = Array.from({ length: 8 }, (_, j) => Math.sin(i * 7 + j + round)).join(',');
      const data = `r${round}-i${i}`;
      if ((i + round) % 7 === 0) {
        p.call('LLM.REM', 'busy', String(i));
        expected.delete(i);
      } else {
        p.call('LLM.ADD', 'busy', '--ID', String(i), '--EMBEDDING', v, data);
        expected.set(i, data);
      }
    }
    const res = await p.exec();
    expect(res!.every(([e]) => e === null)).toBe(true);
    // Let the 1 s snapshot timer fire between some rounds, so later rounds race a snapshot.
    if (round % 4 === 3) await new Promise((res2) => setTimeout(res2, 1100));
  }
  const check = async () => {
    expect(await r.call('LLM.SIZE', 'busy')).toBe(expected.size);
    for (let i = 1; i <= ids; i++) {
      const got = (await r.call('LLM.GET', 'busy', String(i))) as [string, string] | null;
      expect(got?.[0] ?? null).toBe(expected.get(i) ?? null);
    }
  };
  await check();
  const info = (await r.call('LLM.INFO', 'busy')) as unknown[];
  expect(Number(info[info.indexOf('last_snapshot') + 1])).toBeGreaterThan(0);
  r.disconnect();
  await server.stop();
  await boot();
  await check();
});

it('a lone writer applies its own writes directly, never reading them back from the log', async () => {
  const { Redis: IORedis } = await import('ioredis');
  const direct = new IORedis({ port: redis.port, lazyConnect: false });
  const xrangeCalls = async () => {
    const m = /cmdstat_xrange:calls=(\d+)/.exec((await direct.info('commandstats')) as string);
    return Number(m?.[1] ?? 0);
  };
  try {
    await r.call('LLM.CREATE-VECTOR-STORE', 'lone', '--PARAMS', '{"dim":2}');
    // The catalog follower reads the create's event with XRANGE: let it, then count log reads only.
    await new Promise((res) => setTimeout(res, 300));
    const before = await xrangeCalls();
    for (let i = 0; i < 30; i++) {
      await r.call('LLM.ADD', 'lone', '--EMBEDDING', `${i},1`, `x${i}`);
      await new Promise((res) => setTimeout(res, 3)); // a new millisecond for each write
    }
    expect(await r.call('LLM.SIZE', 'lone')).toBe(30);
    expect(await xrangeCalls()).toBe(before);
  } finally {
    direct.disconnect();
  }
});
