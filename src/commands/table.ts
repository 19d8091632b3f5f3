/** The LLM.* command table: every declaration, by lower-cased name. */
import type { CommandSpec } from './spec.js';
import createLlm from './llm/create-llm.js';
import createApp from './llm/create-app.js';
import createSearch from './llm/create-search.js';
import createChat from './llm/create-chat.js';
import createVectorStore from './llm/create-vector-store.js';
import add from './llm/add.js';
import get from './llm/get.js';
import rem from './llm/rem.js';
import size from './llm/size.js';
import knn from './llm/knn.js';
import run from './llm/run.js';
import info from './llm/info.js';
import history from './llm/history.js';
import forget from './llm/forget.js';
import setattrs from './llm/setattrs.js';
import cacheClear from './llm/cache-clear.js';
import stats from './llm/stats.js';

export const LLM_COMMANDS: CommandSpec[] = [
  createLlm,
  createApp,
  createSearch,
  createChat,
  createVectorStore,
  add,
  get,
  rem,
  size,
  knn,
  run,
  info,
  history,
  forget,
  setattrs,
  cacheClear,
  stats,
];

export const commandTable = new Map<string, CommandSpec>(LLM_COMMANDS.map((c) => [c.name.toLowerCase(), c]));

export const MODULE_NAME = 'LLM';
export const MODULE_VERSION = 1;
