/** MODULE LIST shows this server's LLM commands as module `LLM` version 1, after the backend's own modules. */
import { encode, splitArrayFrame, type RespValue } from '../../protocol/resp.js';
import { MODULE_NAME, MODULE_VERSION } from '../table.js';
import type { Intercept } from '../plan.js';

/** This server's LLM commands as a module entry (MODULE LIST, HELLO's `modules`). */
export const moduleEntry = (): RespValue => ['name', MODULE_NAME, 'ver', MODULE_VERSION, 'path', 'redis-llm-server', 'args', []];
const entry = moduleEntry;

export const moduleCmd: Intercept = (args, _view, services) => {
  if (args.length !== 2 || args[1].toString('latin1').toLowerCase() !== 'list') return null;
  if (services.mode === 'standalone') return { kind: 'local', run: () => [entry()] };
  return { kind: 'forward', hooks: { transform: (frame) => appendToArray(frame, [encode(entry())]) } };
};

/** Appends encoded elements to a multibulk reply (errors pass through unchanged). */
export function appendToArray(frame: Buffer, extra: Buffer[]): Buffer {
  const split = splitArrayFrame(frame);
  if (!split) return frame;
  return Buffer.concat([Buffer.from(`*${split.count + extra.length}\r\n`), ...split.elements, ...extra]);
}
