/**
 * Configuration: defaults < redis.conf-style file (--config) < environment (REDIS_LLM_*) < flags.
 * Every setting has one declaration here; the CLI's --help and redis.conf.example follow it.
 */
import { readFileSync } from 'node:fs';
import { splitInlineArgs } from '../protocol/request-parser.js';
import { SECRET_ENV } from '../util/secret.js';

export { SECRET_ENV };

export interface Config {
  port: number;
  bind: string[];
  redis: string | null;
  dir: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  maxclients: number;
  requirepass: string | null;
  protoMaxBulkLen: number;
  protoMaxMultibulkLen: number;
  clientOutputBufferLimit: number;
  backendConnectTimeout: number;
  shutdownTimeout: number;
  llmAllowHosts: string[] | null;
  /** Environment variables an api_key "$NAME" may name (null: *_API_KEY). */
  llmEnvAllow: string[] | null;
  /** llm-key-hosts: the hosts each "$NAME" key may be sent to (unlisted: its provider's own host). */
  llmKeyHosts: Record<string, string[]> | null;
  /** File holding the password (Docker secrets); the same as requirepass. */
  requirepassFile: string | null;
  /** Refuse clients from addresses other than 127.0.0.1 / ::1 while no password is needed. */
  protectedMode: boolean;
  /** Managed mode: ACL users for the managed redis-server, as Redis's `user` directive (repeatable). */
  user: string[] | null;
  /** Managed mode: a Redis ACL file whose users the managed redis-server gets. */
  aclfile: string | null;
  /** TLS for clients (0 = none), as Redis's tls-* settings. */
  tlsPort: number;
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  tlsCaCertFile: string | null;
  tlsAuthClients: 'yes' | 'no' | 'optional';
  tlsProtocols: string[] | null;
  /** File holding the server secret that seals literal API keys at rest. */
  secretFile: string | null;
  /**
   * The server secret itself, from the environment variable REDIS_LLM_SECRET only (not a flag or
   * a directive: command lines and config files are too easy to read). See src/util/secret.ts.
   */
  secret?: string;
  /** Use a managed redis-server child when no --redis is given (else standalone). */
  managedRedis: boolean;
  streamMaxlen: number;
  /** Deadline (ms) of an LLM call when neither the command (--TIMEOUT) nor the LLM (timeout) sets one. */
  llmTimeout: number;
  /** Snapshot a vector store after this many changes, or when it has changes and snapshotInterval ms passed. */
  snapshotChanges: number;
  snapshotInterval: number;
  /** Apply the other instances' writes to LLM objects (followers of the log). */
  follow: boolean;
  /** Refuse writes to LLM objects (a read-only follower). */
  readOnly: boolean;
  /** Vector store snapshots (after this many changes, or after this long with changes) and how often expired chat sessions are swept. */
  snapshotOptions?: { snapshotChanges?: number; snapshotIntervalMs?: number; sessionSweepMs?: number };
}

type Kind = 'int' | 'string' | 'memory' | 'list' | 'bool' | 'level' | 'keyhosts' | 'multi' | 'tlsauth';

export interface Setting {
  key: keyof Config;
  /** Directive / flag name, e.g. `maxclients`, `proto-max-bulk-len`. */
  name: string;
  kind: Kind;
  default: Config[keyof Config];
  help: string;
  /** Placeholder in --help. */
  arg?: string;
}

