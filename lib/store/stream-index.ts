/**
 * The stream index: each stream's head and where its events are, without scanning the log,
 * with memory set by configuration rather than by the number of streams.
 *
 * Three tiers, looked up newest first:
 * - the active memtable (memtable.ts): events appended since the last flush, acknowledged or
 *   not, so that appends check expected revisions against every earlier append;
 * - at most one frozen memtable, being flushed;
 * - the index database (index-db.ts, LMDB): heads and chunks of positions for every event below
 *   its `indexedEnd`, read synchronously through a memory map.
 * A revision is always in at least one tier: a frozen memtable is dropped only once its flush
 * has committed.
 *
 * Flushing. Every `memtableEvents` events (checked after each acknowledged group), the active
 * memtable is frozen and written to LMDB in the background, once all of its events are durable
 * (acknowledged under `fsync`, or after a log flush under `interval`/`none`): the database never
 * holds an event that a crash could take back from the log. Closing flushes what is left.
 *
 * Sealing. Each sealed segment also gets an immutable `<base>.streams` file
 * (stream-index-file.ts), built from the segment's records by the log's `onSeal` hook and listed
 * in its sidecar: the verifiable, uploadable form of the index, from which LMDB can be rebuilt.
 *
 * Opening reads `indexedEnd` and indexes the log from there: whole sealed segments from their
 * `.streams` files when the database is empty or behind by whole segments (a first open after
 * an upgrade, a lost database), the rest by reading records. After a clean close there is
 * nothing to read; after a crash, at most about `memtableEvents` events plus one flush.
 */
import path from 'node:path';
import { CorruptFileError } from '../errors.js';
import { crc32c } from '../log/crc.js';
import * as files from '../log/files.js';
import type { SealingSegment, SegmentLog } from '../log/segment-log.js';
import type { LocatedBatch } from '../log/segment.js';
import { segmentFile } from '../log/segment-files.js';
import type { FileDigest } from '../log/sidecar.js';
import { decodeStreamId, sameStreamId } from './codec.js';
import { IndexDb, type IndexHead } from './index-db.js';
import { Memtable } from './memtable.js';
import { StreamIndexBuilder, StreamIndexFile } from './stream-index-file.js';
import type { StreamPart } from './stream-part.js';
import { readU64 } from '../log/u64.js';
import { readUuid } from './uuid.js';

export type { IndexHead } from './index-db.js';
export const STREAMS_SUFFIX = '.streams';
export const INDEX_DB_FILE = 'index.lmdb';
/** Appends wait for the index database once the active memtable holds this many times `memtableEvents`. */
const MEMTABLE_LIMIT_FACTOR = 4;
/** Written by earlier versions; replaced by the LMDB index and removed on open. */
const LEGACY_CHECKPOINT_FILE = 'heads.checkpoint';

/**
 * Calls `visit` for each record at positions [from, to) of the log, in position order, and
 * `afterChunk` after each chunk read. Returns the position after the last record visited:
 * short of `to` only when the log ends first.
 */
async function forEachRecord(
  log: SegmentLog,
  from: number,
  to: number,
  visit: (record: Buffer, position: number, batch: LocatedBatch) => void,
  afterChunk?: () => Promise<void>,
): Promise<number> {
  let position = from;
  while (position < to) {
    const batches = await log.readForward(position, 1 << 20);
    if (batches.length === 0) break;
    for (const batch of batches) {
      for (let i = Math.max(0, position - batch.basePosition); i < batch.recordCount && batch.basePosition + i < to; i++) {
        visit(batch.records[i]!, batch.basePosition + i, batch);
      }
      position = Math.min(to, batch.basePosition + batch.recordCount);
    }
    await afterChunk?.();
  }
  return position;
}

/** Events of one append, as the index records them. */
export interface IndexedAppend {
  readonly streamId: string;
  readonly firstRevision: number;
  readonly eventIds: readonly string[];
}

export class StreamIndex {
  private active: Memtable;
  private frozen: Memtable | undefined;
  private flushing: Promise<void> | undefined;
  /** Why the last background flush failed, if it did (it is retried). */
  private flushFailure: unknown;

  private constructor(
    private readonly db: IndexDb,
    private readonly logDir: string,
    /** Events in the active memtable that trigger a flush (see noteCommitted). */
    private readonly memtableEvents: number,
  ) {
    this.active = new Memtable(0);
  }

