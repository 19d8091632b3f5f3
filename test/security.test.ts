/**
 * Secure by default (#17): keys bound to their hosts (the exfiltration attempt delivers nothing),
 * passwords and ACL users in managed mode (redis-cli, ioredis), protected mode for clients of
 * other addresses, TLS for clients (mutual auth, SIGHUP reload) and to the backing Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Redis } from 'ioredis';
import { freePort, startRedis, waitForPort, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startChildServer, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import type { LlmServer } from '../src/server/server.js';
import { readConfigFile, resolveConfig } from '../src/config/config.js';
import { SecretBox } from '../src/util/secret.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'rls-security-'));
const tmpDir = (name: string) => mkdtempSync(path.join(root, `${name}-`));
const servers: LlmServer[] = [];
const conns: Redis[] = [];

async function boot(cfg: Parameters<typeof startServer>[0]): Promise<LlmServer> {
  const s = await startServer(cfg);
  servers.push(s);
  await s.loadingDone;
  return s;
}

function conn(port: number, opts: Record<string, unknown> = {}): Redis {
  const c = client(port, opts);
  c.on('error', () => {});
  conns.push(c);
  return c;
}

async function errOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`${err.message} ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/** What a raw client bound to `localAddress` is answered, and whether the server closed it. */
function rawFrom(port: number, localAddress: string, data: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ text, closed: false });
    }, 1500);
    sock.on('data', (d) => (text += d.toString()));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    sock.on('connect', () => sock.write(data));
  });
}

