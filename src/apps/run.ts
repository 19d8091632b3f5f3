/**
 * Running applications. Apps see the rest of the server only through AppDeps (models, stores,
 * embeddings), so they stay independent of the command layer.
 *
 * - prompt app (LLM.CREATE-APP): render the template with VARS; if the input is non-empty,
 *   append a blank line and the input; send one user message; reply the completion text.
 * - search app (LLM.CREATE-SEARCH): embed the question with the store's LLM, take the K nearest
 *   items, render the template with `context` (their texts, one per line) and `question`.
 */
import { CommandError } from '../errors.js';
import type { ChatMessage, LlmEnv } from '../llm/index.js';
import { logger } from '../log.js';
import type { AppObject, ModelObject, StoreObject } from '../objects/objects.js';
import type { ChatObject } from '../objects/chat.js';
import type { LogEntry } from '../storage/types.js';
import { compileTemplate, renderTemplate } from '../objects/template.js';
import { searchStore } from '../objects/store-search.js';
import { compileFilterPlan } from '../vector/filter.js';
import { dimensionMismatch, type ItemId } from '../vector/index.js';

export interface AppDeps {
  /** The LLM object at key; throws a clear error when missing. */
  model(key: string | null): ModelObject;
  /** The vector store at key; throws a clear error when missing (e.g. deleted). */
  store(key: string | null | undefined): StoreObject;
  embed(store: StoreObject, texts: string[], timeoutMs?: number): Promise<Float32Array[]>;
  /** Checks that the store's LLM exists (search apps: the original's `LLM model does not exist: <key>`). */
  storeModel?(store: StoreObject): void;
  /** The app's answer: rate limits, caches, provider, accounting (see complete.ts). */
  complete(app: AppObject, model: ModelObject, messages: ChatMessage[], req: RunRequest, semanticText: string): Promise<RunResult>;
}

export interface RunRequest {
  vars: Record<string, unknown>;
  input: string | undefined;
  timeoutMs?: number;
  /** search apps: a filter for this run, combined (and) with the app's own */
  filter?: string;
  /** Stream the answer: called with each chunk as the provider sends it. */
  onDelta?: (text: string) => void;
  signal?: AbortSignal;
  /** Cache and rate-limit partition (LLM.RUN --SCOPE). */
  scope?: string;
  /** The server around the LLM calls (router targets, circuit store, default deadline). */
  env?: LlmEnv;
  /** Skip the caches for this run (LLM.RUN --NOCACHE). */
  noCache?: boolean;
}

export interface RunResult {
  text: string;
  finishReason?: string | null;
  usage?: { promptTokens: number; completionTokens: number };
  /** Served from a cache. */
  cached?: 'exact' | 'semantic';
  similarity?: number;
  /** search apps: ids of the items used as context */
  contextIds?: ItemId[];
  /** The rendered request (LLM.RUN --VERBOSE): the prompt sent; for chat apps every message as `role: content`. */
  request?: string;
}

export async function runPromptApp(app: AppObject, req: RunRequest, deps: AppDeps): Promise<RunResult> {
  const model = deps.model(app.def.llm);
  const prompt = app.template ? renderTemplate(app.template, req.vars) : '';
  const input = req.input ?? '';
  const content = prompt && input ? `${prompt}\n\n${input}` : prompt || input;
  if (!content) throw new CommandError('nothing to send: the prompt and the input are both empty');
  const messages: ChatMessage[] = [{ role: 'user', content }];
  return { ...(await deps.complete(app, model, messages, req, content)), request: content };
}

export async function runSearchApp(app: AppObject, req: RunRequest, deps: AppDeps): Promise<RunResult> {
  const question = req.input ?? '';
  if (!question) throw new CommandError('no question is specified');
  const store = deps.store(app.def.store);
  const model = deps.model(app.def.llm);
  // As the original, a store without a usable LLM is an error even while it is empty.
  deps.storeModel?.(store);
  let hits: Array<{ id: number; distance: number }> = [];
  let texts: string[] = [];
  if (store.index.size > 0) {
    const [vec] = await deps.embed(store, [question], req.timeoutMs);
    if (store.index.dim !== undefined && vec.length !== store.index.dim) throw dimensionMismatch(store.index.dim, vec.length);
    const filters = [app.def.filter, req.filter].filter((f): f is string => !!f).map(compileFilterPlan);
    const found = await searchStore(store, vec, { k: app.def.k ?? 3, filters, withData: true });
    hits = found.explain.hits;
    texts = found.data!;
  }
  const context = texts.join('\n');
  const content = renderTemplate(app.template!, { ...req.vars, context, question });
  const res = await deps.complete(app, model, [{ role: 'user', content }], req, question);
  return { ...res, contextIds: hits.map((h) => store.aliases.idOf(h.id)), request: content };
}