export const SETTINGS: Setting[] = [
  { key: 'port', name: 'port', kind: 'int', default: 6379, arg: 'port', help: 'TCP port to listen on (0 = a free port)' },
  { key: 'bind', name: 'bind', kind: 'list', default: ['127.0.0.1'], arg: 'addr...', help: 'addresses to listen on (space or comma separated; 0.0.0.0 for all)' },
  { key: 'redis', name: 'redis', kind: 'string', default: null, arg: 'url', help: 'backing Redis: redis://[user:pass@]host:port/db, rediss://..., unix:///path.sock (default: start a managed redis-server, else standalone)' },
  { key: 'dir', name: 'dir', kind: 'string', default: './data', arg: 'path', help: 'data directory (managed redis-server data, standalone LLM objects)' },
  { key: 'logLevel', name: 'log-level', kind: 'level', default: 'info', arg: 'level', help: 'trace, debug, info, warn, error, fatal or silent' },
  { key: 'maxclients', name: 'maxclients', kind: 'int', default: 10000, arg: 'n', help: 'maximum simultaneous clients' },
  { key: 'requirepass', name: 'requirepass', kind: 'string', default: null, arg: 'password', help: 'password of the default user for AUTH: standalone, and managed mode (given to the managed redis-server); with --redis the backing Redis\'s own AUTH applies and this is refused' },
  { key: 'requirepassFile', name: 'requirepass-file', kind: 'string', default: null, arg: 'path', help: 'read requirepass from this file (Docker secrets); first line, trailing newline dropped' },
  { key: 'protectedMode', name: 'protected-mode', kind: 'bool', default: true, arg: 'yes|no', help: 'while no password is needed, refuse clients from addresses other than 127.0.0.1 and ::1 (whatever the bind)' },
  { key: 'user', name: 'user', kind: 'multi', default: null, arg: 'rules', help: 'managed mode: an ACL user for the managed redis-server, as Redis\'s user directive (repeatable)' },
  { key: 'aclfile', name: 'aclfile', kind: 'string', default: null, arg: 'path', help: 'managed mode: a Redis ACL file; its users are given to the managed redis-server' },
  { key: 'tlsPort', name: 'tls-port', kind: 'int', default: 0, arg: 'port', help: 'TLS port for clients (0 = no TLS), served alongside port on the same bind addresses' },
  { key: 'tlsCertFile', name: 'tls-cert-file', kind: 'string', default: null, arg: 'path', help: 'server certificate (PEM) for tls-port' },
  { key: 'tlsKeyFile', name: 'tls-key-file', kind: 'string', default: null, arg: 'path', help: 'private key (PEM) of tls-cert-file' },
  { key: 'tlsCaCertFile', name: 'tls-ca-cert-file', kind: 'string', default: null, arg: 'path', help: 'CA certificates (PEM) that client certificates are checked against' },
  { key: 'tlsAuthClients', name: 'tls-auth-clients', kind: 'tlsauth', default: 'yes', arg: 'yes|no|optional', help: 'client certificates: required (yes), not asked (no), checked when given (optional)' },
  { key: 'tlsProtocols', name: 'tls-protocols', kind: 'list', default: null, arg: 'protocols...', help: 'TLS versions accepted, e.g. "TLSv1.2 TLSv1.3" (default: both)' },
  { key: 'protoMaxBulkLen', name: 'proto-max-bulk-len', kind: 'memory', default: 512 * 1024 * 1024, arg: 'bytes', help: 'largest accepted bulk argument (e.g. 512mb)' },
  { key: 'protoMaxMultibulkLen', name: 'proto-max-multibulk-len', kind: 'int', default: 2147483647, arg: 'n', help: 'most arguments accepted in one request' },
  { key: 'clientOutputBufferLimit', name: 'client-output-buffer-limit', kind: 'memory', default: 256 * 1024 * 1024, arg: 'bytes', help: 'close a client whose unread replies exceed this (0 = no limit)' },
  { key: 'backendConnectTimeout', name: 'backend-connect-timeout', kind: 'int', default: 2000, arg: 'ms', help: 'connect timeout to the backing Redis' },
  { key: 'shutdownTimeout', name: 'shutdown-timeout', kind: 'int', default: 10000, arg: 'ms', help: 'how long SIGTERM waits for in-flight replies' },
  { key: 'llmAllowHosts', name: 'llm-allow-hosts', kind: 'list', default: null, arg: 'hosts...', help: 'only these provider hosts may be used by LLM.CREATE-LLM (default: any)' },
  { key: 'llmEnvAllow', name: 'llm-env-allow', kind: 'list', default: null, arg: 'names...', help: 'environment variables an api_key "$NAME" may name: names or * patterns (default: *_API_KEY; * = any)' },
  { key: 'llmKeyHosts', name: 'llm-key-hosts', kind: 'keyhosts', default: null, arg: 'NAME=hosts', help: 'hosts the key of environment variable NAME may be sent to, e.g. "OPENAI_API_KEY api.openai.com,llm.internal:8000" (repeatable directive; flag/env: NAME=h1,h2;NAME2=h3). Unlisted: only its provider\'s own host (api.openai.com, *.openai.azure.com)' },
  { key: 'secretFile', name: 'secret-file', kind: 'string', default: null, arg: 'path', help: 'file holding the server secret that seals literal API keys at rest; every instance on one Redis needs the same (default: environment REDIS_LLM_SECRET, else <dir>/secret.key, generated on first start)' },
  { key: 'streamMaxlen', name: 'stream-maxlen', kind: 'int', default: 10000, arg: 'n', help: 'approximate length cap (XADD MAXLEN ~) of streams written by LLM.RUN --STREAM' },
  { key: 'llmTimeout', name: 'llm-timeout', kind: 'int', default: 60000, arg: 'ms', help: 'deadline of an LLM call when neither --TIMEOUT nor the LLM\'s timeout param sets one' },
  { key: 'snapshotChanges', name: 'snapshot-changes', kind: 'int', default: 20000, arg: 'n', help: 'snapshot a vector store (graph + items, then trim its log) after this many changes' },
  { key: 'snapshotInterval', name: 'snapshot-interval', kind: 'int', default: 60000, arg: 'ms', help: '... or when it has changes and this long passed since its last snapshot' },
  { key: 'follow', name: 'follow', kind: 'bool', default: true, arg: 'yes|no', help: 'follow the LLM-object writes of other instances on the same Redis' },
  { key: 'readOnly', name: 'read-only', kind: 'bool', default: false, arg: 'yes|no', help: 'refuse writes to LLM objects (a read-only follower)' },
  { key: 'managedRedis', name: 'managed-redis', kind: 'bool', default: true, arg: 'yes|no', help: 'without --redis, start redis-server as a child when it is on PATH' },
];

