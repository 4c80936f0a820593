/**
 * One segment of the log: a `.log` file of record batches starting at `basePosition`, its
 * sparse offset index, and (once sealed) its sidecar.
 *
 * A segment is active (the one being appended to, at most one per log) or sealed (immutable).
 * This class holds the segment's bookkeeping and reads from it; the log decides when to write,
 * roll and seal, and recovery.ts rebuilds the bookkeeping from disk on open.
 *
 * Three byte counts grow in order: `reservedBytes` (batches handed to the writer), then
 * `writtenBytes` (in the file), then `committedBytes` (acknowledged to their appenders and
 * visible to readers). Readers never see past `committedBytes`.
 */
import assert from 'node:assert/strict';
import { CorruptFileError, CorruptRecordError } from '../errors.js';
import { crc32c } from './crc.js';
import * as files from './files.js';
import { OffsetIndex } from './offset-index.js';
import { BATCH_HEADER_BYTES, checkBatch, corruptBatch, decodeRecords, type RecordBatch } from './record-batch.js';
import { SUFFIX, segmentFile } from './segment-files.js';
import { matchesDigest, type FileDigest, type SegmentSidecar } from './sidecar.js';

/**
 * The data of a sealed segment that is not on the local disk (tiering evicted it): byte ranges
 * fetched from elsewhere. Ranges may come back shorter than asked only at the end of the data;
 * every batch read through it is CRC-checked like a local one.
 */
export interface RemoteSegmentData {
  /** The bytes, when they can be had without waiting (cached); else undefined. */
  readSync(byteOffset: number, length: number): Buffer | undefined;
  read(byteOffset: number, length: number): Promise<Buffer>;
  /** Forgets what was fetched: a batch in it failed its checks, and a retry should fetch again. */
  discard(): void;
}

/** A batch read from the log, with where it was found. */
export interface LocatedBatch extends RecordBatch {
  readonly segmentBase: number;
  readonly byteOffset: number;
}

/** Bytes read at once when scanning forwards. */
export const READ_CHUNK_BYTES = 256 * 1024;
/** Reads up to this size (point reads of a batch) are synchronous preads. */
export const SYNC_READ_MAX_BYTES = 64 * 1024;
/** Bytes first read for a batch whose length is not known from an index entry. */
const POINT_READ_GUESS_BYTES = 4 * 1024;

export class Segment {
  fd: number | undefined;
  /** Where a sealed segment's data is read from when its `.log` file is gone (evicted by tiering). */
  remote: RemoteSegmentData | undefined;
  /** The active segment's index file, open for appending entries. */
  indexFd: number | undefined;
  indexLoading: Promise<OffsetIndex> | undefined;
  /** True once the `.log` file exists on disk. */
  created = false;
  reservedBytes = 0;
  writtenBytes = 0;
  committedBytes = 0;
  /** Bytes known to be fdatasync'd (index entries are persisted only below this). */
  syncedBytes = 0;
  /** Size of the file, zero-filled preallocated tail included (see SegmentLog.preallocate). */
  allocatedBytes = 0;
  /** Position after the last reserved record. */
  nextPosition: number;
  /** Position after the last committed record. */
  committedEnd: number;
  firstTimestamp: number | undefined;
  lastTimestamp: number | undefined;
  /** Loaded eagerly for the active segment, lazily for sealed ones. */
  index: OffsetIndex | undefined;
  sidecar: SegmentSidecar | undefined;
  /** Set when tiering evicted the data file while a read had it open: closed when the last read ends. */
  dataEvicted = false;
  /** Reads in flight; the file descriptor is not closed while this is positive. */
  readers = 0;
  lastUsed = 0;

  constructor(
    readonly dir: string,
    readonly basePosition: number,
  ) {
    this.nextPosition = basePosition;
    this.committedEnd = basePosition;
  }

  // File names are built when asked for, not in the constructor: three path joins cost more
  // than the rest of it, and a log may make tens of thousands of these objects (opening without
  // a catalogue, or reading the whole log).
  get logFile(): string {
    return segmentFile(this.dir, this.basePosition, SUFFIX.log);
  }

  get indexFile(): string {
    return segmentFile(this.dir, this.basePosition, SUFFIX.index);
  }

  get sealedFile(): string {
    return segmentFile(this.dir, this.basePosition, SUFFIX.sealed);
  }

  /** A sealed segment as its sidecar (or catalogue record) describes it; nothing is read. */
  static sealedBy(dir: string, sidecar: SegmentSidecar): Segment {
    const segment = new Segment(dir, sidecar.basePosition);
    segment.adoptSidecar(sidecar);
    return segment;
  }

  /** Takes this segment's bookkeeping from its sidecar: it is sealed, its files as the sidecar says. */
  adoptSidecar(sidecar: SegmentSidecar): void {
    assert(sidecar.basePosition === this.basePosition);
    this.sidecar = sidecar;
    this.created = true;
    this.reservedBytes = this.writtenBytes = this.committedBytes = sidecar.data.bytes;
    this.nextPosition = this.committedEnd = sidecar.lastPosition + 1;
    this.firstTimestamp = sidecar.firstTimestamp;
    this.lastTimestamp = sidecar.lastTimestamp;
  }

