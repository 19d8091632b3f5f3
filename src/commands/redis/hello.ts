/**
 * HELLO: RESP2 only. `HELLO 3` gets Redis's -NOPROTO so clients fall back to RESP2 (a proxied
 * RESP3 stream mixed with RESP2 LLM.* replies would corrupt clients). `HELLO`/`HELLO 2` are
 * forwarded; a successful `HELLO 2 AUTH user pass` marks the client authenticated.
 */
import { ErrorReply } from '../../protocol/resp.js';
import { errorPlan } from '../dispatcher.js';
import type { Intercept } from './index.js';

export const hello: Intercept = (args, view, services) => {
  if (args.length >= 2) {
    const v = args[1].toString('latin1');
    if (!/^-?\d+$/.test(v)) return errorPlan('Protocol version is not an integer or out of range');
    if (v !== '2') return errorPlan('unsupported protocol version', 'NOPROTO');
  }
  const hasAuth = args.some((a, i) => i >= 2 && a.toString('latin1').toLowerCase() === 'auth');
  if (services.mode === 'standalone') {
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
