import { parseCacheConfig } from '../../apps/cache.js';
import { parseRateLimit } from '../../apps/ratelimit.js';
import { DEFAULT_CHAT_PROMPT } from '../../objects/objects.js';
import { ChatObject } from '../../objects/chat.js';
import { parseHistoryParams } from '../../apps/chat.js';
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
    { token: '--HISTORY', type: 'json', value: 'json', summary: 'Memory parameters: summary_cnt, summary_ctx_cnt, msg_ctx_cnt, summary_prompt.' },
    VECTOR_STORE,
    CACHE,
    RATELIMIT,
  ],
  examples: ['LLM.CREATE-CHAT chat --LLM openai --VECTOR-STORE chat-memory'],
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
