/**
 * LLM.RUN --STREAM: chunks reach a Redis Stream while the provider is still generating, and any
 * client reading with XREAD BLOCK through the server sees them.
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
let reader: Redis;

type Entry = [string, string[]];
const fieldsOf = (e: Entry) => {
  const o: Record<string, string> = {};
  for (let i = 0; i < e[1].length; i += 2) o[e[1][i]] = e[1][i + 1];
  return o;
};

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI({ dim: 64 });
  server = await startServer({ redis: redis.url });
  await server.loadingDone;
  r = client(server.port);
  reader = client(server.port);
  await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url }));
  await r.call('LLM.CREATE-APP', 'story', '--LLM', 'gpt', '--PROMPT', 'Tell a story about {{topic}}');
});

afterAll(async () => {
  r.disconnect();
  reader.disconnect();
  await server.stop();
  await fake.close();
  await redis.stop();
});

beforeEach(() => fake.reset());

describe('LLM.RUN --STREAM', () => {
  it('a second client XREAD BLOCK receives the first chunk before the RUN finishes; chunks concatenate to the reply', async () => {
    const words = Array.from({ length: 12 }, (_, i) => `word${i}`);
    fake.setBehavior({ reply: () => words.join(' '), chunkDelayMs: 60 });
    const firstChunk = reader.xread('BLOCK', 5000, 'STREAMS', 'out1', '$');
    let runDone = 0;
    const run = r.call('LLM.RUN', 'story', '--STREAM', 'out1', '--VARS', '{"topic":"redis"}').then((v) => {
      runDone = Date.now();
      return v;
    });
    const got = await firstChunk;
    const firstAt = Date.now();
    expect(runDone).toBe(0);
    expect(fieldsOf(got![0][1][0] as Entry).chunk).toBe('word0 ');
    const answer = await run;
    expect(firstAt).toBeLessThan(runDone);
    expect(answer).toBe(words.join(' '));
    const entries = (await r.xrange('out1', '-', '+')) as Entry[];
    const all = entries.map(fieldsOf);
    expect(all.filter((e) => e.chunk !== undefined).map((e) => e.chunk).join('')).toBe(answer);
    const last = all[all.length - 1];
    expect(last.done).toBe('1');
    expect(last.finish_reason).toBe('stop');
    expect(Number(last.completion_tokens)).toBe(12);
    expect(Number(last.prompt_tokens)).toBeGreaterThan(0);
    expect(new Set(all.map((e) => e.run)).size).toBe(1);
    expect(all.map((e) => Number(e.seq))).toEqual(all.map((_, i) => i));
    // The provider was called in streaming mode with usage.
    const body = fake.requests.find((q) => q.path.includes('chat'))!.body as Record<string, unknown>;
    expect(body.stream).toBe(true);
  });

  it('a provider failure mid-stream: an error entry and an -ERR reply', async () => {
    fake.setBehavior({ reply: () => 'one two three four five six', chunkDelayMs: 5 });
    fake.enqueue({ type: 'break-stream', afterChunks: 2 }, 10);
    await expect(r.call('LLM.RUN', 'story', '--STREAM', 'out2', '--VARS', '{"topic":"x"}')).rejects.toThrow(/stream was interrupted|connection/);
    const all = ((await r.xrange('out2', '-', '+')) as Entry[]).map(fieldsOf);
    const last = all[all.length - 1];
    expect(last.done).toBe('1');
    expect(last.error).toMatch(/LLM/);
  });

  it('MAXLEN bounds the stream', async () => {
    fake.setBehavior({ reply: () => Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ') });
    await r.call('LLM.RUN', 'story', '--STREAM', 'out3', '--MAXLEN', '50', '--VARS', '{"topic":"x"}');
    const len = (await r.xlen('out3')) as number;
    expect(len).toBeLessThan(200); // MAXLEN ~ trims whole nodes: about 50, never the 302 entries
    expect(len).toBeGreaterThanOrEqual(50);
  });

  it('--ASYNC replies the run id at once; the stream carries the answer', async () => {
    fake.setBehavior({ reply: () => 'async answer here', chunkDelayMs: 30 });
    const runId = (await r.call('LLM.RUN', 'story', '--STREAM', 'out4', '--ASYNC', '--VARS', '{"topic":"x"}')) as string;
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    let done: Record<string, string> | undefined;
    let last = '0';
    const chunks: string[] = [];
    while (!done) {
      const res = await reader.xread('BLOCK', 3000, 'STREAMS', 'out4', last);
      for (const e of res![0][1] as Entry[]) {
        last = e[0];
        const f = fieldsOf(e);
        expect(f.run).toBe(runId);
        if (f.chunk !== undefined) chunks.push(f.chunk);
        if (f.done) done = f;
      }
    }
    expect(chunks.join('')).toBe('async answer here');
  });

  it('chat memory stores the full streamed text; an aborted stream leaves nothing in memory', async () => {
    await r.call('LLM.CREATE-CHAT', 'talk', '--LLM', 'gpt');
    fake.setBehavior({ reply: () => 'a complete streamed answer', chunkDelayMs: 2 });
    await r.call('LLM.RUN', 'talk', '--STREAM', 'out5', 'hello');
    expect(await r.call('LLM.HISTORY', 'talk')).toEqual([['user', 'hello'], ['assistant', 'a complete streamed answer']]);
    fake.enqueue({ type: 'break-stream', afterChunks: 1 }, 10);
    await expect(r.call('LLM.RUN', 'talk', '--STREAM', 'out5', 'again')).rejects.toThrow();
    expect(await r.call('LLM.HISTORY', 'talk')).toHaveLength(2);
  });

  it('bad uses are refused', async () => {
    await expect(r.call('LLM.RUN', 'story', '--ASYNC', '--VARS', '{"topic":"x"}')).rejects.toThrow('--ASYNC and --MAXLEN need --STREAM');
    await expect(r.call('LLM.RUN', 'story', '--STREAM', '__llm__:x', '--VARS', '{"topic":"x"}')).rejects.toThrow('reserved');
    await expect(r.call('LLM.RUN', 'story', '--STREAM', 'gpt', '--VARS', '{"topic":"x"}')).rejects.toThrow('WRONGTYPE');
  });
});
