/**
 * The stream index: which events belong to which stream, without scanning the log.
 *
 * - Unsealed segments (the active one, and one just rolled until its seal completes) have their
 *   part in memory: a {@link StreamRun} per stream, updated at append time.
 * - Each sealed segment has an immutable `<base>.streams` file (stream-index-file.ts), written
 *   by the seal hook; its rows point back to the previous segment holding the same stream, so a
 *   stream's history is a chain walked from its newest segment.
 * - Stream heads (last revision, position, event id and newest sealed segment per stream) as of
 *   the end of the sealed segments live in memory and are checkpointed (heads-checkpoint.ts).
 *
 * Opening reads the checkpoint, applies the stream indexes of segments sealed after it, finishes
 * interrupted seals, and rebuilds the active segment's part: from the checkpoint when the store
 * was closed cleanly, otherwise by reading the active segment (bounded by `segmentBytes`).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { CorruptFileError } from '../errors.js';
import { crc32c } from '../log/crc.js';
import * as files from '../log/files.js';
import type { SealingSegment, SegmentLog } from '../log/segment-log.js';
import { segmentFile } from '../log/segment-files.js';
import type { FileDigest } from '../log/sidecar.js';
import { decodeStreamId, sameStreamId } from './codec.js';
import { readU64 } from '../log/u64.js';
import { readUuid } from './uuid.js';
import { decodeCheckpoint, encodeCheckpoint, type SealedHead } from './heads-checkpoint.js';
import { encodeStreamIndex, StreamIndexFile, StreamRun, UNKNOWN_EVENT_ID, type StreamPart } from './stream-index-file.js';

export const STREAMS_SUFFIX = '.streams';
const CHECKPOINT_FILE = 'heads.checkpoint';

/** The in-memory stream index of one unsealed segment. */
class SegmentStreams {
  readonly runs = new Map<string, StreamRun>();
  constructor(readonly basePosition: number) {}

  add(streamId: string, revision: number, position: number, batchOffset: number, eventId: string): void {
    let run = this.runs.get(streamId);
    if (run === undefined) {
      run = new StreamRun(this.basePosition, revision);
      this.runs.set(streamId, run);
    }
    if (revision !== run.firstRevision + run.count) assert.fail(`stream ${streamId}: revision ${revision} does not follow ${run.firstRevision + run.count - 1}`);
    run.relativePositions.push(position - this.basePosition);
    run.batchOffsets.push(batchOffset);
    run.lastEventId = eventId;
  }
}

/** A stream's head, including events not yet acknowledged. */
export interface IndexHead {
  readonly revision: number;
  readonly position: number;
  readonly lastEventId: string;
}

/** The head of a stream as its last part (in memory or on disk) describes it. */
function headOf(part: StreamPart): IndexHead {
  return { revision: part.firstRevision + part.count - 1, position: part.positionAt(part.count - 1), lastEventId: part.lastEventId };
}

/** Events of one append, as the index records them. */
export interface IndexedAppend {
  readonly streamId: string;
  readonly firstRevision: number;
  readonly eventIds: readonly string[];
}

/** Stream index files by segment, least recently used first, bounded by bytes. */
class FileCache {
  private readonly files = new Map<number, StreamIndexFile>();
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}

  get(base: number): StreamIndexFile | undefined {
    const file = this.files.get(base);
    if (file !== undefined) {
      this.files.delete(base);
      this.files.set(base, file);
    }
    return file;
  }

  set(base: number, file: StreamIndexFile): void {
    const replaced = this.files.get(base);
    if (replaced !== undefined) {
      this.files.delete(base);
      this.bytes -= replaced.buf.length;
    }
    this.files.set(base, file);
    this.bytes += file.buf.length;
    for (const [oldest, old] of this.files) {
      if (this.bytes <= this.maxBytes || oldest === base) break;
      this.files.delete(oldest);
      this.bytes -= old.buf.length;
    }
  }
}