  get sealed(): boolean {
    return this.sidecar !== undefined;
  }

  get isEmpty(): boolean {
    return this.nextPosition === this.basePosition;
  }

  /** Position of the last committed record, or undefined when none is. */
  get lastPosition(): number | undefined {
    return this.committedEnd === this.basePosition ? undefined : this.committedEnd - 1;
  }

  /** Opens the data file for reading (a sealed segment's file is opened on first read). */
  openForReading(): void {
    try {
      // Synchronous: an open takes microseconds, a thread-pool round trip tens of them, and a
      // long stream's read opens one file per segment it has events in.
      this.fd = files.openSync(this.logFile, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CorruptFileError(this.logFile, 'the data file of a sealed segment is missing', { cause: err });
      throw err;
    }
  }

  /**
   * Closes the data file of an idle sealed segment at once (a close takes microseconds; the
   * log opens and closes one per segment a long read crosses, beyond `maxOpenSegments`).
   */
  closeDataFileSync(): void {
    assert(this.indexFd === undefined);
    const { fd } = this;
    this.fd = undefined;
    this.remote = undefined;
    if (fd !== undefined) files.closeSync(fd);
  }

  /** Closes the data and index files, if open. */
  async closeFiles(): Promise<void> {
    const { fd, indexFd } = this;
    this.fd = undefined;
    this.remote = undefined;
    this.indexFd = undefined;
    if (fd !== undefined) await files.close(fd);
    if (indexFd !== undefined) await files.close(indexFd);
  }

  /**
   * The offset index: in memory for the active segment; loaded on first use for a sealed one,
   * checked against the CRC in its sidecar, and rebuilt from the data when it fails (the data
   * file must be open for reading).
   */
  loadIndex(indexIntervalBytes: number): Promise<OffsetIndex> {
    if (this.index !== undefined) return Promise.resolve(this.index);
    this.indexLoading ??= this.loadSealedIndex(indexIntervalBytes);
    return this.indexLoading;
  }

  private async loadSealedIndex(indexIntervalBytes: number): Promise<OffsetIndex> {
    const expected = this.sidecar!.index;
    const bytes = await files.readFileIfExists(this.indexFile);
    if (bytes !== undefined && matchesDigest(bytes, expected)) {
      this.index = OffsetIndex.decode(bytes, this.committedBytes).index;
      return this.index;
    }
    const rebuilding = new Segment(this.dir, this.basePosition);
    rebuilding.index = new OffsetIndex();
    let byteOffset = 0;
    let position = this.basePosition;
    while (byteOffset < this.committedBytes) {
      for (const b of await this.readBatches(byteOffset, position, 4 * READ_CHUNK_BYTES)) {
        rebuilding.noteBatch(b.basePosition, b.recordCount, b.byteOffset, b.timestamp, indexIntervalBytes);
        byteOffset = b.byteOffset + b.batchLength;
        position = b.basePosition + b.recordCount;
      }
    }
    this.index = rebuilding.index;
    return this.index;
  }

  /** The sidecar that seals this segment as it now stands, given the digests of its files. */
  sidecarFor(data: FileDigest, indexBytes: Buffer, attachments: Record<string, FileDigest>): SegmentSidecar {
    return {
      formatVersion: 1,
      basePosition: this.basePosition,
      lastPosition: this.nextPosition - 1,
      firstTimestamp: this.firstTimestamp!,
      lastTimestamp: this.lastTimestamp!,
      data,
      index: { bytes: indexBytes.length, crc32c: crc32c(indexBytes) },
      attachments,
    };
  }

  /** Records a batch placed at `byteOffset` in the bookkeeping (index entry, timestamps). */
  noteBatch(basePosition: number, recordCount: number, byteOffset: number, timestamp: number, indexIntervalBytes: number): void {
    assert(this.index !== undefined);
    if (byteOffset > 0 && byteOffset - this.index.lastByteOffset >= indexIntervalBytes) {
      this.index.add(basePosition - this.basePosition, byteOffset);
    }
    this.firstTimestamp ??= timestamp;
    this.lastTimestamp = timestamp;
    this.nextPosition = basePosition + recordCount;
  }

  /**
   * Reads up to `length` committed bytes at `byteOffset`. The caller holds a reader slot. Reads
   * of up to {@link SYNC_READ_MAX_BYTES} are synchronous (see files.readAtSync); scans read
   * larger chunks asynchronously.
   */
  async readRange(byteOffset: number, length: number): Promise<Buffer> {
    assert((this.fd !== undefined || this.remote !== undefined) && this.readers > 0);
    const available = Math.max(0, Math.min(length, this.committedBytes - byteOffset));
    if (available === 0) return Buffer.alloc(0);
    if (this.fd === undefined) return this.remote!.read(byteOffset, available);
    return available <= SYNC_READ_MAX_BYTES ? files.readAtSync(this.fd, available, byteOffset) : files.readAt(this.fd, available, byteOffset);
  }

  /**
   * Reads the committed batches that start at or after `byteOffset`, about `maxBytes` of them
   * (at least one whole batch, however large), checking each one's CRC. `expectedPosition` is
   * the base position of the batch at `byteOffset`, to check the chain of positions.
   */
  async readBatches(
    byteOffset: number,
    expectedPosition: number | undefined,
    maxBytes: number,
    endByteOffset = this.committedBytes,
  ): Promise<LocatedBatch[]> {
    const batches: LocatedBatch[] = [];
    let cursor = byteOffset;
    let position = expectedPosition;
    let buf = await this.readRange(cursor, Math.min(maxBytes, this.committedBytes - cursor));
    let at = 0;
    while (cursor < endByteOffset) {
      const check = checkBatch(buf, at, this.committedBytes - cursor, position);
      if (check.incomplete === true) {
        if (batches.length > 0) break; // The next call starts at this batch.
        // A batch larger than the chunk: read exactly its length (or fail on a short header).
        const length = Math.max(check.header?.batchLength ?? BATCH_HEADER_BYTES, BATCH_HEADER_BYTES);
        buf = await this.readRange(cursor, length);
        if (buf.length < length) {
          // The file ends before the size its sidecar (or the writer) recorded: it was cut.
          this.remote?.discard();
          throw new CorruptRecordError({ file: this.logFile, byteOffset: cursor, reason: `the file ends ${length - buf.length} bytes into this batch, before its recorded size`, position });
        }
        at = 0;
        continue;
      }
      if ((!check.ok || check.header === undefined) && batches.length > 0) break; // Yield the intact batches first; the next read throws.
      const batch = this.decoded(buf, at, check, cursor, position);
      batches.push(batch);
      at += batch.batchLength;
      cursor += batch.batchLength;
      position = batch.basePosition + batch.recordCount;
      if (at >= buf.length) break;
    }
    return batches;
  }

  /** The checked batch at `at` of `buf` (read at `byteOffset` of the file), decoded; throws CorruptRecordError for a bad one. */
  private decoded(buf: Buffer, at: number, check: ReturnType<typeof checkBatch>, byteOffset: number, position: number | undefined): LocatedBatch {
    if (!check.ok || check.header === undefined) {
      this.remote?.discard();
      throw corruptBatch(this.logFile, byteOffset, check, position);
    }
    const records = decodeRecords(buf, at, check.header);
    if (records === undefined) {
      this.remote?.discard();
      throw new CorruptRecordError({ file: this.logFile, byteOffset, reason: 'record lengths do not match the batch length', position });
    }
    return { ...check.header, records, segmentBase: this.basePosition, byteOffset };
  }

  /**
   * Reads and checks the one batch at `byteOffset`. `endHint`, the next offset-index entry after
   * it (or a guess of its end), bounds the first read, so one read usually fetches exactly the batch.
   */
  async readBatchAt(byteOffset: number, endHint?: number): Promise<LocatedBatch> {
    const batch = this.readBatchAtSync(byteOffset, endHint);
    if (batch !== undefined) return batch;
    const [read] = await this.readBatches(byteOffset, undefined, this.firstReadBytes(byteOffset, endHint), byteOffset + 1);
    assert(read !== undefined);
    return read;
  }

  /**
   * {@link readBatchAt} with synchronous preads, or undefined (nothing read) when the batch is
   * larger than {@link SYNC_READ_MAX_BYTES}. The caller holds a reader slot.
   */
  readBatchAtSync(byteOffset: number, endHint?: number): LocatedBatch | undefined {
    assert((this.fd !== undefined || this.remote !== undefined) && this.readers > 0);
    let length = this.firstReadBytes(byteOffset, endHint);
    for (;;) {
      if (length > SYNC_READ_MAX_BYTES) return undefined;
      const buf = this.fd !== undefined ? files.readAtSync(this.fd, length, byteOffset) : this.remote!.readSync(byteOffset, length);
      if (buf === undefined) return undefined;
      const check = checkBatch(buf, 0, this.committedBytes - byteOffset);
      if (check.incomplete !== true) return this.decoded(buf, 0, check, byteOffset, undefined);
      const needed = Math.max(check.header?.batchLength ?? BATCH_HEADER_BYTES, BATCH_HEADER_BYTES);
      if (buf.length < length || needed <= buf.length) {
        // The file ends before the size its sidecar (or the writer) recorded: it was cut.
        this.remote?.discard();
        throw new CorruptRecordError({ file: this.logFile, byteOffset, reason: `the file ends ${needed - buf.length} bytes into this batch, before its recorded size` });
      }
      length = needed;
    }
  }

  private firstReadBytes(byteOffset: number, endHint: number | undefined): number {
    if (byteOffset >= this.committedBytes) {
      throw new CorruptRecordError({ file: this.logFile, byteOffset, reason: `no batch here: the segment holds ${this.committedBytes} bytes` });
    }
    const guess = endHint === undefined ? POINT_READ_GUESS_BYTES : Math.max(endHint - byteOffset, BATCH_HEADER_BYTES);
    return Math.min(guess, this.committedBytes - byteOffset);
  }
}
