/**
 * Backing store modes (issue 2, sections 6–8): AUTH against a password-protected backend, the
 * server's own authenticated connection, the backing Redis killed and restarted, standalone mode,
 * the managed child redis-server, and graceful SIGTERM.
 *
 * No synchronous child-process API here: an in-process server shares this event loop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { freePort, startRedis, waitForPort, type RedisServerHandle } from '../harness/redis-server.js';
import { CLI, client, rawExchange, startChildServer, startServer, type ChildServer } from '../harness/server.js';
import type { LlmServer } from '../src/server/server.js';
import { LLM_COMMANDS } from '../src/commands/table.js';
import { startFakeOpenAI } from '../harness/fake-openai.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tmpDir = (prefix: string) => mkdtempSync(path.join(os.tmpdir(), prefix));
const lines = (text: string) => text.split('\r\n');

/** Polls `fn` until it returns true or `ms` pass. */
async function until(fn: () => Promise<boolean> | boolean, ms: number, step = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > deadline) return false;
    await sleep(step);
  }
}

/** Is a process with this pid still running (a zombie counts as gone)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The server's JSON log lines. */
function logLines(out: string): Array<Record<string, unknown>> {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Waits for the child's exit; resolves with its exit code. */
function exited(child: ChildServer, ms = 10_000): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.proc.exitCode !== null) return resolve(child.proc.exitCode);
    const t = setTimeout(() => reject(new Error(`server did not exit in ${ms} ms:\n${child.output()}`)), ms);
    child.proc.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/**
 * Sends `data` on a new connection and resolves as soon as `lines` reply lines have arrived (or
 * after `ms`), with the time that took: how fast the answer came, not how long we waited.
 */
function timedExchange(port: number, data: string, lines: number, ms = 3000): Promise<{ text: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, ms: Date.now() - t0 });
    };
    const timer = setTimeout(done, ms);
    sock.on('data', (d) => {
      text += d.toString('latin1');
      if (text.split('\r\n').length > lines) done();
    });
    sock.on('close', done);
    sock.on('error', () => {});
    sock.write(data);
  });
}

/** Does a connection to `port` get answered at all (PING → anything)? */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const done = (v: boolean) => {
      sock.destroy();
      resolve(v);
    };
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
    sock.once('data', () => done(true));
    sock.write('PING\r\n');
    setTimeout(() => done(false), 1000);
  });
}

const PASS = 's3cret';

/** Runs the CLI to completion (async: in-process servers share this event loop). */
function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 10_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, output: `${stdout}${stderr}` });
    });
  });
}

