import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { NX, XX, LLM_REF, PROMPT, VECTOR_STORE, CREATE_FLAGS, CREATE_ACL, CREATE_REPLY } from './_common.js';

export default defineCommand({
  name: 'LLM.CREATE-SEARCH',
  summary: 'Creates a search application that answers questions from the items of a vector store.',
  since: '0.1.0',
  arity: -2,
  flags: CREATE_FLAGS,
  aclCategories: CREATE_ACL,
  keySpec: { access: 'OW', op: 'UPDATE' },
  options: [
    NX,
    XX,
    LLM_REF,
    VECTOR_STORE,
    PROMPT,
    { token: '--K', type: 'integer', value: 'n', min: 1, max: 10000, summary: 'How many nearest items become the context (default 3).' },
  ],
  args: [],
  reply: CREATE_REPLY,
  examples: ['LLM.CREATE-SEARCH search --LLM openai --VECTOR-STORE store'],
  handler() {
    throw new CommandError('not implemented');
  },
});
