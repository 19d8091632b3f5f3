import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { NX, XX, LLM_REF, PROMPT, CREATE_FLAGS, CREATE_ACL, CREATE_REPLY } from './_common.js';

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
  ],
  args: [],
  reply: CREATE_REPLY,
  examples: ["LLM.CREATE-APP hello-world --LLM openai --PROMPT 'Say hello to {{name}}'"],
  handler() {
    throw new CommandError('not implemented');
  },
});
