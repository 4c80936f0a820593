/**
 * "Streams at scale" (issue 6): X1–X7, each coldstream workload beside the same workload on
 * SQLite (sqlite-peer.ts) in the same run, with their ratios (coldstream ÷ SQLite: above 1 is
 * faster for rates, slower for times and memory).
 *
 *   X1  create N one-event streams, 100 per atomic appendMany ('no_stream'), 'fsync'   streams/s
 *   X2  RSS (RssAnon, RssFile), V8 heap after a clean reopen and after X4's reads     MiB, child processes
 *   X3  close, and clean reopen (open + first read of one stream) of the N-stream store  ms
 *   X4  readStream of random one-event streams among N, fully drained                  p50/p99 ms
 *   X5  1 durable append at a time to random existing streams at their known revision:
 *       the N-stream store, a fresh 1,000-stream store, SQLite, rotated in rounds     appends/s
 *   X6  readStream of one stream with one event in each of 1,000 segments (256 KiB),
 *       other streams' traffic in between; the RSS the reads add                    median ms, MiB
 *   X7  W5's read (one 1,000-event stream of the W3 dataset) beside SQLite            median ms
 *
 * X2–X5 share the stores X1 builds (unmeasured, without syncs, when X1 is off). X7 runs with
 * the W3 dataset (run.ts). All data lives under the bench's temporary directory, removed after
 * each workload.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BenchConfig, Workload } from './config.js';
import { profiled } from './profiler.js';
import { emit, log, round } from './report.js';
import { childReads, runX7, type SideResult } from './scale-reads.js';
import { buildLongStream, createStreams, LONG_STREAM_ID, loadDatasetIntoSqlite, randomAppends, randomStreams, scaleStreamId } from './scale-writes.js';
import { settleDisk, type Aggregate, type Comparison } from './sampling.js';
import type { Measured } from './summary.js';
import type { Dataset } from './writes.js';

const SEED_X4 = 4;
const SEED_FIRST_READS = 3;
const X5_WARMUP = 50;

/** The coldstream result line with SQLite's beside it (baseline line first), in the style of run.ts's comparisons. */
function emitPair(bench: string, metric: string, unit: string, value: number, sqliteValue: number, extra: Record<string, unknown> = {}, sqliteExtra: Record<string, unknown> = {}, shared: Record<string, unknown> = {}): void {
  emit({ bench: 'sqlite', baseline_of: bench, metric, value: sqliteValue, unit, ...shared, ...sqliteExtra });
  emit({ bench, metric, value, unit, baseline: 'sqlite', baseline_value: sqliteValue, ratio: round(value / sqliteValue, 3), ...shared, ...extra });
}

/** Per-append detail of an aggregate whose "events" are `what` (streams, appends). */
function appendDetail(a: Aggregate, what: string): Record<string, unknown> {
  return { [what]: a.events, ms: a.ms, append_p50_ms: a.p50_ms, append_p99_ms: a.p99_ms, append_max_ms: a.max_ms, rounds_per_sec: a.rounds };
}

function roundsDetail(c: Comparison): Record<string, unknown> {
  return { ratio_median_of_rounds: c.ratioMedianOfRounds, ratio_min_of_rounds: c.ratioMinOfRounds, ratio_max_of_rounds: c.ratioMaxOfRounds };
}

/** Memory fields of one side, prefixed. */
function memoryDetail(s: SideResult, when: 'after_open' | 'after_reads', prefix = ''): Record<string, unknown> {
  const m = s[when];
  return { [`${prefix}rss_anon_mb`]: m.rss_anon_mb, [`${prefix}rss_file_mb`]: m.rss_file_mb, [`${prefix}heap_used_mb`]: m.heap_used_mb };
}

/** X1–X6, whichever are on. */
export async function scaleWorkloads(config: BenchConfig, root: string, measured: Measured, logBytesPerEvent: number): Promise<void> {
  const on = (w: Workload): boolean => config.only.has(w);
  if (on('X1') || on('X2') || on('X3') || on('X4') || on('X5')) await nStreams(config, root, measured);
  if (on('X6')) await longStream(config, root, measured, logBytesPerEvent);
}

