import { defineCommand } from '../spec.js';
import { redactConfig } from '../../llm/index.js';
import { ModelObject, StoreObject, KIND_NAMES } from '../../objects/objects.js';
import type { RespValue } from '../../protocol/resp.js';
import { objectsOf, keyName } from './_objects.js';

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
  reply: 'Array of field, value pairs (config is JSON without secrets), or nil when the key is not an LLM object.',
  examples: ['LLM.INFO openai'],
  handler(ctx, args) {
    const obj = objectsOf(ctx).get(ctx.client.db, keyName(args.key));
    if (!obj) return null;
    const out: RespValue[] = ['type', KIND_NAMES[obj.kind], 'created_at', Math.floor(obj.createdAt / 1000)];
    if (obj instanceof ModelObject) {
      out.push('config', JSON.stringify(redactConfig(obj.llm)));
      const st = obj.provider.stats.snapshot();
      for (const [k, v] of Object.entries(st)) out.push(k, String(v));
    } else if (obj instanceof StoreObject) {
      out.push('config', JSON.stringify(obj.config));
      const st = obj.index.stats();
      out.push('items', obj.index.size, 'dim', obj.index.dim ?? 0, 'capacity', st.capacity, 'memory', obj.index.memoryBytes());
      out.push('log_length', obj.logLength, 'last_snapshot', Math.floor(obj.lastSnapshotAt / 1000));
    } else {
      out.push('config', JSON.stringify(obj.config));
    }
    return out;
  },
});
