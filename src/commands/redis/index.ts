/**
 * Every Redis command the server touches itself, by name, with the family file that says what it
 * means on one Redis and on a cluster:
 *
 *   connection.ts    PING ECHO QUIT AUTH HELLO RESET SELECT (and the intake of every request)
 *   transactions.ts  MULTI EXEC DISCARD (WATCH: forwarded as it is)
 *   pubsub.ts        (P|S)SUBSCRIBE (P|S)UNSUBSCRIBE MONITOR SYNC PSYNC
 *   command.ts       COMMAND          info.ts  INFO          module.ts  MODULE
 *   slowlog.ts       SLOWLOG COMMANDLOG     client.ts  CLIENT REPLY
 *   keyspace.ts      TYPE EXISTS DEL UNLINK RENAME RENAMENX KEYS SCAN RANDOMKEY DBSIZE FLUSHDB
 *                    FLUSHALL SWAPDB, EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME
 *                    PEXPIRETIME PERSIST DUMP RESTORE COPY, and WRONGTYPE for any other command naming an LLM object
 *
 * Every other command is forwarded untouched: WATCH, the rest of CLIENT and of Redis's commands
 * are the backing Redis's own.
 */
import type { Intercept } from '../plan.js';
import { auth, echo, hello, ping, quit, reset, select } from './connection.js';
import { discard, exec, multi } from './transactions.js';
import { PUBSUB_FAMILY } from './pubsub.js';
import { command } from './command.js';
import { info } from './info.js';
import { moduleCmd } from './module.js';
import { commandlog } from './slowlog.js';
import { client } from './client.js';
import { KEYSPACE_INTERCEPTS } from './keyspace.js';

export const REDIS_COMMANDS = new Map<string, Intercept>([
  ['ping', ping],
  ['echo', echo],
  ['quit', quit],
  ['auth', auth],
  ['hello', hello],
  ['reset', reset],
  ['select', select],
  ['multi', multi],
  ['exec', exec],
  ['discard', discard],
  ...PUBSUB_FAMILY,
  ['command', command],
  ['info', info],
  ['module', moduleCmd],
  ['client', client],
  ['slowlog', commandlog],
  ['commandlog', commandlog],
  ...KEYSPACE_INTERCEPTS,
]);

/** Planned in order (after every earlier reply) on one Redis and on a cluster: answered here or merged. */
export const ALWAYS_PLANNED = new Set(['quit', 'hello', 'command', 'info', 'module', 'keys', 'scan', 'flushdb', 'flushall', 'randomkey', 'swapdb', 'restore']);
/** Planned in order when the client's db holds LLM objects (they see LLM objects as keys). */
export const PLANNED_WITH_OBJECTS = new Set([
  'type', 'exists', 'del', 'unlink', 'rename', 'renamenx',
  'expire', 'pexpire', 'expireat', 'pexpireat', 'ttl', 'pttl', 'expiretime', 'pexpiretime', 'persist', 'dump', 'copy',
]);

export { intakeOf, type Intake } from './connection.js';
export { touchesSpecialKey, specialKeyPlan } from './keyspace.js';
export { noteForwarded } from './transactions.js';

/** Without a backing Redis (standalone) these answer "no backing Redis"; the other families answer here. */
export const NEEDS_BACKEND = new Set(['reset', 'select', 'multi', 'exec', 'discard', 'subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe', 'ssubscribe', 'sunsubscribe', 'monitor', 'sync', 'psync', 'slowlog', 'commandlog', 'client']);
