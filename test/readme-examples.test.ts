/**
 * The README's examples run as written: every example a reader types into redis-cli is taken
 * from README.md and run, top to bottom, with the real `redis-cli` against a fresh server (the
 * built CLI on a fresh redis-server), the local fake OpenAI-compatible endpoint standing in for
 * OpenAI. An error reply fails the test unless the README shows it on that line
 * (`redis-cli ... # ERR <text>`). The transcript is saved as test-output/readme-examples.txt.
 *
 * What is run:
 *  - ```redis blocks: lines typed at the `redis-cli --raw` prompt. Each is split as redis-cli's
 *    prompt splits it (sdssplitargs: '…' and "…" quoting) and sent with `redis-cli -e --raw`.
 *  - every line of any block that starts with `redis-cli `: a shell command, run by bash with
 *    `-p <port> -e` put after `redis-cli` (so a line's own flags still apply).
 * The one thing changed from what a reader types: an LLM created with
 * `"api_key":"$OPENAI_API_KEY"` also gets `"base_url":"<the fake>"`, since the examples are
 * written for OpenAI itself. Also checked: no section replaces a key an earlier one created with
 * another definition (sections must not tread on each other), and the examples of LLM.SETATTRS,
 * LLM.REM, LLM.FORGET and LLM.GET act on something (no 0 / nil: an item or session that exists).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedis, type RedisServerHandle } from '../harness/redis-server.js';
import { startChildServer, type ChildServer } from '../harness/server.js';
import { startFakeOpenAI, type FakeOpenAI } from '../harness/fake-openai.js';
import { LLM_COMMANDS } from '../src/commands/table.js';
import { syntaxOf } from '../src/commands/spec.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const API_KEY = 'sk-readme-0123456789abcdef';

export interface Example {
  /** 1-based README line. */
  line: number;
  /** As written in the README. */
  text: string;
  /** 'prompt': typed at the redis-cli prompt; 'shell': a `redis-cli ...` shell command. */
  kind: 'prompt' | 'shell';
}

interface Block {
  line: number;
  info: string;
  lines: string[];
}

function fencedBlocks(md: string): Block[] {
  const out: Block[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const block: Block = { line: i + 1, info: open[1]!, lines: [] };
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) block.lines.push(lines[i]!);
    out.push(block);
  }
  return out;
}

export function readmeExamples(md: string): Example[] {
  const out: Example[] = [];
  for (const b of fencedBlocks(md)) {
    b.lines.forEach((text, j) => {
      const line = b.line + 1 + j;
      if (text.trim() === '') return;
      if (b.info === 'redis') out.push({ line, text, kind: 'prompt' });
      else if (/^redis-cli\s/.test(text)) out.push({ line, text, kind: 'shell' });
    });
  }
  return out;
}

/** redis-cli's prompt splitting (sdssplitargs): blanks separate, "…" with escapes, '…' with \' only. */
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  const isSpace = (c: string | undefined) => c !== undefined && /[ \n\r\t\0]/.test(c);
  const isHex = (c: string | undefined) => c !== undefined && /[0-9a-fA-F]/.test(c);
  let i = 0;
  for (;;) {
    while (isSpace(line[i])) i++;
    if (i >= line.length) return out;
    let cur = '';
    let inDq = false;
    let inSq = false;
    for (let done = false; !done; i++) {
      const c = line[i];
      if (inDq) {
        if (c === undefined) throw new Error(`unbalanced quotes: ${line}`);
        if (c === '\\' && line[i + 1] === 'x' && isHex(line[i + 2]) && isHex(line[i + 3])) {
          cur += String.fromCharCode(parseInt(line.slice(i + 2, i + 4), 16));
          i += 3;
        } else if (c === '\\' && line[i + 1] !== undefined) {
          const e = line[++i]!;
          cur += ({ n: '\n', r: '\r', t: '\t', b: '\b', a: '\x07' } as Record<string, string>)[e] ?? e;
        } else if (c === '"') {
          if (line[i + 1] !== undefined && !isSpace(line[i + 1])) throw new Error(`closing quote must be followed by a space: ${line}`);
          done = true;
        } else cur += c;
      } else if (inSq) {
        if (c === undefined) throw new Error(`unbalanced quotes: ${line}`);
        if (c === '\\' && line[i + 1] === "'") {
          cur += "'";
          i++;
        } else if (c === "'") {
          if (line[i + 1] !== undefined && !isSpace(line[i + 1])) throw new Error(`closing quote must be followed by a space: ${line}`);
          done = true;
        } else cur += c;
      } else if (c === undefined || isSpace(c)) done = true;
      else if (c === '"') inDq = true;
      else if (c === "'") inSq = true;
      else cur += c;
    }
    out.push(cur);
  }
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000, env: { ...process.env, OPENAI_API_KEY: API_KEY } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === -1 ? String(err) : '') });
    });
  });
}

/** The error a shell line shows it expects: `# ERR …` (or `# -ERR …`, `# (error) ERR …`) at its end. */
function shownError(text: string): string | null {
  const m = /#\s*(?:\(error\)\s*|-)?((?:ERR|WRONGTYPE|NOAUTH|READONLY)\b.*)$/.exec(text);
  return m ? m[1]!.trim() : null;
}

