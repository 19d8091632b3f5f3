/**
 * Joins buffers for one write. Neighbours that are adjacent views of one chunk (a pipeline of
 * forwarded requests, a run of replies) are merged without copying; only the rest is copied.
 */
export function coalesce(parts: Buffer[]): Buffer {
  if (parts.length === 1) return parts[0]!;
  const merged: Buffer[] = [];
  // The current run: `first` and every part adjacent after it, up to `end` (one Buffer per run).
  let first = parts[0]!;
  let end = first.byteOffset + first.length;
  const close = () => merged.push(end === first.byteOffset + first.length ? first : Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset));
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.buffer === first.buffer && p.byteOffset === end) {
      end += p.length;
    } else {
      close();
      first = p;
      end = p.byteOffset + p.length;
    }
  }
  close();
  return merged.length === 1 ? merged[0]! : Buffer.concat(merged);
}
