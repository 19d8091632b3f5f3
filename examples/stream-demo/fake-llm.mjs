#!/usr/bin/env node
/**
 * A tiny OpenAI-compatible chat endpoint for trying the streaming demo offline (no key, no network).
 * It answers every chat completion with a canned text, streamed one word at a time with a delay,
 * so you can watch the answer arrive chunk by chunk.
 *
 *   node examples/stream-demo/fake-llm.mjs [--port 8787] [--host 127.0.0.1] [--delay 80]
 *
 * Then point an LLM at it: `node examples/stream-demo/server.mjs --setup --base-url http://127.0.0.1:8787`.
 * Only POST .../chat/completions is served (streaming with usage, and non-streaming); no dependencies.
 */
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const words = (s) => (s.match(/\S+/g) ?? []).length;

/** The canned answer: quotes the question (the last paragraph of the last user message). */
export function cannedReply(messages) {
  const last = [...messages].reverse().find((m) => m?.role === 'user');
  const text = typeof last?.content === 'string' ? last.content : '';
  const question = text.split(/\n\s*\n/).pop().trim().replace(/\s+/g, ' ').slice(0, 200);
  return (
    `You asked: "${question}". I am the demo's fake LLM, so I do not really know the answer, ` +
    'but watch how this text arrives: redis-llm-server appends every chunk to a Redis Stream as soon ' +
    'as the provider sends it, the demo backend follows that stream with XREAD BLOCK, and your browser ' +
    'receives each chunk over Server-Sent Events. Point the demo at a real provider to get real answers.'
  );
}

/**
 * Starts the fake endpoint. Resolves { url, port, close() }.
 * @param {{ port?: number, host?: string, delayMs?: number, reply?: (messages: any[]) => string }} [opts]
 */
export async function startFakeLlm(opts = {}) {
  const { port = 8787, host = '127.0.0.1', delayMs = 80, reply = cannedReply } = opts;
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (raw += c));
    req.on('end', async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const json = (status, body) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || !path.endsWith('/chat/completions')) {
        return json(404, { error: { message: `no route for ${req.method} ${path}`, type: 'invalid_request_error' } });
      }
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        return json(400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } });
      }
      const messages = Array.isArray(body?.messages) ? body.messages : [];
      const text = reply(messages);
      const model = typeof body.model === 'string' ? body.model : 'fake-llm';
      const usage = {
        prompt_tokens: messages.reduce((n, m) => n + (typeof m?.content === 'string' ? words(m.content) : 0), 0),
        completion_tokens: words(text),
      };
      usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
      const id = `chatcmpl-fake-${Date.now()}`;
      const created = Math.floor(Date.now() / 1000);
      if (body.stream !== true) {
        return json(200, {
          id, object: 'chat.completion', created, model, usage,
          choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        });
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const chunk = (delta, finish_reason = null) => ({
        id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason }],
      });
      const send = (data) => !res.destroyed && res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
      send(chunk({ role: 'assistant', content: '' }));
      for (const piece of text.match(/\S+\s*/g) ?? []) {
        await sleep(delayMs);
        if (res.destroyed) return;
        send(chunk({ content: piece }));
      }
      send(chunk({}, 'stop'));
      if (body.stream_options?.include_usage === true) send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
      send('[DONE]');
      res.end();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actual = server.address().port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    port: actual,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function isMain() {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMain()) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.FAKE_LLM_PORT ?? '8787' },
      host: { type: 'string', default: '127.0.0.1' },
      delay: { type: 'string', default: '80' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log('usage: node fake-llm.mjs [--port 8787] [--host 127.0.0.1] [--delay ms-per-word]');
    process.exit(0);
  }
  const srv = await startFakeLlm({ port: Number(values.port), host: values.host, delayMs: Number(values.delay) });
  console.log(`fake OpenAI-compatible LLM on ${srv.url} (one word every ${Number(values.delay)} ms)`);
  const stop = () => srv.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
