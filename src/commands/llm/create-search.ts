import { parseCacheConfig } from '../../objects/cache.js';
import { parseRateLimit } from '../../objects/ratelimit.js';
import { CommandError } from '../../errors.js';
import { AppObject, DEFAULT_SEARCH_PROMPT } from '../../objects/objects.js';
import { createObject, optString } from './_objects.js';
import { compileFilter } from '../../vector/filter.js';
import { defineCreateCommand, LLM_REF, PROMPT, VECTOR_STORE, FILTER, CACHE, RATELIMIT, APP_PARAMS } from './_common.js';
import { appSources } from './_app-def.js';

export default defineCreateCommand({
  name: 'LLM.CREATE-SEARCH',
  summary: 'Creates a search application that answers questions from the items of a vector store.',
  options: [
    LLM_REF,
    VECTOR_STORE,
    APP_PARAMS,
    PROMPT,
    { token: '--K', type: 'integer', value: 'n', min: 1, max: 10000, invalid: 'invalid k', summary: 'How many nearest items become the context (default 3).' },
    FILTER,
    CACHE,
    RATELIMIT,
  ],
  examples: ['LLM.CREATE-SEARCH search --LLM openai --VECTOR-STORE docs'],
  handler(ctx, args) {
    const src = appSources(args, 'search');
    const store = src.store;
    if (!store) throw new CommandError('no vector store is specified');
    const def = {
      llm: src.llm,
      prompt: src.prompt ?? DEFAULT_SEARCH_PROMPT,
      params: src.params,
      store,
      k: src.k ?? 3,
      filter: optString(args, 'filter') ?? null,
      cache: parseCacheConfig(args.opts.get('cache')),
      ratelimit: parseRateLimit(args.opts.get('ratelimit')),
    };
    if (def.filter !== null) compileFilter(def.filter);
    return createObject(ctx, args, 'search', (id, db, name, at) => new AppObject('search', id, db, name, at, def));
  },
});
