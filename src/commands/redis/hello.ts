/**
 * HELLO: RESP2 only. `HELLO 3` gets Redis's -NOPROTO so clients fall back to RESP2 (a proxied
 * RESP3 stream mixed with RESP2 LLM.* replies would corrupt clients). `HELLO`/`HELLO 2` are
 * forwarded; a successful `HELLO 2 AUTH user pass` marks the client authenticated.
 */
import { ErrorReply } from '../../protocol/resp.js';
import { errorPlan } from '../dispatcher.js';
import type { Intercept } from './index.js';

export const hello: Intercept = (args, view, services, opts) => {
  if (args.length >= 2) {
    const v = args[1].toString('latin1');
    if (!/^-?\d+$/.test(v)) return errorPlan('Protocol version is not an integer or out of range');
    if (v !== '2') return errorPlan('unsupported protocol version', 'NOPROTO');
  }
  const authAt = args.findIndex((a, i) => i >= 2 && a.toString('latin1').toLowerCase() === 'auth');
  const hasAuth = authAt >= 0;
  if (services.mode === 'standalone') {
    if (hasAuth) {
      const user = args[authAt + 1]?.toString('utf8');
      const pass = args[authAt + 2]?.toString('utf8');
      if (user === undefined || pass === undefined) return errorPlan('Syntax error in HELLO option \'auth\'');
      if (!opts.requirePass) return errorPlan('AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
      if (user !== 'default' || pass !== opts.requirePass) return errorPlan('invalid username-password pair or user is disabled.', 'WRONGPASS');
      view.setAuthenticated(true);
    } else if (!view.authenticated) {
      return errorPlan('HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time', 'NOAUTH');
    }
    return {
      kind: 'local',
      run: () => ['server', 'redis', 'version', '7.0.0', 'proto', 2, 'id', view.id, 'mode', 'standalone', 'role', 'master', 'modules', [['name', 'LLM', 'ver', 1, 'path', 'redis-llm-server', 'args', []]]],
    };
  }
  return {
    kind: 'forward',
    hooks: hasAuth
      ? { onReply: (r) => { if (!(r instanceof ErrorReply)) (view as unknown as { applyState(s: object): void }).applyState({ authenticated: true }); } }
      : undefined,
  };
};