export const DEFAULTS: Config = Object.fromEntries(SETTINGS.map((s) => [s.key, s.default])) as unknown as Config;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function parseMemory(v: string): number {
  const m = /^(\d+)\s*(b|k|kb|m|mb|g|gb)?$/i.exec(v.trim());
  if (!m) throw new Error(`invalid memory size '${v}'`);
  const n = Number(m[1]);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult: Record<string, number> = { b: 1, k: 1000, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 };
  return n * mult[unit];
}

export function convertSetting(s: Setting, raw: string | string[]): unknown {
  const v = Array.isArray(raw) ? raw.join(' ') : raw;
  switch (s.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(v.trim())) throw new Error(`${s.name}: '${v}' is not an integer`);
      const n = Number(v);
      if (n < 0) throw new Error(`${s.name}: must not be negative`);
      return n;
    }
    case 'memory':
      return parseMemory(v);
    case 'list':
      return v.split(/[\s,]+/).filter(Boolean);
    case 'bool': {
      const b = v.toLowerCase();
      if (['yes', 'true', '1', 'on'].includes(b)) return true;
      if (['no', 'false', '0', 'off'].includes(b)) return false;
      throw new Error(`${s.name}: '${v}' is not yes or no`);
    }
    case 'keyhosts':
      return parseKeyHosts(Array.isArray(raw) ? [raw.join(' ')] : [raw]);
    case 'multi':
      return v.trim() === '' ? null : [v.trim()];
    case 'tlsauth': {
      const t = v.toLowerCase();
      if (t !== 'yes' && t !== 'no' && t !== 'optional') throw new Error(`${s.name}: '${v}' is not yes, no or optional`);
      return t;
    }
    case 'level':
      if (!LEVELS.includes(v)) throw new Error(`${s.name}: '${v}' is not one of ${LEVELS.join(', ')}`);
      return v;
    default:
      return v === '' ? null : v;
  }
}

