/**
 * The CLIENT family. CLIENT REPLY ON|OFF|SKIP is the one subcommand the server must follow: the
 * connection stops writing replies (OFF), or the next one (SKIP), keeping every later reply in
 * its place — for replies made here too. On one Redis it is also forwarded, so Redis stops
 * answering as it would; on a cluster it is kept by the link (each node would need it) and the
 * nodes' replies are dropped. Every other CLIENT subcommand is the backing Redis's own
 * (CLIENT ID, SETNAME, TRACKING, ... act on the client's own link).
 */
import type { ReplyMode } from '../../proxy/link.js';
import type { Intercept } from '../plan.js';

const MODES = new Set<string>(['on', 'off', 'skip']);

export const client: Intercept = (args) => {
  if (args.length !== 3 || args[1]!.toString('latin1').toLowerCase() !== 'reply') return null;
  const mode = args[2]!.toString('latin1').toLowerCase();
  if (!MODES.has(mode)) return null;
  return { kind: 'forward', hooks: { replyMode: mode as ReplyMode } };
};
