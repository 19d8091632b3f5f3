/**
 * Prompt templates: mustache, with no HTML escaping (prompts are not HTML), and strict
 * variables: a variable the template renders must be given (at the top level, or inside a
 * section by the section's item or any enclosing context), else
 * `failed to render prompt: variable 'name' not found` (the original silently rendered a blank).
 * A section whose name is missing is simply false (`{{#flag}}...{{/flag}}` renders nothing).
 * A template that does not parse is refused when the app is created, never at run time.
 *
 * Templates are parsed once, by compileTemplate, with a writer that has no template cache: the
 * tokens live in the Template (so in the app object) and go when the app goes. (Mustache's
 * default writer caches every template it ever parsed or rendered, for the process lifetime.)
 */
import Mustache from 'mustache';
import { CommandError } from '../errors.js';

type Token = [string, string, number, number, Token[]?, number?];

export interface Template {
  source: string;
  /** Variables used outside sections (must be present when rendering). */
  required: string[];
  /** Parsed tokens (what renderTemplate renders). */
  tokens: Token[];
}

const hasOwn = (o: unknown, k: string): boolean => o !== null && o !== undefined && Object.prototype.hasOwnProperty.call(Object(o), k);

/**
 * Variable lookup on own members only. Mustache's own lookup also finds inherited members
 * (`{{constructor}}`, `{{toString}}`, `{{__proto__}}`) and calls them when they are functions:
 * a prompt rendered "[object Object]" where a variable was missing, and `{{#toString}}` counted as
 * true. Here a name is found when each part of it is an own member (array indexes and a string's
 * `length` included), in the innermost context that has it, as mustache resolves names; nothing is
 * ever called (variables come from JSON).
 */
class StrictContext extends Mustache.Context {
  override push(view: unknown): Mustache.Context {
    return new StrictContext(view, this);
  }
  override lookup(name: string): unknown {
    if (name === '.') return this.view;
    const parts = name.split('.');
    for (let c: Mustache.Context | undefined = this; c; c = c.parent) {
      let v: unknown = c.view;
      let i = 0;
      while (i < parts.length && hasOwn(v, parts[i]!)) v = (v as Record<string, unknown>)[parts[i++]!];
      if (i === parts.length) return v;
    }
    return undefined;
  }
}

class MissingVariable extends Error {
  constructor(readonly variable: string) {
    super(variable);
  }
}

/** Renders values as they are (no HTML escaping); a name found in no context is an error. */
class StrictWriter extends Mustache.Writer {
  constructor() {
    super();
    (this as unknown as { templateCache: unknown }).templateCache = undefined;
  }
  private value(token: string[], context: Mustache.Context): string {
    const v: unknown = context.lookup(token[1]!);
    if (v === undefined) throw new MissingVariable(token[1]!);
    return v === null ? '' : String(v);
  }
  override escapedValue(token: string[], context: Mustache.Context): string {
    return this.value(token, context);
  }
  override unescapedValue(token: string[], context: Mustache.Context): string {
    return this.value(token, context);
  }
}

const writer = new StrictWriter();

/** Parses and checks a template; throws `invalid prompt template: ...`. */
export function compileTemplate(source: string): Template {
  let tokens: Token[];
  try {
    tokens = writer.parse(source) as unknown as Token[];
  } catch (e) {
    throw new CommandError(`invalid prompt template: ${(e as Error).message}`);
  }
  const required = new Set<string>();
  const walk = (ts: Token[], top: boolean) => {
    for (const t of ts) {
      if (t[0] === 'name' || t[0] === '&') {
        if (top && t[1] !== '.') required.add(t[1]);
      } else if (t[0] === '#' || t[0] === '^') {
        // A section's own name may be missing (falsy); names inside it resolve against its context.
        walk(t[4] ?? [], false);
      } else if (t[0] === '>') {
        throw new CommandError('invalid prompt template: partials are not supported');
      }
    }
  };
  walk(tokens, true);
  return { source, required: [...required], tokens };
}

export function renderTemplate(t: Template, vars: Record<string, unknown>): string {
  try {
    return writer.renderTokens(t.tokens as unknown as string[][], new StrictContext(vars), undefined, t.source);
  } catch (e) {
    if (e instanceof MissingVariable) throw new CommandError(`failed to render prompt: variable '${e.variable}' not found`);
    throw new CommandError(`failed to render prompt: ${(e as Error).message}`);
  }
}

/** --VARS must be a JSON object. */
export function checkVars(v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CommandError('failed to render prompt: --VARS must be a JSON object');
  return v as Record<string, unknown>;
}
