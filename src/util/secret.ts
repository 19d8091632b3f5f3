/**
 * Sealing secrets at rest (literal API keys, proxy credentials) with a key derived from the
 * server secret, and finding that secret.
 *
 * Sealed value: `v1:<keyid>:<base64(iv | ciphertext | tag)>` — AES-256-GCM, 12-byte random IV,
 * 16-byte tag, the label of the field (e.g. "api_key") as additional authenticated data. The key
 * is HKDF-SHA256(server secret, salt "redis-llm-server", info "redis-llm-server sealed secrets v1");
 * `keyid` is 8 hex digits of another HKDF output (info "... key id"), so a value sealed with a
 * different secret is told apart from a damaged one without revealing anything about the key.
 *
 * The server secret (first that applies): the file `secret-file`; the environment variable
 * REDIS_LLM_SECRET; else `<dir>/secret.key`, generated once (32 random bytes as hex, mode 0600,
 * created atomically) and reused. Its bytes, without surrounding whitespace, are the HKDF input:
 * the generated file's text may be copied into REDIS_LLM_SECRET of another instance.
 *
 * Imports nothing of the project: the storage, llm and objects layers may all use it.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

const VERSION = 'v1';
const SALT = 'redis-llm-server';
const INFO_KEY = 'redis-llm-server sealed secrets v1';
const INFO_KEY_ID = 'redis-llm-server sealed secrets v1 key id';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Shortest server secret accepted (bytes, after trimming whitespace). */
export const MIN_SECRET_BYTES = 16;
/** The environment variable holding the server secret itself. */
export const SECRET_ENV = 'REDIS_LLM_SECRET';
/** Name of the generated secret in the data directory. */
export const GENERATED_SECRET_FILE = 'secret.key';

/** Why a sealed value could not be opened: another secret sealed it, or it is damaged. */
export class SealError extends Error {
  constructor(
    readonly reason: 'other-secret' | 'damaged',
    /** The key id the value names (other-secret), for logs: it reveals nothing of the key. */
    readonly keyId?: string,
  ) {
    super(reason === 'other-secret' ? 'sealed with a different server secret' : 'sealed value is damaged');
    this.name = 'SealError';
  }
}

const SEALED = /^v1:([0-9a-f]{8}):([A-Za-z0-9+/]+={0,2})$/;

export class SecretBox {
  readonly keyId: string;
  private readonly key: Buffer;

  private constructor(material: Buffer) {
    this.key = Buffer.from(hkdfSync('sha256', material, SALT, INFO_KEY, 32));
    this.keyId = Buffer.from(hkdfSync('sha256', material, SALT, INFO_KEY_ID, 4)).toString('hex');
  }

  /** A box for the given secret bytes (surrounding whitespace ignored); throws when too short. */
  static fromSecret(secret: Buffer | string): SecretBox {
    const material = trimWhitespace(typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret);
    if (material.length < MIN_SECRET_BYTES) throw new Error(`is shorter than ${MIN_SECRET_BYTES} bytes`);
    return new SecretBox(material);
  }

  /** Seals `plain` for the field `label`; every call gives a different text (random IV). */
  seal(plain: string, label: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(label, 'utf8'));
    const body = Buffer.concat([iv, cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}:${this.keyId}:${body.toString('base64')}`;
  }

  /** The plaintext of a value sealed for `label`; throws SealError (never naming the value). */
  open(sealed: string, label: string): string {
    const m = SEALED.exec(sealed);
    if (!m) throw new SealError('damaged');
    if (m[1] !== this.keyId) throw new SealError('other-secret', m[1]);
    const body = Buffer.from(m[2]!, 'base64');
    if (body.length < IV_BYTES + TAG_BYTES) throw new SealError('damaged');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, body.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(label, 'utf8'));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SealError('damaged');
    }
  }
}

function trimWhitespace(b: Buffer): Buffer {
  const ws = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  let s = 0;
  let e = b.length;
  while (s < e && ws(b[s]!)) s++;
  while (e > s && ws(b[e - 1]!)) e--;
  return b.subarray(s, e);
}

/** A secret given by the operator: the file `secret-file` or the value of REDIS_LLM_SECRET. */
export interface SecretSource {
  file?: string | null;
  env?: string | null;
}

/**
 * The box for the secret the operator gave, or null when none was given (then use
 * generatedSecret). Throws an Error with a clear message (never the secret) when it cannot be used.
 */
export function configuredSecret(src: SecretSource): { box: SecretBox; from: string } | null {
  const file = src.file || null;
  const env = src.env || null;
  if (file !== null && env !== null) throw new Error(`server secret: give either secret-file or ${SECRET_ENV}, not both`);
  if (file !== null) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new Error(`server secret: cannot read secret-file ${file}: ${errText(err)}`);
    }
    return { box: boxOf(bytes, `secret-file ${file}`), from: `secret-file ${file}` };
  }
  if (env !== null) return { box: boxOf(Buffer.from(env, 'utf8'), SECRET_ENV), from: SECRET_ENV };
  return null;
}

/**
 * The generated secret `<dir>/secret.key`: read when it exists, else created — 32 random bytes as
 * hex, mode 0600, written to a temporary file and linked into place, so concurrent first starts
 * agree on one secret and a crash never leaves a partial file. Throws a clear Error when the file
 * can be neither read nor created. `from` says which happened: `generated <file>` only when this
 * call created it, else `loaded <file>` (also when a concurrent start created it first).
 */
export function generatedSecret(dir: string): { box: SecretBox; from: string } {
  const file = path.join(dir, GENERATED_SECRET_FILE);
  const existing = readIfExists(file);
  if (existing !== null) return { box: boxOf(existing, file), from: `loaded ${file}` };
  let generated = false;
  const tmp = path.join(dir, `${GENERATED_SECRET_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.new`);
  try {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, `${randomBytes(32).toString('hex')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, file); // fails when another process created it first: then theirs is used
      generated = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    syncDir(dir);
  } catch (err) {
    throw new Error(`server secret: cannot create ${file}: ${errText(err)} (make ${dir} writable, or set secret-file / REDIS_LLM_SECRET)`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* not created */
    }
  }
  const created = readIfExists(file);
  if (created === null) throw new Error(`server secret: ${file} vanished after it was created`);
  return { box: boxOf(created, file), from: `${generated ? 'generated' : 'loaded'} ${file}` };
}

function readIfExists(file: string): Buffer | null {
  try {
    return readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`server secret: cannot read ${file}: ${errText(err)}`);
  }
}

function boxOf(bytes: Buffer, what: string): SecretBox {
  try {
    return SecretBox.fromSecret(bytes);
  } catch (err) {
    throw new Error(`server secret: ${what} ${(err as Error).message}`);
  }
}

function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* best effort: some file systems cannot sync a directory */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** An errno error as "ENOENT: no such file or directory" (the path is named by the caller). */
function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code) return `${e.code}${e.message ? `: ${e.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '')}` : ''}`;
  return (err as Error).message;
}
