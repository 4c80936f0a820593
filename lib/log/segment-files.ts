/**
 * Names of a segment's files. A segment is named by its base position, zero-padded to 20
 * digits so that names sort in position order:
 *
 * - `00000000000000000000.log`     record batches
 * - `00000000000000000000.index`   sparse offset index (see offset-index.ts)
 * - `00000000000000000000.sealed`  sidecar, written last when the segment is sealed (see sidecar.ts)
 * - `00000000000000000000.<other>` attachments written by the layer above at seal time
 *   (the event store's stream index), listed in the sidecar
 *
 * and one file for the whole log: `segments.catalogue`, the sealed segments' sidecars in one
 * file (see segment-catalogue.ts).
 */
import path from 'node:path';

const DIGITS = 20;
const LOG_SUFFIX = '.log';

export function segmentName(basePosition: number): string {
  return String(basePosition).padStart(DIGITS, '0');
}

export function segmentFile(dir: string, basePosition: number, suffix: string): string {
  return path.join(dir, segmentName(basePosition) + suffix);
}

/**
 * The base position a segment file name with `suffix` (e.g. `.sealed`) stands for, or
 * undefined for any other name.
 */
export function parseSegmentName(name: string, suffix: string): number | undefined {
  if (name.length !== DIGITS + suffix.length || !name.endsWith(suffix)) return undefined;
  for (let i = 0; i < DIGITS; i++) {
    const code = name.charCodeAt(i);
    if (code < 48 || code > 57) return undefined;
  }
  const base = Number(name.slice(0, DIGITS));
  return Number.isSafeInteger(base) ? base : undefined;
}

export const SUFFIX = {
  log: LOG_SUFFIX,
  index: '.index',
  sealed: '.sealed',
} as const;
