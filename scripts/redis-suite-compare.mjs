#!/usr/bin/env node
// Reads the runtest logs written by scripts/redis-suite.sh (<unit>.direct.log, <unit>.server.log),
// prints per unit the tests passed directly / through the server, and the tests that pass directly
// but not through the server (failed, or never reported: the unit died or timed out first).
// Writes the same to the summary file; exit code 1 when that list is not empty.
// Usage: redis-suite-compare.mjs <outdir> <summary> <elapsed-s> <src> "<modes>" <unit>...
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const [outDir, summaryFile, elapsed, src, modesArg, ...units] = process.argv.slice(2);
const modes = modesArg.split(/\s+/).filter(Boolean);

/** One runtest log: ok/err/skip names (as multisets: loops repeat a name), errors, the end. */
function parse(file) {
  const r = { ok: [], err: [], skip: [], ignore: 0, errText: new Map(), exception: null, timeout: false, exit: null, missing: false };
  if (!existsSync(file)) { r.missing = true; return r; }
  const lines = readFileSync(file, 'utf8').replace(/\x1b\[[0-9;]*m/g, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m;
    if ((m = /^\[ok\]: (.*) \(\d+ ms\)$/.exec(line))) r.ok.push(m[1]);
    else if ((m = /^\[err\]: (.*?)(?: in tests\/\S+)?$/.exec(line))) {
      r.err.push(m[1]);
      const text = [];
      for (let j = i + 1; j < lines.length && !/^\[[a-z0-9/ -]+\]:/i.test(lines[j]) && text.length < 6; j++) {
        if (lines[j].trim()) text.push(lines[j].trim());
      }
      if (!r.errText.has(m[1])) r.errText.set(m[1], text.join(' | ').slice(0, 400));
    } else if ((m = /^\[skip\]: (.*)$/.exec(line))) r.skip.push(m[1]);
    else if (/^\[ignore\]: /.test(line)) r.ignore++;
    else if ((m = /^\[exception\]: (.*)$/.exec(line))) r.exception = [m[1], ...lines.slice(i + 1, i + 8)].join(' | ').slice(0, 600);
    else if (/^\[suite-timeout\]/.test(line)) r.timeout = true;
    else if ((m = /^\[suite-exit\]: (\d+)/.exec(line))) r.exit = Number(m[1]);
    else if (/^\[suite-error\]/.test(line)) r.exception = line;
  }
  return r;
}

function count(list) {
  const m = new Map();
  for (const x of list) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

const out = [];
const say = (s = '') => out.push(s);
say(`Redis Tcl suite, direct vs through redis-llm-server (${src}); ${units.length} units, ${elapsed}s`);
say(`modes: ${modes.join(', ')}; runtest --singledb --ignore-encoding --ignore-digest --durable --clients 1`);
if (process.env.REDIS_SUITE_SERVER_ARGS) say(`server started with: ${process.env.REDIS_SUITE_SERVER_ARGS}`);
const missing = existsSync(join(outDir, 'missing.txt')) ? readFileSync(join(outDir, 'missing.txt'), 'utf8').trim().split('\n') : [];
if (missing.length) say(`not in this version's suite (skipped): ${missing.join(' ')}`);
say();
const header = ['unit', ...modes.map((m) => `ok ${m}`), ...modes.map((m) => `err ${m}`), 'notes'];
const rows = [header];
const regressions = [];
for (const u of units) {
  const f = u.replace(/\//g, '-');
  const runs = Object.fromEntries(modes.map((m) => [m, parse(join(outDir, `${f}.${m}.log`))]));
  const notes = [];
  for (const m of modes) {
    const r = runs[m];
    if (r.missing) notes.push(`${m}: no log`);
    if (r.timeout) notes.push(`${m}: TIMEOUT (killed; unreported tests count as failed)`);
    if (r.exception) notes.push(`${m}: EXCEPTION`);
    if (!r.missing && r.ok.length + r.err.length === 0 && r.exit) notes.push(`${m}: runtest failed (exit ${r.exit}), see its log`);
  }
  rows.push([u, ...modes.map((m) => String(runs[m].ok.length)), ...modes.map((m) => String(runs[m].err.length)), notes.join('; ')]);
  if (runs.direct && runs.server) {
    const okS = count(runs.server.ok);
    const errS = new Set(runs.server.err);
    const skipS = new Set(runs.server.skip);
    const seen = new Map();
    for (const name of runs.direct.ok) {
      const n = (seen.get(name) ?? 0) + 1;
      seen.set(name, n);
      if ((okS.get(name) ?? 0) >= n) continue;
      let why;
      if (errS.has(name)) why = `err: ${runs.server.errText.get(name) ?? ''}`;
      else if (skipS.has(name)) why = 'skipped through the server';
      else if (runs.server.timeout) why = 'not run (unit timed out through the server)';
      else if (runs.server.exception) why = 'not run (unit ended by an exception through the server)';
      else why = 'not reported through the server';
      regressions.push({ unit: u, name, why });
    }
    for (const m of ['server']) {
      if (runs[m].exception) regressions.push({ unit: u, name: '(unit exception)', why: runs[m].exception });
    }
  }
}
const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const r of rows) say(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd());
say();
const real = regressions.filter((r) => r.name !== '(unit exception)');
if (modes.includes('direct') && modes.includes('server')) {
  say(`pass directly, not through the server: ${real.length}`);
  for (const r of regressions) say(`- [${r.unit}] ${r.name}\n    ${r.why}`);
}
const text = out.join('\n') + '\n';
process.stdout.write(text);
mkdirSync(dirname(summaryFile), { recursive: true });
writeFileSync(summaryFile, text);
process.exit(real.length ? 1 : 0);