let redis: RedisServerHandle;
let fake: FakeOpenAI;
let server: ChildServer;

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI({ apiKey: API_KEY });
  server = await startChildServer(['--redis', redis.url, '--llm-key-hosts', 'OPENAI_API_KEY=127.0.0.1;OTHER_API_KEY=other.example'], { OPENAI_API_KEY: API_KEY });
});

afterAll(async () => {
  await server?.stop();
  await fake?.close();
  await redis?.stop();
});

it('splits prompt lines as redis-cli does', () => {
  expect(splitArgs(`LLM.ADD docs --ATTRS '{"tenant":"acme"}' "Acme's line" x`)).toEqual(['LLM.ADD', 'docs', '--ATTRS', '{"tenant":"acme"}', "Acme's line", 'x']);
  expect(splitArgs(`SET a "b\\"c\\x41" 'd\\'e'`)).toEqual(['SET', 'a', 'b"cA', "d'e"]);
  expect(() => splitArgs(`SET a "b`)).toThrow(/unbalanced/);
});

it('every README example block is found; untagged blocks hold no prompt lines', () => {
  const examples = readmeExamples(README);
  expect(examples.filter((e) => e.kind === 'prompt').length).toBeGreaterThanOrEqual(20);
  expect(examples.filter((e) => e.kind === 'shell').length).toBeGreaterThanOrEqual(20);
  // A block of LLM.* lines that is not tagged ```redis would silently go untested: only the
  // reference's syntax lines may stand untagged.
  const syntaxLines = new Set(LLM_COMMANDS.map(syntaxOf));
  for (const b of fencedBlocks(README)) {
    if (b.info === 'redis') continue;
    for (const l of b.lines) if (/^LLM\./i.test(l)) expect(syntaxLines.has(l), `README line ${b.line}: an untagged block with ${l} (tag it \`\`\`redis)`).toBe(true);
  }
});

it('the README examples run as written, top to bottom, against a fresh server', { timeout: 180_000 }, async () => {
  const examples = readmeExamples(README);
  const baseUrl = `"base_url":"${fake.url}"`;
  const toFake = (s: string) => s.replaceAll('"api_key":"$OPENAI_API_KEY"', `"api_key":"$OPENAI_API_KEY",${baseUrl}`);
  const created = new Map<string, { line: number; args: string }>();
  const failures: string[] = [];
  const transcript: string[] = [];
  for (const ex of examples) {
    let r: Ran;
    let args: string[];
    if (ex.kind === 'prompt') {
      args = splitArgs(ex.text);
      r = await run('redis-cli', ['-p', String(server.port), '-e', '--raw', ...args.map(toFake)]);
    } else {
      const line = toFake(ex.text).replace(/^redis-cli\s/, `redis-cli -p ${server.port} -e `);
      args = splitArgs(ex.text.replace(/^redis-cli\s+(--raw\s+)?/, '').replace(/\s+#.*$/, ''));
      r = await run('bash', ['-c', line]);
    }
    const where = `README line ${ex.line}: ${ex.text}`;
    transcript.push(`${ex.kind === 'prompt' ? '> ' : '$ '}${ex.text}    (README line ${ex.line})`, (r.stdout + r.stderr).trimEnd());
    const expected = ex.kind === 'shell' ? shownError(ex.text) : null;
    if (expected) {
      if (r.code === 0 || !r.stderr.includes(expected)) failures.push(`${where}\n  expected the error it shows (${expected}), got exit ${r.code}: ${r.stdout}${r.stderr}`);
    } else if (r.code !== 0 || r.stderr.trim() !== '') {
      failures.push(`${where}\n  -> exit ${r.code}: ${(r.stderr || r.stdout).trim()}`);
    }
    // An example of a command that can do nothing (reply 0 or nil) must show it doing something.
    if (r.code === 0 && /^LLM\.(SETATTRS|REM|FORGET|GET)$/i.test(args[0] ?? '') && ['0', ''].includes(r.stdout.trim())) {
      failures.push(`${where}\n  -> ${JSON.stringify(r.stdout.trim())}: the example does nothing (no such item or session at this point of the README)`);
    }
    // Sections must not silently replace each other's objects.
    if (/^LLM\.CREATE-/i.test(args[0] ?? '') && args[1]) {
      const key = args[1];
      const prev = created.get(key);
      const def = args.slice(2).join(' ');
      if (prev && prev.args !== def) failures.push(`${where}\n  replaces '${key}' created differently on README line ${prev.line}`);
      created.set(key, { line: ex.line, args: def });
    }
  }
  // What a reader sees, for a look by eye (test-output/ is not committed).
  mkdirSync(new URL('../test-output/', import.meta.url), { recursive: true });
  writeFileSync(new URL('../test-output/readme-examples.txt', import.meta.url), transcript.join('\n') + '\n');
  expect(failures, failures.join('\n')).toEqual([]);
  expect(fake.calls('/chat/completions')).toBeGreaterThan(0); // the LLM examples really reached the provider
});
