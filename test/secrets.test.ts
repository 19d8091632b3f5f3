/**
 * Secrets at rest: literal API keys and proxy credentials are stored sealed with the server secret
 * (src/util/secret.ts). Read straight from the backing Redis (catalog hash, catalog events, logs,
 * snapshots) and from a standalone --dir, they are nowhere; restarts with the same secret call the
 * provider with the right key (the fake checks the Authorization header); a different secret gives
 * a clear error for that LLM only; the generated secret file is private and reused; a secret-file
 * that cannot be used stops startup; instances sharing a secret follow each other's LLMs.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { CLI, ROOT, client, startChildServer, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import type { LlmServer } from '../src/server/server.js';
import type { Config } from '../src/config/config.js';
import { SecretBox } from '../src/util/secret.js';
import { errOf, leaks } from '../harness/replies.js';

const KEY = 'sk-literal-SEALED-0123456789abcdef';
const PROXY_PASS = 'proxyPASS-9f8e7d6c5b4a';
const SECRET_A = 'secret A of the sealed-keys suite: 0123456789';
const SECRET_B = 'secret B, another one entirely: 9876543210';
const OTHER_SECRET_ERROR =
  "ERR api_key of LLM 'gpt' was sealed with a different server secret (set the same secret-file / REDIS_LLM_SECRET as the instance that created it, or recreate the LLM)";

const root = mkdtempSync(path.join(os.tmpdir(), 'rls-secrets-'));
let redis: RedisServerHandle;
let direct: Redis;
let fake: FakeOpenAI;
const servers: LlmServer[] = [];
const conns: Redis[] = [];

async function boot(cfg: Partial<Config>): Promise<{ server: LlmServer; r: Redis }> {
  const server = await startServer(cfg);
  servers.push(server);
  await server.loadingDone;
  const r = client(server.port);
  conns.push(r);
  return { server, r };
}

async function shut(server: LlmServer): Promise<void> {
  await server.stop();
  servers.splice(servers.indexOf(server), 1);
}

/** Everything the server stored in the backing Redis, as text (binary values as latin1). */
async function storageText(): Promise<{ text: string; types: Set<string> }> {
  const parts: string[] = [];
  const types = new Set<string>();
  for (const k of await direct.keys('__llm__:*')) {
    const type = await direct.type(k);
    types.add(type);
    if (type === 'hash') parts.push(...Object.values(await direct.hgetallBuffer(k)).map((b) => b.toString('latin1')));
    else if (type === 'stream') parts.push(...(await direct.xrangeBuffer(k, '-', '+')).flat(2).map((b) => b.toString('latin1')));
    else if (type === 'string') parts.push((await direct.getBuffer(k))!.toString('latin1'));
    else throw new Error(`storage key ${k} of unexpected type ${type}`);
  }
  return { text: parts.join('\n'), types };
}

/** Every file under `dir`, as text (latin1). */
function filesText(dir: string): string {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(readFileSync(path.join(e.parentPath, e.name)).toString('latin1'));
  }
  return out.join('\n');
}

async function eventually(check: () => Promise<void>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const authOfLast = () => fake.requests.at(-1)?.headers.authorization;

async function createObjects(r: Redis): Promise<void> {
  await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: KEY, base_url: fake.url, http: { retry_backoff: '5ms' } }));
  await r.call('LLM.CREATE-APP', 'app', '--LLM', 'gpt', '--PROMPT', 'Say hi to {{name}}');
  await r.call('LLM.CREATE-VECTOR-STORE', 'kb', '--LLM', 'gpt');
  for (const t of ['Redis keeps data in memory', 'Postgres is on disk', 'Cats sleep a lot']) await r.call('LLM.ADD', 'kb', t);
  await r.call('LLM.CREATE-LLM', 'emb', '--TYPE', 'local', '--PARAMS', '{"dim":16}');
  await r.call('LLM.CREATE-VECTOR-STORE', 'local-kb', '--LLM', 'emb');
  await r.call('LLM.ADD', 'local-kb', 'offline text');
}

