/**
 * Response caches (exact and semantic), rate limits and usage accounting for LLM.RUN, with the
 * local OpenAI-compatible server counting provider calls.
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

const chats = () => fake.calls('/chat/completions');
const stats = async (key: string) => {
  const flat = (await r.call('LLM.STATS', key)) as string[];
  const o: Record<string, number> = {};
  for (let i = 0; i < flat.length; i += 2) o[flat[i]] = Number(flat[i + 1]);
  return o;
};

async function boot() {
  server = await startServer({ redis: redis.url });
  await server.loadingDone;
  r = client(server.port);
}

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI({ dim: 256 });
  await boot();
  await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url, chat: { temperature: 0 } }));
  await r.call('LLM.CREATE-LLM', 'lex', '--TYPE', 'local', '--PARAMS', '{"dim":256}');
});

afterAll(async () => {
  r.disconnect();
  await server.stop();
  await fake.close();
  await redis.stop();
});

beforeEach(() => fake.reset());

describe('exact cache', () => {
  it('a hit skips the provider; keyed by the rendered messages, not the raw input', async () => {
    await r.call('LLM.CREATE-APP', 'ex', '--LLM', 'gpt', '--PROMPT', 'Translate to {{lang}}:', '--CACHE', '{"exact":true,"ttl":60}');
    const a1 = await r.call('LLM.RUN', 'ex', '--VARS', '{"lang":"French"}', 'hello');
    const a2 = await r.call('LLM.RUN', 'ex', '--VARS', '{"lang":"French"}', 'hello');
    expect(a2).toBe(a1);
    expect(chats()).toBe(1);
    // Same input, other variables → other messages → a miss.
    await r.call('LLM.RUN', 'ex', '--VARS', '{"lang":"German"}', 'hello');
    expect(chats()).toBe(2);
    const s = await stats('ex');
    expect(s).toMatchObject({ calls: 3, cache_hits_exact: 1, cache_misses: 2 });
    expect((await stats('gpt')).cache_hits_exact).toBeGreaterThanOrEqual(1);
  });

  it('another LLM or other request parameters do not share entries', async () => {
    await r.call('LLM.CREATE-LLM', 'gpt-hot', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url, chat: { temperature: 1 } }));
    await r.call('LLM.CREATE-APP', 'ex2', '--LLM', 'gpt', '--CACHE', '{"exact":true}');
    await r.call('LLM.RUN', 'ex2', 'same question');
    await r.call('LLM.CREATE-APP', 'ex2', '--LLM', 'gpt-hot', '--CACHE', '{"exact":true}');
    await r.call('LLM.RUN', 'ex2', 'same question');
    expect(chats()).toBe(2);
  });

  it('--NOCACHE skips it; LLM.CACHE-CLEAR empties it', async () => {
    await r.call('LLM.CREATE-APP', 'ex3', '--LLM', 'gpt', '--CACHE', '{"exact":true}');
    await r.call('LLM.RUN', 'ex3', 'q');
    await r.call('LLM.RUN', 'ex3', '--NOCACHE', 'q');
    expect(chats()).toBe(2);
    await r.call('LLM.RUN', 'ex3', 'q');
    expect(chats()).toBe(2);
    expect(await r.call('LLM.CACHE-CLEAR', 'ex3')).toBeGreaterThanOrEqual(1);
    await r.call('LLM.RUN', 'ex3', 'q');
    expect(chats()).toBe(3);
  });

  it('scopes are hard partitions', async () => {
    await r.call('LLM.CREATE-APP', 'sc', '--LLM', 'gpt', '--CACHE', '{"exact":true,"semantic":{"threshold":0,"llm":"lex"}}');
    await r.call('LLM.RUN', 'sc', '--SCOPE', 'tenant-a', 'secret plan');
    await r.call('LLM.RUN', 'sc', '--SCOPE', 'tenant-b', 'secret plan');
    expect(chats()).toBe(2);
    await r.call('LLM.RUN', 'sc', '--SCOPE', 'tenant-a', 'secret plan');
    expect(chats()).toBe(2);
    // Threshold 0 would match anything — but never across scopes.
    await r.call('LLM.RUN', 'sc', '--SCOPE', 'tenant-c', 'something else entirely');
    expect(chats()).toBe(3);
  });

  it('errors and truncated answers are never cached', async () => {
    await r.call('LLM.CREATE-APP', 'er', '--LLM', 'gpt', '--CACHE', '{"exact":true}');
    fake.enqueue({ type: 'status', status: 400 }, 1);
    await expect(r.call('LLM.RUN', 'er', 'q1')).rejects.toThrow(/400/);
    await r.call('LLM.RUN', 'er', 'q1');
    expect(chats()).toBe(2);
    fake.enqueue({ type: 'length' }, 1);
    await r.call('LLM.RUN', 'er', 'q2');
    await r.call('LLM.RUN', 'er', 'q2');
    expect(chats()).toBe(4); // the truncated answer was not reused
    await r.call('LLM.RUN', 'er', 'q2');
    expect(chats()).toBe(4); // the complete one was
    expect((await stats('er')).errors).toBe(1);
  });

  it('TTL: never served after expiry, also across a restart', async () => {
    await r.call('LLM.CREATE-APP', 'ttl', '--LLM', 'gpt', '--CACHE', '{"exact":true,"semantic":{"threshold":0.5,"llm":"lex"},"ttl":1}');
    await r.call('LLM.RUN', 'ttl', 'what is the capital of france');
    await r.call('LLM.RUN', 'ttl', 'what is the capital of france');
    expect(chats()).toBe(1);
    r.disconnect();
    await server.stop();
    await boot();
    await r.call('LLM.RUN', 'ttl', 'what is the capital of france');
    expect(chats()).toBe(1); // survived the restart
    await new Promise((res) => setTimeout(res, 1100));
    await r.call('LLM.RUN', 'ttl', 'what is the capital of france');
    expect(chats()).toBe(2); // expired: neither tier serves it
  });
});

describe('semantic cache', () => {
  it('a near paraphrase hits, an unrelated question misses (local embedder)', async () => {
    await r.call('LLM.CREATE-APP', 'sem', '--LLM', 'gpt', '--CACHE', '{"semantic":{"threshold":0.7,"llm":"lex"}}');
    await r.call('LLM.RUN', 'sem', 'how do I reset my account password');
    await r.call('LLM.RUN', 'sem', 'how do I reset my account password please');
    expect(chats()).toBe(1);
    await r.call('LLM.RUN', 'sem', 'what are your opening hours on sunday');
    expect(chats()).toBe(2);
    expect(await stats('sem')).toMatchObject({ cache_hits_semantic: 1, cache_misses: 2 });
  });

  it("works with the provider's own embeddings (the test endpoint)", async () => {
    await r.call('LLM.CREATE-APP', 'sem2', '--LLM', 'gpt', '--CACHE', '{"semantic":{"threshold":0.7}}');
    await r.call('LLM.RUN', 'sem2', 'how do I reset my account password');
    await r.call('LLM.RUN', 'sem2', 'how do I reset my account password please');
    expect(chats()).toBe(1);
    expect(fake.calls('/embeddings')).toBe(2);
  });

  it('threshold 0 matches any entry; threshold 1 only the same direction', async () => {
    await r.call('LLM.CREATE-APP', 't0', '--LLM', 'gpt', '--CACHE', '{"semantic":{"threshold":0,"llm":"lex"}}');
    await r.call('LLM.RUN', 't0', 'alpha beta gamma');
    await r.call('LLM.RUN', 't0', 'completely different words here');
    expect(chats()).toBe(1);
    await r.call('LLM.CREATE-APP', 't1', '--LLM', 'gpt', '--CACHE', '{"semantic":{"threshold":1,"llm":"lex"}}');
    await r.call('LLM.RUN', 't1', 'alpha beta gamma');
    await r.call('LLM.RUN', 't1', 'alpha beta gamma delta');
    expect(chats()).toBe(3);
    await r.call('LLM.RUN', 't1', 'alpha beta gamma');
    expect(chats()).toBe(3);
  });

  it('chat apps reuse an answer only when the conversation context matches', async () => {
    await r.call('LLM.CREATE-CHAT', 'ch', '--LLM', 'gpt', '--CACHE', '{"exact":true,"semantic":{"threshold":0.5,"llm":"lex"}}');
    await r.call('LLM.RUN', 'ch', '--SESSION', 'a', 'what is my name');
    await r.call('LLM.RUN', 'ch', '--SESSION', 'b', 'what is my name');
    // Same first message, same (empty) context: the second session may reuse it.
    expect(chats()).toBe(1);
    await r.call('LLM.RUN', 'ch', '--SESSION', 'a', 'and my age');
    await r.call('LLM.RUN', 'ch', '--SESSION', 'c', 'I am Bob');
    await r.call('LLM.RUN', 'ch', '--SESSION', 'c', 'and my age');
    // Session c asks the same thing after another conversation: no reuse.
    expect(chats()).toBe(4);
  });

  it('bad cache configs are refused at create time', async () => {
    await expect(r.call('LLM.CREATE-APP', 'bad', '--LLM', 'gpt', '--CACHE', '{"semantic":{"threshold":1.5}}')).rejects.toThrow('cosine similarity in [0, 1]');
    await expect(r.call('LLM.CREATE-APP', 'bad', '--LLM', 'gpt', '--CACHE', '{"exact":"yes"}')).rejects.toThrow("'exact' must be true or false");
    await expect(r.call('LLM.CREATE-APP', 'bad', '--LLM', 'gpt', '--CACHE', '{}')).rejects.toThrow("enable 'exact' and/or 'semantic'");
    expect(await r.exists('bad')).toBe(0);
  });
});

describe('rate limits', () => {
  it('over the limit: a clear error with the wait, no provider call', async () => {
    await r.call('LLM.CREATE-APP', 'rl', '--LLM', 'gpt', '--RATELIMIT', '{"requests":2,"window":2}');
    await r.call('LLM.RUN', 'rl', 'a');
    await r.call('LLM.RUN', 'rl', 'b');
    await expect(r.call('LLM.RUN', 'rl', 'c')).rejects.toThrow(/^ERR rate limit exceeded, retry in \d+ ms$/);
    expect(chats()).toBe(2);
    expect((await stats('rl')).rate_limited).toBe(1);
  });

  it('per scope', async () => {
    await r.call('LLM.CREATE-APP', 'rls', '--LLM', 'gpt', '--RATELIMIT', '{"requests":1,"window":60,"per_scope":true}');
    await r.call('LLM.RUN', 'rls', '--SCOPE', 'x', 'a');
    await r.call('LLM.RUN', 'rls', '--SCOPE', 'y', 'a');
    await expect(r.call('LLM.RUN', 'rls', '--SCOPE', 'x', 'b')).rejects.toThrow('rate limit exceeded');
  });

  it('tokens per window, on the LLM', async () => {
    await r.call('LLM.CREATE-LLM', 'budget', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url }), '--RATELIMIT', '{"tokens":5,"window":60}');
    await r.call('LLM.CREATE-APP', 'tok', '--LLM', 'budget');
    await r.call('LLM.RUN', 'tok', 'one two three four five six');
    await expect(r.call('LLM.RUN', 'tok', 'more')).rejects.toThrow('rate limit exceeded');
    expect((await stats('budget')).rate_limited).toBe(1);
  });

  it('shared by two server instances on one Redis', async () => {
    const other = await startServer({ redis: redis.url });
    await other.loadingDone;
    const r2 = client(other.port);
    try {
      await r.call('LLM.CREATE-APP', 'shared', '--LLM', 'gpt', '--RATELIMIT', '{"requests":3,"window":60}');
      // The second instance learns the app from storage on its next start; create it there too.
      await r2.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url, chat: { temperature: 0 } }));
      await r2.call('LLM.CREATE-APP', 'shared', '--LLM', 'gpt', '--RATELIMIT', '{"requests":3,"window":60}');
      await r.call('LLM.RUN', 'shared', '1');
      await r2.call('LLM.RUN', 'shared', '2');
      await r.call('LLM.RUN', 'shared', '3');
      await expect(r2.call('LLM.RUN', 'shared', '4')).rejects.toThrow('rate limit exceeded');
      await expect(r.call('LLM.RUN', 'shared', '5')).rejects.toThrow('rate limit exceeded');
    } finally {
      r2.disconnect();
      await other.stop();
    }
  });

  it('bad limits are refused', async () => {
    await expect(r.call('LLM.CREATE-APP', 'badrl', '--LLM', 'gpt', '--RATELIMIT', '{"requests":2}')).rejects.toThrow("'window' (seconds) is required");
    await expect(r.call('LLM.CREATE-APP', 'badrl', '--LLM', 'gpt', '--RATELIMIT', '{"requests":0,"window":1}')).rejects.toThrow("'requests' must be an integer");
  });
});

describe('usage accounting', () => {
  it('INFO llm has per-app lines; LLM.STATS --RESET clears', async () => {
    await r.call('LLM.CREATE-APP', 'acct', '--LLM', 'gpt', '--CACHE', '{"exact":true}');
    await r.call('LLM.RUN', 'acct', 'one two three');
    await r.call('LLM.RUN', 'acct', 'one two three');
    const info = (await r.info('llm')) as string;
    expect(info).toMatch(/app\d+:name=acct,db=0,kind=app,calls=2,cache_hits_exact=1,cache_hits_semantic=0,cache_misses=1,prompt_tokens=3,completion_tokens=4,errors=0,rate_limited=0,latency_p50_ms=/);
    await r.call('LLM.STATS', 'acct', '--RESET');
    expect((await stats('acct')).calls).toBe(0);
    await expect(r.call('LLM.STATS', 'nothing')).rejects.toThrow('no such LLM or app');
  });
});