describe('AUTH against a requirepass backend', () => {
  let redis: RedisServerHandle;
  let server: LlmServer;
  const clients: Redis[] = [];
  const c = (opts: Record<string, unknown> = {}) => {
    const r = client(server.port, opts);
    clients.push(r);
    return r;
  };

  beforeAll(async () => {
    redis = await startRedis({ args: ['--requirepass', PASS] });
    server = await startServer({ redis: `redis://:${PASS}@127.0.0.1:${redis.port}` });
  });

  afterAll(async () => {
    for (const r of clients) r.disconnect();
    await server?.stop();
    await redis?.stop();
  });

  it('the server authenticates its own connection from the URL', async () => {
    const llm = (await c({ password: PASS }).info('llm')) as string;
    expect(llm).toContain('llm_backend_up:1');
    expect(llm).toContain('llm_server_mode:proxy');
  });

  it('unauthenticated: NOAUTH for LLM.* and GET; after AUTH both run', async () => {
    const { text } = await rawExchange(server.port, 'LLM.SIZE x\r\nGET x\r\nAUTH s3cret\r\nLLM.SIZE x\r\nGET x\r\n');
    const l = lines(text);
    expect(l[0]).toBe('-NOAUTH Authentication required.');
    expect(l[1]).toBe('-NOAUTH Authentication required.');
    expect(l[2]).toBe('+OK');
    expect(l[3]).not.toMatch(/NOAUTH/); // whatever LLM.SIZE answers, it is no longer NOAUTH
    expect(text.endsWith('\r\n$-1\r\n')).toBe(true); // GET x
  });

  it('a client configured with the password (AUTH on connect) runs LLM.*', async () => {
    const r = c({ password: PASS });
    expect(await r.set('authed', 'yes')).toBe('OK');
    const err = await r.call('LLM.SIZE', 'x').catch((e: Error) => e);
    expect(String(err)).not.toMatch(/NOAUTH/);
  });

  it('HELLO 2 AUTH default <pass> authenticates', async () => {
    const { text } = await rawExchange(server.port, `LLM.SIZE x\r\nHELLO 2 AUTH default ${PASS}\r\nLLM.SIZE x\r\nGET x\r\n`);
    const l = lines(text);
    expect(l[0]).toBe('-NOAUTH Authentication required.');
    expect(l[1]).toBe('*14'); // HELLO's map as a RESP2 array
    const after = text.slice(text.indexOf('\r\n') + 2);
    expect(after).not.toMatch(/NOAUTH/);
    expect(after.endsWith('\r\n$-1\r\n')).toBe(true); // LLM.SIZE ran, then GET x is nil
  });

  it('HELLO 2 AUTH with a wrong password does not authenticate', async () => {
    const { text } = await rawExchange(server.port, 'HELLO 2 AUTH default nope\r\nLLM.SIZE x\r\n');
    const l = lines(text);
    expect(l[0]).toMatch(/^-WRONGPASS/);
    expect(l[1]).toBe('-NOAUTH Authentication required.');
  });

  it('a wrong password gets WRONGPASS and LLM.* stays NOAUTH', async () => {
    const { text } = await rawExchange(server.port, 'AUTH wrong\r\nLLM.SIZE x\r\nGET x\r\n');
    const l = lines(text);
    expect(l[0]).toBe('-WRONGPASS invalid username-password pair or user is disabled.');
    expect(l[1]).toBe('-NOAUTH Authentication required.');
    expect(l[2]).toBe('-NOAUTH Authentication required.');
  });

  it('an ACL user authenticates with AUTH <user> <pass>', async () => {
    const admin = client(redis.port, { password: PASS });
    clients.push(admin);
    expect(await admin.call('ACL', 'SETUSER', 'alice', 'on', '>pw', '~*', '+@all')).toBe('OK');
    const { text } = await rawExchange(server.port, 'AUTH alice wrong\r\nLLM.SIZE x\r\nAUTH alice pw\r\nLLM.SIZE x\r\nACL WHOAMI\r\n');
    const l = lines(text);
    expect(l[0]).toMatch(/^-WRONGPASS/);
    expect(l[1]).toBe('-NOAUTH Authentication required.');
    expect(l[2]).toBe('+OK');
    expect(l[3]).not.toMatch(/NOAUTH/);
    expect(l.slice(4, 6)).toEqual(['$5', 'alice']);
  });

  it('RESET drops the authentication again', async () => {
    const { text } = await rawExchange(server.port, `AUTH ${PASS}\r\nRESET\r\nLLM.SIZE x\r\n`);
    expect(lines(text).slice(0, 3)).toEqual(['+OK', '+RESET', '-NOAUTH Authentication required.']);
  });

  it('a backend whose default user is off (ACL only) also requires AUTH for LLM.*', async () => {
    const acl = await startRedis({ args: ['--user', 'default', 'off', '--user', 'bob', 'on', '>bobpw', '~*', '&*', '+@all'] });
    const s = await startServer({ redis: `redis://bob:bobpw@127.0.0.1:${acl.port}` });
    try {
      const { text } = await rawExchange(s.port, 'LLM.SIZE x\r\nAUTH bob bobpw\r\nLLM.SIZE x\r\nINFO llm\r\n');
      const l = lines(text);
      expect(l[0]).toBe('-NOAUTH Authentication required.');
      expect(l[1]).toBe('+OK');
      expect(l[2]).not.toMatch(/NOAUTH/);
      expect(text).toContain('llm_backend_up:1');
    } finally {
      await s.stop();
      await acl.stop();
    }
  });
});

