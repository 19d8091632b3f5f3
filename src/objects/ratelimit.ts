/**
 * Rate limits of an LLM or an app (`--RATELIMIT json` at create time):
 *
 *   {"requests": 20, "tokens": 40000, "window": 60, "per_scope": true}
 *
 * A sliding window of `window` seconds: at most `requests` calls, and (optionally) at most
 * `tokens` prompt+completion tokens used by the calls in the window. Over a limit, LLM.RUN answers
 * `-ERR rate limit exceeded, retry in N ms` and the provider is not called. With `per_scope`
 * each `--SCOPE` has its own window. Counters are sorted sets in the backing Redis, updated by
 * one Lua script per check, so every server instance on that Redis shares them.
 * Cache hits are not provider calls and are not counted.
 */
import { randomBytes } from 'node:crypto';
import { CommandError } from '../errors.js';
import type { KV } from '../storage/kv.js';

export interface RateLimitConfig {
  requests: number;
  tokens: number;
  window: number;
  per_scope: boolean;
}

export function parseRateLimit(v: unknown): RateLimitConfig | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new CommandError('--RATELIMIT must be a JSON object');
  const o = v as Record<string, unknown>;
  const bad = (m: string) => new CommandError(`invalid rate limit: ${m}`);
  for (const k of Object.keys(o)) if (!['requests', 'tokens', 'window', 'per_scope'].includes(k)) throw bad(`unknown field '${k}'`);
  const int = (k: string, min: number, max: number): number => {
    const x = o[k];
    if (x === undefined) return 0;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) throw bad(`'${k}' must be an integer in [${min}, ${max}]`);
    return x;
  };
  const cfg: RateLimitConfig = {
    requests: int('requests', 1, 1e9),
    tokens: int('tokens', 1, 1e12),
    window: int('window', 1, 86400 * 31),
    per_scope: false,
  };
  if (o.per_scope !== undefined) {
    if (typeof o.per_scope !== 'boolean') throw bad("'per_scope' must be true or false");
    cfg.per_scope = o.per_scope;
  }
  if (!cfg.window) throw bad("'window' (seconds) is required");
  if (!cfg.requests && !cfg.tokens) throw bad("set 'requests' and/or 'tokens'");
  return cfg;
}

export class RateLimiter {
  private readonly prefix: string;
  /**
   * `owner` names the limited object by db and key (not by object id), so every instance on the
   * backing Redis — and a re-created object of the same name — counts in the same window.
   */
  constructor(owner: string, readonly cfg: RateLimitConfig, private readonly kv: KV) {
    this.prefix = `__llm__:{rl:${Buffer.from(owner).toString('base64url')}}`;
  }

  private keys(scope: string): [string, string] {
    const s = this.cfg.per_scope ? Buffer.from(scope).toString('base64url') : '';
    return [`${this.prefix}:r:${s}`, `${this.prefix}:t:${s}`];
  }

  /** Takes a slot or throws `rate limit exceeded, retry in N ms`. Resolves a ticket for record(). */
  async acquire(scope: string): Promise<string> {
    const [r, t] = this.keys(scope);
    const member = `${Date.now()}-${randomBytes(6).toString('hex')}`;
    const wait = await this.kv.rateCheck(r, t, Date.now(), this.cfg.window * 1000, this.cfg.requests, this.cfg.tokens, member);
    if (wait >= 0) throw new CommandError(`rate limit exceeded, retry in ${Math.ceil(wait)} ms`);
    return member;
  }

  /** Counts the tokens a call used toward the token window. */
  async record(scope: string, ticket: string, tokens: number): Promise<void> {
    if (!this.cfg.tokens) return;
    const [, t] = this.keys(scope);
    await this.kv.rateTokens(t, Date.now(), this.cfg.window * 1000, ticket, tokens);
  }
}
