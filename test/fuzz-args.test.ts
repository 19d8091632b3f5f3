/**
 * Argument fuzzing of every LLM.* command in the command table (src/commands/table.ts: a command
 * added there is fuzzed here without any change), against a prepared state: a local LLM, an
 * OpenAI-compatible LLM (the fake server, for chat answers), vector stores with items and
 * attributes, a prompt app, a search app, a chat app with history, and an ordinary Redis key.
 *
 * Each invocation gets random option tokens (known, unknown, wrong case, missing values,
 * duplicates, `--`), random values (numbers such as 1e3, -1, 4294967296, 12abc; JSON malformed,
 * deep, huge or of the wrong type; embeddings malformed or of the wrong dimension; ids; broken
 * mustache templates; broken filters; binary garbage) and random positional counts.
 *
 * Checked for every reply: it comes within 2 s; it is an error (`-ERR ...`, `-WRONGTYPE ...`, any
 * `-UPPERCASE message`) but never "internal error", or a result of the command's shape; it never
 * carries the API key. Checked after every error: the state is what it was before — KEYS, TYPE,
 * LLM.INFO of each object (config, items, dim), LLM.SIZE and LLM.GET --WITHATTRS of sampled ids,
 * LLM.HISTORY of the chat sessions, the ordinary key (compared per run of consecutive errors and
 * read-only commands, to keep it fast). After every batch another connection must get PONG.
 * A failing input is shrunk (arguments dropped one by one while it still fails) before it is shown.
 *
 * Seeded: FUZZ_SEED=<n> replays a run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { client, startServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import type { LlmServer } from '../src/server/server.js';
import { LLM_COMMANDS } from '../src/commands/table.js';
import type { CommandSpec, OptionSpec } from '../src/commands/spec.js';
import { parseCommandArgs } from '../src/commands/args.js';
import { Rng, caseSeed } from '../harness/fuzz-frames.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0xa1b2c3d4);
const BATCHES_PER_COMMAND = Number(process.env.FUZZ_BATCHES ?? 3);
const COMMANDS_PER_BATCH = 50;
const REPLY_TIMEOUT_MS = 2000;
const API_KEY = 'sk-fuzz-SECRET-4c1d';

let redis: RedisServerHandle;
let fake: FakeOpenAI;
let server: LlmServer;
let r: Redis;
let pinger: Redis;
const processErrors: string[] = [];
const onProcessError = (e: unknown) => processErrors.push(String((e as Error)?.stack ?? e));

type Arg = string | Buffer;
type Reply = unknown;

// ---- the prepared state --------------------------------------------------------------------------

const OBJECT_KEYS = ['fa:local', 'fa:gpt', 'fa:store', 'fa:vec', 'fa:nodim', 'fa:mem', 'fa:app', 'fa:search', 'fa:chat'];
const KEY_POOL = [...OBJECT_KEYS, 'fa:none', 'fa:str', '__llm__:x', '', 'fa:new:1', 'fa:new:2'];
const SAMPLE_IDS = [...Array(24).keys()].map(String).concat(['4294967295', '100']);
const SESSIONS = ['default', 's1'];

async function restore(): Promise<void> {
  const existing = (await r.keysBuffer('*')) as Buffer[];
  if (existing.length > 0) await r.del(...existing);
  const p = r.pipeline();
  const cmd = (...a: Arg[]) => p.call(...(a as [string, ...Arg[]]));
  cmd('SET', 'fa:str', 'plain value');
  cmd('LLM.CREATE-LLM', 'fa:local', '--TYPE', 'local', '--PARAMS', '{"dim":16}');
  cmd('LLM.CREATE-LLM', 'fa:gpt', '--PARAMS', JSON.stringify({ api_key: API_KEY, base_url: fake.url, embedding: { dimensions: 16 } }));
  cmd('LLM.CREATE-VECTOR-STORE', 'fa:store', '--LLM', 'fa:local');
  for (let i = 1; i <= 12; i++) {
    const attrs = JSON.stringify({ t: i % 2 ? 'odd' : 'even', n: i, tags: [`g${i % 3}`] });
    cmd('LLM.ADD', 'fa:store', '--ID', String(i), '--ATTRS', attrs, `item number ${i} about ${i % 2 ? 'redis' : 'vectors'}`);
  }
  cmd('LLM.CREATE-VECTOR-STORE', 'fa:vec', '--PARAMS', '{"space":"cosine","dim":4}');
  for (let i = 0; i < 6; i++) cmd('LLM.ADD', 'fa:vec', '--EMBEDDING', [1, i, i % 2, 0.5].join(','), `v${i}`);
  cmd('LLM.CREATE-VECTOR-STORE', 'fa:mem', '--LLM', 'fa:local');
  cmd('LLM.CREATE-VECTOR-STORE', 'fa:nodim'); // empty, no LLM: its first vector fixes its dimension
  cmd('LLM.CREATE-APP', 'fa:app', '--LLM', 'fa:gpt', '--PROMPT', 'Say hi to {{name}}', '--PARAMS', '{"temperature":0}');
  cmd('LLM.CREATE-SEARCH', 'fa:search', '--LLM', 'fa:gpt', '--VECTOR-STORE', 'fa:store', '--K', '2');
  cmd('LLM.CREATE-CHAT', 'fa:chat', '--LLM', 'fa:gpt', '--VECTOR-STORE', 'fa:mem', '--HISTORY', '{"summary_cnt":4,"msg_ctx_cnt":4}');
  cmd('LLM.RUN', 'fa:chat', 'my name is Ada');
  cmd('LLM.RUN', 'fa:chat', '--SESSION', 's1', 'I like graphs');
  cmd('LLM.RUN', 'fa:chat', 'what is my name?');
  const res = (await p.exec()) ?? [];
  const errs = res.filter(([e]) => e).map(([e]) => String(e));
  if (errs.length > 0) throw new Error(`prepared state failed: ${errs.join('; ')}`);
}

/**
 * Streams named by LLM.RUN --STREAM: a failed run appends its error entry there by contract
 * ("a final entry with done ... or error"), so they are not part of the state an error must keep.
 */
const streamKeys = new Set<string>();

