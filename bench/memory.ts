/**
 * Memory snapshots: RSS, and heap used after a full GC when one can be forced (V8's
 * `--expose-gc`, switched on at run time), so the heap figure is what is retained.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | undefined;
try {
  v8.setFlagsFromString('--expose-gc');
  gc = vm.runInNewContext('gc') as () => void;
} catch {
  gc = undefined;
}

export interface MemorySnapshot {
  readonly rss_mb: number;
  readonly heap_used_mb: number;
  readonly external_mb: number;
  readonly array_buffers_mb: number;
  readonly after_gc: boolean;
}

const mb = (bytes: number): number => Math.round((bytes / (1024 * 1024)) * 10) / 10;

export function memorySnapshot(): MemorySnapshot {
  gc?.();
  const m = process.memoryUsage();
  return { rss_mb: mb(m.rss), heap_used_mb: mb(m.heapUsed), external_mb: mb(m.external), array_buffers_mb: mb(m.arrayBuffers), after_gc: gc !== undefined };
}