beforeAll(async () => {
  redis = await startRedis();
  direct = client(redis.port);
  fake = await startFakeOpenAI({ dim: 16, apiKey: KEY });
});

afterAll(async () => {
  for (const c of [direct, ...conns]) c.disconnect();
  for (const s of [...servers]) await s.stop();
  await fake?.close();
  await redis?.stop();
  rmSync(root, { recursive: true, force: true });
});

beforeEach(async () => {
  fake.reset();
  for (const s of [...servers]) await shut(s);
  await direct.flushall();
});

describe('with a backing Redis', () => {
  it('nothing the server stores holds a literal key or proxy password: catalog hash, catalog events, logs, snapshots', async () => {
    const { r } = await boot({ redis: redis.url, secret: SECRET_A, snapshotOptions: { snapshotChanges: 2, snapshotIntervalMs: 50 } });
    await createObjects(r);
    await r.call('LLM.CREATE-LLM', 'viaproxy', '--PARAMS', JSON.stringify({ api_key: KEY, http: { proxy_host: `http://user:${PROXY_PASS}@127.0.0.1:9` } }));
    await r.call('LLM.CREATE-LLM', 'byenv', '--PARAMS', '{"api_key":"$SEALED_TEST_API_KEY"}');
    await r.call('LLM.CREATE-CHAT', 'bot', '--LLM', 'gpt', '--VECTOR-STORE', 'kb');
    expect(await r.call('LLM.RUN', 'bot', '--SESSION', 's1', 'hello there')).toBe('echo: hello there');
    expect(authOfLast()).toBe(`Bearer ${KEY}`);
    // Wait for a store snapshot, so every kind of storage key is there to be read.
    await eventually(async () => expect((await direct.keys('__llm__:*:snap:*')).length).toBeGreaterThan(0), 5000);
    const { text, types } = await storageText();
    expect([...types].sort()).toEqual(['hash', 'stream', 'string']);
    expect(leaks(text, KEY)).toBe(false);
    expect(leaks(text, PROXY_PASS)).toBe(false);
    expect(text).toContain('hello there'); // the chat log is in what was read
    // The catalog record and the event a follower reads carry the sealed form; "$NAME" stays readable.
    const keyId = SecretBox.fromSecret(SECRET_A).keyId;
    const record = JSON.parse((await direct.hget('__llm__:{catalog}:objects', '0:viaproxy'))!);
    expect(record.config.params.api_key.sealed).toMatch(new RegExp(`^v1:${keyId}:[A-Za-z0-9+/]+=*$`));
    expect(record.config.params.http.proxy_host.sealed).toMatch(new RegExp(`^v1:${keyId}:`));
    expect(JSON.parse((await direct.hget('__llm__:{catalog}:objects', '0:byenv'))!).config.params.api_key).toBe('$SEALED_TEST_API_KEY');
    const field = (f: string[], k: string) => f[f.indexOf(k) + 1];
    const puts = (await direct.xrange('__llm__:{catalog}:events', '-', '+')).map(([, f]) => f).filter((f) => field(f, 'op') === 'put');
    for (const name of ['gpt', 'viaproxy']) {
      const rec = JSON.parse(field(puts.find((f) => field(f, 'name') === name)!, 'rec')!);
      expect(rec.config.params.api_key.sealed, name).toMatch(new RegExp(`^v1:${keyId}:`));
    }
    // LLM.INFO still redacts.
    const info = JSON.stringify(await r.call('LLM.INFO', 'viaproxy'));
    expect(info).toContain('[redacted]');
    expect(leaks(info, KEY) || leaks(info, PROXY_PASS)).toBe(false);
  });

  it('restart with the same secret: the LLM calls the provider with the right key', async () => {
    let { server, r } = await boot({ redis: redis.url, secret: SECRET_A });
    await createObjects(r);
    await shut(server);
    fake.reset();
    ({ server, r } = await boot({ redis: redis.url, secret: SECRET_A }));
    expect(await r.call('LLM.RUN', 'app', '--VARS', '{"name":"Ann"}')).toBe('echo: Say hi to Ann');
    expect(authOfLast()).toBe(`Bearer ${KEY}`);
    const hits = (await r.call('LLM.KNN', 'kb', '--K', '1', 'where is data kept in memory')) as unknown[][];
    expect(hits).toHaveLength(1);
    expect(fake.calls('/embeddings')).toBe(1);
  });

  it('restart with a different secret: that LLM loads, its calls fail clearly and send nothing; everything else works', async () => {
    let { server, r } = await boot({ redis: redis.url, secret: SECRET_A });
    await createObjects(r);
    const stored = await direct.hget('__llm__:{catalog}:objects', '0:gpt');
    await shut(server);
    fake.reset();
    ({ server, r } = await boot({ redis: redis.url, secret: SECRET_B }));
    expect(await r.type('gpt')).toBe('LLMMOD-SW');
    expect(await errOf(r.call('LLM.RUN', 'app', '--VARS', '{"name":"Ann"}'))).toBe(OTHER_SECRET_ERROR);
    expect(await errOf(r.call('LLM.ADD', 'kb', 'more text'))).toBe(OTHER_SECRET_ERROR);
    expect(await errOf(r.call('LLM.KNN', 'kb', '--K', '1', 'memory'))).toBe(OTHER_SECRET_ERROR);
    expect(fake.requests).toHaveLength(0);
    // The error follows RENAME (it names the key the client knows).
    expect(await r.rename('gpt', 'gpt2')).toBe('OK');
    expect(await r.call('LLM.CREATE-APP', 'app2', '--LLM', 'gpt2', '--PROMPT', 'x')).toBe(1);
    expect(await errOf(r.call('LLM.RUN', 'app2'))).toBe(OTHER_SECRET_ERROR.replace("'gpt'", "'gpt2'"));
    expect(await r.rename('gpt2', 'gpt')).toBe('OK');
    const info = (await r.call('LLM.INFO', 'gpt')) as string[];
    expect(JSON.parse(info[info.indexOf('config') + 1]!)).toMatchObject({ params: { api_key: '[redacted]', base_url: fake.url } });
    // Everything else: the store's items, KNN by vector, the local LLM, ordinary keys.
    expect(await r.call('LLM.SIZE', 'kb')).toBe(3);
    expect(await r.call('LLM.KNN', 'local-kb', '--K', '1', 'offline')).toHaveLength(1);
    expect(await r.call('LLM.ADD', 'local-kb', 'more offline text')).toBe(2);
    expect(await r.set('plain', 'v')).toBe('OK');
    // The record was not touched: the instance with the right secret still uses it.
    expect(await direct.hget('__llm__:{catalog}:objects', '0:gpt')).toBe(stored);
    await shut(server);
    ({ r } = await boot({ redis: redis.url, secret: SECRET_A }));
    expect(await r.call('LLM.RUN', 'app', '--VARS', '{"name":"Bo"}')).toBe('echo: Say hi to Bo');
    expect(authOfLast()).toBe(`Bearer ${KEY}`);
  });

  it('FLUSHDB rewrites the other dbs\' definitions: a plaintext one (earlier version) is sealed, one sealed with another secret is kept as stored', async () => {
    // An LLM sealed by secret A, in db 1.
    let { server, r } = await boot({ redis: redis.url, secret: SECRET_A });
    await r.select(1);
    await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: KEY, base_url: fake.url }));
    await shut(server);
    // A definition as an earlier version stored it: the literal key in plaintext.
    const legacy = { id: 'legacy0000000001', kind: 'llm', config: { type: 'openai', params: { api_key: KEY, base_url: fake.url } }, createdAt: Date.now() };
    await direct.hset('__llm__:{catalog}:objects', '1:old', JSON.stringify(legacy));
    const sealedByA = JSON.parse((await direct.hget('__llm__:{catalog}:objects', '1:gpt'))!);
    // Instance with secret B: the plaintext one works, the A one is locked.
    ({ server, r } = await boot({ redis: redis.url, secret: SECRET_B }));
    await r.select(1);
    expect(await r.call('LLM.CREATE-APP', 'oldapp', '--LLM', 'old', '--PROMPT', 'legacy')).toBe(1);
    expect(await r.call('LLM.RUN', 'oldapp')).toBe('echo: legacy');
    expect(authOfLast()).toBe(`Bearer ${KEY}`);
    await r.select(0);
    expect(await r.flushdb()).toBe('OK');
    const after = JSON.parse((await direct.hget('__llm__:{catalog}:objects', '1:old'))!);
    expect(after.config.params.api_key.sealed).toMatch(new RegExp(`^v1:${SecretBox.fromSecret(SECRET_B).keyId}:`));
    expect(JSON.parse((await direct.hget('__llm__:{catalog}:objects', '1:gpt'))!)).toEqual(sealedByA);
    expect(leaks((await storageText()).text, KEY)).toBe(false);
    await shut(server);
    // Each opens with its own secret.
    ({ server, r } = await boot({ redis: redis.url, secret: SECRET_A }));
    await r.select(1);
    expect(await r.call('LLM.CREATE-APP', 'newapp', '--LLM', 'gpt', '--PROMPT', 'sealed by A')).toBe(1);
    expect(await r.call('LLM.RUN', 'newapp')).toBe('echo: sealed by A');
    expect(await errOf(r.call('LLM.RUN', 'oldapp'))).toBe(OTHER_SECRET_ERROR.replace("'gpt'", "'old'"));
  });

  it('instances sharing a secret follow each other\'s LLMs (writer and read-only follower); one with another secret says why', async () => {
    const { r: w } = await boot({ redis: redis.url, secret: SECRET_A });
    const { r: f } = await boot({ redis: redis.url, secret: SECRET_A, readOnly: true });
    const { r: other } = await boot({ redis: redis.url, secret: SECRET_B, readOnly: true });
    // Created after the followers started: they get it from the catalog events.
    await w.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: KEY, base_url: fake.url }));
    await w.call('LLM.CREATE-APP', 'app', '--LLM', 'gpt', '--PROMPT', 'from {{who}}');
    await eventually(async () => expect(await f.type('app')).toBe('LLMAPP-SW'));
    expect(await f.call('LLM.RUN', 'app', '--VARS', '{"who":"the follower"}')).toBe('echo: from the follower');
    expect(authOfLast()).toBe(`Bearer ${KEY}`);
    await eventually(async () => expect(await other.type('app')).toBe('LLMAPP-SW'));
    const before = fake.requests.length;
    expect(await errOf(other.call('LLM.RUN', 'app', '--VARS', '{"who":"x"}'))).toBe(OTHER_SECRET_ERROR);
    expect(fake.requests).toHaveLength(before);
  });
});