/** The observable state (what an error must not change), as a canonical string. */
async function snap(): Promise<string> {
  // Key names as raw bytes (latin1 strings in the state): binary names must not be mangled.
  const raw = ((await r.keysBuffer('*')) as Buffer[]).sort(Buffer.compare);
  const p0 = r.pipeline();
  for (const k of raw) p0.type(k);
  const types = ((await p0.exec()) ?? []).map(([, t]) => t);
  const kept = raw.filter((k, i) => !(types[i] === 'stream' && streamKeys.has(k.toString('latin1'))));
  const p1 = r.pipeline();
  for (const k of kept) p1.type(k).call('LLM.INFO', k);
  const res1 = (await p1.exec()) ?? [];
  const state: Record<string, unknown> = {};
  const stores: Buffer[] = [];
  const chats: Buffer[] = [];
  const strings: Buffer[] = [];
  kept.forEach((kb, i) => {
    const k = kb.toString('latin1');
    const type = res1[2 * i]?.[1];
    const info = res1[2 * i + 1]?.[1] as unknown[] | null;
    let stable: unknown = null;
    if (Array.isArray(info)) {
      const m = new Map<string, unknown>();
      for (let j = 0; j + 1 < info.length; j += 2) m.set(String(info[j]), info[j + 1]);
      // Counters (requests, errors, latency, memory, log length, snapshot time) may move on
      // their own; the configuration and the contents may not.
      stable = { type: m.get('type'), created_at: m.get('created_at'), config: m.get('config'), items: m.get('items'), dim: m.get('dim') };
      if (m.get('type') === 'llm-vector-store') stores.push(kb);
      if (m.get('type') === 'llm-chat') chats.push(kb);
    } else if (type === 'string') strings.push(kb);
    state[k] = { type, info: stable };
  });
  const p2 = r.pipeline();
  for (const s of stores) {
    p2.call('LLM.SIZE', s);
    for (const id of SAMPLE_IDS) p2.call('LLM.GET', s, '--WITHATTRS', id);
  }
  for (const c of chats) for (const s of SESSIONS) p2.call('LLM.HISTORY', c, '--SESSION', s);
  for (const s of strings) p2.get(s);
  const res2 = (await p2.exec()) ?? [];
  let i = 0;
  for (const s of stores) {
    const items: unknown[] = [];
    const size = res2[i++]?.[1];
    for (const id of SAMPLE_IDS) items.push([id, res2[i++]?.[1]]);
    Object.assign(state[s.toString('latin1')] as object, { size, items });
  }
  for (const c of chats) for (const s of SESSIONS) Object.assign(state[c.toString('latin1')] as object, { [`history:${s}`]: res2[i++]?.[1] });
  for (const s of strings) Object.assign(state[s.toString('latin1')] as object, { value: res2[i++]?.[1] });
  return JSON.stringify(state);
}

/** Invariants of any state: a store's dimension within the documented limit (1..65536). */
function invariantProblem(state: string): string | null {
  for (const [k, v] of Object.entries(JSON.parse(state) as Record<string, { info?: { dim?: number } }>)) {
    const dim = v.info?.dim;
    if (typeof dim === 'number' && dim > 65_536) return `store ${k} has ${dim} dimensions (limit 65536)`;
  }
  return null;
}

function stateDiff(a: string, b: string): string {
  const x = JSON.parse(a) as Record<string, unknown>;
  const y = JSON.parse(b) as Record<string, unknown>;
  const out: string[] = [];
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
    const sa = JSON.stringify(x[k]);
    const sb = JSON.stringify(y[k]);
    if (sa !== sb) out.push(`${k}: ${(sa ?? 'absent').slice(0, 300)} -> ${(sb ?? 'absent').slice(0, 300)}`);
  }
  return out.join('\n    ');
}

// ---- values ----------------------------------------------------------------------------------------

const deepJson = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepObj = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
const f32 = (vals: number[]) => Buffer.from(new Float32Array(vals).buffer);

