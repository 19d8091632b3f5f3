/**
 * The one place an app's answer comes from: rate limits → exact cache → semantic cache →
 * provider → cache store, with usage accounting on the app and on its LLM.
 */
import { createHash } from 'node:crypto';
import { CommandError } from '../errors.js';
import { OPERATION, withOperation } from '../llm/errors.js';
import { logger } from '../log.js';
import type { ChatMessage } from '../llm/index.js';
import type { AppObject, ModelObject } from '../objects/objects.js';
import { ResponseCache } from '../objects/cache.js';
import type { KV } from '../storage/kv.js';
import type { RunRequest, RunResult } from './run.js';

export interface CompleteDeps {
  kv: KV;
  /** LLM by key (for `semantic.llm`). */
  model(key: string): ModelObject;
}

/** What identifies "the same request" besides the messages: the LLM, its request body base and the app's fields over it. */
function modelIdentity(model: ModelObject, app: AppObject): unknown {
  const c = model.llm as unknown as Record<string, unknown>;
  return {
    type: c.type,
    url: c.chatUrl ?? c.endpoint ?? null,
    deployment: c.chatDeploymentId ?? null,
    version: c.apiVersion ?? null,
    // The request body base: model, temperature and every other parameter sent.
    chat: c.chat ?? null,
    // A router answers with whichever target: its targets are part of what answered.
    ...(c.type === 'router' ? { targets: c.targets } : {}),
    ...(Object.keys(app.def.params ?? {}).length > 0 ? { params: app.def.params } : {}),
  };
}

/** Replays a cached answer to a streaming caller, word by word, as the provider would have. */
function replay(text: string, onDelta?: (t: string) => void): void {
  if (!onDelta) return;
  for (const part of text.match(/\S+\s*|\s+/g) ?? []) onDelta(part);
}

export async function complete(
  app: AppObject,
  model: ModelObject,
  messages: ChatMessage[],
  req: RunRequest,
  semanticText: string,
  deps: CompleteDeps,
): Promise<RunResult> {
  const started = performance.now();
  const scope = req.scope ?? '';
  const cache = req.noCache ? null : app.cacheFor(deps.kv);
  app.usage.calls++;
  const done = (r: RunResult): RunResult => {
    app.usage.latency(performance.now() - started);
    return r;
  };
  try {
    let material: string | null = null;
    let vec: Float32Array | null = null;
    // Everything before the last message is the conversation context a semantic hit must share.
    const context = createHash('sha256').update(JSON.stringify(messages.slice(0, -1))).digest('hex').slice(0, 16);
    if (cache?.cfg.exact) {
      material = ResponseCache.exactKeyMaterial(modelIdentity(model, app), messages);
      const hit = await cache.getExact(scope, material);
      if (hit) {
        app.usage.hitsExact++;
        model.usage.hitsExact++;
        replay(hit.text, req.onDelta);
        return done({ ...hit, cached: 'exact' });
      }
    }
    if (cache?.cfg.semantic) {
      const embedder = cache.cfg.semantic.llm ? deps.model(cache.cfg.semantic.llm) : model;
      [vec] = (
        await embedder.provider.embed([semanticText], { timeoutMs: req.timeoutMs, env: req.env }).catch((e: unknown) => {
          throw withOperation(e, OPERATION.embed);
        })
      ).map((v) => Float32Array.from(v));
      const hit = await cache.getSemantic(`${scope}\u0000${context}`, vec);
      if (hit) {
        app.usage.hitsSemantic++;
        model.usage.hitsSemantic++;
        replay(hit.text, req.onDelta);
        return done({ text: hit.text, finishReason: hit.finishReason, usage: hit.usage, cached: 'semantic', similarity: hit.similarity });
      }
    }
    if (cache) {
      app.usage.misses++;
      model.usage.misses++;
    }
    const limiters = [model.limiterFor(deps.kv), app.limiterFor(deps.kv)].filter((l) => l !== null);
    const tickets: string[] = [];
    try {
      for (const l of limiters) tickets.push(await l.acquire(scope));
    } catch (err) {
      app.usage.rateLimited++;
      model.usage.rateLimited++;
      throw err;
    }
    const res = await model.provider
      .chat(messages, { timeoutMs: req.timeoutMs, onDelta: req.onDelta, signal: req.signal, body: app.def.params, env: req.env })
      .catch((e: unknown) => {
        throw withOperation(e, app.kind === 'chat' ? OPERATION.chat : OPERATION.predict);
      });
    app.usage.tokens(res.usage);
    const used = res.usage.promptTokens + res.usage.completionTokens;
    await Promise.all(limiters.map((l, i) => l.record(scope, tickets[i], used)));
    if (cache && res.finishReason !== 'length' && res.text !== '') {
      // Only complete answers are cached; a failure to cache never fails the run.
      const answer = { text: res.text, finishReason: res.finishReason, usage: res.usage };
      try {
        if (material) await cache.putExact(scope, material, answer);
        if (vec) await cache.putSemantic(`${scope}\u0000${context}`, vec, answer);
      } catch (err) {
        logger.warn({ app: app.name, err: (err as Error).message }, 'could not store a cache entry');
      }
    }
    return done({ text: res.text, finishReason: res.finishReason, usage: res.usage });
  } catch (err) {
    if (!(err instanceof CommandError && err.message.startsWith('rate limit exceeded'))) app.usage.errors++;
    throw err;
  }
}