  /** Opens the index of the store in `dir` over the opened `log`, indexing what the database lacks. */
  static async open(dir: string, logDir: string, log: SegmentLog, memtableEvents: number): Promise<StreamIndex> {
    const index = new StreamIndex(await IndexDb.open(path.join(dir, INDEX_DB_FILE)), logDir, memtableEvents);
    try {
      await log.sealInterrupted();
      await index.catchUp(log);
      await files.unlinkIfExists(path.join(dir, LEGACY_CHECKPOINT_FILE));
      return index;
    } catch (err) {
      await index.db.close().catch(() => {});
      throw err;
    }
  }

  /** Indexes the segments the log adopted since open (a read-only replica pulling them), from their `.streams` files. */
  async indexAdopted(log: SegmentLog): Promise<void> {
    await this.flushAll();
    await this.catchUp(log);
  }

  /** Brings the database and the active memtable up to the log's commit position. */
  private async catchUp(log: SegmentLog): Promise<void> {
    let end = this.db.indexedEnd();
    if (end === undefined || end > log.nextPosition || end < log.startPosition) {
      await this.db.clear();
      end = log.startPosition;
    }
    const flushWhenFull = async (): Promise<void> => {
      if (this.active.events >= this.memtableEvents) await this.flushAll();
    };
    for (const segment of log.segmentInfos()) {
      if (segment.basePosition < end) continue;
      if (!segment.sealed || segment.basePosition !== end) break;
      const file = await this.sealedIndexFile(segment.basePosition);
      if (file !== undefined) {
        await this.db.write(file.streams(), segment.nextPosition);
      } else {
        // A missing or damaged `.streams` file: that segment's records instead.
        this.active = new Memtable(end);
        await this.scanInto(log, end, segment.nextPosition, flushWhenFull);
        await this.flushAll();
      }
      end = segment.nextPosition;
    }
    this.active = new Memtable(end);
    await this.scanInto(log, end, log.commitEnd, flushWhenFull);
  }

  /** The `.streams` file of a sealed segment, or undefined when it is missing or damaged (then its records are read instead). */
  private async sealedIndexFile(base: number): Promise<StreamIndexFile | undefined> {
    const name = segmentFile(this.logDir, base, STREAMS_SUFFIX);
    const bytes = await files.readFileIfExists(name);
    if (bytes === undefined) return undefined;
    try {
      return StreamIndexFile.decode(name, bytes, base);
    } catch (err) {
      if (err instanceof CorruptFileError) return undefined;
      throw err;
    }
  }

  /**
   * Reads the records at positions [from, to) of the log into the active memtable, calling
   * `afterChunk` after each chunk read. Decodes only what the index needs: the stream id
   * (reusing the previous record's string when the bytes are the same, as within most batches),
   * the revision and the event id.
   */
  private async scanInto(log: SegmentLog, from: number, to: number, afterChunk: () => Promise<void>): Promise<void> {
    let previous: Buffer | undefined;
    let previousId = '';
    const visit = (record: Buffer, position: number, batch: LocatedBatch): void => {
      if (previous === undefined || !sameStreamId(previous, record)) previousId = decodeStreamId(record);
      previous = record;
      this.active.add(previousId, readU64(record, 8), position, batch.segmentBase, batch.byteOffset, readUuid(record, 16));
    };
    await forEachRecord(log, from, to, visit, afterChunk);
  }

  /** The stream's head including appends not yet acknowledged, or undefined when it has no events. */
  head(streamId: string): IndexHead | undefined {
    return this.active.head(streamId) ?? this.frozen?.head(streamId) ?? this.db.head(streamId);
  }

  /**
   * The part holding `revision`, then, when it comes from the index database, up to `more` of
   * the stream's parts in direction `backwards` (see IndexDb.partsFrom). Synchronous.
   */
  partsFrom(streamId: string, revision: number, more: number, backwards: boolean, headRevision?: number): StreamPart[] {
    const inMemory = this.active.partAt(streamId, revision) ?? this.frozen?.partAt(streamId, revision);
    return inMemory !== undefined ? [inMemory] : this.db.partsFrom(streamId, revision, more, backwards, headRevision);
  }

  /** Records an append placed by the log (synchronously, in append order). */
  recordAppend(segmentBase: number, basePosition: number, batchOffset: number, appends: readonly IndexedAppend[]): void {
    let position = basePosition;
    for (const append of appends) {
      let revision = append.firstRevision;
      for (const id of append.eventIds) this.active.add(append.streamId, revision++, position++, segmentBase, batchOffset, id);
    }
  }

