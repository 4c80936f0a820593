/**
 * The segment log: an append-only sequence of record batches at dense positions 0, 1, 2 …,
 * stored as segment files in one directory. It knows nothing of streams or events.
 *
 * Writing. `append` is synchronous up to the point where the batch has its position and its
 * place in a segment; the bytes go to disk in a single writer loop. Batches that arrive while
 * the loop is busy (writing or syncing) are written together with one `write` and, under `fsync`
 * durability, share one `fdatasync`: group commit, so concurrency raises throughput instead of
 * latency. A batch is acknowledged (its promise resolves, readers may see it) only when:
 *   - `fsync`: it was written and fdatasync'd;
 *   - `interval`: it was written; the loop fdatasyncs every `fsyncIntervalMs`;
 *   - `none`: it was written (to the page cache).
 * A new segment's directory entry is fsynced before anything in it is acknowledged (except
 * under `none`). No segment is fdatasync'd, or created (except under `none`), while an earlier
 * one holds unsynced data: recovery takes a sync recorded in a later segment as proof that
 * every earlier one was synced whole (recovery.ts).
 *
 * Rolling and sealing. The active segment rolls when the next batch would take it past
 * `segmentBytes`, or when its first batch is older than `segmentMaxAgeMs`. The rolled segment is
 * sealed once its last batch is acknowledged, in the background (appends to the next segment go
 * on), one segment at a time and in order: fsync, final index written and synced, `onSeal`
 * called for the layer above to write its attachments, then the sidecar (commit point), then
 * the segment's record appended to the catalogue.
 *
 * Files held open: the active segment's data and index files, the catalogue, and the data files
 * of at most `maxOpenSegments` idle sealed segments (least recently read closed first), plus one
 * per read in flight: a bounded number, however many segments the log holds.
 *
 * Failing. An error from write or fsync fails the log: that batch and every later one are
 * rejected with StoreFailedError, because after a failed fsync the page cache cannot be trusted.
 * What was acknowledged before is on disk; reopening recovers. A commit listener that throws
 * does not: it is reported (`onListenerError`) and the loop goes on.
 *
 * Opening. Sealed segments are trusted by their records in the segment catalogue
 * (segment-catalogue.ts), one file for all of them, and not read. The active segment's tail is
 * recovered (recovery.ts). A segment whose seal was interrupted is scanned and sealed again
 * by {@link SegmentLog.sealInterrupted}. The log does not lock its directory: its owner does
 * (the event store holds `LOCK` in the store directory).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Clock } from '../clock.js';
import { CorruptFileError, CorruptRecordError, StoreClosedError, StoreFailedError } from '../errors.js';
import * as files from './files.js';
import { OffsetIndex } from './offset-index.js';
import { BATCH_HEADER_BYTES, encodeFramedBatch, frameRecords } from './record-batch.js';
import { recoverLog, type RemoteSidecar } from './recovery.js';
import type { SegmentCatalogue } from './segment-catalogue.js';
import type { SegmentInfo, SegmentList } from './segment-list.js';
import { READ_CHUNK_BYTES, Segment, type LocatedBatch, type RemoteSegmentData } from './segment.js';
import { digestOpenFile, encodeSidecar, type FileDigest, type SegmentSidecar } from './sidecar.js';

export type Durability = 'fsync' | 'interval' | 'none';

/** A segment being sealed, as the `onSeal` hook sees it. */
export interface SealingSegment {
  readonly basePosition: number;
  readonly lastPosition: number;
  /** Path of this segment's companion file with `suffix` (e.g. `.streams`). */
  fileFor(suffix: string): string;
}

export interface SegmentLogOptions {
  readonly dir: string;
  readonly durability: Durability;
  readonly fsyncIntervalMs: number;
  readonly segmentBytes: number;
  readonly segmentMaxAgeMs: number;
  readonly indexIntervalBytes: number;
  readonly clock: Clock;
  /**
   * Zero-filled space kept allocated ahead of the write head, so that appends overwrite
   * allocated blocks and fdatasync need not commit a new file size (measured here: ~0.6× the
   * cost of fdatasync after an append). 0 disables. Not used under `none` durability.
   */
  readonly preallocateBytes?: number;
  /** Idle sealed segments whose data files may stay open (for reading) at once. Default 64. */
  readonly maxOpenSegments?: number;
  /**
   * Called while a segment is sealed, before its sidecar is written: write companion files
   * (fsynced) and return their digests by suffix. Also called from {@link SegmentLog.sealInterrupted}
   * for a segment whose seal was interrupted by a crash, with the log already readable.
   */
  readonly onSeal?: (segment: SealingSegment, log: SegmentLog) => Promise<Record<string, FileDigest>>;
  /** Called once a segment's sidecar is durable (the segment is sealed), from the writer loop. */
  readonly afterSeal?: (segment: SealingSegment) => Promise<void>;
  /**
   * Where to read a sealed segment whose `.log` file is missing (tiering evicted it), or
   * undefined when it is nowhere else (reading it is then CORRUPT_FILE).
   */
  readonly remoteData?: (segment: SegmentSidecar) => RemoteSegmentData | undefined;
  /** Where recovery finds the sidecar of an evicted segment whose local one is missing or damaged. */
  readonly remoteSidecar?: RemoteSidecar;
  /**
   * Checks each record of every batch read (the layer above's record format: version, lengths)
   * and says why it cannot be read, or returns undefined. A record it refuses is a
   * CorruptRecordError, never handed out. Without it, records are opaque bytes.
   */
  readonly checkRecord?: (record: Buffer) => string | undefined;
  /**
   * Called with what a commit listener ({@link SegmentLog.onCommit}) threw. The log goes on (the
   * group was acknowledged, the other listeners are called); by default it is reported as a
   * process warning (`process.on('warning')`, printed to stderr), since a listener that throws is
   * a bug in the layer above.
   */
  readonly onListenerError?: (err: unknown) => void;
}

