import { defineCommand } from '../spec.js';
import { ChatObject, DEFAULT_SESSION } from '../../objects/chat.js';
import { SESSION } from './_common.js';
import { requireApp } from './_objects.js';

export default defineCommand({
  name: 'LLM.HISTORY',
  summary: "Lists a chat session's recent messages, oldest first.",
  since: '0.1.0',
  arity: -1,
  flags: ['readonly'],
  aclCategories: ['@read', '@slow'],
  keySpec: { access: 'RO', op: 'ACCESS' },
  options: [SESSION, { token: '--COUNT', type: 'integer', value: 'n', min: 1, max: 1_000_000, summary: 'Only the last n messages.' }],
  args: [],
  reply: 'Array of [role, content] pairs (empty for an unknown session).',
  examples: ['LLM.HISTORY chat --SESSION alice --COUNT 4'],
  async handler(ctx, args) {
    const chat = await requireApp<ChatObject>(ctx, args.key, ['chat']);
    const name = (args.opts.get('session') as Buffer | undefined)?.toString('utf8') ?? DEFAULT_SESSION;
    const s = chat.session(name);
    if (!s) return [];
    const count = args.opts.get('count') as number | undefined;
    const msgs = count === undefined ? s.messages : s.messages.slice(-count);
    return msgs.map((m) => [m.role, m.content]);
  },
});
