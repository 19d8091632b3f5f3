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
 * LLM.* inside MULTI (one Redis) are queued here and run at EXEC in their place (router.ts queueLlm,
 * execWithQueued below). Ordinary commands on LLM objects and the server storage are not
 * transactional: inside MULTI, a command that would
 * involve them is refused so that the backing Redis also aborts the transaction (EXECABORT), as
 * Redis does for any command refused while queueing (refusedInMultiPlan, plan.ts). WATCH is forwarded as
 * it is (a WATCH of an LLM object's key is refused like any command on it: keyspace.ts).
 */
import { encode, ErrorReply, joinArrayFrame, RawReply, splitArrayFrame, type RespValue } from '../../protocol/resp.js';
import { errorPlan, FORWARD, runLocal, type CommandContext, type Intercept, type SessionView, type TxLog } from '../plan.js';
import { filterExecReply } from './slowlog.js';

export const multi: Intercept = (args, view) => {
  if (view.cluster) {
    if (args.length !== 1 || !view.authenticated || view.pubsubMode) return FORWARD;
    if (view.inMulti) return errorPlan('MULTI calls can not be nested');
    view.applyState({ inMulti: true });
    return { kind: 'forward', hooks: { tx: 'begin' } };
  }
  if (!view.tx) view.tx = { n: 0, logGets: new Map(), queued: [] };
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
  if (op === 'exec' && tx && tx.queued.length > 0 && args.length === 1) {
    // LLM.* commands were queued here: EXEC is run here, in order, and their replies spliced into
    // the backend's (nothing is changed before it runs: `route` may ask this family first).
    return { kind: 'local', run: (ctx) => execWithQueued(ctx, view, tx) };
  }
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

/**
 * EXEC of a transaction holding LLM.* commands: the backend's EXEC, then each queued LLM command in
 * its place, in order. When the transaction did not run (EXECABORT, or nil after a WATCH saw a
 * change) neither do they.
 */
async function execWithQueued(ctx: CommandContext, view: SessionView, tx: TxLog): Promise<RespValue> {
  view.tx = null;
  view.applyState({ inMulti: false });
  const frame = await ctx.client.backendCallRaw(['EXEC']);
  const split = splitArrayFrame(frame);
  if (!split) return new RawReply(frame);
  const elements = [...split.elements];
  for (const q of tx.queued) elements.splice(q.pos, 0, encode(await runLocal(q.plan, ctx), view.proto));
  const out = joinArrayFrame(split.type, elements);
  return new RawReply(tx.logGets.size > 0 ? filterExecReply(out, tx.logGets) : out);
}
