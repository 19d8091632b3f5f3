import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { NX, XX, LLM_REF, PROMPT, VECTOR_STORE, CREATE_FLAGS, CREATE_ACL, CREATE_REPLY } from './_common.js';

export default defineCommand({
  name: 'LLM.CREATE-CHAT',
  summary: 'Creates a chat application with long-term memory kept as summaries in a vector store.',
  since: '0.1.0',
  arity: -2,
  flags: CREATE_FLAGS,
  aclCategories: CREATE_ACL,
  keySpec: { access: 'OW', op: 'UPDATE' },
  options: [
    NX,
    XX,
    LLM_REF,
    PROMPT,
    { token: '--HISTORY', type: 'json', value: 'json', summary: 'Memory parameters: summary_cnt, summary_ctx_cnt, msg_ctx_cnt, summary_prompt.' },
    VECTOR_STORE,
  ],
  args: [],
  reply: CREATE_REPLY,
  examples: ['LLM.CREATE-CHAT chat --LLM openai --VECTOR-STORE chat-memory'],
  handler() {
    throw new CommandError('not implemented');
  },
});
