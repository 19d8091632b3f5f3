import { defineCommand } from '../spec.js';
import { CommandError } from '../../errors.js';
import { runChatApp, runPromptApp, runSearchApp, type ChatDeps } from '../../apps/run.js';
import { checkVars } from '../../apps/template.js';
import { ChatObject, DEFAULT_SESSION } from '../../objects/chat.js';
import type { CommandContext } from '../context.js';
import { TIMEOUT, SESSION, FILTER } from './_common.js';
import { compileFilter } from '../../vector/filter.js';
import { requireApp, embedForStore, modelOf, objectsOf, storeOf } from './_objects.js';

function depsFor(ctx: CommandContext): ChatDeps {
  const objects = objectsOf(ctx);
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
    remember: (chat, entries) => objects.chatAppend(chat, entries),
    addToStore: async (store, text, timeoutMs) => {
      const [vec] = await embedForStore(ctx, store, [text], timeoutMs);
      return objects.storeAdd(store, undefined, vec, text);
    },
  };
}

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
    SESSION,
    { token: '--WITHCONTEXT', type: 'pure-token', summary: 'Search apps: reply [answer, [ids of the items used as context]].' },
    { ...FILTER, summary: "Search apps: only items matching this filter (and the app's own) become context." },
  ],
  args: [{ name: 'input', type: 'string', optional: true, summary: 'User input appended to the prompt (or the question / chat message).' }],
  reply: 'Bulk string: the answer (with --WITHCONTEXT on a search app: [answer, [id, ...]]).',
  examples: [
    "LLM.RUN hello-world --VARS '{\"name\":\"LLM\"}'",
    'LLM.RUN qa --WITHCONTEXT "Which database keeps its data in memory?"',
    'LLM.RUN chat --SESSION alice "My name is Alice"',
  ],
  async handler(ctx, args) {
    const app = await requireApp(ctx, args.key);
    const req = {
      vars: checkVars(args.opts.get('vars')),
      input: args.positionals[0]?.toString('utf8'),
      timeoutMs: args.opts.get('timeout') as number | undefined,
      filter: (args.opts.get('filter') as Buffer | undefined)?.toString('utf8'),
    };
    if (req.filter !== undefined) compileFilter(req.filter);
    const deps = depsFor(ctx);
    const session = (args.opts.get('session') as Buffer | undefined)?.toString('utf8');
    if (session !== undefined && app.kind !== 'chat') throw new CommandError('--SESSION applies to chat apps only');
    if (args.opts.has('withcontext') && app.kind !== 'search') throw new CommandError('--WITHCONTEXT applies to search apps only');
    if (req.filter !== undefined && app.kind !== 'search') throw new CommandError('--FILTER applies to search apps only');
    if (app.kind === 'app') return (await runPromptApp(app, req, deps)).text;
    if (app.kind === 'search') {
      const r = await runSearchApp(app, req, deps);
      return args.opts.has('withcontext') ? [r.text, r.contextIds ?? []] : r.text;
    }
    return (await runChatApp(app as ChatObject, { ...req, session: session ?? DEFAULT_SESSION }, deps)).text;
  },
});
