/**
 * Shared steps of LLM.* handlers: the create semantics of the original (NX/XX/WRONGTYPE/overwrite),
 * typed lookups with the original's error texts, and vector/embedding input.
 */
import { checkKeys } from '../acl.js';
import { CommandError, syntaxError, wrongTypeError } from '../../errors.js';
import { OPERATION, withOperation } from '../../llm/errors.js';
import { newObjectId } from '../../storage/index.js';
import { KeyedSerialQueue } from '../../util/serial.js';
import { PARAM_LIMITS, parseCsvVector, parseFp32Vector } from '../../vector/index.js';
import { ModelObject, StoreObject, AppObject, type LlmObject, type ObjectKind } from '../../objects/objects.js';
import type { ObjectManager } from '../../objects/manager.js';
import type { CommandContext } from '../plan.js';
import type { LlmEnv } from '../../llm/index.js';
import type { ParsedArgs } from '../spec.js';

export function objectsOf(ctx: CommandContext): ObjectManager {
  const o = ctx.services.objects;
  if (!o) throw new CommandError('LLM objects are being loaded in memory', 'LOADING');
  return o;
}

export const keyName = (b: Buffer): string => b.toString('utf8');

/** Is `key` an ordinary key in the backing Redis (in the client's db)? */
async function existsInBackend(ctx: CommandContext, key: Buffer): Promise<boolean> {
  if (ctx.services.mode === 'standalone') return false;
  const r = await ctx.client.backendCall(['EXISTS', key]);
  return r === 1;
}

/**
 * The original's create semantics: WRONGTYPE over a key of another type (ours or an ordinary
 * one), --NX/--XX reply 0 when they refuse, otherwise (over)write and reply 1. `build` validates
 * everything; nothing is written when it throws.
 */
/** Per-key serialization of creates: check-then-put must not interleave with another create. */
const createLocks = new KeyedSerialQueue();

export async function createObject(
  ctx: CommandContext,
  args: ParsedArgs,
  kind: ObjectKind,
  build: (id: string, db: number, name: string, createdAt: number) => LlmObject,
): Promise<number> {
  const objects = objectsOf(ctx);
  const nx = args.opts.has('nx');
  const xx = args.opts.has('xx');
  if (nx && xx) throw syntaxError();
  const db = ctx.client.db;
  const name = keyName(args.key);
  const obj = build(newObjectId(), db, name, Date.now()); // validates; nothing written yet
  return createLocks.run(`${db}\u0000${name}`, async () => {
    try {
      let existing = objects.get(db, name);
      if (existing && existing.kind !== kind) throw wrongTypeError();
      if (!existing && (await existsInBackend(ctx, args.key))) throw wrongTypeError();
      existing = objects.get(db, name); // may have changed during the await (DEL, RENAME)
      if (existing && existing.kind !== kind) throw wrongTypeError();
      if ((nx && existing) || (xx && !existing)) {
        obj.close();
        return 0;
      }
      await objects.put(obj);
      return 1;
    } catch (err) {
      obj.close();
      throw err;
    }
  });
}

/** The object at key, if it is of one of `kinds`; WRONGTYPE if another kind; undefined if absent. */
export function lookup<T extends LlmObject>(ctx: CommandContext, key: Buffer | string, kinds: ObjectKind[]): T | undefined {
  const obj = objectsOf(ctx).get(ctx.client.db, typeof key === 'string' ? key : keyName(key));
  if (!obj) return undefined;
  if (!kinds.includes(obj.kind)) throw wrongTypeError();
  return obj as T;
}

export function storeOf(ctx: CommandContext, key: Buffer | string): StoreObject | undefined {
  return lookup<StoreObject>(ctx, key, ['store']);
}

/** The LLM at key; `missing` is the error text, the key is appended (`LLM model does not exist: gpt`). */
export function modelOf(ctx: CommandContext, key: string, missing = 'LLM model does not exist'): ModelObject {
  const obj = objectsOf(ctx).get(ctx.client.db, key);
  if (!obj || !(obj instanceof ModelObject)) throw new CommandError(`${missing}: ${key}`);
  return obj;
}

