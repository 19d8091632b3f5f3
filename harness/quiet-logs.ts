/**
 * Setup file of every test file (vitest.config.ts): the in-process logger is silent, so the
 * suite's output is the test report, not the servers' JSON lines. `TEST_LOG_LEVEL=debug npx
 * vitest run ...` shows them. Child servers log at warn unless a test asks (startChildServer).
 */
import type { LevelWithSilent } from 'pino';
import { configureLogger } from '../src/log.js';

configureLogger((process.env.TEST_LOG_LEVEL as LevelWithSilent | undefined) || 'silent');
