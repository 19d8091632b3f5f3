/**
 * The store of a vector data command (LLM.ADD / GET / REM / SIZE / KNN), looked up as the
 * original module did: a store → it; an LLM object of another kind → WRONGTYPE; a key of the
 * server's own storage → refused; an ordinary key of the backing Redis → WRONGTYPE (the key
 * exists but holds no vector store); nothing → undefined (each command's own "missing" reply).
 */
import { CommandError, wrongTypeError } from '../../errors.js';
import { isInternalKey, RESERVED_KEY_ERROR } from '../../storage/index.js';
import type { StoreObject } from '../../objects/objects.js';
import type { CommandContext } from '../plan.js';
import { storeOf } from './_objects.js';

export async function storeForCommand(ctx: CommandContext, key: Buffer): Promise<StoreObject | undefined> {
  if (isInternalKey(key)) throw new CommandError(RESERVED_KEY_ERROR);
  const store = storeOf(ctx, key);
  if (store || ctx.services.mode === 'standalone') return store;
  // Only the miss path asks the backing Redis (one EXISTS on the client's own connection, so its
  // SELECTed db applies). If the backend cannot answer, the key is treated as missing.
  let exists: unknown = 0;
  try {
    exists = await ctx.client.backendCall(['EXISTS', key]);
  } catch {
    exists = 0;
  }
  if (exists === 1) throw wrongTypeError();
  return undefined;
}

/** As storeForCommand, with the original's error when there is no store. */
export async function requireStoreForCommand(ctx: CommandContext, key: Buffer): Promise<StoreObject> {
  const store = await storeForCommand(ctx, key);
  if (!store) throw new CommandError(`vector store does not exist: ${key.toString('utf8')}`);
  return store;
}