describe('the server connection to a password-protected backend (child process)', () => {
  it('connects with the password from the URL and never logs it', async () => {
    const redis = await startRedis({ args: ['--requirepass', PASS] });
    const url = `redis://:${PASS}@127.0.0.1:${redis.port}`;
    const child = await startChildServer(['--redis', url, '--log-level', 'trace']);
    const r = client(child.port, { password: PASS });
    try {
      expect(await until(async () => ((await r.info('llm')) as string).includes('llm_backend_up:1'), 3000)).toBe(true);
      expect(await r.call('AUTH', 'wrong').catch((e: Error) => e.message)).toMatch(/WRONGPASS/);
      // A backend restart makes the server log the loss and the reconnect: still no password.
      await redis.kill();
      await redis.restart();
      expect(await until(() => child.output().split('connected to the backing Redis').length > 2, 8000)).toBe(true);
    } finally {
      r.disconnect();
      expect(await child.stop()).toBe(0);
      await redis.stop();
    }
    const out = child.output();
    expect(out).toContain('using the backing Redis');
    expect(out).toContain('***');
    expect(out).not.toContain(PASS);
  });

  it('refused credentials at startup are a clear startup error, without the password', async () => {
    const redis = await startRedis({ args: ['--requirepass', PASS] });
    try {
      const wrong = await runCli(['--port', '0', '--redis', `redis://:not-${PASS}-either@127.0.0.1:${redis.port}`]);
      expect(wrong.code).toBe(1);
      expect(wrong.output).toContain("refused the server's credentials");
      expect(wrong.output).toContain('WRONGPASS');
      expect(wrong.output).not.toContain(`not-${PASS}-either`);
      const missing = await runCli(['--port', '0', '--redis', redis.url]);
      expect(missing.code).toBe(1);
      expect(missing.output).toContain('NOAUTH');
      expect(missing.output).toContain('redis://[user]:password@host:port');
    } finally {
      await redis.stop();
    }
  });

  it('credentials refused after a reconnect: logged once, fails fast, recovers when fixed', async () => {
    const redis = await startRedis({ args: ['--requirepass', PASS] });
    const child = await startChildServer(['--redis', `redis://:${PASS}@127.0.0.1:${redis.port}`], {}, { logLevel: 'info' });
    const admin = () => client(redis.port, { password: PASS });
    try {
      const a = admin();
      await a.config('SET', 'requirepass', 'rotated');
      await a.call('CLIENT', 'KILL', 'TYPE', 'normal').catch(() => {});
      a.disconnect();
      expect(await until(() => child.output().includes("refused the server's credentials"), 3000)).toBe(true);
      const res = await timedExchange(child.port, 'AUTH rotated\r\nGET x\r\n', 2);
      expect(res.text).toMatch(/^-ERR backing Redis unavailable.*\r\n-ERR backing Redis unavailable/);
      expect(res.ms).toBeLessThan(1000);
      await sleep(1500); // several retries
      expect(child.output().split("refused the server's credentials").length).toBe(2); // once, not per retry
      const b = client(redis.port, { password: 'rotated' });
      await b.config('SET', 'requirepass', PASS);
      b.disconnect();
      expect(await until(async () => (await rawExchange(child.port, `AUTH ${PASS}\r\nGET x\r\n`, 300)).text === '+OK\r\n$-1\r\n', 5000, 100)).toBe(true);
      expect(child.proc.exitCode).toBeNull();
    } finally {
      expect(await child.stop()).toBe(0);
      await redis.stop();
    }
    expect(child.output()).not.toContain(PASS);
    expect(child.output()).not.toContain('rotated');
  });
});

