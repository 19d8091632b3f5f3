/** MODULE LIST shows this server's LLM commands as module `LLM` version 1, after the backend's own modules. */
import { encode, joinArrayFrame, RespMap, splitArrayFrame, type RespValue } from '../../protocol/resp.js';
import { MODULE_NAME, MODULE_VERSION } from '../table.js';
import type { Intercept } from '../plan.js';

/** This server's LLM commands as a module entry (MODULE LIST, HELLO's `modules`): a map in RESP3. */
export const moduleEntry = (): RespValue => RespMap.of({ name: MODULE_NAME, ver: MODULE_VERSION, path: 'redis-llm-server', args: [] });

export const moduleCmd: Intercept = (args, view, services) => {
  if (args.length !== 2 || args[1]!.toString('latin1').toLowerCase() !== 'list') return null;
  if (services.mode === 'standalone') return { kind: 'local', run: () => [moduleEntry()] };
  return { kind: 'forward', hooks: { transform: (frame) => appendToArray(frame, [encode(moduleEntry(), view.proto)]) } };
};

/**
 * Appends encoded elements to an aggregate reply: an array, or a RESP3 map (the elements are then
 * field, value pairs) or set. Errors pass through unchanged.
 */
export function appendToArray(frame: Buffer, extra: Buffer[]): Buffer {
  const split = splitArrayFrame(frame);
  if (!split) return frame;
  return joinArrayFrame(split.type, [...split.elements, ...extra]);
}
