/**
 * A local OpenAI-compatible HTTP server for tests (node:http on a free loopback port).
 *
 *   const srv = await startFakeOpenAI({ dim: 16 });
 *   // base_url for an `openai` LLM: srv.url (= "http://127.0.0.1:<port>"); `${srv.url}/v1` works too.
 *   // endpoint for an `azure_openai` LLM: srv.url.
 *   srv.enqueue({ type: 'status', status: 429 }, 2);      // next 2 matching requests get 429
 *   srv.setBehavior({ fault: { type: 'hang' } });          // every request hangs until reset
 *   srv.setBehavior({ reply: (req) => 'hi', chunkDelayMs: 5 });
 *   srv.requests.at(-1)!.body                              // parsed JSON body of the last request
 *   srv.calls('/embeddings')                               // requests whose path contains the text
 *   srv.maxInFlight                                        // peak concurrent requests
 *   srv.reset(); await srv.close();
 *
 * Endpoints (any path prefix, so "/v1/chat/completions", "/chat/completions" and Azure's
 * "/openai/deployments/<id>/chat/completions?api-version=..." all match):
 *  - POST .../chat/completions
 *      non-stream: a chat.completion JSON; reply text = `reply(req)` (default "echo: <last user
 *      message>"); usage: prompt_tokens = whitespace words in all message contents,
 *      completion_tokens = words in the reply; model = body.model, else the Azure deployment id.
 *      stream: true -> SSE: a role chunk, one chunk per word of the reply (with its trailing
 *      space), a finish chunk, a usage chunk (choices: []) when stream_options.include_usage,
 *      then "data: [DONE]". `chunkDelayMs` between chunks.
 *  - POST .../embeddings
 *      input: a string or an array of strings. Vector per text = `embed(text, dim)` (default:
 *      the project's local n-gram embedder, so texts sharing words are near); dim =
 *      body.dimensions, else the `dim` option (default 64). encoding_format "base64" ->
 *      little-endian float32 bytes in base64; otherwise float arrays. usage.prompt_tokens =
 *      words in all inputs.
 *  - Anything else: 404 JSON error. A body that is not JSON: 400.
 * Auth: with `apiKey`, requests must carry "Authorization: Bearer <apiKey>"; with
 * `azureApiKey`, Azure paths must carry "api-key: <azureApiKey>". A mismatch is answered 401
 * with a body that ECHOES THE KEY THAT WAS SENT (worse than OpenAI's masked echo) so tests can
 * check that it never leaks into errors. Azure paths without ?api-version get 404.
 * Faults (`Fault`), taken from the queue first (FIFO, optionally only for requests whose path
 * contains `pathFragment`), else the permanent `fault` of setBehavior:
 *  - status: that HTTP status with an OpenAI-style error body (or `body` if given: with status
 *    200 that is a canned answer); 429 also sends retry-after-ms (default 10) and
 *    retry-after (seconds, rounded up); `headers` are added (e.g. a location for a 3xx).
 *  - hang: read the request, never answer (closed by reset()/close()).
 *  - malformed: 200 with a JSON content type and a truncated JSON body (in a stream: a data
 *    line that is not JSON).
 *  - destroy: destroy the connection without any answer.
 *  - break-stream: start the answer, then destroy the connection (stream: after `afterChunks`
 *    content chunks, default 2; non-stream: after half the body).
 *  - length: a normal answer whose finish_reason is "length".
 *  - delay: a normal answer after `ms`.
 *  - stall: start the answer, then send nothing more and keep the connection open (stream: after
 *    `afterChunks` content chunks, default 1; non-stream: the headers only).
 *  - context-length: 400 with code context_length_exceeded, as OpenAI answers an input too long.
 *  A 429 with `retryAfterMs: null` sends no retry-after header (use `headers` for
 *  x-ratelimit-reset-requests / -tokens).
 * `connections` is the number of TCP connections open to the fake right now (a deadline that
 * aborts a request must leave none behind).
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { localEmbed } from '../src/llm/local.js';

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  /** Lower-cased header names, as node:http gives them. */
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined if empty or not JSON). */
  body: any;
  rawBody: string;
}

