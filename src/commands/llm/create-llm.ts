import { parseRateLimit } from '../../objects/ratelimit.js';
import { defineCreateCommand, RATELIMIT } from './_common.js';
import { CommandError } from '../../errors.js';
import { knownEmbeddingDim, parseLlmConfig, type LlmConfig, type LlmPolicy } from '../../llm/index.js';
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
function parseOptions(type: string, params: unknown, policy: LlmPolicy): LlmConfig {
  try {
    return parseLlmConfig(type, params, { policy });
  } catch (e) {
    const prefix = 'invalid LLM params: ';
    if (e instanceof CommandError && e.message.startsWith(prefix)) {
      const kind = type.toLowerCase() === 'local' || type.toLowerCase() === 'router' ? type.toLowerCase() : 'openai';
      throw new CommandError(`failed to parse ${kind} options: ${e.message.slice(prefix.length)}`, e.prefix);
    }
    throw e;
  }
}

/**
 * A router may not list itself, and the targets whose embedding dimension their config tells
 * must agree (the others are checked when they answer). Targets need not exist yet.
 */
function checkRouter(targets: string[], self: string, configOf: (key: string) => LlmConfig | undefined): void {
  if (targets.includes(self)) throw new CommandError(`failed to parse router options: a router may not list itself ('${self}') in 'targets'`);
  let first: { key: string; dim: number } | undefined;
  for (const t of targets) {
    const cfg = configOf(t);
    const dim = cfg ? knownEmbeddingDim(cfg) : undefined;
    if (dim === undefined) continue;
    if (!first) first = { key: t, dim };
    else if (first.dim !== dim) {
      throw new CommandError(`failed to parse router options: target '${t}' gives ${dim}-dimensional embeddings, '${first.key}' gives ${first.dim}: the targets of a router must give one dimension`);
    }
  }
}

export default defineCreateCommand({
  name: 'LLM.CREATE-LLM',
  summary: 'Creates an LLM provider object: OpenAI, Azure OpenAI, any OpenAI-compatible endpoint, or the offline local embedder.',
  options: [
    { token: '--TYPE', type: 'string', value: 'openai|azure_openai|local|router', summary: 'Provider type (default openai); router: other LLM keys with fallbacks, load balancing and shared cooldowns (see "Deadlines, retries, routers and cooldowns").' },
    // Declared as a string: parsed by parseParams (see above).
    { token: '--PARAMS', type: 'string', value: 'json', summary: 'Provider parameters: api_key, base_url, chat, embedding, timeout, retries, http, ...; a router: targets, strategy, weights, fallback_on, cooldown.' },
    RATELIMIT,
  ],
  examples: [
    `LLM.CREATE-LLM openai-patient --PARAMS '{"api_key":"$OPENAI_API_KEY","timeout":"20s","retries":2}'`,
    `LLM.CREATE-LLM pool --TYPE router --PARAMS '{"targets":["gpt-a","gpt-b"],"strategy":"fallback","cooldown":30}'`,
  ],
  handler(ctx, args) {
    const type = optString(args, 'type') ?? 'openai';
    const params = parseParams(args.opts.get('params') as Buffer | undefined);
    const ratelimit = parseRateLimit(args.opts.get('ratelimit'));
    const objects = objectsOf(ctx);
    const secrets = objects.secrets;
    return createObject(ctx, args, 'llm', (id, db, name, at) => {
      const cfg = parseOptions(type, params, ctx.services.llmPolicy);
      if (cfg.type === 'router') checkRouter(cfg.targets, name, (key) => {
        const o = objects.get(db, key);
        return o instanceof ModelObject ? o.llm : undefined;
      });
      return new ModelObject(id, db, name, at, cfg, ratelimit, secrets);
    });
  },
});
