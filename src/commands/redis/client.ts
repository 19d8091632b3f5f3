/**
 * The CLIENT family. CLIENT REPLY ON|OFF|SKIP is the one subcommand the server must follow: the
 * connection stops writing replies (OFF), or the next one (SKIP), keeping every later reply in
 * its place — for replies made here too. On one Redis it is also forwarded, so Redis stops
 * answering as it would; on a cluster it is kept by the link (each node would need it) and the
 * nodes' replies are dropped. CLIENT TRACKING on a cluster is refused (each node would track only
 * its own connection). Every other CLIENT subcommand is the backing Redis's own (CLIENT ID,
 * SETNAME, TRACKING, ... act on the client's own link).
 */
import type { ReplyMode } from '../../proxy/link.js';
import { errorPlan, type Intercept } from '../plan.js';

const MODES = new Set<string>(['on', 'off', 'skip']);

export const client: Intercept = (args, view) => {
  const sub = args[1]?.toString('latin1').toLowerCase();
  // A tracking connection is one node's, and a client's commands go to several nodes here.
  if (sub === 'tracking' && view.cluster) return errorPlan('CLIENT TRACKING is not supported with a Redis Cluster backend (a client\'s commands are spread over several nodes, and each node tracks only its own connection)');
  if (args.length !== 3 || sub !== 'reply') return null;
  const mode = args[2]!.toString('latin1').toLowerCase();
  if (!MODES.has(mode)) return null;
  return { kind: 'forward', hooks: { replyMode: mode as ReplyMode } };
};