export type Fault =
  | { type: 'status'; status: number; retryAfterMs?: number | null; body?: unknown; headers?: Record<string, string> }
  | { type: 'stall'; afterChunks?: number }
  | { type: 'context-length' }
  | { type: 'hang' }
  | { type: 'malformed' }
  | { type: 'destroy' }
  | { type: 'break-stream'; afterChunks?: number }
  | { type: 'length' }
  | { type: 'delay'; ms: number };

export interface FakeOpenAIOptions {
  /** Chat reply text for a request. Default: "echo: " + the last user message's content. */
  reply?: (req: RecordedRequest) => string;
  /** Embedding of one text. Default: localEmbed (hashed word/char n-grams, unit length). */
  embed?: (text: string, dim: number) => number[];
  /** Default embedding dimension when the request has no `dimensions`. Default 64. */
  dim?: number;
  /** Delay before each SSE chunk, ms. Default 0. */
  chunkDelayMs?: number;
  /** Delay before every answer, ms. Default 0. */
  responseDelayMs?: number;
  /** The permanent fault (setBehavior's `fault`) hits only this share of requests (0..1). Default 1. */
  faultRate?: number;
  /** Require "Authorization: Bearer <apiKey>". */
  apiKey?: string;
  /** Require "api-key: <azureApiKey>" on Azure deployment paths. */
  azureApiKey?: string;
  /** Serve HTTPS with this key and certificate (PEM) instead of HTTP; `url` is then https://. Start-time only. */
  tls?: { key: string; cert: string };
}

export interface FakeOpenAI {
  /** "http://127.0.0.1:<port>" (https with the `tls` option), no trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Every request received, in arrival order (reset() clears). */
  readonly requests: RecordedRequest[];
  /** Number of requests whose path contains `pathFragment` (all requests without it). */
  calls(pathFragment?: string): number;
  /** The last request whose path contains `pathFragment`. */
  lastRequest(pathFragment?: string): RecordedRequest | undefined;
  /** TCP connections open to the fake right now. */
  readonly connections: number;
  /** Requests being answered right now / the peak since start or reset(). */
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Changes options; `fault` sets (or with null clears) a fault for every request. */
  setBehavior(opts: FakeOpenAIOptions & { fault?: Fault | null; faultPath?: string }): void;
  /** The next `times` requests (whose path contains `pathFragment`, if given) get `fault`. */
  enqueue(fault: Fault, times?: number, pathFragment?: string): void;
  /** Clears requests, queued and permanent faults, peak counter; options back to the start ones; drops hung connections. */
  reset(): void;
  close(): Promise<void>;
}

const words = (s: string): number => (s.match(/\S+/g) ?? []).length;

function defaultReply(req: RecordedRequest): string {
  const msgs: any[] = Array.isArray(req.body?.messages) ? req.body.messages : [];
  const lastUser = [...msgs].reverse().find((m) => m?.role === 'user');
  return `echo: ${typeof lastUser?.content === 'string' ? lastUser.content : ''}`;
}

function floatsToBase64(v: number[]): string {
  const buf = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString('base64');
}

const STATUS_ERROR_TYPE: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'invalid_request_error',
  404: 'invalid_request_error',
  429: 'rate_limit_exceeded',
};

