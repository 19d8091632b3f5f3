/**
 * Starts redis-llm-server for a test: in process (fast, for most tests) or as a child process
 * (for signals, kill -9 and the managed redis-server).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { configureLogger } from '../../src/log.js';
import { DEFAULTS, type Config } from '../../src/config/config.js';
import { LlmServer } from '../../src/server/server.js';
import { freePort, waitForPort } from './redis-server.js';

configureLogger((process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent');

/**
 * The default --dir of the servers a test file starts (the generated server secret lives there):
 * one temporary directory per test process, so servers restarted within a file share a secret and
 * nothing is written into the checkout.
 */
export const TEST_DIR = mkdtempSync(path.join(os.tmpdir(), 'rls-dir-'));
process.on('exit', () => rmSync(TEST_DIR, { recursive: true, force: true }));

export async function startServer(cfg: Partial<Config>): Promise<LlmServer> {
  const server = new LlmServer({ ...DEFAULTS, port: 0, managedRedis: false, logLevel: 'silent', dir: TEST_DIR, ...cfg });
  await server.start();
  return server;
}

export function client(port: number, opts: Record<string, unknown> = {}): Redis {
  return new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 0, enableOfflineQueue: true, retryStrategy: () => null, ...opts });
}

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'dist/src/cli.js');

export interface ChildServer {
  port: number;
  proc: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs the built CLI (npm test builds first) as a child process. With `nofile`, under
 * `ulimit -n nofile` (bash execs node: the same pid). It logs at `warn` (problems only) unless
 * `logLevel` (or a `--log-level` in `args`) asks for more: a test that reads info lines says so.
 */
export async function startChildServer(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  opts: { nofile?: number; logLevel?: string } = {},
): Promise<ChildServer> {
  const port = await freePort();
  let out = '';
  const dirArgs = args.includes('--dir') ? [] : ['--dir', TEST_DIR];
  const argv = [CLI, '--port', String(port), '--log-level', opts.logLevel ?? 'warn', ...dirArgs, ...args];
  const spawnOpts = { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'] };
  const proc = opts.nofile
    ? spawn('bash', ['-c', `ulimit -n ${opts.nofile} && exec "$0" "$@"`, process.execPath, ...argv], spawnOpts)
    : spawn(process.execPath, argv, spawnOpts);
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  try {
    await waitForPort(port, '127.0.0.1', 15_000);
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`server did not start: ${out}`);
  }
  return {
    port,
    proc,
    output: () => out,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
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
