/**
 * The README's command reference, generated from the LLM.* declarations
 * (`npm run docs` rewrites it; test/readme.test.ts fails when it is out of date).
 */
import { syntaxOf, type CommandSpec } from './spec.js';
import { LLM_COMMANDS } from './table.js';

export const BEGIN_MARK = '<!-- BEGIN GENERATED COMMAND REFERENCE (npm run docs) -->';
export const END_MARK = '<!-- END GENERATED COMMAND REFERENCE -->';

function one(spec: CommandSpec): string {
  const lines = [`### ${spec.name}`, '', spec.summary, '', '```', syntaxOf(spec), '```', ''];
  if (spec.options.length > 0 || spec.args.length > 0) {
    lines.push('| argument | meaning |', '| --- | --- |');
    for (const o of spec.options) {
      const shown = o.type === 'pure-token' ? o.token : `${o.token} ${o.value ?? ''}`.trim();
      lines.push(`| \`${shown}\` | ${o.summary.replace(/\|/g, '\\|')} |`);
    }
    for (const a of spec.args) lines.push(`| \`${a.name}\`${a.optional ? ' (optional)' : ''} | ${a.summary.replace(/\|/g, '\\|')} |`);
    lines.push('');
  }
  lines.push(`Reply: ${spec.reply}`, '');
  if (spec.examples?.length) {
    lines.push('```', ...spec.examples.map((e) => `redis-cli --raw ${e}`), '```', '');
  }
  return lines.join('\n');
}

export function commandReference(): string {
  return [BEGIN_MARK, '', ...LLM_COMMANDS.map(one), END_MARK].join('\n');
}

/** README text with the generated block replaced. */
export function withReference(readme: string): string {
  const a = readme.indexOf(BEGIN_MARK);
  const b = readme.indexOf(END_MARK);
  if (a < 0 || b < 0) throw new Error('README has no generated command reference markers');
  return readme.slice(0, a) + commandReference() + readme.slice(b + END_MARK.length);
}
