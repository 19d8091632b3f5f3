/**
 * The parts every app definition shares (LLM.CREATE-APP / CREATE-SEARCH / CREATE-CHAT), read from
 * the original's sources:
 *  - the LLM: `--LLM key`, or `--LLM '{"key":"<llm>","params":{...}}'` whose params are chat
 *    request fields for this app's calls;
 *  - the prompt: `--PROMPT`, else `"prompt"` inside `--PARAMS`;
 *  - request fields: `--PARAMS` without its `prompt` (this project's extension), laid over the
 *    `--LLM` params.
 */
import { CommandError } from '../../errors.js';
import { parseRequestFields } from '../../llm/index.js';
import { parseLlmRef } from '../../objects/objects.js';
import { checkJsonDepth } from '../args.js';
import type { ParsedArgs } from '../spec.js';
import { optObject, optString } from './_objects.js';

export interface AppSources {
  llm: string | null;
  /** undefined: neither --PROMPT nor a "prompt" param (the app kind's default applies). */
  prompt: string | undefined;
  params: Record<string, unknown>;
  /** search and chat apps: --VECTOR-STORE, else "vector-store" (or "vector_store") in --PARAMS */
  store: string | undefined;
  /** search apps: --K, else "k" in --PARAMS */
  k: number | undefined;
  /** chat apps: --HISTORY, else "history" in --PARAMS (still to be validated) */
  history: unknown;
}

/**
 * The original's definition keys inside --PARAMS are taken as such (prompt; vector-store and k of
 * a search app; history of a chat app), never sent to the LLM as request fields; an option wins
 * over the same key in --PARAMS.
 */
export function appSources(args: ParsedArgs, kind: 'app' | 'search' | 'chat' = 'app'): AppSources {
  const llmText = optString(args, 'llm');
  if (llmText !== undefined) checkJsonDepth(llmText);
  const ref = parseLlmRef(llmText, 'chat');
  const given = { ...(optObject(args, 'params', '--PARAMS') ?? {}) };
  const take = (key: string): unknown => {
    const v = given[key];
    delete given[key];
    return v;
  };
  const str = (key: string, v: unknown): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw new CommandError(`invalid --PARAMS: '${key}' must be a non-empty string`);
    return v;
  };
  const pp = take('prompt');
  if (pp !== undefined && typeof pp !== 'string') throw new CommandError("invalid --PARAMS: 'prompt' must be a string");
  const prompt = optString(args, 'prompt') ?? pp;
  let store: string | undefined;
  let k: number | undefined;
  let history: unknown;
  if (kind !== 'app') {
    const fromParams = str('vector-store', take('vector-store')) ?? str('vector_store', take('vector_store'));
    store = optString(args, 'vector-store') ?? fromParams;
  }
  if (kind === 'search') {
    const pk = take('k');
    if (pk !== undefined && (typeof pk !== 'number' || !Number.isInteger(pk) || pk < 1 || pk > 10000)) {
      throw new CommandError("invalid k: 'k' in --PARAMS must be an integer in [1, 10000]");
    }
    k = (args.opts.get('k') as number | undefined) ?? (pk as number | undefined);
  }
  if (kind === 'chat') {
    const ph = take('history');
    history = args.opts.get('history') ?? ph;
  }
  const params = { ...(ref?.params ?? {}), ...parseRequestFields('chat', given, '--PARAMS') };
  return { llm: ref?.key ?? null, prompt, params, store, k, history };
}
