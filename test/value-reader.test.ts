/**
 * The snapshot chunk transfer (src/storage/value-reader.ts) against a real redis-server: values of
 * every size (empty, within one read, spanning many reads) come back byte for byte, in order, and
 * written ones are what Redis stores.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { readValuesInto, writeValuesFrom } from '../src/storage/value-reader.js';

describe('value-reader', () => {
  let server: RedisServerHandle;
  let admin: Redis;
  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis({ port: server.port, host: '127.0.0.1' });
  });
  afterAll(async () => {
    admin.disconnect();
    await server.stop();
  });
  const target = () => ({ host: '127.0.0.1', port: server.port, timeoutMs: 10_000 });

  // around the 64 KiB read buffer and well past it
  const sizes = [0, 1, 2, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 64 * 1024 + 3, 256 * 1024, 256 * 1024 + 1, 1024 * 1024 + 7, 3 * 1024 * 1024, 5];

  it('reads values of every size back to back into one buffer, byte for byte', async () => {
    const values = sizes.map((n) => randomBytes(n));
    const keys = sizes.map((_, i) => `vr:${i}`);
    for (const [i, k] of keys.entries()) await admin.set(k, values[i]!);
    const total = values.reduce((a, v) => a + v.length, 0);
    const into = Buffer.alloc(total + 10);
    const r = await readValuesInto(target(), keys, into);
    expect(r).toEqual({ status: 'ok', filled: total });
    expect(into.subarray(0, total).equals(Buffer.concat(values))).toBe(true);
    expect(into.subarray(total).equals(Buffer.alloc(10))).toBe(true); // nothing written past them
  });

  it('a missing key and values longer than the buffer are reported, not written past the end', async () => {
    await admin.set('vr:big', randomBytes(300 * 1024));
    await admin.set('vr:small', 'abc');
    expect(await readValuesInto(target(), ['vr:small', 'vr:nope'], Buffer.alloc(100))).toEqual({ status: 'missing' });
    const into = Buffer.alloc(200 * 1024 + 8);
    const guard = into.subarray(200 * 1024);
    expect(await readValuesInto(target(), ['vr:small', 'vr:big'], into.subarray(0, 200 * 1024))).toEqual({ status: 'overflow' });
    expect(guard.equals(Buffer.alloc(8))).toBe(true);
  });

  it('writes values of every size from views of one buffer; a read brings them back', async () => {
    const data = randomBytes(sizes.reduce((a, n) => a + n, 0));
    let o = 0;
    const views = sizes.map((n) => data.subarray(o, (o += n)));
    const keys = sizes.map((_, i) => `vw:${i}`);
    await writeValuesFrom(target(), keys, views);
    for (const [i, k] of keys.entries()) expect((await admin.getBuffer(k))!.equals(views[i]!)).toBe(true);
    const back = Buffer.alloc(data.length);
    expect(await readValuesInto(target(), keys, back)).toEqual({ status: 'ok', filled: data.length });
    expect(back.equals(data)).toBe(true);
  });
});
