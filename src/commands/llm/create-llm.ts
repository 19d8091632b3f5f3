import { parseRateLimit } from '../../objects/ratelimit.js';
import { defineCreateCommand, RATELIMIT } from './_common.js';
import { CommandError } from '../../errors.js';
import { parseLlmConfig, type LlmConfig } from '../../llm/index.js';
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

/**
 * The provider config, with the original's error text for bad params: `failed to parse openai
 * options: <detail>` (the original used it for azure_openai too). Unlike the original, the detail
 * never includes the params (they carry the API key).
 */
function parseOptions(type: string, params: unknown): LlmConfig {
  try {
    return parseLlmConfig(type, params);
  } catch (e) {
    const prefix = 'invalid LLM params: ';
    if (e instanceof CommandError && e.message.startsWith(prefix)) {
      const kind = type.toLowerCase() === 'local' ? 'local' : 'openai';
      throw new CommandError(`failed to parse ${kind} options: ${e.message.slice(prefix.length)}`, e.prefix);
    }
    throw e;
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
    return createObject(ctx, args, 'llm', (id, db, name, at) => new ModelObject(id, db, name, at, parseOptions(type, params), ratelimit, secrets));
  },
});
