/**
 * Router LLMs (`LLM.CREATE-LLM pool --TYPE router --PARAMS '{"targets":["a","b"],...}'`): one LLM
 * key that spreads calls over other LLM keys of the same db and falls back from one to the next.
 *
 * A call: the strategy orders the targets (fallback: as listed; round-robin: rotated per call;
 * weighted: the first drawn by weight, then the others by weight; least-busy: fewest calls in
 * flight or queued; lowest-latency: lowest p50 of this router's successful calls, untried first).
 * Each target in turn, while the call's deadline lasts:
 *   - its circuit is checked in the circuit store (the backing Redis: shared by every instance).
 *     (a closed reading is trusted for CIRCUIT_CACHE_MS, an open one until it ends). Open
 *     (cooling down): skipped. Half-open (the cooldown ran out): one caller, on any instance,
 *     probes it; the others skip it until the probe ends. A probe that succeeds closes the circuit,
 *     one that fails opens it again for `cooldown` s.
 *   - it gets a share of the deadline left (target_timeout, its own `timeout`, else an equal share
 *     among the targets left), with its own retry policy inside.
 *   - a failure listed in `fallback_on` moves on to the next target, and (context_length aside)
 *     counts toward its cooldown: `failures` of them within `failure_window` s open its circuit.
 *     Any other failure (a 400, an abort) is the answer. A stream that already delivered text is
 *     never moved to another target.
 * When no target answered, the error lists each target's last failure.
 * Embeddings: every target must give vectors of one dimension (checked at create for the targets
 * whose dimension the config tells, and on every answer).
 */
import { logger } from '../log.js';
import { LatencyWindow } from '../util/latency-window.js';
import { DEFAULT_TIMEOUT_MS, type LlmConfig, type RouterConfig } from './config.js';
import { LlmError, abortedError, bareMessage, toLlmError } from './errors.js';
import { LlmStats } from './stats.js';
import type { CallOptions, ChatMessage, ChatOptions, ChatResult, EmbedOptions, LlmEnv, LlmProvider } from './types.js';

/** Key prefix of a target's circuit in the store: one hash tag, so it lives on one cluster node. */
export function circuitBase(db: number, target: string): string {
  return `__llm__:{cb:${Buffer.from(`${db}:${target}`).toString('base64url')}}`;
}

/** The embedding dimension a config promises, when it tells (local dim, embedding.dimensions). */
export function knownEmbeddingDim(cfg: LlmConfig): number | undefined {
  if (cfg.type === 'local') return cfg.dim;
  if (cfg.type === 'router') return undefined;
  const d = cfg.embedding.dimensions;
  return typeof d === 'number' ? d : undefined;
}

/**
 * How long a closed circuit read from the store is trusted before asking again: the hot path of a
 * router makes no store round trip per call, and an instance learns that another one opened a
 * circuit within this time (at once when it sees a failure of that target itself).
 */
export const CIRCUIT_CACHE_MS = 100;

export interface TargetSnapshot {
  name: string;
  /** What this instance last saw of the circuit: closed, open or half-open. */
  state: 'closed' | 'open' | 'half-open';
  calls: number;
  failures: number;
  retries: number;
  fallbacks: number;
  cooldowns: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

class TargetStats {
  calls = 0;
  failures = 0;
  retries = 0;
  fallbacks = 0;
  cooldowns = 0;
  state: TargetSnapshot['state'] = 'closed';
  /** This instance's recent reading of the circuit (see CIRCUIT_CACHE_MS). */
  cached: { state: 0 | 1; until: number } | undefined;
  /** Latency of successful calls through this router. */
  readonly latency = new LatencyWindow(1024);

