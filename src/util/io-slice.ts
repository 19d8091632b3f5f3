/**
 * Cooperative time slicing of the server's own work on the event loop, so proxied requests are
 * never queued behind a burst of it. A proxied GET needs two turns of the loop (its request read,
 * then Redis's reply); each turn polls for I/O once. If one turn starts and finishes dozens of
 * pipelined KNNs (parse, plan, reply), every GET waits for all of them, twice.
 *
 * `pauseForIo()` returns null while this turn has spent less than SLICE_MS since its first call;
 * after that, a promise resolving in a later turn, after the loop polled for I/O again. Callers
 * that can wait (starting the next pipelined request, shaping a search's reply) await it.
 */
export const SLICE_MS = 0.5;

let sliceStart = -1;
let resetScheduled = false;

function startSlice(now: number): void {
  sliceStart = now;
  if (resetScheduled) return;
  resetScheduled = true;
  // The check phase ends this turn's slice.
  setImmediate(() => {
    resetScheduled = false;
    sliceStart = -1;
  });
}

export function pauseForIo(): Promise<void> | null {
  if (!sliceSpent()) return null;
  // setImmediate from here runs in this turn's check phase; one more hop lands after the next poll.
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** True when this turn's slice is spent (a cheap check for tight loops; then await ioTurn()). */
export function sliceSpent(): boolean {
  const now = performance.now();
  if (sliceStart < 0) {
    startSlice(now);
    return false;
  }
  return now - sliceStart >= SLICE_MS;
}

/** Waits, if this turn's slice is spent, until a later turn still has room (see pauseForIo). */
export async function ioTurn(): Promise<void> {
  for (let later = pauseForIo(); later; later = pauseForIo()) await later;
}
