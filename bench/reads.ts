/**
 * The reopen and read workloads, on the W3 dataset.
 *   W4: reopen after a clean close, then `readAll()` of every event; and reopen of a copy taken
 *       while the store was open (no clean-close checkpoint of the active segment).
 *   W5: `readStream()` of one stream: the first read after open, then warm reads.
 */
import fs from 'node:fs';
import path from 'node:path';
import { EventStore } from '../lib/index.js';
import { EVENT_TYPE } from './payload.js';
import { median, perSecond, round } from './report.js';
import { countFsCalls } from './sampling.js';
import type { Dataset } from './writes.js';

/** Times `EventStore.open` of `dir` and checks that it holds `expected` events. */
export async function timedOpen(dir: string, expected: number): Promise<{ store: EventStore; ms: number }> {
  const start = performance.now();
  const store = await EventStore.open({ dir });
  const ms = performance.now() - start;
  if (store.commitPosition !== expected) {
    await store.close();
    throw new Error(`open of ${dir}: ${store.commitPosition} events, expected ${expected}`);
  }
  return { store, ms };
}

/** Reads every event with `readAll()` (the data is JSON-parsed, as a caller gets it). */
export async function readAllEvents(store: EventStore, expected: number): Promise<{ ms: number; eventsPerSec: number }> {
  let count = 0;
  let next = 0;
  const start = performance.now();
  for await (const event of store.readAll()) {
    if (event.position !== next++ || event.type !== EVENT_TYPE) throw new Error(`readAll: unexpected event at position ${event.position}`);
    count++;
  }
  const ms = performance.now() - start;
  if (count !== expected) throw new Error(`readAll: ${count} events, expected ${expected}`);
  return { ms, eventsPerSec: perSecond(count, ms) };
}

/**
 * An unclean-stop copy: `flush()` (everything acknowledged is durable), then copy the directory
 * while the store is still open, leaving out its LOCK (whose owner, this process, is alive; a
 * crashed owner's lock would be taken over as stale). The copy's heads checkpoint, if any, was
 * written at a seal, without the active segment's part, so opening it scans the active segment.
 */
export async function copyWhileOpen(store: EventStore, from: string, to: string): Promise<void> {
  await store.flush();
  await fs.promises.cp(from, to, { recursive: true, filter: (src) => path.basename(src) !== 'LOCK' });
}

/** Reads one stream fully; returns the time and checks the revisions. */
export async function readOneStream(store: EventStore, streamId: string, expected: number): Promise<number> {
  let revision = 0;
  const start = performance.now();
  for await (const event of store.readStream(streamId)) {
    if (event.revision !== revision++) throw new Error(`readStream ${streamId}: revision ${event.revision}, expected ${revision - 1}`);
  }
  const ms = performance.now() - start;
  if (revision !== expected) throw new Error(`readStream ${streamId}: ${revision} events, expected ${expected}`);
  return ms;
}

export interface W5Result {
  readonly streamId: string;
  readonly coldMs: number;
  readonly warmMedianMs: number;
  readonly warmMinMs: number;
  readonly warmMaxMs: number;
  readonly openMs: number;
  /** `fs.read` calls of one warm read of the stream (one more read, not timed). */
  readonly fsReadsPerRead: number;
}

/** W5: opens the dataset afresh (the store's caches empty; the OS page cache is warm), reads one stream. */
export async function runW5(dataset: Dataset, warmReads: number): Promise<W5Result> {
  const { store, ms: openMs } = await timedOpen(dataset.dir, dataset.total);
  try {
    const streamId = dataset.streamId(Math.floor(dataset.streams / 2));
    const coldMs = await readOneStream(store, streamId, dataset.eventsPerStream);
    const warm: number[] = [];
    for (let i = 0; i < warmReads; i++) warm.push(await readOneStream(store, streamId, dataset.eventsPerStream));
    const { calls: fsReadsPerRead } = await countFsCalls('read', () => readOneStream(store, streamId, dataset.eventsPerStream));
    return {
      streamId,
      coldMs: round(coldMs, 3),
      warmMedianMs: round(median(warm), 3),
      warmMinMs: round(Math.min(...warm), 3),
      warmMaxMs: round(Math.max(...warm), 3),
      openMs: round(openMs, 1),
      fsReadsPerRead,
    };
  } finally {
    await store.close();
  }
}
