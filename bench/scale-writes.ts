/**
 * The writing side of the "streams at scale" workloads, each with its SQLite peer:
 *   X1: create N one-event streams, `perAppend` new streams per atomic `appendMany` (each
 *       `'no_stream'`), against one SQLite transaction per `perAppend` streams, interleaved;
 *   X5: one writer appending 1 event to a random existing stream at its known revision, each
 *       append durable, on the N-stream store, on a fresh small store and on SQLite, rotated;
 *   X6: building one long-lived stream with one event per segment, other streams' traffic in
 *       between, on both sides (the read is timed in scale-reads.ts);
 *   X7: loading the W3 dataset into SQLite (the read is timed in scale-reads.ts).
 *
 * Stream ids are `acct-` and 8 hex digits of a bijective 32-bit mix of the stream's number:
 * unique, fixed-length, and in random order to a B-tree, as UUID-like ids would be.
 */
import { EventStore, type Durability } from '../lib/index.js';
import { orderEvent, orderEvents } from './payload.js';
import { alternate, compare, rotate, sequential, type Aggregate, type Comparison } from './sampling.js';
import { SqlitePeer, type PeerAppend } from './sqlite-peer.js';
import type { Dataset } from './writes.js';

/** The id of stream `i` (i < 2³²) of the X workloads. */
export function scaleStreamId(i: number): string {
  let x = i >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return `acct-${x.toString(16).padStart(8, '0')}`;
}

/** A seeded pseudo-random source of floats in [0, 1) (mulberry32), so that both sides draw the same sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** `count` stream numbers in [0, streams), drawn with replacement from `seed`. */
export function randomStreams(seed: number, streams: number, count: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => Math.floor(random() * streams));
}

/** The requests creating streams `first` … `first + count − 1`, one event each (event number = stream number). */
function creations(first: number, count: number): PeerAppend[] {
  return Array.from({ length: count }, (_, k) => ({ streamId: scaleStreamId(first + k), events: [orderEvent(first + k)], expectedRevision: 'no_stream' as const }));
}

export interface CreateOptions {
  readonly streams: number;
  readonly perAppend: number;
  readonly rounds: number;
  /** `'fsync'` with SQLite's `synchronous=FULL` when measured; `'none'` with `synchronous=OFF` to build the stores only. */
  readonly durability: Durability;
}

export interface CreateResult {
  /** coldstream (subject) against SQLite (baseline), in streams ("events") per second. */
  readonly comparison: Comparison;
  readonly closeMs: number;
  readonly sqliteCloseMs: number;
}

/**
 * X1: creates `streams` one-event streams in the store at `dir` and in the SQLite file
 * `sqliteFile`, `perAppend` per atomic append / transaction, interleaved in `rounds` rounds
 * (ABBA); then closes both, timing each close (X3).
 */
export async function createStreams(dir: string, sqliteFile: string, options: CreateOptions): Promise<CreateResult> {
  const { streams, perAppend, rounds, durability } = options;
  const appends = streams / perAppend;
  if (!Number.isInteger(appends)) throw new Error(`X1: ${streams} streams is not a multiple of ${perAppend}`);
  const store = await EventStore.open({ dir, durability });
  const peer = SqlitePeer.open(sqliteFile, { synchronous: durability === 'none' ? 'OFF' : 'FULL' });
  let closed = false;
  try {
    const slice = (round: number): number => Math.floor((appends * (round + 1)) / rounds) - Math.floor((appends * round) / rounds);
    let next = 0;
    let sqliteNext = 0;
    const createNext = (): Promise<unknown> => {
      const first = next;
      next += perAppend;
      return store.appendMany(creations(first, perAppend));
    };
    const sqliteCreateNext = async (): Promise<void> => {
      const first = sqliteNext;
      sqliteNext += perAppend;
      peer.append(creations(first, perAppend));
    };
    const [sqliteSamples, samples] = await alternate(
      rounds,
      (round) => sequential(slice(round), sqliteCreateNext, perAppend),
      (round) => sequential(slice(round), createNext, perAppend),
    );
    const last = scaleStreamId(streams - 1);
    if (store.commitPosition !== streams || (await store.streamHead(last))?.revision !== 0) throw new Error(`X1: ${store.commitPosition} events in the store, expected ${streams}`);
    if (peer.head(last) !== 0) throw new Error(`X1: SQLite lacks stream ${last}`);
    const comparison = compare(samples, sqliteSamples);
    const closeStart = performance.now();
    await store.close();
    const closeMs = performance.now() - closeStart;
    const sqliteCloseStart = performance.now();
    peer.close();
    const sqliteCloseMs = performance.now() - sqliteCloseStart;
    closed = true;
    return { comparison, closeMs, sqliteCloseMs };
  } finally {
    if (!closed) {
      await store.close();
      peer.close();
    }
  }
}