describe('the server secret', () => {
  it('standalone: <dir>/secret.key is generated private (0600), reused on restart; no file under --dir holds the key', async () => {
    const dir = path.join(root, 'standalone');
    let { server, r } = await boot({ dir });
    const file = path.join(dir, 'secret.key');
    const first = readFileSync(file, 'utf8');
    expect(first).toMatch(/^[0-9a-f]{64}\n$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.startsWith('secret.key'))).toEqual(['secret.key']); // no temp file left
    await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: KEY, base_url: fake.url, http: { proxy_host: `http://u:${PROXY_PASS}@127.0.0.1:9` } }));
    await r.call('LLM.CREATE-LLM', 'direct', '--PARAMS', JSON.stringify({ api_key: KEY, base_url: fake.url }));
    await r.call('LLM.CREATE-APP', 'app', '--LLM', 'direct', '--PROMPT', 'standalone');
    await r.call('LLM.CREATE-VECTOR-STORE', 'kb', '--LLM', 'direct');
    await r.call('LLM.ADD', 'kb', 'some text');
    await shut(server);
    const files = filesText(dir);
    expect(files).toContain('"sealed":"v1:');
    expect(leaks(files, KEY)).toBe(false);
    expect(leaks(files, PROXY_PASS)).toBe(false);
    ({ server, r } = await boot({ dir }));
    expect(readFileSync(file, 'utf8')).toBe(first);
    expect(await r.call('LLM.RUN', 'app')).toBe('echo: standalone');
    expect(authOfLast()).toBe(`Bearer ${KEY}`);
    await shut(server);
    // The generated text works as REDIS_LLM_SECRET (Config.secret) of another instance.
    ({ server, r } = await boot({ dir, secret: first }));
    expect(await r.call('LLM.RUN', 'app')).toBe('echo: standalone');
  });

  it("the startup log says 'generated' only when this start created <dir>/secret.key, else 'loaded'", async () => {
    const { generatedSecret } = await import('../src/util/secret.js');
    const dir = path.join(root, 'gen-or-load');
    const file = path.join(dir, 'secret.key');
    expect(generatedSecret(dir).from).toBe(`generated ${file}`);
    expect(generatedSecret(dir).from).toBe(`loaded ${file}`);
    // Through the CLI's log line (standalone, so no backing Redis is needed).
    const cliDir = path.join(root, 'gen-or-load-cli');
    const secretLine = async () => {
      const child = await startChildServer(['--managed-redis', 'no', '--dir', cliDir], {}, { logLevel: 'info' });
      try {
        await eventually(async () => expect(child.output()).toContain('server secret for sealing API keys at rest'));
        return child.output().split('\n').find((l) => l.includes('server secret for sealing API keys at rest'))!;
      } finally {
        await child.stop();
      }
    };
    const first = await secretLine();
    expect(first).toContain(`"from":"generated ${path.join(cliDir, 'secret.key')}"`);
    const second = await secretLine();
    expect(second).toContain(`"from":"loaded ${path.join(cliDir, 'secret.key')}"`);
    expect(JSON.parse(second).keyId).toBe(JSON.parse(first).keyId);
  });

  it('concurrent first starts on one dir agree on one generated secret', async () => {
    const dir = path.join(root, 'concurrent');
    const { generatedSecret } = await import('../src/util/secret.js');
    const ids = Array.from({ length: 8 }, () => generatedSecret(dir).box.keyId);
    expect(new Set(ids).size).toBe(1);
    // Child processes racing on a fresh dir.
    const dir2 = path.join(root, 'concurrent2');
    const script = `import(${JSON.stringify(path.join(ROOT, 'src/util/secret.ts'))}).then((m) => process.stdout.write(m.generatedSecret(${JSON.stringify(dir2)}).box.keyId))`;
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
      });
    const got = await Promise.all(Array.from({ length: 6 }, run));
    expect(got.every((x) => /^[0-9a-f]{8}$/.test(x))).toBe(true);
    expect(new Set(got).size).toBe(1);
    expect(readdirSync(dir2)).toEqual(['secret.key']);
  });

  it('a secret-file that is missing, unreadable or too short, or both secret-file and REDIS_LLM_SECRET: startup fails with a clear message', async () => {
    const missing = path.join(root, 'no-such.key');
    await expect(startServer({ dir: path.join(root, 'x1'), secretFile: missing })).rejects.toThrow(
      `server secret: cannot read secret-file ${missing}: ENOENT: no such file or directory`,
    );
    const aDir = path.join(root, 'a-dir.key');
    mkdirSync(aDir);
    await expect(startServer({ dir: path.join(root, 'x2'), secretFile: aDir })).rejects.toThrow(`server secret: cannot read secret-file ${aDir}: EISDIR`);
    const short = path.join(root, 'short.key');
    writeFileSync(short, '  tooshort \n');
    await expect(startServer({ dir: path.join(root, 'x3'), secretFile: short })).rejects.toThrow(
      `server secret: secret-file ${short} is shorter than 16 bytes`,
    );
    const good = path.join(root, 'good.key');
    writeFileSync(good, `${SECRET_A}\n`);
    await expect(startServer({ dir: path.join(root, 'x4'), secretFile: good, secret: SECRET_A })).rejects.toThrow(
      'server secret: give either secret-file or REDIS_LLM_SECRET, not both',
    );
    await expect(startServer({ dir: path.join(root, 'x5'), secret: 'short' })).rejects.toThrow('server secret: REDIS_LLM_SECRET is shorter than 16 bytes');
    // Nothing was created in those dirs.
    for (const d of ['x1', 'x2', 'x3', 'x4', 'x5']) expect(() => statSync(path.join(root, d))).toThrow(/ENOENT/);
    // A readable secret-file works (whitespace around it ignored), and is the same secret as REDIS_LLM_SECRET.
    const { server, r } = await boot({ redis: redis.url, secretFile: good });
    await r.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: KEY, base_url: fake.url }));
    await r.call('LLM.CREATE-APP', 'app', '--LLM', 'gpt', '--PROMPT', 'file');
    await shut(server);
    const again = await boot({ redis: redis.url, secret: SECRET_A });
    expect(await again.r.call('LLM.RUN', 'app')).toBe('echo: file');
  });

  it('the CLI: a secret-file it cannot read ends the process (exit 1) with the reason', async () => {
    const missing = path.join(root, 'cli-missing.key');
    const res = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, '--port', '0', '--managed-redis', 'no', '--dir', path.join(root, 'cli'), '--secret-file', missing], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      p.on('exit', (code) => resolve({ code, out }));
    });
    expect(res.code, res.out).toBe(1);
    expect(res.out).toContain(`server secret: cannot read secret-file ${missing}: ENOENT`);
    expect(() => statSync(path.join(root, 'cli'))).toThrow(/ENOENT/);
  });

  it('the CLI reads REDIS_LLM_SECRET from the environment; an instance given the same text as secret-file opens its keys', async () => {
    const child = await startChildServer(['--redis', redis.url, '--log-level', 'warn'], { REDIS_LLM_SECRET: SECRET_B });
    const c = client(child.port);
    try {
      await eventually(async () => expect(await c.call('LLM.CREATE-LLM', 'gpt', '--PARAMS', JSON.stringify({ api_key: KEY, base_url: fake.url }))).toBe(1));
      await c.call('LLM.CREATE-APP', 'app', '--LLM', 'gpt', '--PROMPT', 'child');
      expect(await c.call('LLM.RUN', 'app')).toBe('echo: child');
      // The secret is not an api_key a client can name.
      expect(await errOf(c.call('LLM.CREATE-LLM', 'x', '--PARAMS', '{"api_key":"$REDIS_LLM_SECRET","base_url":"http://127.0.0.1:9"}'))).toBe(
        'ERR failed to parse openai options: api_key must not refer to REDIS_LLM_SECRET (the server secret)',
      );
      expect(child.output()).not.toContain(SECRET_B);
    } finally {
      c.disconnect();
      await child.stop();
    }
    const file = path.join(root, 'b.key');
    writeFileSync(file, SECRET_B);
    const { r } = await boot({ redis: redis.url, secretFile: file });
    expect(await r.call('LLM.RUN', 'app')).toBe('echo: child');
    expect(authOfLast()).toBe(`Bearer ${KEY}`);
  });

  it('a --dir where secret.key cannot be created: LLM.* answer -LOADING with the reason and the server keeps retrying', async () => {
    const blocker = path.join(root, 'not-a-dir');
    writeFileSync(blocker, 'a file where the data directory should be');
    const server = await startServer({ dir: path.join(blocker, 'data') });
    servers.push(server);
    const r = client(server.port);
    conns.push(r);
    expect(await r.ping()).toBe('PONG');
    await eventually(async () =>
      expect(await errOf(r.call('LLM.CREATE-VECTOR-STORE', 'x'))).toBe(
        `LOADING LLM objects are not loaded yet: server secret: cannot read ${blocker}/data/secret.key: ENOTDIR: not a directory (retrying)`,
      ),
    );
    // Fixed: the next attempt generates it and loads.
    rmSync(blocker);
    await eventually(async () => expect(await r.call('LLM.CREATE-VECTOR-STORE', 'x', '--PARAMS', '{"dim":2}')).toBe(1), 10_000);
    expect(statSync(path.join(blocker, 'data', 'secret.key')).mode & 0o777).toBe(0o600);
  });
});
