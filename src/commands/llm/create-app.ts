import { parseCacheConfig } from '../../objects/cache.js';
import { parseRateLimit } from '../../objects/ratelimit.js';
import { AppObject } from '../../objects/objects.js';
import { parseRequestFields } from '../../llm/index.js';
import { createObject, optObject, optString } from './_objects.js';
import { defineCreateCommand, LLM_REF, PROMPT, CACHE, RATELIMIT } from './_common.js';

export default defineCreateCommand({
  name: 'LLM.CREATE-APP',
  summary: 'Creates a prompt application: a template sent to an LLM by LLM.RUN.',
  options: [
    LLM_REF,
    { token: '--PARAMS', type: 'json', value: 'json', summary: 'Chat request fields for this app\'s calls, laid over the LLM\'s "chat" params, e.g. {"temperature":0,"model":"gpt-4o-mini"}.' },
    PROMPT,
    CACHE,
    RATELIMIT,
  ],
  examples: ["LLM.CREATE-APP hello-world --LLM openai --PROMPT 'Say hello to {{name}}'"],
  handler(ctx, args) {
    const def = {
      llm: optString(args, 'llm') ?? null,
      prompt: optString(args, 'prompt') ?? null,
      params: parseRequestFields('chat', optObject(args, 'params', '--PARAMS') ?? {}, '--PARAMS'),
      cache: parseCacheConfig(args.opts.get('cache')),
      ratelimit: parseRateLimit(args.opts.get('ratelimit')),
    };
    return createObject(ctx, args, 'app', (id, db, name, at) => new AppObject('app', id, db, name, at, def));
  },
});
