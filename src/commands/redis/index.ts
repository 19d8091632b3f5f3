/**
 * Redis commands the server answers itself or merges its own entries into. Each returns a Plan,
 * or null to fall through to the default (forward, or the standalone error).
 */
import type { Plan, RouterOptions, SessionView } from '../dispatcher.js';
import type { Services } from '../services.js';
import { command } from './command.js';
import { info } from './info.js';
import { moduleCmd } from './module.js';
import { hello } from './hello.js';
import { ping, echo, quit } from './connection.js';

export type Intercept = (args: Buffer[], view: SessionView, services: Services, opts: RouterOptions) => Plan | null;

export const REDIS_INTERCEPTS = new Map<string, Intercept>([
  ['command', command],
  ['info', info],
  ['module', moduleCmd],
  ['hello', hello],
  ['ping', ping],
  ['echo', echo],
  ['quit', quit],
]);
