import { parseRateLimit } from '../../objects/ratelimit.js';
import { defineCreateCommand, RATELIMIT } from './_common.js';
import { CommandError } from '../../errors.js';
import { parseLlmConfig } from '../../llm/index.js';
import { ModelObject } from '../../objects/objects.js';
import { createObject, objectsOf, optString } from './_objects.js';
import { checkJsonDepth } from '../args.js';

/**
 * --PARAMS is parsed here rather than by the generic option parser: V8's JSON.parse messages
 * quote a piece of the input (`Unexpected token 's', ..."api_key":sk-proj-abc"... is not valid
 * JSON`), and these params carry the API key. The quoted piece is dropped from the reply.
 */
function parseParams(raw: Buffer | undefined): unknown {
  if (raw === undefined) return {};
  const text = raw.toString('utf8');
  checkJsonDepth(text);
  try {
    return JSON.parse(text);
  } catch (e) {
    const detail = (e as Error).message.replace(/,?\s*(?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '').trim();
    throw new CommandError(`failed to parse json: ${detail || 'not valid JSON'}`);
  }
}

export default defineCreateCommand({
  name: 'LLM.CREATE-LLM',
  summary: 'Creates an LLM provider object: OpenAI, Azure OpenAI, any OpenAI-compatible endpoint, or the offline local embedder.',
  options: [
    { token: '--TYPE', type: 'string', value: 'openai|azure_openai|local', summary: 'Provider type (default openai).' },
    // Declared as a string: parsed by parseParams (see above).
    { token: '--PARAMS', type: 'string', value: 'json', summary: 'Provider parameters: api_key, base_url, chat, embedding, http, ...' },
    RATELIMIT,
  ],
  examples: [`LLM.CREATE-LLM openai --PARAMS '{"api_key":"$OPENAI_API_KEY"}'`],
  handler(ctx, args) {
    const type = optString(args, 'type') ?? 'openai';
    const params = parseParams(args.opts.get('params') as Buffer | undefined);
    const ratelimit = parseRateLimit(args.opts.get('ratelimit'));
    const secrets = objectsOf(ctx).secrets;
    return createObject(ctx, args, 'llm', (id, db, name, at) => new ModelObject(id, db, name, at, parseLlmConfig(type, params), ratelimit, secrets));
  },
});
