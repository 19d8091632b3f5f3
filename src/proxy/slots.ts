/**
 * Redis Cluster hash slots: CRC16 (XMODEM: poly 0x1021, init 0, no reflection) of the key, or of
 * its hash tag — the part between the first '{' and the next '}' when that part is not empty —
 * modulo 16384. Same as `CLUSTER KEYSLOT`.
 */

export const SLOT_COUNT = 16384;

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

export function crc16(buf: Buffer, start = 0, end = buf.length): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ buf[i]!) & 0xff]!;
  return crc;
}

/** The hash slot of a key (Buffer or string, strings taken as UTF-8). */
export function keySlot(key: Buffer | string): number {
  const b = typeof key === 'string' ? Buffer.from(key) : key;
  const open = b.indexOf(123); // '{'
  if (open >= 0) {
    const close = b.indexOf(125, open + 1); // '}'
    if (close > open + 1) return crc16(b, open + 1, close) & (SLOT_COUNT - 1);
  }
  return crc16(b) & (SLOT_COUNT - 1);
}

export interface KeyRangeSpec {
  first: number;
  last: number;
  step: number;
}

function numkeysAt(args: Buffer[], at: number): Buffer[] {
  const n = Number(args[at]?.toString('latin1'));
  if (!Number.isInteger(n) || n <= 0) return [];
  return args.slice(at + 1, at + 1 + n);
}

function afterKeyword(args: Buffer[], from: number, word: string): number {
  for (let i = from; i < args.length; i++) if (args[i]!.length === word.length && args[i]!.toString('latin1').toLowerCase() === word) return i;
  return -1;
}

/**
 * The keys of a request: movable-key commands by their own rules (numkeys, STREAMS, STORE), the
 * rest by the legacy (first, last, step) range of the backend's COMMAND table. Commands whose keys
 * are not found here (container subcommands such as OBJECT ENCODING key) go to the default node and
 * follow a MOVED reply.
 */
export function commandKeys(name: string, args: Buffer[], range: KeyRangeSpec | undefined): Buffer[] {
  switch (name) {
    case 'eval':
    case 'evalsha':
    case 'eval_ro':
    case 'evalsha_ro':
    case 'fcall':
    case 'fcall_ro':
    case 'blmpop':
    case 'bzmpop':
      return numkeysAt(args, 2);
    case 'zunionstore':
    case 'zinterstore':
    case 'zdiffstore':
      return args.length > 1 ? [args[1]!, ...numkeysAt(args, 2)] : [];
    case 'zunion':
    case 'zinter':
    case 'zdiff':
    case 'zintercard':
    case 'sintercard':
    case 'lmpop':
    case 'zmpop':
      return numkeysAt(args, 1);
    case 'xread':
    case 'xreadgroup': {
      const at = afterKeyword(args, 1, 'streams');
      if (at < 0) return [];
      const rest = args.slice(at + 1);
      return rest.slice(0, Math.floor(rest.length / 2));
    }
    case 'sort':
    case 'sort_ro':
    case 'georadius':
    case 'georadiusbymember': {
      const keys = args.length > 1 ? [args[1]!] : [];
      for (const w of ['store', 'storedist']) {
        const at = afterKeyword(args, 2, w);
        if (at > 0 && at + 1 < args.length) keys.push(args[at + 1]!);
      }
      return keys;
    }
    case 'migrate':
      return [];
  }
  if (!range) return [];
  const n = args.length;
  const last = Math.min(range.last < 0 ? n + range.last : range.last, n - 1);
  const out: Buffer[] = [];
  for (let i = range.first; i <= last; i += Math.max(1, range.step)) out.push(args[i]!);
  return out;
}

/** The one slot all keys hash to, -1 without keys, or -2 when they hash to different slots. */
export function slotOfKeys(keys: Buffer[]): number {
  if (keys.length === 0) return -1;
  const s = keySlot(keys[0]!);
  for (let i = 1; i < keys.length; i++) if (keySlot(keys[i]!) !== s) return -2;
  return s;
}
