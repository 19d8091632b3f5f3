/**
 * The little key-value surface caches and rate limits need, so they work on the backing Redis
 * (shared by every server instance, survives restarts, TTLs enforced by Redis) and, in
 * standalone mode, in memory.
 */
import type { Redis } from 'ioredis';

/**
 * Also the circuit (cooldown) state of router targets: a KV is the llm layer's CircuitStore
 * (src/llm/types.ts, src/llm/router.ts), by shape; storage does not import llm.
 */
export interface KV {
  readonly shared: boolean;
  /** [0, 0] closed; [1, ms] open (ms left); [2, 0] this caller holds the probe for `probeMs`; [3, ms] another caller probes. */
  circuitCheck(base: string, now: number, probeMs: number): Promise<[number, number]>;
  /** Counts a failure; opens the circuit for `cooldownMs` at `threshold` failures within `windowMs`, or at once after a failed probe. True when it opened. */
  circuitFail(base: string, threshold: number, windowMs: number, cooldownMs: number, probe: boolean): Promise<boolean>;
  /** A probe succeeded: the circuit is closed again. */
  circuitOk(base: string): Promise<void>;
  get(key: string): Promise<string | null>;
  /** ttlMs 0 = no expiry */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  pexpire(key: string, ttlMs: number): Promise<void>;
  del(keys: string[]): Promise<number>;
  zadd(key: string, score: number, member: string): Promise<void>;
  zrem(key: string, member: string): Promise<void>;
  /** members with min <= score <= max */
  zrangeByScore(key: string, min: number, max: number): Promise<string[]>;
  /**
   * Sliding-window rate limit, atomically: drop entries older than the window, refuse when the
   * request count or the token sum in the window reached its limit (resolves the ms until a slot
   * frees), else record this request and resolve -1.
   */
  rateCheck(reqKey: string, tokKey: string, now: number, windowMs: number, maxReq: number, maxTok: number, member: string): Promise<number>;
  /** Records tokens used by a request in the token window. */
  rateTokens(tokKey: string, now: number, windowMs: number, member: string, tokens: number): Promise<void>;
}

const RATE_SCRIPT = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local maxReq = tonumber(ARGV[3])
local maxTok = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if maxReq > 0 and redis.call('ZCARD', KEYS[1]) >= maxReq then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
if maxTok > 0 then
  local sum = 0
  local items = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #items, 2 do
    sum = sum + tonumber(string.match(items[i], ':(%d+)$') or '0')
  end
  if sum >= maxTok then
    return math.max(1, tonumber(items[2]) + window - now)
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], window)
return -1
`;

// Circuit keys of one target: <base>:open (PX cooldown), <base>:tripped (was opened, needs a
// probe), <base>:probe (the probe's lease), <base>:fails (failures in the window). One hash tag.
const CIRCUIT_CHECK = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then return {1, ttl} end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return {2, 0} end
  local p = redis.call('PTTL', KEYS[3])
  if p < 1 then p = 1 end
  return {3, p}
end
return {0, 0}
`;

const CIRCUIT_FAIL = `
local threshold = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cooldown = tonumber(ARGV[3])
local tripped = cooldown * 2 + 60000
if ARGV[4] == '1' then
  redis.call('SET', KEYS[2], '1', 'PX', cooldown)
  redis.call('SET', KEYS[3], '1', 'PX', tripped)
  redis.call('DEL', KEYS[1], KEYS[4])
  return 1
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], window) end
if n >= threshold then
  redis.call('SET', KEYS[2], '1', 'PX', cooldown)
  redis.call('SET', KEYS[3], '1', 'PX', tripped)
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`;

export class RedisKV implements KV {
  readonly shared = true;
  constructor(private readonly redis: Redis) {}
  get(key: string) {
    return this.redis.get(key);
  }
  async set(key: string, value: string, ttlMs: number) {
    if (ttlMs > 0) await this.redis.set(key, value, 'PX', ttlMs);
    else await this.redis.set(key, value);
  }
  async pexpire(key: string, ttlMs: number) {
    await this.redis.pexpire(key, ttlMs);
  }
  async del(keys: string[]) {
    let n = 0;
    for (let i = 0; i < keys.length; i += 500) n += await this.redis.del(...keys.slice(i, i + 500));
    return n;
  }
  async zadd(key: string, score: number, member: string) {
    await this.redis.zadd(key, score, member);
  }
  async zrem(key: string, member: string) {
    await this.redis.zrem(key, member);
  }
  zrangeByScore(key: string, min: number, max: number) {
    return this.redis.zrangebyscore(key, min, max === Infinity ? '+inf' : max);
  }
  async rateCheck(reqKey: string, tokKey: string, now: number, windowMs: number, maxReq: number, maxTok: number, member: string) {
    return Number(await this.redis.eval(RATE_SCRIPT, 2, reqKey, tokKey, now, windowMs, maxReq, maxTok, member));
  }
  async rateTokens(tokKey: string, now: number, windowMs: number, member: string, tokens: number) {
    await this.redis.zadd(tokKey, now, `${member}:${Math.max(0, Math.round(tokens))}`);
    await this.redis.pexpire(tokKey, windowMs);
  }
  async circuitCheck(base: string, _now: number, probeMs: number): Promise<[number, number]> {
    const r = (await this.redis.eval(CIRCUIT_CHECK, 3, `${base}:open`, `${base}:tripped`, `${base}:probe`, Math.max(1, Math.ceil(probeMs)))) as number[];
    return [Number(r[0]), Number(r[1])];
  }
  async circuitFail(base: string, threshold: number, windowMs: number, cooldownMs: number, probe: boolean): Promise<boolean> {
    const keys = [`${base}:fails`, `${base}:open`, `${base}:tripped`, `${base}:probe`];
    const r = await this.redis.eval(CIRCUIT_FAIL, 4, ...keys, threshold, Math.max(1, Math.ceil(windowMs)), Math.max(1, Math.ceil(cooldownMs)), probe ? '1' : '0');
    return Number(r) === 1;
  }
  async circuitOk(base: string): Promise<void> {
    await this.redis.del(`${base}:tripped`, `${base}:probe`, `${base}:fails`);
  }
}