  /**
   * Called after each acknowledged group: once the active memtable holds `memtableEvents`
   * events, freezes it and flushes it in the background, once its events are durable (after
   * `syncFirst`, the log's flush, where acknowledged does not yet mean durable). One flush runs
   * at a time; when it ends, the next starts at once if the active memtable is full again. A
   * failed flush keeps its memtable frozen and is retried by the next call.
   */
  noteCommitted(log: SegmentLog, syncFirst?: () => Promise<void>): void {
    if (this.flushing !== undefined || (this.frozen === undefined && this.active.events < this.memtableEvents)) return;
    const frozen = this.freeze();
    this.flushing = (async () => {
      await log.waitForCommit(frozen.endPosition - 1);
      await syncFirst?.();
      await this.writeFrozen();
    })()
      .catch((err: unknown) => {
        this.flushFailure = err;
      })
      .finally(() => {
        this.flushing = undefined;
        this.flushed?.();
        if (this.flushFailure === undefined && !this.closing) this.noteCommitted(log, syncFirst);
      });
  }

  /**
   * Backpressure: while a flush is in flight and the active memtable has grown past
   * {@link MEMTABLE_LIMIT_FACTOR} × `memtableEvents` (appends outrunning the index database's
   * writes), a promise that resolves when that flush ends; undefined otherwise. Appends wait for
   * it before placing their events, so the index's memory and the work left for `close` stay
   * bounded whatever the append rate.
   */
  backpressure(): Promise<void> | undefined {
    if (this.flushing === undefined || this.active.events < MEMTABLE_LIMIT_FACTOR * this.memtableEvents) return undefined;
    return (this.flushedSignal ??= new Promise<void>((resolve) => {
      this.flushed = () => {
        this.flushed = undefined;
        this.flushedSignal = undefined;
        resolve();
      };
    }));
  }

  private flushed: (() => void) | undefined;
  private flushedSignal: Promise<void> | undefined;
  private closing = false;

  /** The frozen memtable, freezing the active one when there is none. */
  private freeze(): Memtable {
    if (this.frozen === undefined) {
      this.frozen = this.active;
      this.active = new Memtable(this.frozen.endPosition);
    }
    return this.frozen;
  }

  /** Writes the frozen memtable, whose events the caller has made durable, and drops it. */
  private async writeFrozen(): Promise<void> {
    const frozen = this.frozen!;
    await this.db.write(frozen.runs(), frozen.endPosition);
    this.frozen = undefined;
    this.flushFailure = undefined;
  }

  /** Writes both memtables now (their events are durable). */
  private async flushAll(): Promise<void> {
    if (this.frozen !== undefined) await this.writeFrozen();
    if (this.active.events === 0) return;
    this.freeze();
    await this.writeFrozen();
  }

  /** The log's `onSeal` hook: builds and writes the segment's `.streams` file from its records. */
  static async sealSegment(segment: SealingSegment, log: SegmentLog): Promise<Record<string, FileDigest>> {
    const file = segment.fileFor(STREAMS_SUFFIX);
    const builder = new StreamIndexBuilder(segment.basePosition, segment.lastPosition + 1 - segment.basePosition);
    const end = segment.lastPosition + 1;
    const reached = await forEachRecord(log, segment.basePosition, end, (record, position, batch) => builder.add(record, position, batch.byteOffset));
    if (reached < end) throw new CorruptFileError(file, `the segment's records end at position ${reached}, before ${end}`);
    const bytes = builder.encode(file);
    await files.writeFileDurable(file, bytes);
    return { [STREAMS_SUFFIX]: { bytes: bytes.length, crc32c: crc32c(bytes) } };
  }

  /** Resolves when no flush is in flight (a crash image taken then has a quiescent `index.lmdb`). */
  async settled(): Promise<void> {
    await this.flushing;
  }

  /**
   * Flushes what the memtables hold once the log is closed and closes the database. Pass
   * `clean` only when every appended event was acknowledged and synced; otherwise the next open
   * reads the events since the last flush from the log.
   */
  async close(clean: boolean): Promise<void> {
    this.closing = true;
    try {
      await this.settled();
      if (clean) await this.flushAll();
      else if (this.flushFailure !== undefined) throw this.flushFailure;
    } finally {
      await this.db.close();
    }
  }
}
