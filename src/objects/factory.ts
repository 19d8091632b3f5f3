/** Rebuilds an object from its catalog record (on load, or when following another instance). */
import type { ObjectRecord } from '../storage/types.js';
import { AppObject, ModelObject, StoreObject, type AppDefinition, type LlmObject } from './objects.js';
import { ChatObject } from './chat.js';

export function objectFromRecord(rec: ObjectRecord): LlmObject {
  switch (rec.kind) {
    case 'llm':
      return ModelObject.fromConfig(rec.id, rec.db, rec.name, rec.createdAt, rec.config);
    case 'store':
      return StoreObject.fromConfig(rec.id, rec.db, rec.name, rec.createdAt, rec.config);
    case 'app':
    case 'search':
      return new AppObject(rec.kind, rec.id, rec.db, rec.name, rec.createdAt, rec.config as AppDefinition);
    case 'chat':
      return new ChatObject(rec.id, rec.db, rec.name, rec.createdAt, rec.config as AppDefinition);
    default:
      throw new Error(`unknown object kind '${rec.kind}' in the catalog`);
  }
}
