#!/usr/bin/env node
/**
 * Command-line entry: `redis-llm-server [--port 6379] [--redis redis://host:port] ...`.
 * Flags mirror the configuration file directives (see redis.conf.example).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { SETTINGS, convertSetting, resolveConfig, type Config } from './config/config.js';
import { configureLogger, logger } from './log.js';
import { LlmServer } from './server/server.js';

export async function main(argv = process.argv): Promise<LlmServer> {
  const program = new Command();
  program
    .name('redis-llm-server')
    .description('A Redis-protocol server: Redis plus LLM.* commands (LLM providers, prompt apps, HNSW vector stores, search and chat apps).')
    .option('--config <file>', 'redis.conf-style configuration file (one "directive value" per line)')
    .addHelpText('after', '\nEvery setting can also come from the environment as REDIS_LLM_<NAME> (e.g. REDIS_LLM_PORT=7001)\nand from the --config file as "<name> <value>". Precedence: flags > environment > file > defaults.');
  for (const s of SETTINGS) {
    const flag = s.kind === 'list' ? `--${s.name} <${s.arg ?? 'value'}...>` : `--${s.name} <${s.arg ?? 'value'}>`;
    program.addOption(new Option(flag, `${s.help} (default: ${JSON.stringify(s.default)})`));
  }
  program.parse(argv);
  const raw = program.opts<Record<string, string | string[]>>();
  const flags: Partial<Config> = {};
  for (const s of SETTINGS) {
    const camel = s.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (raw[camel] !== undefined) (flags as Record<string, unknown>)[s.key] = convertSetting(s, raw[camel]);
  }
  const config = resolveConfig(flags, raw.config as string | undefined);
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
  return server;
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
    logger.fatal({ err: err.message }, 'failed to start');
    process.exit(1);
  });
}
