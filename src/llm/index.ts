/**
 * The LLM provider layer. The command layer's whole API:
 *
 *   const cfg = parseLlmConfig(type, params);    // CREATE-LLM validation (throws CommandError)
 *   const llm = createProvider(cfg);             // cheap, no network
 *   await llm.chat([{ role: 'user', content }], { timeoutMs, signal, onDelta, env });
 *                                                // env: router targets by key, the circuit store
 *                                                // (shared cooldowns), the server's llm-timeout
 *   await llm.embed(texts, { timeoutMs, signal });
 *   llm.stats.snapshot();                        // INFO llm
 *   redactConfig(cfg);                           // LLM.INFO (no secrets)
 *   sealConfig(cfg, box);                        // persistence (type + params, secrets sealed)
 *   parseStoredConfig(type, params, box);        // a stored definition back (sealed secrets opened)
 *   llm.close();                                 // when the key is overwritten or deleted
 *   makeLlmPolicy({ allowHosts, envAllow, keyHosts }); // the operator's policy: env.policy, parseLlmConfig's opts
 *
 * Every failure is an LlmError (a CommandError: `-ERR <message>`), with a message that names
 * the cause and never contains an API key.
 */
import { lockedMessage, type LlmConfig } from './config.js';
import { LocalProvider } from './local.js';
import { LockedProvider } from './locked.js';
import { OpenAICompatibleProvider } from './openai-provider.js';
import { RouterProvider } from './router.js';
import type { LlmProvider } from './types.js';

export * from './types.js';
export {
  parseLlmConfig,
  redactConfig,
  sealConfig,
  parseStoredConfig,
  unsealedSecrets,
  lockedMessage,
  makeLlmPolicy,
  assertKeyHostAllowed,
  DEFAULT_LLM_POLICY,
  DEFAULT_KEY_HOSTS,
  type LlmPolicy,
  type LlmPolicyOptions,
  parseRequestFields,
  isEnvAllowed,
  DEFAULT_ENV_ALLOW,
  isHostAllowed,
  resolveApiKey,
  envVarName,
  joinUrl,
  parseDuration,
  DEFAULT_TIMEOUT_MS,
  type LlmConfig,
  type OpenAIConfig,
  type AzureOpenAIConfig,
  type LocalConfig,
  type RouterConfig,
  type HttpConfig,
  type LockedSecrets,
} from './config.js';
export { LlmError, type LlmErrorKind } from './errors.js';
export { LlmStats, LATENCY_WINDOW } from './stats.js';
export { localEmbed, tokenize, LocalProvider } from './local.js';
export { OpenAICompatibleProvider, MAX_EMBED_BATCH, DEFAULT_IDLE_TIMEOUT_MS } from './openai-provider.js';
export { RouterProvider, routerInfoLines, circuitBase, CIRCUIT_CACHE_MS, knownEmbeddingDim, type TargetSnapshot } from './router.js';

/**
 * A provider for a parsed config. No network happens here. A config whose sealed secrets could not
 * be opened gets a provider that refuses every call, naming the LLM by `name()` (it follows RENAME).
 */
export function createProvider(config: LlmConfig, name?: () => string): LlmProvider {
  if (config.type !== 'local' && config.locked) {
    const locked = config.locked;
    return new LockedProvider(config.type, () => lockedMessage(locked, name?.()));
  }
  switch (config.type) {
    case 'local':
      return new LocalProvider(config.dim);
    case 'openai':
    case 'azure_openai':
      return new OpenAICompatibleProvider(config, name);
    case 'router':
      return new RouterProvider(config, name);
  }
}