// ---- chat apps ---------------------------------------------------------------------------------

export interface ChatDeps extends AppDeps {
  /** Appends chat memory entries durably (then they are applied to the chat object). */
  remember(chat: ChatObject, entries: LogEntry[]): Promise<void>;
  /** Embeds `text` with the store's LLM and adds it as an item; resolves the item id. */
  addToStore(store: StoreObject, text: string, timeoutMs?: number): Promise<ItemId>;
  /** Forgets a session durably (its summaries leave the store); called in the session's queue. */
  forget(chat: ChatObject, session: string): Promise<unknown>;
}

export interface ChatRequest extends RunRequest {
  session: string;
}

/**
 * One chat turn, with the original's memory model, per session:
 * system message = the template with `history` = the session's summaries nearest to the input;
 * then the last msg_ctx_cnt messages of the session; then the input. Every summary_cnt messages
 * the buffered turns are summarized by the LLM, embedded and added to the store.
 * Runs on one session are serialized; different sessions run in parallel.
 */
export async function runChatApp(chat: ChatObject, req: ChatRequest, deps: ChatDeps): Promise<RunResult> {
  const input = req.input ?? '';
  if (!input) throw new CommandError('no input is specified');
  const model = deps.model(chat.def.llm);
  const store = chat.def.store ? deps.store(chat.def.store) : null;
  const h = chat.history;
  return chat.serialize(req.session, async () => {
    // A session idle past the ttl starts over: its old summaries leave the store first.
    const old = chat.sessions.get(req.session);
    if (old && chat.expired(old, Date.now())) await deps.forget(chat, req.session);
    const s = chat.session(req.session);
    let history = '';
    if (store && s && h.summary_ctx_cnt > 0) {
      // Summary ids are item ids; the index answers in labels (the same unless aliased, see id-alias.ts).
      const ids = new Set(s.summaryIds.map((id) => store.aliases.labelOf(id)).filter((l): l is number => l !== undefined && store.index.has(l)));
      if (ids.size > 0) {
        const [vec] = await deps.embed(store, [input], req.timeoutMs);
        const found = await searchStore(store, vec, { k: Math.min(h.summary_ctx_cnt, ids.size), labels: ids, withData: true });
        history = found.data!.join('\n');
      }
    }
    const system = renderTemplate(chat.template!, { ...req.vars, history });
    const recent = s && h.msg_ctx_cnt > 0 ? s.messages.slice(-h.msg_ctx_cnt) : [];
    const messages: ChatMessage[] = [{ role: 'system', content: system }, ...recent, { role: 'user', content: input }];
    const res = { ...(await deps.complete(chat, model, messages, req, input)), request: messages.map((m) => `${m.role}: ${m.content}`).join('\n') };
    await deps.remember(chat, [{ op: 'turn', session: req.session, user: input, assistant: res.text, ts: String(Date.now()) }]);
    const after = chat.session(req.session);
    if (store && h.summary_cnt > 0 && after && after.sinceSummary >= h.summary_cnt) {
      try {
        const conversation = after.messages
          .slice(-after.sinceSummary)
          .map((m) => `${m.role}: ${m.content}`)
          .join('\n');
        const tpl = compileTemplate(h.summary_prompt);
        const rendered = renderTemplate(tpl, { ...req.vars, conversation });
        const prompt = h.summary_prompt.includes('conversation') ? rendered : `${rendered}\n\n${conversation}`;
        const summary = await model.provider.chat([{ role: 'user', content: prompt }], { timeoutMs: req.timeoutMs, body: chat.def.params, env: req.env });
        const id = await deps.addToStore(store, summary.text, req.timeoutMs);
        await deps.remember(chat, [{ op: 'summary', session: req.session, id: String(id) }]);
      } catch (err) {
        // The answer stands; the summary is tried again after the next turn.
        logger.warn({ chat: chat.name, err: (err as Error).message }, 'chat summary failed');
      }
    }
    return res;
  });
}
