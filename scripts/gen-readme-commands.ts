/** Rewrites the README's command reference from the LLM.* declarations. */
import { readFileSync, writeFileSync } from 'node:fs';
import { withReference } from '../src/commands/reference.js';

const path = new URL('../README.md', import.meta.url);
writeFileSync(path, withReference(readFileSync(path, 'utf8')));
console.log('README.md command reference updated');
