/**
 * Argument parsing for LLM.* commands, driven by their declarations (spec.ts).
 */
import { CommandError, arityError, syntaxError } from '../errors.js';
import { optionName, type CommandSpec, type OptionSpec, type ParsedArgs } from './spec.js';

/** Arity as Redis checks it: argv includes the command name. */
export function checkArity(spec: CommandSpec, argc: number): void {
  const a = spec.arity;
  // Every LLM.* command names a key; -1 (the original's declared arity) leaves that check to us.
  if (argc < 2 || (a > 0 && argc !== a) || (a < 0 && argc < -a)) throw arityError(spec.name);
}

const INT_RE = /^-?(0|[1-9][0-9]*)$/;

/** Strict integer parsing: no sign, spaces, fractions or trailing garbage (`12abc` is rejected). */
export function parseInteger(b: Buffer | string, what = 'value', min = -Number.MAX_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  const s = typeof b === 'string' ? b : b.toString('latin1');
  if (!INT_RE.test(s)) throw new CommandError(`${what} is not an integer or out of range`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new CommandError(`${what} is not an integer or out of range`);
  return n;
}

/** Deepest JSON nesting accepted in arguments (RedisJSON's limit too). */
export const MAX_JSON_DEPTH = 128;

/**
 * Refuses JSON nested deeper than MAX_JSON_DEPTH before it is parsed: V8 parses any depth, but
 * JSON.stringify (storage, INFO) then overflows the stack at a few thousand levels.
 */
export function checkJsonDepth(s: string, max = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) throw new CommandError(`failed to parse json: nested deeper than ${max} levels`);
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
}

export function parseJson(b: Buffer | string): unknown {
  const s = typeof b === 'string' ? b : b.toString('utf8');
  checkJsonDepth(s);
  try {
    return JSON.parse(s);
  } catch (e) {
    throw new CommandError(`failed to parse json: ${(e as Error).message}`);
  }
}

function convert(opt: OptionSpec, raw: Buffer): unknown {
  switch (opt.type) {
    case 'integer':
      if (opt.invalid !== undefined) {
        try {
          return parseInteger(raw, opt.token.toUpperCase(), opt.min, opt.max);
        } catch {
          throw new CommandError(`${opt.invalid}: ${opt.token.toUpperCase()} must be an integer in [${opt.min ?? 0}, ${opt.max ?? Number.MAX_SAFE_INTEGER}]`);
        }
      }
      return parseInteger(raw, opt.token.toUpperCase(), opt.min, opt.max);
    case 'double': {
      const s = raw.toString('latin1');
      const n = Number(s);
      if (s.trim() === '' || s !== s.trim() || !Number.isFinite(n)) throw new CommandError(`${opt.token.toUpperCase()} is not a valid float`);
      if ((opt.min !== undefined && n < opt.min) || (opt.max !== undefined && n > opt.max)) throw new CommandError(`${opt.token.toUpperCase()} is out of range`);
      return n;
    }
    case 'json':
      return parseJson(raw);
    default:
      return raw;
  }
}

/**
 * `argv` is the whole request (name first). Throws CommandError for arity, syntax and
 * option-value errors; nothing is executed before parsing succeeded.
 */
export function parseCommandArgs(spec: CommandSpec, argv: Buffer[]): ParsedArgs {
  checkArity(spec, argv.length);
  const opts = new Map<string, unknown>();
  const byToken = new Map<string, OptionSpec>();
  for (const o of spec.options) byToken.set(o.token.toLowerCase(), o);
  let i = 2;
  while (i < argv.length) {
    const tok = argv[i];
    if (tok.length === 2 && tok[0] === 45 && tok[1] === 45) {
      // `--` ends the options: what follows is positional even if it looks like an option.
      i++;
      break;
    }
    if (tok.length < 3 || tok[0] !== 45 || tok[1] !== 45) break;
    const opt = byToken.get(tok.toString('latin1').toLowerCase());
    if (!opt) break;
    if (opt.type === 'pure-token') {
      opts.set(optionName(opt.token), true);
      i++;
      continue;
    }
    if (i + 1 >= argv.length) throw syntaxError();
    opts.set(optionName(opt.token), convert(opt, argv[i + 1]));
    i += 2;
  }
  const positionals = argv.slice(i);
  const required = spec.args.filter((a) => !a.optional).length;
  if (positionals.length < required || positionals.length > spec.args.length) throw arityError(spec.name);
  return { key: argv[1], opts, positionals };
}