/** Standalone mode: the same semantics in this process only (not shared, not durable). */
export class MemoryKV implements KV {
  readonly shared = false;
  private readonly strings = new Map<string, { v: string; exp: number }>();
  private readonly zsets = new Map<string, Map<string, number>>();

  private live(key: string) {
    const e = this.strings.get(key);
    if (e && e.exp > 0 && e.exp <= Date.now()) {
      this.strings.delete(key);
      return undefined;
    }
    return e;
  }
  async get(key: string) {
    return this.live(key)?.v ?? null;
  }
  async set(key: string, value: string, ttlMs: number) {
    this.strings.set(key, { v: value, exp: ttlMs > 0 ? Date.now() + ttlMs : 0 });
  }
  async pexpire(key: string, ttlMs: number) {
    const e = this.live(key);
    if (e) e.exp = Date.now() + ttlMs;
  }
  async del(keys: string[]) {
    let n = 0;
    for (const k of keys) if (this.strings.delete(k) || this.zsets.delete(k)) n++;
    return n;
  }
  private z(key: string) {
    let z = this.zsets.get(key);
    if (!z) this.zsets.set(key, (z = new Map()));
    return z;
  }
  async zadd(key: string, score: number, member: string) {
    this.z(key).set(member, score);
  }
  async zrem(key: string, member: string) {
    this.zsets.get(key)?.delete(member);
  }
  async zrangeByScore(key: string, min: number, max: number) {
    return [...(this.zsets.get(key) ?? [])].filter(([, s]) => s >= min && s <= max).sort((a, b) => a[1] - b[1]).map(([m]) => m);
  }
  async rateCheck(reqKey: string, tokKey: string, now: number, windowMs: number, maxReq: number, maxTok: number, member: string) {
    const req = this.z(reqKey);
    const tok = this.z(tokKey);
    for (const z of [req, tok]) for (const [m, s] of z) if (s <= now - windowMs) z.delete(m);
    if (maxReq > 0 && req.size >= maxReq) return Math.max(1, Math.min(...req.values()) + windowMs - now);
    if (maxTok > 0) {
      let sum = 0;
      for (const m of tok.keys()) sum += Number(/:(\d+)$/.exec(m)?.[1] ?? 0);
      if (sum >= maxTok) return Math.max(1, Math.min(...tok.values()) + windowMs - now);
    }
    req.set(member, now);
    return -1;
  }
  async rateTokens(tokKey: string, now: number, _windowMs: number, member: string, tokens: number) {
    this.z(tokKey).set(`${member}:${Math.max(0, Math.round(tokens))}`, now);
  }
  private pttl(key: string): number {
    const e = this.live(key);
    if (!e) return -2;
    return e.exp > 0 ? e.exp - Date.now() : -1;
  }
  async circuitCheck(base: string, _now: number, probeMs: number): Promise<[number, number]> {
    const ttl = this.pttl(`${base}:open`);
    if (ttl > 0) return [1, ttl];
    if (this.live(`${base}:tripped`)) {
      if (!this.live(`${base}:probe`)) {
        await this.set(`${base}:probe`, '1', Math.max(1, Math.ceil(probeMs)));
        return [2, 0];
      }
      return [3, Math.max(1, this.pttl(`${base}:probe`))];
    }
    return [0, 0];
  }
  async circuitFail(base: string, threshold: number, windowMs: number, cooldownMs: number, probe: boolean): Promise<boolean> {
    const open = async () => {
      await this.set(`${base}:open`, '1', cooldownMs);
      await this.set(`${base}:tripped`, '1', cooldownMs * 2 + 60_000);
      await this.del([`${base}:fails`, ...(probe ? [`${base}:probe`] : [])]);
      return true;
    };
    if (probe) return open();
    if (this.live(`${base}:open`)) return false;
    const cur = this.live(`${base}:fails`);
    const n = (cur ? Number(cur.v) : 0) + 1;
    if (cur) cur.v = String(n);
    else await this.set(`${base}:fails`, String(n), windowMs);
    return n >= threshold ? open() : false;
  }
  async circuitOk(base: string): Promise<void> {
    await this.del([`${base}:tripped`, `${base}:probe`, `${base}:fails`]);
  }
}
