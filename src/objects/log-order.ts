/** Positions in an object's log: how this instance knows its own append came right after what it applied. */
import { nextPos } from '../storage/index.js';

/**
 * Was `first` appended right after `appliedPos` (no other writer's entry in between)? `prev` is the
 * position the storage saw before the append, when it can tell; otherwise positions are dense
 * (stream ids within a millisecond, file sequence numbers).
 */
export function appendedRightAfter(appliedPos: string, first: string, prev: string | undefined): boolean {
  if (prev !== undefined) return prev === appliedPos;
  return appliedPos !== '' && first === nextPos(appliedPos);
}
