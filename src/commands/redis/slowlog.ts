/**
 * SLOWLOG and COMMANDLOG (Valkey): the backing Redis's replies that would show the server's own
 * traffic are filtered, on one Redis and (outside MULTI) on a cluster.
 *
 * The server's own connection writes the catalog (API keys included, for a literal `api_key`)
 * and the vector stores' logs. With `slowlog-log-slower-than 0` (or a slow disk), those writes
 * land in the backing Redis's SLOWLOG — and Valkey's COMMANDLOG — with their arguments, and a
 * client reading `SLOWLOG GET` through this server would see them. Those entries are dropped
 * from the proxied reply, as MONITOR lines are (see src/proxy/single-link.ts): an entry is the server's own when
 * the connection that ran it carries the server's connection name, or when an argument names a
 * reserved `__llm__:` key (commands run by the server's Lua scripts are logged with no client
 * name; clients cannot name those keys through this server).
 */
import { decodeFrame, splitArrayFrame, type Decoded } from '../../protocol/resp.js';
import { INTERNAL_PREFIX } from '../../storage/index.js';
import { OWN_CONNECTION_NAME } from '../../util/names.js';
import { FORWARD, refusedInMulti, type Intercept } from '../plan.js';


const RESERVED = Buffer.from(INTERNAL_PREFIX);

/**
 * SLOWLOG GET / COMMANDLOG GET: every entry is asked for, the server's own are dropped and the
 * reply cut to the count asked for. Inside a single-node MULTI the reply is filtered in EXEC's
 * reply (transactions.ts); inside MULTI on a cluster it is refused (the transaction aborts).
 * Other subcommands are forwarded as they are.
 */
export const commandlog: Intercept = (args, view) => {
  const name = args[0]!.toString('latin1').toLowerCase();
  if (!isCommandLogGet(name, args)) {
    if (view.tx !== null) view.tx.n++;
    return FORWARD;
  }
  if (view.cluster && view.inMulti) return refusedInMulti(`ERR ${name.toUpperCase()} GET inside MULTI is not supported on a Redis Cluster backend`);
  const asked = commandLogRequest(name, args);
  const limit = asked?.limit ?? Infinity;
  if (view.tx !== null) view.tx.logGets.set(view.tx.n++, limit);
  return { kind: 'forward', args: asked?.args, hooks: { transform: (f) => filterCommandLog(f, limit) } };
};

/** SLOWLOG GET / COMMANDLOG GET: the replies that list logged commands with their arguments. */
export function isCommandLogGet(name: string, args: Buffer[]): boolean {
  return (name === 'slowlog' || name === 'commandlog') && args.length >= 2 && args[1]!.toString('latin1').toLowerCase() === 'get';
}

/**
 * How a SLOWLOG GET / COMMANDLOG GET is forwarded so that the client still gets the entries it
 * asked for once the server's own are dropped: every entry is asked for (count -1), and the
 * filtered reply is cut to `limit` (SLOWLOG's default count is 10). null: forward it as it is (a
 * count or arity the backing Redis refuses gets the backing Redis's error).
 */
export function commandLogRequest(name: string, args: Buffer[]): { args: Buffer[]; limit: number } | null {
  const expected = name === 'slowlog' ? 3 : 4; // SLOWLOG GET [count]; COMMANDLOG GET count type
  if (args.length > expected || (name !== 'slowlog' && args.length !== expected)) return null;
  let limit = 10;
  if (args.length >= 3) {
    const text = args[2]!.toString('latin1');
    if (!/^-?[0-9]{1,18}$/.test(text) || Number(text) < -1) return null;
    limit = Number(text) === -1 ? Infinity : Number(text);
  }
  return { args: [args[0]!, args[1]!, Buffer.from('-1'), ...args.slice(3)], limit };
}

function isOwnEntry(entry: Decoded): boolean {
  if (!Array.isArray(entry)) return false;
  // [id, timestamp, duration (or size), [args...], client addr:port, client name]
  const name = entry[5];
  if (Buffer.isBuffer(name) && name.length === OWN_CONNECTION_NAME.length && name.toString('latin1') === OWN_CONNECTION_NAME) return true;
  const args = entry[3];
  return Array.isArray(args) && args.some((a) => Buffer.isBuffer(a) && a.includes(RESERVED));
}

/**
 * A SLOWLOG GET / COMMANDLOG GET reply without the server's own entries, at most `limit` of them
 * (newest first, as Redis lists them); other replies as they are.
 */
export function filterCommandLog(frame: Buffer, limit = Infinity): Buffer {
  if (frame[0] !== 42) return frame; // an error, +QUEUED inside MULTI, ...
  const split = splitArrayFrame(frame);
  if (!split) return frame;
  const kept = split.elements.filter((e) => !isOwnEntry(decodeFrame(e).value)).slice(0, limit);
  if (kept.length === split.count) return frame;
  return Buffer.concat([Buffer.from(`*${kept.length}\r\n`), ...kept]);
}

/**
 * An EXEC reply whose elements at the given positions are SLOWLOG / COMMANDLOG GET replies: those
 * are filtered (and cut to their limits).
 */
export function filterExecReply(frame: Buffer, logGets: ReadonlyMap<number, number>): Buffer {
  if (frame[0] !== 42 || logGets.size === 0) return frame;
  const split = splitArrayFrame(frame);
  if (!split) return frame;
  const elements = split.elements.map((e, i) => (logGets.has(i) ? filterCommandLog(e, logGets.get(i)) : e));
  return Buffer.concat([Buffer.from(`*${split.count}\r\n`), ...elements]);
}
