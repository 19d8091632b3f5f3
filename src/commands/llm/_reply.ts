/** Reply shapes shared by LLM.* commands, in the client's protocol. */
import { RespDouble, RespMap, type RespValue } from '../../protocol/resp.js';
import type { CommandContext } from '../plan.js';

const NUMERIC = /^-?\d+(\.\d+)?(e[-+]?\d+)?$/i;

/**
 * Field, value pairs (`[f1, v1, f2, v2, ...]`): as they are in RESP2 (a flat array, values as
 * given), a map in RESP3 with numeric strings as numbers (integers, or doubles).
 */
export function fieldsReply(ctx: CommandContext, pairs: RespValue[]): RespValue {
  if (ctx.client.proto !== 3) return pairs;
  const entries: Array<[RespValue, RespValue]> = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    let v = pairs[i + 1]!;
    if (typeof v === 'string' && NUMERIC.test(v)) {
      const n = Number(v);
      v = Number.isSafeInteger(n) && !v.includes('.') && !/e/i.test(v) ? n : new RespDouble(n);
    }
    entries.push([pairs[i]!, v]);
  }
  return new RespMap(entries);
}
