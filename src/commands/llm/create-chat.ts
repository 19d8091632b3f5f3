import { parseCacheConfig } from '../../objects/cache.js';
import { parseRateLimit } from '../../objects/ratelimit.js';
import { DEFAULT_CHAT_PROMPT } from '../../objects/objects.js';
import { ChatObject } from '../../objects/chat.js';
import { parseHistoryParams } from '../../objects/history.js';
import { createObject } from './_objects.js';
import { defineCreateCommand, LLM_REF, PROMPT, VECTOR_STORE, CACHE, RATELIMIT, APP_PARAMS } from './_common.js';
import { appSources } from './_app-def.js';

export default defineCreateCommand({
  name: 'LLM.CREATE-CHAT',
  summary: 'Creates a chat application with long-term memory kept as summaries in a vector store.',
  options: [
    LLM_REF,
    APP_PARAMS,
    PROMPT,
    { token: '--HISTORY', type: 'json', value: 'json', summary: 'Memory parameters: summary_cnt (20), summary_ctx_cnt (1), msg_ctx_cnt (10), summary_prompt, ttl (seconds an idle session is kept; 0 = forever, the default); see "Search apps and chat apps".' },
    VECTOR_STORE,
    CACHE,
    RATELIMIT,
  ],
  examples: ['LLM.CREATE-CHAT chat --LLM openai --VECTOR-STORE memory'],
  handler(ctx, args) {
    const src = appSources(args, 'chat');
    const def = {
      llm: src.llm,
      prompt: src.prompt ?? DEFAULT_CHAT_PROMPT,
      params: src.params,
      store: src.store ?? null,
      history: parseHistoryParams(src.history),
      cache: parseCacheConfig(args.opts.get('cache')),
      ratelimit: parseRateLimit(args.opts.get('ratelimit')),
    };
    return createObject(ctx, args, 'chat', (id, db, name, at) => new ChatObject(id, db, name, at, def));
  },
});