/** One writer appending 1 event at a time to random streams among `streams`, at their known revisions. */
class RandomWriter {
  private readonly random: () => number;
  /** Revisions of the streams written so far; the others are at 0 (one event each). */
  private readonly revisions = new Map<number, number>();
  private n: number;

  constructor(
    private readonly streams: number,
    seed: number,
    private readonly append: (streamId: string, n: number, expectedRevision: number) => Promise<unknown>,
  ) {
    this.random = seededRandom(seed);
    this.n = streams;
  }

  async appendOne(): Promise<void> {
    const i = Math.floor(this.random() * this.streams);
    const revision = this.revisions.get(i) ?? 0;
    await this.append(scaleStreamId(i), this.n++, revision);
    this.revisions.set(i, revision + 1);
  }
}

export interface RandomAppendsOptions {
  readonly streams: number;
  readonly smallStreams: number;
  readonly perAppend: number;
  readonly appends: number;
  readonly rounds: number;
  readonly warmup: number;
}

export interface RandomAppendsResult {
  readonly store: Aggregate;
  readonly smallStore: Aggregate;
  readonly sqlite: Aggregate;
  /** The N-stream store against SQLite, and against the small store. */
  readonly vsSqlite: Comparison;
  readonly vsSmallStore: Comparison;
  readonly openMs: number;
}

const SEED_X5 = 5;

/**
 * X5: reopens the N-stream store at `dir` and the SQLite file (both made by X1), creates a
 * fresh store of `smallStreams` one-event streams at `smallDir`, then runs `appends` timed
 * durable appends on each (after `warmup` untimed ones), rotated in `rounds` rounds. The N-stream
 * store and SQLite draw the same streams.
 */
export async function randomAppends(dir: string, sqliteFile: string, smallDir: string, options: RandomAppendsOptions): Promise<RandomAppendsResult> {
  const { streams, smallStreams, perAppend, appends, rounds, warmup } = options;
  const openStart = performance.now();
  const store = await EventStore.open({ dir, durability: 'fsync' });
  const openMs = performance.now() - openStart;
  const small = await EventStore.open({ dir: smallDir, durability: 'fsync' });
  const peer = SqlitePeer.open(sqliteFile);
  try {
    for (let first = 0; first < smallStreams; first += perAppend) await small.appendMany(creations(first, Math.min(perAppend, smallStreams - first)));
    const append = (target: EventStore) => (streamId: string, n: number, expectedRevision: number) => target.appendToStream(streamId, [orderEvent(n)], { expectedRevision });
    const writers = [
      new RandomWriter(streams, SEED_X5, append(store)),
      new RandomWriter(smallStreams, SEED_X5, append(small)),
      new RandomWriter(streams, SEED_X5, async (streamId, n, expectedRevision) => peer.append([{ streamId, events: [orderEvent(n)], expectedRevision }])),
    ];
    for (const writer of writers) for (let i = 0; i < warmup; i++) await writer.appendOne();
    const perRound = Math.ceil(appends / rounds);
    const [big, smallSamples, sqlite] = await rotate(
      rounds,
      writers.map((writer) => () => sequential(perRound, () => writer.appendOne())),
    );
    const written = warmup + perRound * rounds;
    if (store.commitPosition !== streams + written || small.commitPosition !== smallStreams + written) throw new Error(`X5: ${store.commitPosition} and ${small.commitPosition} events, expected ${streams + written} and ${smallStreams + written}`);
    const vsSqlite = compare(big!, sqlite!);
    const vsSmallStore = compare(big!, smallSamples!);
    return { store: vsSqlite.subject, smallStore: vsSmallStore.baseline, sqlite: vsSqlite.baseline, vsSqlite, vsSmallStore, openMs };
  } finally {
    peer.close();
    await small.close();
    await store.close();
  }
}

