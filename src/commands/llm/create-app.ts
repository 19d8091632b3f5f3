import { defineCommand } from '../spec.js';
import { parseCacheConfig } from '../../apps/cache.js';
import { parseRateLimit } from '../../apps/ratelimit.js';
import { AppObject } from '../../objects/objects.js';
import { createObject, optObject, optString } from './_objects.js';
import { NX, XX, LLM_REF, PROMPT, CREATE_FLAGS, CREATE_ACL, CREATE_REPLY, CACHE, RATELIMIT } from './_common.js';

export default defineCommand({
  name: 'LLM.CREATE-APP',
  summary: 'Creates a prompt application: a template sent to an LLM by LLM.RUN.',
  since: '0.1.0',
  arity: -2,
  flags: CREATE_FLAGS,
  aclCategories: CREATE_ACL,
  keySpec: { access: 'OW', op: 'UPDATE' },
  options: [
    NX,
    XX,
    LLM_REF,
    { token: '--PARAMS', type: 'json', value: 'json', summary: 'Application parameters.' },
    PROMPT,
    CACHE,
    RATELIMIT,
  ],
  args: [],
  reply: CREATE_REPLY,
  examples: ["LLM.CREATE-APP hello-world --LLM openai --PROMPT 'Say hello to {{name}}'"],
  handler(ctx, args) {
    const def = {
      llm: optString(args, 'llm') ?? null,
      prompt: optString(args, 'prompt') ?? null,
      params: optObject(args, 'params', '--PARAMS') ?? {},
      cache: parseCacheConfig(args.opts.get('cache')),
      ratelimit: parseRateLimit(args.opts.get('ratelimit')),
    };
    return createObject(ctx, args, 'app', (id, db, name, at) => new AppObject('app', id, db, name, at, def));
  },
});
