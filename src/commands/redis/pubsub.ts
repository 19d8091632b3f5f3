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

export const PUBSUB_FAMILY: Array<[string, Intercept]> = [
  ['subscribe', subscribe],
  ['psubscribe', subscribe],
  ['unsubscribe', subscribe],
  ['punsubscribe', subscribe],
  ['ssubscribe', ssubscribe],
  ['sunsubscribe', ssubscribe],
  ['monitor', monitor],
];
