/**
 * Memory snapshots: RSS, and heap used after a full GC when one can be forced (V8's
 * `--expose-gc`, switched on at run time), so the heap figure is what is retained.
 */
import fs from 'node:fs';
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

/**
 * Resident memory of this process from /proc/self/status (Linux), in MiB: RSS split into
 * anonymous pages (heap, native allocations) and file pages (mapped files, which the kernel can
 * drop and re-read), and the peak RSS since start or the last {@link resetPeakRss}. Undefined
 * fields where the file or a line is missing (other systems).
 */
export interface ResidentMemory {
  readonly rss_mb: number;
  readonly rss_anon_mb?: number;
  readonly rss_file_mb?: number;
  readonly peak_rss_mb?: number;
  readonly heap_used_mb: number;
}

const STATUS_FIELDS = new Map([
  ['VmRSS', 'rss_mb'],
  ['RssAnon', 'rss_anon_mb'],
  ['RssFile', 'rss_file_mb'],
  ['VmHWM', 'peak_rss_mb'],
]);

/** {@link memorySnapshot}'s RSS and heap (after a full GC), with /proc/self/status's split. */
export function residentMemory(): ResidentMemory {
  const snapshot = memorySnapshot();
  const fields: Record<string, number> = {};
  try {
    for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\n')) {
      const match = /^(\w+):\s+(\d+) kB$/.exec(line);
      const name = match === null ? undefined : STATUS_FIELDS.get(match[1]!);
      if (name !== undefined) fields[name] = mb(Number(match![2]) * 1024);
    }
  } catch {
    // Not Linux: RSS and heap only.
  }
  return { rss_mb: fields.rss_mb ?? snapshot.rss_mb, ...fields, heap_used_mb: snapshot.heap_used_mb };
}

/** Resets the peak RSS (VmHWM) to the current RSS (Linux: writes 5 to /proc/self/clear_refs); false where that is not possible. */
export function resetPeakRss(): boolean {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}
