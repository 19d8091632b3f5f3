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
 *
 * First the native vector engine (native/graph.cc → native/build/Release/rlgraph.node, with the
 * node-gyp that ships with npm and this node's own headers, so nothing is downloaded), when it is
 * missing or older than its sources or hnswlib's headers.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
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

const force = process.argv.includes('--force');
buildNative();

const inputs = ['src', 'tsconfig.json', 'package.json', 'package-lock.json'].map((f) => path.join(root, f));
if (!force && Math.max(...inputs.map(newest)) < stampTime()) process.exit(0);

const started = new Date();
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
console.error('building dist/ (tsc -p tsconfig.json)');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
mkdirSync(path.dirname(stamp), { recursive: true });
writeFileSync(stamp, 'dist/ was compiled from src/ as of this file\'s mtime (scripts/build.mjs)\n');
utimesSync(stamp, started, started);

function buildNative() {
  const addon = path.join(root, 'native', 'build', 'Release', 'rlgraph.node');
  let hnswlibSrc;
  try {
    hnswlibSrc = path.join(path.dirname(createRequire(import.meta.url).resolve('hnswlib-node/package.json')), 'src');
  } catch {
    hnswlibSrc = path.join(root, 'node_modules', 'hnswlib-node', 'src');
  }
  const sources = [path.join(root, 'native', 'graph.cc'), path.join(root, 'native', 'binding.gyp'), hnswlibSrc];
  if (!existsSync(sources[1])) return; // a project without the native engine
  let built = -Infinity;
  try {
    built = statSync(addon).mtimeMs;
  } catch {}
  if (!force && Math.max(...sources.map(newest)) < built) return;
  const npmDir = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
  const gyp = [process.env.npm_config_node_gyp, path.join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find((p) => p && existsSync(p));
  if (!gyp) {
    console.error('cannot build the native vector engine: node-gyp (shipped with npm) not found');
    process.exit(1);
  }
  const args = [gyp, 'rebuild', '--directory', path.join(root, 'native')];
  const nodedir = path.dirname(path.dirname(process.execPath));
  if (existsSync(path.join(nodedir, 'include', 'node', 'node.h'))) args.push(`--nodedir=${nodedir}`);
  console.error('building native/ (node-gyp rebuild: the vector engine)');
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    console.error('native build failed: it needs python3, make and g++ (Debian: apt-get install -y python3 make g++)');
    process.exit(r.status ?? 1);
  }
}