export interface LongStreamOptions {
  readonly segments: number;
  readonly segmentBytes: number;
  /** Log bytes per event at 100 events per append, as measured (payload.ts); a lower bound for the filler's events. */
  readonly logBytesPerEvent: number;
}

export interface LongStreamResult {
  readonly streamId: string;
  readonly events: number;
  readonly fillerEventsPerGap: number;
  /** Positions of the long stream's events. */
  readonly positions: number[];
  readonly buildMs: number;
  readonly sqliteBuildMs: number;
}

export const LONG_STREAM_ID = 'long-lived-0';
const FILLER_STREAMS = 1_000;
const FILLER_PER_APPEND = 100;

/**
 * X6: one stream of `segments` events, with more than `segmentBytes` of other streams' events
 * (appends of 100 to 1,000 other streams in turn) before each, so that no two of its events
 * share a segment. The same appends go to the store at `dir` (`'fsync'`, small segments) and,
 * one transaction each, to SQLite, in one loop; the time of each side is summed apart.
 */
export async function buildLongStream(dir: string, sqliteFile: string, options: LongStreamOptions): Promise<LongStreamResult> {
  const { segments, segmentBytes, logBytesPerEvent } = options;
  const fillerAppendsPerGap = Math.ceil(segmentBytes / logBytesPerEvent / FILLER_PER_APPEND);
  const store = await EventStore.open({ dir, durability: 'fsync', segmentBytes });
  const peer = SqlitePeer.open(sqliteFile);
  try {
    let n = 0;
    let filler = 0;
    let ms = 0;
    let sqliteMs = 0;
    const positions: number[] = [];
    const both = async (request: PeerAppend): Promise<number> => {
      const t0 = performance.now();
      const { position } = await store.appendToStream(request.streamId, request.events, { expectedRevision: request.expectedRevision });
      const t1 = performance.now();
      peer.append([request]);
      ms += t1 - t0;
      sqliteMs += performance.now() - t1;
      return position;
    };
    for (let k = 0; k < segments; k++) {
      for (let a = 0; a < fillerAppendsPerGap; a++) {
        const streamId = `other-${String(filler % FILLER_STREAMS).padStart(3, '0')}`;
        await both({ streamId, events: orderEvents(n, FILLER_PER_APPEND), expectedRevision: 'any' });
        filler++;
        n += FILLER_PER_APPEND;
      }
      positions.push(await both({ streamId: LONG_STREAM_ID, events: [orderEvent(n++)], expectedRevision: k === 0 ? 'no_stream' : k - 1 }));
    }
    if (store.commitPosition !== n) throw new Error(`X6: ${store.commitPosition} events in the store, expected ${n}`);
    return { streamId: LONG_STREAM_ID, events: n, fillerEventsPerGap: fillerAppendsPerGap * FILLER_PER_APPEND, positions, buildMs: ms, sqliteBuildMs: sqliteMs };
  } finally {
    peer.close();
    await store.close();
  }
}

const LOAD_APPENDS_PER_TRANSACTION = 100;

/**
 * X7: the W3 dataset's appends (W3's order: `perAppend` events to stream k mod streams) loaded
 * into the SQLite file `file`, 100 appends per transaction with `synchronous=OFF` (the load is
 * not measured; the rows are the same).
 */
export function loadDatasetIntoSqlite(dataset: Dataset, perAppend: number, file: string): void {
  const peer = SqlitePeer.open(file, { synchronous: 'OFF' });
  try {
    const appends = dataset.total / perAppend;
    for (let k = 0; k < appends; k += LOAD_APPENDS_PER_TRANSACTION) {
      const batch: PeerAppend[] = [];
      for (let j = k; j < Math.min(appends, k + LOAD_APPENDS_PER_TRANSACTION); j++) {
        batch.push({ streamId: dataset.streamId(j % dataset.streams), events: orderEvents(j * perAppend, perAppend), expectedRevision: 'any' });
      }
      peer.load(batch);
    }
  } finally {
    peer.close();
  }
}
