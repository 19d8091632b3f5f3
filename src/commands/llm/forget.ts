import { defineCommand } from '../spec.js';
import { ChatObject, DEFAULT_SESSION } from '../../objects/chat.js';
import { SESSION } from './_common.js';
import { requireApp, objectsOf } from './_objects.js';

export default defineCommand({
  name: 'LLM.FORGET',
  summary: "Forgets a chat session: its messages and its summaries in the vector store.",
  since: '0.1.0',
  arity: -1,
  flags: ['write'],
  aclCategories: ['@write', '@slow'],
  keySpec: { access: 'RW', op: 'DELETE' },
  options: [SESSION],
  args: [],
  reply: 'Integer 1 when the session existed, 0 otherwise.',
  examples: ['LLM.FORGET chat --SESSION alice'],
  async handler(ctx, args) {
    const chat = await requireApp<ChatObject>(ctx, args.key, ['chat']);
    const name = (args.opts.get('session') as Buffer | undefined)?.toString('utf8') ?? DEFAULT_SESSION;
    const objects = objectsOf(ctx);
    return chat.serialize(name, async () => ((await objects.chats.forget(chat, name)) ? 1 : 0));
  },
});
