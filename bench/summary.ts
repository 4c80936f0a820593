/**
 * The reference numbers (same machine class) and the targets, and the final
 * `{"bench":"summary"}` line that sets our measurements beside them.
 */

/** Events per second unless the name says otherwise; from the issue, not measured here. */
export const REFERENCE = Object.freeze({
  raw_fdatasync_per_call_events_per_sec: 6_700,
  raw_group_commit_events_per_sec: 80_000,
  sqlite_wal_full_W1_events_per_sec: 7_400,
  sqlite_wal_full_W2_events_per_sec: 6_900,
  sqlite_wal_full_W3_events_per_sec: 180_000,
  sqlite_wal_full_W4_events_per_sec: 440_000,
  sqlite_wal_full_W5_ms: 2.3,
});

/** What the run measured (undefined when that workload did not run). */
export interface Measured {
  W1_ratio_median_of_rounds?: number;
  W2_ratio_median_of_rounds?: number;
  raw_a_events_per_sec?: number;
  raw_b_events_per_sec?: number;
  W1_events_per_sec?: number;
  W1_p50_ms?: number;
  W1_p99_ms?: number;
  W2_events_per_sec?: number;
  W3_events_per_sec?: number;
  /** Raw write + fdatasync of 100 framed records at a time, interleaved with W3 (its I/O floor). */
  raw_batch_events_per_sec?: number;
  W3_none_events_per_sec?: number;
  W4_reopen_ms?: number;
  W4_reopen_unclean_ms?: number;
  W4_events_per_sec?: number;
  W5_median_ms?: number;
  W5_first_ms?: number;
  /** Append call to delivery to a live subscriber, one writer, one event per append. */
  S1_none_p50_ms?: number;
  S1_none_p99_ms?: number;
  S1_fsync_p50_ms?: number;
  S1_fsync_p99_ms?: number;
  /** The same with a writer that yields to the event loop (setImmediate) after each append. */
  S1_none_writer_yields_p50_ms?: number;
  S1_none_writer_yields_p99_ms?: number;
  S1_fsync_writer_yields_p50_ms?: number;
  S1_fsync_writer_yields_p99_ms?: number;
  /** Catch-up subscription from 'start' to the first 'caughtUp', and readAll() of the same data, interleaved. */
  S2_events_per_sec?: number;
  S2_read_all_events_per_sec?: number;
  S2_ratio_median_of_rounds?: number;
  /** aggregateStream of one long stream: median ms of a full replay, and from a snapshot. */
  S3_full_median_ms?: number;
  S3_snapshot_median_ms?: number;
  /** X1–X5: the number of one-event streams of the N-stream store. */
  X_streams?: number;
  /** X1: one-event streams created per second, 100 per atomic appendMany / SQLite transaction, interleaved. */
  X1_streams_per_sec?: number;
  X1_sqlite_streams_per_sec?: number;
  X1_ratio_median_of_rounds?: number;
  /** X2: memory of a process that opened the N-stream store (after a clean close), and after X4's reads (MiB, largest of the processes). */
  X2_rss_mb_after_open?: number;
  X2_rss_anon_mb_after_open?: number;
  X2_rss_file_mb_after_open?: number;
  X2_heap_used_mb_after_open?: number;
  X2_rss_mb_after_reads?: number;
  X2_rss_anon_mb_after_reads?: number;
  X2_rss_file_mb_after_reads?: number;
  X2_heap_used_mb_after_reads?: number;
  X2_sqlite_rss_mb_after_open?: number;
  X2_sqlite_rss_anon_mb_after_open?: number;
  X2_sqlite_rss_mb_after_reads?: number;
  X2_sqlite_rss_anon_mb_after_reads?: number;
  /** X3: close after X1, and reopen in a fresh process (open + first read of one stream), median of the processes. */
  X3_close_ms?: number;
  X3_reopen_ms?: number;
  X3_sqlite_close_ms?: number;
  X3_sqlite_reopen_ms?: number;
  /** X4: readStream of random one-event streams among N. */
  X4_p50_ms?: number;
  X4_p99_ms?: number;
  X4_sqlite_p50_ms?: number;
  X4_sqlite_p99_ms?: number;
  /** X5: durable appends of 1 event to random existing streams: N-stream store, 1,000-stream store, SQLite, rotated. */
  X5_appends_per_sec?: number;
  X5_small_store_appends_per_sec?: number;
  X5_sqlite_appends_per_sec?: number;
  X5_ratio_median_of_rounds?: number;
  X5_vs_small_store_median_of_rounds?: number;
  /** X6: readStream of one stream with one event in each of 1,000 segments; RSS it adds (after, and peak). */
  X6_median_ms?: number;
  X6_sqlite_median_ms?: number;
  X6_rss_growth_mb?: number;
  X6_peak_rss_growth_mb?: number;
  X6_sqlite_rss_growth_mb?: number;
  X6_sqlite_peak_rss_growth_mb?: number;
  /** X7: W5's read (one 1,000-event stream of the W3 dataset) beside SQLite on the same rows, ABBA. */
  X7_median_ms?: number;
  X7_sqlite_median_ms?: number;
  /** T1: tiered upload (drain) and a plain PutObject loop of the same files, against s3rver, ABBA (MiB/s). */
  T1_upload_mib_per_sec?: number;
  T1_put_object_mib_per_sec?: number;
  T1_ratio_median_of_rounds?: number;
  /** T2: readAll of the dataset with every sealed segment evicted and the cache empty, and of its local copy (hot); GETs and bytes of one cold pass. */
  T2_cold_events_per_sec?: number;
  T2_hot_events_per_sec?: number;
  T2_ratio_median_of_rounds?: number;
  T2_cold_gets?: number;
  T2_cold_bytes_fetched?: number;
  /** T3: W5's stream read cold (cache emptied): median ms, GETs and bytes of one read, the 64 KiB blocks covering its batches, and the segments holding them. */
  T3_cold_median_ms?: number;
  T3_gets?: number;
  T3_bytes_fetched?: number;
  T3_stream_block_bytes?: number;
  T3_segments_bytes?: number;
  /** T4: EventStore.restore from the bucket: ms, bytes fetched, and the committed segments' data bytes. */
  T4_restore_ms?: number;
  T4_bytes_fetched?: number;
  T4_data_bytes?: number;
}