const INTS = ['1', '0', '-1', '2', '10', '1e3', '4294967296', '12abc', '', ' 1', '1 ', '9007199254740993', '99999999999999999999', '0x10', '+1', '01', '3.5', '100000', '100001', '86400000', '86400001', '1000000000', '1000000001', '-0', '9'.repeat(400)];
const IDS = ['1', '0', '2', '7', '12', '13', '4294967295', '4294967296', '-1', '01', '1e3', '', ' 1', 'abc', '99999999999', '18446744073709551615', '18446744073709551616', '3.0', '+3'];
const CSV = [
  '0.1,0.2,0.3,0.4',
  Array(16).fill('0.25').join(','),
  Array(16).fill('1').join(',') + ',',
  Array(15).fill('1').join(','),
  '1,2',
  '',
  ',',
  '1,,2,3',
  'a,b,c,d',
  '1e39,0,0,0',
  'nan,1,1,1',
  'inf,1,1,1',
  ' 1 , 2 , 3 , 4 ',
  '1;2;3;4',
  '0x1,2,3,4',
  '0,0,0,0',
  Array(100_000).fill('0.5').join(','),
];
const FP32 = [Buffer.alloc(4 * 65_537, 0x3f), Buffer.alloc(4 * 1_000_000, 0x3e), f32([0.1, 0.2, 0.3, 0.4]), f32(Array(16).fill(0.5)), Buffer.alloc(15, 1), Buffer.alloc(0), f32([NaN, 1, 1, 1]), f32([Infinity, 0, 0, 0]), f32([1, 2]), f32([0, 0, 0, 0]), Buffer.alloc(4 * 70_000, 0x3f)];
const JSON_JUNK = ['{', '{"a":', '[1,2', 'null', '1', '"s"', '[]', '{}', 'true', '{"a":1}garbage', deepJson(10_000), deepObj(5_000), JSON.stringify({ s: 'x'.repeat(200_000) }), '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"x":1}}}', '\u0000', 'NaN', '1e400', '{"a":1e400}', '{"a":-0}'];
const ATTRS = ['{"__proto__":"x"}', '{"constructor":1,"toString":["a"]}', '{"t":"odd"}', '{"n":5,"tags":["a","b"]}', '{"bad key":1}', '{"a":{"b":1}}', '{"a":[1,2]}', '{"a":null}', '{"1a":1}', '{"a-b_c":true}', '{"a":1e400}', ...JSON_JUNK];
const TEMPLATES = ['Hi {{name}}', '{{', '}}', '{{#a}}', '{{/a}}', '{{#a}}x{{/b}}', '{{>partial}}', '{{{x}}', '{{{x}}}', '{{=<% %>=}}<%x%>', '{{=<% %>', '{{! comment}}', '{{&x}}', '{{^x}}none{{/x}}', '{{#a}}'.repeat(3000) + '{{/a}}'.repeat(3000), '{{x.y.z}}', '{{.}}', '', 'plain', 'x'.repeat(100_000), '{{ name }}', '{{#context}}{{.}}{{/context}}{{question}}', '{{history}}{{input}}', '{{constructor}}', '{{#toString}}x{{/toString}}', '{{__proto__.x}}', '{{constructor.constructor}}'];
const FILTERS = ['t == "odd"', 'n >= 3 and t != "even"', '"g1" in tags', 'n in [1, 2, 3]', 'not (n < 5)', '(', ')', 'a ==', 'a = 1', '"unterminated', "'x", '((((((((((a))))))))))', '('.repeat(100) + 'a' + ')'.repeat(100), 'not '.repeat(1000) + 'a', '!'.repeat(4000) + 'a', 'a and', 'or b', '[1,2]', '1', '"s"', 'true', 'a in', 'a in [', 'a in [1,', 'a < < 1', '&&', '||', '', ' ', 'x'.repeat(5000), 'a == 1e999', 'a == -', '.a == 1', 'a == [1]', '\u0000', 'ä == 1', 'a == "\\"', 'a == "\\', 'constructor', '__proto__ == "x"', 'toString == 1', 'not hasOwnProperty'];
const LLM_PARAMS = [
  '{"dim":16}',
  '{"dim":8}',
  '{"dim":7}',
  '{"dim":4097}',
  '{"dim":"x"}',
  JSON.stringify({ api_key: API_KEY, base_url: 'http://127.0.0.1:1' }),
  '{"api_key":1}',
  '{"api_key":"k","base_url":"ftp://x"}',
  '{"api_key":"k","base_url":"http://user:pw@x"}',
  '{"api_key":"k","http":{"socket_timeout":"5x"}}',
  '{"api_key":"k","http":{"max_retries":11}}',
  '{"api_key":"k","http":{"pool":{"size":0}}}',
  '{"api_key":"k","chat":[1]}',
  '{"api_key":"$NO_SUCH_API_KEY"}',
  '{"api_key":"$HOME"}',
  '{"api_key":"k","api_version":"2024","endpoint":"http://x"}',
  `{"api_key":"${API_KEY}",`,
  `${API_KEY}`,
  ...JSON_JUNK,
];
const STORE_PARAMS = ['{"dim":4}', '{"space":"cosine","dim":16}', '{"space":"ip"}', '{"dim":0}', '{"dim":65537}', '{"m":1}', '{"m":257}', '{"space":"hamming"}', '{"space":1}', '{"unknown":1}', '{"dim":1e9}', '{"dim":4.5}', '{"max_elements":4294967296}', '{"ef":0}', '{"ef_construction":100001}', ...JSON_JUNK];
const CACHE = ['{"exact":true}', '{"semantic":{"threshold":0.9}}', '{"semantic":{"threshold":2}}', '{"exact":"yes"}', '{"ttl":-1,"exact":true}', '{"ttl":1.5,"exact":true}', '{"exact":true,"x":1}', '{"semantic":{"threshold":0.5,"llm":1}}', ...JSON_JUNK];
const RATELIMIT = ['{"requests":5,"window":60}', '{"tokens":100,"window":1,"per_scope":true}', '{"window":0,"requests":1}', '{"requests":1e10,"window":1}', '{"requests":1}', '{"per_scope":"y","requests":1,"window":1}', '{"x":1}', ...JSON_JUNK];
const HISTORY = ['{"summary_cnt":2}', '{"summary_prompt":"{{"}', '{"summary_prompt":"Sum: {{conversation}}"}', '{"summary_prompt":5}', '{"ttl":-1}', '{"ttl":1}', '{"msg_ctx_cnt":1000001}', '{"x":1}', ...JSON_JUNK];
const VARS = ['{"__proto__":{"name":"x"}}', '{"constructor":"c","name":"n"}', '{"name":"x"}', '{"name":{"a":1}}', '{"name":null}', '{"name":["a","b"]}', '{"history":"h"}', ...JSON_JUNK];
const LLM_REFS = ['fa:local', 'fa:gpt', 'fa:none', 'fa:app', 'fa:str', '{"key":"fa:local"}', '{"key":"fa:local","params":{"dimensions":4}}', '{"key":""}', '{"key":"x","params":[1]}', '{', ' {"key":1}', '', '__llm__:x'];
const STORES = ['fa:store', 'fa:vec', 'fa:mem', 'fa:none', 'fa:app', 'fa:str', '__llm__:x', ''];
const TYPES = ['local', 'openai', 'azure_openai', 'LOCAL', 'hnsw', 'HNSW', 'flat', '', 'x'];
const STREAMS = ['fa:stream:1', 'fa:stream:2', 'fa:str', 'fa:app', '__llm__:s', ''];
const TEXTS = ['hello world', 'what is redis', '', ' ', 'x'.repeat(100_000), 'ü ñ 中文 🙂', '--', '--K', '{{name}}', '\r\n'];

function garbage(rng: Rng): Buffer {
  return rng.bytes(rng.range(1, 48));
}

/** A value for an option: mostly from the option's own pool, sometimes anything at all. */
const DEEP = [deepObj(5_000), deepJson(5_000), `{"api_key":"k","chat":${deepObj(5_000)}}`, `{"key":"fa:local","params":${deepObj(5_000)}}`, deepObj(129), deepObj(127)];

