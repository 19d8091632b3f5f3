/** PING, ECHO and QUIT: answered here when there is no backing Redis to answer them. */
import { OK, SimpleString } from '../../protocol/resp.js';
import type { Intercept } from './index.js';
import { errorPlan } from '../dispatcher.js';

export const ping: Intercept = (args, view) => {
  if (view.backendUp) return { kind: 'forward' };
  if (args.length > 2) return errorPlan("wrong number of arguments for 'ping' command");
  return { kind: 'local', run: () => (args.length === 2 ? Buffer.from(args[1]) : new SimpleString('PONG')) };
};

export const echo: Intercept = (args, view) => {
  if (view.backendUp) return { kind: 'forward' };
  if (args.length !== 2) return errorPlan("wrong number of arguments for 'echo' command");
  return { kind: 'local', run: () => Buffer.from(args[1]) };
};

export const quit: Intercept = () => ({ kind: 'local', run: () => OK, close: true });