describe('backing Redis killed and restarted', () => {
  it('closes connected clients, fails fast while down, keeps running and reconnects', async () => {
    const redis = await startRedis();
    const child = await startChildServer(['--redis', redis.url], {}, { logLevel: 'info' });
    const a = client(child.port);
    const b = client(child.port);
    try {
      await a.select(2);
      await a.set('k', 'v');
      expect(await b.get('k')).toBeNull(); // db 0
      const closedA = new Promise<void>((r) => a.once('close', () => r()));
      const closedB = new Promise<void>((r) => b.once('close', () => r()));
      // b is blocked when the backend dies: it gets an error or a closed connection, not a hang.
      const blocked = b.blpop('never', 0).then(() => 'reply', (e: Error) => e.message);

      await redis.kill();
      await Promise.all([closedA, closedB]);
      expect(await blocked).not.toBe('reply');

      // A new client: GET fails fast with a clear error; PING and ECHO are answered locally.
      await sleep(50);
      const { text, ms: elapsed } = await timedExchange(child.port, 'GET x\r\nPING\r\nECHO hi\r\nLLM.SIZE x\r\n', 5);
      const l = lines(text);
      expect(l[0]).toMatch(/^-ERR backing Redis unavailable/);
      expect(l.slice(1, 4)).toEqual(['+PONG', '$2', 'hi']);
      expect(l[4]).not.toBe(''); // LLM.* is answered too (from the server's memory), no hang
      expect(elapsed).toBeLessThan(1000);
      // Each request on its own, timed.
      for (const cmd of ['GET x', 'SET x 1', 'BLPOP q 0', 'SUBSCRIBE ch', 'MULTI']) {
        const res = await timedExchange(child.port, `${cmd}\r\n`, 1);
        expect(res.text, cmd).toMatch(/^-ERR backing Redis unavailable[^\r]*\r\n$/);
        expect(res.ms, cmd).toBeLessThan(1000);
      }
      // The server did not exit.
      await sleep(200);
      expect(child.proc.exitCode).toBeNull();

      await redis.restart();
      const t1 = Date.now();
      const back = await until(async () => (await rawExchange(child.port, 'SET back 1\r\nGET back\r\n', 300)).text === '+OK\r\n$1\r\n1\r\n', 8000, 100);
      expect(back).toBe(true);
      expect(Date.now() - t1).toBeLessThan(8000);
      const out = child.output();
      expect(out).toContain('lost the backing Redis');
      expect(out.split('connected to the backing Redis').length).toBeGreaterThanOrEqual(3);
    } finally {
      a.disconnect();
      b.disconnect();
      expect(await child.stop()).toBe(0);
      await redis.stop();
    }
  });

  it('in process: a client connected while the backend is down works once it is back', async () => {
    const redis = await startRedis();
    const server = await startServer({ redis: redis.url, backendConnectTimeout: 300 });
    try {
      await redis.kill();
      expect(await until(() => !server.backend!.up, 2000)).toBe(true);
      const sock = net.connect(server.port, '127.0.0.1');
      let got = '';
      sock.on('data', (d) => (got += d.toString('latin1')));
      sock.write('GET x\r\n');
      expect(await until(() => got.includes('\r\n'), 900)).toBe(true);
      expect(got).toMatch(/^-ERR backing Redis unavailable/);
      await redis.restart();
      expect(await until(() => server.backend!.up, 5000)).toBe(true);
      got = '';
      sock.write('SET same-conn 1\r\nGET same-conn\r\n');
      expect(await until(() => got === '+OK\r\n$1\r\n1\r\n', 2000)).toBe(true);
      sock.destroy();
    } finally {
      await server.stop();
      await redis.stop();
    }
  });
});