export class StreamIndex {
  private sealedHeads = new Map<string, SealedHead>();
  private sealedEnd = 0;
  private readonly builders: SegmentStreams[] = [];
  private readonly cache: FileCache;
  private eventsSinceCheckpoint = 0;
  /** Position up to which the newest checkpoint (or open's scan) covers the active segment. */
  private activeCheckpointEnd = 0;
  private checkpointWrites: Promise<void> = Promise.resolve();
  private checkpointsQueued = 0;

  constructor(
    private readonly dir: string,
    private readonly logDir: string,
    cacheBytes: number,
    /** Events between two checkpoints of the active segment's part (see noteCommitted). */
    private readonly checkpointEvents = 65_536,
  ) {
    this.cache = new FileCache(cacheBytes);
  }

  /** Rebuilds the index for an opened log (see the module comment). */
  async open(log: SegmentLog): Promise<void> {
    const checkpointFile = path.join(this.dir, CHECKPOINT_FILE);
    const bytes = await files.readFileIfExists(checkpointFile);
    const checkpoint = bytes === undefined ? undefined : decodeCheckpoint(checkpointFile, bytes);
    const segments = log.segmentInfos();
    const sealed = segments.filter((s) => s.sealed);
    const usable = checkpoint !== undefined && (checkpoint.sealedEnd === log.startPosition || sealed.some((s) => s.nextPosition === checkpoint.sealedEnd));
    this.sealedHeads = usable ? checkpoint.heads : new Map();
    this.sealedEnd = usable ? checkpoint.sealedEnd : log.startPosition;
    for (const segment of sealed) {
      if (segment.basePosition < this.sealedEnd) continue;
      this.applySealed(await this.loadFile(segment.basePosition));
      this.sealedEnd = segment.nextPosition;
    }
    await log.sealInterrupted();
    const active = log.segmentInfos().at(-1)!;
    assert(!active.sealed);
    const builder = new SegmentStreams(active.basePosition);
    let scanFrom = active.basePosition;
    const part = checkpoint?.active;
    if (usable && part !== undefined && part.basePosition === active.basePosition && part.end <= log.commitEnd && this.sealedEnd === active.basePosition) {
      for (const [streamId, stored] of part.index.streams()) builder.runs.set(streamId, StreamRun.from(stored));
      scanFrom = part.end;
    }
    this.builders.push(builder);
    await this.scanInto(builder, log, scanFrom, log.commitEnd);
    for (const run of builder.runs.values()) {
      if (run.lastEventId === UNKNOWN_EVENT_ID) {
        const last = run.count - 1;
        const batch = await log.readBatchAt(run.segmentBase, run.batchOffsetAt(last));
        run.lastEventId = readUuid(batch.records[run.positionAt(last) - batch.basePosition]!, 16);
      }
    }
    this.activeCheckpointEnd = scanFrom;
    // A part that does not fit the recovered log must never be trusted later (once appends
    // reach past its end again): replace the checkpoint now.
    if (part !== undefined && scanFrom === active.basePosition) await this.writeCheckpoint(undefined);
  }

  private applySealed(file: StreamIndexFile): void {
    for (const [streamId, part] of file.streams()) this.sealedHeads.set(streamId, { ...headOf(part), lastSealedSegment: file.basePosition });
  }

  /**
   * Indexes the events at positions [from, to) of the log into `builder` by reading their
   * records. This is the crash-recovery path of `open` (the whole active segment), so it decodes
   * only what the index needs: the stream id (reusing the previous record's string when the
   * bytes are the same, as they are within most batches), the revision, and the event id of
   * each stream's last event only.
   */
  private async scanInto(builder: SegmentStreams, log: SegmentLog, from: number, to: number): Promise<void> {
    const lastRecords = new Map<StreamRun, Buffer>();
    let previous: Buffer | undefined;
    let previousId = '';
    let position = from;
    scan: while (position < to) {
      const batches = await log.readForward(position, 1 << 20);
      if (batches.length === 0) break;
      for (const batch of batches) {
        for (let i = Math.max(0, position - batch.basePosition); i < batch.recordCount; i++) {
          const at = batch.basePosition + i;
          if (at >= to) break scan;
          const record = batch.records[i]!;
          if (previous === undefined || !sameStreamId(previous, record)) previousId = decodeStreamId(record);
          previous = record;
          builder.add(previousId, readU64(record, 8), at, batch.byteOffset, '');
          lastRecords.set(builder.runs.get(previousId)!, record);
        }
        position = batch.basePosition + batch.recordCount;
      }
    }
    for (const [run, record] of lastRecords) run.lastEventId = readUuid(record, 16);
  }

