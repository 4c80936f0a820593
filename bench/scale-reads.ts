/**
 * The reading side of the "streams at scale" workloads, each with its SQLite peer:
 *   X2–X4: in child processes (scale-child.ts), so that RSS is the store's own: reopen of the
 *          N-stream store (X3), memory after it and after the reads (X2), reads of random
 *          one-event streams (X4);
 *   X6:    the same children reading the long-lived stream, with the RSS it adds;
 *   X7:    W5's read (one 1,000-event stream of the W3 dataset) in this process, both sides in
 *          ABBA rounds.
 * Children run one at a time, `processes` per side in ABBA order, each with its share of the reads.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readOneStream, timedOpen } from './reads.js';
import type { ChildJob, ChildResult } from './scale-child.js';
import { latencySummary, median, round } from './report.js';
import { alternate } from './sampling.js';
import { SqlitePeer } from './sqlite-peer.js';
import type { ResidentMemory } from './memory.js';
import type { Dataset } from './writes.js';

const CHILD_SCRIPT = path.join(import.meta.dirname, 'scale-child.js');
let jobs = 0;

/** Runs one child with `job` (written to a file in `tmpDir`); resolves with its result line. */
function runChild(tmpDir: string, job: ChildJob): Promise<ChildResult> {
  const jobFile = path.join(tmpDir, `child-job-${jobs++}.json`);
  fs.writeFileSync(jobFile, JSON.stringify(job));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CHILD_SCRIPT, jobFile], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      fs.rmSync(jobFile, { force: true });
      if (err) return reject(new Error(`${job.engine} child failed: ${err.message}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildResult);
      } catch (parseErr) {
        reject(new Error(`${job.engine} child printed no result: ${String(parseErr)}\n${stdout}\n${stderr}`));
      }
    });
  });
}

/** One side's children, summed up. Memory figures are the largest of its processes. */
export interface SideResult {
  readonly processes: number;
  /** Open, first read, and their sum (the reopen), median of the processes. */
  readonly open_ms: number;
  readonly first_read_ms: number;
  readonly reopen_ms: number;
  readonly reopen_ms_each: number[];
  readonly reads: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  readonly before_open: ResidentMemory;
  readonly after_open: ResidentMemory;
  readonly after_reads: ResidentMemory;
  /** RSS after the reads − RSS after open, and peak RSS during the reads − RSS after open (MiB). */
  readonly rss_growth_mb: number;
  readonly rss_anon_growth_mb: number | undefined;
  readonly peak_rss_growth_mb: number | undefined;
}

function largest(memories: readonly ResidentMemory[]): ResidentMemory {
  const max = (pick: (m: ResidentMemory) => number | undefined): number | undefined => {
    const values = memories.map(pick).filter((v): v is number => v !== undefined);
    return values.length === 0 ? undefined : Math.max(...values);
  };
  const fields = { rss_mb: max((m) => m.rss_mb)!, rss_anon_mb: max((m) => m.rss_anon_mb), rss_file_mb: max((m) => m.rss_file_mb), peak_rss_mb: max((m) => m.peak_rss_mb), heap_used_mb: max((m) => m.heap_used_mb)! };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as unknown as ResidentMemory;
}

function side(results: readonly ChildResult[]): SideResult {
  const reopen = results.map((r) => r.open_ms + r.first_read_ms);
  // Growth from after open to after the reads (the peak: to the peak during the reads), largest of the processes.
  const growth = (field: 'rss_mb' | 'rss_anon_mb' | 'peak_rss_mb'): number | undefined => {
    const values = results.map((r) => {
      const after = r.after_reads[field];
      const before = r.after_open[field === 'peak_rss_mb' ? 'rss_mb' : field];
      return after === undefined || before === undefined ? undefined : after - before;
    });
    return values.some((v) => v === undefined) ? undefined : round(Math.max(...(values as number[])), 1);
  };
  return {
    processes: results.length,
    open_ms: round(median(results.map((r) => r.open_ms)), 1),
    first_read_ms: round(median(results.map((r) => r.first_read_ms)), 3),
    reopen_ms: round(median(reopen), 1),
    reopen_ms_each: reopen.map((ms) => round(ms, 1)),
    reads: results.reduce((n, r) => n + r.latencies_ms.length, 0),
    ...latencySummary(results.flatMap((r) => r.latencies_ms)),
    before_open: largest(results.map((r) => r.before_open)),
    after_open: largest(results.map((r) => r.after_open)),
    after_reads: largest(results.map((r) => r.after_reads)),
    rss_growth_mb: growth('rss_mb')!,
    rss_anon_growth_mb: growth('rss_anon_mb'),
    peak_rss_growth_mb: results.every((r) => r.peak_reset) ? growth('peak_rss_mb') : undefined,
  };
}

export interface ChildReadsOptions {
  readonly tmpDir: string;
  readonly storeDir: string;
  readonly sqliteFile: string;
  readonly segmentBytes?: number;
  /** Processes per side; the reads are split among them, and both sides read the same streams. */
  readonly processes: number;
  /** Each process first reads firstReads[i], then its share of `reads`. */
  readonly firstReads: readonly string[];
  readonly reads: readonly string[];
  readonly eventsPerStream: number;
}

/** Children reading the coldstream store and the SQLite file alike, `processes` each, ABBA; returns [coldstream, SQLite]. */
export async function childReads(options: ChildReadsOptions): Promise<{ coldstream: SideResult; sqlite: SideResult }> {
  const { processes, reads } = options;
  const job = (engine: ChildJob['engine'], i: number): ChildJob => ({
    engine,
    path: engine === 'coldstream' ? options.storeDir : options.sqliteFile,
    ...(engine === 'coldstream' && options.segmentBytes !== undefined ? { segmentBytes: options.segmentBytes } : {}),
    firstRead: options.firstReads[i % options.firstReads.length]!,
    reads: reads.slice(Math.floor((reads.length * i) / processes), Math.floor((reads.length * (i + 1)) / processes)),
    eventsPerStream: options.eventsPerStream,
  });
  const [coldstream, sqlite] = await alternate(
    processes,
    (i) => runChild(options.tmpDir, job('coldstream', i)),
    (i) => runChild(options.tmpDir, job('sqlite', i)),
  );
  return { coldstream: side(coldstream), sqlite: side(sqlite) };
}

export interface X7Side {
  readonly first_ms: number;
  readonly median_ms: number;
  readonly min_ms: number;
  readonly max_ms: number;
}

/**
 * X7: W5's read beside SQLite. Opens the W3 dataset's store afresh and the SQLite copy of the
 * same rows (`sqliteFile`), reads the middle stream once on each side (the first read), then
 * `rounds` rounds of one read each in ABBA order.
 */
export async function runX7(dataset: Dataset, sqliteFile: string, rounds: number): Promise<{ streamId: string; coldstream: X7Side; sqlite: X7Side; openMs: number }> {
  const { store, ms: openMs } = await timedOpen(dataset.dir, dataset.total);
  const peer = SqlitePeer.open(sqliteFile);
  try {
    const streamId = dataset.streamId(Math.floor(dataset.streams / 2));
    const sqliteRead = async (): Promise<number> => {
      const t0 = performance.now();
      const events = peer.readStream(streamId);
      let revision = 0;
      for (const event of events) if (event.revision !== revision++) throw new Error(`SQLite ${streamId}: revision ${event.revision}, expected ${revision - 1}`);
      const ms = performance.now() - t0;
      if (revision !== dataset.eventsPerStream) throw new Error(`SQLite ${streamId}: ${revision} events, expected ${dataset.eventsPerStream}`);
      return ms;
    };
    const first = await readOneStream(store, streamId, dataset.eventsPerStream);
    const sqliteFirst = await sqliteRead();
    const [warm, sqliteWarm] = await alternate(
      rounds,
      () => readOneStream(store, streamId, dataset.eventsPerStream),
      sqliteRead,
    );
    const summary = (firstMs: number, ms: number[]): X7Side => ({ first_ms: round(firstMs, 3), median_ms: round(median(ms), 3), min_ms: round(Math.min(...ms), 3), max_ms: round(Math.max(...ms), 3) });
    return { streamId, coldstream: summary(first, warm), sqlite: summary(sqliteFirst, sqliteWarm), openMs: round(openMs, 1) };
  } finally {
    peer.close();
    await store.close();
  }
}
