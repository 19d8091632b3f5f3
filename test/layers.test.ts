/** The layer order of src/ (scripts/check-layers.ts): no import cycle, no import of a higher layer. */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { checkLayers, importsOf } from '../scripts/check-layers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'layers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmp, 'src-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  }
  return root;
}

it('src/ has no import cycle and no import against the layer order', () => {
  expect(checkLayers(new URL('../src', import.meta.url).pathname)).toEqual([]);
});

it('the check finds an upward import, a same-layer import, a cycle (type-only too) and a file in no layer', () => {
  const root = tree({
    'errors.ts': 'export class E {}\n',
    'storage/a.ts': "import { x } from '../objects/o.js';\nexport const a = x;\n",
    'vector/v.ts': "import { a } from '../storage/a.js';\nexport const v = a;\n",
    'objects/o.ts': "import type { P } from '../objects/p.js';\nexport const x: P | 1 = 1;\n",
    'objects/p.ts': "import { x } from './o.js';\nexport type P = typeof x;\n",
    'commands/c.ts': "// import { s } from '../server/s.js';\n/* import { s } from '../server/s.js'; */\nimport { E } from '../errors.js';\nexport const c = E;\n",
    'server/s.ts': "export const s = import('../commands/c.js');\n",
    'misc/m.ts': 'export const m = 1;\n',
  });
  const problems = checkLayers(root);
  expect(problems).toContainEqual(expect.stringMatching(/^storage\/a\.ts \(storage, layer 1\) imports objects\/o\.ts \(objects, layer 2\)/));
  expect(problems).toContainEqual(expect.stringMatching(/^vector\/v\.ts \(vector, layer 1\) imports storage\/a\.ts \(storage, layer 1\)/));
  expect(problems).toContainEqual(expect.stringMatching(/^import cycle: objects\/(o|p)\.ts -> objects\/(p|o)\.ts -> objects\/(o|p)\.ts$/));
  expect(problems).toContainEqual(expect.stringMatching(/^misc\/m\.ts: not in any layer/));
  // Comments are not imports; a dynamic import of a lower layer is fine.
  expect(problems.filter((p) => p.startsWith('commands/') || p.startsWith('server/'))).toEqual([]);
  expect(problems).toHaveLength(4);
});

it('tests and benchmarks share one harness (harness/): neither imports the other', () => {
  const root = new URL('..', import.meta.url).pathname;
  const bad: string[] = [];
  for (const [dir, other] of [['test', 'bench'], ['bench', 'test']] as const) {
    for (const f of readdirSync(path.join(root, dir))) {
      if (!f.endsWith('.ts')) continue;
      for (const dep of importsOf(root, path.join(root, dir, f))) if (dep.startsWith(`${other}/`)) bad.push(`${dir}/${f} imports ${dep}`);
    }
  }
  expect(bad).toEqual([]);
});
