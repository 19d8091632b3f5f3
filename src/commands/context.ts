/**
 * What a command handler sees: the calling client and the server's services.
 * The session (src/server) implements ClientHandle; handlers never touch sockets.
 */
import type { Decoded } from '../protocol/resp.js';
import type { Services } from './services.js';

export interface ClientHandle {
  readonly id: number;
  /** The client's selected database (tracked from SELECT replies). */
  readonly db: number;
  /** False until the backing Redis (or --requirepass) accepted this client's AUTH, when auth is required. */
  readonly authenticated: boolean;
  /**
   * Sends a command on this client's own backend connection (so its AUTH, ACL user and SELECT
   * apply) and resolves with the decoded reply. Rejects with a CommandError when there is no backend.
   */
  backendCall(args: Array<string | Buffer>): Promise<Decoded>;
}

export interface CommandContext {
  client: ClientHandle;
  services: Services;
}