interface Target {
  readonly name: string;
  readonly target: string;
  readonly measured: number | undefined;
  readonly threshold: number | undefined;
  readonly pass: boolean | undefined;
  /** For the interleaved ratios: the verdict by the median of the per-round ratios (robust to fdatasync stalls). */
  readonly pass_by_median_of_rounds?: boolean | undefined;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

function atLeast(name: string, target: string, measured: number | undefined, threshold: number | undefined): Target {
  return { name, target, measured, threshold, pass: measured === undefined || threshold === undefined ? undefined : measured >= threshold };
}

function atMost(name: string, target: string, measured: number | undefined, threshold: number): Target {
  return { name, target, measured, threshold, pass: measured === undefined ? undefined : measured <= threshold };
}

/** A measurement reported beside the targets, with no target of its own. */
function reported(name: string, measured: number | undefined): Target {
  return { name, target: 'none set (reported only)', measured, threshold: undefined, pass: undefined };
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : r3(a / b);
}

export function summaryLine(m: Measured): Record<string, unknown> & { bench: string } {
  const w1Ratio = ratio(m.W1_events_per_sec, m.raw_a_events_per_sec);
  const w2Ratio = ratio(m.W2_events_per_sec, m.raw_b_events_per_sec);
  const s2Ratio = ratio(m.S2_events_per_sec, m.S2_read_all_events_per_sec);
  const s3Speedup = ratio(m.S3_full_median_ms, m.S3_snapshot_median_ms);
  const x1Ratio = ratio(m.X1_streams_per_sec, m.X1_sqlite_streams_per_sec);
  const x4P99Ratio = ratio(m.X4_p99_ms, m.X4_sqlite_p99_ms);
  const x5Ratio = ratio(m.X5_appends_per_sec, m.X5_sqlite_appends_per_sec);
  const x5VsSmall = ratio(m.X5_appends_per_sec, m.X5_small_store_appends_per_sec);
  const x6Ratio = ratio(m.X6_median_ms, m.X6_sqlite_median_ms);
  const x7Ratio = ratio(m.X7_median_ms, m.X7_sqlite_median_ms);
  const t1Ratio = ratio(m.T1_upload_mib_per_sec, m.T1_put_object_mib_per_sec);
  const t2Ratio = ratio(m.T2_cold_events_per_sec, m.T2_hot_events_per_sec);
  const t3Ratio = ratio(m.T3_bytes_fetched, m.T3_stream_block_bytes);
  const t4Share = m.T4_bytes_fetched === undefined || m.T4_data_bytes === undefined ? undefined : Math.round((m.T4_bytes_fetched / m.T4_data_bytes) * 1e5) / 1e5;
  const byMedian = (median: number | undefined, threshold: number): { pass_by_median_of_rounds?: boolean } => (median === undefined ? {} : { pass_by_median_of_rounds: median >= threshold });
  const targets: Target[] = [
    { ...atLeast('W1/raw_fdatasync', 'ratio >= 0.9', w1Ratio, w1Ratio === undefined ? undefined : 0.9), ...byMedian(m.W1_ratio_median_of_rounds, 0.9) },
    { ...atLeast('W2/raw_group_commit', 'ratio >= 1.0', w2Ratio, w2Ratio === undefined ? undefined : 1.0), ...byMedian(m.W2_ratio_median_of_rounds, 1.0) },
    atLeast('W3 events/s', '>= 180000 (SQLite reference)', m.W3_events_per_sec, REFERENCE.sqlite_wal_full_W3_events_per_sec),
    atLeast('W4 readAll events/s', '>= 440000 (SQLite reference)', m.W4_events_per_sec, REFERENCE.sqlite_wal_full_W4_events_per_sec),
    atMost('W5 readStream median ms', '<= 2.3 (SQLite reference)', m.W5_median_ms, REFERENCE.sqlite_wal_full_W5_ms),
    atMost('W4 reopen ms', '< 100', m.W4_reopen_ms, 100 - Number.EPSILON),
    reported('S1 append-to-delivery p99 ms (fsync)', m.S1_fsync_p99_ms),
    { ...atLeast('S2 catch-up/readAll', 'ratio >= 0.8', s2Ratio, s2Ratio === undefined ? undefined : 0.8), ...byMedian(m.S2_ratio_median_of_rounds, 0.8) },
    atLeast('S3 aggregate load full/snapshot', 'speedup >= 20', s3Speedup, s3Speedup === undefined ? undefined : 20),
    reported('X1 create streams/s ÷ SQLite (same run)', x1Ratio),
    reported('X2 RSS MiB after open + reads', m.X2_rss_mb_after_reads),
    reported('X4 readStream p99 ms ÷ SQLite (same run)', x4P99Ratio),
    reported('X5 random appends/s ÷ SQLite (same run)', x5Ratio),
    reported('X5 random appends/s, N streams ÷ 1,000 streams', x5VsSmall),
    reported('X6 long-stream read ms ÷ SQLite (same run)', x6Ratio),
    reported('X7 W5 read ms ÷ SQLite (same run)', x7Ratio),
    { ...atLeast('T1 upload/plain PutObject', 'ratio >= 0.8', t1Ratio, t1Ratio === undefined ? undefined : 0.8), ...byMedian(m.T1_ratio_median_of_rounds, 0.8) },
    { ...atLeast('T2 cold/hot readAll', 'ratio >= 0.5', t2Ratio, t2Ratio === undefined ? undefined : 0.5), ...byMedian(m.T2_ratio_median_of_rounds, 0.5) },
    atMost("T3 cold readStream bytes fetched ÷ blocks covering the stream's batches", '<= 1 (only those ranges)', t3Ratio, 1),
    atMost('T4 restore bytes fetched ÷ data bytes', '< 0.05', t4Share, 0.05 - Number.EPSILON),
  ];
  return {
    bench: 'summary',
    reference: REFERENCE,
    measured: m,
    ratios: {
      W1_vs_raw_fdatasync: w1Ratio,
      W2_vs_raw_group_commit: w2Ratio,
      raw_a_vs_reference: ratio(m.raw_a_events_per_sec, REFERENCE.raw_fdatasync_per_call_events_per_sec),
      raw_b_vs_reference: ratio(m.raw_b_events_per_sec, REFERENCE.raw_group_commit_events_per_sec),
      W1_vs_sqlite: ratio(m.W1_events_per_sec, REFERENCE.sqlite_wal_full_W1_events_per_sec),
      W2_vs_sqlite: ratio(m.W2_events_per_sec, REFERENCE.sqlite_wal_full_W2_events_per_sec),
      W3_vs_raw_fdatasync_batch: ratio(m.W3_events_per_sec, m.raw_batch_events_per_sec),
      W3_vs_sqlite: ratio(m.W3_events_per_sec, REFERENCE.sqlite_wal_full_W3_events_per_sec),
      W4_vs_sqlite: ratio(m.W4_events_per_sec, REFERENCE.sqlite_wal_full_W4_events_per_sec),
      W5_vs_sqlite: ratio(m.W5_median_ms, REFERENCE.sqlite_wal_full_W5_ms),
      S2_vs_read_all: s2Ratio,
      S3_full_vs_snapshot: s3Speedup,
      X1_vs_sqlite: x1Ratio,
      X2_rss_after_open_vs_sqlite: ratio(m.X2_rss_mb_after_open, m.X2_sqlite_rss_mb_after_open),
      X2_rss_after_reads_vs_sqlite: ratio(m.X2_rss_mb_after_reads, m.X2_sqlite_rss_mb_after_reads),
      X3_reopen_vs_sqlite: ratio(m.X3_reopen_ms, m.X3_sqlite_reopen_ms),
      X4_p50_vs_sqlite: ratio(m.X4_p50_ms, m.X4_sqlite_p50_ms),
      X4_p99_vs_sqlite: x4P99Ratio,
      X5_vs_sqlite: x5Ratio,
      X5_N_streams_vs_small_store: x5VsSmall,
      X6_vs_sqlite: x6Ratio,
      X7_vs_sqlite: x7Ratio,
      T1_upload_vs_put_object: t1Ratio,
      T2_cold_vs_hot: t2Ratio,
      T3_fetched_vs_stream_blocks: t3Ratio,
      T3_fetched_vs_segments: ratio(m.T3_bytes_fetched, m.T3_segments_bytes),
      T4_fetched_vs_data: t4Share,
    },
    targets,
    missed: targets.filter((t) => t.pass === false).map((t) => t.name),
  };
}
