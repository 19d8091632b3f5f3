/**
 * The name the server gives its own connections to the backing Redis (CLIENT SETNAME): SLOWLOG and
 * COMMANDLOG filtering (commands/redis/slowlog.ts) and the managed redis-server's shutdown tell
 * them from clients' connections by it.
 */
export const OWN_CONNECTION_NAME = 'redis-llm-server';