  /** The stream's head including appends not yet acknowledged, or undefined when it has no events. */
  head(streamId: string): IndexHead | undefined {
    for (let i = this.builders.length - 1; i >= 0; i--) {
      const run = this.builders[i]!.runs.get(streamId);
      if (run !== undefined) return headOf(run);
    }
    return this.sealedHeads.get(streamId);
  }

  /** Records an append placed by the log (synchronously, in append order). */
  recordAppend(segmentBase: number, basePosition: number, batchOffset: number, appends: readonly IndexedAppend[]): void {
    let builder = this.builders[this.builders.length - 1];
    if (builder === undefined || builder.basePosition !== segmentBase) {
      builder = new SegmentStreams(segmentBase);
      this.builders.push(builder);
    }
    let position = basePosition;
    for (const append of appends) {
      let revision = append.firstRevision;
      for (const id of append.eventIds) builder.add(append.streamId, revision++, position++, batchOffset, id);
    }
  }

  /**
   * The stream's parts, newest first: unsealed segments' from memory, then sealed ones by
   * following the chain of stream index files. Consistent as of the first call to `next()`.
   */
  async *partsNewestFirst(streamId: string): AsyncGenerator<StreamPart> {
    const unsealed: StreamPart[] = [];
    for (let i = this.builders.length - 1; i >= 0; i--) {
      const run = this.builders[i]!.runs.get(streamId);
      if (run !== undefined) unsealed.push(run);
    }
    let base = this.sealedHeads.get(streamId)?.lastSealedSegment ?? -1;
    yield* unsealed;
    while (base >= 0) {
      const file = await this.loadFile(base);
      const part = file.find(streamId);
      if (part === undefined) throw new CorruptFileError(this.streamsFile(base), `stream index has no entry for stream '${streamId}', which the index chain points at`);
      yield part;
      base = part.previousSegment;
    }
  }

  private streamsFile(base: number): string {
    return segmentFile(this.logDir, base, STREAMS_SUFFIX);
  }

  private loadFile(base: number): Promise<StreamIndexFile> {
    const cached = this.cache.get(base);
    if (cached !== undefined) return Promise.resolve(cached);
    // Concurrent misses share one read.
    let loading = this.loading.get(base);
    if (loading === undefined) {
      loading = this.readFile(base).finally(() => this.loading.delete(base));
      this.loading.set(base, loading);
    }
    return loading;
  }

  private readonly loading = new Map<number, Promise<StreamIndexFile>>();

  private async readFile(base: number): Promise<StreamIndexFile> {
    const file = this.streamsFile(base);
    const bytes = await files.readFileIfExists(file);
    if (bytes === undefined) throw new CorruptFileError(file, 'the stream index of a sealed segment is missing');
    const decoded = StreamIndexFile.decode(file, bytes, base);
    this.cache.set(base, decoded);
    return decoded;
  }

