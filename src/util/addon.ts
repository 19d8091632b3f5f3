/**
 * The native addon (native/graph.cc, built at install: scripts/build.mjs): the vector engine's
 * graph (src/vector/native.ts wraps it), a CRC-32 that runs on the engine's bulk thread (snapshot
 * checksums, src/storage/common.ts), and snapshot buffers allocated and freed off the event loop.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Addon {
  /** The graph class; its type is src/vector/native.ts's. */
  Graph: unknown;
  /** The distance kernels this CPU runs: 'avx2-fma' or 'baseline' (hnswlib's compile-time SSE). */
  simd: string;
  /** zlib's CRC-32 of `data` continuing from `value`, computed on the bulk thread (`data` must not change meanwhile). */
  crc32Async(data: Uint8Array, value?: number): Promise<number>;
  /** Memory for a snapshot, faulted in off the event loop and unknown to V8's heap accounting. */
  allocBufferAsync(size: number, background?: boolean): Promise<ArrayBuffer>;
  /** Detaches an allocBufferAsync buffer (its views read as empty) and frees it off the event loop. */
  releaseBuffer(buf: ArrayBuffer): void;
}

/** The addon's path: native/build/Release/rlgraph.node above this file (src/ or dist/src/). */
export function addonFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'native', 'build', 'Release', 'rlgraph.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error('the native vector engine is not built (native/build/Release/rlgraph.node): run npm ci or npm run build');
}

let addon: Addon | undefined;

export function loadAddon(): Addon {
  return (addon ??= createRequire(import.meta.url)(addonFile()) as Addon);
}

/** The addon, or null where it is not built (callers with a fallback). */
export function addonIfBuilt(): Addon | null {
  try {
    return loadAddon();
  } catch {
    return null;
  }
}

const ours = new WeakSet<ArrayBufferLike>();

/**
 * A buffer for a whole snapshot (tens of MB): from the addon, so the event loop neither page-faults
 * through it nor pays a V8 collection to allocate and free it. Release it with
 * releaseSnapshotBuffer once nothing reads it; one never released is freed when collected.
 * `background`: nothing holds a store while waiting for it (a snapshot about to be read), so it is
 * faulted in at idle priority. Without the addon, Buffer.allocUnsafe.
 */
export async function snapshotBuffer(size: number, background = false): Promise<Buffer> {
  const a = addonIfBuilt();
  if (!a) return Buffer.allocUnsafe(size);
  const ab = await a.allocBufferAsync(size, background);
  ours.add(ab);
  return Buffer.from(ab, 0, size);
}

/** Frees a snapshotBuffer now (every view of it then reads as empty); other buffers are left alone. */
export function releaseSnapshotBuffer(buf: Buffer | undefined | null): void {
  if (!buf || !ours.has(buf.buffer)) return;
  ours.delete(buf.buffer);
  loadAddon().releaseBuffer(buf.buffer as ArrayBuffer);
}
