#!/usr/bin/env node
/**
 * Streaming demo: a browser page that shows an LLM answer while it is being generated.
 *
 *   browser --POST /ask--> this server --LLM.RUN app --STREAM key --ASYNC q--> redis-llm-server
 *   browser <--SSE /events-- this server <--XREAD BLOCK key-- redis-llm-server (chunks XADDed as they come)
 *
 *   node examples/stream-demo/server.mjs [--redis redis://127.0.0.1:6379] [--port 8080] [--host 127.0.0.1]
 *        [--app demo] [--setup [--base-url URL] [--model NAME] [--api-key-env NAME]]
 *
 * Env: REDIS_URL, PORT, HOST, DEMO_APP (flags win). Plain Node ESM; its only dependency is ioredis.
 * Import it to run it in process: `const demo = await startDemo({ redis, port: 0 }); ... demo.close()`.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';

const INDEX_HTML = new URL('./index.html', import.meta.url);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ENTRY_ID_RE = /^\d+-\d+$/;
const MAX_BODY = 16 * 1024;
const MAX_QUESTION = 4000;

export const DEFAULTS = {
  redis: 'redis://127.0.0.1:6379',
  port: 8080,
  host: '127.0.0.1',
  app: 'demo',
  /** Each question gets its own stream: `${streamPrefix}<uuid>`. */
  streamPrefix: 'demo:answer:',
  /** Seconds a question's stream is kept (set when it is created, XADD keeps it). */
  streamTtl: 3600,
  /** XREAD BLOCK timeout; an SSE keep-alive comment is sent each time it expires. */
  blockMs: 15000,
  /** Concurrent SSE clients (each holds one connection to redis-llm-server). */
  maxClients: 100,
};

export const DEMO_PROMPT = 'You are a helpful assistant. Answer the question below clearly and concisely.';

/**
 * Creates the LLM `${app}-llm` and the prompt app `app` (both replaced if they exist).
 * With `baseUrl`: any OpenAI-compatible endpoint (api key "unused" unless `apiKeyEnv` names one).
 * Without: OpenAI with `"$OPENAI_API_KEY"` (or `"$<apiKeyEnv>"`), which redis-llm-server reads
 * from ITS OWN environment at call time; only the reference is stored.
 */
/**
 * A connection that does not reconnect by itself; resolves once connected, or rejects with the
 * reason (ioredis only says "Connection is closed." and emits the cause as an 'error' event).
 */
async function connectOnce(url, connectionName) {
  let cause = '';
  const conn = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectionName });
  conn.on('error', (e) => (cause = e.message));
  try {
    await conn.connect();
  } catch (e) {
    conn.disconnect();
    throw new Error(`cannot reach redis-llm-server at ${url}: ${cause || e.message}`);
  }
  return conn;
}

