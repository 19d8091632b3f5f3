/** The storage layer: durable home of every LLM object. See types.ts for the contract. */
export type { CatalogEvent, LogEntry, ObjectRecord, SnapshotData, SnapshotInfo, Storage } from './types.js';
export {
  CatalogGapError,
  INTERNAL_PREFIX,
  RESERVED_KEY_ERROR,
  SNAPSHOT_CHUNK_SIZE,
  comparePos,
  isInternalKey,
  newObjectId,
  nextPos,
} from './common.js';
export { RedisStorage, redisError, storageRedisOptions, type RedisStorageOptions } from './redis.js';
export { FileStorage, type FileStorageOptions } from './file.js';
