/**
 * The transaction family: MULTI, EXEC, DISCARD, WATCH — on one Redis and on a cluster — and what
 * happens to the other commands while a transaction is open.
 *
 * One Redis: MULTI, EXEC and DISCARD are forwarded and the connection tracks `inMulti`
 * (optimistically at send time, so a pipelined SUBSCRIBE or LLM.* after MULTI is judged inside the
 * transaction; undone when Redis refuses). The commands queued are counted (`view.tx`), so that
 * SLOWLOG/COMMANDLOG GETs queued in the transaction (slowlog.ts) are filtered in EXEC's reply.
 *
 * A cluster: the link pins the transaction to one node (ForwardHooks.tx; src/proxy/cluster-link.ts):
 * MULTI is answered +OK and held until the first keyed command names the node; a command for
 * another slot is refused with CROSSSLOT and EXEC aborts, as Redis Cluster refuses such a
 * transaction. A nested MULTI is answered here.
 *
 * LLM objects and the server's storage are not transactional: inside MULTI, a command that would
 * involve them is refused so that the backing Redis also aborts the transaction (EXECABORT), as
 * Redis does for any command refused while queueing (refusedInMultiPlan, plan.ts). WATCH is forwarded as
 * it is (a WATCH of an LLM object's key is refused like any command on it: keyspace.ts).
 */
import { ErrorReply } from '../../protocol/resp.js';
import { errorPlan, FORWARD, type Intercept, type Plan, type SessionView } from '../plan.js';
import { filterExecReply } from './slowlog.js';

export const multi: Intercept = (args, view) => {
  if (view.cluster) {
    if (args.length !== 1 || !view.authenticated || view.pubsubMode) return FORWARD;
    if (view.inMulti) return errorPlan('MULTI calls can not be nested');
    view.applyState({ inMulti: true });
    return { kind: 'forward', hooks: { tx: 'begin' } };
  }
  if (!view.tx) view.tx = { n: 0, logGets: new Map() };
  else view.tx.n++; // nested: refused by Redis, and EXEC then aborts
  const before = view.inMulti;
  view.applyState({ inMulti: true });
  return { kind: 'forward', hooks: { onReply: (r) => { if (r instanceof ErrorReply && !r.message.includes('nested')) view.applyState({ inMulti: before }); } } };
};

const end = (op: 'exec' | 'discard'): Intercept => (args, view) => {
  if (view.cluster) {
    if (!view.inMulti || args.length !== 1 || !view.authenticated || view.pubsubMode) return FORWARD;
    view.applyState({ inMulti: false });
    return { kind: 'forward', hooks: { tx: op } };
  }
  const tx = view.tx;
  view.tx = null;
  view.applyState({ inMulti: false });
  const onReply = () => view.applyState({ inMulti: false });
  if (op === 'exec' && tx && tx.logGets.size > 0) return { kind: 'forward', hooks: { onReply, transform: (f) => filterExecReply(f, tx.logGets) } };
  return { kind: 'forward', hooks: { onReply } };
};

export const exec = end('exec');
export const discard = end('discard');

/** Names that keep `view.tx` themselves; every other forwarded command counts one queued command. */
export const COUNTS_ITSELF = new Set(['multi', 'exec', 'discard', 'reset', 'slowlog', 'commandlog']);

/** A command forwarded while a single-node transaction is open takes the next place in EXEC's reply. */
export function noteForwarded(name: string, view: SessionView): void {
  if (view.tx !== null && !COUNTS_ITSELF.has(name)) view.tx.n++;
}