afterAll(async () => {
  for (const c of conns) c.disconnect();
  for (const s of servers) await s.stop().catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

describe('keys bound to their hosts: the exfiltration attempt of #17 delivers nothing', () => {
  let redis: RedisServerHandle;
  let fake: FakeOpenAI;
  let listener: http.Server;
  let listenerPort = 0;
  const received: Array<{ url?: string; authorization?: string }> = [];
  const SERVER_KEY = 'sk-the-servers-own-key-7f3e2a';

  beforeAll(async () => {
    process.env.FOO_API_KEY = SERVER_KEY;
    redis = await startRedis();
    fake = await startFakeOpenAI({ dim: 16, apiKey: SERVER_KEY });
    listener = http.createServer((req, res) => {
      received.push({ url: req.url, authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    listenerPort = (listener.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    delete process.env.FOO_API_KEY;
    await new Promise((r) => listener.close(r));
    await fake.close();
    await redis.stop();
  });

  it('LLM.CREATE-LLM naming "$FOO_API_KEY" with a base_url of the client\'s choosing is refused, naming the setting; LLM.RUN sends nothing', async () => {
    const s = await boot({ redis: redis.url });
    const r = conn(s.port);
    const steal = JSON.stringify({ api_key: '$FOO_API_KEY', base_url: `http://127.0.0.1:${listenerPort}/v1` });
    expect(await errOf(r.call('LLM.CREATE-LLM', 'steal', '--PARAMS', steal))).toBe(
      `ERR api_key $FOO_API_KEY may be sent only to api.openai.com:443 (its provider's own host; an operator may allow others with llm-key-hosts FOO_API_KEY <host[:port],...>): not to base_url host '127.0.0.1:${listenerPort}'`,
    );
    expect(await r.exists('steal')).toBe(0);
    await r.call('LLM.CREATE-APP', 'stealapp', '--LLM', 'steal', '--PROMPT', 'hi').catch(() => undefined);
    expect(await errOf(r.call('LLM.RUN', 'stealapp'))).toMatch(/^ERR /);
    // Azure: the key of an endpoint the client names is refused the same way
    expect(
      await errOf(r.call('LLM.CREATE-LLM', 'az', '--TYPE', 'azure_openai', '--PARAMS', JSON.stringify({ api_key: '$FOO_API_KEY', endpoint: `http://127.0.0.1:${listenerPort}`, deployment_id: 'd', api_version: 'v' }))),
    ).toMatch(/^ERR api_key \$FOO_API_KEY may be sent only to \*\.openai\.azure\.com:443 .*llm-key-hosts FOO_API_KEY/);
    // a literal key typed in the command goes to the base_url given with it
    expect(await r.call('LLM.CREATE-LLM', 'mine', '--PARAMS', JSON.stringify({ api_key: 'sk-the-clients-own', base_url: `http://127.0.0.1:${listenerPort}/v1`, http: { max_retries: 0 } }))).toBe(1);
    await r.call('LLM.CREATE-APP', 'mineapp', '--LLM', 'mine', '--PROMPT', 'hi');
    await r.call('LLM.RUN', 'mineapp').catch(() => undefined);
    expect(received.map((x) => x.authorization)).toEqual(['Bearer sk-the-clients-own']);
    expect(JSON.stringify(received)).not.toContain(SERVER_KEY);
  });

  it('two servers in one process keep their own policies: the one that lists the host for FOO_API_KEY uses it, the other refuses the same stored LLM at call time', async () => {
    const wide = await boot({ redis: redis.url, llmKeyHosts: { FOO_API_KEY: [`127.0.0.1:${fake.port}`] } });
    const narrow = await boot({ redis: redis.url });
    const w = conn(wide.port);
    const n = conn(narrow.port);
    await w.call('LLM.CREATE-LLM', 'shared', '--PARAMS', JSON.stringify({ api_key: '$FOO_API_KEY', base_url: fake.url, http: { retry_backoff: '5ms' } }));
    await w.call('LLM.CREATE-APP', 'sharedapp', '--LLM', 'shared', '--PROMPT', 'hello');
    expect(await w.call('LLM.RUN', 'sharedapp')).toBe('echo: hello');
    const before = fake.calls();
    // the other instance follows the definition, and refuses to send the key
    let refusal = '';
    for (let i = 0; i < 100 && !refusal.includes('llm-key-hosts'); i++) {
      refusal = await errOf(n.call('LLM.RUN', 'sharedapp'));
      if (!refusal.includes('llm-key-hosts')) await new Promise((res) => setTimeout(res, 50));
    }
    expect(refusal).toMatch(/^ERR LLM 'shared': api_key \$FOO_API_KEY may be sent only to api\.openai\.com:443 .*llm-key-hosts FOO_API_KEY/);
    expect(fake.calls()).toBe(before);
    expect(await w.call('LLM.RUN', 'sharedapp')).toBe('echo: hello');
  });

  it('a literal key sealed before keys were bound to hosts goes only to its provider\'s own host; recreated, it is bound to its base_url', async () => {
    const SECRET = 'the secret of the legacy-key test 0123456789';
    let s = await boot({ redis: redis.url, secret: SECRET });
    let r = conn(s.port);
    await r.select(2);
    await r.call('LLM.CREATE-LLM', 'old', '--PARAMS', JSON.stringify({ api_key: SERVER_KEY, base_url: fake.url, http: { max_retries: 0 } }));
    await r.call('LLM.CREATE-APP', 'oldapp', '--LLM', 'old', '--PROMPT', 'hi');
    expect(await r.call('LLM.RUN', 'oldapp')).toBe('echo: hi');
    await s.stop();
    // as an earlier version sealed it: label 'api_key', bound to no host
    const direct = conn(redis.port);
    const record = JSON.parse((await direct.hget('__llm__:{catalog}:objects', '2:old'))!);
    record.config.params.api_key = { sealed: SecretBox.fromSecret(SECRET).seal(SERVER_KEY, 'api_key') };
    await direct.hset('__llm__:{catalog}:objects', '2:old', JSON.stringify(record));
    s = await boot({ redis: redis.url, secret: SECRET });
    r = conn(s.port);
    await r.select(2);
    const before = fake.calls();
    expect(await errOf(r.call('LLM.RUN', 'oldapp'))).toBe(
      `ERR LLM 'old': api_key of this LLM was sealed before keys were bound to their hosts: it may be sent only to api.openai.com:443, not to base_url host '127.0.0.1:${fake.port}' (recreate the LLM with its key)`,
    );
    expect(fake.calls()).toBe(before);
    await r.call('LLM.CREATE-LLM', 'old', '--PARAMS', JSON.stringify({ api_key: SERVER_KEY, base_url: fake.url, http: { max_retries: 0 } }));
    expect(await r.call('LLM.RUN', 'oldapp')).toBe('echo: hi');
  });

  it('llm-key-hosts from the command line and the environment; a malformed value stops the start', async () => {
    const child = await startChildServer(['--redis', redis.url, '--llm-key-hosts', `FOO_API_KEY=127.0.0.1:${fake.port}`], { FOO_API_KEY: SERVER_KEY });
    try {
      const c = conn(child.port);
      expect(await c.call('LLM.CREATE-LLM', 'cli', '--PARAMS', JSON.stringify({ api_key: '$FOO_API_KEY', base_url: fake.url }))).toBe(1);
    } finally {
      await child.stop();
    }
    const env = await startChildServer(['--redis', redis.url], { FOO_API_KEY: SERVER_KEY, REDIS_LLM_LLM_KEY_HOSTS: `OTHER_API_KEY=x.example;FOO_API_KEY=127.0.0.1:${fake.port}` });
    try {
      const c = conn(env.port);
      expect(await c.call('LLM.CREATE-LLM', 'env', '--PARAMS', JSON.stringify({ api_key: '$FOO_API_KEY', base_url: fake.url }))).toBe(1);
    } finally {
      await env.stop();
    }
    const out = await new Promise<string>((resolve) =>
      execFile(process.execPath, [path.resolve('dist/src/cli.js'), '--redis', redis.url, '--llm-key-hosts', 'FOO_API_KEY'], (_e, so, se) => resolve(so + se)),
    );
    expect(out).toContain('configuration error: --llm-key-hosts: \'FOO_API_KEY\' is not "NAME host[,host...]"');
  });
});

describe('configuration of the new settings', () => {
  it('llm-key-hosts and user directives add up; bad values are refused naming the line', () => {
    const dir = tmpDir('conf');
    const file = path.join(dir, 'a.conf');
    writeFileSync(
      file,
      'llm-key-hosts OPENAI_API_KEY api.openai.com,llm.internal:8000\nllm-key-hosts OPENAI_API_KEY https://gw.example/v1\nllm-key-hosts=X_API_KEY [::1]:11434\n' +
        'user alice on >a ~tenant1:* +@all\nuser bob on >b ~tenant2:* +@all\nprotected-mode no\ntls-auth-clients optional\ntls-protocols TLSv1.2 TLSv1.3\n',
    );
    expect(() => readConfigFile(file)).toThrow(/unknown directive 'llm-key-hosts=X_API_KEY'/);
    writeFileSync(file, readFileSync(file, 'utf8').replace('llm-key-hosts=X_API_KEY', 'llm-key-hosts X_API_KEY'));
    expect(readConfigFile(file)).toEqual({
      llmKeyHosts: { OPENAI_API_KEY: ['api.openai.com', 'llm.internal:8000', 'https://gw.example/v1'], X_API_KEY: ['[::1]:11434'] },
      user: ['alice on >a ~tenant1:* +@all', 'bob on >b ~tenant2:* +@all'],
      protectedMode: false,
      tlsAuthClients: 'optional',
      tlsProtocols: ['TLSv1.2', 'TLSv1.3'],
    });
    writeFileSync(file, 'tls-auth-clients maybe\n');
    expect(() => readConfigFile(file)).toThrow(`${file}:1: tls-auth-clients: 'maybe' is not yes, no or optional`);
    writeFileSync(file, 'llm-key-hosts OPENAI_API_KEY bad/host/x\n');
    expect(() => readConfigFile(file)).toThrow("llm-key-hosts: 'bad/host/x' is not a host[:port] (or an http(s) URL)");
    expect(() => resolveConfig({ requirepass: 'a', requirepassFile: file })).toThrow('requirepass and requirepass-file are both set: give one');
    expect(() => resolveConfig({ requirepassFile: path.join(dir, 'none') })).toThrow(`requirepass-file: cannot read ${path.join(dir, 'none')}: ENOENT`);
  });
});

describe('passwords in every mode', () => {
  it('managed mode with requirepass: NOAUTH before AUTH (LLM.* too), AUTH / HELLO AUTH as against Redis, with redis-cli and ioredis', async () => {
    const s = await boot({ managedRedis: true, dir: tmpDir('managed-pass'), requirepass: 'let me in' });
    expect(s.mode).toBe('managed');
    const anon = conn(s.port, { enableReadyCheck: false });
    expect(await errOf(anon.set('a', 'b'))).toBe('NOAUTH Authentication required.');
    expect(await errOf(anon.call('LLM.CREATE-LLM', 'x', '--TYPE', 'local'))).toBe('NOAUTH Authentication required.');
    expect(await errOf(anon.call('AUTH', 'wrong'))).toBe('WRONGPASS invalid username-password pair or user is disabled.');
    expect(await anon.call('AUTH', 'let me in')).toBe('OK');
    expect(await anon.set('a', 'b')).toBe('OK');
    expect(await anon.call('LLM.CREATE-LLM', 'x', '--TYPE', 'local')).toBe(1);

    const io = conn(s.port, { password: 'let me in' });
    expect(await io.get('a')).toBe('b');
    const hello = (await conn(s.port, { enableReadyCheck: false }).call('HELLO', '2', 'AUTH', 'default', 'let me in')) as unknown[];
    expect(hello).toContain('proto');
    expect(await rawFrom(s.port, '127.0.0.1', '*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$9\r\nlet me in\r\n*1\r\n$4\r\nPING\r\n').then((x) => x.text)).toMatch(/^%.*\+PONG\r\n$/s);

    expect(await redisCli(['-p', String(s.port), 'SET', 'c', 'd'])).toContain('NOAUTH');
    expect(await redisCli(['-p', String(s.port), 'LLM.SIZE', 'x'])).toContain('NOAUTH');
    expect(await redisCli(['-p', String(s.port), '-a', 'let me in', '--no-auth-warning', 'GET', 'a'])).toBe('b');
    expect(await redisCli(['-p', String(s.port), '--user', 'default', '--pass', 'let me in', '--no-auth-warning', 'TYPE', 'x'])).toBe('LLMMOD-SW');
    // the password never reaches redis-server's command line
    const pid = s.managed!.pid!;
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain('let me in');
  });

  it('managed mode: ACL users from user directives and an aclfile', async () => {
    const dir = tmpDir('managed-acl');
    const aclfile = path.join(dir, 'users.acl');
    writeFileSync(aclfile, '# tenants\nuser bob on >bobpw ~tenant2:* +@all\n');
    const s = await boot({ managedRedis: true, dir, user: ['alice on >alicepw ~tenant1:* +@all'], aclfile });
    const a = conn(s.port, { username: 'alice', password: 'alicepw' });
    expect(await a.set('tenant1:x', '1')).toBe('OK');
    expect(await errOf(a.set('tenant2:x', '1'))).toMatch(/^NOPERM/);
    const b = conn(s.port, { username: 'bob', password: 'bobpw' });
    expect(await b.set('tenant2:x', '1')).toBe('OK');
    // LLM.* follow the users' key patterns too
    expect(await a.call('LLM.CREATE-LLM', 'tenant1:llm', '--TYPE', 'local')).toBe(1);
    expect(await errOf(a.call('LLM.CREATE-LLM', 'tenant2:llm', '--TYPE', 'local'))).toMatch(/^NOPERM /);
    expect(await errOf(b.call('LLM.INFO', 'tenant1:llm'))).toMatch(/^NOPERM /);
    expect(await errOf(conn(s.port).call('AUTH', 'alice', 'nope'))).toMatch(/^WRONGPASS/);
    // the default user has no password here (as in Redis): the loopback client needs none
    expect(await conn(s.port).ping()).toBe('PONG');
  });

  it('a setting that cannot apply in the chosen mode stops the start, naming why', async () => {
    const redis = await startRedis();
    try {
      await expect(startServer({ redis: redis.url, requirepass: 'x' })).rejects.toThrow(
        "requirepass cannot apply with --redis: the backing Redis's own AUTH and ACL users apply (set them on that Redis, and give the server's user and password in the --redis URL)",
      );
      await expect(startServer({ redis: redis.url, user: ['a on >b'] })).rejects.toThrow(/^user cannot apply with --redis/);
    } finally {
      await redis.stop();
    }
    await expect(startServer({ managedRedis: false, dir: tmpDir('sa'), user: ['a on >b'] })).rejects.toThrow(/^user needs a redis-server/);
  });

  it('requirepass-file (Docker secrets) and REDIS_LLM_REQUIREPASS', async () => {
    const dir = tmpDir('passfile');
    const file = path.join(dir, 'pass');
    writeFileSync(file, 'from-a-file\n');
    const child = await startChildServer(['--managed-redis', 'no', '--dir', dir], { REDIS_LLM_REQUIREPASS_FILE: file });
    try {
      const c = conn(child.port, { enableReadyCheck: false });
      expect(await errOf(c.ping())).toBe('NOAUTH Authentication required.');
      expect(await c.call('AUTH', 'from-a-file')).toBe('OK');
    } finally {
      await child.stop();
    }
    const child2 = await startChildServer(['--managed-redis', 'no', '--dir', dir], { REDIS_LLM_REQUIREPASS: 'from-env' });
    try {
      const c = conn(child2.port, { enableReadyCheck: false });
      expect(await errOf(c.ping())).toBe('NOAUTH Authentication required.');
      expect(await c.call('AUTH', 'from-env')).toBe('OK');
    } finally {
      await child2.stop();
    }
  });
});

describe('protected mode', () => {
  it('without a password, a client from 127.0.0.2 gets -DENIED and is closed; 127.0.0.1 is served; with a password or protected-mode no, 127.0.0.2 is served', async () => {
    const open = await boot({ managedRedis: false, dir: tmpDir('prot') });
    const denied = await rawFrom(open.port, '127.0.0.2', '*1\r\n$4\r\nPING\r\n');
    expect(denied.text).toMatch(/^-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user\. In this mode connections are only accepted from the loopback interface\./);
    expect(denied.text).toContain('REDIS_LLM_REQUIREPASS');
    expect(denied.closed).toBe(true);
    expect((await rawFrom(open.port, '127.0.0.1', '*1\r\n$4\r\nPING\r\n')).text).toBe('+PONG\r\n');

    const withPass = await boot({ managedRedis: false, dir: tmpDir('prot-pass'), requirepass: 'pw' });
    const answered = await rawFrom(withPass.port, '127.0.0.2', '*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n');
    expect(answered.text).toBe('+OK\r\n+PONG\r\n');

    const off = await boot({ managedRedis: false, dir: tmpDir('prot-off'), protectedMode: false });
    expect((await rawFrom(off.port, '127.0.0.2', '*1\r\n$4\r\nPING\r\n')).text).toBe('+PONG\r\n');
  });

  it('managed mode without a password is protected too; with requirepass a client of another address may AUTH', async () => {
    const s = await boot({ managedRedis: true, dir: tmpDir('prot-managed') });
    expect((await rawFrom(s.port, '127.0.0.2', '*1\r\n$4\r\nPING\r\n')).text).toMatch(/^-DENIED /);
    const p = await boot({ managedRedis: true, dir: tmpDir('prot-managed-pass'), requirepass: 'pw' });
    expect((await rawFrom(p.port, '127.0.0.2', '*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n')).text).toBe(
      '-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n',
    );
  });

  it('the startup log says loudly when protected mode is what keeps clients out', async () => {
    const child = await startChildServer(['--managed-redis', 'no', '--dir', tmpDir('prot-log'), '--bind', '0.0.0.0'], {}, { logLevel: 'info' });
    try {
      for (let i = 0; i < 100 && !child.output().includes('PROTECTED MODE'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(child.output()).toContain('PROTECTED MODE: no password is set, so clients from addresses other than 127.0.0.1 and ::1 are refused');
    } finally {
      await child.stop();
    }
  });
});

describe('TLS', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rls-tls-certs-'));
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  /** A certificate for `cn` signed by `ca` (with SAN IP:127.0.0.1 for the server). */
  const issue = (name: string, ca: string, cn: string, server: boolean) => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    writeFileSync(f(`${name}.ext`), server ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}.crt`), '-CAkey', f(`${ca}.key`), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`));
  };
  const read = (n: string) => readFileSync(f(n));
  let redis: RedisServerHandle;

  beforeAll(async () => {
    for (const ca of ['ca', 'rogue']) ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${ca}.key`), '-out', f(`${ca}.crt`), '-days', '2', '-subj', `/CN=${ca} test CA`);
    issue('server', 'ca', 'redis-llm-server', true);
    issue('client', 'ca', 'a client', false);
    issue('intruder', 'rogue', 'an intruder', false);
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const tlsConfig = async (extra: Record<string, unknown> = {}) => ({
    redis: redis.url,
    tlsPort: await freePort(),
    tlsCertFile: f('server.crt'),
    tlsKeyFile: f('server.key'),
    tlsCaCertFile: f('ca.crt'),
    ...extra,
  });

  /** A raw TLS exchange: what the server answers to PING, or the error that ended the connection. */
  function tlsPing(port: number, opts: tls.ConnectionOptions): Promise<string> {
    return new Promise((resolve) => {
      const sock = tls.connect({ host: '127.0.0.1', port, ca: read('ca.crt'), ...opts });
      let text = '';
      const done = (v: string) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(v);
      };
      const timer = setTimeout(() => done(text || 'timeout'), 3000);
      sock.on('secureConnect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
      sock.on('data', (d) => {
        text += d.toString();
        if (text.endsWith('\r\n')) done(text);
      });
      sock.on('error', (e) => done(`error: ${e.message}`));
      sock.on('close', () => done(text || 'closed'));
    });
  }

  it('mutual TLS (tls-auth-clients yes): ioredis and redis-cli with a client certificate; none or a foreign one is refused; the plain port works at the same time', async () => {
    const s = await boot(await tlsConfig());
    const port = s.tlsPort;
    expect(port).toBeGreaterThan(0);
    const secure = conn(port, { tls: { ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key') } });
    expect(await secure.set('tls:a', 'over tls')).toBe('OK');
    expect(await secure.call('LLM.CREATE-LLM', 'tls:llm', '--TYPE', 'local')).toBe(1);
    expect(await conn(s.port).get('tls:a')).toBe('over tls'); // the plain port
    expect(await redisCli(['--tls', '--cacert', f('ca.crt'), '--cert', f('client.crt'), '--key', f('client.key'), '-h', '127.0.0.1', '-p', String(port), 'GET', 'tls:a'])).toBe('over tls');
    expect(await redisCli(['--tls', '--cacert', f('ca.crt'), '--cert', f('client.crt'), '--key', f('client.key'), '-h', '127.0.0.1', '-p', String(port), 'TYPE', 'tls:llm'])).toBe('LLMMOD-SW');
    expect(await tlsPing(port, {})).not.toContain('PONG');
    expect(await tlsPing(port, { cert: read('intruder.crt'), key: read('intruder.key') })).not.toContain('PONG');
    expect(await tlsPing(port, { cert: read('client.crt'), key: read('client.key') })).toBe('+PONG\r\n');
    // a plain-text client on the TLS port gets nothing
    expect((await rawFrom(port, '127.0.0.1', '*1\r\n$4\r\nPING\r\n')).text).not.toContain('PONG');
  });

  it('tls-auth-clients optional and no; tls-protocols; certificates reloaded (SIGHUP) for new connections', async () => {
    const opt = await boot(await tlsConfig({ tlsAuthClients: 'optional' }));
    expect(await tlsPing(opt.tlsPort, {})).toBe('+PONG\r\n');
    expect(await tlsPing(opt.tlsPort, { cert: read('client.crt'), key: read('client.key') })).toBe('+PONG\r\n');
    expect(await tlsPing(opt.tlsPort, { cert: read('intruder.crt'), key: read('intruder.key') })).not.toContain('PONG');

    const no = await boot(await tlsConfig({ tlsAuthClients: 'no', tlsCaCertFile: null, tlsProtocols: ['TLSv1.3'] }));
    expect(await tlsPing(no.tlsPort, {})).toBe('+PONG\r\n');
    expect(await tlsPing(no.tlsPort, { maxVersion: 'TLSv1.2' })).toMatch(/^error: /);

    // a new certificate in the same files: served to new connections after the reload
    const fingerprint = () =>
      new Promise<string>((resolve) => {
        const sock = tls.connect({ host: '127.0.0.1', port: no.tlsPort, ca: read('ca.crt') }, () => {
          resolve(sock.getPeerCertificate().fingerprint256);
          sock.destroy();
        });
        sock.on('error', () => resolve('error'));
      });
    const before = await fingerprint();
    issue('server', 'ca', 'redis-llm-server renewed', true);
    expect(await fingerprint()).toBe(before);
    no.reloadTls();
    const after = await fingerprint();
    expect(after).not.toBe(before);
    expect(after).not.toBe('error');
    expect(await tlsPing(no.tlsPort, {})).toBe('+PONG\r\n');
  });

  it('the CLI reloads the certificate files on SIGHUP', async () => {
    const certDir = mkdtempSync(path.join(dir, 'hup-'));
    const copy = (from: string, to: string) => writeFileSync(path.join(certDir, to), read(from));
    copy('server.crt', 'server.crt');
    copy('server.key', 'server.key');
    const tlsPort = await freePort();
    const child = await startChildServer(
      ['--redis', redis.url, '--tls-port', String(tlsPort), '--tls-cert-file', path.join(certDir, 'server.crt'), '--tls-key-file', path.join(certDir, 'server.key'), '--tls-auth-clients', 'no'],
      {},
      { logLevel: 'info' },
    );
    try {
      const fingerprint = () =>
        new Promise<string>((resolve) => {
          const sock = tls.connect({ host: '127.0.0.1', port: tlsPort, ca: read('ca.crt') }, () => {
            resolve(sock.getPeerCertificate().fingerprint256);
            sock.destroy();
          });
          sock.on('error', (e) => resolve(`error: ${e.message}`));
        });
      await waitForPort(tlsPort); // the TLS listener opens after the plain one
      const before = await fingerprint();
      expect(before).not.toMatch(/^error/);
      issue('hup', 'ca', 'redis-llm-server after SIGHUP', true);
      copy('hup.crt', 'server.crt');
      copy('hup.key', 'server.key');
      child.proc.kill('SIGHUP');
      for (let i = 0; i < 100 && !child.output().includes('TLS certificates reloaded'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(child.output()).toContain('TLS certificates reloaded');
      const after = await fingerprint();
      expect(after).not.toBe(before);
      expect(after).not.toMatch(/^error/);
      expect(child.proc.exitCode).toBeNull();
    } finally {
      await child.stop();
    }
  });

  it('bad TLS settings stop the start, naming what is wrong', async () => {
    await expect(startServer(await tlsConfig({ tlsCertFile: null }))).rejects.toThrow('tls-port needs tls-cert-file and tls-key-file');
    await expect(startServer(await tlsConfig({ tlsPort: 0 }))).rejects.toThrow('tls-cert-file, tls-key-file, tls-ca-cert-file set without tls-port: no listener would use them (set tls-port)');
    await expect(startServer(await tlsConfig({ tlsCaCertFile: null }))).rejects.toThrow('tls-auth-clients yes needs tls-ca-cert-file (or set tls-auth-clients no)');
    await expect(startServer(await tlsConfig({ tlsKeyFile: f('missing.key') }))).rejects.toThrow(`tls-key-file: cannot read ${f('missing.key')}: ENOENT`);
    await expect(startServer(await tlsConfig({ tlsProtocols: ['SSLv3'] }))).rejects.toThrow("tls-protocols: 'SSLv3' is not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3");
    await expect(startServer(await tlsConfig({ tlsKeyFile: f('client.key') }))).rejects.toThrow(/^TLS: the certificate or key cannot be used/);
  });

  it('TLS to the backing Redis (rediss://), the server started by its CLI', async () => {
    const tlsRedisPort = await freePort();
    const backing = await startRedis({
      args: ['--tls-port', String(tlsRedisPort), '--tls-cert-file', f('server.crt'), '--tls-key-file', f('server.key'), '--tls-ca-cert-file', f('ca.crt'), '--tls-auth-clients', 'no'],
    });
    try {
      const child = await startChildServer(['--redis', `rediss://127.0.0.1:${tlsRedisPort}`], { NODE_EXTRA_CA_CERTS: f('ca.crt') });
      try {
        const c = conn(child.port);
        expect(await c.set('over', 'rediss')).toBe('OK');
        expect(await c.call('LLM.CREATE-LLM', 'r:llm', '--TYPE', 'local')).toBe(1);
        const direct = conn(backing.port);
        expect(await direct.get('over')).toBe('rediss');
        const clients = String(await direct.call('CLIENT', 'LIST'));
        expect(clients.split('\n').filter((l) => l.includes(`laddr=127.0.0.1:${tlsRedisPort}`)).length).toBeGreaterThan(0);
      } finally {
        await child.stop();
      }
    } finally {
      await backing.stop();
    }
  });
});

describe('ACL key permissions for LLM.*', () => {
  let redis: RedisServerHandle;
  beforeAll(async () => {
    redis = await startRedis({
      args: ['--user', 'alice', 'on', '>alicepw', '~tenant1:*', '+@all', '--user', 'carol', 'on', '>carolpw', '%R~tenant1:*', '+@all'],
    });
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('a user limited to ~tenant1:* runs LLM.* on tenant1 keys only; -NOPERM otherwise, nothing changed; a read-only pattern allows reads only', async () => {
    const s = await boot({ redis: redis.url });
    const admin = conn(s.port);
    for (const t of ['tenant1', 'tenant2']) {
      await admin.call('LLM.CREATE-LLM', `${t}:emb`, '--TYPE', 'local', '--PARAMS', '{"dim":16}');
      await admin.call('LLM.CREATE-VECTOR-STORE', `${t}:docs`, '--LLM', `${t}:emb`);
      await admin.call('LLM.ADD', `${t}:docs`, `a document of ${t}`);
    }
    const alice = conn(s.port, { username: 'alice', password: 'alicepw' });
    const NOPERM = 'NOPERM this user has no permissions to access one of the keys used as arguments';
    expect(await errOf(alice.call('LLM.KNN', 'tenant2:docs', 'document'))).toBe(NOPERM);
    expect(await errOf(alice.call('LLM.SIZE', 'tenant2:docs'))).toBe(NOPERM);
    expect(await errOf(alice.call('LLM.ADD', 'tenant2:docs', 'injected'))).toBe(NOPERM);
    expect(await errOf(alice.call('LLM.CREATE-LLM', 'tenant2:mine', '--TYPE', 'local'))).toBe(NOPERM);
    expect(await errOf(alice.call('LLM.INFO', 'tenant2:emb'))).toBe(NOPERM);
    expect(await admin.call('LLM.SIZE', 'tenant2:docs')).toBe(1);
    expect(await admin.exists('tenant2:mine')).toBe(0);
    // its own tenant works, pipelined ADDs included
    const knn = (await alice.call('LLM.KNN', 'tenant1:docs', 'document')) as unknown[];
    expect(knn.length).toBeGreaterThan(0);
    const p = alice.pipeline();
    for (let i = 0; i < 5; i++) p.call('LLM.ADD', 'tenant1:docs', `more ${i}`);
    p.call('LLM.ADD', 'tenant2:docs', 'sneaked into a pipeline');
    const res = (await p.exec())!;
    expect(res.slice(0, 5).every(([e]) => e === null)).toBe(true);
    expect(res[5]![0]!.message).toBe(NOPERM);
    expect(await admin.call('LLM.SIZE', 'tenant2:docs')).toBe(1);

    // ordinary commands on LLM objects follow the same patterns
    for (const cmd of [['DEL', 'tenant2:docs'], ['UNLINK', 'tenant2:docs'], ['RENAME', 'tenant2:docs', 'tenant1:stolen'], ['TYPE', 'tenant2:docs'], ['EXISTS', 'tenant2:docs'], ['RENAME', 'tenant1:docs', 'tenant2:docs2']]) {
      expect(await errOf(alice.call(cmd[0]!, ...cmd.slice(1))), cmd.join(' ')).toMatch(/^NOPERM/);
    }
    expect(await admin.call('LLM.SIZE', 'tenant2:docs')).toBe(1);
    expect(await admin.exists('tenant1:stolen', 'tenant2:docs2')).toBe(0);
    const carol = conn(s.port, { username: 'carol', password: 'carolpw' });
    expect(((await carol.call('LLM.KNN', 'tenant1:docs', 'document')) as unknown[]).length).toBeGreaterThan(0);
    expect(await errOf(carol.call('LLM.ADD', 'tenant1:docs', 'a write'))).toBe(NOPERM);
    // HELLO AUTH names the user too
    const viaHello = conn(s.port, { enableReadyCheck: false });
    await viaHello.call('HELLO', '2', 'AUTH', 'alice', 'alicepw');
    expect(await errOf(viaHello.call('LLM.KNN', 'tenant2:docs', 'document'))).toBe(NOPERM);
  });

  it('keys named inside an object are checked when it runs: a store\'s LLM, an app\'s LLM and store, the --STREAM key', async () => {
    const s = await boot({ redis: redis.url });
    const admin = conn(s.port);
    await admin.call('LLM.CREATE-LLM', 'shared:emb', '--TYPE', 'local', '--PARAMS', '{"dim":16}');
    await admin.call('LLM.CREATE-VECTOR-STORE', 'tenant1:borrowed', '--LLM', 'shared:emb');
    await admin.call('LLM.CREATE-APP', 'tenant1:app', '--LLM', 'shared:emb', '--PROMPT', 'hi');
    await admin.call('LLM.CREATE-LLM', 'tenant1:emb2', '--TYPE', 'local', '--PARAMS', '{"dim":16}');
    await admin.call('LLM.CREATE-APP', 'tenant1:own', '--LLM', 'tenant1:emb2', '--PROMPT', 'hi');
    const alice = conn(s.port, { username: 'alice', password: 'alicepw' });
    const NOPERM = 'NOPERM this user has no permissions to access one of the keys used as arguments';
    expect(await errOf(alice.call('LLM.ADD', 'tenant1:borrowed', 'text'))).toBe(NOPERM);
    expect(await errOf(alice.call('LLM.KNN', 'tenant1:borrowed', 'text'))).toBe(NOPERM);
    expect(await errOf(alice.call('LLM.RUN', 'tenant1:app'))).toBe(NOPERM);
    // its own app gets as far as the LLM (the local embedder cannot chat), and not to another tenant's stream
    expect(await errOf(alice.call('LLM.RUN', 'tenant1:own'))).not.toMatch(/^NOPERM/);
    expect(await errOf(alice.call('LLM.RUN', 'tenant1:own', '--STREAM', 'tenant2:out'))).toBe(NOPERM);
    expect(await admin.exists('tenant2:out')).toBe(0);

    // an ACL change made through this server applies at once (the cached answers are dropped)
    expect(await admin.call('ACL', 'SETUSER', 'alice', '~shared:*')).toBe('OK');
    expect(await alice.call('LLM.ADD', 'tenant1:borrowed', 'text')).toBeTruthy();
    expect(await admin.call('ACL', 'SETUSER', 'alice', 'resetkeys', '~tenant1:*')).toBe('OK');
    expect(await errOf(alice.call('LLM.ADD', 'tenant1:borrowed', 'text'))).toBe(NOPERM);
    // a change made on the backing Redis directly is seen once the cached answers expire (2 s)
    const direct = conn(redis.port);
    await direct.call('ACL', 'SETUSER', 'alice', '~shared:*');
    await new Promise((r) => setTimeout(r, 2100));
    expect(await alice.call('LLM.ADD', 'tenant1:borrowed', 'text')).toBeTruthy();
    await direct.call('ACL', 'SETUSER', 'alice', 'resetkeys', '~tenant1:*');
  });
});