const MAX_DIM = PARAM_LIMITS.dim[1];

/**
 * A vector's dimension within the limit `--PARAMS dim` has (1..65536). A store without a fixed
 * dimension takes it from its first vector, which was otherwise unbounded: one 4M-float
 * --EMBEDDING-FP32 argument made a store of 4,000,000 dimensions (+180 MB at once).
 */
function checkDim(v: Float32Array | number[], what: string): void {
  if (v.length > MAX_DIM) throw new CommandError(`${what}: ${v.length} dimensions, more than the limit of ${MAX_DIM}`);
}

/**
 * What an LLM call needs from the server: the LLM keys of the client's db (a router's targets),
 * the circuit store of router targets (the backing Redis) and the default deadline (llm-timeout).
 */
export function llmEnv(ctx: CommandContext): LlmEnv {
  const db = ctx.client.db;
  return {
    db,
    resolve: (key) => {
      const o = ctx.services.objects?.get(db, key);
      return o instanceof ModelObject ? o.provider : undefined;
    },
    circuits: ctx.services.kv,
    defaultTimeoutMs: ctx.services.llmTimeoutMs,
    policy: ctx.services.llmPolicy,
  };
}

/** Embeds texts with the store's LLM. */
export async function embedForStore(ctx: CommandContext, store: StoreObject, texts: string[], timeoutMs?: number): Promise<Float32Array[]> {
  if (!store.llmRef) throw new CommandError(`LLM model for vector store does not exist: vector store '${store.name}' has no --LLM`);
  const model = modelOf(ctx, store.llmRef.key, 'LLM model for vector store does not exist');
  await checkKeys(ctx, [{ key: store.llmRef.key, access: 'read' }]);
  const vecs = await model.provider.embed(texts, { timeoutMs, body: store.llmRef.params, env: llmEnv(ctx) }).catch((e: unknown) => {
    throw withOperation(e, OPERATION.embed);
  });
  for (const v of vecs) checkDim(v, 'the embedding from the LLM has too many dimensions');
  return vecs.map((v) => Float32Array.from(v));
}

/**
 * The vector given with --EMBEDDING / --EMBEDDING-FP32, if any. `--EMBEDDING ''` gives none, as in
 * the original (its parser splits '' into no numbers, and an empty embedding means "embed the text").
 */
export function givenVector(args: ParsedArgs): Float32Array | undefined {
  const given = args.opts.get('embedding') as Buffer | undefined;
  const csv = given?.length === 0 ? undefined : given;
  const fp32 = args.opts.get('embedding-fp32') as Buffer | undefined;
  if (csv && fp32) throw new CommandError('use either --EMBEDDING or --EMBEDDING-FP32, not both');
  const v = csv ? parseCsvVector(csv) : fp32 ? parseFp32Vector(fp32) : undefined;
  if (v) checkDim(v, 'invalid embedding');
  return v;
}

/** Was a vector given (--EMBEDDING-FP32, or a non-empty --EMBEDDING), so no embedding call is needed? */
export function givesVector(args: ParsedArgs): boolean {
  const csv = args.opts.get('embedding') as Buffer | undefined;
  return args.opts.has('embedding-fp32') || (csv !== undefined && csv.length > 0);
}

export function optString(args: ParsedArgs, name: string): string | undefined {
  const v = args.opts.get(name);
  return v === undefined ? undefined : (v as Buffer).toString('utf8');
}

export function optObject(args: ParsedArgs, name: string, what: string): Record<string, unknown> | undefined {
  const v = args.opts.get(name);
  if (v === undefined) return undefined;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CommandError(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

/** The app at key; an ordinary key of the backing Redis is WRONGTYPE; nothing is the original's error. */
export async function requireApp<T extends AppObject = AppObject>(ctx: CommandContext, key: Buffer, kinds: ObjectKind[] = ['app', 'search', 'chat']): Promise<T> {
  const app = lookup<T>(ctx, key, kinds);
  if (app) return app;
  if (await existsInBackend(ctx, key).catch(() => false)) throw wrongTypeError();
  throw new CommandError(`Application does not exist: ${keyName(key)}`);
}
