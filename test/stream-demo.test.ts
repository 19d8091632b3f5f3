/**
 * The browser streaming demo (examples/stream-demo) end to end: a real redis-server, redis-llm-server
 * in process, the fake OpenAI endpoint streaming slowly, the demo server in process, and Debian's
 * Chromium (headless, driven by playwright-core) typing a question into the page.
 *
 * Needs /usr/bin/chromium (`apt-get install -y chromium`; CHROMIUM_PATH overrides). Without it the
 * test fails on purpose: CI must install it. Screenshots go to test-output/ (git-ignored).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { ROOT, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import type { LlmServer } from '../src/server/server.js';
import { setupDemo, startDemo, type Demo } from '../examples/stream-demo/server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const OUT_DIR = path.join(ROOT, 'test-output');

const ANSWER =
  'Redis Streams are an append-only log data type: producers add entries with XADD, ' +
  'and any number of readers follow them with XREAD BLOCK, so every chunk shows up as soon as it is written.';

let redis: RedisServerHandle;
let server: LlmServer;
let fake: FakeOpenAI;
let demo: Demo;
let userDataDir: string;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

interface Seen { text: string; state: string }

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. The browser demo test needs Debian's chromium package: ` +
        'apt-get update && apt-get install -y chromium (or set CHROMIUM_PATH).',
    );
  }
  mkdirSync(OUT_DIR, { recursive: true });
  redis = await startRedis();
  fake = await startFakeOpenAI();
  server = await startServer({ redis: redis.url });
  await server.loadingDone;
  const llmServerUrl = `redis://127.0.0.1:${server.port}`;
  // What `server.mjs --setup --base-url <fake>` does: LLM demo-llm + prompt app demo.
  await setupDemo({ redis: llmServerUrl, baseUrl: fake.url });
  demo = await startDemo({ redis: llmServerUrl, port: 0 });

  userDataDir = mkdtempSync(path.join(os.tmpdir(), 'rls-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 900, height: 780 },
    timeout: 15_000,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
});

afterAll(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await demo?.close();
  await server?.stop();
  await fake?.close();
  await redis?.stop();
});

beforeEach(() => {
  fake.reset();
  pageErrors.length = 0;
});

/** Opens the page and records every text the answer area shows, with the status at that moment. */
async function openPage(): Promise<void> {
  await page.goto(demo.url);
  await page.evaluate(`(() => {
    const answer = document.getElementById('answer');
    const status = document.getElementById('status');
    window.__seen = [];
    new MutationObserver(() => window.__seen.push({ text: answer.textContent, state: status.dataset.state }))
      .observe(answer, { childList: true, characterData: true, subtree: true });
  })()`);
}

const answerText = () => page.locator('#answer').textContent().then((t) => t ?? '');
const statusState = () => page.locator('#status').getAttribute('data-state');
const statusText = () => page.locator('#status').textContent().then((t) => t ?? '');

/** Waits for the status to reach `state`; on timeout the error says what the page shows instead. */
async function waitForState(state: string, timeout = 15_000): Promise<void> {
  try {
    await page.locator(`#status[data-state="${state}"]`).waitFor({ timeout });
  } catch {
    throw new Error(`status never became "${state}": it is "${await statusState()}" (${await statusText()}); answer: ${JSON.stringify(await answerText())}`);
  }
}

describe('browser streaming demo', () => {
  it('shows the answer while it streams, then the full answer and the done status', async () => {
    fake.setBehavior({ reply: () => ANSWER, chunkDelayMs: 80 });
    await openPage();
    expect(await statusState()).toBe('idle');
    await page.fill('#question', 'What are Redis Streams?');
    await page.click('#ask');

    // Mid-stream: some of the answer is on the page, not all of it, and the status says streaming.
    const partial = (await (
      await page.waitForFunction(
        (full: number) => {
          const doc = (globalThis as any).document;
          const t: string = doc.getElementById('answer').textContent;
          return doc.getElementById('status').dataset.state === 'streaming' && t.length > 0 && t.length < full ? t : null;
        },
        ANSWER.length,
        { timeout: 10_000 },
      )
    ).jsonValue()) as string;
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(ANSWER.length);
    expect(ANSWER.startsWith(partial)).toBe(true);
    await page.screenshot({ path: path.join(OUT_DIR, 'stream-demo-streaming.png') });

    await waitForState('done');
    expect(await answerText()).toBe(ANSWER);
    const status = await statusText();
    const words = ANSWER.split(/\s+/).length;
    expect(status).toMatch(/^Done \(stop\)/);
    expect(status).toContain(`${words} completion tokens`);
    expect(await page.locator('#ask').isEnabled()).toBe(true);
    expect(await page.locator('#meta').textContent()).toMatch(/^run [0-9a-f-]{36} · stream demo:answer:[0-9a-f-]{36}$/);

    // The page grew chunk by chunk: every text it showed is a prefix of the answer, never shrinking.
    const seen = (await page.evaluate('window.__seen')) as Seen[];
    expect(seen.length, JSON.stringify(seen)).toBeGreaterThanOrEqual(words - 1);
    for (let i = 0; i < seen.length; i++) {
      expect(ANSWER.startsWith(seen[i]!.text)).toBe(true);
      if (i > 0) expect(seen[i]!.text.length).toBeGreaterThanOrEqual(seen[i - 1]!.text.length);
    }
    expect(seen.filter((s) => s.text.length > 0 && s.text.length < ANSWER.length && s.state === 'streaming').length).toBeGreaterThan(3);

    // The provider got the question, streamed; the demo's SSE reader has gone.
    const body = fake.lastRequest('/chat/completions')!.body as { stream: boolean; messages: { content: string }[] };
    expect(body.stream).toBe(true);
    expect(body.messages.at(-1)!.content).toContain('What are Redis Streams?');
    await expect.poll(() => demo.clients).toBe(0);
    expect(pageErrors).toEqual([]);

    const shot = path.join(OUT_DIR, 'stream-demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`stream demo screenshot: ${shot}`);
  });

  it('a provider failure mid-stream: the partial answer stays and the status shows the error', async () => {
    fake.setBehavior({ reply: () => 'one two three four five six seven eight', chunkDelayMs: 30 });
    fake.enqueue({ type: 'break-stream', afterChunks: 3 }, 10);
    await openPage();
    await page.fill('#question', 'Will this fail?');
    await page.press('#question', 'Enter'); // Enter submits too
    await waitForState('error');
    expect(await statusText()).toMatch(/^Error: .*LLM/);
    expect(await answerText()).toBe('one two three ');
    expect(await page.locator('#ask').isEnabled()).toBe(true);
    await page.screenshot({ path: path.join(OUT_DIR, 'stream-demo-error.png'), fullPage: true });
  });

  it('refuses bad requests', async () => {
    const ask = (body: string) => fetch(`${demo.url}/ask`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect((await ask('{"question":"   "}')).status).toBe(400);
    expect((await ask('not json')).status).toBe(400);
    expect((await ask('{"question":"--async"}')).status).toBe(400);
    expect((await fetch(`${demo.url}/events?stream=secret&run=x`)).status).toBe(400);
    const missing = `${demo.url}/events?stream=demo:answer:00000000-0000-0000-0000-000000000000&run=00000000-0000-0000-0000-000000000000`;
    expect((await fetch(missing)).status).toBe(404);
    expect((await fetch(`${demo.url}/nope`)).status).toBe(404);
  });
});