  reset(): void {
    this.calls = this.failures = this.retries = this.fallbacks = this.cooldowns = 0;
    this.latency.clear();
  }
}

/**
 * `INFO llm` lines of a router's targets: `target<n>:router=<key>,db=<db>,name=<target>,state=...,calls=...`.
 * `next` numbers the lines over every router; `safe` makes names fit an INFO line.
 */
export function routerInfoLines(router: string, db: number, p: RouterProvider, next: () => number, safe: (s: string) => string): string[] {
  return p.targetSnapshots().map(
    (t) =>
      `target${next()}:router=${safe(router)},db=${db},name=${safe(t.name)},state=${t.state},calls=${t.calls},failures=${t.failures},` +
      `retries=${t.retries},fallbacks=${t.fallbacks},cooldowns=${t.cooldowns},latency_p50_ms=${t.latencyP50Ms},latency_p99_ms=${t.latencyP99Ms}`,
  );
}

function checkTimeout(ms: unknown): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) throw new LlmError('timeout must be a positive number of ms', 'config');
  return Math.ceil(ms);
}

export class RouterProvider implements LlmProvider {
  readonly type = 'router' as const;
  readonly stats = new LlmStats();
  private readonly targets = new Map<string, TargetStats>();
  private rr = 0;
  /** First embedding dimension seen, and from which target. */
  private dim: { n: number; target: string } | undefined;
  private closed = false;

  constructor(
    readonly cfg: RouterConfig,
    private readonly name: () => string = () => 'router',
  ) {
    for (const t of cfg.targets) this.targets.set(t, new TargetStats());
  }

  get configuredTimeoutMs(): number | undefined {
    return this.cfg.timeoutMs;
  }

  targetSnapshots(): TargetSnapshot[] {
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return this.cfg.targets.map((name) => {
      const t = this.targets.get(name)!;
      return {
        name,
        state: t.state,
        calls: t.calls,
        failures: t.failures,
        retries: t.retries,
        fallbacks: t.fallbacks,
        cooldowns: t.cooldowns,
        latencyP50Ms: round(t.latency.percentile(50)),
        latencyP99Ms: round(t.latency.percentile(99)),
      };
    });
  }

  resetTargets(): void {
    for (const t of this.targets.values()) t.reset();
  }

  /** The order the targets are tried in for one call. */
  private order(env: LlmEnv): string[] {
    const list = this.cfg.targets;
    const n = list.length;
    switch (this.cfg.strategy) {
      case 'fallback':
        return [...list];
      case 'round-robin': {
        const start = this.rr++ % n;
        if (this.rr >= 1e9) this.rr = 0;
        return [...list.slice(start), ...list.slice(0, start)];
      }
      case 'weighted': {
        // Weighted draw without replacement: the first by weight, then the next among the rest.
        const pool = list.map((t, i) => ({ t, w: this.cfg.weights?.[i] ?? 1 }));
        const out: string[] = [];
        while (pool.length > 0) {
          let r = Math.random() * pool.reduce((s, x) => s + x.w, 0);
          let i = 0;
          for (; i < pool.length - 1; i++) {
            r -= pool[i]!.w;
            if (r < 0) break;
          }
          out.push(pool.splice(i, 1)[0]!.t);
        }
        return out;
      }
      case 'least-busy': {
        const busy = (t: string) => {
          const p = env.resolve(t);
          return p ? p.stats.inFlight + p.stats.queued : Number.POSITIVE_INFINITY;
        };
        return list.map((t, i) => ({ t, i, b: busy(t) })).sort((a, b) => a.b - b.b || a.i - b.i).map((x) => x.t);
      }
      case 'lowest-latency': {
        const lat = (t: string) => this.targets.get(t)!.latency.percentile(50);
        return list.map((t, i) => ({ t, i, l: lat(t) })).sort((a, b) => a.l - b.l || a.i - b.i).map((x) => x.t);
      }
    }
  }

  /** Does this failure move on to the next target? */
  private fallsBack(err: LlmError): boolean {
    const on = this.cfg.fallbackOn;
    if (err.contextLength) return on.includes('context_length');
    switch (err.kind) {
      case 'timeout':
        return on.includes('timeout');
      case 'connection':
      case 'stream':
      case 'pool':
        return on.includes('connection');
      case 'malformed':
        return on.includes('5xx');
      case 'config':
      case 'unsupported':
        return true; // this target cannot serve the call at all (missing key, no such deployment)
      case 'http':
        if (err.status === undefined) return on.includes('5xx');
        return on.includes(String(err.status)) || on.includes(`${String(err.status)[0]}xx`);
      default:
        return false;
    }
  }

