/**
 * The in-memory HNSW vector index layer: VectorIndex (hnsw-index.ts), store params
 * (params.ts) and the strict parsers / formatters of ids and vectors (parse.ts).
 */
export * from './hnsw-index.js';
export * from './params.js';
export * from './parse.js';
export * from './id-alias.js';