export async function setupDemo({ redis = DEFAULTS.redis, app = DEFAULTS.app, baseUrl, model, apiKeyEnv } = {}) {
  const llm = `${app}-llm`;
  const params = baseUrl
    ? { api_key: apiKeyEnv ? `$${apiKeyEnv}` : 'unused', base_url: baseUrl }
    : { api_key: `$${apiKeyEnv ?? 'OPENAI_API_KEY'}` };
  if (model) params.chat = { model };
  const conn = await connectOnce(redis, 'stream-demo-setup');
  try {
    await conn.call('LLM.CREATE-LLM', llm, '--PARAMS', JSON.stringify(params));
    await conn.call('LLM.CREATE-APP', app, '--LLM', llm, '--PROMPT', DEMO_PROMPT);
  } finally {
    conn.disconnect();
  }
  return { llm, app, params };
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(Object.assign(new Error('request body is not JSON'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}

/** [field, value, field, value, ...] -> object */
function fieldsOf(flat) {
  const o = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
}

/**
 * Starts the demo HTTP server. Resolves { url, port, app, close() }.
 * @param {Partial<typeof DEFAULTS> & { setup?: boolean, baseUrl?: string, model?: string,
 *   apiKeyEnv?: string, log?: (msg: string) => void }} [opts]
 */
export async function startDemo(opts = {}) {
  const cfg = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const log = opts.log ?? (() => {});
  if (cfg.setup) {
    const { llm } = await setupDemo(cfg);
    log(`setup: created LLM ${llm} (${cfg.baseUrl ? cfg.baseUrl : 'OpenAI, key from the server\'s $' + (cfg.apiKeyEnv ?? 'OPENAI_API_KEY')}) and app ${cfg.app}`);
  }

  // One shared connection for /ask; every SSE client gets its own (XREAD BLOCK holds a connection).
  const cmd = new Redis(cfg.redis, { maxRetriesPerRequest: 1, connectionName: 'stream-demo' });
  let lastError = '';
  cmd.on('error', (e) => {
    if (e.message !== lastError) log(`redis-llm-server (${cfg.redis}): ${e.message}`);
    lastError = e.message;
  });
  cmd.on('ready', () => (lastError = ''));
  try {
    await cmd.ping();
  } catch (e) {
    cmd.disconnect();
    throw new Error(`cannot reach redis-llm-server at ${cfg.redis}: ${lastError || e.message}`);
  }
  const clients = new Set();

  async function ask(req, res) {
    const body = await readJson(req);
    const question = typeof body?.question === 'string' ? body.question.trim() : '';
    if (!question) return sendJson(res, 400, { error: 'the question is empty' });
    if (question.length > MAX_QUESTION) return sendJson(res, 400, { error: `the question is longer than ${MAX_QUESTION} characters` });
    // LLM.RUN has no end-of-options marker: a one-word input like "--async" would be read as an option.
    if (/^--\S*$/.test(question)) return sendJson(res, 400, { error: 'a question cannot be a single word starting with "--"' });

    const stream = `${cfg.streamPrefix}${randomUUID()}`;
    // Create the (empty) stream first so it can get its TTL now: XGROUP CREATE ... MKSTREAM makes an
    // empty stream, the throw-away group is dropped again, and XADD later keeps the TTL. So every
    // question's stream expires even if no browser ever reads it.
    await cmd.multi()
      .xgroup('CREATE', stream, 'init', '$', 'MKSTREAM')
      .xgroup('DESTROY', stream, 'init')
      .expire(stream, cfg.streamTtl)
      .exec();
    let runId;
    try {
      runId = await cmd.call('LLM.RUN', cfg.app, '--STREAM', stream, '--ASYNC', question);
    } catch (e) {
      return sendJson(res, 502, { error: e.message });
    }
    log(`ask: run ${runId} -> ${stream}`);
    sendJson(res, 200, { runId, stream });
  }

  async function events(req, res, url) {
    const stream = url.searchParams.get('stream') ?? '';
    const run = url.searchParams.get('run') ?? '';
    if (!stream.startsWith(cfg.streamPrefix) || !UUID_RE.test(stream.slice(cfg.streamPrefix.length)) || !UUID_RE.test(run)) {
      return sendJson(res, 400, { error: 'stream and run must be the ones /ask replied' });
    }
    if (clients.size >= cfg.maxClients) return sendJson(res, 503, { error: 'too many readers, try again later' });

    // A dedicated connection: XREAD BLOCK occupies it. No reconnects of its own: if it breaks,
    // the response ends and the browser's EventSource reconnects with Last-Event-ID.
    const client = { res, conn: null };
    clients.add(client);
    let closed = false;
    const cleanup = () => {
      closed = true;
      clients.delete(client);
      client.conn?.disconnect();
    };
    res.on('close', cleanup);
    let conn;
    try {
      conn = client.conn = await connectOnce(cfg.redis, 'stream-demo-sse');
      if (closed) return conn.disconnect();
      if (!(await conn.exists(stream))) {
        cleanup();
        return sendJson(res, 404, { error: 'no such stream (expired?)' });
      }
    } catch (e) {
      cleanup();
      return sendJson(res, 502, { error: e.message });
    }

    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const send = (event, id, data) => res.write(`event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`);
    res.write('retry: 1000\n\n');

    const lastEventId = String(req.headers['last-event-id'] ?? '');
    let last = ENTRY_ID_RE.test(lastEventId) ? lastEventId : '0'; // the whole stream: chunks may predate us
    try {
      for (;;) {
        const reply = await conn.xread('COUNT', 100, 'BLOCK', cfg.blockMs, 'STREAMS', stream, last);
        if (closed) return;
        if (!reply) {
          res.write(': keep-alive\n\n');
          if (!(await conn.exists(stream))) {
            send('failed', last, { error: 'the stream expired before the answer finished' });
            break;
          }
          continue;
        }
        let finished = false;
        for (const [id, flat] of reply[0][1]) {
          last = id;
          const f = fieldsOf(flat);
          if (f.run !== run) continue;
          if (f.done !== undefined) {
            if (f.error !== undefined) send('failed', id, { error: f.error });
            else {
              send('done', id, {
                finish_reason: f.finish_reason,
                prompt_tokens: Number(f.prompt_tokens),
                completion_tokens: Number(f.completion_tokens),
              });
            }
            finished = true;
            break;
          }
          if (f.chunk !== undefined) send('chunk', id, { seq: Number(f.seq), text: f.chunk });
        }
        if (finished) break;
      }
    } catch (e) {
      if (closed) return;
      // A Redis error reply is final; a lost connection just ends the response (the browser resumes).
      if (e?.name === 'ReplyError') send('failed', last, { error: e.message });
    }
    res.end();
    cleanup();
  }

  async function index(res) {
    const html = await readFile(INDEX_HTML);
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': html.length,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    res.end(html);
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (url.pathname === '/' || url.pathname === '/index.html') {
        if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });
        return await index(res);
      }
      if (url.pathname === '/ask') {
        if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST a JSON {"question": "..."}' });
        return await ask(req, res);
      }
      if (url.pathname === '/events') {
        if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
        return await events(req, res, url);
      }
      if (url.pathname === '/healthz') {
        await cmd.ping();
        return sendJson(res, 200, { ok: true, app: cfg.app });
      }
      sendJson(res, 404, { error: 'not found' });
    } catch (e) {
      log(`${req.method} ${url.pathname}: ${e.message}`);
      if (!res.headersSent) sendJson(res, e.status ?? 502, { error: e.message });
      else res.end();
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, resolve);
  });
  const port = server.address().port;
  const url = `http://${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host}:${port}`;
  log(`stream demo on ${url} (app ${cfg.app} on ${cfg.redis})`);

  return {
    url,
    port,
    app: cfg.app,
    /** Number of SSE clients connected right now. */
    get clients() {
      return clients.size;
    },
    async close() {
      for (const c of clients) {
        c.res.end();
        c.conn?.disconnect();
      }
      clients.clear();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve()));
      cmd.disconnect();
    },
  };
}

