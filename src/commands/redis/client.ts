/**
 * The CLIENT family, seen through the server: what the backing Redis says about clients is about
 * this server's clients.
 *
 * - CLIENT REPLY ON|OFF|SKIP: the connection stops writing replies (OFF), or the next one (SKIP),
 *   keeping every later reply in its place — for replies made here too. On one Redis it is also
 *   forwarded, so Redis stops answering as it would; on a cluster it is kept by the link (each
 *   node would need it) and the nodes' replies are dropped.
 * - CLIENT LIST, CLIENT INFO (one Redis): the server's own connections (named redis-llm-server:
 *   storage, following, blocking reads) are left out, and a client's `addr` / `laddr` are its own
 *   socket's, not those of the server's link to Redis. `id` stays the link's id (CLIENT ID, KILL ID
 *   and TRACKING REDIRECT agree with it). A client that has sent nothing Redis had to answer yet has
 *   no link and is not listed.
 * - CLIENT KILL (one Redis): the old form names a client by its own address; the filter form is
 *   evaluated here against the clients as CLIENT LIST shows them and each match is killed by its
 *   link's id (its connection closes with it), or closed here when it has no link. The server's
 *   own connections are never killed.
 * - CLIENT TRACKING on a cluster is refused (each node would track only its own connection).
 * Every other subcommand is the backing Redis's own (ID, SETNAME, GETNAME, TRACKING, CACHING,
 * PAUSE, ... act on the client's own link).
 */
import { CommandError } from '../../errors.js';
import { decodeFrame, encodeText, ErrorReply, OK, RawReply, type Proto, type RespValue } from '../../protocol/resp.js';
import type { ReplyMode } from '../../proxy/link.js';
import { OWN_CONNECTION_NAME } from '../../util/names.js';
import { errorPlan, type CommandContext, type Intercept, type Plan } from '../plan.js';
import type { ClientConnectionView, Services } from '../services.js';

const MODES = new Set<string>(['on', 'off', 'skip']);

export const client: Intercept = (args, view, services) => {
  const sub = args[1]?.toString('latin1').toLowerCase();
  // A tracking connection is one node's, and a client's commands go to several nodes here.
  if (sub === 'tracking' && view.cluster) return errorPlan('CLIENT TRACKING is not supported with a Redis Cluster backend (a client\'s commands are spread over several nodes, and each node tracks only its own connection)');
  if (sub === 'reply' && args.length === 3) {
    const mode = args[2]!.toString('latin1').toLowerCase();
    if (MODES.has(mode)) return { kind: 'forward', hooks: { replyMode: mode as ReplyMode } };
    return null;
  }
  if (view.cluster || view.inMulti || services.mode === 'standalone') return null;
  if (sub === 'list' || sub === 'info') {
    return { kind: 'forward', hooks: { transform: (frame) => rewriteClientLines(frame, services) } };
  }
  if (sub === 'kill') return killPlan(args, services);
  return null;
};

/** The bulk (or RESP3 verbatim) text of a CLIENT LIST / CLIENT INFO / INFO reply, re-encoded after `edit`. */
function editText(frame: Buffer, edit: (text: string) => string): Buffer {
  if (frame[0] !== 36 && frame[0] !== 61) return frame; // an error
  const { value } = decodeFrame(frame);
  if (!Buffer.isBuffer(value)) return frame;
  return encodeText(Buffer.from(edit(value.toString('latin1')), 'latin1'), frame[0] === 61);
}

function byBackendId(services: Services): Map<number, ClientConnectionView> {
  const m = new Map<number, ClientConnectionView>();
  for (const c of services.clientConnections()) if (c.backendId !== null) m.set(c.backendId, c);
  return m;
}

/** Client lines as this server's clients see them (see the file's comment). */
export function clientLines(text: string, services: Services): string[] {
  const ours = byBackendId(services);
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.includes(` name=${OWN_CONNECTION_NAME} `)) continue;
    const id = Number(/^id=(\d+) /.exec(line)?.[1]);
    const c = ours.get(id);
    out.push(c ? line.replace(/ addr=\S+/, ` addr=${c.addr}`).replace(/ laddr=\S+/, ` laddr=${c.laddr}`) : line);
  }
  return out;
}

function rewriteClientLines(frame: Buffer, services: Services): Buffer {
  return editText(frame, (text) => {
    const lines = clientLines(text, services);
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  });
}

/**
 * CLIENT KILL. The old form (CLIENT KILL ip:port) names a client by its own address. The filter
 * form (ID, ADDR, LADDR, USER, TYPE, SKIPME) is evaluated here against the clients as CLIENT LIST
 * shows them through the server, and each match is killed by id: so ADDR is a client's own
 * address, and the server's own connections are never killed (Redis would match them by TYPE or
 * SKIPME). A matching client that has no link is closed here.
 */
function killPlan(args: Buffer[], services: Services): Plan | null {
  const target = (addr: string) => [...services.clientConnections()].find((c) => c.addr === addr);
  if (args.length === 3) {
    // The old form: CLIENT KILL ip:port → +OK or "No such client".
    const c = target(args[2]!.toString('latin1'));
    if (!c) return null;
    return { kind: 'local', run: (ctx) => killOne(ctx, c, 'old') };
  }
  if (args.length < 4 || args.length % 2 !== 0) return null; // Redis's arity / syntax error
  const filters: Array<[string, string]> = [];
  for (let i = 2; i < args.length; i += 2) filters.push([args[i]!.toString('latin1').toLowerCase(), args[i + 1]!.toString('latin1')]);
  const known = new Set(['id', 'addr', 'laddr', 'user', 'type', 'skipme']);
  if (filters.some(([f]) => !known.has(f))) return null; // Redis answers (syntax error, or a newer filter)
  return { kind: 'local', run: (ctx) => killMatching(ctx, filters, services) };
}

