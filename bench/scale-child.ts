/**
 * A child process of the "streams at scale" reads (X2–X4, X6), so that its memory is the
 * store's own: `node scale-child.js <job.json>` opens one store (coldstream or the SQLite peer)
 * made by the parent, reads streams, and prints one JSON line ({@link ChildResult}) on stdout.
 *
 *   import the engine → memory (before open) → open (timed) → memory (after open) →
 *   peak RSS reset → first read (timed apart: with the open, the reopen of X3) →
 *   reads (each timed) → memory (after reads)
 *
 * Each read drains the stream fully (coldstream: `readStream`'s async iteration; SQLite: one
 * SELECT, rows mapped to events with their JSON parsed) and checks its revisions. Only the
 * engine being measured is imported, and its import (a native module's load, for SQLite) is
 * neither in the timed open nor in the memory the open adds.
 */
import fs from 'node:fs';
import { residentMemory, resetPeakRss, type ResidentMemory } from './memory.js';

export interface ChildJob {
  readonly engine: 'coldstream' | 'sqlite';
  /** The store's directory, or the SQLite database file. */
  readonly path: string;
  /** coldstream's `segmentBytes`, when the store was made with other than the default. */
  readonly segmentBytes?: number;
  /** The first read after open, timed apart. */
  readonly firstRead: string;
  /** Then these streams, in order, each read timed. */
  readonly reads: readonly string[];
  /** Events each stream read must have. */
  readonly eventsPerStream: number;
}

export interface ChildResult {
  readonly engine: ChildJob['engine'];
  readonly open_ms: number;
  readonly first_read_ms: number;
  readonly latencies_ms: number[];
  readonly before_open: ResidentMemory;
  readonly after_open: ResidentMemory;
  /** Its peak_rss_mb is the peak since just after open, when it could be reset. */
  readonly after_reads: ResidentMemory;
  readonly peak_reset: boolean;
}

interface Reader {
  /** Reads one stream fully; returns its number of events. */
  read(streamId: string): Promise<number>;
  close(): Promise<void>;
}

type Opener = (job: ChildJob) => Promise<Reader>;

/** Imports the engine's modules (not part of the timed open), and returns how to open a store with them. */
async function openerOf(engine: ChildJob['engine']): Promise<Opener> {
  if (engine === 'coldstream') {
    const { EventStore } = await import('../lib/index.js');
    return async (job) => {
      const store = await EventStore.open({ dir: job.path, ...(job.segmentBytes === undefined ? {} : { segmentBytes: job.segmentBytes }) });
      return {
        async read(streamId) {
          let revision = 0;
          for await (const event of store.readStream(streamId)) {
            if (event.revision !== revision++) throw new Error(`readStream ${streamId}: revision ${event.revision}, expected ${revision - 1}`);
          }
          return revision;
        },
        close: () => store.close(),
      };
    };
  }
  const { SqlitePeer } = await import('./sqlite-peer.js');
  return async (job) => {
    const peer = SqlitePeer.open(job.path);
    return {
      async read(streamId) {
        let revision = 0;
        for (const event of peer.readStream(streamId)) {
          if (event.revision !== revision++) throw new Error(`SQLite ${streamId}: revision ${event.revision}, expected ${revision - 1}`);
        }
        return revision;
      },
      close: async () => peer.close(),
    };
  };
}

async function run(job: ChildJob): Promise<ChildResult> {
  const timedRead = async (reader: Reader, streamId: string): Promise<number> => {
    const t0 = performance.now();
    const events = await reader.read(streamId);
    const ms = performance.now() - t0;
    if (events !== job.eventsPerStream) throw new Error(`${job.engine}: stream ${streamId} has ${events} events, expected ${job.eventsPerStream}`);
    return ms;
  };
  const open = await openerOf(job.engine);
  const beforeOpen = residentMemory();
  const openStart = performance.now();
  const reader = await open(job);
  const openMs = performance.now() - openStart;
  try {
    const afterOpen = residentMemory();
    const peakReset = resetPeakRss();
    const firstReadMs = await timedRead(reader, job.firstRead);
    const latencies: number[] = [];
    for (const streamId of job.reads) latencies.push(await timedRead(reader, streamId));
    const afterReads = residentMemory();
    return { engine: job.engine, open_ms: openMs, first_read_ms: firstReadMs, latencies_ms: latencies, before_open: beforeOpen, after_open: afterOpen, after_reads: afterReads, peak_reset: peakReset };
  } finally {
    await reader.close();
  }
}

const jobFile = process.argv[2];
if (jobFile === undefined) throw new Error('usage: node scale-child.js <job.json>');
const result = await run(JSON.parse(fs.readFileSync(jobFile, 'utf8')) as ChildJob);
process.stdout.write(`${JSON.stringify(result)}\n`);
