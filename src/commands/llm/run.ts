import { defineCommand } from '../spec.js';
import { checkKeys, type KeyAccess } from '../acl.js';
import { CommandError, wrongTypeError } from '../../errors.js';
import { isInternalKey, RESERVED_KEY_ERROR } from '../../storage/index.js';
import { runChatApp, runPromptApp, runSearchApp, type ChatDeps, type RunRequest, type RunResult } from '../../apps/run.js';
import { RunStream } from '../../apps/stream.js';
import { complete } from '../../apps/complete.js';
import { logger } from '../../log.js';
import { SimpleString } from '../../protocol/resp.js';
import { READONLY_TEXT } from '../plan.js';
import { checkVars } from '../../objects/template.js';
import { ChatObject, DEFAULT_SESSION } from '../../objects/chat.js';
import type { CommandContext } from '../plan.js';
import { TIMEOUT, SESSION, FILTER } from './_common.js';
import { compileFilter } from '../../vector/filter.js';
import { idReply } from '../../vector/index.js';
import { requireApp, embedForStore, llmEnv, modelOf, objectsOf, storeOf, givesVector } from './_objects.js';

function depsFor(ctx: CommandContext): ChatDeps {
  const objects = objectsOf(ctx);
  return {
    // The original's texts, then the missing name.
    model: (key) => {
      if (!key) throw new CommandError('LLM model not exist: no --LLM was given to this application');
      return modelOf(ctx, key, 'LLM model not exist');
    },
    store: (key) => {
      const s = key ? storeOf(ctx, key) : undefined;
      if (!s) throw new CommandError(`vector store does not exist: ${key ?? ''}`);
      return s;
    },
    storeModel: (store) => {
      if (!store.llmRef) throw new CommandError(`LLM model does not exist: vector store '${store.name}' has no --LLM`);
      modelOf(ctx, store.llmRef.key);
    },
    embed: (store, texts, timeoutMs) => embedForStore(ctx, store, texts, timeoutMs),
    remember: (chat, entries) => objects.chats.append(chat, entries),
    forget: (chat, session) => objects.chats.forget(chat, session),
    complete: (app, model, messages, req, semanticText) =>
      complete(app, model, messages, req, semanticText, { kv: ctx.services.kv, model: (key) => modelOf(ctx, key) }),
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
  arity: -1,
  flags: ['readonly'],
  // As Redis derives them for a module command from its flags.
  aclCategories: ['@read', '@slow'],
  keySpec: { access: 'RW', op: 'ACCESS' },
  options: [
    { token: '--VARS', type: 'json', value: 'json', summary: 'Template variables as a JSON object.' },
    TIMEOUT,
    SESSION,
    { token: '--WITHCONTEXT', type: 'pure-token', summary: 'Search apps: reply [answer, [ids of the items used as context]].' },
    { ...FILTER, summary: "Search apps: only items matching this filter (and the app's own) become context." },
    { token: '--SCOPE', type: 'string', value: 'scope', summary: 'Cache and rate-limit partition (e.g. a tenant): entries of one scope are never served to another.' },
    { token: '--NOCACHE', type: 'pure-token', summary: 'Skip the response caches for this run (the answer is not stored either).' },
    { token: '--STREAM', type: 'string', value: 'stream-key', summary: 'Also append the answer, chunk by chunk as the provider streams it, to this Redis Stream (fields: run, seq, chunk; a final entry with done, finish_reason and token counts, or error).' },
    { token: '--ASYNC', type: 'pure-token', summary: 'With --STREAM: reply the run id at once and keep streaming in the background.' },
    { token: '--VERBOSE', type: 'pure-token', summary: 'Reply the rendered request, a blank line, then the answer.' },
    { token: '--MAXLEN', type: 'integer', value: 'n', min: 1, max: 1_000_000_000, summary: 'With --STREAM: cap the stream at about n entries (default: stream-maxlen, 10000).' },
  ],
  args: [{ name: 'input', type: 'string', optional: true, summary: 'User input appended to the prompt (or the question / chat message).' }],
  reply: 'Bulk string: the answer (with --WITHCONTEXT on a search app: [answer, [id, ...]]).',
  examples: [
    "LLM.RUN hello-world --VARS '{\"name\":\"LLM\"}'",
    'LLM.RUN qa --WITHCONTEXT "Which database keeps its data in memory?"',
    'LLM.RUN chat --SESSION alice "My name is Alice"',
    'LLM.RUN hello-world --STREAM answers --VARS \'{"name":"LLM"}\'',
  ],
  callsLlm: () => true,
  async handler(ctx, args) {
    const app = await requireApp(ctx, args.key);
    // The keys the app names (its LLM, its store) and the stream it writes: the client's ACL user must be allowed them too.
    const named: Array<{ key: Buffer | string; access: KeyAccess }> = [];
    if (app.def.llm) named.push({ key: app.def.llm, access: 'read' });
    if (app.def.store) named.push({ key: app.def.store, access: 'read' });
    const streamArg = args.opts.get('stream') as Buffer | undefined;
    if (streamArg) named.push({ key: streamArg, access: 'write' });
    await checkKeys(ctx, named);
    const req = {
      vars: checkVars(args.opts.get('vars')),
      input: args.positionals[0]?.toString('utf8'),
      timeoutMs: args.opts.get('timeout') as number | undefined,
      filter: (args.opts.get('filter') as Buffer | undefined)?.toString('utf8'),
      scope: (args.opts.get('scope') as Buffer | undefined)?.toString('utf8'),
      noCache: args.opts.has('nocache'),
      env: llmEnv(ctx),
    };
    if (req.filter !== undefined) compileFilter(req.filter);
    if (ctx.services.readOnly && app.kind === 'chat') throw new CommandError(READONLY_TEXT, 'READONLY');
    const deps = depsFor(ctx);
    const session = (args.opts.get('session') as Buffer | undefined)?.toString('utf8');
    if (session !== undefined && app.kind !== 'chat') throw new CommandError('--SESSION applies to chat apps only');
    if (args.opts.has('withcontext') && app.kind !== 'search') throw new CommandError('--WITHCONTEXT applies to search apps only');
    if (req.filter !== undefined && app.kind !== 'search') throw new CommandError('--FILTER applies to search apps only');
    const streamKey = args.opts.get('stream') as Buffer | undefined;
    const isAsync = args.opts.has('async');
    if ((isAsync || args.opts.has('maxlen')) && !streamKey) throw new CommandError('--ASYNC and --MAXLEN need --STREAM');
    if (streamKey) {
      if (isInternalKey(streamKey)) throw new CommandError(RESERVED_KEY_ERROR);
      if (objectsOf(ctx).get(ctx.client.db, streamKey.toString('utf8'))) throw wrongTypeError();
      if (ctx.services.mode !== 'standalone') {
        // Refused before anything runs (a chat turn must not be remembered for a run that cannot stream).
        const t = await ctx.client.backendCall(['TYPE', streamKey]);
        const type = t instanceof SimpleString ? t.value : '';
        if (type !== 'none' && type !== 'stream' && type !== '') throw wrongTypeError();
      }
    }
    const run = (r: RunRequest): Promise<RunResult> => {
      if (app.kind === 'app') return runPromptApp(app, r, deps);
      if (app.kind === 'search') return runSearchApp(app, r, deps);
      return runChatApp(app as ChatObject, { ...r, session: session ?? DEFAULT_SESSION }, deps);
    };
    const verbose = args.opts.has('verbose');
    const reply = (r: RunResult) => {
      const text = verbose ? `${r.request ?? ''}\n\n${r.text}` : r.text;
      return args.opts.has('withcontext') ? [text, (r.contextIds ?? []).map(idReply)] : text;
    };
    if (!streamKey) return reply(await run(req));

    const db = ctx.client.db;
    const maxlen = (args.opts.get('maxlen') as number | undefined) ?? ctx.services.streamMaxlen;
    const stream = new RunStream((fields) => ctx.services.xadd(db, streamKey, maxlen, fields));
    const streamed = async (): Promise<RunResult> => {
      try {
        const r = await run({ ...req, onDelta: (t) => stream.chunk(t) });
        stream.done(r);
        await stream.flush();
        return r;
      } catch (err) {
        stream.error(err instanceof CommandError ? err.message : 'internal error');
        await stream.flush().catch(() => undefined);
        throw err;
      }
    };
    if (isAsync) {
      streamed().catch((err: Error) => logger.debug({ run: stream.runId, err: err.message }, 'async run failed (error entry written)'));
      return stream.runId;
    }
    return reply(await streamed());
  },
});
