/** The cache of LLM.* key permissions (see acl.ts): a leaf, so services.ts may name it. */
import { logger } from '../log.js';

export type KeyAccess = 'read' | 'write';

export const ACL_CACHE_MS = 2000;
const MAX_ENTRIES = 10_000;

/** What the permission check needs from the server. */
export interface AclOracle {
  /** `ACL DRYRUN user cmd key...` on the server's own connection: "OK" or the refusal text; rejects when it cannot be asked. */
  aclDryRun(user: string, args: Array<string | Buffer>): Promise<string>;
  readonly aclCache: AclKeyCache;
}

export class AclKeyCache {
  private entries = new Map<string, { ok: boolean; at: number }>();
  private warned = false;

  private static id(user: string, access: KeyAccess, key: Buffer | string): string {
    return `${user}\0${access}\0${typeof key === 'string' ? key : key.toString('latin1')}`;
  }

  /** The cached answer (true: allowed, false: refused), or undefined when it must be asked. */
  get(user: string, access: KeyAccess, key: Buffer | string, now = Date.now()): boolean | undefined {
    const e = this.entries.get(AclKeyCache.id(user, access, key));
    if (!e || now - e.at > ACL_CACHE_MS) return undefined;
    return e.ok;
  }

  set(user: string, access: KeyAccess, key: Buffer | string, ok: boolean): void {
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(AclKeyCache.id(user, access, key), { ok, at: Date.now() });
  }

  /** An ACL command passed through: users, passwords or key patterns may have changed. */
  clear(): void {
    this.entries.clear();
  }

  /** Logs once that the backing Redis cannot answer ACL DRYRUN. */
  warnUnavailable(reason: string): void {
    if (this.warned) return;
    this.warned = true;
    logger.warn({ reason }, 'the backing Redis cannot answer ACL DRYRUN: LLM.* key permissions are checked for no user but default, and refused to every other ACL user');
  }
}

