/** The RESP2 pub/sub frames a subscribed connection receives: confirmations and messages. */
export const SUBSCRIBE_KINDS = new Set(['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe']);
export const SHARD_KINDS = new Set(['ssubscribe', 'sunsubscribe']);
/** Messages pushed to a subscriber (never the reply to one of its requests). */
export const PUSH_KINDS = new Set(['message', 'pmessage', 'smessage']);