/** Where an appended batch went. */
export interface AppendReceipt {
  readonly basePosition: number;
  readonly segmentBase: number;
  readonly byteOffset: number;
  readonly timestamp: number;
  /** Resolves when the batch is acknowledged under the durability policy; rejects with StoreFailedError. */
  readonly committed: Promise<void>;
}

export type { SegmentInfo } from './segment-list.js';

const ZEROES = Buffer.alloc(1 << 20);
/** Longest the writer loop runs on microtasks alone before it lets the event loop turn. */
const MAX_MICROTASK_RUN_MS = 2;

interface PendingBatch {
  readonly segment: Segment;
  readonly byteOffset: number;
  readonly buf: Buffer;
  readonly end: number;
  resolve(): void;
  reject(err: unknown): void;
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

export class SegmentLog {
  private readonly segments: SegmentList;
  private active: Segment;
  private pending: PendingBatch[] = [];
  private syncWaiters: Waiter[] = [];
  private readonly sealQueue: Segment[] = [];
  /** Rolled segments whose seal has not finished (queued, or under way). */
  private readonly rolled = new Set<Segment>();
  /** When the writer loop last went through a macrotask (an fdatasync, or a yield). */
  private lastMacrotask = performance.now();
  private loop: Promise<void> = Promise.resolve();
  private looping = false;
  private failure: StoreFailedError | undefined;
  private closing = false;
  private closed = false;
  private commitEnd_: number;
  private readonly commitListeners = new Set<(commitEnd: number) => void>();
  private readonly intervalTimer: NodeJS.Timeout | undefined;
  private activeReads = 0;
  private readsDrained: (() => void) | undefined;

  /** Sealed segments whose data file is open, to close the idle ones past `maxOpenSegments`. */
  private readonly openSealed = new Set<Segment>();

  private constructor(
    readonly options: SegmentLogOptions,
    segments: SegmentList,
    private readonly catalogue: SegmentCatalogue,
  ) {
    this.segments = segments;
    this.active = segments.last;
    this.commitEnd_ = this.active.nextPosition;
    if (options.durability === 'interval') {
      this.intervalTimer = setInterval(() => this.syncIfDirty(), options.fsyncIntervalMs);
      this.intervalTimer.unref();
    }
    // An idle log still rolls (and so seals, and tiering uploads) a segment older than segmentMaxAgeMs.
    if (Number.isFinite(options.segmentMaxAgeMs)) {
      this.ageTimer = setInterval(() => this.rollIfOld(), Math.min(Math.max(options.segmentMaxAgeMs / 4, 10), 60_000));
      this.ageTimer.unref();
    }
  }

  private readonly ageTimer: NodeJS.Timeout | undefined;

  /** Rolls the active segment when its first batch is older than `segmentMaxAgeMs` (no append needed). */
  rollIfOld(): void {
    const active = this.active;
    if (this.failure !== undefined || this.closing || active.isEmpty || this.interrupted.length > 0) return;
    if (this.options.clock.now() - active.firstTimestamp! < this.options.segmentMaxAgeMs) return;
    this.roll();
    this.kick();
  }

  /** Opens (creating if needed) the log in `options.dir`, recovering the active segment's tail. */
  static async open(options: SegmentLogOptions): Promise<SegmentLog> {
    const { segments, interrupted, catalogue } = await recoverLog(options.dir, options.indexIntervalBytes, options.remoteSidecar);
    const log = new SegmentLog(options, segments, catalogue);
    log.interrupted = interrupted;
    return log;
  }

  /** Segments whose seal a crash interrupted; sealed by {@link sealInterrupted}. */
  private interrupted: Segment[] = [];

