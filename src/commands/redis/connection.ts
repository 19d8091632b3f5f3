/**
 * The connection family: PING, ECHO, QUIT, AUTH, HELLO, RESET and SELECT, on one Redis and on a
 * cluster, plus the intake: what the transport must know of a request as soon as it is read.
 */
import { commandName } from '../../protocol/command-name.js';
import { encodeRequest } from '../../protocol/request-parser.js';
import { ErrorReply, OK, RespMap, SimpleString, type Decoded, type Proto } from '../../protocol/resp.js';
import { errorPlan, FORWARD, replyPlan, type Intercept, type Plan, type RouterOptions, type SessionView } from '../plan.js';
import { moduleEntry } from './module.js';

/**
 * What the connection does with a request as soon as it is parsed, before it runs: `quit` (read
 * nothing after it), `http` (an HTTP request line: close at once, as Redis does against
 * cross-protocol scripting), `hold` (parse nothing more until it is answered: AUTH and HELLO from
 * a client that owes an AUTH, RESET when the backend requires one — Redis judges the next request
 * with the auth state they leave), or null.
 */
export type Intake = 'quit' | 'http' | 'hold' | null;

export function intakeOf(a0: Buffer, authenticated: boolean, authRequired: boolean): Intake {
  if (a0.length !== 4 && a0.length !== 5) return null;
  // Only QUIT, POST, HOST:, AUTH, HELLO and RESET matter: a cheap test of the first letter first.
  const c = a0[0]! | 0x20;
  if (c !== 0x71 /* q */ && c !== 0x70 /* p */ && c !== 0x68 /* h */ && c !== 0x61 /* a */ && c !== 0x72 /* r */) return null;
  const n = commandName(a0);
  if (n === 'quit') return 'quit';
  if (n === 'post' || n === 'host:') return 'http';
  if (n === 'auth' || n === 'hello') return authenticated ? null : 'hold';
  return n === 'reset' && authRequired ? 'hold' : null;
}

/** PING and ECHO are answered here when there is no backing Redis to answer them. */
export const ping: Intercept = (args, view) => {
  if (view.backendUp) return FORWARD;
  if (args.length > 2) return errorPlan("wrong number of arguments for 'ping' command");
  return replyPlan(args.length === 2 ? Buffer.from(args[1]!) : new SimpleString('PONG'));
};

export const echo: Intercept = (args, view) => {
  if (view.backendUp) return FORWARD;
  if (args.length !== 2) return errorPlan("wrong number of arguments for 'echo' command");
  return replyPlan(Buffer.from(args[1]!));
};

export const quit: Intercept = () => ({ kind: 'local', run: () => OK, close: true });

const NO_PASSWORD_TEXT = 'AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?';

/** Standalone mode (--requirepass): checks a user and password as Redis's default user does. Null when accepted. */
function standaloneCheck(user: string, pass: string, opts: RouterOptions): Plan | null {
  if (!opts.requirePass) return errorPlan(NO_PASSWORD_TEXT);
  if (user !== 'default' || pass !== opts.requirePass) return errorPlan('invalid username-password pair or user is disabled.', 'WRONGPASS');
  return null;
}

/** AUTH: checked here in standalone mode; otherwise by the backing Redis, whose acceptance authenticates the client. */
export const auth: Intercept = (args, view, services, opts) => {
  if (services.mode !== 'standalone') return authForward(view, encodeRequest(args), args.length === 3 ? args[1]!.toString('utf8') : 'default');
  if (args.length < 2 || args.length > 3) return errorPlan("wrong number of arguments for 'auth' command");
  const refused = standaloneCheck(args.length === 3 ? args[1]!.toString('utf8') : 'default', args[args.length - 1]!.toString('utf8'), opts);
  if (refused) return refused;
  view.applyState({ authenticated: true });
  return replyPlan(OK);
};

