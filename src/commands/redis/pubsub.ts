/**
 * The pub/sub family: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE and MONITOR.
 *
 * Outside MULTI, a (un)subscribe has as many replies as channels (or one, for none): the link
 * sends a sentinel PING after it to know where its replies end, and tracks the subscription
 * counts Redis confirms (RESP2 subscribed state: view.pubsubMode). On a cluster, SUBSCRIBE and
 * PSUBSCRIBE go to the client's home node (a cluster broadcasts PUBLISH), SSUBSCRIBE to the node
 * of the channels' slot. Before AUTH the backend answers one NOAUTH and subscribes nothing: no
 * sentinel (its PING would get a second NOAUTH, and the request waiting for it would hold every
 * later one).
 *
 * MONITOR: on one Redis, after its +OK the connection is a raw pipe (the server's own storage
 * traffic is not relayed: src/proxy/single-link.ts). A cluster has no single MONITOR: refused.
 */
import { errorPlan, FORWARD, type Intercept } from '../plan.js';

const subscription = (shard: boolean): Intercept => (_args, view) =>
  view.inMulti || !view.authenticated ? FORWARD : { kind: 'forward', hooks: { subscribe: true, shard } };

export const subscribe = subscription(false);
export const ssubscribe = subscription(true);

export const monitor: Intercept = (_args, view) => {
  if (view.cluster) {
    if (!view.authenticated || view.pubsubMode) return FORWARD;
    return errorPlan('MONITOR is not supported with a Redis Cluster backend');
  }
  return view.inMulti ? FORWARD : { kind: 'forward', hooks: { monitor: true } };
};

/**
 * SYNC / PSYNC (a replica, or redis-cli --rdb / --replica, through the server): on one Redis the
 * connection becomes a raw pipe both ways carrying the backing Redis's replication stream — the
 * whole dataset and every write, the server's own storage included (its secrets sealed). On a
 * cluster there is no one stream: refused.
 */
export const sync: Intercept = (_args, view) => {
  if (view.inMulti || !view.authenticated) return FORWARD;
  if (view.cluster) return errorPlan('SYNC and PSYNC are not supported with a Redis Cluster backend');
  return { kind: 'forward', hooks: { replication: true } };
};

export const PUBSUB_FAMILY: Array<[string, Intercept]> = [
  ['sync', sync],
  ['psync', sync],
  ['subscribe', subscribe],
  ['psubscribe', subscribe],
  ['unsubscribe', subscribe],
  ['punsubscribe', subscribe],
  ['ssubscribe', ssubscribe],
  ['sunsubscribe', ssubscribe],
  ['monitor', monitor],
];
