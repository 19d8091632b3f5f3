import { parseCacheConfig } from '../../objects/cache.js';
import { parseRateLimit } from '../../objects/ratelimit.js';
import { AppObject } from '../../objects/objects.js';
import { createObject } from './_objects.js';
import { defineCreateCommand, LLM_REF, PROMPT, CACHE, RATELIMIT, APP_PARAMS } from './_common.js';
import { appSources } from './_app-def.js';

export default defineCreateCommand({
  name: 'LLM.CREATE-APP',
  summary: 'Creates a prompt application: a template sent to an LLM by LLM.RUN.',
  options: [
    LLM_REF,
    APP_PARAMS,
    PROMPT,
    CACHE,
    RATELIMIT,
  ],
  examples: ["LLM.CREATE-APP hello-world --LLM openai --PROMPT 'Say hello to {{name}}'"],
  handler(ctx, args) {
    const src = appSources(args);
    const def = {
      llm: src.llm,
      prompt: src.prompt ?? null,
      params: src.params,
      cache: parseCacheConfig(args.opts.get('cache')),
      ratelimit: parseRateLimit(args.opts.get('ratelimit')),
    };
    return createObject(ctx, args, 'app', (id, db, name, at) => new AppObject('app', id, db, name, at, def));
  },
});
