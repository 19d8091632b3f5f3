#!/usr/bin/env -S node --no-allocation-site-pretenuring
/**
 * Command-line entry: `redis-llm-server [--port 6379] [--redis redis://host:port] ...`.
 * Flags mirror the configuration file directives (see redis.conf.example).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { SECRET_ENV, SETTINGS, convertSetting, resolveConfig, type Config, type Setting } from './config/config.js';
import { configureLogger, logger } from './log.js';
import { LlmServer } from './server/server.js';

/** A bad flag, environment variable or configuration file line: reported on stderr, exit 1. */
export class ConfigError extends Error {}

export async function main(argv = process.argv): Promise<LlmServer> {
  const program = new Command();
  program
    .name('redis-llm-server')
    .description('A Redis-protocol server: Redis plus LLM.* commands (LLM providers, prompt apps, HNSW vector stores, search and chat apps).')
    .option('--config <file>', 'redis.conf-style configuration file (one "directive value" per line)')
    .addHelpText('after', '\nEvery setting can also come from the environment as REDIS_LLM_<NAME> (e.g. REDIS_LLM_PORT=7001,\nREDIS_LLM_LOG_LEVEL=debug) and from the --config file as "<name> <value>" (see redis.conf.example).\nPrecedence: flags > environment > file > defaults. Memory sizes take units: 1k=1000, 1kb=1024, mb, gb.\nREDIS_LLM_SECRET (environment only): the server secret, instead of --secret-file.');
  for (const s of SETTINGS) {
    let arg = s.arg ?? 'value';
    if (s.kind === 'list' && !arg.endsWith('...')) arg += '...';
    const shown = showDefault(s);
    program.addOption(new Option(`--${s.name} <${arg}>`, shown === null ? s.help : `${s.help} (default: ${shown})`));
  }
  program.parse(argv);
  const raw = program.opts<Record<string, string | string[]>>();
  let config: Config;
  try {
    const flags: Partial<Config> = {};
    for (const s of SETTINGS) {
      const camel = s.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
      if (raw[camel] === undefined) continue;
      try {
        (flags as Record<string, unknown>)[s.key] = convertSetting(s, raw[camel]);
      } catch (err) {
        throw new Error(`--${(err as Error).message}`);
      }
    }
    config = resolveConfig(flags, raw.config as string | undefined);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  // Read once: child processes (the managed redis-server) do not inherit the server secret, and no
  // "$NAME" api_key can name it.
  delete process.env[SECRET_ENV];
  configureLogger(config.logLevel);
  const server = new LlmServer(config);
  await server.start();
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals > 1) {
      logger.warn({ sig }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ sig }, 'signal received');
    server.stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // As Redis reloads its configuration: here the TLS certificate files (tls-cert-file, tls-key-file, tls-ca-cert-file).
  process.on('SIGHUP', () => server.reloadTls());
  return server;
}

/** A setting's default as written in the config file, or null when the help text tells it. */
export function showDefault(s: Setting): string | null {
  const d = s.default;
  if (d === null) return /\(default[: ]/.test(s.help) ? null : 'none';
  if (s.kind === 'bool') return d ? 'yes' : 'no';
  if (s.kind === 'memory') return formatMemory(d as number);
  if (Array.isArray(d)) return d.join(' ');
  return String(d);
}

function formatMemory(n: number): string {
  for (const [unit, size] of [['gb', 1024 ** 3], ['mb', 1024 ** 2], ['kb', 1024]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return String(n);
}

function invokedDirectly(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

const isMain = invokedDirectly();
if (isMain) {
  main().catch((err: Error) => {
    if (err instanceof ConfigError) process.stderr.write(`redis-llm-server: configuration error: ${err.message}\n`);
    else logger.fatal({ err: err.message }, 'failed to start');
    process.exit(1);
  });
}
