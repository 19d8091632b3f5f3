import { defineCommand } from '../spec.js';
import { requireApp } from './_objects.js';

export default defineCommand({
  name: 'LLM.CACHE-CLEAR',
  summary: "Removes an app's cached answers (all, or one scope's).",
  since: '0.1.0',
  arity: -1,
  flags: ['write'],
  aclCategories: ['@write', '@slow'],
  keySpec: { access: 'RW', op: 'DELETE' },
  options: [{ token: '--SCOPE', type: 'string', value: 'scope', summary: 'Only the entries of this scope.' }],
  args: [],
  reply: 'Integer: entries removed (0 when the app has no cache).',
  examples: ['LLM.CACHE-CLEAR hello-world', 'LLM.CACHE-CLEAR support --SCOPE acme'],
  async handler(ctx, args) {
    const app = await requireApp(ctx, args.key);
    const cache = app.cacheFor(ctx.services.kv);
    if (!cache) return 0;
    return cache.clear((args.opts.get('scope') as Buffer | undefined)?.toString('utf8'));
  },
});
