/** Option declarations shared by several LLM.* commands. */
import { defineCommand, type CommandSpec, type OptionSpec } from '../spec.js';

export const NX: OptionSpec = { token: '--NX', type: 'pure-token', summary: 'Only create the key if it does not exist (reply 0 otherwise).' };
export const XX: OptionSpec = { token: '--XX', type: 'pure-token', summary: 'Only overwrite an existing key (reply 0 otherwise).' };
export const TIMEOUT: OptionSpec = { token: '--TIMEOUT', type: 'integer', value: 'ms', min: 1, max: 86_400_000, invalid: 'timeout should be a number', summary: 'Give up on the LLM call after this many milliseconds.' };
export const LLM_REF: OptionSpec = { token: '--LLM', type: 'string', value: 'llm', summary: 'LLM this app calls: a key (LLM.CREATE-LLM), or JSON {"key":...,"params":{...}} whose params are chat request fields for this app\'s calls.' };
export const APP_PARAMS: OptionSpec = { token: '--PARAMS', type: 'json', value: 'json', summary: 'Chat request fields for this app\'s calls, laid over the LLM\'s "chat" params, e.g. {"temperature":0}; the original\'s keys "prompt", "vector-store", "k" and "history" stand for those options when they are not given.' };
export const PROMPT: OptionSpec = { token: '--PROMPT', type: 'string', value: 'template', summary: 'Mustache template of the prompt (no HTML escaping).' };
export const EMBEDDING: OptionSpec = { token: '--EMBEDDING', type: 'string', value: 'f1,f2,...', summary: 'The vector as comma-separated numbers instead of embedding the text.' };
export const EMBEDDING_FP32: OptionSpec = { token: '--EMBEDDING-FP32', type: 'blob', value: 'bytes', summary: 'The vector as little-endian float32 bytes (fast binary form of --EMBEDDING).' };
export const VECTOR_STORE: OptionSpec = { token: '--VECTOR-STORE', type: 'string', value: 'store', summary: 'Key of the vector store (LLM.CREATE-VECTOR-STORE).' };
/**
 * The five LLM.CREATE-* commands share the original's create semantics and declaration: `key`
 * then options (--NX/--XX first), no positional arguments, reply 1 or 0.
 */
export function defineCreateCommand(spec: Pick<CommandSpec, 'name' | 'summary' | 'examples' | 'handler'> & { options: OptionSpec[] }): CommandSpec {
  return defineCommand({
    since: '0.1.0',
    arity: -1,
    flags: ['write', 'denyoom'],
    aclCategories: ['@write', '@slow'],
    keySpec: { access: 'OW', op: 'UPDATE' },
    args: [],
    reply: 'Integer 1 when the object was written; 0 when --NX or --XX refused.',
    ...spec,
    options: [NX, XX, ...spec.options],
  });
}
export const SESSION: OptionSpec = { token: '--SESSION', type: 'string', value: 'id', summary: 'Chat session (default: the app\'s one default session). Sessions never see each other\'s memory.' };
export const FILTER: OptionSpec = { token: '--FILTER', type: 'string', value: 'expr', summary: 'Only items whose attributes match, e.g. \'tenant == "acme" and year >= 2023\' (see "Filter expressions").' };
export const CACHE: OptionSpec = { token: '--CACHE', type: 'json', value: 'json', summary: 'Response cache: {"exact":true,"semantic":{"threshold":0.92},"ttl":3600,"extend_on_hit":false} (see "Caches").' };
export const RATELIMIT: OptionSpec = { token: '--RATELIMIT', type: 'json', value: 'json', summary: 'Rate limit: {"requests":20,"tokens":40000,"window":60,"per_scope":true} (see "Rate limits").' };
