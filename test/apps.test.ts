/**
 * Search apps and chat apps through the server, against the local OpenAI-compatible server that
 * records every request body.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import type { LlmServer } from '../src/server/server.js';

let redis: RedisServerHandle;
let server: LlmServer;
let fake: FakeOpenAI;
let r: Redis;

type Msg = { role: string; content: string };
const chatBodies = () => fake.requests.filter((q) => q.path.includes('/chat/completions')).map((q) => q.body as { messages: Msg[] });

async function boot(cfg: Parameters<typeof startServer>[0] = {}): Promise<void> {
  server = await startServer({ redis: redis.url, ...cfg });
  await server.loadingDone;
  r = client(server.port);
}

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI({ dim: 256 });
  await boot();
  await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: 'sk-test', base_url: fake.url }));
});

afterAll(async () => {
  r.disconnect();
  await server.stop();
  await fake.close();
  await redis.stop();
});

beforeEach(() => fake.reset());

describe('search apps', () => {
  beforeAll(async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'kb', '--LLM', 'gpt');
    await r.call('LLM.ADD', 'kb', '--ID', '1', 'Redis keeps its data in memory');
    await r.call('LLM.ADD', 'kb', '--ID', '2', 'Postgres is a relational database on disk');
    await r.call('LLM.ADD', 'kb', '--ID', '3', 'Cats sleep sixteen hours a day');
    await r.call('LLM.CREATE-SEARCH', 'qa', '--LLM', 'gpt', '--VECTOR-STORE', 'kb', '--K', '2');
  });

  it('the prompt holds the nearest items and the question; the answer is the reply', async () => {
    fake.setBehavior({ reply: () => 'In memory.' });
    const answer = await r.call('LLM.RUN', 'qa', 'where does Redis keep its data');
    expect(answer).toBe('In memory.');
    const [body] = chatBodies();
    expect(body.messages).toHaveLength(1);
    const prompt = body.messages[0].content;
    expect(prompt).toContain('Redis keeps its data in memory');
    expect(prompt).toContain('Question: """\nwhere does Redis keep its data\n"""');
    expect(prompt).not.toContain('Cats sleep');
    // The question was embedded by the store's LLM.
    expect(fake.calls('/embeddings')).toBe(1);
  });

  it('--WITHCONTEXT replies the answer and the ids used', async () => {
    const res = (await r.call('LLM.RUN', 'qa', '--WITHCONTEXT', 'where does Redis keep its data')) as [string, number[]];
    expect(res[0]).toMatch(/^echo: /);
    expect(res[1]).toHaveLength(2);
    expect(res[1][0]).toBe(1);
  });

  it('a custom template gets context, question and VARS', async () => {
    await r.call('LLM.CREATE-SEARCH', 'qa2', '--LLM', 'gpt', '--VECTOR-STORE', 'kb', '--K', '1', '--PROMPT', '{{lang}}|{{context}}|{{question}}');
    await r.call('LLM.RUN', 'qa2', '--VARS', '{"lang":"fr"}', 'where does Redis keep its data');
    expect(chatBodies()[0].messages[0].content).toBe('fr|Redis keeps its data in memory|where does Redis keep its data');
  });

  it('errors: no store at create, deleted store, missing LLM', async () => {
    await expect(r.call('LLM.CREATE-SEARCH', 'bad', '--LLM', 'gpt')).rejects.toThrow('no vector store is specified');
    expect(await r.exists('bad')).toBe(0);
    await r.call('LLM.CREATE-VECTOR-STORE', 'tmpstore', '--LLM', 'gpt');
    await r.call('LLM.ADD', 'tmpstore', 'x');
    await r.call('LLM.CREATE-SEARCH', 'qa3', '--LLM', 'gpt', '--VECTOR-STORE', 'tmpstore');
    await r.del('tmpstore');
    await expect(r.call('LLM.RUN', 'qa3', 'q')).rejects.toThrow('vector store does not exist');
    await r.call('LLM.CREATE-SEARCH', 'qa4', '--LLM', 'nollm', '--VECTOR-STORE', 'kb');
    await expect(r.call('LLM.RUN', 'qa4', 'q')).rejects.toThrow('LLM model not exist: nollm');
  });
});

describe('chat apps', () => {
  beforeAll(async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'mem', '--LLM', 'gpt');
    await r.call(
      'LLM.CREATE-CHAT', 'bot', '--LLM', 'gpt', '--VECTOR-STORE', 'mem',
      '--HISTORY', JSON.stringify({ summary_cnt: 4, summary_ctx_cnt: 1, msg_ctx_cnt: 2 }),
      '--PROMPT', 'Memory: {{history}}',
    );
  });

  it('requests carry the system message, recent history and the input, in order', async () => {
    await r.call('LLM.RUN', 'bot', '--SESSION', 'order', 'first message');
    await r.call('LLM.RUN', 'bot', '--SESSION', 'order', 'second message');
    const bodies = chatBodies();
    expect(bodies[0].messages).toEqual([
      { role: 'system', content: 'Memory: ' },
      { role: 'user', content: 'first message' },
    ]);
    // msg_ctx_cnt 2: the last two messages (the first turn), then the input.
    expect(bodies[1].messages).toEqual([
      { role: 'system', content: 'Memory: ' },
      { role: 'user', content: 'first message' },
      { role: 'assistant', content: 'echo: first message' },
      { role: 'user', content: 'second message' },
    ]);
    const hist = await r.call('LLM.HISTORY', 'bot', '--SESSION', 'order');
    expect(hist).toEqual([
      ['user', 'first message'],
      ['assistant', 'echo: first message'],
      ['user', 'second message'],
      ['assistant', 'echo: second message'],
    ]);
  });

  it('after summary_cnt messages a summary is stored and later retrieved into the system message', async () => {
    fake.setBehavior({ reply: (q) => {
      const msgs = (q.body as { messages: Msg[] }).messages;
      const last = msgs[msgs.length - 1].content;
      return last.startsWith('Give a concise') ? 'SUMMARY: the user likes green tea' : `ok: ${last}`;
    } });
    const before = (await r.call('LLM.SIZE', 'mem')) as number;
    await r.call('LLM.RUN', 'bot', '--SESSION', 'tea', 'I like green tea');
    await r.call('LLM.RUN', 'bot', '--SESSION', 'tea', 'especially in the morning');
    // 4 messages → one summary request, embedded and added to the store.
    expect(chatBodies().some((b) => b.messages[0].content.startsWith('Give a concise'))).toBe(true);
    expect(await r.call('LLM.SIZE', 'mem')).toBe(before + 1);
    fake.reset();
    fake.setBehavior({ reply: () => 'noted' });
    await r.call('LLM.RUN', 'bot', '--SESSION', 'tea', 'what tea do I like');
    expect(chatBodies()[0].messages[0].content).toBe('Memory: SUMMARY: the user likes green tea');
  });

  it('two sessions never see each other', async () => {
    await r.call('LLM.RUN', 'bot', '--SESSION', 'alice', 'my secret is 1234');
    await r.call('LLM.RUN', 'bot', '--SESSION', 'alice', 'remember it');
    fake.reset();
    await r.call('LLM.RUN', 'bot', '--SESSION', 'bob', 'what is the secret');
    const body = JSON.stringify(chatBodies());
    expect(body).not.toContain('1234');
    expect(body).not.toContain('green tea');
    expect(await r.call('LLM.HISTORY', 'bot', '--SESSION', 'bob')).toHaveLength(2);
  });

  it('concurrent runs on one session are serialized; history stays consistent', async () => {
    fake.setBehavior({ responseDelayMs: 30 });
    await Promise.all(Array.from({ length: 5 }, (_, i) => r.call('LLM.RUN', 'bot', '--SESSION', 'conc', `msg ${i}`)));
    const hist = (await r.call('LLM.HISTORY', 'bot', '--SESSION', 'conc')) as string[][];
    // msg_ctx_cnt 2 / summary_cnt 4 keep the last 4 messages: pairs of user then its answer.
    for (let i = 0; i < hist.length; i += 2) {
      expect(hist[i][0]).toBe('user');
      expect(hist[i + 1]).toEqual(['assistant', `echo: ${hist[i][1]}`]);
    }
    expect(fake.maxInFlight).toBe(1);
  });

  it('memory survives a restart', async () => {
    await r.call('LLM.RUN', 'bot', '--SESSION', 'durable', 'remember the number 42');
    r.disconnect();
    await server.stop();
    await boot();
    const hist = (await r.call('LLM.HISTORY', 'bot', '--SESSION', 'durable')) as string[][];
    expect(hist[0]).toEqual(['user', 'remember the number 42']);
    fake.reset();
    await r.call('LLM.RUN', 'bot', '--SESSION', 'durable', 'what number');
    expect(JSON.stringify(chatBodies()[0].messages)).toContain('remember the number 42');
  });

  it('LLM.FORGET drops a session and its summaries', async () => {
    expect(await r.call('LLM.FORGET', 'bot', '--SESSION', 'tea')).toBe(1);
    expect(await r.call('LLM.HISTORY', 'bot', '--SESSION', 'tea')).toEqual([]);
    expect(await r.call('LLM.FORGET', 'bot', '--SESSION', 'tea')).toBe(0);
  });

  it('bad HISTORY, missing store, missing LLM: clear errors, nothing created', async () => {
    await expect(r.call('LLM.CREATE-CHAT', 'c1', '--LLM', 'gpt', '--HISTORY', '{"summary_cnt":"x"}')).rejects.toThrow("invalid history param 'summary_cnt'");
    await expect(r.call('LLM.CREATE-CHAT', 'c1', '--LLM', 'gpt', '--HISTORY', '{bad')).rejects.toThrow('failed to parse json');
    await expect(r.call('LLM.CREATE-CHAT', 'c1', '--LLM', 'gpt', '--HISTORY', '[1]')).rejects.toThrow('--HISTORY must be a JSON object');
    expect(await r.exists('c1')).toBe(0);
    await r.call('LLM.CREATE-CHAT', 'c2', '--LLM', 'gpt', '--VECTOR-STORE', 'nostore');
    await expect(r.call('LLM.RUN', 'c2', 'hi')).rejects.toThrow('vector store does not exist');
    await r.call('LLM.CREATE-CHAT', 'c3', '--LLM', 'nollm');
    await expect(r.call('LLM.RUN', 'c3', 'hi')).rejects.toThrow('LLM model not exist: nollm');
    await expect(r.call('LLM.RUN', 'nosuchapp', 'hi')).rejects.toThrow('Application does not exist');
  });

  it('an idle session expires after the history ttl', async () => {
    await r.call('LLM.CREATE-CHAT', 'brief', '--LLM', 'gpt', '--HISTORY', '{"ttl":1}');
    await r.call('LLM.RUN', 'brief', '--SESSION', 's', 'old topic');
    expect(await r.call('LLM.HISTORY', 'brief', '--SESSION', 's')).toHaveLength(2);
    await new Promise((res) => setTimeout(res, 1100));
    expect(await r.call('LLM.HISTORY', 'brief', '--SESSION', 's')).toEqual([]);
    fake.reset();
    await r.call('LLM.RUN', 'brief', '--SESSION', 's', 'new topic');
    expect(JSON.stringify(chatBodies()[0].messages)).not.toContain('old topic');
    expect(await r.call('LLM.HISTORY', 'brief', '--SESSION', 's')).toEqual([['user', 'new topic'], ['assistant', 'echo: new topic']]);
  });

  it('an expired session that is used again starts over: its old summaries leave the store first', async () => {
    await r.call('LLM.CREATE-VECTOR-STORE', 'mem2', '--LLM', 'gpt');
    await r.call('LLM.CREATE-CHAT', 'again', '--LLM', 'gpt', '--VECTOR-STORE', 'mem2', '--HISTORY', JSON.stringify({ ttl: 1, summary_cnt: 2 }));
    await r.call('LLM.RUN', 'again', '--SESSION', 's', 'old topic');
    expect(await r.call('LLM.SIZE', 'mem2')).toBe(1); // the summary of the first turn
    await new Promise((res) => setTimeout(res, 1100));
    await r.call('LLM.RUN', 'again', '--SESSION', 's', 'new topic');
    // the old summary is gone; the new turn made the only one there is
    const items = (await r.call('LLM.KNN', 'mem2', '--K', '10', '--WITHDATA', 'topic')) as Array<[number, string, string]>;
    expect(items).toHaveLength(1);
    expect(items[0]![2]).toContain('new topic');
    expect(items[0]![2]).not.toContain('old topic');
  });

  it('sessions idle past the ttl are forgotten by a sweep (summaries removed, forget logged): nothing of them survives a restart', async () => {
    r.disconnect();
    await server.stop();
    await boot({ snapshotOptions: { sessionSweepMs: 200 } });
    let sweeping = true;
    try {
      await r.call('LLM.CREATE-VECTOR-STORE', 'mem3', '--LLM', 'gpt');
      await r.call('LLM.CREATE-CHAT', 'swept', '--LLM', 'gpt', '--VECTOR-STORE', 'mem3', '--HISTORY', JSON.stringify({ ttl: 1, summary_cnt: 2 }));
      await r.call('LLM.CREATE-CHAT', 'kept', '--LLM', 'gpt', '--VECTOR-STORE', 'mem3', '--HISTORY', JSON.stringify({ summary_cnt: 2 })); // no ttl
      for (const s of ['a', 'b']) await r.call('LLM.RUN', 'swept', '--SESSION', s, `topic ${s}`);
      await r.call('LLM.RUN', 'kept', '--SESSION', 'k', 'kept topic');
      expect(await r.call('LLM.SIZE', 'mem3')).toBe(3);
      const deadline = Date.now() + 5000;
      while ((await r.call('LLM.SIZE', 'mem3')) !== 1 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
      expect(await r.call('LLM.SIZE', 'mem3')).toBe(1); // only the summary of the chat without ttl
      expect(await r.call('LLM.FORGET', 'swept', '--SESSION', 'a')).toBe(0); // already forgotten
      expect(await r.call('LLM.HISTORY', 'kept', '--SESSION', 'k')).toHaveLength(2);
      r.disconnect();
      await server.stop();
      sweeping = false;
      await boot();
      expect(await r.call('LLM.SIZE', 'mem3')).toBe(1);
      expect(await r.call('LLM.FORGET', 'swept', '--SESSION', 'b')).toBe(0); // the forget entries were replayed
      expect(await r.call('LLM.HISTORY', 'kept', '--SESSION', 'k')).toHaveLength(2);
    } finally {
      if (sweeping) {
        r.disconnect();
        await server.stop();
        await boot();
      }
    }
  });

  it('a chat without a store keeps recent messages only', async () => {
    await r.call('LLM.CREATE-CHAT', 'plain', '--LLM', 'gpt');
    await r.call('LLM.RUN', 'plain', 'hello');
    expect(await r.call('LLM.HISTORY', 'plain')).toEqual([['user', 'hello'], ['assistant', 'echo: hello']]);
  });
});
