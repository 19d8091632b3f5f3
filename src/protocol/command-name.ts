/**
 * The lower-cased command name of a request, without building two strings per request: names
 * repeat (a client sends the same few commands), so each distinct spelling is lower-cased once and
 * kept in a small direct-mapped cache keyed by its bytes.
 */
const SLOTS = 512;
const MAX_CACHED = 32;
const cachedBytes: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(SLOTS);
const cachedNames: string[] = new Array<string>(SLOTS).fill('');

export function commandName(raw: Uint8Array): string {
  const len = raw.length;
  if (len === 0 || len > MAX_CACHED) return Buffer.from(raw.buffer, raw.byteOffset, len).toString('latin1').toLowerCase();
  let h = len;
  for (let i = 0; i < len; i++) h = (Math.imul(h, 31) + raw[i]!) | 0;
  const slot = (h >>> 0) % SLOTS;
  const seen = cachedBytes[slot];
  if (seen !== undefined && seen.length === len) {
    let i = 0;
    while (i < len && seen[i] === raw[i]) i++;
    if (i === len) return cachedNames[slot]!;
  }
  const name = Buffer.from(raw.buffer, raw.byteOffset, len).toString('latin1').toLowerCase();
  cachedBytes[slot] = Uint8Array.from(raw); // a copy: `raw` is a view into a socket chunk
  cachedNames[slot] = name;
  return name;
}