function valueFor(rng: Rng, spec: CommandSpec, opt: OptionSpec): Arg {
  if ((opt.type === 'json' || opt.token === '--PARAMS' || opt.token === '--LLM') && rng.chance(0.25)) return rng.pick(DEEP);
  if (rng.chance(0.12)) return rng.chance(0.5) ? garbage(rng) : rng.pick([...INTS, ...TEXTS, ...JSON_JUNK.slice(0, 10)]);
  const t = opt.token.toUpperCase();
  switch (t) {
    case '--ID':
      return rng.pick(IDS);
    case '--EMBEDDING':
      return rng.pick(CSV);
    case '--EMBEDDING-FP32':
      return rng.pick(FP32);
    case '--ATTRS':
      return rng.pick(ATTRS);
    case '--PARAMS':
      return spec.name === 'LLM.CREATE-LLM' ? rng.pick(LLM_PARAMS) : spec.name === 'LLM.CREATE-VECTOR-STORE' ? rng.pick(STORE_PARAMS) : rng.pick(['{}', '{"temperature":0.5}', ...JSON_JUNK]);
    case '--TYPE':
      return rng.pick(TYPES);
    case '--LLM':
      return rng.pick(LLM_REFS);
    case '--PROMPT':
      return rng.pick(TEMPLATES);
    case '--VECTOR-STORE':
      return rng.pick(STORES);
    case '--FILTER':
      return rng.pick(FILTERS);
    case '--CACHE':
      return rng.pick(CACHE);
    case '--RATELIMIT':
      return rng.pick(RATELIMIT);
    case '--HISTORY':
      return rng.pick(HISTORY);
    case '--VARS':
      return rng.pick(VARS);
    case '--STREAM':
      return rng.pick(STREAMS);
    case '--SESSION':
      return rng.pick(['default', 's1', 's2', '', 'x'.repeat(10_000)]);
    case '--SCOPE':
      return rng.pick(['acme', '', '*', 'x'.repeat(10_000)]);
  }
  if (opt.type === 'integer') return rng.chance(0.7) ? rng.pick(INTS) : String(rng.range(opt.min ?? -5, Math.min(opt.max ?? 100, 100)));
  if (opt.type === 'json') return rng.pick(JSON_JUNK);
  return rng.chance(0.5) ? rng.pick(TEXTS) : garbage(rng);
}

function positionalFor(rng: Rng, spec: CommandSpec, index: number): Arg {
  const p = spec.args[index];
  if (rng.chance(0.1) || !p) return rng.chance(0.5) ? garbage(rng) : rng.pick([...TEXTS, ...IDS]);
  if (p.name === 'id') return rng.pick(IDS);
  if (p.type === 'json') return rng.pick(ATTRS);
  if (p.type === 'integer') return rng.pick(INTS);
  return rng.pick(TEXTS);
}

/** Values that are valid for an option (near-valid invocations start from these). */
function validValue(rng: Rng, spec: CommandSpec, opt: OptionSpec): Arg {
  const t = opt.token.toUpperCase();
  const d16 = () => Array.from({ length: 16 }, () => (rng.next() - 0.5).toFixed(3)).join(',');
  switch (t) {
    case '--ID':
      return rng.pick(['1', '2', '5', '13', '100', '4294967295']);
    case '--EMBEDDING':
      return rng.chance(0.5) ? d16() : '0.5,0.1,0.9,0.2';
    case '--EMBEDDING-FP32':
      return rng.chance(0.5) ? f32(Array(16).fill(0.3)) : f32([0.5, 0.1, 0.9, 0.2]);
    case '--ATTRS':
      return rng.pick(['{"t":"odd"}', '{"n":5,"tags":["g1","b"]}', '{}']);
    case '--PARAMS':
      if (spec.name === 'LLM.CREATE-LLM') return rng.pick(['{"dim":16}', JSON.stringify({ api_key: API_KEY, base_url: fake.url })]);
      if (spec.name === 'LLM.CREATE-VECTOR-STORE') return rng.pick(['{"dim":4}', '{"space":"cosine","dim":16}', '{}']);
      return rng.pick(['{}', '{"temperature":0.5}']);
    case '--TYPE':
      return spec.name === 'LLM.CREATE-LLM' ? rng.pick(['local', 'openai']) : 'hnsw';
    case '--LLM':
      return rng.pick(['fa:local', 'fa:gpt']);
    case '--PROMPT':
      return rng.pick(['Hi {{name}}', 'plain prompt', '{{#context}}{{.}} {{/context}}{{question}}', '{{history}} be brief']);
    case '--VECTOR-STORE':
      return rng.pick(['fa:store', 'fa:mem']);
    case '--FILTER':
      return rng.pick(FILTERS.slice(0, 5));
    case '--CACHE':
      return rng.pick(CACHE.slice(0, 2));
    case '--RATELIMIT':
      return rng.pick(RATELIMIT.slice(0, 2));
    case '--HISTORY':
      return rng.pick(HISTORY.slice(0, 3));
    case '--VARS':
      return '{"name":"Ada"}';
    case '--STREAM':
      return rng.pick(['fa:stream:1', 'fa:stream:2']);
    case '--SESSION':
      return rng.pick(SESSIONS.concat('s2'));
    case '--NX':
    case '--XX':
      return '';
    case '--SCOPE':
      return 'acme';
  }
  if (opt.type === 'integer') return String(rng.range(opt.min ?? 1, (opt.min ?? 1) + 10));
  if (opt.type === 'json') return '{}';
  return 'text';
}

/** Keys a command is meant for (others get the whole pool; a new command is covered that way). */
const KEYS_FOR: Record<string, string[]> = {
  'LLM.CREATE-LLM': ['fa:new:1', 'fa:local', 'fa:gpt'],
  'LLM.CREATE-APP': ['fa:new:1', 'fa:app'],
  'LLM.CREATE-SEARCH': ['fa:new:1', 'fa:search'],
  'LLM.CREATE-CHAT': ['fa:new:1', 'fa:chat'],
  'LLM.CREATE-VECTOR-STORE': ['fa:new:1', 'fa:vec'],
  'LLM.ADD': ['fa:store', 'fa:vec', 'fa:nodim'],
  'LLM.GET': ['fa:store', 'fa:vec', 'fa:nodim'],
  'LLM.REM': ['fa:store', 'fa:vec', 'fa:nodim'],
  'LLM.SIZE': ['fa:store', 'fa:vec', 'fa:nodim'],
  'LLM.KNN': ['fa:store', 'fa:vec', 'fa:nodim'],
  'LLM.SETATTRS': ['fa:store', 'fa:vec', 'fa:nodim'],
  'LLM.RUN': ['fa:app', 'fa:search', 'fa:chat'],
  'LLM.CACHE-CLEAR': ['fa:app', 'fa:search', 'fa:chat'],
  'LLM.HISTORY': ['fa:chat'],
  'LLM.FORGET': ['fa:chat'],
};

