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
}

export function appSources(args: ParsedArgs): AppSources {
  const llmText = optString(args, 'llm');
  if (llmText !== undefined) checkJsonDepth(llmText);
  const ref = parseLlmRef(llmText, 'chat');
  const given = { ...(optObject(args, 'params', '--PARAMS') ?? {}) };
  let prompt = optString(args, 'prompt');
  if ('prompt' in given) {
    const p = given.prompt;
    delete given.prompt;
    if (typeof p !== 'string') throw new CommandError("invalid --PARAMS: 'prompt' must be a string");
    prompt ??= p;
  }
  const params = { ...(ref?.params ?? {}), ...parseRequestFields('chat', given, '--PARAMS') };
  return { llm: ref?.key ?? null, prompt, params };
}