async function nStreams(config: BenchConfig, root: string, measured: Measured): Promise<void> {
  const on = (w: Workload): boolean => config.only.has(w);
  const streams = config.xStreams;
  const perAppend = config.xStreamsPerAppend;
  const dir = path.join(root, 'x-coldstream');
  const sqliteDir = path.join(root, 'x-sqlite');
  const sqliteFile = path.join(sqliteDir, 'events.db');
  const smallDir = path.join(root, 'x-coldstream-small');
  fs.mkdirSync(sqliteDir, { recursive: true });
  measured.X_streams = streams;
  const shape = { streams, streams_per_append: perAppend };
  try {
    const durability = on('X1') ? 'fsync' : 'none';
    log(`X1${on('X1') ? '' : " stores for X2–X5 (durability 'none', SQLite synchronous=OFF, not reported)"}: ${streams} one-event streams, ${perAppend} per appendMany / SQLite transaction, interleaved in ${config.xCreateRounds} rounds`);
    settleDisk();
    const created = await profiled('X1', () => createStreams(dir, sqliteFile, { streams, perAppend, rounds: config.xCreateRounds, durability }));
    const c = created.comparison;
    if (on('X1')) {
      measured.X1_streams_per_sec = c.subject.eventsPerSec;
      measured.X1_sqlite_streams_per_sec = c.baseline.eventsPerSec;
      measured.X1_ratio_median_of_rounds = c.ratioMedianOfRounds;
      emitPair('X1', 'streams_per_sec', 'streams/s', c.subject.eventsPerSec, c.baseline.eventsPerSec, { ...roundsDetail(c), ...appendDetail(c.subject, 'streams') }, appendDetail(c.baseline, 'streams'), { ...shape, durability: "'fsync' / synchronous=FULL" });
    }

    if (on('X2') || on('X3') || on('X4')) {
      log(`X2–X4: clean reopen of the ${streams}-stream store, memory, ${config.xReads} reads of random one-event streams; ${config.xReadProcesses} child processes per side, ABBA`);
      settleDisk();
      const firstReads = randomStreams(SEED_FIRST_READS, streams, config.xReadProcesses).map(scaleStreamId);
      const reads = randomStreams(SEED_X4, streams, config.xReads).map(scaleStreamId);
      const { coldstream: cs, sqlite: sq } = await childReads({ tmpDir: root, storeDir: dir, sqliteFile, processes: config.xReadProcesses, firstReads, reads, eventsPerStream: 1 });
      const context = { ...shape, processes: cs.processes };
      if (on('X2')) emitX2(cs, sq, context, measured);
      if (on('X3')) {
        measured.X3_close_ms = round(created.closeMs, 1);
        measured.X3_reopen_ms = cs.reopen_ms;
        measured.X3_sqlite_close_ms = round(created.sqliteCloseMs, 1);
        measured.X3_sqlite_reopen_ms = sq.reopen_ms;
        const parts = (s: SideResult) => ({ open_ms: s.open_ms, first_read_ms: s.first_read_ms, reopen_ms_each: s.reopen_ms_each });
        const note = 'a fresh process: open (SQLite: open, pragmas, prepared statements) + the first read of one stream; OS page cache warm';
        emitPair('X3', 'reopen_ms', 'ms', cs.reopen_ms, sq.reopen_ms, parts(cs), parts(sq), { ...context, note });
        emitPair('X3', 'close_ms', 'ms', round(created.closeMs, 1), round(created.sqliteCloseMs, 1), {}, {}, { ...shape, after: durability === 'fsync' ? 'X1' : "the unreported build (durability 'none')" });
      }
      if (on('X4')) {
        measured.X4_p50_ms = cs.p50_ms;
        measured.X4_p99_ms = cs.p99_ms;
        measured.X4_sqlite_p50_ms = sq.p50_ms;
        measured.X4_sqlite_p99_ms = sq.p99_ms;
        emitPair('X4', 'read_stream_p50_ms', 'ms', cs.p50_ms, sq.p50_ms, {}, {}, { ...context, reads: cs.reads });
        emitPair('X4', 'read_stream_p99_ms', 'ms', cs.p99_ms, sq.p99_ms, { max_ms: cs.max_ms }, { max_ms: sq.max_ms }, { ...context, reads: cs.reads });
      }
    }

    if (on('X5')) {
      const { xAppends: appends, xAppendRounds: rounds, xSmallStreams: smallStreams } = config;
      log(`X5: ${appends} durable appends of 1 event to random existing streams at their revision, each on the ${streams}-stream store, a fresh ${smallStreams}-stream store and SQLite, rotated in ${rounds} rounds`);
      settleDisk();
      const x5 = await profiled('X5', () => randomAppends(dir, sqliteFile, smallDir, { streams, smallStreams, perAppend, appends, rounds, warmup: X5_WARMUP }));
      measured.X5_appends_per_sec = x5.store.eventsPerSec;
      measured.X5_small_store_appends_per_sec = x5.smallStore.eventsPerSec;
      measured.X5_sqlite_appends_per_sec = x5.sqlite.eventsPerSec;
      measured.X5_ratio_median_of_rounds = x5.vsSqlite.ratioMedianOfRounds;
      measured.X5_vs_small_store_median_of_rounds = x5.vsSmallStore.ratioMedianOfRounds;
      emit({ bench: 'X5', variant: 'small_store', metric: 'appends_per_sec', value: x5.smallStore.eventsPerSec, unit: 'appends/s', baseline_of: 'X5', streams: smallStreams, ...appendDetail(x5.smallStore, 'appends') });
      const vsSmall = { ratio_vs_small_store: x5.vsSmallStore.ratio, ratio_vs_small_store_median_of_rounds: x5.vsSmallStore.ratioMedianOfRounds, small_store_streams: smallStreams };
      emitPair('X5', 'appends_per_sec', 'appends/s', x5.store.eventsPerSec, x5.sqlite.eventsPerSec, { ...roundsDetail(x5.vsSqlite), ...vsSmall, ...appendDetail(x5.store, 'appends'), open_ms: round(x5.openMs, 1) }, appendDetail(x5.sqlite, 'appends'), { streams, rounds });
    }
  } finally {
    for (const d of [dir, sqliteDir, smallDir]) fs.rmSync(d, { recursive: true, force: true });
  }
}