export async function startFakeOpenAI(initial: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  let opts: FakeOpenAIOptions = { ...initial };
  let permanent: { fault: Fault; path?: string } | null = null;
  const queue: { fault: Fault; left: number; path?: string }[] = [];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const hung = new Set<http.ServerResponse>();
  let inFlight = 0;
  let maxInFlight = 0;
  let seq = 0;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  function takeFault(path: string): Fault | undefined {
    const i = queue.findIndex((q) => q.path === undefined || path.includes(q.path));
    if (i >= 0) {
      const q = queue[i]!;
      if (--q.left <= 0) queue.splice(i, 1);
      return q.fault;
    }
    if (permanent && (permanent.path === undefined || path.includes(permanent.path))) {
      if (opts.faultRate === undefined || Math.random() < opts.faultRate) return permanent.fault;
    }
    return undefined;
  }

  function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  function sendError(res: http.ServerResponse, status: number, message: string, code: string | null = null, headers: Record<string, string> = {}): void {
    sendJson(res, status, { error: { message, type: STATUS_ERROR_TYPE[status] ?? 'server_error', param: null, code } }, headers);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest): Promise<void> {
    const azure = /\/openai\/deployments\/([^/]+)\//.exec(rec.path);
    const isChat = rec.path.endsWith('/chat/completions');
    const isEmbed = rec.path.endsWith('/embeddings');

    if (rec.method !== 'POST' || (!isChat && !isEmbed)) return sendError(res, 404, `no route for ${rec.method} ${rec.path}`, 'not_found');
    if (azure && !rec.query['api-version']) return sendError(res, 404, 'Resource not found', '404');
    if (opts.apiKey !== undefined && !azure) {
      const auth = String(rec.headers.authorization ?? '');
      if (auth !== `Bearer ${opts.apiKey}`) {
        return sendError(res, 401, `Incorrect API key provided: ${auth.replace(/^Bearer /, '')}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_api_key');
      }
    }
    if (opts.azureApiKey !== undefined && azure) {
      const key = String(rec.headers['api-key'] ?? '');
      if (key !== opts.azureApiKey) {
        return sendError(res, 401, `Access denied due to invalid subscription key ${key}. Make sure to provide a valid key for an active subscription.`, '401');
      }
    }
    if (rec.body === undefined || typeof rec.body !== 'object' || rec.body === null) return sendError(res, 400, 'We could not parse the JSON body of your request.', 'invalid_json');

    const fault = takeFault(rec.path);
    if (opts.responseDelayMs) await sleep(opts.responseDelayMs);
    if (fault) {
      switch (fault.type) {
        case 'status': {
          const headers: Record<string, string> = { ...fault.headers };
          if (fault.status === 429 && fault.retryAfterMs !== null) {
            const ms = fault.retryAfterMs ?? 10;
            headers['retry-after-ms'] = String(ms);
            headers['retry-after'] = String(Math.ceil(ms / 1000));
          }
          if (fault.body !== undefined) return sendJson(res, fault.status, fault.body, headers);
          return sendError(res, fault.status, `injected ${fault.status}`, fault.status === 429 ? 'rate_limit_exceeded' : null, headers);
        }
        case 'hang':
          hung.add(res);
          return;
        case 'stall':
          if (isEmbed || rec.body.stream !== true) {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.flushHeaders();
            hung.add(res);
            return;
          }
          break;
        case 'context-length':
          return sendError(
            res,
            400,
            "This model's maximum context length is 4097 tokens. However, your messages resulted in 5000 tokens. Please reduce the length of the messages.",
            'context_length_exceeded',
          );
        case 'destroy':
          req.socket.destroy();
          return;
        case 'delay':
          await sleep(fault.ms);
          break;
        default:
          break;
      }
    }
    const model: string = typeof rec.body.model === 'string' ? rec.body.model : azure ? decodeURIComponent(azure[1]!) : 'fake-model';
    if (isEmbed) return embeddings(req, res, rec, model, fault);
    return chat(req, res, rec, model, fault);
  }

  async function embeddings(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest, model: string, fault: Fault | undefined): Promise<void> {
    const input = rec.body.input;
    const texts: unknown[] = typeof input === 'string' ? [input] : Array.isArray(input) ? input : [];
    if (texts.length === 0 || !texts.every((t) => typeof t === 'string')) return sendError(res, 400, "'input' must be a string or an array of strings", 'invalid_input');
    const dim = typeof rec.body.dimensions === 'number' ? rec.body.dimensions : (opts.dim ?? 64);
    const embed = opts.embed ?? localEmbed;
    const b64 = rec.body.encoding_format === 'base64';
    const body = {
      object: 'list',
      data: (texts as string[]).map((t, index) => {
        const v = embed(t, dim);
        return { object: 'embedding', index, embedding: b64 ? floatsToBase64(v) : v };
      }),
      model,
      usage: { prompt_tokens: (texts as string[]).reduce((n, t) => n + words(t), 0), total_tokens: (texts as string[]).reduce((n, t) => n + words(t), 0) },
    };
    return answer(req, res, body, fault);
  }

  function answer(req: http.IncomingMessage, res: http.ServerResponse, body: unknown, fault: Fault | undefined): void {
    if (fault?.type === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"object": "list", "data": [ {"embedding": [0.1, ');
      return;
    }
    if (fault?.type === 'break-stream') {
      const text = JSON.stringify(body);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.write(text.slice(0, Math.floor(text.length / 2)), () => req.socket.destroy());
      return;
    }
    sendJson(res, 200, body);
  }

  async function chat(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest, model: string, fault: Fault | undefined): Promise<void> {
    const msgs: any[] = Array.isArray(rec.body.messages) ? rec.body.messages : [];
    if (msgs.length === 0) return sendError(res, 400, "'messages' must be a non-empty array", 'invalid_messages');
    const text = (opts.reply ?? defaultReply)(rec);
    const usage = {
      prompt_tokens: msgs.reduce((n, m) => n + (typeof m?.content === 'string' ? words(m.content) : 0), 0),
      completion_tokens: words(text),
      total_tokens: 0,
    };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const finish = fault?.type === 'length' ? 'length' : 'stop';
    const id = `chatcmpl-fake-${++seq}`;
    const created = Math.floor(Date.now() / 1000);

    if (rec.body.stream !== true) {
      return answer(req, res, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finish }],
        usage,
      }, fault);
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = async (data: unknown) => {
      if (opts.chunkDelayMs) await sleep(opts.chunkDelayMs);
      if (res.destroyed) return;
      res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    };
    const chunk = (delta: object, finish_reason: string | null) => ({
      id, object: 'chat.completion.chunk', created, model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason }],
    });
    if (fault?.type === 'malformed') {
      await send(chunk({ role: 'assistant', content: '' }, null));
      await send('{"id": "broken", "choices": [ {');
      res.end();
      return;
    }
    await send(chunk({ role: 'assistant', content: '' }, null));
    const pieces = text.match(/\S+\s*|\s+/g) ?? [];
    const breakAfter = fault?.type === 'break-stream' ? (fault.afterChunks ?? 2) : Infinity;
    const stallAfter = fault?.type === 'stall' ? (fault.afterChunks ?? 1) : Infinity;
    let sent = 0;
    for (const p of pieces) {
      if (sent >= stallAfter) {
        hung.add(res);
        return;
      }
      if (sent >= breakAfter) break;
      await send(chunk({ content: p }, null));
      sent++;
    }
    if (sent >= breakAfter) {
      // Let the written chunks reach the client, then cut the connection mid-stream.
      res.write('', () => setTimeout(() => req.socket.destroy(), 5));
      return;
    }
    await send(chunk({}, finish));
    if (rec.body.stream_options?.include_usage === true) {
      await send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
    }
    await send('[DONE]');
    res.end();
  }

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        inFlight--;
        hung.delete(res);
      }
    };
    res.on('close', finish);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://localhost');
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body: any;
      try {
        body = rawBody ? JSON.parse(rawBody) : undefined;
      } catch {
        body = undefined;
      }
      const rec: RecordedRequest = {
        method: req.method ?? '',
        path: u.pathname,
        query: Object.fromEntries(u.searchParams),
        headers: req.headers,
        body,
        rawBody,
      };
      requests.push(rec);
      handle(req, res, rec).catch(() => {
        if (!res.headersSent) sendError(res, 500, 'fake server error');
        else res.destroy();
      });
    });
  };
  const server: http.Server = initial.tls ? https.createServer({ key: initial.tls.key, cert: initial.tls.cert }, onRequest) : http.createServer(onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `${initial.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    calls: (frag) => (frag === undefined ? requests.length : requests.filter((r) => r.path.includes(frag)).length),
    lastRequest: (frag) => [...requests].reverse().find((r) => frag === undefined || r.path.includes(frag)),
    get inFlight() {
      return inFlight;
    },
    get connections() {
      return sockets.size;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    setBehavior(o) {
      const { fault, faultPath, ...rest } = o;
      opts = { ...opts, ...rest };
      if (fault !== undefined) permanent = fault === null ? null : { fault, path: faultPath };
    },
    enqueue(fault, times = 1, pathFragment) {
      if (times > 0) queue.push({ fault, left: times, path: pathFragment });
    },
    reset() {
      requests.length = 0;
      queue.length = 0;
      permanent = null;
      opts = { ...initial };
      for (const res of hung) res.destroy();
      hung.clear();
      maxInFlight = inFlight;
    },
    close() {
      for (const res of hung) res.destroy();
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
