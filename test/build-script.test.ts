/**
 * scripts/build.mjs (prepare, prestart, pretest): compiles only when dist/ is stale. Run on a
 * copy of the script in a temporary project whose `typescript/bin/tsc` is a stand-in that records
 * each call (and fails when asked), so the staleness rules are checked without a 10 s compile.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ROOT } from '../harness/server.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'rls-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const calls = path.join(dir, 'tsc-calls');
function setup(): void {
  mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  copyFileSync(path.join(ROOT, 'scripts/build.mjs'), path.join(dir, 'scripts/build.mjs'));
  mkdirSync(path.join(dir, 'node_modules/typescript/bin'), { recursive: true });
  writeFileSync(path.join(dir, 'node_modules/typescript/package.json'), '{"name":"typescript","version":"0.0.0"}');
  // The stand-in tsc: appends its arguments to tsc-calls; exits 2 while a file FAIL exists.
  writeFileSync(
    path.join(dir, 'node_modules/typescript/bin/tsc'),
    `const fs = require('node:fs');
fs.appendFileSync(${JSON.stringify(calls)}, process.argv.slice(2).join(' ') + '\\n');
process.exit(fs.existsSync(${JSON.stringify(path.join(dir, 'FAIL'))}) ? 2 : 0);
`,
  );
  mkdirSync(path.join(dir, 'src/sub'), { recursive: true });
  writeFileSync(path.join(dir, 'src/a.ts'), 'export const a = 1;\n');
  writeFileSync(path.join(dir, 'src/sub/b.ts'), 'export const b = 1;\n');
  writeFileSync(path.join(dir, 'tsconfig.json'), '{}\n');
  writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
}

const tscCalls = () => (existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean).length : 0);
const build = (...args: string[]) => spawnSync(process.execPath, [path.join(dir, 'scripts/build.mjs'), ...args], { cwd: dir, encoding: 'utf8' });
/** Makes `p` look edited after the last build: the stamp is moved 10 s back, `p` 5 s back. */
const edit = (p: string) => {
  const back = (f: string, s: number) => {
    const t = new Date(Date.now() - s * 1000);
    utimesSync(path.join(dir, f), t, t);
  };
  back('dist/.build-stamp', 10);
  back(p, 5);
};

it('compiles when there is no stamp, then not again until something under src/, tsconfig.json, package.json or package-lock.json changes', () => {
  setup();
  expect(build().status).toBe(0);
  expect(tscCalls()).toBe(1);
  expect(readFileSync(calls, 'utf8')).toBe('-p tsconfig.json\n');
  expect(existsSync(path.join(dir, 'dist/.build-stamp'))).toBe(true);
  expect(build().status).toBe(0);
  expect(build().status).toBe(0);
  expect(tscCalls()).toBe(1); // nothing changed: no compile

  edit('src/sub/b.ts');
  expect(build().status).toBe(0);
  expect(tscCalls()).toBe(2);
  expect(build().status).toBe(0);
  expect(tscCalls()).toBe(2);

  edit('tsconfig.json');
  expect(build().status).toBe(0);
  expect(tscCalls()).toBe(3);
  writeFileSync(path.join(dir, 'package-lock.json'), '{}\n'); // a dependency changed (absent before: fine)
  edit('package-lock.json');
  expect(build().status).toBe(0);
  expect(tscCalls()).toBe(4);

  // A file removed: only its directory's mtime tells.
  rmSync(path.join(dir, 'src/a.ts'));
  edit('src');
  expect(build().status).toBe(0);
  expect(tscCalls()).toBe(5);

  expect(build('--force').status).toBe(0);
  expect(tscCalls()).toBe(6);
});

it('a failed compile leaves dist/ stale: the exit status is tsc\'s and the next run compiles again', () => {
  edit('src/sub/b.ts');
  const before = tscCalls();
  writeFileSync(path.join(dir, 'FAIL'), '');
  expect(build().status).toBe(2);
  expect(build().status).toBe(2);
  expect(tscCalls()).toBe(before + 2);
  rmSync(path.join(dir, 'FAIL'));
  expect(build().status).toBe(0);
  expect(build().status).toBe(0);
  expect(tscCalls()).toBe(before + 3);
});

it('in this checkout (built by pretest), the check alone is fast', () => {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs')], { cwd: ROOT }); // up to date after this
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stderr).not.toContain('building dist/');
  expect(performance.now() - t0).toBeLessThan(1500);
});

it('builds the native vector engine (node-gyp) only when native/ has it to build and the addon is missing or older than its sources', () => {
  const gypCalls = path.join(dir, 'gyp-calls');
  const addon = path.join(dir, 'native/build/Release/rlgraph.node');
  // The stand-in node-gyp (found through npm_config_node_gyp, as npm scripts have it): records its
  // arguments and writes the addon, as a real build would.
  const gyp = path.join(dir, 'fake-node-gyp.cjs');
  writeFileSync(
    gyp,
    `const fs = require('node:fs'); const path = require('node:path');
fs.appendFileSync(${JSON.stringify(gypCalls)}, process.argv.slice(2).join(' ') + '\\n');
fs.mkdirSync(path.dirname(${JSON.stringify(addon)}), { recursive: true });
fs.writeFileSync(${JSON.stringify(addon)}, 'addon');
`,
  );
  const env = { ...process.env, npm_config_node_gyp: gyp };
  const run = () => spawnSync(process.execPath, [path.join(dir, 'scripts/build.mjs')], { cwd: dir, encoding: 'utf8', env });
  const gypRuns = () => (existsSync(gypCalls) ? readFileSync(gypCalls, 'utf8').split('\n').filter(Boolean) : []);
  expect(run().status).toBe(0);
  expect(gypRuns()).toEqual([]); // no native/binding.gyp: nothing to build
  mkdirSync(path.join(dir, 'native'), { recursive: true });
  writeFileSync(path.join(dir, 'native/binding.gyp'), '{}\n');
  writeFileSync(path.join(dir, 'native/graph.cc'), '// engine\n');
  expect(run().status).toBe(0);
  expect(gypRuns()).toHaveLength(1);
  expect(gypRuns()[0]).toContain(`rebuild --directory ${path.join(dir, 'native')}`);
  expect(run().status).toBe(0);
  expect(gypRuns()).toHaveLength(1); // up to date
  const t = new Date(Date.now() - 5000);
  utimesSync(addon, t, t);
  expect(run().status).toBe(0);
  expect(gypRuns()).toHaveLength(2); // graph.cc newer than the addon
});
