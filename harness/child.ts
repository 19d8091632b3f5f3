/**
 * redis-llm-server as a child process (the built CLI), for tests (signals, kill -9, the managed
 * redis-server, logs) and benchmarks alike, and what they read of a process (its RSS). No vitest
 * here: benchmarks import it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort, type RedisServerHandle } from './redis-server.js';

/**
 * The default --dir of the servers a test file starts (the generated server secret lives there):
 * one temporary directory per test process, so servers restarted within a file share a secret and
 * nothing is written into the checkout.
 */
export const TEST_DIR = mkdtempSync(path.join(os.tmpdir(), 'rls-dir-'));
process.on('exit', () => rmSync(TEST_DIR, { recursive: true, force: true }));

export const ROOT = path.resolve(import.meta.dirname, '..');
export const CLI = path.join(ROOT, 'dist/src/cli.js');
/**
 * Node flags the server runs with (npm start, the Dockerfile, cli.js's shebang): no
 * allocation-site pretenuring, which under a steady request load moved request-scoped objects
 * straight to the old generation (a 6–12 ms full collection every ~0.5 s at 6,000 KNN/s, measured;
 * none without it). The young generation stays at V8's default 16 MB: a 64 MB one (used before)
 * made each scavenge a 2–3.5 ms pause and, measured in 3 alternating pairs under a KNN load,
 * gave higher GET p99s (3.3–4.3 ms vs 2.8–3.7 ms) and lower KNN throughput.
 */
export const NODE_FLAGS = ['--no-allocation-site-pretenuring'];

export interface ChildServer {
  port: number;
  proc: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs the built CLI (npm test builds first) as a child process. With `nofile`, under
 * `ulimit -n nofile` (bash execs node: the same pid); `nodeArgs` go to node before the CLI. It logs at `warn` (problems only) unless
 * `logLevel` (or a `--log-level` in `args`) asks for more: a test that reads info lines says so.
 */
export async function startChildServer(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  opts: { nofile?: number; logLevel?: string; nodeArgs?: string[]; port?: number } = {},
): Promise<ChildServer> {
  const port = opts.port ?? (await freePort());
  let out = '';
  const dirArgs = args.includes('--dir') ? [] : ['--dir', TEST_DIR];
  const argv = [...NODE_FLAGS, ...(opts.nodeArgs ?? []), CLI, '--port', String(port), '--log-level', opts.logLevel ?? 'warn', ...dirArgs, ...args];
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


/** A process's resident set size in bytes, from /proc/<pid>/status (0 once it is gone). */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The processes a benchmark started (children it tracks, and the redis-server it runs): stopped by
 * `cleanup()`, and on Ctrl-C / SIGTERM / SIGHUP (exit 130); killed at exit whatever happened.
 */
export class ProcessGroup {
  private readonly children = new Set<ChildProcess>();
  redis: RedisServerHandle | undefined;
  /** cleanup() began: a child exiting now was stopped, not crashed. */
  stopping = false;

  constructor() {
    process.on('exit', () => {
      for (const p of this.children) p.kill('SIGKILL');
      if (this.redis?.process && this.redis.process.exitCode === null) this.redis.process.kill('SIGKILL');
    });
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => void this.cleanup().finally(() => process.exit(130)));
  }

  track(p: ChildProcess): ChildProcess {
    this.children.add(p);
    p.once('exit', () => this.children.delete(p));
    return p;
  }

  async cleanup(): Promise<void> {
    this.stopping = true;
    for (const p of this.children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    this.children.clear();
    const r = this.redis;
    this.redis = undefined;
    await r?.stop().catch(() => undefined);
  }
}