function emitX2(cs: SideResult, sq: SideResult, context: Record<string, unknown>, measured: Measured): void {
  measured.X2_rss_mb_after_open = cs.after_open.rss_mb;
  measured.X2_rss_anon_mb_after_open = cs.after_open.rss_anon_mb;
  measured.X2_rss_file_mb_after_open = cs.after_open.rss_file_mb;
  measured.X2_heap_used_mb_after_open = cs.after_open.heap_used_mb;
  measured.X2_rss_mb_after_reads = cs.after_reads.rss_mb;
  measured.X2_rss_anon_mb_after_reads = cs.after_reads.rss_anon_mb;
  measured.X2_rss_file_mb_after_reads = cs.after_reads.rss_file_mb;
  measured.X2_heap_used_mb_after_reads = cs.after_reads.heap_used_mb;
  measured.X2_sqlite_rss_mb_after_open = sq.after_open.rss_mb;
  measured.X2_sqlite_rss_anon_mb_after_open = sq.after_open.rss_anon_mb;
  measured.X2_sqlite_rss_mb_after_reads = sq.after_reads.rss_mb;
  measured.X2_sqlite_rss_anon_mb_after_reads = sq.after_reads.rss_anon_mb;
  for (const when of ['after_open', 'after_reads'] as const) {
    const process = (s: SideResult) => ({ process_rss_mb_before_open: s.before_open.rss_mb, process_rss_anon_mb_before_open: s.before_open.rss_anon_mb });
    emitPair('X2', `rss_mb_${when}`, 'MiB', cs[when].rss_mb, sq[when].rss_mb, { ...memoryDetail(cs, when), ...memoryDetail(sq, when, 'baseline_'), ...process(cs) }, { ...memoryDetail(sq, when), ...process(sq) }, {
      ...context,
      note: 'largest of the child processes; RssAnon and heap after a full GC; RssFile is mapped file pages',
    });
  }
}

