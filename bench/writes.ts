/**
 * The append workloads against coldstream.
 *   W1: one writer, one event per append, sequential awaits (durable append latency), against
 *       raw baseline (a);
 *   W2: many writers on their own streams, one event per append (group commit throughput),
 *       against raw baseline (b);
 *   W3: one writer, big batches round-robin over many streams (bulk ingest); the store it
 *       leaves open is the dataset of W4 and W5.
 */
import { EventStore, type Durability } from '../lib/index.js';
import { RawFile } from './baselines.js';
import { orderEvent, orderEvents } from './payload.js';
import { aggregate, concurrent, countSyncs, interleaved, sequential, type Aggregate, type Comparison } from './sampling.js';

/**
 * W1 against raw baseline (a), interleaved in `rounds` rounds: one writer, one event per durable
 * append, sequential awaits, on one stream. `warmup` untimed appends go first on each side.
 */
export async function runW1(dir: string, rawDir: string, appends: number, rounds: number, warmup: number): Promise<Comparison> {
  const store = await EventStore.open({ dir, durability: 'fsync' });
  const raw = await RawFile.create(rawDir, 'raw-a.dat');
  try {
    const streamId = 'order-w1';
    let n = 0;
    let m = 0;
    for (let i = 0; i < warmup; i++) {
      await store.appendToStream(streamId, [orderEvent(n++)]);
      await raw.appendSynced(m++);
    }
    const perRound = Math.ceil(appends / rounds);
    const comparison = await interleaved(
      rounds,
      () => sequential(perRound, () => store.appendToStream(streamId, [orderEvent(n++)])),
      () => sequential(perRound, () => raw.appendSynced(m++)),
    );
    if (store.commitPosition !== n) throw new Error(`W1: ${store.commitPosition} events committed, expected ${n}`);
    return comparison;
  } finally {
    await raw.remove();
    await store.close();
  }
}

/**
 * W2 against raw baseline (b), interleaved in `rounds` rounds: `writers` concurrent writers,
 * each on its own stream, one event per durable append; `total` events in all.
 */
export async function runW2(dir: string, rawDir: string, writers: number, total: number, rounds: number, warmupPerWriter: number): Promise<Comparison> {
  const store = await EventStore.open({ dir, durability: 'fsync' });
  const raw = await RawFile.create(rawDir, 'raw-b.dat');
  try {
    const streamIdOf = Array.from({ length: writers }, (_, w) => `order-w2-${w}`);
    let n = 0;
    let m = 0;
    await concurrent(writers, warmupPerWriter, (w) => store.appendToStream(streamIdOf[w]!, [orderEvent(n++)]));
    await concurrent(writers, warmupPerWriter, () => raw.appendGrouped(m++));
    const perWriterPerRound = Math.max(1, Math.ceil(total / writers / rounds));
    const comparison = await interleaved(
      rounds,
      () => countSyncs(() => concurrent(writers, perWriterPerRound, (w) => store.appendToStream(streamIdOf[w]!, [orderEvent(n++)]))),
      () => countSyncs(() => concurrent(writers, perWriterPerRound, () => raw.appendGrouped(m++))),
    );
    if (store.commitPosition !== n) throw new Error(`W2: ${store.commitPosition} events committed, expected ${n}`);
    return comparison;
  } finally {
    await raw.remove();
    await store.close();
  }
}

export interface Dataset {
  readonly dir: string;
  readonly streams: number;
  readonly eventsPerStream: number;
  readonly total: number;
  streamId(i: number): string;
}

export function datasetShape(dir: string, streams: number, eventsPerStream: number): Dataset {
  const width = String(streams - 1).length;
  return { dir, streams, eventsPerStream, total: streams * eventsPerStream, streamId: (i) => `order-${String(i).padStart(width, '0')}` };
}

export interface W3Options {
  readonly perAppend: number;
  readonly durability: Durability;
  /** With a baseline: raw (a′) slices, `batches` writes of `perAppend` records in all, interleaved in `rounds` rounds. */
  readonly baseline?: { readonly rawDir: string; readonly batches: number; readonly rounds: number };
}

/**
 * W3: `total / perAppend` appends of `perAppend` events, append k to stream k mod streams, one
 * at a time. Returns the open store (the caller measures memory, then closes it).
 */
export async function runW3(dataset: Dataset, options: W3Options): Promise<{ store: EventStore; result: Aggregate; comparison?: Comparison }> {
  const { perAppend, durability, baseline } = options;
  const appends = dataset.total / perAppend;
  if (!Number.isInteger(appends) || dataset.eventsPerStream % perAppend !== 0) throw new Error('W3: events per stream must be a multiple of events per append');
  const store = await EventStore.open({ dir: dataset.dir, durability });
  const raw = baseline === undefined ? undefined : await RawFile.create(baseline.rawDir, 'raw-w3.dat');
  try {
    let k = 0;
    const appendNext = (): Promise<unknown> => {
      const first = k++ * perAppend;
      return store.appendToStream(dataset.streamId((first / perAppend) % dataset.streams), orderEvents(first, perAppend));
    };
    let result: Aggregate;
    let comparison: Comparison | undefined;
    if (raw === undefined || baseline === undefined) {
      result = aggregate([await sequential(appends, appendNext, perAppend)]);
    } else {
      let m = 0;
      const slice = (total: number, round: number): number => Math.floor((total * (round + 1)) / baseline.rounds) - Math.floor((total * round) / baseline.rounds);
      comparison = await interleaved(
        baseline.rounds,
        (round) => sequential(slice(appends, round), appendNext, perAppend),
        (round) => sequential(slice(baseline.batches, round), () => raw.appendSyncedBatch(m++ * perAppend, perAppend), perAppend),
      );
      result = comparison.subject;
    }
    if (k !== appends || store.commitPosition !== dataset.total) throw new Error(`W3: ${store.commitPosition} events committed, expected ${dataset.total}`);
    return { store, result, ...(comparison === undefined ? {} : { comparison }) };
  } catch (err) {
    await store.close();
    throw err;
  } finally {
    await raw?.remove();
  }
}