/** A valid-looking invocation, then at most one mutation (a wild value, a dropped or extra token...). */
function nearValid(rng: Rng, spec: CommandSpec): Arg[] {
  const args: Arg[] = [spec.name, rng.pick(KEYS_FOR[spec.name] ?? KEY_POOL)];
  // A few options (many at once are mostly mutually exclusive, e.g. --SESSION on a prompt app).
  const opts = [...spec.options].sort(() => rng.next() - 0.5).slice(0, rng.int(4));
  for (const opt of opts) {
    args.push(opt.token);
    if (opt.type !== 'pure-token') args.push(validValue(rng, spec, opt));
  }
  for (const [i, p] of spec.args.entries()) {
    if (p.optional && rng.chance(0.3)) break;
    if (p.name === 'id') args.push(rng.pick(['1', '2', '3', '5', '13']));
    else if (p.type === 'json') args.push(rng.pick(['{"t":"even"}', '{}', '{"tags":["x"]}']));
    else args.push(rng.pick(['hello world', 'what is redis', 'my name is Ada', 'vectors']));
    void i;
  }
  if (rng.chance(0.3)) return args;
  const at = rng.range(1, Math.max(1, args.length - 1));
  // Most mutations change one option's value to anything from its pool (valid structure, bad value).
  const given = spec.options.filter((o) => o.type !== 'pure-token' && args.includes(o.token));
  if (given.length > 0 && rng.chance(0.6)) {
    const o = rng.pick(given);
    args[args.indexOf(o.token) + 1] = valueFor(rng, spec, o);
    return args;
  }
  switch (rng.int(6)) {
    case 0: {
      const spec0 = spec.options.length > 0 ? rng.pick(spec.options) : undefined;
      if (spec0) args[at] = valueFor(rng, spec, spec0);
      break;
    }
    case 1:
      args.splice(at, 1);
      break;
    case 2:
      args.splice(at, 0, rng.pick(['--FOO', '--', '--k', ...spec.options.map((o) => o.token)]));
      break;
    case 3:
      args.push(rng.pick(TEXTS));
      break;
    case 4:
      args[at] = garbage(rng);
      break;
    default:
      args[at] = String(args[at]).toLowerCase();
  }
  return args;
}

/** One invocation of `spec` with random options, values and positionals. */
function invocation(rng: Rng, spec: CommandSpec): Arg[] {
  const args: Arg[] = [rng.pick([spec.name, spec.name.toLowerCase(), spec.name[0] + spec.name.slice(1).toLowerCase()])];
  if (rng.chance(0.97)) args.push(rng.pick(spec.name.startsWith('LLM.CREATE') && rng.chance(0.4) ? ['fa:new:1', 'fa:new:2'] : KEY_POOL));
  const nOpts = rng.int(5);
  let last: OptionSpec | undefined;
  for (let i = 0; i < nOpts; i++) {
    const k = rng.int(100);
    if (k < 8) {
      args.push(rng.pick(['--FOO', '--', '---', '--k', '-K', '--EMBEDDINGS', '--id=1']));
      continue;
    }
    const opt = spec.options.length === 0 ? undefined : k < 18 && last ? last : rng.pick(spec.options); // duplicates too
    if (!opt) continue;
    last = opt;
    args.push(rng.pick([opt.token, opt.token.toLowerCase(), opt.token.toUpperCase(), opt.token[0] + opt.token.slice(1).toLowerCase()]));
    if (opt.type !== 'pure-token' && !rng.chance(0.06)) args.push(valueFor(rng, spec, opt)); // sometimes the value is missing
  }
  const required = spec.args.filter((a) => !a.optional).length;
  const nPos = rng.chance(0.75) ? rng.range(required, spec.args.length) : rng.int(spec.args.length + 3);
  for (let i = 0; i < nPos; i++) args.push(positionalFor(rng, spec, i));
  return args;
}

// ---- reply shapes -----------------------------------------------------------------------------------

const isBulk = (v: unknown) => Buffer.isBuffer(v);
const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
/** An item id as replied: an integer >= 0, or (above 2^63 - 1, beyond a RESP integer) its decimal text. */
const isId = (v: unknown) =>
  (isInt(v) && (v as number) >= 0) ||
  (isBulk(v) && /^[1-9][0-9]{18,19}$/.test(String(v)) && BigInt(String(v)) > 0x7fffffffffffffffn && BigInt(String(v)) <= 0xffffffffffffffffn);
const isFlatPairs = (v: unknown) => Array.isArray(v) && v.length % 2 === 0 && v.every((e, i) => (i % 2 === 0 ? isBulk(e) : isBulk(e) || isInt(e)));
/** The value of an option as the server's own option parser sees it (a value that looks like a flag is not one). */
const optionOf = (args: Arg[], token: string): unknown => {
  const spec = LLM_COMMANDS.find((c) => c.name === String(args[0]).toUpperCase());
  if (!spec) return undefined;
  try {
    return parseCommandArgs(spec, args.map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(a)))).opts.get(token.replace(/^--/, '').toLowerCase());
  } catch {
    return undefined;
  }
};
const hasFlag = (args: Arg[], token: string): boolean => optionOf(args, token) !== undefined;

