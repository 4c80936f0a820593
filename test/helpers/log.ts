import { systemClock } from '../../lib/clock.js';
import { SegmentLog, type SegmentLogOptions } from '../../lib/log/segment-log.js';

export function logOptions(dir: string, overrides: Partial<SegmentLogOptions> = {}): SegmentLogOptions {
  return {
    dir,
    durability: 'fsync',
    fsyncIntervalMs: 50,
    segmentBytes: 1024,
    segmentMaxAgeMs: 7 * 24 * 3600 * 1000,
    indexIntervalBytes: 128,
    clock: systemClock,
    ...overrides,
  };
}

/** Every committed record, in order, by walking the log forwards. */
export async function readAllRecords(log: SegmentLog, from = log.startPosition): Promise<{ position: number; text: string }[]> {
  const out: { position: number; text: string }[] = [];
  let position = from;
  for (;;) {
    const batches = await log.readForward(position);
    if (batches.length === 0) return out;
    for (const batch of batches) {
      batch.records.forEach((record, i) => {
        const p = batch.basePosition + i;
        if (p >= position) out.push({ position: p, text: record.toString() });
      });
      position = batch.basePosition + batch.recordCount;
    }
  }
}

export function records(...texts: string[]): Buffer[] {
  return texts.map((t) => Buffer.from(t));
}
