#!/usr/bin/env node
/**
 * Compiles the TypeScript (tsc -p tsconfig.json) only when dist/ is stale, so `npm start` and
 * `npm test` start at once when nothing changed, and `npm ci && npm start` compiles once (in
 * `prepare`). Plain Node with no dependencies: it runs before anything is built, also in the
 * Docker build stage.
 *
 * Stale means: no stamp (dist/.build-stamp, written after a successful tsc), or a file or
 * directory under src/ (a directory's mtime changes when a file is added, removed or renamed),
 * tsconfig.json, package.json or package-lock.json (say, another typescript) is newer than the stamp. The stamp gets the time tsc *started*,
 * so an edit made while it ran still counts as newer. `--force` compiles whatever the stamp says.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stamp = path.join(root, 'dist', '.build-stamp');

function newest(p) {
  let st;
  try {
    st = statSync(p);
  } catch {
    return -Infinity; // e.g. no package-lock.json
  }
  let t = st.mtimeMs;
  if (st.isDirectory()) for (const e of readdirSync(p)) t = Math.max(t, newest(path.join(p, e)));
  return t;
}

function stampTime() {
  try {
    return statSync(stamp).mtimeMs;
  } catch {
    return -Infinity;
  }
}

const inputs = ['src', 'tsconfig.json', 'package.json', 'package-lock.json'].map((f) => path.join(root, f));
const force = process.argv.includes('--force');
if (!force && Math.max(...inputs.map(newest)) < stampTime()) process.exit(0);

const started = new Date();
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
console.error('building dist/ (tsc -p tsconfig.json)');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
mkdirSync(path.dirname(stamp), { recursive: true });
writeFileSync(stamp, 'dist/ was compiled from src/ as of this file\'s mtime (scripts/build.mjs)\n');
utimesSync(stamp, started, started);
