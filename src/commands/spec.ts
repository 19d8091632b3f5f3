/**
 * One declaration per LLM.* command. From it the server derives:
 *  - arity errors and option parsing (parseCommandArgs, in args.ts),
 *  - COMMAND / COMMAND INFO / COMMAND DOCS entries (docs.ts), so redis-cli shows syntax hints,
 *  - the README command reference (scripts/gen-readme-commands.ts).
 *
 * The original's conventions hold for every command: `LLM.X key [options] [positionals]`,
 * option names case-insensitive, the first token that is not a known option starts the
 * positional arguments, a missing option value is `ERR syntax error`, leftover arguments are
 * the standard wrong-number-of-arguments error. A lone `--` ends the options, so an input that
 * looks like an option can still be given (`LLM.RUN app -- --NX`).
 */
import type { RespValue } from '../protocol/resp.js';
import type { CommandContext } from './plan.js';

export type ArgType = 'key' | 'string' | 'integer' | 'double' | 'json' | 'pure-token' | 'blob';

export interface OptionSpec {
  /** As typed, e.g. `--K`. Matched case-insensitively. */
  token: string;
  /** Value type; `pure-token` for flags without a value. */
  type: ArgType;
  /** Placeholder shown in syntax, e.g. `n` for `--K n`. */
  value?: string;
  summary: string;
  /** Integer bounds, inclusive. */
  min?: number;
  max?: number;
  /** Error text for a bad value, before `: <detail>` (the original's words, e.g. `invalid k`). */
  invalid?: string;
}

export interface PositionalSpec {
  name: string;
  type: ArgType;
  optional?: boolean;
  summary: string;
}

export interface ParsedArgs {
  key: Buffer;
  /** Values by lower-cased token without dashes (`k`, `nx`, `params`): Buffer, number, parsed JSON or true. */
  opts: Map<string, unknown>;
  positionals: Buffer[];
}

export interface CommandSpec {
  /** Upper case, e.g. `LLM.ADD`. */
  name: string;
  summary: string;
  complexity?: string;
  since: string;
  /**
   * Redis arity: positive = exact count (name included), negative = at least |arity|. The
   * original module registered every command with -1 (COMMAND INFO shows it); the key and the
   * positional arguments are still checked by parseCommandArgs (the standard arity error).
   */
  arity: number;
  /** COMMAND INFO flags: write, readonly, denyoom, fast, ... (`module` is added automatically). */
  flags: string[];
  aclCategories: string[];
  /** The key: always the first argument after the name. */
  keySpec: { access: 'RW' | 'RO' | 'OW'; op?: 'INSERT' | 'UPDATE' | 'DELETE' | 'ACCESS' };
  options: OptionSpec[];
  args: PositionalSpec[];
  reply: string;
  /** Examples for the README, as typed in redis-cli. */
  examples?: string[];
  handler(ctx: CommandContext, args: ParsedArgs): Promise<RespValue> | RespValue;
  /**
   * A run that makes its ordering-sensitive write (its log append) before it returns, with no
   * await before it, or null when this request cannot (it needs an LLM call first, or the slow
   * path of `handler`). Several such runs from one connection may then be in flight at once and
   * still apply in request order, so a pipeline of them costs one storage round trip, not one
   * each. Throwing is the same as null: `handler` then runs and answers.
   * A read may join too, and must then take its place among the store's changes before it returns;
   * `writesInFlight` says that writes started earlier in this pipeline are not applied yet (a read
   * that must see them returns null and waits for their replies).
   */
  pipelined?(ctx: CommandContext, args: ParsedArgs, writesInFlight: boolean): Promise<RespValue> | null;
  /**
   * Does this request call an LLM (a "blocking" command of the original module)? Inside MULTI such
   * a request is queued but answers `ERR Blocking module command called from transaction` in its
   * slot of EXEC's reply. Absent: never.
   */
  callsLlm?(args: ParsedArgs): boolean;
}

export const defineCommand = (spec: CommandSpec): CommandSpec => spec;

/** Canonical option name: `--VECTOR-STORE` → `vector-store`. */
export const optionName = (token: string): string => token.replace(/^--/, '').toLowerCase();

/** One-line syntax, e.g. `LLM.KNN key [--K n] [--EMBEDDING csv] [query]`. */
export function syntaxOf(spec: CommandSpec): string {
  const parts = [spec.name, 'key'];
  for (const o of spec.options) parts.push(o.type === 'pure-token' ? `[${o.token}]` : `[${o.token} ${o.value ?? optionName(o.token)}]`);
  for (const a of spec.args) parts.push(a.optional ? `[${a.name}]` : a.name);
  return parts.join(' ');
}
