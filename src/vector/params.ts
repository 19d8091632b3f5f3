/**
 * Parameters of a vector store (`LLM.CREATE-VECTOR-STORE ... --PARAMS json`).
 *
 * The original's keys keep their names and defaults: `max_elements` (100000), `m` (16),
 * `ef_construction` (200). Ours: `space` (`l2` default = squared L2 as the original, `cosine`,
 * `ip`), `dim` (else the first vector fixes it) and `ef` (default search ef).
 * `max_elements` is only a capacity hint here: the index grows by itself.
 *
 * Validation is strict: a wrong type, a non-integer, an out-of-range value or an unknown key is a
 * clear CommandError, never a crash and never silently ignored.
 */
import { CommandError } from '../errors.js';

export type Space = 'l2' | 'cosine' | 'ip';
export const SPACES: readonly Space[] = ['l2', 'cosine', 'ip'];

export interface VectorIndexParams {
  space: Space;
  /** Fixed dimension, or undefined: the first vector added fixes it. */
  dim: number | undefined;
  m: number;
  efConstruction: number;
  /** Capacity hint (the original's max_elements); the index grows past it by itself. */
  maxElements: number;
  /** Default search ef (per-query ef may override it). */
  ef: number;
}

/**
 * Default search ef. Measured with bench/knn-inprocess.ts (100k × 128, 100 Gaussian clusters):
 * recall@10 = 0.992 at ef 100 (0.972 at ef 50, 0.83 at ef 20); on 5k × 32 / 20 clusters ≥ 0.95 in
 * every space (test/vector-index.test.ts). Real embeddings are usually harder than Gaussian
 * clusters, hence the margin.
 */
export const DEFAULT_EF = 100;

export const DEFAULT_PARAMS: Readonly<VectorIndexParams> = Object.freeze({
  space: 'l2',
  dim: undefined,
  m: 16,
  efConstruction: 200,
  maxElements: 100_000,
  ef: DEFAULT_EF,
});

/** Inclusive ranges of the numeric parameters. */
export const PARAM_LIMITS = Object.freeze({
  dim: [1, 65_536] as const,
  m: [2, 256] as const,
  efConstruction: [1, 100_000] as const,
  maxElements: [1, 0xffff_ffff] as const,
  ef: [1, 100_000] as const,
});

const KEYS: Record<string, keyof VectorIndexParams> = {
  space: 'space',
  dim: 'dim',
  m: 'm',
  ef_construction: 'efConstruction',
  max_elements: 'maxElements',
  ef: 'ef',
};

function paramError(detail: string): CommandError {
  return new CommandError(`failed to parse vector store options: ${detail}`);
}

function intParam(name: string, v: unknown, [lo, hi]: readonly [number, number]): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw paramError(`${name} must be an integer in [${lo}, ${hi}]`);
  }
  return v;
}

/** Validates a space name (case-insensitive). */
export function parseSpace(v: unknown): Space {
  if (typeof v === 'string') {
    const s = v.toLowerCase();
    if ((SPACES as readonly string[]).includes(s)) return s as Space;
  }
  throw paramError(`space must be one of ${SPACES.join(', ')}`);
}

/**
 * Validates the parsed `--PARAMS` JSON of a vector store. `undefined`/`null` → all defaults.
 * Errors: `failed to parse vector store options: <detail>`.
 */
export function parseStoreParams(json: unknown): VectorIndexParams {
  const out: VectorIndexParams = { ...DEFAULT_PARAMS };
  if (json === undefined || json === null) return out;
  if (typeof json !== 'object' || Array.isArray(json)) throw paramError('must be a JSON object');
  for (const [key, v] of Object.entries(json as Record<string, unknown>)) {
    const field = KEYS[key];
    if (field === undefined) {
      throw paramError(`unknown key '${key}' (known: ${Object.keys(KEYS).join(', ')})`);
    }
    switch (field) {
      case 'space':
        out.space = parseSpace(v);
        break;
      case 'dim':
        // null means "not fixed", like leaving it out.
        out.dim = v === null ? undefined : intParam(key, v, PARAM_LIMITS.dim);
        break;
      case 'm':
        out.m = intParam(key, v, PARAM_LIMITS.m);
        break;
      case 'efConstruction':
        out.efConstruction = intParam(key, v, PARAM_LIMITS.efConstruction);
        break;
      case 'maxElements':
        out.maxElements = intParam(key, v, PARAM_LIMITS.maxElements);
        break;
      case 'ef':
        out.ef = intParam(key, v, PARAM_LIMITS.ef);
        break;
    }
  }
  return out;
}

/** The params as `--PARAMS` JSON keys (for AOF-style rewrites, INFO, snapshots). */
export function paramsToJson(p: VectorIndexParams): Record<string, unknown> {
  const o: Record<string, unknown> = {
    space: p.space,
    m: p.m,
    ef_construction: p.efConstruction,
    max_elements: p.maxElements,
    ef: p.ef,
  };
  if (p.dim !== undefined) o.dim = p.dim;
  return o;
}
