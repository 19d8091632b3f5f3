import { describe, expect, it } from 'vitest';
import { IdTable } from '../src/vector/id-table.js';
import { TextArena } from '../src/vector/text-arena.js';
import { VectorIndex } from '../src/vector/index.js';
import { rng } from '../harness/vector-data.js';

describe('IdTable', () => {
  it('behaves like a Map under random inserts, updates and deletes', () => {
    const t = new IdTable();
    const m = new Map<number, number>();
    const r = rng(77);
    let mismatches = 0; // plain comparisons in the loop, one expect at the end (fast)
    const verify = () => {
      if (t.size !== m.size) mismatches++;
      for (const [k, v] of m) if (t.get(k) !== v) mismatches++;
    };
    // small key space to force collisions, long probe runs and wrap-around
    for (let step = 0; step < 200_000; step++) {
      const key = r() < 0.5 ? Math.floor(r() * 3000) : (Math.floor(r() * 0x100000000) >>> 0);
      const op = r();
      if (op < 0.55) {
        const v = Math.floor(r() * 1e6);
        t.set(key, v);
        m.set(key, v);
      } else if (op < 0.9) {
        if (t.delete(key) !== m.delete(key)) mismatches++;
      } else if (t.get(key) !== (m.get(key) ?? -1)) {
        mismatches++;
      }
      if (step % 20_000 === 0) verify();
    }
    verify();
    expect(mismatches).toBe(0);
    expect(m.size).toBeGreaterThan(10_000);
    for (const k of [...m.keys()]) if (!t.delete(k)) mismatches++;
    expect(mismatches).toBe(0);
    expect(t.size).toBe(0);
    expect(t.byteLength).toBeLessThanOrEqual(64 * 8);
  });

  it('holds 0 and 4294967295', () => {
    const t = new IdTable();
    t.set(0, 1);
    t.set(4294967295, 2);
    expect(t.get(0)).toBe(1);
    expect(t.get(4294967295)).toBe(2);
    expect(t.has(1)).toBe(false);
  });
});

describe('TextArena', () => {
  it('stores, replaces, frees and compacts texts', () => {
    const a = new TextArena();
    const r = rng(3);
    const model = new Map<number, Buffer>();
    a.ensureSlots(5000);
    for (let step = 0; step < 60_000; step++) {
      const slot = Math.floor(r() * 5000);
      if (r() < 0.7) {
        const len = r() < 0.05 ? 0 : r() < 0.01 ? 100_000 : Math.floor(r() * 300);
        const b = Buffer.alloc(len, step & 255); // distinct per write, cheap to fill
        for (let i = 0; i < Math.min(len, 16); i++) b[i] = Math.floor(r() * 256);
        a.put(slot, b);
        model.set(slot, b);
      } else {
        a.free(slot);
        model.delete(slot);
      }
    }
    let live = 0;
    for (let s = 0; s < 5000; s++) {
      expect(a.has(s)).toBe(model.has(s));
      if (model.has(s)) {
        expect(a.getBytes(s).equals(model.get(s)!)).toBe(true);
        live += model.get(s)!.length;
      }
    }
    expect(a.liveBytes).toBe(live);
    // garbage is bounded: at most about half of what is held, plus the growing chunk
    expect(a.byteLength).toBeLessThan(live * 2 + 2 * 16 * 1024 * 1024 + 5000 * 12 + 1);
    a.compact();
    for (const [s, b] of model) expect(a.getBytes(s).equals(b)).toBe(true);
  });

  it('strings go in as UTF-8 and come out equal', () => {
    const a = new TextArena();
    a.ensureSlots(3);
    a.put(0, 'héllo ✓ 𝄞');
    a.put(1, '');
    a.put(2, Buffer.from([0xff, 0x00, 0xfe]));
    expect(a.getString(0)).toBe('héllo ✓ 𝄞');
    expect(a.getString(1)).toBe('');
    expect(a.getBytes(1).length).toBe(0);
    expect([...a.getBytes(2)]).toEqual([0xff, 0x00, 0xfe]);
    a.free(1);
    expect(a.has(1)).toBe(false);
  });
});

describe('VectorIndex texts', () => {
  it('binary data is stored byte for byte, also across snapshots', async () => {
    const ix = new VectorIndex();
    const bin = Buffer.from([0, 159, 146, 150, 255, 10, 13]);
    ix.add(1, new Float32Array([1, 2]), bin);
    ix.add(2, new Float32Array([3, 4]), 'plain ✓');
    ix.add(3, new Float32Array([5, 6]), '');
    expect(ix.getDataBytes(1)!.equals(bin)).toBe(true);
    expect(ix.getData(2)).toBe('plain ✓');
    expect(ix.get(3)!.data).toBe('');
    expect(ix.getDataBytes(9)).toBeNull();
    expect(Array.from(ix.getVector(2)!)).toEqual([3, 4]);
    const back = await VectorIndex.deserialize(await ix.serialize());
    expect(back.getDataBytes(1)!.equals(bin)).toBe(true);
    expect(back.getData(2)).toBe('plain ✓');
    expect(back.getData(3)).toBe('');
    expect([...back.ids()].sort()).toEqual([1, 2, 3]);
  });

  it('texts survive heavy churn (arena compaction under the index)', () => {
    const ix = new VectorIndex({ space: 'ip' });
    const big = 'x'.repeat(5000);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 400; i++) ix.add(i, new Float32Array([i, round]), `${round}:${i}:${big}`);
      for (let i = 0; i < 400; i += 2) ix.remove(i);
    }
    expect(ix.size).toBe(200);
    for (let i = 1; i < 400; i += 2) expect(ix.getData(i)).toBe(`4:${i}:${big}`);
    expect(ix.memoryBytes()).toBeLessThan(200 * 5100 * 3 + 8 * 1024 * 1024);
  });
});