/** Reads a redis.conf-style file: `directive value...` per line, `#` comments, quotes allowed. */
export function readConfigFile(path: string): Partial<Config> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the configuration file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const out: Partial<Config> = {};
  const byName = new Map(SETTINGS.map((s) => [s.name, s]));
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const parts = splitInlineArgs(Buffer.from(t));
    if (!parts || parts.length < 1) throw new Error(`${path}:${i + 1}: cannot parse line`);
    const [name, ...vals] = parts.map((p) => p.toString('utf8'));
    const s = byName.get(name.toLowerCase());
    if (!s) throw new Error(`${path}:${i + 1}: unknown directive '${name}'`);
    try {
      const value = convertSetting(s, vals);
      const prev = (out as Record<string, unknown>)[s.key];
      // Repeatable directives add up, as Redis's `user` lines do.
      if (s.kind === 'multi' && Array.isArray(prev) && Array.isArray(value)) (out as Record<string, unknown>)[s.key] = [...prev, ...value];
      else if (s.kind === 'keyhosts' && prev && value) (out as Record<string, unknown>)[s.key] = mergeKeyHosts(prev as Record<string, string[]>, value as Record<string, string[]>);
      else (out as Record<string, unknown>)[s.key] = value;
    } catch (err) {
      throw new Error(`${path}:${i + 1}: ${(err as Error).message}`);
    }
  });
  return out;
}

/**
 * llm-key-hosts values: `NAME host,host` or `NAME=host,host`, several separated by ';'. Host
 * entries: `host`, `host:port`, `*.domain`, `[::1]:port`, or a URL (reduced to host[:port]).
 */
export function parseKeyHosts(values: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const value of values) {
    for (const part of value.split(';')) {
      const t = part.trim();
      if (!t) continue;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*(?:=|\s)\s*(\S.*)$/.exec(t);
      if (!m) throw new Error(`llm-key-hosts: '${t}' is not "NAME host[,host...]"`);
      const hosts = m[2]!.split(/[\s,]+/).filter(Boolean);
      for (const h of hosts) {
        let ok: boolean;
        if (h.includes('://')) {
          try {
            ok = /^https?:$/.test(new URL(h).protocol);
          } catch {
            ok = false;
          }
        } else {
          ok = /^(\*\.)?([A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\]|[0-9a-fA-F:]+)(:\d+)?$/.test(h);
        }
        if (!ok) throw new Error(`llm-key-hosts: '${h}' is not a host[:port] (or an http(s) URL)`);
      }
      out[m[1]!] = [...(out[m[1]!] ?? []), ...hosts];
    }
  }
  return out;
}

function mergeKeyHosts(a: Record<string, string[]>, b: Record<string, string[]>): Record<string, string[]> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = [...(out[k] ?? []), ...v];
  return out;
}

/** The environment variable of a setting: `log-level` → REDIS_LLM_LOG_LEVEL. */
export function envName(s: Setting): string {
  return `REDIS_LLM_${s.name.toUpperCase().replace(/-/g, '_')}`;
}

/** Environment: REDIS_LLM_PORT, REDIS_LLM_LOG_LEVEL, ... */
export function readEnv(env: NodeJS.ProcessEnv = process.env): Partial<Config> {
  const out: Partial<Config> = {};
  for (const s of SETTINGS) {
    const name = envName(s);
    const v = env[name];
    if (v === undefined) continue;
    try {
      (out as Record<string, unknown>)[s.key] = convertSetting(s, v);
    } catch (err) {
      throw new Error(`environment ${name}: ${(err as Error).message}`);
    }
  }
  return out;
}

export function resolveConfig(flags: Partial<Config>, configFile?: string, env: NodeJS.ProcessEnv = process.env): Config {
  const file = configFile ? readConfigFile(configFile) : {};
  const secret = env[SECRET_ENV];
  const cfg: Config = { ...DEFAULTS, ...file, ...readEnv(env), ...flags, ...(secret ? { secret } : {}) };
  if (cfg.requirepassFile) {
    if (cfg.requirepass) throw new Error('requirepass and requirepass-file are both set: give one');
    let text: string;
    try {
      text = readFileSync(cfg.requirepassFile, 'utf8');
    } catch (err) {
      throw new Error(`requirepass-file: cannot read ${cfg.requirepassFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const pass = text.split(/\r?\n/)[0] ?? '';
    if (!pass) throw new Error(`requirepass-file: ${cfg.requirepassFile} is empty`);
    cfg.requirepass = pass;
  }
  return cfg;
}