async function killMatching(ctx: CommandContext, filters: Array<[string, string]>, services: Services): Promise<RespValue> {
  // Redis checks the filters (ids, types, users, yes/no) as it would: with an id no client has
  // appended (the last ID filter wins), the check kills nothing.
  const check = await ctx.client.backendCall(['CLIENT', 'KILL', ...filters.flat(), 'ID', '9223372036854775807']);
  if (check instanceof ErrorReply) return check;
  let skipme = true;
  for (const [f, v] of filters) {
    if (f === 'skipme') {
      const y = v.toLowerCase();
      if (y !== 'yes' && y !== 'no') throw new CommandError('syntax error');
      skipme = y === 'yes';
    }
    if (f === 'type' && !['normal', 'master', 'replica', 'slave', 'pubsub'].includes(v.toLowerCase())) throw new CommandError(`Unknown client type '${v}'`);
    if (f === 'id' && !/^\d+$/.test(v)) throw new CommandError('client-id should be greater than 0');
  }
  const listed = await ctx.client.backendCall(['CLIENT', 'LIST']);
  if (!Buffer.isBuffer(listed)) return listed instanceof ErrorReply ? listed : 0;
  const me = ctx.client.backendId;
  const field = (line: string, f: string) => new RegExp(`(?:^| )${f}=(\\S*)`).exec(line)?.[1] ?? '';
  const typeOf = (line: string): string => {
    const flags = field(line, 'flags');
    if (flags.includes('M')) return 'master';
    if (flags.includes('S')) return 'replica';
    if (Number(field(line, 'sub')) + Number(field(line, 'psub')) + Number(field(line, 'ssub') || '0') > 0) return 'pubsub';
    return 'normal';
  };
  const matches = (line: string): boolean =>
    filters.every(([f, v]) => {
      switch (f) {
        case 'id':
          return field(line, 'id') === v;
        case 'addr':
          return field(line, 'addr') === v;
        case 'laddr':
          return field(line, 'laddr') === v;
        case 'user':
          return field(line, 'user') === v;
        case 'type': {
          const t = v.toLowerCase() === 'slave' ? 'replica' : v.toLowerCase();
          return typeOf(line) === t;
        }
        default:
          return true;
      }
    });
  let killed = 0;
  const ids = new Set<number>();
  let killMe = false;
  for (const line of clientLines(listed.toString('latin1'), services)) {
    const id = Number(field(line, 'id'));
    if (!matches(line)) continue;
    if (id === me) killMe = !skipme;
    else ids.add(id);
  }
  for (const id of ids) if ((await ctx.client.backendCall(['CLIENT', 'KILL', 'ID', String(id)])) === 1) killed++;
  if (killMe) {
    // As Redis kills the caller: after its reply (the connection and its link end then).
    ctx.client.closeAfterReply();
    killed++;
  }
  // Clients without a link (Redis does not know them) match ADDR / LADDR / TYPE normal filters alone.
  if (filters.every(([f]) => f === 'addr' || f === 'laddr' || f === 'type' || f === 'skipme')) {
    for (const c of services.clientConnections()) {
      if (c.backendId !== null) continue;
      const ok = filters.every(([f, v]) => (f === 'addr' ? c.addr === v : f === 'laddr' ? c.laddr === v : f === 'type' ? v.toLowerCase() === 'normal' : true));
      if (ok && !(skipme && c === (ctx.client as unknown))) {
        c.close();
        killed++;
      }
    }
  }
  return killed;
}

async function killOne(ctx: CommandContext, c: ClientConnectionView, form: 'old' | 'new'): Promise<RespValue> {
  let killed: boolean;
  if (c.backendId !== null) {
    const r = await ctx.client.backendCall(['CLIENT', 'KILL', 'ID', String(c.backendId)]);
    killed = r === 1;
  } else {
    c.close();
    killed = true;
  }
  if (form === 'new') return killed ? 1 : 0;
  return killed ? OK : new ErrorReply('No such client');
}

/**
 * INFO's `# Clients` section as this server's clients see it: connected_clients counts them (not
 * the server's own connections, nor a link and its client twice), blocked_clients and
 * clients_in_timeout_table leave out the server's own blocking reads. `lines` is CLIENT LIST's text (from the client's own link).
 */
export function clientsSection(info: string, clientList: string, services: Services): string {
  const all = clientList.split('\n').filter((l) => l.trim() !== '');
  const own = all.filter((l) => l.includes(` name=${OWN_CONNECTION_NAME} `));
  const ownBlocked = own.filter((l) => /\bflags=\S*b/.test(l)).length;
  const linked = byBackendId(services);
  let connections = 0;
  for (const _ of services.clientConnections()) connections++;
  // Every line that is neither the server's own nor one of its clients' links is a client of the
  // backing Redis itself (connected directly): still counted, as Redis counts it.
  const direct = all.length - own.length - all.filter((l) => linked.has(Number(/^id=(\d+) /.exec(l)?.[1]))).length;
  return info
    .replace(/^connected_clients:\d+/m, `connected_clients:${connections + Math.max(0, direct)}`)
    .replace(/^blocked_clients:(\d+)/m, (_m, n: string) => `blocked_clients:${Math.max(0, Number(n) - ownBlocked)}`)
    .replace(/^clients_in_timeout_table:(\d+)/m, (_m, n: string) => `clients_in_timeout_table:${Math.max(0, Number(n) - ownBlocked)}`);
}

/** A text reply in the client's protocol: a bulk string, or RESP3's verbatim string. */
export function textReply(text: string, proto: Proto): RawReply {
  return new RawReply(encodeText(Buffer.from(text, 'latin1'), proto === 3));
}

