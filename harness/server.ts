/**
 * Starts redis-llm-server for a test: in process (fast, for most tests) or as a child process
 * (child.ts: signals, kill -9 and the managed redis-server), and compares exchanges with redis-server.
 */
import net from 'node:net';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { configureLogger } from '../src/log.js';
import { DEFAULTS, type Config } from '../src/config/config.js';
import { LlmServer } from '../src/server/server.js';
import { TEST_DIR } from './child.js';

export { CLI, ROOT, TEST_DIR, rssOf, startChildServer, type ChildServer } from './child.js';

configureLogger((process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent');

export async function startServer(cfg: Partial<Config>): Promise<LlmServer> {
  const server = new LlmServer({ ...DEFAULTS, port: 0, managedRedis: false, logLevel: 'silent', dir: TEST_DIR, ...cfg });
  await server.start();
  return server;
}

export function client(port: number, opts: Record<string, unknown> = {}): Redis {
  return new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 0, enableOfflineQueue: true, retryStrategy: () => null, ...opts });
}

/** Sends raw bytes and collects everything the server answers until it closes or `ms` pass. */
export function rawExchange(port: number, data: Buffer | string, ms = 300): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    sock.on('data', (d) => (text += d.toString('latin1')));
    sock.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve({ text, closed });
    });
    sock.on('error', () => {});
    sock.write(data);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ text, closed });
    }, ms);
  });
}

/**
 * Each request, in one write to a new connection, through the server (port `viaServer`) and to
 * redis-server (`viaRedis`): the same bytes back (after `normalize`), and the connection closed
 * by both. Requests that do not end the connection should finish with QUIT, so every exchange
 * ends without waiting for the timeout.
 */
export async function expectSameExchanges(viaServer: number, viaRedis: number, cases: Array<[string, string | Buffer]>, normalize = (t: string) => t): Promise<void> {
  const exchange = (port: number) => Promise.all(cases.map(([, req]) => rawExchange(port, req, 10_000)));
  const [got, want] = await Promise.all([exchange(viaServer), exchange(viaRedis)]);
  for (const [i, [what]] of cases.entries()) {
    expect(want[i]!.closed, `${what}: redis-server closed it`).toBe(true);
    expect({ ...got[i]!, text: normalize(got[i]!.text) }, what).toEqual({ ...want[i]!, text: normalize(want[i]!.text) });
  }
}