/** Does a successful reply have the shape the command documents? (returns a complaint or null) */
function shapeProblem(name: string, args: Arg[], v: unknown): string | null {
  const ok = (cond: boolean, what: string) => (cond ? null : `expected ${what}`);
  switch (name) {
    case 'LLM.CREATE-LLM':
    case 'LLM.CREATE-APP':
    case 'LLM.CREATE-SEARCH':
    case 'LLM.CREATE-CHAT':
    case 'LLM.CREATE-VECTOR-STORE':
    case 'LLM.REM':
    case 'LLM.SETATTRS':
    case 'LLM.FORGET':
      return ok(v === 0 || v === 1, 'integer 0 or 1');
    case 'LLM.ADD':
      return ok(isId(v), 'an id in [0, 2^64) (an integer; above 2^63 - 1, its decimal text)');
    case 'LLM.SIZE':
    case 'LLM.CACHE-CLEAR':
      return ok(isInt(v) && (v as number) >= 0, 'a non-negative integer');
    case 'LLM.GET':
      if (v === null) return null;
      return ok(Array.isArray(v) && v.length === (hasFlag(args, '--WITHATTRS') ? 3 : 2) && isBulk(v[0]) && isBulk(v[1]) && (v.length === 2 || v[2] === null || isBulk(v[2])), '[data, vector(, attrs)] or nil');
    case 'LLM.KNN': {
      const rowOk = (row: unknown) =>
        Array.isArray(row) && (row.length === 2 || row.length === 3) && isId(row[0]) && isBulk(row[1]) && Number.isFinite(Number(String(row[1]))) && (row.length === 2 || isBulk(row[2]));
      if (hasFlag(args, '--EXPLAIN')) return ok(Array.isArray(v) && v.length === 2 && Array.isArray(v[0]) && (v[0] as unknown[]).every(rowOk) && Array.isArray(v[1]), '[rows, explain]');
      return ok(Array.isArray(v) && v.every(rowOk), 'an array of [id, distance(, data)]');
    }
    case 'LLM.RUN':
      if (Array.isArray(v)) return ok(v.length === 2 && isBulk(v[0]) && Array.isArray(v[1]) && (v[1] as unknown[]).every(isInt), '[answer, [ids]]');
      return ok(isBulk(v), 'a bulk answer');
    case 'LLM.INFO':
      if (v === null) return null;
      return ok(isFlatPairs(v) && String((v as unknown[])[0]) === 'type', 'field/value pairs starting with type');
    case 'LLM.HISTORY':
      return ok(Array.isArray(v) && v.every((m) => Array.isArray(m) && m.length === 2 && isBulk(m[0]) && isBulk(m[1])), 'an array of [role, content]');
    case 'LLM.STATS':
      return ok(isFlatPairs(v), 'field/value pairs');
    default:
      return ok(v !== undefined, 'a reply (no shape declared in this test for a new command: add one)');
  }
}

// ---- running commands --------------------------------------------------------------------------------

interface Outcome {
  kind: 'ok' | 'error' | 'hang' | 'broken';
  value?: unknown;
  error?: string;
}

async function send(args: Arg[]): Promise<Outcome> {
  const stream = optionOf(args, '--STREAM') as Buffer | undefined;
  if (stream) streamKeys.add(stream.toString('latin1'));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'hang' }), REPLY_TIMEOUT_MS);
  });
  const call = r.callBuffer(String(args[0]), ...args.slice(1)).then(
    (value): Outcome => ({ kind: 'ok', value }),
    (err: Error): Outcome => (err.name === 'ReplyError' ? { kind: 'error', error: err.message } : { kind: 'broken', error: `${err.name}: ${err.message}` }),
  );
  const out = await Promise.race([call, timeout]);
  clearTimeout(timer);
  if (out.kind === 'hang' || out.kind === 'broken') {
    // The connection's state is unknown now: start a fresh one.
    r.disconnect();
    r = client(server.port, { returnBuffers: false });
  }
  return out;
}

/** Problems with one outcome, independent of state (null when fine). */
function replyProblem(spec: CommandSpec, args: Arg[], out: Outcome): string | null {
  if (out.kind === 'hang') return `no reply within ${REPLY_TIMEOUT_MS} ms`;
  if (out.kind === 'broken') return `connection/protocol failure: ${out.error}`;
  const text = out.kind === 'error' ? out.error! : JSON.stringify(out.value, (_k, v) => (v?.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : v));
  if (text.includes(API_KEY)) return 'the API key appears in the reply';
  if (out.kind === 'error') {
    if (!/^[A-Z]+ \S/.test(out.error!)) return `malformed error text: ${JSON.stringify(out.error)}`;
    if (/internal error/i.test(out.error!)) return `internal error (an unexpected exception): ${out.error}`;
    return null;
  }
  if (/native code|function \w*\(/.test(text)) return 'JavaScript internals in the reply';
  return shapeProblem(spec.name, args, out.value);
}

/** After a successful LLM.RUN --STREAM --ASYNC, wait until the background run wrote its last entry. */
async function waitForAsyncRun(args: Arg[], runId: unknown): Promise<void> {
  const key = optionOf(args, '--STREAM') as Buffer | undefined;
  if (key === undefined || !Buffer.isBuffer(runId)) return;
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const entries = (await r.xrange(key as string, '-', '+').catch(() => [])) as Array<[string, string[]]>;
    if (entries.some(([, f]) => f.includes(runId.toString()) && f.includes('done'))) return;
    await new Promise((res) => setTimeout(res, 20));
  }
}

const fmt = (args: Arg[]): string =>
  args.map((a) => (Buffer.isBuffer(a) ? `<${a.length} bytes: ${JSON.stringify(a.subarray(0, 24).toString('latin1'))}${a.length > 24 ? '…' : ''}>` : a.length > 80 ? `${JSON.stringify(a.slice(0, 60))}…(${a.length} chars)` : JSON.stringify(a))).join(' ');

/** Does `args`, run alone on the prepared state, still show a problem of the same kind? */
type Kind = 'reply' | 'state' | 'invariant';

async function reproduces(spec: CommandSpec, args: Arg[], kind: Kind): Promise<boolean> {
  await restore();
  const before = await snap();
  const out = await send(args);
  if (kind === 'reply') return replyProblem(spec, args, out) !== null;
  if (kind === 'invariant') return invariantProblem(await snap()) !== null;
  return (out.kind === 'error' || !spec.flags.includes('write')) && (await snap()) !== before;
}

/** Drops arguments (after name and key) one at a time while the problem persists. */
async function shrink(spec: CommandSpec, args: Arg[], kind: Kind): Promise<Arg[]> {
  if (!(await reproduces(spec, args, kind))) return args; // depends on what ran before it
  let cur = args;
  for (let i = cur.length - 1; i >= 2; i--) {
    const cand = cur.slice(0, i).concat(cur.slice(i + 1));
    if (await reproduces(spec, cand, kind)) cur = cand;
  }
  return cur;
}

// ---- the run ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  process.on('unhandledRejection', onProcessError);
  process.on('uncaughtException', onProcessError);
  redis = await startRedis();
  fake = await startFakeOpenAI({ dim: 16 });
  server = await startServer({ redis: redis.url });
  await server.loadingDone;
  r = client(server.port);
  pinger = client(server.port);
  await restore();
}, 60_000);

