/**
 * Prompt templates: mustache, with no HTML escaping (prompts are not HTML), and strict
 * variables: a variable the template uses outside a section must be given, else
 * `failed to render prompt: variable 'name' not found` (the original silently rendered a blank).
 * A template that does not parse is refused when the app is created, never at run time.
 */
import Mustache from 'mustache';
import { CommandError } from '../errors.js';

type Token = [string, string, number, number, Token[]?, number?];

export interface Template {
  source: string;
  /** Variables used outside sections (must be present when rendering). */
  required: string[];
}

/** Parses and checks a template; throws `invalid prompt template: ...`. */
export function compileTemplate(source: string): Template {
  let tokens: Token[];
  try {
    tokens = Mustache.parse(source) as unknown as Token[];
  } catch (e) {
    throw new CommandError(`invalid prompt template: ${(e as Error).message}`);
  }
  const required = new Set<string>();
  for (const t of tokens) {
    if (t[0] === 'name' || t[0] === '&' || t[0] === '{') {
      if (t[1] !== '.') required.add(t[1]);
    } else if (t[0] === '#' || t[0] === '^') {
      // A section's own name may be missing (falsy); names inside it resolve against its context.
    } else if (t[0] === '>') {
      throw new CommandError('invalid prompt template: partials are not supported');
    }
  }
  return { source, required: [...required] };
}

function lookup(view: Record<string, unknown>, name: string): unknown {
  let cur: unknown = view;
  for (const part of name.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(part in (cur as object))) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

export function renderTemplate(t: Template, vars: Record<string, unknown>): string {
  for (const name of t.required) {
    if (lookup(vars, name) === undefined) throw new CommandError(`failed to render prompt: variable '${name}' not found`);
  }
  try {
    return Mustache.render(t.source, vars, undefined, { escape: (s: unknown) => String(s) });
  } catch (e) {
    throw new CommandError(`failed to render prompt: ${(e as Error).message}`);
  }
}

/** --VARS must be a JSON object. */
export function checkVars(v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CommandError('--VARS must be a JSON object');
  return v as Record<string, unknown>;
}
