/**
 * coldstream benchmark: W1–W5 from the issue, with raw `fs` baselines measured in the same run,
 * S1–S3 for subscriptions and aggregates (subscriptions.ts), and X1–X7, streams at scale
 * (issue 6), each beside SQLite in the same run (scale.ts), and T1–T4, tiering to s3rver started
 * in this process (issue 7, tiering.ts).
 *
 *   npm run bench                        everything (W and S: a minute or two on 2 cores; X at 1,000,000 streams: several minutes more)
 *   BENCH_ONLY=W1,W3 npm run bench       some workloads (W4/W5/S2/X7 build the W3 dataset if W3 is off; X2–X5 build X1's stores if X1 is off)
 *   BENCH_ONLY=X1,X2,X3,X4,X5,X6,X7 BENCH_STREAMS=10000000 npm run bench   streams at scale, the larger size
 *   BENCH_ONLY=T1,T2,T3,T4 npm run bench tiering: upload, cold readAll, cold readStream, restore (needs --openssl-legacy-provider, which the script passes)
 *   BENCH_SCALE=0.1 npm run bench        a quick run with a tenth of the events (and of the X streams)
 *   BENCH_PROFILE=/tmp/prof npm run bench a CPU profile per phase (see profiler.ts)
 *
 * stdout: one JSON object per line per result, then a final {"bench":"summary"} line.
 * stderr: progress. Data lives in a temporary directory under os.tmpdir(), removed at the end.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readConfig, type BenchConfig, type Workload } from './config.js';
import { memorySnapshot } from './memory.js';
import { profiled } from './profiler.js';
import { DATA_JSON_BYTES, measureEncodedSizes } from './payload.js';
import { copyWhileOpen, readAllEvents, runW5, timedOpen } from './reads.js';
import { emit, log, round } from './report.js';
import { settleDisk, type Aggregate, type Comparison } from './sampling.js';
import { scaleWorkloads, x7 } from './scale.js';
import { runS1, runS2, runS3 } from './subscriptions.js';
import { summaryLine, type Measured } from './summary.js';
import { tieringWorkloads } from './tiering.js';
import { datasetShape, runW1, runW2, runW3 } from './writes.js';

const W1_WARMUP = 50;
const W2_WARMUP_PER_WRITER = 5;
const S1_WARMUP = 50;

async function main(config: BenchConfig, root: string): Promise<void> {
  const measured: Measured = {};
  const on = (w: Workload): boolean => config.only.has(w);
  const dirOf = (name: string): string => path.join(root, name);

  emit({ bench: 'env', node: process.version, platform: `${os.platform()} ${os.release()}`, cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, tmpdir: root, scale: config.scale, workloads: [...config.only], loadavg_1m_at_start: round(os.loadavg()[0]!, 2), ...gitState() });
  const sizes = await measureEncodedSizes(root, 'order-w1');
  if (sizes.data_json_bytes !== DATA_JSON_BYTES) throw new Error(`event data encodes to ${sizes.data_json_bytes} bytes, not ${DATA_JSON_BYTES}`);
  emit({ bench: 'payload', metric: 'event_bytes', value: sizes.data_json_bytes!, unit: 'bytes', ...sizes });

  if (on('W1')) {
    log(`W1 vs raw (a): ${config.w1Appends} durable appends of 1 event each, one writer, interleaved in ${config.rounds} rounds`);
    settleDisk();
    const c = await profiled('W1', () => runW1(dirOf('w1'), root, config.w1Appends, config.rounds, W1_WARMUP));
    measured.raw_a_events_per_sec = c.baseline.eventsPerSec;
    measured.W1_events_per_sec = c.subject.eventsPerSec;
    measured.W1_ratio_median_of_rounds = c.ratioMedianOfRounds;
    measured.W1_p50_ms = c.subject.p50_ms;
    measured.W1_p99_ms = c.subject.p99_ms;
    emitComparison('W1', 'raw_fdatasync', c);
    emit({ bench: 'W1', metric: 'append_latency_p50_ms', value: c.subject.p50_ms, unit: 'ms', baseline: 'raw_fdatasync', baseline_value: c.baseline.p50_ms });
    emit({ bench: 'W1', metric: 'append_latency_p99_ms', value: c.subject.p99_ms, unit: 'ms', baseline: 'raw_fdatasync', baseline_value: c.baseline.p99_ms, max_ms: c.subject.max_ms, baseline_max_ms: c.baseline.max_ms });
    fs.rmSync(dirOf('w1'), { recursive: true, force: true });
  }

  if (on('W2')) {
    log(`W2 vs raw (b): ${config.w2Writers} writers on ${config.w2Writers} streams, ${config.w2Events} durable appends of 1 event, interleaved in ${config.rounds} rounds`);
    settleDisk();
    const c = await profiled('W2', () => runW2(dirOf('w2'), root, config.w2Writers, config.w2Events, config.rounds, W2_WARMUP_PER_WRITER));
    measured.raw_b_events_per_sec = c.baseline.eventsPerSec;
    measured.W2_events_per_sec = c.subject.eventsPerSec;
    measured.W2_ratio_median_of_rounds = c.ratioMedianOfRounds;
    emitComparison('W2', 'raw_group_commit', c, { writers: config.w2Writers });
    fs.rmSync(dirOf('w2'), { recursive: true, force: true });
  }

  if (on('W3') || on('W4') || on('W5') || on('S2') || on('X7')) await datasetWorkloads(config, root, measured, dirOf);

  if (on('S1')) {
    for (const durability of ['none', 'fsync'] as const) {
      for (const writerYields of [false, true]) {
        const writer = writerYields ? 'yields to the event loop after each append' : 'awaits each append';
        log(`S1 (durability '${durability}'): ${config.s1Events} appends of 1 event, one writer that ${writer}, each delivered to a live subscriber from 'end'`);
        settleDisk();
        const name = `S1-${durability}${writerYields ? '-yielding' : ''}`;
        const s1 = await profiled(name, () => runS1(dirOf(name), durability, config.s1Events, S1_WARMUP, writerYields));
        fs.rmSync(dirOf(name), { recursive: true, force: true });
        const key = `S1_${durability}${writerYields ? '_writer_yields' : ''}` as const;
        measured[`${key}_p50_ms`] = s1.p50_ms;
        measured[`${key}_p99_ms`] = s1.p99_ms;
        const variant = `durability_${durability}${writerYields ? '_writer_yields' : ''}`;
        const context = { events: s1.events, writer_ms: s1.writer_ms, delivered_while_writing: s1.delivered_while_writing, events_per_delivery_burst: s1.events_per_delivery_burst };
        emit({ bench: 'S1', variant, metric: 'delivery_latency_p50_ms', value: s1.p50_ms, unit: 'ms', append_p50_ms: s1.append_p50_ms, ...context });
        emit({ bench: 'S1', variant, metric: 'delivery_latency_p99_ms', value: s1.p99_ms, unit: 'ms', max_ms: s1.max_ms, append_p99_ms: s1.append_p99_ms, ...context });
      }
    }
  }

  if (on('S3')) {
    const { s3Events, s3EventsPerAppend, s3EventsAfterSnapshot, s3SnapshotEvery, s3Loads } = config;
    log(`S3: aggregateStream of one ${s3Events}-event stream (${s3EventsPerAppend} per append, durability 'none'): full replay vs snapshot (everyEvents ${s3SnapshotEvery}) + ${s3EventsAfterSnapshot} events, ${s3Loads} loads each`);
    settleDisk();
    const s3 = await profiled('S3', () => runS3(dirOf('s3'), { events: s3Events, perAppend: s3EventsPerAppend, eventsAfterSnapshot: s3EventsAfterSnapshot, loads: s3Loads, everyEvents: s3SnapshotEvery }));
    fs.rmSync(dirOf('s3'), { recursive: true, force: true });
    measured.S3_full_median_ms = s3.fullMedianMs;
    measured.S3_snapshot_median_ms = s3.snapshotMedianMs;
    const shape = { stream_events: s3.streamEvents, events_per_append: s3EventsPerAppend, build_ms: s3.buildMs };
    emit({ bench: 'S3', variant: 'full_replay', metric: 'aggregate_load_median_ms', value: s3.fullMedianMs, unit: 'ms', events_folded: s3.streamEvents, loads_ms: s3.fullMs, ...shape });
    emit({
      bench: 'S3',
      variant: 'snapshot',
      metric: 'aggregate_load_median_ms',
      value: s3.snapshotMedianMs,
      unit: 'ms',
      events_folded: s3EventsAfterSnapshot,
      every_events: s3SnapshotEvery,
      snapshots_stored: s3.snapshots,
      loads_ms: s3.snapshotMs,
      first_load_ms: s3.firstLoadMs,
      first_load_note: 'full replay, then the snapshot appended',
      ...shape,
    });
    emit({ bench: 'S3', metric: 'snapshot_speedup', value: round(s3.fullMedianMs / s3.snapshotMedianMs, 1), unit: 'x', target: 20 });
  }

  await tieringWorkloads(config, root, measured);

  await scaleWorkloads(config, root, measured, sizes.log_bytes_per_event_100_per_append!);

  finish(measured);
}

/** W3, and W4, W5, S2 and X7 on the dataset W3 builds (built without syncs when W3 itself is off). */
async function datasetWorkloads(config: BenchConfig, root: string, measured: Measured, dirOf: (name: string) => string): Promise<void> {
  const on = (w: Workload): boolean => config.only.has(w);

  const dataset = datasetShape(dirOf('w3'), config.w3Streams, config.w3EventsPerStream);
  const perAppend = config.w3EventsPerAppend;
  const shape = { streams: dataset.streams, events_per_append: perAppend, appends: dataset.total / perAppend };

  if (on('W3')) {
    // The same workload without syncs first, in its own directory (removed before the real one).
    log(`W3 (durability 'none'): ${dataset.total} events, ${perAppend} per append, over ${dataset.streams} streams`);
    settleDisk();
    const none = await profiled('W3-none', () => runW3(datasetShape(dirOf('w3-none'), dataset.streams, dataset.eventsPerStream), { perAppend, durability: 'none' }));
    await none.store.close();
    fs.rmSync(dirOf('w3-none'), { recursive: true, force: true });
    measured.W3_none_events_per_sec = none.result.eventsPerSec;
    emit({ bench: 'W3', variant: 'durability_none', metric: 'events_per_sec', value: none.result.eventsPerSec, unit: 'events/s', ...shape, ...detail(none.result) });
  }
  log(`W3${on('W3') ? " (durability 'fsync')" : " dataset for W4/W5/S2/X7 (durability 'none', not reported)"}: ${dataset.total} events, ${perAppend} per append, over ${dataset.streams} streams${on('W3') ? `, raw (a′) interleaved in ${config.w3Rounds} rounds` : ''}`);
  settleDisk();
  const w3 = on('W3')
    ? await profiled('W3-fsync', () => runW3(dataset, { perAppend, durability: 'fsync', baseline: { rawDir: root, batches: config.w3RawBatches, rounds: config.w3Rounds } }))
    : await runW3(dataset, { perAppend, durability: 'none' });
  let store = w3.store;
  try {
    if (on('W3')) {
      measured.W3_events_per_sec = w3.result.eventsPerSec;
      if (w3.comparison !== undefined) {
        measured.raw_batch_events_per_sec = w3.comparison.baseline.eventsPerSec;
        emitComparison('W3', 'raw_fdatasync_batch', w3.comparison, { variant: 'durability_fsync', ...shape });
      }
      const mem = memorySnapshot();
      emit({ bench: 'W3', metric: 'memory_rss_mb', value: mem.rss_mb, unit: 'MiB', when: 'after W3, store open', ...mem });
    }
    if (on('W4')) {
      log('W4: copying the open store (after flush) for the unclean-reopen measurement');
      await copyWhileOpen(store, dataset.dir, dirOf('w3-unclean'));
    }
    const closeStart = performance.now();
    await store.close();
    const closeMs = performance.now() - closeStart;

    if (on('W4')) {
      log(`W4: reopen after clean close, then readAll() of ${dataset.total} events`);
      settleDisk();
      const reopened = await profiled('W4-reopen', () => timedOpen(dataset.dir, dataset.total));
      store = reopened.store;
      measured.W4_reopen_ms = round(reopened.ms, 1);
      emit({ bench: 'W4', metric: 'reopen_ms', value: round(reopened.ms, 1), unit: 'ms', target_ms: 100, events: dataset.total, close_ms: round(closeMs, 1) });
      const read = await profiled('W4-readAll', () => readAllEvents(reopened.store, dataset.total));
      measured.W4_events_per_sec = read.eventsPerSec;
      emit({ bench: 'W4', metric: 'read_all_events_per_sec', value: read.eventsPerSec, unit: 'events/s', events: dataset.total, ms: round(read.ms, 1) });
      const mem = memorySnapshot();
      emit({ bench: 'W4', metric: 'memory_rss_mb', value: mem.rss_mb, unit: 'MiB', when: 'after W4 readAll, store open', ...mem });
      await store.close();

      log('W4: reopen of the copy taken while open (unclean stop)');
      settleDisk();
      const unclean = await profiled('W4-reopen-unclean', () => timedOpen(dirOf('w3-unclean'), dataset.total));
      await unclean.store.close();
      fs.rmSync(dirOf('w3-unclean'), { recursive: true, force: true });
      measured.W4_reopen_unclean_ms = round(unclean.ms, 1);
      emit({ bench: 'W4', metric: 'reopen_unclean_ms', value: round(unclean.ms, 1), unit: 'ms', events: dataset.total, note: 'copy of the directory after flush() while open: no clean-close checkpoint of the active segment' });
    }
  } finally {
    await store.close();
  }

  if (on('W5')) {
    log(`W5: readStream() of one ${dataset.eventsPerStream}-event stream out of ${dataset.total}`);
    settleDisk();
    const w5 = await profiled('W5', () => runW5(dataset, config.w5WarmReads));
    measured.W5_median_ms = w5.warmMedianMs;
    measured.W5_first_ms = w5.coldMs;
    emit({ bench: 'W5', metric: 'read_stream_median_ms', value: w5.warmMedianMs, unit: 'ms', reads: config.w5WarmReads, min_ms: w5.warmMinMs, max_ms: w5.warmMaxMs, stream: w5.streamId, events: dataset.eventsPerStream, fs_reads_per_read: w5.fsReadsPerRead });
    emit({ bench: 'W5', metric: 'read_stream_first_ms', value: w5.coldMs, unit: 'ms', note: 'first read after open: store caches cold, OS page cache warm', open_ms: w5.openMs });
  }

  if (on('X7')) await x7(config, dataset, perAppend, root, measured);

  if (on('S2')) {
    log(`S2: subscribeMessages({ from: 'start' }) up to 'caughtUp' vs readAll(), ${dataset.total} events each, interleaved in ${config.s2Rounds} rounds`);
    settleDisk();
    const { store: s2Store, ms: openMs } = await timedOpen(dataset.dir, dataset.total);
    try {
      const c = await profiled('S2', () => runS2(s2Store, dataset.total, config.s2Rounds));
      measured.S2_events_per_sec = c.subject.eventsPerSec;
      measured.S2_read_all_events_per_sec = c.baseline.eventsPerSec;
      measured.S2_ratio_median_of_rounds = c.ratioMedianOfRounds;
      const passes = (a: Aggregate) => ({ events: a.events, ms: a.ms, rounds_events_per_sec: a.rounds });
      emit({ bench: 'S2', variant: 'read_all', metric: 'events_per_sec', value: c.baseline.eventsPerSec, unit: 'events/s', baseline_of: 'S2', ...passes(c.baseline) });
      emit({
        bench: 'S2',
        variant: 'subscribe_catch_up',
        metric: 'events_per_sec',
        value: c.subject.eventsPerSec,
        unit: 'events/s',
        baseline: 'read_all',
        baseline_value: c.baseline.eventsPerSec,
        ratio: c.ratio,
        ratio_median_of_rounds: c.ratioMedianOfRounds,
        ratio_min_of_rounds: c.ratioMinOfRounds,
        ratio_max_of_rounds: c.ratioMaxOfRounds,
        target_ratio: 0.8,
        open_ms: round(openMs, 1),
        ...passes(c.subject),
      });
    } finally {
      await s2Store.close();
    }
  }
}

