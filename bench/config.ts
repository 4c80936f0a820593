/**
 * Benchmark configuration from the environment:
 *   BENCH_ONLY=W1,S2        run only these workloads (W1–W5, S1–S3, X1–X7, T1–T4); the raw baselines run
 *                           with W1 / W2, SQLite with every X workload, s3rver with every T workload
 *   BENCH_SCALE=0.1         multiply the event counts (a quick run); streams keep 1,000 events each
 *   BENCH_STREAMS=10000000  streams of the X workloads before BENCH_SCALE (default 1,000,000;
 *                           10,000,000 is the larger size of issue 6)
 */
export const WORKLOADS = ['W1', 'W2', 'W3', 'W4', 'W5', 'S1', 'S2', 'S3', 'X1', 'X2', 'X3', 'X4', 'X5', 'X6', 'X7', 'T1', 'T2', 'T3', 'T4'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface BenchConfig {
  readonly only: ReadonlySet<Workload>;
  readonly scale: number;
  /** W1 and raw baseline (a): sequential durable appends. */
  readonly w1Appends: number;
  /** W1 and W2 run interleaved with their raw baselines in this many rounds (fdatasync latency drifts). */
  readonly rounds: number;
  /** W2 and raw baseline (b): concurrent writers and total events. */
  readonly w2Writers: number;
  readonly w2Events: number;
  /** W3 dataset: streams × eventsPerStream events in appends of eventsPerAppend. */
  readonly w3Streams: number;
  readonly w3EventsPerStream: number;
  readonly w3EventsPerAppend: number;
  /** Raw baseline (a′) of W3: this many write + fdatasync of w3EventsPerAppend records. */
  readonly w3RawBatches: number;
  readonly w3Rounds: number;
  /** W5: warm reads of one stream after the first one. */
  readonly w5WarmReads: number;
  /** S1: timed appends of 1 event (after a warm-up) per durability, each delivered to a live subscriber. */
  readonly s1Events: number;
  /** S2: rounds of catch-up subscription and readAll() over the W3 dataset (ABBA order). */
  readonly s2Rounds: number;
  /** S3: one stream of s3Events events in appends of s3EventsPerAppend, then s3EventsAfterSnapshot more. */
  readonly s3Events: number;
  readonly s3EventsPerAppend: number;
  readonly s3EventsAfterSnapshot: number;
  /** S3: the snapshot policy's everyEvents, and the timed loads each way. */
  readonly s3SnapshotEvery: number;
  readonly s3Loads: number;
  /** X1–X5: streams of one event each (a multiple of xStreamsPerAppend), created xStreamsPerAppend per atomic appendMany. */
  readonly xStreams: number;
  readonly xStreamsPerAppend: number;
  /** X1: coldstream and SQLite create their streams interleaved in this many rounds. */
  readonly xCreateRounds: number;
  /** X2–X4: child processes per side (ABBA order), and random one-event streams read over all of them. */
  readonly xReadProcesses: number;
  readonly xReads: number;
  /** X5: timed durable appends of 1 event per subject, interleaved in xAppendRounds rounds; the small store's streams. */
  readonly xAppends: number;
  readonly xAppendRounds: number;
  readonly xSmallStreams: number;
  /** X6: the long stream's events, one per segment of xLongSegmentBytes; its timed reads per side (after a first read per process). */
  readonly xLongSegments: number;
  readonly xLongSegmentBytes: number;
  readonly xLongReads: number;
  /** X7: rounds of one readStream per side (ABBA) after a first read each, on the W3 dataset. */
  readonly x7Rounds: number;
  /**
   * T1–T4 (tiering to s3rver): the W3 dataset's shape (w3Streams × w3EventsPerStream events,
   * w3EventsPerAppend per append) in segments of tSegmentBytes, so that about twenty segments
   * are tiered at every BENCH_SCALE and the active one (never uploaded) holds a few percent.
   */
  readonly tSegmentBytes: number;
  /** T1: rounds of tiered upload (drain) and plain PutObject of the same files, ABBA. */
  readonly t1Rounds: number;
  /** T2: rounds of readAll hot and cold, ABBA. */
  readonly t2Rounds: number;
  /** T3: cold reads of one stream, the cache emptied before each; and warm hot reads beside them. */
  readonly t3Reads: number;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const scale = env.BENCH_SCALE === undefined || env.BENCH_SCALE === '' ? 1 : Number(env.BENCH_SCALE);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 10) throw new Error(`BENCH_SCALE must be a number in (0, 10], got '${env.BENCH_SCALE}'`);
  let only: Set<Workload>;
  if (env.BENCH_ONLY === undefined || env.BENCH_ONLY.trim() === '') {
    only = new Set(WORKLOADS);
  } else {
    const names = env.BENCH_ONLY.split(',').map((s) => s.trim().toUpperCase()).filter((s) => s !== '');
    const unknown = names.filter((n) => !(WORKLOADS as readonly string[]).includes(n));
    if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown workload(s) ${unknown.join(', ')}; known: ${WORKLOADS.join(', ')}`);
    only = new Set(names as Workload[]);
  }
  const scaled = (n: number, min = 1): number => Math.max(min, Math.round(n * scale));
  const streams = env.BENCH_STREAMS === undefined || env.BENCH_STREAMS === '' ? 1_000_000 : Number(env.BENCH_STREAMS.replaceAll('_', ''));
  if (!Number.isSafeInteger(streams) || streams < 1_000) throw new Error(`BENCH_STREAMS must be an integer >= 1000, got '${env.BENCH_STREAMS}'`);
  const xStreamsPerAppend = 100;
  return {
    only,
    scale,
    w1Appends: scaled(3_000, 50),
    rounds: 20,
    w2Writers: 64,
    w2Events: scaled(30_000, 640),
    w3Streams: scaled(1_000, 2),
    w3EventsPerStream: 1_000,
    w3EventsPerAppend: 100,
    w3RawBatches: scaled(2_000, 20),
    w3Rounds: 10,
    w5WarmReads: 20,
    s1Events: scaled(2_000, 100),
    s2Rounds: 2,
    s3Events: Math.ceil(scaled(100_000, 1_000) / 100) * 100,
    s3EventsPerAppend: 100,
    s3EventsAfterSnapshot: 50,
    s3SnapshotEvery: 1_000,
    s3Loads: 5,
    xStreams: Math.ceil(scaled(streams, 1_000) / xStreamsPerAppend) * xStreamsPerAppend,
    xStreamsPerAppend,
    xCreateRounds: 10,
    xReadProcesses: 2,
    xReads: 2_000,
    xAppends: scaled(3_000, 300),
    xAppendRounds: 12,
    xSmallStreams: 1_000,
    xLongSegments: scaled(1_000, 20),
    xLongSegmentBytes: 256 * 1024,
    xLongReads: 20,
    x7Rounds: 20,
    tSegmentBytes: Math.max(256 * 1024, Math.round(16 * 1024 * 1024 * scale)),
    t1Rounds: 2,
    t2Rounds: 2,
    t3Reads: 5,
  };
}