  /**
   * Seals the segments whose seal was interrupted by a crash (found on open). The layer above
   * calls it once it can answer `onSeal` for them, before it appends anything (the event store
   * does so inside `EventStore.open`). Reads work before it.
   */
  async sealInterrupted(): Promise<void> {
    while (this.interrupted.length > 0) {
      await this.seal(this.interrupted[0]!);
      this.interrupted.shift();
    }
  }

  /** Position the next appended record will get. */
  get nextPosition(): number {
    return this.active.nextPosition;
  }

  /** Positions below this are acknowledged and readable. */
  get commitEnd(): number {
    return this.commitEnd_;
  }

  /** The failure that stopped the log accepting appends, if any. */
  get failed(): StoreFailedError | undefined {
    return this.failure;
  }

  /** Bytes handed to segments that are not sealed yet: the active one, and rolled ones waiting for their seal. */
  get unsealedBytes(): number {
    let bytes = this.active.reservedBytes;
    for (const segment of this.rolled) bytes += segment.reservedBytes;
    return bytes;
  }

  /** Position of the oldest record held. */
  get startPosition(): number {
    return this.segments.startPosition;
  }

  /**
   * Called after each acknowledged group with the new commit end, and once more when the log
   * fails or closes (so that waiters look again). Returns an unsubscribe. A listener must not
   * throw; one that does is reported (`onListenerError`) and changes nothing else.
   */
  onCommit(listener: (commitEnd: number) => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /**
   * Appends one batch of records. Synchronous until the batch has its position; the bytes are
   * written by the writer loop and `committed` resolves when they are acknowledged.
   */
  append(records: readonly Uint8Array[]): AppendReceipt {
    return this.appendFramed(frameRecords(records), records.length);
  }

  /** Like {@link append}, for records already framed into a batch body (see `frameRecords`). */
  appendFramed(body: Uint8Array, recordCount: number): AppendReceipt {
    this.assertWritable();
    assert(recordCount > 0, 'a batch holds at least one record');
    const timestamp = this.options.clock.now();
    const length = BATCH_HEADER_BYTES + body.length;
    let segment = this.active;
    if (!segment.isEmpty && (segment.reservedBytes + length > this.options.segmentBytes || timestamp - segment.firstTimestamp! >= this.options.segmentMaxAgeMs)) {
      segment = this.roll();
    }
    const basePosition = segment.nextPosition;
    const buf = encodeFramedBatch(basePosition, timestamp, recordCount, body, segment.syncedBytes);
    const byteOffset = segment.reservedBytes;
    segment.reservedBytes += length;
    segment.noteBatch(basePosition, recordCount, byteOffset, timestamp, this.options.indexIntervalBytes);
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const committed = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.pending.push({ segment, byteOffset, buf, end: basePosition + recordCount, resolve, reject });
    this.kick();
    return { basePosition, segmentBase: segment.basePosition, byteOffset, timestamp, committed };
  }

  /** Resolves when everything appended so far is acknowledged and fdatasync'd, whatever the durability policy. */
  flush(): Promise<void> {
    this.assertWritable();
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  /** Resolves once `position` is acknowledged (immediately if it already is). */
  async waitForCommit(position: number): Promise<void> {
    while (this.commitEnd_ <= position) {
      if (this.failure !== undefined) throw this.failure;
      if (this.closed) throw new StoreClosedError();
      await new Promise<void>((resolve) => {
        const off = this.onCommit(() => {
          off();
          resolve();
        });
      });
    }
  }

  private assertWritable(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.closing) throw new StoreClosedError();
  }

  private roll(): Segment {
    const previous = this.active;
    const next = new Segment(this.options.dir, previous.nextPosition);
    next.index = new OffsetIndex();
    this.segments.push(next);
    this.sealQueue.push(previous);
    this.rolled.add(previous);
    this.active = next;
    return next;
  }

  /**
   * Starts the writer loop if it is idle, one microtask later: when an acknowledgement wakes
   * several appenders, the first one's next append would otherwise start a group of its own,
   * while the others' continuations, already queued as microtasks, would wait for the sync after
   * it (groups alternating between one batch and all the rest). A lone appender pays nothing.
   */
  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    this.loop = Promise.resolve().then(() => this.runLoop());
  }

  private syncIfDirty(): void {
    if (this.failure === undefined && !this.closing && this.active.writtenBytes > this.active.syncedBytes) {
      this.flush().catch(() => {}); // A failure is recorded in this.failure and reported to appenders.
    }
  }