describe('standalone mode', () => {
  let server: LlmServer;
  let dir: string;

  beforeAll(async () => {
    dir = tmpDir('rls-standalone-');
    server = await startServer({ redis: null, managedRedis: false, dir });
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('PING, ECHO and QUIT work; other commands get the no-backing-Redis error', async () => {
    const res = await rawExchange(server.port, 'PING\r\nPING hello\r\nECHO "a b"\r\nGET x\r\nSET x 1\r\nQUIT\r\n', 1000);
    expect(res.text).toBe(
      '+PONG\r\n$5\r\nhello\r\n$3\r\na b\r\n' +
        '-ERR no backing Redis: start with --redis <url> or install redis-server\r\n'.repeat(2) +
        '+OK\r\n',
    );
    expect(res.closed).toBe(true);
  });

  it('COMMAND COUNT is the number of LLM.* commands, INFO llm and MODULE LIST work', async () => {
    const r = client(server.port);
    try {
      expect(LLM_COMMANDS.length).toBeGreaterThanOrEqual(11);
      expect(await r.call('COMMAND', 'COUNT')).toBe(LLM_COMMANDS.length);
      const info = (await r.info('llm')) as string;
      expect(info).toContain('# LLM');
      expect(info).toContain('llm_server_mode:standalone');
      expect(info).toContain('llm_backend_up:0');
      const list = (await r.call('MODULE', 'LIST')) as unknown[][];
      expect(list).toContainEqual(['name', 'LLM', 'ver', 1, 'path', 'redis-llm-server', 'args', []]);
      await expect(r.get('x')).rejects.toThrow('no backing Redis: start with --redis <url> or install redis-server');
    } finally {
      r.disconnect();
    }
  });

  it('--requirepass: NOAUTH until AUTH <pass>', async () => {
    const s = await startServer({ redis: null, managedRedis: false, dir, requirepass: 'pw' });
    try {
      const { text } = await rawExchange(s.port, 'LLM.SIZE x\r\nGET x\r\nAUTH nope\r\nLLM.SIZE x\r\nAUTH pw\r\nLLM.SIZE x\r\nGET x\r\n');
      const l = lines(text);
      expect(l.slice(0, 4)).toEqual([
        '-NOAUTH Authentication required.',
        '-NOAUTH Authentication required.',
        '-WRONGPASS invalid username-password pair or user is disabled.',
        '-NOAUTH Authentication required.',
      ]);
      expect(l[4]).toBe('+OK');
      expect(l[5]).not.toMatch(/NOAUTH/);
      expect(text.endsWith('\r\n-ERR no backing Redis: start with --redis <url> or install redis-server\r\n')).toBe(true);
      // AUTH default <pass> works too, and each connection authenticates for itself.
      const other = await rawExchange(s.port, 'AUTH default pw\r\nLLM.SIZE x\r\n');
      expect(lines(other.text)[0]).toBe('+OK');
      expect(lines(other.text)[1]).not.toMatch(/NOAUTH/);
      expect((await rawExchange(s.port, 'LLM.SIZE x\r\n')).text).toBe('-NOAUTH Authentication required.\r\n');
    } finally {
      await s.stop();
    }
  });

  it('a child with --managed-redis no runs standalone even with redis-server on PATH', async () => {
    const d = tmpDir('rls-standalone-child-');
    const child = await startChildServer(['--managed-redis', 'no', '--dir', d], {}, { logLevel: 'info' });
    try {
      const { text } = await rawExchange(child.port, 'PING\r\nGET x\r\nINFO llm\r\n');
      expect(text).toContain('+PONG\r\n-ERR no backing Redis: start with --redis <url> or install redis-server\r\n');
      expect(text).toContain('llm_server_mode:standalone');
    } finally {
      expect(await child.stop()).toBe(0);
      rmSync(d, { recursive: true, force: true });
    }
    expect(child.output()).toContain('standalone mode');
    expect(child.output()).not.toContain('started managed redis-server');
  });
});

/* Found by this suite and fixed: the server answered some commands itself before AUTH. */
describe('auth before AUTH: nothing answered locally', () => {
  const NOAUTH = '-NOAUTH Authentication required.';

  // Fix: src/commands/redis/hello.ts, standalone branch — parse `AUTH <user> <pass>`; a wrong pair
  // (or user other than default) → WRONGPASS, a right one → view.setAuthenticated(true); without
  // AUTH while unauthenticated → -NOAUTH HELLO must be called with the client already authenticated...
  it('standalone --requirepass: HELLO 2 AUTH checks the password and authenticates', async () => {
    const d = tmpDir('rls-hello-auth-');
    const s = await startServer({ redis: null, managedRedis: false, dir: d, requirepass: 'pw' });
    try {
      const wrong = await rawExchange(s.port, 'HELLO 2 AUTH default nope\r\nLLM.SIZE x\r\n');
      expect(lines(wrong.text).slice(0, 2)).toEqual(['-WRONGPASS invalid username-password pair or user is disabled.', NOAUTH]);
      const right = await rawExchange(s.port, 'HELLO 2 AUTH default pw\r\nLLM.SIZE x\r\n');
      expect(right.text.startsWith('*14\r\n')).toBe(true);
      expect(right.text).not.toContain('NOAUTH');
    } finally {
      await s.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });

  // Fix: src/commands/dispatcher.ts Router.plan — before the REDIS_INTERCEPTS lookup:
  //   if (!view.authenticated && name !== 'auth' && name !== 'hello' && name !== 'quit')
  //     return errorPlan('Authentication required.', 'NOAUTH');
  // (Redis refuses every command but AUTH, HELLO and QUIT before authentication.)
  it('standalone --requirepass: PING, ECHO, INFO, COMMAND and MODULE answer NOAUTH before AUTH', async () => {
    const d = tmpDir('rls-noauth-local-');
    const s = await startServer({ redis: null, managedRedis: false, dir: d, requirepass: 'pw' });
    try {
      const { text } = await rawExchange(s.port, 'PING\r\nECHO x\r\nINFO llm\r\nCOMMAND COUNT\r\nMODULE LIST\r\n');
      expect(text).toBe(`${NOAUTH}\r\n`.repeat(5));
    } finally {
      await s.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });

  // Same fix as above: it covers proxy mode too, where INFO llm and COMMAND INFO/DOCS of LLM.*
  // names are answered locally, so an unauthenticated client reads the server's counters.
  it('password-protected backend: INFO llm and COMMAND INFO llm.* answer NOAUTH before AUTH', async () => {
    const redis = await startRedis({ args: ['--requirepass', PASS] });
    const s = await startServer({ redis: `redis://:${PASS}@127.0.0.1:${redis.port}` });
    try {
      const { text } = await rawExchange(s.port, 'INFO llm\r\nCOMMAND INFO llm.add\r\nCOMMAND DOCS llm.add\r\nPING\r\n');
      expect(text).toBe(`${NOAUTH}\r\n`.repeat(4));
    } finally {
      await s.stop();
      await redis.stop();
    }
  });
});

describe('managed child redis-server', () => {
  it('starts with the server, persists data across restarts in --dir, stops on SIGTERM', async () => {
    const dir = tmpDir('rls-managed-');
    const pidOf = (out: string) => logLines(out).find((l) => l.msg === 'started managed redis-server')?.redisPid as number | undefined;
    try {
      const first = await startChildServer(['--dir', dir], {}, { logLevel: 'info' });
      const redisPid = pidOf(first.output());
      expect(redisPid).toBeGreaterThan(0);
      expect(alive(redisPid!)).toBe(true);
      const r = client(first.port);
      try {
        expect(await r.set('persisted', 'across restarts')).toBe('OK');
        expect(await r.get('persisted')).toBe('across restarts');
        expect(await r.info('llm')).toContain('llm_server_mode:managed');
        expect(((await r.config('GET', 'appendonly')) as string[])[1]).toBe('yes');
      } finally {
        r.disconnect();
      }
      expect(await first.stop('SIGTERM')).toBe(0);
      expect(alive(redisPid!)).toBe(false);
      expect(first.output()).toContain('stopped managed redis-server');

      const second = await startChildServer(['--dir', dir], {}, { logLevel: 'info' });
      const secondPid = pidOf(second.output());
      const r2 = client(second.port);
      try {
        expect(await r2.get('persisted')).toBe('across restarts');
      } finally {
        r2.disconnect();
      }
      expect(await second.stop('SIGINT')).toBe(0);
      expect(alive(secondPid!)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('managed child redis-server: crashes and concurrent use', () => {
  const pidOf = (out: string) => logLines(out).find((l) => l.msg === 'started managed redis-server')?.redisPid as number | undefined;

  it('a redis-server left by a killed server is shut down (AOF flushed) before a new one starts', async () => {
    const dir = tmpDir('rls-managed-orphan-');
    try {
      const first = await startChildServer(['--dir', dir], {}, { logLevel: 'info' });
      const orphan = pidOf(first.output())!;
      const r = client(first.port);
      await r.set('survives', 'kill -9');
      r.disconnect();
      expect(await first.stop('SIGKILL')).toBeNull();
      expect(alive(orphan)).toBe(true); // kill -9 gives the server no chance to stop it

      const second = await startChildServer(['--dir', dir], {}, { logLevel: 'info' });
      try {
        expect(second.output()).toContain('still running; shutting it down first');
        expect(alive(orphan)).toBe(false);
        const fresh = pidOf(second.output())!;
        expect(fresh).not.toBe(orphan);
        expect(alive(fresh)).toBe(true);
        const r2 = client(second.port);
        expect(await r2.get('survives')).toBe('kill -9');
        r2.disconnect();
      } finally {
        expect(await second.stop()).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a managed redis-server killed at run time is restarted; the data is still there', async () => {
    const dir = tmpDir('rls-managed-restart-');
    const child = await startChildServer(['--dir', dir], {}, { logLevel: 'info' });
    try {
      const first = pidOf(child.output())!;
      const r = client(child.port);
      await r.set('before-crash', '1');
      const closed = new Promise<void>((resolve) => r.once('close', () => resolve()));
      process.kill(first, 'SIGKILL');
      await closed; // its backend connection is gone, so is the client's
      expect(await until(() => child.output().includes('managed redis-server exited; restarting'), 2000)).toBe(true);
      const back = await until(async () => (await rawExchange(child.port, 'GET before-crash\r\n', 300)).text === '$1\r\n1\r\n', 8000, 100);
      expect(back).toBe(true);
      const pids = logLines(child.output()).filter((l) => l.msg === 'started managed redis-server').map((l) => l.redisPid as number);
      expect(pids.length).toBe(2);
      expect(alive(pids[1])).toBe(true);
      r.disconnect();
    } finally {
      expect(await child.stop()).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a managed redis-server that cannot start is a startup error with its own message', async () => {
    const dir = tmpDir('rls-managed-broken-');
    try {
      mkdirSync(path.join(dir, 'redis'));
      writeFileSync(path.join(dir, 'redis', 'appendonlydir'), ''); // a file where its AOF dir goes
      const res = await runCli(['--port', '0', '--dir', dir]);
      expect(res.code).toBe(1);
      expect(res.output).toContain('managed redis-server did not start');
      expect(res.output).toContain('append-only dir');
      expect(res.output).not.toContain('exited; restarting');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a second server on the same --dir refuses to start; the first keeps working', async () => {
    const dir = tmpDir('rls-managed-twice-');
    const first = await startChildServer(['--dir', dir], {}, { logLevel: 'info' });
    try {
      const second = await runCli(['--port', '0', '--dir', dir]);
      expect(second.code).toBe(1);
      expect(second.output).toContain('another redis-llm-server is using');
      const r = client(first.port);
      expect(await r.set('still', 'fine')).toBe('OK');
      r.disconnect();
    } finally {
      expect(await first.stop()).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Ctrl-C (SIGINT to the whole process group) still finishes the in-flight reply first', async () => {
    const dir = tmpDir('rls-managed-ctrlc-');
    const port = await freePort();
    // The server leads its own process group, as a foreground job in a terminal does.
    const proc = spawn(process.execPath, [CLI, '--port', String(port), '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    try {
      await waitForPort(port, '127.0.0.1', 15_000);
      const r = client(port);
      await r.ping();
      const reply = r.blpop('ctrl-c', 1);
      await sleep(150);
      process.kill(-proc.pid!, 'SIGINT');
      expect(await reply).toBeNull(); // not an error: the managed redis-server did not die first
      expect(await exit).toBe(0);
      r.disconnect();
      expect(out).not.toContain('exited; restarting');
      expect(alive(pidOf(out)!)).toBe(false);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('graceful shutdown', () => {
  let redis: RedisServerHandle;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('once shutdown began, nothing more is read from a client, also after a pause for a long inbox ends', async () => {
    const fake = await startFakeOpenAI({});
    const server = await startServer({ redis: redis.url });
    let sock: net.Socket | undefined;
    try {
      await server.loadingDone;
      const r = client(server.port);
      await r.call('LLM.CREATE-LLM', 'slow', '--PARAMS', JSON.stringify({ api_key: 'k', base_url: fake.url }));
      await r.call('LLM.CREATE-APP', 'slowapp', '--LLM', 'slow', '--PROMPT', 'hi');
      r.disconnect();
      fake.setBehavior({ responseDelayMs: 600 });
      sock = net.connect(server.port, '127.0.0.1');
      let text = '';
      sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
      const closed = new Promise<void>((res) => sock!.on('close', () => res()));
      await new Promise((res) => sock!.once('connect', res));
      // A local command that takes a while, then more requests than the inbox holds before the
      // socket is paused (1024): the session stops reading until the inbox is short again.
      sock.write('LLM.RUN slowapp\r\n' + 'PING\r\n'.repeat(1100));
      await sleep(150);
      const stopped = server.stop();
      sock.write('ECHO after-shutdown\r\n'.repeat(50));
      await closed;
      await stopped;
      expect(text.startsWith('$8\r\necho: hi\r\n')).toBe(true);
      expect(text.split('+PONG\r\n').length - 1).toBe(1100);
      expect(text).not.toContain('after-shutdown');
    } finally {
      sock?.destroy();
      await server.stop();
      await fake.close();
    }
  });

  it('SIGTERM: the in-flight BLPOP reply arrives before exit 0; new connections are refused', async () => {
    const child = await startChildServer(['--redis', redis.url], {}, { logLevel: 'info' });
    const r = client(child.port);
    try {
      await r.ping();
      let repliedAt = 0;
      const reply = r.blpop('shutdown-q', 1).then((v) => {
        repliedAt = Date.now();
        return v;
      });
      await sleep(150);
      const exit = exited(child);
      let exitedAt = 0;
      void exit.then(() => (exitedAt = Date.now()));
      child.proc.kill('SIGTERM');
      await sleep(250);
      expect(child.proc.exitCode).toBeNull(); // still finishing the BLPOP
      expect(await answers(child.port)).toBe(false);
      expect(await reply).toBeNull();
      expect(await exit).toBe(0);
      expect(repliedAt).toBeGreaterThan(0);
      expect(repliedAt).toBeLessThanOrEqual(exitedAt);
    } finally {
      r.disconnect();
      await child.stop('SIGKILL');
    }
  });
});