function isMain() {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

const USAGE = `usage: node examples/stream-demo/server.mjs [options]
  --redis URL         redis-llm-server to use (env REDIS_URL; default ${DEFAULTS.redis})
  --port N            HTTP port (env PORT; default ${DEFAULTS.port})
  --host H            HTTP bind address (env HOST; default ${DEFAULTS.host})
  --app NAME          app LLM.RUN runs (env DEMO_APP; default ${DEFAULTS.app})
  --setup             first create the LLM <app>-llm and the prompt app <app>:
                        OpenAI, key "$OPENAI_API_KEY" read by redis-llm-server from its own env, or
      --base-url URL      any OpenAI-compatible endpoint instead (e.g. http://127.0.0.1:8787 from fake-llm.mjs)
      --model NAME        chat model (default: the server's default)
      --api-key-env NAME  env var (of redis-llm-server) holding the key (default OPENAI_API_KEY; none with --base-url;
                          with --base-url, redis-llm-server must allow that host for it: llm-key-hosts NAME host:port)`;

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        redis: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        app: { type: 'string' },
        setup: { type: 'boolean' },
        'base-url': { type: 'string' },
        model: { type: 'string' },
        'api-key-env': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const setupOnly = ['base-url', 'model', 'api-key-env'].filter((k) => values[k] !== undefined);
  if (setupOnly.length && !values.setup) {
    console.error(`--${setupOnly[0]} only makes sense with --setup\n${USAGE}`);
    process.exit(2);
  }
  if (values.setup && !values['base-url'] && !values['api-key-env'] && !process.env.OPENAI_API_KEY) {
    console.warn('note: OPENAI_API_KEY is not set here; redis-llm-server reads it from its own environment, so it must be set there');
  }
  const port = Number(values.port ?? process.env.PORT ?? DEFAULTS.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`bad port: ${values.port ?? process.env.PORT}`);
    process.exit(2);
  }
  let demo;
  try {
    demo = await startDemo({
      redis: values.redis ?? process.env.REDIS_URL,
      port,
      host: values.host ?? process.env.HOST,
      app: values.app ?? process.env.DEMO_APP,
      setup: values.setup,
      baseUrl: values['base-url'],
      model: values.model,
      apiKeyEnv: values['api-key-env'],
      log: (m) => console.log(m),
    });
  } catch (e) {
    console.error(`stream demo: ${e.message}`);
    process.exit(1);
  }
  console.log(`open ${demo.url}`);
  const stop = () => demo.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (isMain()) await main();
