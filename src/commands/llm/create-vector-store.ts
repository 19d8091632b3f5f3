import { CommandError } from '../../errors.js';
import { VectorIndex, parseStoreParams } from '../../vector/index.js';
import { StoreObject, parseLlmRef } from '../../objects/objects.js';
import { createObject, optString } from './_objects.js';
import { checkJsonDepth } from '../args.js';
import { defineCreateCommand } from './_common.js';

export default defineCreateCommand({
  name: 'LLM.CREATE-VECTOR-STORE',
  summary: 'Creates an HNSW vector store.',
  options: [
    { token: '--TYPE', type: 'string', value: 'hnsw', summary: 'Index type (only hnsw).' },
    { token: '--PARAMS', type: 'json', value: 'json', summary: 'Index parameters: space, dim, m, ef_construction, ef, max_elements.' },
    { token: '--LLM', type: 'string', value: 'llm', summary: 'LLM that embeds text: a key, or JSON {"key":...,"params":{...}} whose params are embedding request fields for this store\'s calls, e.g. {"model":"text-embedding-3-small","dimensions":256}.' },
  ],
  examples: ['LLM.CREATE-VECTOR-STORE store --LLM openai', `LLM.CREATE-VECTOR-STORE vectors --PARAMS '{"dim":3}'`],
  handler(ctx, args) {
    const type = optString(args, 'type') ?? 'hnsw';
    if (type.toLowerCase() !== 'hnsw') throw new CommandError(`unknown vector store: ${type}`);
    const params = parseStoreParams(args.opts.get('params') ?? {});
    const llmText = optString(args, 'llm');
    if (llmText !== undefined) checkJsonDepth(llmText); // the JSON form {"key":...,"params":{...}}
    const llm = parseLlmRef(llmText);
    return createObject(ctx, args, 'store', (id, db, name, at) => new StoreObject(id, db, name, at, new VectorIndex(params), params, llm));
  },
});