function detail(a: Aggregate): Record<string, unknown> {
  return {
    events: a.events,
    ms: a.ms,
    p50_ms: a.p50_ms,
    p99_ms: a.p99_ms,
    max_ms: a.max_ms,
    ...(a.syncs === undefined ? {} : { fdatasyncs: a.syncs, events_per_fdatasync: a.eventsPerSync }),
    ...(a.rounds.length > 1 ? { rounds_events_per_sec: a.rounds } : {}),
  };
}

/** The baseline's line, then the workload's line with the ratio. */
function emitComparison(bench: string, baseline: string, c: Comparison, extra: Record<string, unknown> = {}): void {
  emit({ bench: baseline, metric: 'events_per_sec', value: c.baseline.eventsPerSec, unit: 'events/s', baseline_of: bench, ...extra, ...detail(c.baseline) });
  emit({
    bench,
    metric: 'events_per_sec',
    value: c.subject.eventsPerSec,
    unit: 'events/s',
    baseline,
    baseline_value: c.baseline.eventsPerSec,
    ratio: c.ratio,
    ratio_median_of_rounds: c.ratioMedianOfRounds,
    ratio_min_of_rounds: c.ratioMinOfRounds,
    ratio_max_of_rounds: c.ratioMaxOfRounds,
    ...extra,
    ...detail(c.subject),
  });
}

function finish(measured: Measured): void {
  // Other processes on the machine skew everything here: the load average says how busy it was.
  emit({ ...summaryLine(measured), loadavg_1m_at_end: round(os.loadavg()[0]!, 2) });
}

/** Which code was measured: the commit, and whether lib/ had uncommitted changes. */
function gitState(): Record<string, unknown> {
  try {
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: path.join(import.meta.dirname, '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { git_head: git('rev-parse', '--short', 'HEAD'), lib_uncommitted_changes: git('status', '--porcelain', '--', ':(top)lib').split('\n').filter((l) => l !== '').length };
  } catch {
    return {};
  }
}

const config = readConfig();
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-bench-'));
const cleanup = (): void => fs.rmSync(root, { recursive: true, force: true });
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(130);
  });
}
const started = performance.now();
try {
  await main(config, root);
  log(`done in ${round((performance.now() - started) / 1000, 1)} s`);
} catch (err) {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
