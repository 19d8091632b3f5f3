/**
 * The `local` LLM type: an offline embedder computed in process. No network, deterministic
 * (the same text gives the same vector on every machine and version of Node), fast.
 *
 * HONESTLY: this is LEXICAL similarity, not semantic. It hashes features of the text into
 * `dim` buckets ("feature hashing" with a sign bit to make collisions cancel on average):
 *   - word unigrams (weight 1),
 *   - word bigrams (weight 0.5: word order matters a little),
 *   - character 3-grams of each word padded with spaces (weight 0.25 each: tolerates
 *     inflections and typos, "index" ~ "indexes"),
 * of the text NFKD-normalised, accents stripped, lowercased, split on anything that is not a
 * letter or a digit. The vector is L2-normalised, so cosine similarity = dot product and
 * squared L2 distance = 2 - 2 cos. Texts sharing words land close together; synonyms with no
 * shared letters ("car" / "automobile") do not. Use a real embedding model for meaning.
 *
 * A text with no letters or digits (e.g. "" or "!!!") has no features and gets the ZERO
 * vector (not normalisable): its distance to every unit vector is 1 and its cosine is 0.
 */
import type { ChatMessage, ChatOptions, ChatResult, EmbedOptions, LlmProvider } from './types.js';
import { LlmStats } from './stats.js';
import { LlmError, abortedError } from './errors.js';

const WORD_WEIGHT = 1;
const BIGRAM_WEIGHT = 0.5;
const TRIGRAM_WEIGHT = 0.25;

const SEED_WORD = 0x3c6ef372;
const SEED_BIGRAM = 0x5bd1e995;
const SEED_TRIGRAM = 0x1b873593;

/** FNV-1a over UTF-16 code units of s[start, end), starting from a seeded basis. */
function fnv(s: string, start: number, end: number, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finaliser: spreads every input bit over the output. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function add(vec: Float64Array, hash: number, weight: number): void {
  const m = fmix(hash);
  const bucket = m % vec.length;
  // The sign comes from a bit the bucket index does not depend on.
  vec[bucket]! += (m & 0x80000000) !== 0 ? -weight : weight;
}

/** Lowercased words of letters/digits, accents removed. */
export function tokenize(text: string): string[] {
  const norm = text.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase();
  return norm.match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** The embedding of one text (see the file comment). Length `dim`, unit norm or all zeros. */
export function localEmbed(text: string, dim: number): number[] {
  const vec = new Float64Array(dim);
  const words = tokenize(text);
  let prev = -1;
  for (const w of words) {
    const hw = fnv(w, 0, w.length, SEED_WORD);
    add(vec, hw, WORD_WEIGHT);
    if (prev >= 0) add(vec, (Math.imul(prev, 0x9e3779b1) ^ hw ^ SEED_BIGRAM) >>> 0, BIGRAM_WEIGHT);
    prev = hw;
    const padded = ` ${w} `;
    for (let i = 0; i + 3 <= padded.length; i++) add(vec, fnv(padded, i, i + 3, SEED_TRIGRAM), TRIGRAM_WEIGHT);
  }
  let norm = 0;
  for (let i = 0; i < dim; i++) norm += vec[i]! * vec[i]!;
  norm = Math.sqrt(norm);
  const out = new Array<number>(dim);
  for (let i = 0; i < dim; i++) out[i] = norm > 0 ? vec[i]! / norm : 0;
  return out;
}

export class LocalProvider implements LlmProvider {
  readonly type = 'local' as const;
  readonly stats = new LlmStats();

  constructor(readonly dim: number) {}

  async chat(_messages: ChatMessage[], _opts?: ChatOptions): Promise<ChatResult> {
    this.stats.record(0, false);
    throw new LlmError(
      "LLM type 'local' only computes embeddings; chat needs an openai or azure_openai LLM",
      'unsupported',
    );
  }

  async embed(texts: string[], opts: EmbedOptions = {}): Promise<number[][]> {
    const start = performance.now();
    if (opts.signal?.aborted) {
      this.stats.record(0, false);
      throw abortedError();
    }
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) {
      this.stats.record(0, false);
      throw new LlmError('embed: texts must be strings', 'config');
    }
    const out = texts.map((t) => localEmbed(t, this.dim));
    this.stats.record(performance.now() - start, true);
    return out;
  }

  close(): void {}
}