/** A forwarded AUTH: accepted → authenticated; a cluster link replays `credentials` on its other nodes. */
function authForward(view: SessionView, credentials: Buffer, user: string): Plan {
  return {
    kind: 'forward',
    hooks: { credentials, onReply: (r) => { if (!(r instanceof ErrorReply)) view.applyState({ authenticated: true, user }); } },
  };
}

/**
 * HELLO [protover [AUTH user pass] [SETNAME name]]: forwarded, and once the backing Redis accepts
 * it the connection speaks the protocol asked for (replies made here are encoded in it; RESP3
 * pushes pass through) and, with AUTH, is authenticated. Without a backing Redis it is answered
 * here (--requirepass checks AUTH).
 */
export const hello: Intercept = (args, view, services, opts) => {
  let proto: Proto | undefined;
  if (args.length >= 2) {
    const v = args[1]!.toString('latin1');
    if (!/^-?\d+$/.test(v)) return errorPlan('Protocol version is not an integer or out of range');
    if (v !== '2' && v !== '3') return errorPlan('unsupported protocol version', 'NOPROTO');
    proto = v === '3' ? 3 : 2;
  }
  const authAt = args.findIndex((a, i) => i >= 2 && a.toString('latin1').toLowerCase() === 'auth');
  const user = authAt >= 0 ? args[authAt + 1] : undefined;
  const pass = authAt >= 0 ? args[authAt + 2] : undefined;
  if (services.mode !== 'standalone') {
    const authenticates = !!user && !!pass;
    if (!authenticates && proto === undefined) return FORWARD;
    const onReply = (r: Decoded) => {
      if (r instanceof ErrorReply) return;
      view.applyState({ ...(proto ? { proto } : {}), ...(authenticates ? { authenticated: true, user: user!.toString('utf8') } : {}) });
    };
    return {
      kind: 'forward',
      hooks: { onReply, ...(proto ? { protocol: proto } : {}), ...(authenticates ? { credentials: encodeRequest(['AUTH', user!, pass!]) } : {}) },
    };
  }
  if (authAt >= 0) {
    if (!user || !pass) return errorPlan("Syntax error in HELLO option 'auth'");
    const refused = standaloneCheck(user.toString('utf8'), pass.toString('utf8'), opts);
    if (refused) return refused;
    view.applyState({ authenticated: true });
  } else if (!view.authenticated) {
    return errorPlan('HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time', 'NOAUTH');
  }
  if (proto) view.applyState({ proto });
  return replyPlan(
    RespMap.of({ server: 'redis', version: '7.0.0', proto: view.proto, id: view.id, mode: 'standalone', role: 'master', modules: [moduleEntry()] }),
  );
};

/** RESET: forwarded; its reply resets the connection's state (db, transaction, subscriptions, AUTH). */
export const reset: Intercept = (_args, view) => {
  view.tx = null;
  return { kind: 'forward', hooks: { onReply: () => view.applyState({ reset: true }) } };
};

/**
 * SELECT: on one Redis, forwarded and tracked (optimistically, so later pipelined requests see the
 * new db; undone if Redis refuses). A cluster has only db 0: answered here as a cluster node does.
 */
export const select: Intercept = (args, view) => {
  if (view.cluster) {
    if (args.length !== 2 || !view.authenticated || view.pubsubMode) return FORWARD;
    return args[1]!.toString('latin1') === '0' ? replyPlan(OK) : errorPlan('SELECT is not allowed in cluster mode');
  }
  const db = Number(args[1]?.toString('latin1'));
  const before = view.db;
  if (args.length === 2 && Number.isInteger(db) && db >= 0) view.applyState({ db });
  return { kind: 'forward', hooks: { onReply: (r) => { if (r instanceof ErrorReply) view.applyState({ db: before }); } } };
};

/** Of this family, the names answered here on a cluster (planned in order, not forwarded at once). */
export const CLUSTER_PLANNED = ['select'];
