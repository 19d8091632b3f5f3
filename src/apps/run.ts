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
import type { ChatMessage } from '../llm/index.js';
import type { AppObject, ModelObject, StoreObject } from '../objects/objects.js';
import { renderTemplate } from './template.js';

export interface AppDeps {
  /** The LLM object at key; throws a clear error when missing. */
  model(key: string | null): ModelObject;
  /** The vector store at key; throws a clear error when missing (e.g. deleted). */
  store(key: string | null | undefined): StoreObject;
  embed(store: StoreObject, texts: string[], timeoutMs?: number): Promise<Float32Array[]>;
}

export interface RunRequest {
  vars: Record<string, unknown>;
  input: string | undefined;
  timeoutMs?: number;
}

export interface RunResult {
  text: string;
  /** search apps: ids of the items used as context */
  contextIds?: number[];
}

export async function runPromptApp(app: AppObject, req: RunRequest, deps: AppDeps): Promise<RunResult> {
  const model = deps.model(app.def.llm);
  const prompt = app.template ? renderTemplate(app.template, req.vars) : '';
  const input = req.input ?? '';
  const content = prompt && input ? `${prompt}\n\n${input}` : prompt || input;
  if (!content) throw new CommandError('nothing to send: the prompt and the input are both empty');
  const messages: ChatMessage[] = [{ role: 'user', content }];
  const res = await model.provider.chat(messages, { timeoutMs: req.timeoutMs });
  return { text: res.text };
}

export async function runSearchApp(app: AppObject, req: RunRequest, deps: AppDeps): Promise<RunResult> {
  const question = req.input ?? '';
  if (!question) throw new CommandError('no question is specified');
  const store = deps.store(app.def.store);
  const model = deps.model(app.def.llm);
  let hits: Array<{ id: number; distance: number }> = [];
  if (store.index.size > 0) {
    const [vec] = await deps.embed(store, [question], req.timeoutMs);
    if (store.index.dim !== undefined && vec.length !== store.index.dim) throw new CommandError('vector dimension does not match');
    hits = store.index.knn(vec, app.def.k ?? 3);
  }
  const context = hits.map((h) => store.index.getData(h.id) ?? '').join('\n');
  const content = renderTemplate(app.template!, { ...req.vars, context, question });
  const res = await model.provider.chat([{ role: 'user', content }], { timeoutMs: req.timeoutMs });
  return { text: res.text, contextIds: hits.map((h) => h.id) };
}
