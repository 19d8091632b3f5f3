/**
 * ACL key permissions for LLM.*: a client authenticated as a Redis ACL user runs an LLM command
 * on a key only if that user may read (read commands) or write (write commands) that key, as the
 * backing Redis says: `ACL DRYRUN <user> GET|SET <key>`, on the server's own connection. Answers
 * are cached per user, access and key for a short while, and dropped when an ACL command passes
 * through this server (changes made elsewhere are seen within ACL_CACHE_MS). Keys an object names
 * (an app's LLM and store, a store's LLM, a --STREAM key) are checked as the command runs.
 *
 * A client that never authenticated is Redis's `default` user. When the backing Redis cannot
 * answer ACL DRYRUN (Redis 6, or a server user without the permission), `default` is let through
 * (as before this check existed) and any other user is refused, naming why.
 */
import { CommandError } from '../errors.js';
import type { CommandContext } from './plan.js';
import type { AclOracle, KeyAccess } from './acl-cache.js';

export type { KeyAccess };

/** Redis 7.0's words for a key the user may not access. */
export const NOPERM_KEY_TEXT = 'this user has no permissions to access one of the keys used as arguments';

function oracleOf(ctx: CommandContext): AclOracle | undefined {
  const s = ctx.services;
  return s.mode !== 'standalone' && s.aclDryRun && s.aclCache ? (s as AclOracle) : undefined;
}

/** The client's ACL user: the one it authenticated as, else Redis's default user. */
export function userOf(ctx: CommandContext): string {
  return ctx.client.user ?? 'default';
}

/** Whether the cache already allows every key (no round trip): the pipelined path may go on. */
export function keysAllowedCached(ctx: CommandContext, keys: Array<{ key: Buffer | string; access: KeyAccess }>): boolean {
  const oracle = oracleOf(ctx);
  if (!oracle) return true;
  const user = userOf(ctx);
  return keys.every((k) => oracle.aclCache.get(user, k.access, k.key) === true);
}

/** Throws -NOPERM when the client's user may not read / write one of `keys`. */
export async function checkKeys(ctx: CommandContext, keys: Array<{ key: Buffer | string; access: KeyAccess }>): Promise<void> {
  const oracle = oracleOf(ctx);
  if (!oracle) return;
  const user = userOf(ctx);
  for (const { key, access } of keys) {
    const cached = oracle.aclCache.get(user, access, key);
    if (cached === true) continue;
    if (cached === false) throw new CommandError(NOPERM_KEY_TEXT, 'NOPERM');
    let answer: string;
    try {
      answer = await oracle.aclDryRun(user, access === 'read' ? ['GET', key] : ['SET', key, 'x']);
    } catch (err) {
      const reason = (err as Error).message;
      if (user === 'default') {
        oracle.aclCache.warnUnavailable(reason);
        oracle.aclCache.set(user, access, key, true);
        continue;
      }
      throw new CommandError(`cannot check the key permissions of ACL user '${user}' (ACL DRYRUN: ${reason})`, 'NOPERM');
    }
    const ok = answer === 'OK';
    oracle.aclCache.set(user, access, key, ok);
    if (!ok) throw new CommandError(NOPERM_KEY_TEXT, 'NOPERM');
  }
}

/**
 * An ordinary command this server answers for LLM objects (TYPE, EXISTS, DEL, UNLINK, RENAME,
 * FLUSHDB, ...): the client's user must be allowed to run it as sent, as ACL DRYRUN of the whole
 * command says. Not cached: these are rare next to LLM.* calls.
 */
export async function checkCommand(ctx: CommandContext, args: Buffer[]): Promise<void> {
  const oracle = oracleOf(ctx);
  if (!oracle) return;
  const user = userOf(ctx);
  let answer: string;
  try {
    answer = await oracle.aclDryRun(user, args);
  } catch (err) {
    const reason = (err as Error).message;
    if (user === 'default') {
      oracle.aclCache.warnUnavailable(reason);
      return;
    }
    throw new CommandError(`cannot check the permissions of ACL user '${user}' (ACL DRYRUN: ${reason})`, 'NOPERM');
  }
  if (answer === 'OK') return;
  const cmd = /to run the '([^']+)' command/.exec(answer)?.[1];
  throw new CommandError(cmd !== undefined ? `this user has no permissions to run the '${cmd}' command` : NOPERM_KEY_TEXT, 'NOPERM');
}
