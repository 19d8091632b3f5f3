/** The README's command reference is generated from the declarations: it must be up to date. */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { withReference } from '../src/commands/reference.js';
import { LLM_COMMANDS } from '../src/commands/table.js';

it('README command reference matches the declarations (run `npm run docs`)', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  expect(readme).toBe(withReference(readme));
  for (const c of LLM_COMMANDS) expect(readme).toContain(`### ${c.name}`);
});
