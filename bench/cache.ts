/**
 * LLM.RUN latency through the server: exact-cache hit and semantic-cache hit, each against a
 * miss (a provider call to the local OpenAI-compatible endpoint, no artificial delay).
 * The semantic hits embed with a `local` LLM (in process, microseconds), so their figure is the
 * lookup cost excluding a remote embedding call. Sequential calls, alternating blocks.
 *
 *   npx tsx bench/cache.ts [--calls 2000]
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort, startRedis, waitForPort } from '../harness/redis-server.js';
import { startFakeOpenAI } from '../harness/fake-openai.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argCalls = process.argv.indexOf('--calls');
const CALLS = argCalls > 0 ? Number(process.argv[argCalls + 1]) : 2000;
const BLOCK = 100;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};

const redis = await startRedis();
const fake = await startFakeOpenAI({ dim: 64 });
const port = await freePort();
const child = spawn(process.execPath, [path.join(ROOT, 'dist/src/cli.js'), '--port', String(port), '--redis', redis.url, '--log-level', 'warn'], { stdio: 'inherit' });
try {
  await waitForPort(port);
  const r = new Redis({ port, host: '127.0.0.1' });
  for (;;) {
    try {
      await r.call('LLM.SIZE', 'x');
      break;
    } catch {
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url }));
  await r.call('LLM.CREATE-LLM', 'lex', '--TYPE', 'local', '--PARAMS', '{"dim":256}');
  await r.call('LLM.CREATE-APP', 'exact', '--LLM', 'gpt', '--PROMPT', 'Answer:', '--CACHE', '{"exact":true}');
  await r.call('LLM.CREATE-APP', 'sem', '--LLM', 'gpt', '--PROMPT', 'Answer:', '--CACHE', '{"semantic":{"threshold":0.8,"llm":"lex"}}');
  // Fill the semantic cache with 1000 distinct questions, so a hit searches a real index.
  for (let i = 0; i < 1000; i++) await r.call('LLM.RUN', 'sem', `question number ${i} about topic ${i * 7919 % 1000}`);
  await r.call('LLM.RUN', 'exact', 'what is redis');

  const runs: Record<string, () => Promise<unknown>> = {
    'miss (provider call)': () => r.call('LLM.RUN', 'exact', '--NOCACHE', 'what is redis'),
    'exact hit': () => r.call('LLM.RUN', 'exact', 'what is redis'),
    'semantic hit': () => r.call('LLM.RUN', 'sem', 'question number 42 about topic 318 please'),
  };
  const lat: Record<string, number[]> = Object.fromEntries(Object.keys(runs).map((k) => [k, []]));
  for (const f of Object.values(runs)) for (let i = 0; i < 200; i++) await f(); // warm up
  for (let done = 0; done < CALLS; done += BLOCK) {
    for (const [name, f] of Object.entries(runs)) {
      for (let i = 0; i < BLOCK; i++) {
        const t = performance.now();
        await f();
        lat[name].push(performance.now() - t);
      }
    }
  }
  const stats = (await r.call('LLM.STATS', 'sem')) as string[];
  const hits = Number(stats[stats.indexOf('cache_hits_semantic') + 1]);
  const miss = pct(lat['miss (provider call)'], 0.5);
  console.log(`LLM.RUN latency through redis-llm-server, ${CALLS} sequential calls per row (alternating blocks of ${BLOCK})\n`);
  console.log('| path | p50 ms | p99 ms | p50 vs miss |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [name, xs] of Object.entries(lat)) {
    console.log(`| ${name} | ${pct(xs, 0.5).toFixed(3)} | ${pct(xs, 0.99).toFixed(3)} | ${(pct(xs, 0.5) / miss).toFixed(2)}× |`);
  }
  console.log(`\nsemantic cache: 1000 entries, ${hits} hits recorded; target exact-hit p50 ≤ 0.5 ms: ${pct(lat['exact hit'], 0.5) <= 0.5 ? 'met' : 'missed'}`);
  r.disconnect();
} finally {
  child.kill('SIGTERM');
  await fake.close();
  await redis.stop();
}