async function restartServer(): Promise<void> {
  r.disconnect();
  pinger.disconnect();
  await server.stop();
  server = await startServer({ redis: redis.url });
  await server.loadingDone;
  r = client(server.port);
  pinger = client(server.port);
}

afterAll(async () => {
  process.off('unhandledRejection', onProcessError);
  process.off('uncaughtException', onProcessError);
  r?.disconnect();
  pinger?.disconnect();
  await server?.stop();
  await fake?.close();
  await redis?.stop();
});

describe('argument fuzzing of every LLM.* command', () => {
  it('the command table is what is fuzzed', () => {
    expect(LLM_COMMANDS.length).toBeGreaterThanOrEqual(17);
    for (const spec of LLM_COMMANDS) expect(spec.name).toMatch(/^LLM\.[A-Z-]+$/);
  });

  it('errors or well-shaped results only; nothing changed by an error; no hang; the server stays up', async () => {
    const findings: string[] = [];
    const seen = new Set<string>();
    const stats: Record<string, { ok: number; error: number; messages: Set<string> }> = {};
    const note = async (spec: CommandSpec, args: Arg[], kind: Kind, what: string) => {
      const key = `${spec.name} ${kind} ${what.slice(0, 60)}`;
      if (seen.has(key) || findings.length >= 12) return;
      seen.add(key);
      const min = await shrink(spec, args, kind);
      findings.push(`${spec.name}: ${what}\n    input:   ${fmt(args)}\n    minimal: ${fmt(min)}`);
    };

    let batchNo = 0;
    for (const spec of LLM_COMMANDS) {
      stats[spec.name] = { ok: 0, error: 0, messages: new Set() };
      // LLM.RUN is flagged readonly as in the original module, but a chat turn is remembered.
      const write = spec.flags.includes('write') || spec.name === 'LLM.RUN';
      for (let b = 0; b < BATCHES_PER_COMMAND; b++) {
        const rng = new Rng(caseSeed(SEED, batchNo++));
        await restore();
        let baseline = await snap();
        /** Commands since `baseline` that must not have changed anything (errors, read-only commands). */
        let unchecked: Arg[][] = [];
        const check = async () => {
          if (unchecked.length === 0) return;
          const now = await snap();
          if (now !== baseline) {
            const diff = stateDiff(baseline, now);
            // Find the culprit: replay the run one command at a time from the prepared state.
            let culprit = unchecked[unchecked.length - 1]!;
            if (unchecked.length > 1) {
              for (const cmd of unchecked) {
                if (await reproduces(spec, cmd, 'state')) {
                  culprit = cmd;
                  break;
                }
              }
            }
            await note(spec, culprit, 'state', `state changed by an error reply or a read-only command:\n    ${diff}`);
            // (note() replays from the prepared state; restore again below before going on)
            await restore();
            baseline = await snap();
            unchecked = [];
            return;
          }
          baseline = now;
          unchecked = [];
        };
        for (let c = 0; c < COMMANDS_PER_BATCH; c++) {
          const args = rng.chance(0.5) ? nearValid(rng, spec) : invocation(rng, spec);
          if (write) await check(); // this one may change the state: judge the errors before it
          const out = await send(args);
          if (out.kind === 'ok') stats[spec.name]!.ok++;
          else if (out.kind === 'error') {
            stats[spec.name]!.error++;
            stats[spec.name]!.messages.add(out.error!.slice(0, 50));
          }
          const problem = replyProblem(spec, args, out);
          if (problem) {
            await note(spec, args, 'reply', problem);
            // Shrinking replays from the prepared state: judge the rest of the batch from there.
            await restore();
            baseline = await snap();
            unchecked = [];
            continue;
          }
          if (out.kind === 'ok' && write) {
            if (hasFlag(args, '--ASYNC')) await waitForAsyncRun(args, out.value);
            baseline = await snap();
            unchecked = [];
            const broken = invariantProblem(baseline);
            if (broken) {
              await note(spec, args, 'invariant', `accepted, and now ${broken}`);
              await restore();
              baseline = await snap();
            }
          } else if (out.kind === 'ok' || out.kind === 'error') unchecked.push(args);
          else {
            // hang / broken: the state can no longer be judged; start over.
            await restore();
            baseline = await snap();
            unchecked = [];
          }
        }
        await check();
        expect(await pinger.ping()).toBe('PONG');
      }
      // What is stored is what was in memory: a restart on the same Redis loads the same state
      // (an error that wrote to the storage log without changing memory would show here).
      const before = await snap();
      await restartServer();
      const after = await snap();
      if (after !== before) findings.push(`${spec.name}: the state after a restart differs from the state before it:\n    ${stateDiff(before, after)}`);
    }
    const table = Object.entries(stats).map(([n, s]) => `${n.padEnd(24)} ok ${String(s.ok).padStart(3)}  errors ${String(s.error).padStart(3)} (${s.messages.size} distinct)`);
    console.log(`argument fuzz, seed ${SEED}:\n${table.join('\n')}`);
    expect(processErrors).toEqual([]);
    expect(findings, findings.join('\n')).toEqual([]);
    // Every command was exercised both ways at least once.
    for (const [name, s] of Object.entries(stats)) expect(s.error, name).toBeGreaterThan(0);
  }, 120_000);
});

