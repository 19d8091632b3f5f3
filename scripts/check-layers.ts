/**
 * The layer check: no import cycle in src/, and no import against the layer order. Run by
 * test/layers.test.ts (so `npm test` fails on a violation) and as `npm run check:layers`.
 *
 * Layers, lowest first (a file may import its own folder and any lower layer, nothing else):
 *
 *   0  util (src/util/, src/errors.ts, src/log.ts)   protocol       — nothing of ours
 *   1  config   storage   vector   llm   proxy                      — only layer 0
 *   2  objects                                                      — the object model
 *   3  apps                                                         — running apps (LLM.RUN)
 *   4  commands                                                     — every command's semantics
 *   5  server                                                       — transport and process
 *   6  cli (src/cli.ts)
 *
 * Folders of one layer do not import each other. Type-only imports count: a cycle of types is
 * still a cycle for a reader.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export const LAYERS: Record<string, number> = {
  util: 0,
  protocol: 0,
  config: 1,
  storage: 1,
  vector: 1,
  llm: 1,
  proxy: 1,
  objects: 2,
  apps: 3,
  commands: 4,
  server: 5,
  cli: 6,
};

/** Files directly in src/ and the group they belong to. */
const TOP_FILES: Record<string, string> = { 'errors.ts': 'util', 'log.ts': 'util', 'cli.ts': 'cli' };

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The group (folder, or top-level file's group) of a file relative to src/. */
function groupOf(rel: string): string | undefined {
  const parts = rel.split('/');
  return parts.length === 1 ? TOP_FILES[parts[0]!] : parts[0];
}

/** Relative imports of a file, resolved to paths relative to `srcDir` (.js → .ts). */
export function importsOf(srcDir: string, file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec || !spec.startsWith('.')) continue;
    const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
    out.push(path.relative(srcDir, target).split(path.sep).join('/'));
  }
  return out;
}

/** Every violation found under `srcDir`, as readable lines (empty when the tree is clean). */
export function checkLayers(srcDir: string): string[] {
  const problems: string[] = [];
  const files = listFiles(srcDir).map((f) => path.relative(srcDir, f).split(path.sep).join('/'));
  const graph = new Map<string, string[]>();
  for (const rel of files) {
    const from = groupOf(rel);
    if (from === undefined || !(from in LAYERS)) {
      problems.push(`${rel}: not in any layer (add its folder to LAYERS in scripts/check-layers.ts)`);
      continue;
    }
    const deps = importsOf(srcDir, path.join(srcDir, rel));
    graph.set(rel, deps);
    for (const dep of deps) {
      if (dep.startsWith('..')) {
        problems.push(`${rel} imports ${dep}, outside src/`);
        continue;
      }
      const to = groupOf(dep);
      if (to === undefined || !(to in LAYERS)) {
        problems.push(`${rel} imports ${dep}, which is in no layer`);
        continue;
      }
      if (to === from) continue;
      if (LAYERS[to]! >= LAYERS[from]!) {
        problems.push(`${rel} (${from}, layer ${LAYERS[from]}) imports ${dep} (${to}, layer ${LAYERS[to]}): only lower layers may be imported`);
      }
    }
  }
  for (const cycle of findCycles(graph)) problems.push(`import cycle: ${cycle.join(' -> ')}`);
  return problems;
}

/** One cycle per strongly connected component of more than one file (or a file importing itself). */
function findCycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(pathThrough(graph, new Set(comp), v));
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return cycles;
}

/** A concrete cycle from `start` back to it inside one component, for the message. */
function pathThrough(graph: Map<string, string[]>, comp: Set<string>, start: string): string[] {
  const prev = new Map<string, string>();
  const queue = [start];
  const seen = new Set([start]);
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!comp.has(w)) continue;
      if (w === start) {
        const cycle = [start];
        for (let x = v; x !== start; x = prev.get(x)!) cycle.splice(1, 0, x);
        return [...cycle, start];
      }
      if (!seen.has(w)) {
        seen.add(w);
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [...comp];
}

if (process.argv[1] && import.meta.url === new URL(`file://${path.resolve(process.argv[1])}`).href) {
  const problems = checkLayers(path.resolve(path.dirname(new URL(import.meta.url).pathname), '../src'));
  for (const p of problems) console.error(p);
  console.log(problems.length === 0 ? 'layers: ok' : `layers: ${problems.length} problem(s)`);
  process.exit(problems.length === 0 ? 0 : 1);
}
