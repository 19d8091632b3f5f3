/**
 * Chat apps: history parameters (validated — a wrong type is an error, never a crash).
 */
import { CommandError } from '../errors.js';
import { compileTemplate } from './template.js';

/** The original's summary prompt, verbatim. */
export const DEFAULT_SUMMARY_PROMPT =
  'Give a concise and comprehensive summary of the given conversation (in JSON format). The summary should capture the main points and supporting details.\nConversation: """\n{{conversation}}\n"""\nSummary: ';

export interface HistoryParams {
  summary_cnt: number;
  summary_ctx_cnt: number;
  msg_ctx_cnt: number;
  summary_prompt: string;
  /** Idle TTL of a session in seconds (0 = none). */
  ttl: number;
}

export const DEFAULT_HISTORY: HistoryParams = {
  summary_cnt: 20,
  summary_ctx_cnt: 1,
  msg_ctx_cnt: 10,
  summary_prompt: DEFAULT_SUMMARY_PROMPT,
  ttl: 0,
};

export function parseHistoryParams(v: unknown): HistoryParams {
  if (v === undefined) return { ...DEFAULT_HISTORY };
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CommandError('--HISTORY must be a JSON object');
  const o = v as Record<string, unknown>;
  const out: HistoryParams = { ...DEFAULT_HISTORY };
  for (const [k, val] of Object.entries(o)) {
    if (k === 'summary_prompt') {
      if (typeof val !== 'string') throw new CommandError(`invalid history param '${k}': must be a string`);
      compileTemplate(val);
      out.summary_prompt = val;
    } else if (k === 'summary_cnt' || k === 'summary_ctx_cnt' || k === 'msg_ctx_cnt' || k === 'ttl') {
      if (typeof val !== 'number' || !Number.isInteger(val) || val < 0 || val > 1_000_000) {
        throw new CommandError(`invalid history param '${k}': must be an integer in [0, 1000000]`);
      }
      out[k] = val;
    } else {
      throw new CommandError(`unknown history param '${k}'`);
    }
  }
  return out;
}
