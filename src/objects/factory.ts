/** Rebuilds an object from its catalog record (on load, or when following another instance). */
import type { ObjectRecord } from '../storage/types.js';
import type { SecretBox } from '../util/secret.js';
import { AppObject, ModelObject, StoreObject, type AppDefinition, type LlmObject } from './objects.js';
import { ChatObject } from './chat.js';

/** `secrets` opens the sealed secrets of LLM definitions (and seals them again when rewritten). */
export function objectFromRecord(rec: ObjectRecord, secrets: SecretBox): LlmObject {
  const obj = build(rec, secrets);
  obj.expiresAt = typeof rec.expiresAt === 'number' ? rec.expiresAt : null;
  return obj;
}

function build(rec: ObjectRecord, secrets: SecretBox): LlmObject {
  switch (rec.kind) {
    case 'llm':
      return ModelObject.fromConfig(rec.id, rec.db, rec.name, rec.createdAt, rec.config, secrets);
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
