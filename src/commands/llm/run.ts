import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { runPromptApp, runSearchApp, type AppDeps } from '../../apps/run.js';
import { checkVars } from '../../apps/template.js';
import type { CommandContext } from '../context.js';
import { appOf, embedForStore, modelOf, storeOf } from './_objects.js';

function depsFor(ctx: CommandContext): AppDeps {
  return {
    model: (key) => {
      if (!key) throw new CommandError('no LLM is specified for this application');
      return modelOf(ctx, key);
    },
    store: (key) => {
      const s = key ? storeOf(ctx, key) : undefined;
      if (!s) throw new CommandError('vector store does not exist');
      return s;
    },
    embed: (store, texts, timeoutMs) => embedForStore(ctx, store, texts, timeoutMs),
  };
}
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
  async handler(ctx, args) {
    const app = appOf(ctx, args.key);
    const req = {
      vars: checkVars(args.opts.get('vars')),
      input: args.positionals[0]?.toString('utf8'),
      timeoutMs: args.opts.get('timeout') as number | undefined,
    };
    const deps = depsFor(ctx);
    if (app.kind === 'app') return (await runPromptApp(app, req, deps)).text;
    if (app.kind === 'search') return (await runSearchApp(app, req, deps)).text;
    throw new CommandError('LLM.RUN on chat apps arrives with chat memory (issue 5); this build runs prompt and search apps');
  },
});
