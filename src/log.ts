/**
 * The process-wide pino logger. JSON lines by default; pretty when stdout is a TTY.
 * Never log request payloads at info, and never log secrets: `redact` removes common
 * secret fields as a second line of defence.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

function makeLogger(level: LevelWithSilent = 'info'): Logger {
  const pretty = process.stdout.isTTY && process.env.NODE_ENV !== 'test';
  return pino({
    level,
    base: { pid: process.pid },
    redact: {
      paths: ['api_key', '*.api_key', '*.*.api_key', 'apiKey', '*.apiKey', 'password', '*.password', 'headers.authorization', 'headers["api-key"]'],
      censor: '[redacted]',
    },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  });
}

export let logger: Logger = makeLogger((process.env.LOG_LEVEL as LevelWithSilent) || 'info');

/** Replace the logger (done once by the CLI after reading configuration). */
export function configureLogger(level: LevelWithSilent): Logger {
  logger = makeLogger(level);
  return logger;
}
