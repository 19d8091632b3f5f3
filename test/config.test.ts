/**
 * Configuration: flags > environment (REDIS_LLM_*) > --config file > defaults; redis.conf-style
 * parsing; memory units; clear errors with file:line; --help and redis.conf.example list every
 * setting.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULTS, SETTINGS, convertSetting, envName, parseMemory, readConfigFile, readEnv, resolveConfig } from '../src/config/config.js';
import { CLI, ROOT } from '../harness/server.js';
import { freePort, waitForPort } from '../harness/redis-server.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'rls-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function confFile(text: string): string {
  const file = path.join(dir, `c${n++}.conf`);
  writeFileSync(file, text);
  return file;
}

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
  });
}

describe('parsing', () => {
  it('memory units as in redis.conf', () => {
    expect(parseMemory('512mb')).toBe(512 * 1024 * 1024);
    expect(parseMemory('512MB')).toBe(512 * 1024 * 1024);
    expect(parseMemory('1k')).toBe(1000);
    expect(parseMemory('1kb')).toBe(1024);
    expect(parseMemory('3m')).toBe(3_000_000);
    expect(parseMemory('2g')).toBe(2e9);
    expect(parseMemory('1gb')).toBe(1024 ** 3);
    expect(parseMemory('100')).toBe(100);
    expect(parseMemory('0')).toBe(0);
    for (const bad of ['12xb', '-1mb', 'mb', '', '1.5mb']) expect(() => parseMemory(bad)).toThrow(/invalid memory size/);
  });

  it('a file: comments, blank lines, quotes, lists, booleans, memory units, case-insensitive names', () => {
    const file = confFile(
      [
        '# a comment',
        '',
        '   # an indented comment',
        'PORT 7001',
        'bind 127.0.0.1 ::1',
        'requirepass "two words"',
        "dir '/var/lib/llm data'",
        'proto-max-bulk-len 1mb',
        'client-output-buffer-limit 0',
        'managed-redis no',
        'log-level warn',
        'llm-allow-hosts api.openai.com,localhost',
        'maxclients 10\r',
      ].join('\n'),
    );
    expect(readConfigFile(file)).toEqual({
      port: 7001,
      bind: ['127.0.0.1', '::1'],
      requirepass: 'two words',
      dir: '/var/lib/llm data',
      protoMaxBulkLen: 1024 * 1024,
      clientOutputBufferLimit: 0,
      managedRedis: false,
      logLevel: 'warn',
      llmAllowHosts: ['api.openai.com', 'localhost'],
      maxclients: 10,
    });
  });

  it('an unknown directive is an error naming file:line', () => {
    const file = confFile('port 7001\n\n# fine\nnosuch-directive 1\n');
    expect(() => readConfigFile(file)).toThrow(`${file}:4: unknown directive 'nosuch-directive'`);
  });

  it('a bad value is an error naming file:line and the directive', () => {
    expect(() => readConfigFile(confFile('port 7001\nport seven\n'))).toThrow(/c\d+\.conf:2: port: 'seven' is not an integer/);
    expect(() => readConfigFile(confFile('maxclients\n'))).toThrow(/:1: maxclients: '' is not an integer/);
    expect(() => readConfigFile(confFile('managed-redis maybe\n'))).toThrow(/:1: managed-redis: 'maybe' is not yes or no/);
    expect(() => readConfigFile(confFile('log-level loud\n'))).toThrow(/:1: log-level: 'loud' is not one of/);
    expect(() => readConfigFile(confFile('proto-max-bulk-len 1xb\n'))).toThrow(/:1: invalid memory size '1xb'/);
    expect(() => readConfigFile(confFile('requirepass "unterminated\n'))).toThrow(/:1: cannot parse line/);
    expect(() => readConfigFile(path.join(dir, 'missing.conf'))).toThrow(/cannot read the configuration file .*missing\.conf: ENOENT/);
  });

  it('environment variables: REDIS_LLM_<NAME>, dashes as underscores; bad values name the variable', () => {
    expect(envName(SETTINGS.find((s) => s.name === 'proto-max-bulk-len')!)).toBe('REDIS_LLM_PROTO_MAX_BULK_LEN');
    expect(readEnv({ REDIS_LLM_PORT: '7002', REDIS_LLM_PROTO_MAX_BULK_LEN: '2mb', REDIS_LLM_MANAGED_REDIS: 'off', REDIS_LLM_BIND: '0.0.0.0', OTHER: 'x' })).toEqual({
      port: 7002,
      protoMaxBulkLen: 2 * 1024 * 1024,
      managedRedis: false,
      bind: ['0.0.0.0'],
    });
    expect(() => readEnv({ REDIS_LLM_PORT: 'x' })).toThrow("environment REDIS_LLM_PORT: port: 'x' is not an integer");
  });

  it('precedence: flags > environment > file > defaults', () => {
    const file = confFile('port 7001\nmaxclients 5\ndir /from/file\nlog-level debug\n');
    const env = { REDIS_LLM_PORT: '7002', REDIS_LLM_MAXCLIENTS: '6' };
    const cfg = resolveConfig({ port: 7003 }, file, env);
    expect(cfg.port).toBe(7003); // flag
    expect(cfg.maxclients).toBe(6); // env over file
    expect(cfg.dir).toBe('/from/file'); // file over default
    expect(cfg.logLevel).toBe('debug');
    expect(cfg.bind).toEqual(DEFAULTS.bind); // default
    expect(resolveConfig({}, file, env).port).toBe(7002);
    expect(resolveConfig({}, file, {}).port).toBe(7001);
    expect(resolveConfig({}, undefined, {})).toEqual(DEFAULTS);
  });
});

describe('redis.conf.example', () => {
  const text = readFileSync(path.join(ROOT, 'redis.conf.example'), 'utf8');
  const directiveLines = (name: string) => text.split('\n').filter((l) => new RegExp(`^#? ?${name} \\S`).test(l));

  it('has one commented-out `directive value` line per setting, showing its default, under a comment', () => {
    const lines = text.split('\n');
    for (const s of SETTINGS) {
      const found = directiveLines(s.name);
      expect(found, `redis.conf.example: ${s.name}`).toHaveLength(1);
      const line = found[0];
      expect(line.startsWith('# '), `${s.name} is commented out`).toBe(true);
      const value = line.slice(2 + s.name.length + 1);
      const parsed = readConfigFile(confFile(`${s.name} ${value}`))[s.key];
      if (s.default !== null) expect(parsed, `${s.name} shows its default`).toEqual(s.default);
      else expect(parsed, `${s.name} example parses`).not.toBeNull();
      // The line before is the end of its explanation (a comment, not another directive).
      const prev = lines[lines.indexOf(line) - 1];
      expect(prev.startsWith('#') && prev.length > 2, `${s.name} has a comment`).toBe(true);
    }
  });

  it('reads as an empty configuration; uncommented, every line parses', () => {
    const file = path.join(ROOT, 'redis.conf.example');
    expect(readConfigFile(file)).toEqual({});
    const names = new Set(SETTINGS.map((s) => s.name));
    const uncommented = text
      .split('\n')
      .map((l) => (l.startsWith('# ') && names.has(l.slice(2).split(' ')[0]) ? l.slice(2) : l))
      .join('\n');
    const cfg = readConfigFile(confFile(uncommented));
    expect(Object.keys(cfg).sort()).toEqual(SETTINGS.map((s) => s.key).sort());
  });
});

describe('the CLI', () => {
  it('--help lists every setting and the environment variables', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('--config <file>');
    for (const s of SETTINGS) expect(stdout, s.name).toMatch(new RegExp(`--${s.name} <`));
    expect(stdout).toContain('REDIS_LLM_');
    expect(stdout).toContain('(default: 512mb)');
    expect(stdout).not.toContain('......');
  });

  it('an unknown directive stops startup with file:line on stderr, exit 1', async () => {
    const file = confFile('port 0\nbogus yes\n');
    const { code, stderr } = await runCli(['--config', file]);
    expect(code).toBe(1);
    expect(stderr).toContain(`${file}:2: unknown directive 'bogus'`);
  });

  it('bad flag and environment values stop startup with a clear message', async () => {
    const flag = await runCli(['--port', 'abc']);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain("--port: 'abc' is not an integer");
    const env = await runCli(['--port', '0'], { REDIS_LLM_LOG_LEVEL: 'chatty' });
    expect(env.code).toBe(1);
    expect(env.stderr).toContain('REDIS_LLM_LOG_LEVEL');
  });

  it('precedence end to end: the flag beats the environment, which beats the file', async () => {
    const [pFile, pEnv, pFlag] = [await freePort(), await freePort(), await freePort()];
    const file = confFile(`port ${pFile}\nmanaged-redis no\ndir ${dir}\nlog-level warn\n`);
    const listensOn = async (args: string[], env: NodeJS.ProcessEnv, port: number) => {
      const proc = spawn(process.execPath, [CLI, '--config', file, ...args], { env: { ...process.env, ...env }, stdio: 'ignore' });
      try {
        await waitForPort(port, '127.0.0.1', 10_000);
        return true;
      } finally {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
    };
    expect(await listensOn([], {}, pFile)).toBe(true);
    expect(await listensOn([], { REDIS_LLM_PORT: String(pEnv) }, pEnv)).toBe(true);
    expect(await listensOn(['--port', String(pFlag)], { REDIS_LLM_PORT: String(pEnv) }, pFlag)).toBe(true);
  });
});

it('every setting converts its own default back from text', () => {
  for (const s of SETTINGS) {
    if (s.default === null) continue;
    const text = Array.isArray(s.default) ? s.default.join(' ') : typeof s.default === 'boolean' ? (s.default ? 'yes' : 'no') : String(s.default);
    expect(convertSetting(s, text), s.name).toEqual(s.default);
  }
});