async function longStream(config: BenchConfig, root: string, measured: Measured, logBytesPerEvent: number): Promise<void> {
  const { xLongSegments: segments, xLongSegmentBytes: segmentBytes, xLongReads: reads } = config;
  const dir = path.join(root, 'x6-coldstream');
  const sqliteDir = path.join(root, 'x6-sqlite');
  const sqliteFile = path.join(sqliteDir, 'events.db');
  fs.mkdirSync(sqliteDir, { recursive: true });
  try {
    log(`X6: one stream with one event in each of ${segments} segments of ${segmentBytes} bytes, other streams' traffic between (coldstream 'fsync' and SQLite, one transaction per append)`);
    settleDisk();
    const built = await profiled('X6-build', () => buildLongStream(dir, sqliteFile, { segments, segmentBytes, logBytesPerEvent }));
    // A sanity check of the build, by the log's file names (a layout change makes it report undefined, not fail).
    const holding = segmentsHolding(path.join(dir, 'log'), built.positions);
    if (holding.holding !== undefined && holding.holding !== segments) log(`X6: warning: the long stream's ${segments} events are in ${holding.holding} segments`);
    log(`X6: ${reads} reads of the ${segments}-event stream per side after a first read per process; ${config.xReadProcesses} child processes per side, ABBA`);
    settleDisk();
    const perProcess = Array.from({ length: reads }, () => LONG_STREAM_ID);
    const { coldstream: cs, sqlite: sq } = await childReads({ tmpDir: root, storeDir: dir, sqliteFile, segmentBytes, processes: config.xReadProcesses, firstReads: [LONG_STREAM_ID], reads: perProcess, eventsPerStream: segments });
    measured.X6_median_ms = cs.p50_ms;
    measured.X6_sqlite_median_ms = sq.p50_ms;
    measured.X6_rss_growth_mb = cs.rss_growth_mb;
    measured.X6_peak_rss_growth_mb = cs.peak_rss_growth_mb;
    measured.X6_sqlite_rss_growth_mb = sq.rss_growth_mb;
    measured.X6_sqlite_peak_rss_growth_mb = sq.peak_rss_growth_mb;
    const shape = { stream_events: segments, segment_bytes: segmentBytes, events: built.events, filler_events_per_gap: built.fillerEventsPerGap, segment_files: holding.segments, segments_holding_stream: holding.holding, processes: cs.processes };
    const timings = (s: SideResult) => ({ reads: s.reads, p99_ms: s.p99_ms, max_ms: s.max_ms, first_read_ms: s.first_read_ms, open_ms: s.open_ms });
    emitPair('X6', 'read_stream_median_ms', 'ms', cs.p50_ms, sq.p50_ms, { ...timings(cs), build_ms: round(built.buildMs) }, { ...timings(sq), build_ms: round(built.sqliteBuildMs) }, shape);
    const growth = (s: SideResult) => ({ rss_anon_growth_mb: s.rss_anon_growth_mb, peak_rss_growth_mb: s.peak_rss_growth_mb, rss_mb_after_open: s.after_open.rss_mb, rss_mb_after_reads: s.after_reads.rss_mb });
    emitPair('X6', 'read_rss_growth_mb', 'MiB', cs.rss_growth_mb, sq.rss_growth_mb, growth(cs), growth(sq), { ...shape, note: 'RSS after the reads − after open (peak: peak RSS during the reads − after open), largest of the processes' });
  } finally {
    for (const d of [dir, sqliteDir]) fs.rmSync(d, { recursive: true, force: true });
  }
}

/** Segment files in `logDir` (`<20-digit base position>.log`), and how many hold one of `positions`; undefined when there are none. */
function segmentsHolding(logDir: string, positions: readonly number[]): { segments: number | undefined; holding: number | undefined } {
  const bases = fs
    .readdirSync(logDir)
    .filter((name) => /^\d{20}\.log$/.test(name))
    .map((name) => Number(name.slice(0, 20)))
    .sort((a, b) => a - b);
  if (bases.length === 0) return { segments: undefined, holding: undefined };
  const holding = new Set<number>();
  for (const position of positions) {
    // The last segment whose base position is at most `position`.
    let lo = 0;
    let hi = bases.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (bases[mid]! <= position) lo = mid;
      else hi = mid - 1;
    }
    holding.add(bases[lo]!);
  }
  return { segments: bases.length, holding: holding.size };
}

/** X7: the W3 dataset loaded into SQLite, then W5's read on both sides, ABBA. */
export async function x7(config: BenchConfig, dataset: Dataset, perAppend: number, root: string, measured: Measured): Promise<void> {
  const sqliteDir = path.join(root, 'x7-sqlite');
  fs.mkdirSync(sqliteDir, { recursive: true });
  try {
    log(`X7: the W3 dataset (${dataset.total} events, ${dataset.streams} streams) loaded into SQLite (not measured), then readStream() of one ${dataset.eventsPerStream}-event stream, ${config.x7Rounds} rounds ABBA`);
    const loadStart = performance.now();
    loadDatasetIntoSqlite(dataset, perAppend, path.join(sqliteDir, 'events.db'));
    const loadMs = performance.now() - loadStart;
    settleDisk();
    const r = await profiled('X7', () => runX7(dataset, path.join(sqliteDir, 'events.db'), config.x7Rounds));
    measured.X7_median_ms = r.coldstream.median_ms;
    measured.X7_sqlite_median_ms = r.sqlite.median_ms;
    const spread = (s: typeof r.coldstream) => ({ min_ms: s.min_ms, max_ms: s.max_ms, first_read_ms: s.first_ms });
    emitPair('X7', 'read_stream_median_ms', 'ms', r.coldstream.median_ms, r.sqlite.median_ms, { ...spread(r.coldstream), open_ms: r.openMs }, { ...spread(r.sqlite), load_ms: round(loadMs) }, { reads: config.x7Rounds, stream: r.streamId, events: dataset.eventsPerStream, dataset_events: dataset.total });
  } finally {
    fs.rmSync(sqliteDir, { recursive: true, force: true });
  }
}
