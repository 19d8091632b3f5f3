/** The README's command reference is generated from the declarations: it must be up to date. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { withReference } from '../src/commands/reference.js';
import { LLM_COMMANDS } from '../src/commands/table.js';

it('README command reference matches the declarations (run `npm run docs`)', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  expect(readme).toBe(withReference(readme));
  for (const c of LLM_COMMANDS) expect(readme).toContain(`### ${c.name}`);
});

it('README links stay inside the repository and point at files that exist', () => {
  const root = new URL('../', import.meta.url);
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const targets = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((t) => !/^(https?:|mailto:|#)/.test(t));
  expect(targets.length).toBeGreaterThan(0);
  for (const t of targets) {
    const file = t.split('#')[0]!;
    expect(path.posix.normalize(file).startsWith('..'), `${t} leaves the repository`).toBe(false);
    expect(existsSync(new URL(file, root)), `${t} does not exist`).toBe(true);
  }
});