  private async run<T>(
    op: 'chat' | 'embed',
    opts: CallOptions & { onDelta?: (text: string) => void },
    invoke: (p: LlmProvider, o: CallOptions & { onDelta?: (text: string) => void }) => Promise<T>,
    /** A message when the answer cannot be used (embedding dimension differs from the other targets'). */
    check: (target: string, r: T) => string | undefined,
    usageOf: (r: T) => { promptTokens: number; completionTokens: number },
  ): Promise<T> {
    const start = performance.now();
    const name = this.name();
    const routerError = (bare: string, kind: LlmError['kind']) => new LlmError(`LLM '${name}': ${bare}`, kind, { bare });
    const fail = (err: LlmError): never => {
      this.stats.record(performance.now() - start, false);
      throw err;
    };
    if (this.closed) fail(routerError('the LLM is closed', 'pool'));
    const env = opts.env;
    if (!env) fail(routerError('a router LLM can only be called through the server', 'config'));
    const via = opts.via ?? [];
    if (via.includes(this)) fail(routerError('the router reaches itself through its targets', 'config'));
    let timeoutMs: number;
    try {
      timeoutMs = checkTimeout(opts.timeoutMs) ?? this.cfg.timeoutMs ?? env!.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    } catch (e) {
      return fail(toLlmError(e));
    }
    const deadline = start + timeoutMs;
    const order = this.order(env!);
    const errors: string[] = [];
    let lastKind: LlmError['kind'] = 'pool';
    let emitted = false;
    const onDelta = opts.onDelta
      ? (t: string) => {
          emitted = true;
          opts.onDelta!(t);
        }
      : undefined;
    this.stats.inFlight++;
    try {
      for (let i = 0; i < order.length; i++) {
        const target = order[i]!;
        const ts = this.targets.get(target)!;
        if (opts.signal?.aborted) return fail(abortedError().withMessage(`LLM '${name}' request aborted`));
        const left = deadline - performance.now();
        if (left < 1) {
          errors.push(`'${target}' not tried: the deadline of ${timeoutMs} ms passed`);
          lastKind = 'timeout';
          continue;
        }
        const provider = env!.resolve(target);
        if (!provider) {
          errors.push(`'${target}' does not exist or is not an LLM`);
          lastKind = 'config';
          continue;
        }
        const base = circuitBase(env!.db, target);
        const share = this.cfg.targetTimeoutMs ?? provider.configuredTimeoutMs ?? left / (order.length - i);
        const attemptMs = Math.max(1, Math.floor(Math.min(left, share)));
        let probe = false;
        if (this.cfg.cooldownS > 0) {
          let state: [number, number] = [0, 0];
          const cached = ts.cached && ts.cached.until > performance.now() ? ts.cached : undefined;
          if (cached) {
            state = cached.state === 1 ? [1, cached.until - performance.now()] : [0, 0];
          } else {
            try {
              state = await env!.circuits.circuitCheck(base, Date.now(), attemptMs + 1000);
              // Closed: trusted for CIRCUIT_CACHE_MS; open: until the cooldown ends (it cannot close earlier).
              if (state[0] === 0) ts.cached = { state: 0, until: performance.now() + CIRCUIT_CACHE_MS };
              else if (state[0] === 1) ts.cached = { state: 1, until: performance.now() + state[1] };
            } catch (e) {
              // The store is unreachable: the target is tried (a cooldown is an optimisation).
              logger.debug({ llm: name, target, err: (e as Error).message }, 'router: circuit state unavailable');
            }
          }
          if (state[0] === 1 || state[0] === 3) {
            ts.state = state[0] === 1 ? 'open' : 'half-open';
            errors.push(state[0] === 1 ? `'${target}' cooling down (${Math.ceil(state[1] / 1000)} s left)` : `'${target}' cooling down (being probed)`);
            continue;
          }
          probe = state[0] === 2;
          ts.state = probe ? 'half-open' : 'closed';
        }
        ts.calls++;
        const t0 = performance.now();
        let r: T;
        try {
          r = await invoke(provider, {
            ...opts,
            timeoutMs: attemptMs,
            via: [...via, this],
            onRetry: () => {
              ts.retries++;
              this.stats.retries++;
              opts.onRetry?.();
            },
            onDelta,
          });
        } catch (e) {
          const err = toLlmError(e);
          ts.failures++;
          ts.cached = undefined; // the next call asks the store again
          lastKind = err.kind;
          const what = `LLM '${name}' target '${target}'`;
          if (err.kind === 'aborted' && opts.signal?.aborted) return fail(err.withMessage(`LLM '${name}' request aborted`));
          const moves = !emitted && this.fallsBack(err);
          // A failure of the target itself (not of the input) counts toward its cooldown.
          // (Not its input's fault, not this instance's own pool being full, not a config it lacks.)
          const counts = moves && !err.contextLength && err.kind !== 'config' && err.kind !== 'unsupported' && err.kind !== 'pool';
          if (counts && this.cfg.cooldownS > 0) {
            const opened = await env!.circuits
              .circuitFail(base, this.cfg.failures, this.cfg.failureWindowS * 1000, this.cfg.cooldownS * 1000, probe)
              .catch(() => false);
            if (opened) {
              ts.cooldowns++;
              ts.state = 'open';
              ts.cached = { state: 1, until: performance.now() + this.cfg.cooldownS * 1000 };
              logger.warn({ llm: name, target, cooldownS: this.cfg.cooldownS, cause: err.message }, 'router: target cooled down');
            }
          } else if (probe && (err.kind === 'http' || err.contextLength)) {
            // The target answered (a 400 of this input, say): it is up, the probe closes the circuit.
            // A probe that never reached it leaves its lease to run out, and another caller probes.
            await env!.circuits.circuitOk(base).catch(() => undefined);
          }
          const bare = bareMessage(err);
          if (!moves) return fail(err.withMessage(/^(request|response)\b/.test(bare) ? `${what} ${bare}` : `${what}: ${bare}`));
          errors.push(/^(request|response)\b/.test(bare) ? `'${target}' ${bare}` : `'${target}': ${bare}`);
          if (i < order.length - 1) {
            ts.fallbacks++;
            logger.debug({ llm: name, target, cause: err.message }, 'router: falling back to the next target');
          }
          continue;
        }
        ts.latency.add(performance.now() - t0);
        ts.state = 'closed';
        if (probe) {
          await env!.circuits.circuitOk(base).catch(() => undefined);
          logger.info({ llm: name, target }, 'router: target answered its probe, cooldown over');
        }
        const unusable = check(target, r);
        if (unusable) return fail(routerError(unusable, 'unsupported'));
        const u = usageOf(r);
        this.stats.record(performance.now() - start, true, u.promptTokens, u.completionTokens);
        return r;
      }
      const kind = lastKind === 'timeout' || errors.some((e) => e.includes('timed out')) ? 'timeout' : lastKind;
      return fail(routerError(`every target failed: ${errors.join('; ')}`, kind));
    } finally {
      this.stats.inFlight--;
    }
  }

  chat(messages: ChatMessage[], opts: ChatOptions = {}): Promise<ChatResult> {
    return this.run(
      'chat',
      opts,
      (p, o) => p.chat(messages, o),
      () => undefined,
      (r) => r.usage,
    );
  }

  async embed(texts: string[], opts: EmbedOptions = {}): Promise<number[][]> {
    if (Array.isArray(texts) && texts.length === 0) return [];
    return this.run(
      'embed',
      opts,
      (p, o) => p.embed(texts, o),
      (target, vecs) => {
        const n = vecs[0]?.length;
        if (n === undefined) return undefined;
        if (!this.dim) this.dim = { n, target };
        else if (this.dim.n !== n) {
          return `target '${target}' gives ${n}-dimensional embeddings, target '${this.dim.target}' gave ${this.dim.n}: the targets of a router must give one dimension`;
        }
        return undefined;
      },
      () => ({ promptTokens: 0, completionTokens: 0 }),
    );
  }

  close(): void {
    this.closed = true;
  }
}
