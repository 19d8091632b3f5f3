/**
 * FileStorage specifics: kill -9 trials of a child process appending and snapshotting (no acknowledged
 * append lost), torn/corrupt tails truncated on open, failed writes rolled back (injected partial write,
 * real ENOSPC on a small tmpfs, real EROFS on a read-only bind mount), the directory lock, crash between
 * snapshot and log trim, group commit.
 *
 * Tests run as root, so permission bits cannot make a directory unwritable; the tests use a read-only
 * mount (which root cannot write through) and a full tmpfs instead. Both need mount privileges and are
 * skipped when `mount` is not permitted; the injected partial-write test covers the same code path always.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync, appendFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage, comparePos, newObjectId, type LogEntry, type ObjectRecord } from '../src/storage/index.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'rls-filestorage-'));
let n = 0;
const freshDir = () => path.join(root, `d${n++}`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const rec = (over: Partial<ObjectRecord> = {}): ObjectRecord => ({
  id: newObjectId(),
  db: 0,
  name: 'store',
  kind: 'store',
  config: { type: 'hnsw' },
  createdAt: 1,
  ...over,
});

async function readAll(s: FileStorage, id: string, after?: string) {
  const out: Array<{ pos: string; entry: LogEntry }> = [];
  for await (const b of s.readLog(id, after)) out.push(...b);
  return out;
}

async function openStorage(dir: string, opts?: ConstructorParameters<typeof FileStorage>[1]) {
  const s = new FileStorage(dir, opts);
  await s.open();
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function canMount(): boolean {
  const m = mkdtempSync(path.join(root, 'probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', m], { stdio: 'ignore' });
    execFileSync('umount', [m], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const mountOk = process.platform === 'linux' && canMount();

// ----------------------------------------------------------------------------------------------------------
// the child process for kill -9 trials: appends (8 concurrent writers, sizes up to 30 KB and some of 1 MB, some multi-entry)
// and snapshots in a loop, printing every acknowledgement on stdout (a pipe: writes are synchronous)

// The child runs plain JavaScript (node starts in ~0.2 s, tsx would add ~0.6 s per trial): the storage
// sources and the modules they may import are transpiled with the project's TypeScript.
const srcRoot = fileURLToPath(new URL('../src/', import.meta.url));
const jsRoot = path.join(root, 'js');
const fileJs = path.join(jsRoot, 'src', 'storage', 'file.js');
const childPath = path.join(jsRoot, 'child.mjs');
let built: Promise<void> | undefined;
const buildChild = () =>
  (built ??= (async () => {
    const ts = (await import('typescript')).default;
    // storage/ and what it may import (layer 0: util/, errors.ts, log.ts; scripts/check-layers.ts).
    const folders = ['storage', 'util'].flatMap((d) => readdirSync(path.join(srcRoot, d)).map((f) => `${d}/${f}`));
    for (const rel of [...folders, 'errors.ts', 'log.ts']) {
      if (!rel.endsWith('.ts')) continue;
      const out = ts.transpileModule(readFileSync(path.join(srcRoot, rel), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      }).outputText;
      mkdirSync(path.dirname(path.join(jsRoot, 'src', rel)), { recursive: true });
      writeFileSync(path.join(jsRoot, 'src', rel.replace(/\.ts$/, '.js')), out);
    }
    writeFileSync(path.join(jsRoot, 'package.json'), '{"type":"module"}');
    symlinkSync(fileURLToPath(new URL('../node_modules', import.meta.url)), path.join(jsRoot, 'node_modules'));
    writeFileSync(childPath, CHILD);
  })());

const CHILD = `
import { FileStorage } from ${JSON.stringify(fileJs)};
const [dir, trial, mode] = process.argv.slice(2);
const s = new FileStorage(dir);
await s.open();
const ID = 'crashobj';
if (!(await s.getRecord(0, 'k'))) await s.putRecord({ id: ID, db: 0, name: 'k', kind: 'store', config: {}, createdAt: 0 });
process.stdout.write('READY\\n');
if (mode === 'hold') setInterval(() => {}, 1000); else {
const payload = (k, size) => { const b = Buffer.allocUnsafe(size); for (let i = 0; i < size; i++) b[i] = (k.charCodeAt(i % k.length) * 7 + i) & 255; return b; };
let n = 0; let top = 0n; let topPos;
async function writer(w) {
  for (;;) {
    const i = n++;
    const k = trial + ':' + w + ':' + i;
    const size = i % 40 === 39 ? 1000000 + i : (i * 7919) % 30000;
    const entries = i % 4 === 0 ? [{ k, b: payload(k, size) }, { k: k + '+', b: payload(k + '+', 100) }] : [{ k, b: payload(k, size) }];
    const pos = await s.append(ID, entries);
    process.stdout.write('A ' + pos.join(',') + ' ' + k + ' ' + size + '\\n');
    const seq = BigInt(pos[pos.length - 1].split('-')[1]);
    if (seq > top) { top = seq; topPos = pos[pos.length - 1]; }
  }
}
async function snapshotter() {
  for (;;) {
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    if (!topPos) continue;
    const p = topPos;
    const head = Buffer.from('snapshot-upto ' + p + '\\n');
    const data = Buffer.concat([head, Buffer.alloc(Math.floor(Math.random() * 400_000), 7)]);
    if (await s.writeSnapshot(ID, data, p)) process.stdout.write('S ' + p + '\\n');
  }
}
for (let w = 0; w < 8; w++) writer(w);
snapshotter();
}
`;

async function startChild(dir: string, trial: number, mode = 'run') {
  await buildChild();
  const child = spawn(process.execPath, [childPath, dir, String(trial), mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  let out = '';
  let err = '';
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  child.stdout!.on('data', (d) => {
    out += d.toString();
    if (out.includes('READY\n')) readyResolve();
  });
  child.stderr!.on('data', (d) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, ready, exited, output: () => out, stderr: () => err };
}

const payload = (k: string, size: number) => {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (k.charCodeAt(i % k.length) * 7 + i) & 255;
  return b;
};

describe('FileStorage', () => {
  it('kill -9 at random moments (24 trials): no acknowledged append or completed snapshot is lost', async () => {
    const dir = freshDir();
    let totalAcks = 0;
    let tornTails = 0;
    let snapshots = 0;
    let maxLog = 0;
    const TRIALS = 24;
    for (let trial = 0; trial < TRIALS; trial++) {
      const c = await startChild(dir, trial);
      if (trial % 5 === 4) {
        // sometimes kill at a random time from spawn: during open/recovery, catalog write, first appends
        await sleep(100 + Math.random() * 300);
      } else {
        await Promise.race([c.ready, c.exited]);
        await sleep(20 + Math.random() * 250);
      }
      c.child.kill('SIGKILL');
      await c.exited;
      if (c.stderr().trim()) throw new Error(`child failed: ${c.stderr()}`);
      const lines = c.output().split('\n');
      lines.pop(); // an incomplete last line is not an acknowledgement
      const acks: Array<{ pos: string; k: string; size: number }> = [];
      const snaps: string[] = [];
      for (const l of lines) {
        const f = l.split(' ');
        if (f[0] === 'A') {
          const ps = f[1]!.split(',');
          acks.push({ pos: ps[0]!, k: f[2]!, size: Number(f[3]) });
          if (ps[1]) acks.push({ pos: ps[1], k: f[2]! + '+', size: 100 });
        } else if (f[0] === 'S') snaps.push(f[1]!);
      }
      totalAcks += acks.length;
      snapshots += snaps.length;

      const s = await openStorage(dir);
      try {
        const objDir = path.join(dir, 'objects', 'crashobj');
        const side = existsSync(objDir) ? readdirSync(objDir).filter((f) => f.includes('.corrupt-')) : [];
        if (side.length) {
          tornTails++;
          for (const f of side) rmSync(path.join(objDir, f));
        }
        const snap = await s.readSnapshot('crashobj');
        if (snap) expect(snap.data.subarray(0, 14 + snap.pos.length).toString()).toBe(`snapshot-upto ${snap.pos}`);
        for (const p of snaps) expect(comparePos(snap!.pos, p)).toBeGreaterThanOrEqual(0);
        const log = await readAll(s, 'crashobj');
        maxLog = Math.max(maxLog, log.length);
        for (let i = 1; i < log.length; i++) expect(comparePos(log[i - 1]!.pos, log[i]!.pos)).toBeLessThan(0);
        if (snap && log.length) expect(comparePos(log[0]!.pos, snap.pos)).toBeGreaterThan(0); // trim completed on open
        const byPos = new Map(log.map((e) => [e.pos, e.entry]));
        for (const a of acks) {
          if (snap && comparePos(a.pos, snap.pos) <= 0) continue; // covered by the snapshot
          const e = byPos.get(a.pos);
          expect(e, `acknowledged ${a.pos} (${a.k}) missing after kill -9 in trial ${trial}`).toBeDefined();
          expect(e!.k).toBe(a.k);
          expect((e!.b as Buffer).equals(payload(a.k, a.size))).toBe(true);
        }
        // unacknowledged entries that made it are whole, too
        for (const e of log) expect((e.entry.b as Buffer).equals(payload(e.entry.k as string, (e.entry.b as Buffer).length))).toBe(true);
        expect(await s.logLength('crashobj')).toBe(log.length);
      } finally {
        await s.close();
      }
    }
    expect(totalAcks).toBeGreaterThan(TRIALS * 20);
    console.log(
      `file kill -9: ${TRIALS} trials, ${totalAcks} acknowledged appends all present (or covered by a snapshot), ${snapshots} snapshots, ${tornTails} torn tails truncated, max log ${maxLog} entries`,
    );
  }, 90_000);

  it('truncates a torn or corrupt tail on open and keeps everything before it', async () => {
    const cases: Array<[string, (file: string, lastStart: number) => void]> = [
      ['record cut in half', (f, last) => truncateSync(f, last + Math.floor((statSync(f).size - last) / 2))],
      ['header cut', (f, last) => truncateSync(f, last + 5)],
      ['garbage appended', (f) => appendFileSync(f, Buffer.from('garbage that is not a record at all'))],
      ['zeros appended', (f) => appendFileSync(f, Buffer.alloc(4096))],
      [
        'payload bit flipped (CRC mismatch)',
        (f, last) => {
          const b = readFileSync(f);
          b[last + 20]! ^= 0x10;
          writeFileSync(f, b);
        },
      ],
    ];
    for (const [label, damage] of cases) {
      const dir = freshDir();
      const r = rec();
      let s = await openStorage(dir);
      await s.putRecord(r);
      const pos = await s.append(r.id, Array.from({ length: 5 }, (_, i) => ({ i: String(i), v: Buffer.alloc(100, i) })));
      const logFile = path.join(dir, 'objects', r.id, 'log');
      const sizeBefore = statSync(logFile).size;
      const [last] = await s.append(r.id, [{ i: 'last', v: Buffer.alloc(300, 9) }]);
      const sizeFull = statSync(logFile).size;
      await s.close();
      damage(logFile, sizeBefore);
      const damagedLast = !label.includes('appended');
      s = await openStorage(dir);
      const log = await readAll(s, r.id);
      expect(log.map((e) => e.pos), label).toEqual(damagedLast ? pos : [...pos, last]);
      expect(statSync(logFile).size, label).toBe(damagedLast ? sizeBefore : sizeFull);
      expect(readdirSync(path.join(dir, 'objects', r.id)).some((f) => f.startsWith('log.corrupt-')), label).toBe(true);
      const [next] = await s.append(r.id, [{ i: 'after' }]);
      expect(comparePos(next!, pos[4]!)).toBeGreaterThan(0);
      await s.close();
      s = await openStorage(dir);
      expect((await readAll(s, r.id)).map((e) => e.entry.i).slice(-1)).toEqual(['after']);
      await s.close();
    }
  });

  it('a failed (partial) write rejects the append with a clear error and leaves no trace', async () => {
    const dir = freshDir();
    let fault: { writeBytes?: number; error: Error } | undefined;
    let writes = 0;
    const s = await openStorage(dir, { hooks: { beforeLogWrite: (_id, buf) => (writes++, fault && { ...fault, writeBytes: fault.writeBytes ?? buf.length >> 1 }) } });
    const r = rec();
    await s.putRecord(r);
    const good = await s.append(r.id, [{ a: '1' }, { a: '2' }]);
    const logFile = path.join(dir, 'objects', r.id, 'log');
    const size = statSync(logFile).size;
    fault = { error: Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }) };
    const failed = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => s.append(r.id, [{ a: `x${i}`, v: Buffer.alloc(1000) }])));
    for (const f of failed) {
      expect(f.status).toBe('rejected');
      expect(((f as PromiseRejectedResult).reason as Error).message).toBe('failed to persist: ENOSPC: no space left on device, write');
    }
    expect(statSync(logFile).size).toBe(size); // the half-written batch was cut off
    expect(await s.logLength(r.id)).toBe(2);
    fault = undefined;
    const [p3] = await s.append(r.id, [{ a: '3' }]);
    expect(comparePos(p3!, good[1]!)).toBeGreaterThan(0);
    await s.close();
    const s2 = await openStorage(dir);
    expect((await readAll(s2, r.id)).map((e) => e.entry.a)).toEqual(['1', '2', '3']);
    expect(readdirSync(path.join(dir, 'objects', r.id)).filter((f) => f.includes('corrupt'))).toEqual([]);
    await s2.close();
    expect(writes).toBeGreaterThanOrEqual(3);
  });

  it.skipIf(!mountOk)('disk full (a 2 MiB tmpfs): append rejects with ENOSPC, the log stays valid, works again when space is freed', async () => {
    const mnt = mkdtempSync(path.join(root, 'full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    try {
      const dir = path.join(mnt, 'data');
      const s = await openStorage(dir);
      const r = rec();
      await s.putRecord(r);
      const filler = path.join(mnt, 'filler');
      writeFileSync(filler, Buffer.alloc(1024 * 1024));
      const acked: string[] = [];
      let error: Error | undefined;
      for (let i = 0; i < 100 && !error; i++) {
        try {
          acked.push(...(await s.append(r.id, [{ i: String(i), v: Buffer.alloc(100_000, i) }])));
        } catch (err) {
          error = err as Error;
        }
      }
      expect(error?.message).toMatch(/^failed to persist: ENOSPC: no space left on device/);
      expect(acked.length).toBeGreaterThan(3);
      expect((await readAll(s, r.id)).map((e) => e.pos)).toEqual(acked);
      // a snapshot cannot be written either, and nothing changes
      await expect(s.writeSnapshot(r.id, Buffer.alloc(1024 * 1024), acked[1]!)).rejects.toThrow(/^failed to persist: ENOSPC/);
      expect(await s.readSnapshot(r.id)).toBeNull();
      rmSync(filler);
      const more = await s.append(r.id, [{ i: 'more' }]);
      await s.close();
      const s2 = await openStorage(dir);
      expect((await readAll(s2, r.id)).map((e) => e.pos)).toEqual([...acked, ...more]);
      await s2.close();
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it.skipIf(!mountOk)('unwritable directory (read-only bind mount, which root cannot bypass): clear errors, nothing half-done', async () => {
    const dir = freshDir();
    const s = await openStorage(dir);
    const a = rec({ name: 'a' });
    await s.putRecord(a);
    await s.close();
    mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['--bind', dir, dir]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
      // even the lock cannot be taken: open fails clearly
      await expect(openStorage(dir)).rejects.toThrow(/cannot lock storage dir .*EROFS/);
    } finally {
      execFileSync('umount', [dir]);
    }
    // read-only objects dir: logs cannot be created or opened for writing; the catalog still works
    const s2 = await openStorage(dir);
    const objects = path.join(dir, 'objects');
    execFileSync('mount', ['--bind', objects, objects]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', objects]);
      await expect(s2.append(a.id, [{ x: '1' }])).rejects.toThrow(/^failed to persist: EROFS: read-only file system/);
      const b = rec({ name: 'b' });
      await s2.putRecord(b);
      await expect(s2.append(b.id, [{ x: '1' }])).rejects.toThrow(/^failed to persist: EROFS/);
    } finally {
      execFileSync('umount', [objects]);
    }
    await s2.append(a.id, [{ x: 'ok' }]);
    // read-only dir: the catalog cannot be rewritten; it stays as it was
    execFileSync('mount', ['--bind', dir, dir]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
      await expect(s2.putRecord(rec({ name: 'c' }))).rejects.toThrow(/^failed to persist: EROFS/);
      expect(await s2.getRecord(0, 'c')).toBeNull();
    } finally {
      execFileSync('umount', [dir]);
    }
    await s2.close();
    const s3 = await openStorage(dir);
    expect((await s3.loadCatalog()).map((r) => r.name).sort()).toEqual(['a', 'b']);
    expect((await readAll(s3, a.id)).map((e) => e.entry.x)).toEqual(['ok']);
    await s3.close();
  });

  it('open: creates a missing dir; a path under a regular file fails clearly', async () => {
    const dir = path.join(freshDir(), 'deep', 'er');
    const s = await openStorage(dir);
    expect(existsSync(path.join(dir, 'objects'))).toBe(true);
    await s.close();
    const file = path.join(root, `plain-file-${n++}`);
    writeFileSync(file, 'x');
    await expect(openStorage(path.join(file, 'sub'))).rejects.toThrow(/^cannot use storage dir .*ENOTDIR/);
  });

  it('one process per directory: a live owner blocks, a dead owner (kill -9) does not', async () => {
    const dir = freshDir();
    const s = await openStorage(dir);
    await expect(openStorage(dir)).rejects.toThrow(/already open in this process/);
    await s.close();
    const c = await startChild(dir, 0, 'hold');
    let child: ChildProcess | undefined = c.child;
    try {
      await c.ready;
      await expect(openStorage(dir)).rejects.toThrow(new RegExp(`in use by process ${child.pid}`));
      child.kill('SIGKILL');
      await c.exited;
      child = undefined;
      const s2 = await openStorage(dir); // stale lock taken over
      expect(readFileSync(path.join(dir, 'LOCK'), 'utf8').trim()).toBe(String(process.pid));
      await s2.close();
      expect(existsSync(path.join(dir, 'LOCK'))).toBe(false);
    } finally {
      child?.kill('SIGKILL');
    }
  });

  it('crash between the snapshot file and the log trim: the snapshot is used, the trim finishes on open', async () => {
    const dir = freshDir();
    let crash = true;
    const s = await openStorage(dir, {
      hooks: {
        afterSnapshotFile: () => {
          if (crash) throw new Error('simulated crash');
        },
      },
    });
    const r = rec();
    await s.putRecord(r);
    const pos = await s.append(r.id, Array.from({ length: 10 }, (_, i) => ({ i: String(i) })));
    await expect(s.writeSnapshot(r.id, Buffer.from('snap@4'), pos[4]!)).rejects.toThrow(/simulated crash/);
    expect((await s.readSnapshot(r.id))!.pos).toBe(pos[4]);
    expect(await s.logLength(r.id)).toBe(10); // not trimmed yet
    expect((await readAll(s, r.id, pos[4])).map((e) => e.entry.i)).toEqual(['5', '6', '7', '8', '9']);
    crash = false;
    await s.close(); // close writes nothing: reopening sees the state the crash left
    const s2 = await openStorage(dir);
    expect(await s2.logLength(r.id)).toBe(5);
    expect((await readAll(s2, r.id)).map((e) => e.pos)).toEqual(pos.slice(5));
    expect((await s2.readSnapshot(r.id))!.data.toString()).toBe('snap@4');
    await s2.close();
  });

  it('a crash before the snapshot rename leaves the old snapshot; temp files are cleaned on open', async () => {
    const dir = freshDir();
    const s = await openStorage(dir);
    const r = rec();
    await s.putRecord(r);
    const pos = await s.append(r.id, [{ i: '0' }, { i: '1' }]);
    await s.writeSnapshot(r.id, Buffer.from('old'), pos[0]!);
    await s.close();
    const objDir = path.join(dir, 'objects', r.id);
    writeFileSync(path.join(objDir, 'snapshot.tmp.deadbeef'), 'half a snapshot');
    writeFileSync(path.join(objDir, 'log.tmp.cafebabe'), 'half a trimmed log');
    writeFileSync(path.join(dir, 'catalog.json.tmp.01020304'), '{"half":');
    const s2 = await openStorage(dir);
    expect((await s2.readSnapshot(r.id))!.data.toString()).toBe('old');
    expect((await readAll(s2, r.id)).map((e) => e.entry.i)).toEqual(['1']);
    expect(readdirSync(objDir).sort()).toEqual(['log', 'snapshot']);
    expect(readdirSync(dir).sort()).toEqual(['LOCK', 'catalog.json', 'objects']);
    await s2.close();
  });

  it('appends and reads while snapshots trim the log concurrently', async () => {
    const dir = freshDir();
    const s = await openStorage(dir);
    const r = rec();
    await s.putRecord(r);
    const acked: string[] = [];
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) acked.push(...(await s.append(r.id, [{ k: `${w}:${i}`, v: Buffer.alloc(200, i) }])));
    });
    const snapper = (async () => {
      for (let i = 0; i < 15; i++) {
        await sleep(10);
        const last = acked[acked.length - 1];
        if (last) await s.writeSnapshot(r.id, Buffer.from(`upto ${last}`), last);
        const snap = await s.readSnapshot(r.id);
        const tail = await readAll(s, r.id, snap?.pos);
        for (let j = 1; j < tail.length; j++) expect(comparePos(tail[j - 1]!.pos, tail[j]!.pos)).toBeLessThan(0);
      }
      stop = true;
    })();
    await Promise.all([...writers, snapper]);
    const snap = (await s.readSnapshot(r.id))!;
    const tail = await readAll(s, r.id, snap.pos);
    const have = new Set(tail.map((e) => e.pos));
    for (const p of acked) if (comparePos(p, snap.pos) > 0) expect(have.has(p)).toBe(true);
    expect(await s.logLength(r.id)).toBe(tail.length);
    await s.close();
  });

  it('group commit: one write + fdatasync for appends issued together (micro-benchmark)', async () => {
    const dir = freshDir();
    let writes = 0;
    const s = await openStorage(dir, { hooks: { beforeLogWrite: () => void writes++ } });
    const ids = Array.from({ length: 8 }, () => newObjectId());
    for (const [i, id] of ids.entries()) await s.putRecord(rec({ id, name: `b${i}` }));
    const v = Buffer.from(new Float32Array(128).fill(0.5).buffer);

    writes = 0;
    await Promise.all(Array.from({ length: 2000 }, (_, i) => s.append(ids[0]!, [{ op: 'add', id: String(i), v }])));
    expect(writes).toBe(1);

    const N1 = 500;
    let t0 = performance.now();
    for (let i = 0; i < N1; i++) await s.append(ids[1]!, [{ op: 'add', id: String(i), v }]);
    const seq = N1 / ((performance.now() - t0) / 1000);

    writes = 0;
    const N2 = 40_000;
    t0 = performance.now();
    let issued = 0;
    let done = 0;
    await new Promise<void>((resolve, reject) => {
      const go = () => {
        while (issued - done < 1000 && issued < N2) {
          const i = issued++;
          s.append(ids[i % 8]!, [{ op: 'add', id: String(i), v }]).then(() => {
            if (++done === N2) resolve();
            else go();
          }, reject);
        }
      };
      go();
    });
    const conc = N2 / ((performance.now() - t0) / 1000);
    console.log(
      `FileStorage appends (fdatasync before ack): sequential ${seq.toFixed(0)}/s; 1000 in flight over 8 objects ${conc.toFixed(0)}/s in ${writes} writes (${(N2 / writes).toFixed(0)} appends per fdatasync)`,
    );
    expect(writes).toBeLessThan(N2 / 20);
    await s.close();
  });
});
