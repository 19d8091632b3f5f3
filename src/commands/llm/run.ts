import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { TIMEOUT } from './_common.js';

export default defineCommand({
  name: 'LLM.RUN',
  summary: 'Runs an application (prompt, search or chat) and replies the LLM answer.',
  since: '0.1.0',
  arity: -2,
  flags: ['write'],
  aclCategories: ['@write', '@slow'],
  keySpec: { access: 'RW', op: 'ACCESS' },
  options: [
    { token: '--VARS', type: 'json', value: 'json', summary: 'Template variables as a JSON object.' },
    TIMEOUT,
  ],
  args: [{ name: 'input', type: 'string', optional: true, summary: 'User input appended to the prompt (or the question / chat message).' }],
  reply: 'Bulk string: the answer.',
  examples: ["LLM.RUN hello-world --VARS '{\"name\":\"LLM\"}'"],
  handler() {
    throw new CommandError('not implemented');
  },
});