  /**
   * Drains the queue. `looping` is cleared in the same synchronous step as the final emptiness
   * check, so an append that lands after that check always starts a new loop.
   */
  private async runLoop(): Promise<void> {
    try {
      while (this.pending.length > 0 || this.syncWaiters.length > 0 || this.sealQueue.length > 0) {
        // Without an fdatasync (durability none/interval) a turn is only microtasks, and so is
        // an appender awaiting it: a busy writer would starve every read, timer and
        // subscription. Let the event loop run at least every MAX_MICROTASK_RUN_MS.
        if (performance.now() - this.lastMacrotask > MAX_MICROTASK_RUN_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          this.lastMacrotask = performance.now();
        }
        if (!(await this.step())) return;
      }
    } catch (err) {
      // Nothing in a turn is expected to throw outside its write (listeners are isolated): if
      // something does, the log's state is unknown, so it fails, and every waiter hears of it
      // rather than waiting for ever. The loop's promise never rejects.
      this.fail(err, [], []);
    } finally {
      this.looping = false;
    }
  }

  /** One turn of the writer loop: write and acknowledge a group, then seal what rolled. False once failed. */
  private async step(): Promise<boolean> {
    {
      const group = this.pending;
      const syncs = this.syncWaiters;
      this.pending = [];
      this.syncWaiters = [];
      try {
        await this.writeGroup(group, syncs.length > 0);
      } catch (err) {
        this.fail(err, group, syncs);
        return false;
      }
      try {
        const last = group[group.length - 1];
        if (last !== undefined) {
          for (const batch of group) {
            batch.segment.committedBytes = batch.byteOffset + batch.buf.length;
            batch.segment.committedEnd = batch.end;
          }
          this.commitEnd_ = last.end;
        }
        for (const batch of group) batch.resolve();
        if (last !== undefined) this.notifyCommit();
        // A rolled segment whose last batch is acknowledged is sealed in the background, one at a
        // time and in order, so that appends to the next segment do not wait for it (sealing
        // syncs, digests the whole file and writes several files).
        while (this.sealQueue.length > 0 && this.sealQueue[0]!.committedBytes === this.sealQueue[0]!.reservedBytes) {
          const segment = this.sealQueue.shift()!;
          this.sealing = this.sealing.then(() => (this.failure === undefined ? this.seal(segment) : undefined)).catch((err: unknown) => this.fail(err, [], []));
        }
      } finally {
        // A flush covers the rolled segments too, which (under none durability) only their seal
        // syncs. Settled whatever happened above: a flush never waits for ever.
        const sealed = this.sealing;
        for (const waiter of syncs) void sealed.then(() => (this.failure === undefined ? waiter.resolve() : waiter.reject(this.failure)));
      }
    }
    return true;
  }

  /**
   * Calls every commit listener with the commit end. A listener that throws does not stop the
   * others, the writer loop or the log (the group is acknowledged all the same): its error goes
   * to `onListenerError`, by default a process warning.
   */
  private notifyCommit(): void {
    for (const listener of this.commitListeners) {
      try {
        listener(this.commitEnd_);
      } catch (err) {
        this.reportListenerError(err);
      }
    }
  }

