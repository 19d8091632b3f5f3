import v8 from 'node:v8';
import vm from 'node:vm';
import { logger } from '../log.js';

/** One full garbage collection (V8's gc(), exposed for this call only). */
export function collectGarbage(): void {
  try {
    v8.setFlagsFromString('--expose-gc');
    (vm.runInNewContext('gc') as () => void)();
  } catch (err) {
    logger.debug({ err: (err as Error).message }, 'could not run a garbage collection after loading');
  }
}