  /** The log's `onSeal` hook: writes the segment's stream index and moves its streams' heads to the sealed heads. */
  async sealSegment(segment: SealingSegment, log: SegmentLog): Promise<Record<string, FileDigest>> {
    let builder = this.builders.find((b) => b.basePosition === segment.basePosition);
    if (builder === undefined) {
      // Sealing interrupted by a crash and finished on open: rebuild the part from the data.
      builder = new SegmentStreams(segment.basePosition);
      await this.scanInto(builder, log, segment.basePosition, segment.lastPosition + 1);
    }
    const bytes = encodeStreamIndex(segment.basePosition, builder.runs, (id) => this.sealedHeads.get(id)?.lastSealedSegment ?? -1);
    await files.writeFileDurable(segment.fileFor(STREAMS_SUFFIX), bytes);
    this.cache.set(segment.basePosition, StreamIndexFile.decode(segment.fileFor(STREAMS_SUFFIX), bytes, segment.basePosition));
    // From here on the head comes from the sealed heads; both answers are the same.
    for (const [streamId, run] of builder.runs) this.sealedHeads.set(streamId, { ...headOf(run), lastSealedSegment: segment.basePosition });
    const at = this.builders.indexOf(builder);
    if (at >= 0) this.builders.splice(at, 1);
    this.sealedEnd = segment.lastPosition + 1;
    this.eventsSinceCheckpoint += segment.lastPosition + 1 - segment.basePosition;
    return { [STREAMS_SUFFIX]: { bytes: bytes.length, crc32c: crc32c(bytes) } };
  }

  /**
   * The log's `afterSeal` hook: checkpoints the heads when that costs little next to the data
   * sealed since the last checkpoint (a row per stream against ≥ 4 events sealed per stream).
   */
  async afterSeal(): Promise<void> {
    if (this.sealedHeads.size * 4 <= this.eventsSinceCheckpoint) await this.writeCheckpoint(undefined);
  }

  /**
   * Called after each acknowledged group: every `checkpointEvents` events, checkpoints the
   * active segment's part up to the commit position, so that opening after a crash reads only
   * the active segment's events after that point. The snapshot is taken synchronously; the write
   * runs in the background, after `syncFirst` (the log's flush, where acknowledged does not yet
   * mean durable): a checkpoint never describes data a power loss could take back. A failed
   * write only means a longer scan on the next open.
   */
  noteCommitted(commitEnd: number, syncFirst?: () => Promise<void>): void {
    if (commitEnd - this.activeCheckpointEnd < this.checkpointEvents || this.checkpointsQueued > 0) return;
    const snapshot = this.snapshot(commitEnd);
    if (snapshot === undefined) return;
    this.activeCheckpointEnd = commitEnd;
    void this.enqueueCheckpoint(snapshot, syncFirst).catch(() => {});
  }

  /**
   * Writes the checkpoint. With `activeEnd` (a clean close, everything acknowledged), the active
   * segment's part is included so that the next open reads none of the log.
   */
  async writeCheckpoint(activeEnd: number | undefined): Promise<void> {
    const snapshot = activeEnd === undefined ? undefined : this.snapshot(activeEnd);
    await this.enqueueCheckpoint(snapshot ?? encodeCheckpoint(this.sealedEnd, this.sealedHeads));
  }

  /** The checkpoint as of now, with the active part up to `activeEnd`; undefined while a roll is being sealed. */
  private snapshot(activeEnd: number): Buffer | undefined {
    const builder = this.builders.length === 1 ? this.builders[0]! : undefined;
    if (builder === undefined || builder.basePosition !== this.sealedEnd) return undefined;
    const index = encodeStreamIndex(builder.basePosition, builder.runs, () => -1, activeEnd);
    return encodeCheckpoint(this.sealedEnd, this.sealedHeads, { basePosition: builder.basePosition, end: activeEnd, index });
  }

  /** Checkpoint writes share one temporary file, so they run one at a time, in order. */
  private enqueueCheckpoint(bytes: Buffer, syncFirst?: () => Promise<void>): Promise<void> {
    this.checkpointsQueued++;
    this.eventsSinceCheckpoint = 0;
    const write = this.checkpointWrites
      .then(async () => {
        await syncFirst?.();
        await files.writeFileAtomic(path.join(this.dir, CHECKPOINT_FILE), bytes);
      })
      .finally(() => this.checkpointsQueued--);
    this.checkpointWrites = write.catch(() => {});
    return write;
  }

  /** Resolves when every checkpoint write started so far has finished. */
  async settled(): Promise<void> {
    await this.checkpointWrites;
  }
}
