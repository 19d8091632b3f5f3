import { defineCommand } from '../spec.js';
import { redactConfig } from '../../llm/index.js';
import { ModelObject, KIND_NAMES } from '../../objects/objects.js';
import { objectStats } from '../../objects/stats.js';
import type { RespValue } from '../../protocol/resp.js';
import { objectsOf, keyName } from './_objects.js';
import { fieldsReply } from './_reply.js';

export default defineCommand({
  name: 'LLM.INFO',
  summary: 'Shows how an LLM object is configured (secrets redacted) and its counters.',
  since: '0.1.0',
  arity: -1,
  flags: ['readonly', 'fast'],
  aclCategories: ['@read', '@fast'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [],
  args: [],
  reply: 'RESP2: array of field, value pairs (config is JSON without secrets); RESP3: a map (numbers as numbers). Nil when the key is not an LLM object.',
  examples: ['LLM.INFO openai'],
  handler(ctx, args) {
    const obj = objectsOf(ctx).get(ctx.client.db, keyName(args.key));
    if (!obj) return null;
    const out: RespValue[] = ['type', KIND_NAMES[obj.kind], 'created_at', Math.floor(obj.createdAt / 1000)];
    if (obj instanceof ModelObject) {
      out.push('config', JSON.stringify(redactConfig(obj.llm)));
    } else {
      out.push('config', JSON.stringify(obj.config));
    }
    // The fields of LLM.STATS and INFO llm (src/objects/stats.ts); numbers as integers, as before.
    for (const [k, v] of Object.entries(objectStats(obj) ?? {})) out.push(k, typeof v === 'number' && !Number.isInteger(v) ? String(v) : v);
    return fieldsReply(ctx, out);
  },
});