  private reportListenerError(err: unknown): void {
    try {
      if (this.options.onListenerError !== undefined) {
        this.options.onListenerError(err);
        return;
      }
    } catch {
      // A reporter that throws too: fall back to the warning.
    }
    const warning = new Error(`A commit listener of the log in ${this.options.dir} threw; the log goes on: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    warning.name = 'ColdstreamWarning';
    process.emitWarning(warning);
  }

  /** The seals scheduled so far, in order; never rejects (a failed seal fails the log). */
  private sealing: Promise<void> = Promise.resolve();

  /**
   * Takes a segment sealed elsewhere (a read-only replica pulling what the writer committed)
   * as the next one: the active segment, empty and never written, becomes it (its data is read
   * remotely, its small files were pulled beside it), it is catalogued, a new empty active
   * segment follows it, and readers and subscriptions see its events as committed.
   */
  async adoptSealed(sidecar: SegmentSidecar): Promise<void> {
    const active = this.active;
    assert(active.isEmpty && !active.created && active.basePosition === sidecar.basePosition, `segment ${sidecar.basePosition} does not follow on from the log's end ${active.basePosition}`);
    await this.catalogue.append([sidecar]);
    active.adoptSidecar(sidecar);
    active.index = undefined; // Loaded from its pulled `.index` file on first use.
    const next = new Segment(this.options.dir, sidecar.lastPosition + 1);
    next.index = new OffsetIndex();
    this.segments.push(next);
    this.active = next;
    this.commitEnd_ = next.basePosition;
    this.notifyCommit();
  }

  /** Resolves once every segment rolled so far whose batches are acknowledged is sealed. */
  async sealsSettled(): Promise<void> {
    for (let seen: Promise<void> | undefined; seen !== this.sealing; ) {
      seen = this.sealing;
      await seen;
    }
  }

  private async writeGroup(group: PendingBatch[], forceSync: boolean): Promise<void> {
    const touched: Segment[] = [];
    let syncedEarly: Segment[] = [];
    for (let i = 0; i < group.length; ) {
      const segment = group[i]!.segment;
      let j = i;
      while (j < group.length && group[j]!.segment === segment) j++;
      if (!segment.created) {
        // A segment's file is created (its name made durable) only once every earlier segment is
        // synced whole, so that a power cut cannot leave a later segment behind an earlier one
        // cut back below its start (see syncEarlierSegments). Under `none` nothing syncs here.
        if (this.options.durability !== 'none') syncedEarly = [...syncedEarly, ...(await this.syncEarlierSegments(segment))];
        await this.create(segment);
      }
      this.preallocate(segment, group[j - 1]!.byteOffset + group[j - 1]!.buf.length);
      const run = group.slice(i, j).map((b) => b.buf);
      files.writeAllSync(segment.fd!, run.length === 1 ? run[0]! : Buffer.concat(run), group[i]!.byteOffset);
      segment.writtenBytes = group[j - 1]!.byteOffset + group[j - 1]!.buf.length;
      touched.push(segment);
      i = j;
    }
    if (this.options.durability === 'fsync' || forceSync) {
      if (touched.length === 0 && this.active.created) touched.push(this.active);
      await this.syncEarlierSegments(touched[0]);
      for (const segment of touched) {
        if (syncedEarly.includes(segment) && segment.syncedBytes === segment.writtenBytes) continue; // Synced above, nothing written since.
        const written = segment.writtenBytes;
        await files.fdatasync(segment.fd!);
        segment.syncedBytes = written;
      }
      this.lastMacrotask = performance.now();
    }
    for (const segment of touched) await this.persistIndexEntries(segment);
  }

  /**
   * Syncs whatever is written but not yet synced in the rolled segments before `segment`, so
   * that no segment is ever fdatasync'd while an earlier one holds unsynced data. Recovery
   * relies on it: an intact batch of a later segment that records a sync (its `syncedBytes`),
   * or a persisted index entry there, proves that every earlier segment was synced whole, so
   * damage in an earlier one is not a torn write (recovery.ts). Under `fsync` durability every
   * group syncs what it wrote and this finds nothing to do, but when a group reaches a new
   * segment (the earlier one is synced before the new one is created, rather than after); under
   * `interval`/`none` it matters when a flush (or the interval's sync) comes before a rolled
   * segment's seal has synced it. Returns the segments it synced.
   */
  private async syncEarlierSegments(segment: Segment | undefined): Promise<Segment[]> {
    const synced: Segment[] = [];
    if (segment === undefined) return synced;
    for (const earlier of this.rolled) {
      if (earlier.basePosition >= segment.basePosition || earlier.writtenBytes <= earlier.syncedBytes || earlier.fd === undefined) continue;
      // A reader slot keeps the descriptor open should its seal finish meanwhile.
      earlier.readers++;
      try {
        const written = earlier.writtenBytes;
        await files.fdatasync(earlier.fd);
        earlier.syncedBytes = Math.max(earlier.syncedBytes, written);
        synced.push(earlier);
      } finally {
        earlier.readers--;
        if (earlier.readers === 0 && earlier.dataEvicted) this.closeSealedData(earlier);
      }
    }
    return synced;
  }

  /**
   * Extends the zero-filled tail of `segment` when a write up to `end` comes within half a
   * chunk of it. The zeros are written (not a sparse ftruncate, whose holes would still need
   * allocating) and made durable by the fdatasync that follows in the same turn. Recovery
   * stops at the zeros (no batch magic) and truncates them; sealing and closing trim them.
   */
  private preallocate(segment: Segment, end: number): void {
    const chunk = this.preallocateChunk;
    if (chunk === 0 || end + chunk / 2 <= segment.allocatedBytes) return;
    const target = Math.ceil((end + chunk) / 4096) * 4096;
    for (let at = Math.max(segment.allocatedBytes, end); at < target; at += ZEROES.length) {
      files.writeAllSync(segment.fd!, ZEROES.subarray(0, Math.min(ZEROES.length, target - at)), at);
    }
    segment.allocatedBytes = target;
  }

  private get preallocateChunk(): number {
    if (this.options.durability === 'none') return 0;
    const bytes = Math.min(this.options.preallocateBytes ?? 1 << 20, this.options.segmentBytes);
    return bytes <= 0 ? 0 : Math.max(4096, Math.ceil(bytes / 4096) * 4096);
  }

  /** Cuts the zero-filled tail off a segment (before sealing or closing). */
  private async trimPreallocation(segment: Segment): Promise<void> {
    if (segment.allocatedBytes > segment.committedBytes) {
      await files.ftruncate(segment.fd!, segment.committedBytes);
      segment.allocatedBytes = segment.committedBytes;
    }
  }

  private async create(segment: Segment): Promise<void> {
    segment.fd = await files.open(segment.logFile, 'wx+');
    segment.created = true;
    if (this.options.durability !== 'none') await files.fsyncDir(this.options.dir);
  }

  /**
   * Appends to the index file the entries that point into data already fdatasync'd, never
   * further: recovery trusts everything before the last entry that checks out, so an entry
   * must not reach the disk before the data it points past (under `interval` and `none`
   * durability the entries wait for the next sync).
   */
  private async persistIndexEntries(segment: Segment): Promise<void> {
    const index = segment.index!;
    let upTo = index.length;
    while (upTo > index.persistedCount && index.at(upTo - 1).byteOffset >= segment.syncedBytes) upTo--;
    if (upTo === index.persistedCount) return;
    const entries = index.encode(index.persistedCount).subarray(0, (upTo - index.persistedCount) * 8);
    segment.indexFd ??= await files.open(segment.indexFile, fs.constants.O_WRONLY | fs.constants.O_CREAT);
    files.writeAllSync(segment.indexFd, entries, index.persistedCount * 8);
    index.persistedCount = upTo;
  }

  private fail(err: unknown, group: PendingBatch[], syncs: Waiter[]): void {
    this.failure ??= err instanceof StoreFailedError ? err : new StoreFailedError(err);
    for (const waiter of [...group, ...syncs, ...this.pending, ...this.syncWaiters]) waiter.reject(this.failure);
    this.pending = [];
    this.syncWaiters = [];
    // Rolled segments are sealed by the next open's recovery: left queued, the writer loop would
    // wait for ever for their last batches (rejected just now) and close with it.
    this.sealQueue.length = 0;
    // Wake waitForCommit callers so they see the failure.
    this.notifyCommit();
  }

  /** Seals a fully written segment: sync, final index, attachments, the sidecar, then its catalogue record. */
  private async seal(segment: Segment): Promise<void> {
    assert(segment.created && segment.committedBytes === segment.reservedBytes && !segment.isEmpty);
    this.openDataFile(segment); // Recovery closes the file of a segment whose seal was interrupted.
    await this.trimPreallocation(segment);
    await files.fsync(segment.fd!); // fsync, not fdatasync: the trim changed the file size.
    segment.syncedBytes = segment.committedBytes;
    if (segment.indexFd !== undefined) {
      await files.close(segment.indexFd);
      segment.indexFd = undefined;
    }
    const indexBytes = segment.index!.encode();
    await files.writeFileDurable(segment.indexFile, indexBytes);
    segment.index!.persistedCount = segment.index!.length;
    const data = await digestOpenFile(segment.fd!, segment.committedBytes);
    const sealing: SealingSegment = {
      basePosition: segment.basePosition,
      lastPosition: segment.nextPosition - 1,
      fileFor: (suffix) => path.join(this.options.dir, path.basename(segment.logFile, '.log') + suffix),
    };
    const attachments = this.options.onSeal === undefined ? {} : await this.options.onSeal(sealing, this);
    const sidecar = segment.sidecarFor(data, indexBytes, attachments);
    await files.writeFileAtomic(segment.sealedFile, encodeSidecar(sidecar));
    // After the sidecar is durable, so the catalogue never lists a segment that is not sealed; a
    // crash in between leaves the segment to be catalogued from its sidecar on the next open.
    await this.catalogue.append([sidecar]);
    segment.sidecar = sidecar;
    this.openSealed.add(segment);
    this.closeIdleSegments();
    this.rolled.delete(segment);
    await this.options.afterSeal?.(sealing);
  }

  // ---------------------------------------------------------------------------------- reading

  /**
   * Committed batches holding positions at or after `fromPosition`, in order, about `maxBytes`
   * of them (at least one). Empty when `fromPosition` is at or past the commit end. Every batch
   * is CRC-checked; damage throws CorruptRecordError.
   */
  async readForward(fromPosition: number, maxBytes = READ_CHUNK_BYTES): Promise<LocatedBatch[]> {
    assert(fromPosition >= this.startPosition, `position ${fromPosition} is before the start of the log`);
    if (fromPosition >= this.commitEnd_) return [];
    const segment = this.segmentFor(fromPosition);
    return this.withReader(segment, async () => {
      const index = await this.indexOf(segment);
      let { relativePosition, byteOffset } = index.floor(fromPosition - segment.basePosition);
      let position = segment.basePosition + relativePosition;
      for (;;) {
        const batches = this.checkRecords(segment, await segment.readBatches(byteOffset, position, maxBytes));
        const wanted = batches.filter((b) => b.basePosition + b.recordCount > fromPosition);
        const lastBatch = batches[batches.length - 1];
        if (wanted.length > 0 || lastBatch === undefined) return wanted;
        byteOffset = lastBatch.byteOffset + lastBatch.batchLength;
        position = lastBatch.basePosition + lastBatch.recordCount;
      }
    });
  }

  /**
   * Committed batches ending with the one that holds `atOrBefore`, in forward order, about
   * `maxBytes` of them (at least one). Read them back to front to walk the log backwards.
   */
  async readBackward(atOrBefore: number, maxBytes = READ_CHUNK_BYTES): Promise<LocatedBatch[]> {
    const position = Math.min(atOrBefore, this.commitEnd_ - 1);
    if (position < this.startPosition) return [];
    const segment = this.segmentFor(position);
    return this.withReader(segment, async () => {
      const index = await this.indexOf(segment);
      const floor = index.floorIndex(position - segment.basePosition);
      const endByteOffset = floor + 1 < index.length ? index.at(floor + 1).byteOffset : segment.committedBytes;
      let first = floor;
      while (first >= 0 && endByteOffset - index.at(first).byteOffset < maxBytes) first--;
      const start = index.at(first);
      const end = Math.min(endByteOffset, segment.committedBytes);
      const batches = this.checkRecords(segment, await segment.readBatches(start.byteOffset, segment.basePosition + start.relativePosition, end - start.byteOffset, end));
      // Batches tile the range between index entries exactly; a gap means a damaged length
      // field, which must not turn into silently skipped events.
      const last = batches[batches.length - 1];
      const reached = last === undefined ? start.byteOffset : last.byteOffset + last.batchLength;
      if (reached !== end) {
        throw new CorruptRecordError({ file: segment.logFile, byteOffset: reached, reason: `batches end at byte ${reached}, not at the next index entry's ${end}` });
      }
      return batches.filter((b) => b.basePosition <= position);
    });
  }

  /**
   * The one committed batch at `byteOffset` of the segment starting at `segmentBase`. A sealed
   * segment's offset index is not loaded for this (the batch's header gives its length); the
   * first read is `lengthGuess` bytes (a reader passes the length of the batches it has been
   * reading), or up to the next index entry when the index is in memory.
   */
  async readBatchAt(segmentBase: number, byteOffset: number, lengthGuess?: number): Promise<LocatedBatch> {
    const { segment, end } = this.batchTarget(segmentBase, byteOffset, lengthGuess);
    return this.withReader(segment, async () => this.checkRecord(segment, await segment.readBatchAt(byteOffset, end)));
  }

  /**
   * {@link readBatchAt} without an `await`: the batch, or undefined (nothing read) when it
   * cannot be read synchronously (larger than a point read). Readers of many small batches
   * (a long stream) use this first.
   */
  readBatchAtSync(segmentBase: number, byteOffset: number, lengthGuess?: number): LocatedBatch | undefined {
    const { segment, end } = this.batchTarget(segmentBase, byteOffset, lengthGuess);
    this.enterReader(segment);
    try {
      const batch = segment.readBatchAtSync(byteOffset, end);
      return batch === undefined ? undefined : this.checkRecord(segment, batch);
    } finally {
      this.leaveReader(segment);
    }
  }

  /** `batches`, once each of their records passed `options.checkRecord`; CorruptRecordError for the first that does not. */
  private checkRecords(segment: Segment, batches: LocatedBatch[]): LocatedBatch[] {
    if (this.options.checkRecord !== undefined) for (const batch of batches) this.checkRecord(segment, batch);
    return batches;
  }

  private checkRecord(segment: Segment, batch: LocatedBatch): LocatedBatch {
    const check = this.options.checkRecord;
    if (check === undefined) return batch;
    for (let i = 0; i < batch.records.length; i++) {
      const problem = check(batch.records[i]!);
      if (problem !== undefined) {
        throw new CorruptRecordError({
          file: segment.logFile,
          byteOffset: batch.byteOffset,
          position: batch.basePosition,
          reason: `record ${i} of the batch (position ${batch.basePosition + i}; the batch's CRC matches) cannot be read: ${problem}`,
        });
      }
    }
    return batch;
  }

  private batchTarget(segmentBase: number, byteOffset: number, lengthGuess: number | undefined): { segment: Segment; end: number | undefined } {
    const segment = this.segmentFor(segmentBase);
    assert(segment.basePosition === segmentBase, `no segment starts at ${segmentBase}`);
    return { segment, end: segment.index?.nextByteOffsetAfter(byteOffset) ?? (lengthGuess === undefined ? undefined : byteOffset + lengthGuess) };
  }

  /** The segments, oldest first. */
  segmentInfos(): SegmentInfo[] {
    return this.segments.infos();
  }

  private segmentFor(position: number): Segment {
    return this.segments.find(position);
  }

  private async withReader<T>(segment: Segment, read: () => Promise<T>): Promise<T> {
    this.enterReader(segment);
    try {
      return await read();
    } finally {
      this.leaveReader(segment);
    }
  }

  /** Takes a reader slot on `segment` (its file open and kept open until {@link leaveReader}). */
  private enterReader(segment: Segment): void {
    if (this.closed) throw new StoreClosedError();
    this.openDataFile(segment);
    this.activeReads++;
    segment.readers++;
    if (segment.sealed) this.openSealed.add(segment);
    segment.lastUsed = ++this.useCounter;
  }

  private leaveReader(segment: Segment): void {
    segment.readers--;
    if (segment.readers === 0 && segment.dataEvicted) this.closeSealedData(segment);
    this.activeReads--;
    if (this.activeReads === 0) this.readsDrained?.();
    this.closeIdleSegments();
  }

  private useCounter = 0;

  /** Opens `segment`'s data file for reading unless it is open; an evicted one's data is read remotely. */
  private openDataFile(segment: Segment): void {
    if (segment.fd !== undefined || segment.remote !== undefined) return;
    try {
      segment.openForReading();
    } catch (err) {
      const remote = err instanceof CorruptFileError && segment.sidecar !== undefined ? this.options.remoteData?.(segment.sidecar) : undefined;
      if (remote === undefined) throw err;
      segment.remote = remote;
    }
  }

  /** The sidecar of the sealed segment starting at `basePosition`. */
  sidecarOf(basePosition: number): SegmentSidecar {
    const sidecar = this.segments.sidecarOf(basePosition);
    assert(sidecar !== undefined, `no sealed segment starts at ${basePosition}`);
    return sidecar;
  }

  /**
   * Tiering deleted (or is about to delete) the data file of a sealed segment: its descriptor is
   * closed now if no read is using it, else when the last one ends, so the disk space is freed
   * and later reads go to the remote copy.
   */
  dataEvicted(basePosition: number): void {
    for (const segment of this.segments.objects()) {
      if (segment.basePosition !== basePosition || !segment.sealed) continue;
      if (segment.readers > 0) segment.dataEvicted = true;
      else this.closeSealedData(segment);
    }
  }

  private closeSealedData(segment: Segment): void {
    segment.dataEvicted = false;
    this.openSealed.delete(segment);
    segment.index = undefined;
    segment.indexLoading = undefined;
    try {
      segment.closeDataFileSync();
    } catch {
      // A failed close of a file only read from loses nothing; the descriptor is gone either way.
    }
    this.segments.release(segment);
  }

  /** Closes the least recently read idle sealed segments past `maxOpenSegments`. */
  private closeIdleSegments(): void {
    const limit = this.options.maxOpenSegments ?? 64;
    if (this.openSealed.size <= limit) return;
    const open = [...this.openSealed].filter((s) => s.readers === 0);
    if (open.length <= limit) return;
    open.sort((a, b) => a.lastUsed - b.lastUsed);
    // Its offset index goes too (reloaded from its file on the next read), so that memory for
    // sealed segments stays bounded by maxOpenSegments, not by how many were ever read.
    for (const segment of open.slice(0, open.length - limit)) this.closeSealedData(segment);
  }

  private indexOf(segment: Segment): Promise<OffsetIndex> {
    return segment.loadIndex(this.options.indexIntervalBytes);
  }

  private closing_: Promise<void> | undefined;

  /**
   * Waits for the writer loop and every read, syncs, and closes every file. Idempotent; every
   * call returns the same promise. Rejects with StoreFailedError when the final sync fails (the
   * files are closed all the same).
   */
  close(): Promise<void> {
    this.closing_ ??= this.closeOnce();
    return this.closing_;
  }

  private async closeOnce(): Promise<void> {
    this.closing = true;
    if (this.intervalTimer !== undefined) clearInterval(this.intervalTimer);
    if (this.ageTimer !== undefined) clearInterval(this.ageTimer);
    try {
      while (this.looping) await this.loop;
      await this.sealsSettled();
      if (this.failure === undefined && this.active.created) {
        try {
          await this.trimPreallocation(this.active);
          await files.fsync(this.active.fd!);
          this.active.syncedBytes = this.active.writtenBytes;
          await this.persistIndexEntries(this.active);
        } catch (err) {
          this.failure = new StoreFailedError(err);
        }
      }
      if (this.activeReads > 0) await new Promise<void>((resolve) => (this.readsDrained = resolve));
    } finally {
      // On every path, failures included, nothing the log started is still writing once close
      // settles (a seal writes the layer above's attachments, the sidecar and the catalogue):
      // the owner releases the directory's lock next.
      while (this.looping) await this.loop.catch(() => {});
      await this.sealsSettled();
      this.closed = true;
      // Wake waitForCommit callers: nothing more will be committed, they get StoreClosedError.
      this.notifyCommit();
      await Promise.all([...this.segments.objects()].map((segment) => segment.closeFiles().catch(() => {})));
      await this.catalogue.close().catch(() => {});
    }
    if (this.failure !== undefined) throw this.failure;
  }
}