/** Inputs the fuzzing found, kept as plain regression tests (each failed before its fix). */
describe('found by fuzzing', () => {
  const call = (...a: Arg[]) => r.call(...(a as [string, ...Arg[]]));
  const err = (...a: Arg[]) => call(...a).then((v) => `no error: ${JSON.stringify(v)}`, (e: Error) => e.message);

  it('an attribute named __proto__ is stored and filtered like any other (it was dropped silently)', async () => {
    await restore();
    await call('LLM.CREATE-VECTOR-STORE', 'fa:p', '--PARAMS', '{"dim":2}');
    expect(await call('LLM.ADD', 'fa:p', '--ID', '1', '--EMBEDDING', '1,0', '--ATTRS', '{"__proto__":"x","a":1}', 'one')).toBe(1);
    expect(await call('LLM.GET', 'fa:p', '--WITHATTRS', '1')).toEqual(['one', '1,0', '{"__proto__":"x","a":1}']);
    expect(await call('LLM.KNN', 'fa:p', '--EMBEDDING', '1,0', '--FILTER', '__proto__ == "x"')).toEqual([[1, '0']]);
    expect(await call('LLM.SETATTRS', 'fa:p', '1', '{"__proto__":["t"],"b":2}')).toBe(1);
    expect(await call('LLM.GET', 'fa:p', '--WITHATTRS', '1')).toEqual(['one', '1,0', '{"__proto__":["t"],"b":2}']);
    expect(await call('LLM.KNN', 'fa:p', '--EMBEDDING', '1,0', '--FILTER', '"t" in __proto__ and b == 2')).toEqual([[1, '0']]);
    // Inherited members are not attributes.
    expect(await call('LLM.KNN', 'fa:p', '--EMBEDDING', '1,0', '--FILTER', 'constructor or toString or length')).toEqual([]);
    expect(await call('LLM.KNN', 'fa:p', '--EMBEDDING', '1,0', '--FILTER', 'not hasOwnProperty')).toEqual([[1, '0']]);
  });

  it('JSON nested deeper than 128 levels is refused up front (5000 levels was an internal error: JSON.stringify overflowed in storage)', async () => {
    await restore();
    const deep = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    const refused = 'ERR failed to parse json: nested deeper than 128 levels';
    expect(await err('LLM.CREATE-APP', 'fa:d', '--LLM', 'fa:gpt', '--PARAMS', deep(5000))).toBe(refused);
    expect(await err('LLM.CREATE-LLM', 'fa:d', '--PARAMS', `{"api_key":"k","chat":${deep(5000)}}`)).toBe(refused);
    expect(await err('LLM.CREATE-VECTOR-STORE', 'fa:d', '--LLM', `{"key":"fa:local","params":${deep(5000)}}`)).toBe(refused);
    expect(await err('LLM.SETATTRS', 'fa:store', '1', `[${deep(200)}]`)).toBe(refused);
    expect(await err('LLM.RUN', 'fa:app', '--VARS', `{"name":${deep(129)}}`)).toBe(refused);
    expect(await call('KEYS', 'fa:d')).toEqual([]);
    // 128 levels, and brackets inside strings, are fine.
    expect(await call('LLM.CREATE-APP', 'fa:d', '--LLM', 'fa:gpt', '--PARAMS', deep(127))).toBe(1);
    expect(await call('LLM.CREATE-APP', 'fa:d2', '--PARAMS', JSON.stringify({ s: '{'.repeat(1000), t: '\\"[[[' }))).toBe(1);
  });

  it('a first vector cannot give a store more than 65536 dimensions (a 4M-float FP32 vector was accepted)', async () => {
    await restore();
    const fp32 = (n: number) => Buffer.alloc(4 * n, 0x3f);
    expect(await err('LLM.ADD', 'fa:nodim', '--EMBEDDING-FP32', fp32(4_000_000), 'x')).toBe('ERR invalid embedding: 4000000 dimensions, more than the limit of 65536');
    expect(await err('LLM.ADD', 'fa:nodim', '--EMBEDDING', Array(65_537).fill('1').join(','), 'x')).toBe('ERR invalid embedding: 65537 dimensions, more than the limit of 65536');
    expect(await err('LLM.KNN', 'fa:nodim', '--EMBEDDING-FP32', fp32(70_000))).toBe('ERR invalid embedding: 70000 dimensions, more than the limit of 65536');
    expect(await call('LLM.SIZE', 'fa:nodim')).toBe(0);
    expect(typeof (await call('LLM.ADD', 'fa:nodim', '--EMBEDDING-FP32', fp32(65_536), 'x'))).toBe('number');
    expect(await call('LLM.SIZE', 'fa:nodim')).toBe(1);
  });

  it('templates see only given variables, never inherited members ({{constructor}} rendered "[object Object]")', async () => {
    await restore();
    await call('LLM.CREATE-APP', 'fa:t1', '--LLM', 'fa:gpt', '--PROMPT', 'Hi {{constructor}}');
    expect(await err('LLM.RUN', 'fa:t1')).toBe("ERR failed to render prompt: variable 'constructor' not found");
    expect(await err('LLM.RUN', 'fa:t1', '--VARS', '{"__proto__":{"constructor":"C"}}')).toBe("ERR failed to render prompt: variable 'constructor' not found");
    expect(await call('LLM.RUN', 'fa:t1', '--VARS', '{"constructor":"Ada"}')).toBe('echo: Hi Ada');
    await call('LLM.CREATE-APP', 'fa:t2', '--LLM', 'fa:gpt', '--PROMPT', '[{{#toString}}x{{/toString}}{{^hasOwnProperty}}none{{/hasOwnProperty}}] {{__proto__}}');
    expect(await err('LLM.RUN', 'fa:t2')).toBe("ERR failed to render prompt: variable '__proto__' not found");
    expect(await call('LLM.RUN', 'fa:t2', '--VARS', '{"__proto__":"P"}')).toBe('echo: [none] P');
    // Dotted names and sections still resolve through own members (and string length).
    await call('LLM.CREATE-APP', 'fa:t3', '--LLM', 'fa:gpt', '--PROMPT', '{{user.name}} {{user.name.length}} {{#items}}{{.}},{{/items}} {{items.length}} {{#user}}{{name}}/{{lang}}{{/user}}');
    expect(await call('LLM.RUN', 'fa:t3', '--VARS', '{"user":{"name":"Ada"},"items":["a","b"],"lang":"en"}')).toBe('echo: Ada 3 a,b, 2 Ada/en');
    expect(await err('LLM.RUN', 'fa:t3', '--VARS', '{"user":{"name":"Ada","constructor":1},"items":[]}')).toBe("ERR failed to render prompt: variable 'lang' not found");
  });
});

describe('found by fuzzing, fixed in run.ts', () => {
  const call = (...a: Arg[]) => r.call(...(a as [string, ...Arg[]]));
  it('LLM.RUN --STREAM onto an existing key that is not a stream is WRONGTYPE before running (was: internal error, after the chat turn was remembered)', async () => {
    await restore();
    const before = await call('LLM.HISTORY', 'fa:chat');
    await expect(call('LLM.RUN', 'fa:chat', '--STREAM', 'fa:str', 'hello')).rejects.toThrow('WRONGTYPE Operation against a key holding the wrong kind of value');
    expect(await call('LLM.HISTORY', 'fa:chat')).toEqual(before);
  });
});
