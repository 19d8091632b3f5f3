import { defineCommand } from '../spec.js';
import { parseLlmConfig } from '../../llm/index.js';
import { ModelObject } from '../../objects/objects.js';
import { createObject, optString } from './_objects.js';
import { NX, XX, CREATE_FLAGS, CREATE_ACL, CREATE_REPLY } from './_common.js';

export default defineCommand({
  name: 'LLM.CREATE-LLM',
  summary: 'Creates an LLM provider object: OpenAI, Azure OpenAI, any OpenAI-compatible endpoint, or the offline local embedder.',
  since: '0.1.0',
  arity: -2,
  flags: CREATE_FLAGS,
  aclCategories: CREATE_ACL,
  keySpec: { access: 'OW', op: 'UPDATE' },
  options: [
    NX,
    XX,
    { token: '--TYPE', type: 'string', value: 'openai|azure_openai|local', summary: 'Provider type (default openai).' },
    { token: '--PARAMS', type: 'json', value: 'json', summary: 'Provider parameters: api_key, base_url, chat, embedding, http, ...' },
  ],
  args: [],
  reply: CREATE_REPLY,
  examples: [`LLM.CREATE-LLM openai --PARAMS '{"api_key":"$OPENAI_API_KEY"}'`],
  handler(ctx, args) {
    const type = optString(args, 'type') ?? 'openai';
    const params = args.opts.get('params') ?? {};
    return createObject(ctx, args, 'llm', (id, db, name, at) => new ModelObject(id, db, name, at, parseLlmConfig(type, params)));
  },
});
