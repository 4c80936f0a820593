/**
 * Reading events: `readAll` walks the log in position order; `readStream` looks up one stream's
 * parts by revision (stream-index.ts) and reads only the batches holding its events. Both are async
 * iterators (page-iterator.ts) that decode a page (a chunk of the log, or one batch) at a time,
 * never the whole result, and yield only acknowledged events.
 */
import { CorruptFileError, ValidationError, type ValidationFailure } from '../errors.js';
import type { SegmentLog } from '../log/segment-log.js';
import type { LocatedBatch } from '../log/segment.js';
import { decodeEvent, decodeRecordHead, isSystemRecord } from './codec.js';
import { checkFilter, checkOptionsObject, checkPosition } from './option-checks.js';
import { PageIterator } from './page-iterator.js';
import type { StreamIndex } from './stream-index.js';
import type { StreamPart } from './stream-part.js';
import type { EventFilter, ReadAllOptions, ReadStreamOptions, RecordedEvent } from './types.js';

export interface ReadContext {
  readonly log: SegmentLog;
  readonly index: StreamIndex;
  assertOpen(): void;
}

function checkReadOptions(direction: unknown, maxCount: unknown, from: unknown, fromName: string, failures: ValidationFailure[]): void {
  if (direction !== undefined && direction !== 'forwards' && direction !== 'backwards') {
    failures.push({ path: 'options.direction', constraint: 'isDirection', message: "must be 'forwards' or 'backwards'" });
  }
  if (maxCount !== undefined && !(Number.isSafeInteger(maxCount) && (maxCount as number) >= 0)) {
    failures.push({ path: 'options.maxCount', constraint: 'isCount', message: 'must be an integer ≥ 0' });
  }
  checkPosition(from, `options.${fromName}`, failures);
}

type Page = RecordedEvent[] | undefined;

/**
 * For subscriptions: read only events below the commit position at the moment the stream's
 * index is snapshotted, and report that position (`onSnapshot`), so that reading can go on live
 * from exactly there, without a gap or a duplicate.
 */
export interface SnapshotBound {
  onSnapshot(end: number): void;
}

/** Events of one stream; see EventStore.readStream. Validation errors reject the first `next()`. */
export function readStream(context: ReadContext, streamId: string, givenOptions?: ReadStreamOptions | null, bound?: SnapshotBound): AsyncIterableIterator<RecordedEvent> {
  let nextPage: (() => Promise<Page>) | undefined;
  return new PageIterator(async () => {
    nextPage ??= await startStreamRead(context, streamId, givenOptions, bound);
    return nextPage();
  });
}

async function startStreamRead(context: ReadContext, streamId: string, givenOptions: ReadStreamOptions | null | undefined, bound: SnapshotBound | undefined): Promise<() => Promise<Page>> {
  context.assertOpen();
  const failures: ValidationFailure[] = [];
  const options = checkOptionsObject(givenOptions, failures);
  if (typeof streamId !== 'string') failures.push({ path: 'streamId', constraint: 'isString', message: 'must be a string' });
  checkReadOptions(options.direction, options.maxCount, options.fromRevision, 'fromRevision', failures);
  if (failures.length > 0) throw new ValidationError(failures);
  // Synchronous from here to the first part's lookup: head, part and this position describe
  // the same moment. Every event below `snapshotEnd` is readable from that moment on.
  const snapshotEnd = context.log.commitEnd;
  bound?.onSnapshot(snapshotEnd);
  const end = bound === undefined ? () => context.log.commitEnd : () => snapshotEnd;
  const head = context.index.head(streamId);
  const remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
  if (head === undefined || remaining === 0) return async () => undefined;
  const backwards = options.direction === 'backwards';
  const from = options.fromRevision === 'start' ? 0 : options.fromRevision === 'end' ? head.revision : (options.fromRevision ?? (backwards ? head.revision : 0));
  const parts = new PartCursor(context.index, streamId, head.revision, backwards);
  if (backwards) return streamPagesBackwards(context.log, parts, streamId, Math.min(from, head.revision), remaining);
  if (from > head.revision) return async () => undefined;
  return streamPagesForwards(context.log, end, parts, streamId, from, remaining);
}

/**
 * The stream index's parts of one stream, looked up by revision as the read goes: each lookup
 * sees the index as it is then (parts move from memory to the index database while a read is
 * under way), and every revision up to the head seen at the start must be found.
 */
class PartCursor {
  /** Parts looked up ahead from the index database (never changed once written). */
  private page: StreamPart[] = [];

  constructor(
    private readonly index: StreamIndex,
    private readonly streamId: string,
    private readonly headRevision: number,
    private readonly backwards: boolean,
  ) {}

  /** The part holding `revision`; undefined past the head. Throws CorruptFileError for a revision the index lost. */
  at(revision: number): StreamPart | undefined {
    if (revision < 0 || revision > this.headRevision) return undefined;
    const cached = this.page.find((p) => p.firstRevision <= revision && revision < p.firstRevision + p.count);
    if (cached !== undefined) return cached;
    this.page = this.index.partsFrom(this.streamId, revision, PARTS_PAGE, this.backwards, this.headRevision);
    const part = this.page[0];
    if (part === undefined) {
      throw new CorruptFileError('stream index', `it has no entry for revision ${revision} of stream '${this.streamId}', whose head is revision ${this.headRevision}: delete index.lmdb to rebuild it from the log`);
    }
    return part;
  }
}

/** Parts of a stream looked up at once from the index database. */
const PARTS_PAGE = 64;

/** Events in one page of a stream read, at most (a page may hold fewer: it ends where a read must wait). */
const STREAM_PAGE_EVENTS = 256;

/**
 * Pages of the stream's events in revision order. A page takes events from batch after batch as
 * long as each can be read without waiting (small batches: synchronous preads), so a stream of
 * one event per batch costs one page per {@link STREAM_PAGE_EVENTS}, not a promise per event.
 */
function streamPagesForwards(log: SegmentLog, end: () => number, parts: PartCursor, streamId: string, from: number, maxCount: number): () => Promise<Page> {
  const batches = new BatchReader(log);
  let remaining = maxCount;
  let revision = from;
  let part: StreamPart | undefined;
  return async () => {
    const page: RecordedEvent[] = [];
    while (remaining > 0 && page.length < STREAM_PAGE_EVENTS) {
      if (part === undefined || revision >= part.firstRevision + part.count) part = parts.at(revision);
      // Stop at the first event not acknowledged yet: nothing after it is either.
      if (part === undefined || part.positionAt(revision - part.firstRevision) >= end()) break;
      let i = revision - part.firstRevision;
      if (!batches.holds(part, i) && !batches.fetchSync(part, i)) {
        if (page.length > 0) break; // Hand over what is decoded before waiting.
        await batches.fetch(part, i);
      }
      const byteOffset = part.batchOffsetAt(i);
      while (i < part.count && remaining > 0 && part.batchOffsetAt(i) === byteOffset && part.positionAt(i) < end()) {
        page.push(batches.eventAt(part, i++, streamId));
        remaining--;
      }
      revision = part.firstRevision + i;
    }
    return page.length === 0 ? undefined : page;
  };
}

/** Pages of the stream's events from `from` down to revision 0; see {@link streamPagesForwards}. */
function streamPagesBackwards(log: SegmentLog, parts: PartCursor, streamId: string, from: number, maxCount: number): () => Promise<Page> {
  const batches = new BatchReader(log);
  let remaining = maxCount;
  let revision = from;
  let part: StreamPart | undefined;
  return async () => {
    const page: RecordedEvent[] = [];
    while (remaining > 0 && revision >= 0 && page.length < STREAM_PAGE_EVENTS) {
      if (part === undefined || revision < part.firstRevision) part = parts.at(revision);
      if (part === undefined) break;
      let i = revision - part.firstRevision;
      const byteOffset = part.batchOffsetAt(i);
      if (part.positionAt(i) < log.commitEnd && !batches.holds(part, i) && !batches.fetchSync(part, i)) {
        if (page.length > 0) break;
        await batches.fetch(part, i);
      }
      while (i >= 0 && remaining > 0 && part.batchOffsetAt(i) === byteOffset) {
        // Events not acknowledged yet (appended after the head was read) are skipped.
        if (part.positionAt(i) < log.commitEnd) {
          page.push(batches.eventAt(part, i, streamId));
          remaining--;
        }
        i--;
      }
      revision = part.firstRevision + i;
    }
    return page.length === 0 ? undefined : page;
  };
}

/**
 * Fetches the batches of a stream's events, each batch once for the consecutive events that
 * share it, and decodes events from the batch in hand.
 */
class BatchReader {
  private batch: LocatedBatch | undefined;
  constructor(private readonly log: SegmentLog) {}

  /** Bytes to read first for the next batch: a stream's batches tend to be alike, so the last one's length (a little more). */
  private lengthGuess(): number | undefined {
    return this.batch === undefined ? undefined : this.batch.batchLength + 512;
  }

  /** True when the batch of event `i` of `part` is in hand. */
  holds(part: StreamPart, i: number): boolean {
    const batch = this.batch;
    return batch !== undefined && batch.segmentBase === part.segmentBase && batch.byteOffset === part.batchOffsetAt(i);
  }

  /**
   * Event `i` of `part`, decoded from the batch in hand (see {@link holds}). The record must be
   * the one the stream index promised (stream and revision): a mismatch means a damaged index,
   * reported as such rather than returned as another stream's event.
   */
  eventAt(part: StreamPart, i: number, streamId: string): RecordedEvent {
    const batch = this.batch!;
    const position = part.positionAt(i);
    const record = batch.records[position - batch.basePosition];
    const event = record === undefined ? undefined : decodeEvent(record, position, batch.timestamp);
    if (event === undefined || event.streamId !== streamId || event.revision !== part.firstRevision + i) {
      throw new CorruptFileError(
        `stream index of segment ${part.segmentBase}`,
        `it places revision ${part.firstRevision + i} of stream '${streamId}' at position ${position}, where the log holds ${event === undefined ? 'no such record' : `revision ${event.revision} of '${event.streamId}'`}`,
      );
    }
    return event;
  }

  /** Reads the batch of event `i` of `part` without waiting; false when it must be read asynchronously. */
  fetchSync(part: StreamPart, i: number): boolean {
    const batch = this.log.readBatchAtSync(part.segmentBase, part.batchOffsetAt(i), this.lengthGuess());
    if (batch !== undefined) this.batch = batch;
    return batch !== undefined;
  }

  async fetch(part: StreamPart, i: number): Promise<void> {
    this.batch = await this.log.readBatchAt(part.segmentBase, part.batchOffsetAt(i), this.lengthGuess());
  }
}

/**
 * The filter as a test of records, or undefined when every record passes. The store's own
 * streams ('$'…) pass only with `includeSystemStreams`.
 */
export function compileFilter(filter: EventFilter | undefined): ((record: Buffer) => boolean) | undefined {
  const includeSystem = filter?.includeSystemStreams === true;
  const prefixes = filter?.streamPrefix === undefined ? undefined : typeof filter.streamPrefix === 'string' ? [filter.streamPrefix] : filter.streamPrefix;
  const types = filter?.eventTypes === undefined ? undefined : new Set(filter.eventTypes);
  if (prefixes === undefined && types === undefined) return includeSystem ? undefined : (record) => !isSystemRecord(record);
  return (record) => {
    if (!includeSystem && isSystemRecord(record)) return false;
    const head = decodeRecordHead(record);
    return (prefixes === undefined || prefixes.some((p) => head.streamId.startsWith(p))) && (types === undefined || types.has(head.type));
  };
}

/** Events of all streams in position order; see EventStore.readAll. Validation errors reject the first `next()`. */
export function readAll(context: ReadContext, givenOptions?: ReadAllOptions | null): AsyncIterableIterator<RecordedEvent> {
  let nextPage: (() => Promise<Page>) | undefined;
  return new PageIterator(async () => {
    nextPage ??= startReadAll(context, givenOptions);
    return nextPage();
  });
}

function startReadAll(context: ReadContext, givenOptions: ReadAllOptions | null | undefined): () => Promise<Page> {
  context.assertOpen();
  const failures: ValidationFailure[] = [];
  const options = checkOptionsObject(givenOptions, failures);
  checkReadOptions(options.direction, options.maxCount, options.fromPosition, 'fromPosition', failures);
  const { filter } = options;
  checkFilter(filter, failures);
  if (failures.length > 0) throw new ValidationError(failures);
  const { log } = context;
  const matches = compileFilter(filter);
  let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
  if (options.direction === 'backwards') {
    let position = options.fromPosition === 'start' ? log.startPosition : options.fromPosition === 'end' || options.fromPosition === undefined ? log.commitEnd - 1 : options.fromPosition;
    return async () => {
      if (remaining === 0 || position < log.startPosition) return undefined;
      const batches = await log.readBackward(position);
      if (batches.length === 0) return undefined;
      const page: RecordedEvent[] = [];
      for (let b = batches.length - 1; b >= 0 && remaining > 0; b--) {
        const batch = batches[b]!;
        for (let i = Math.min(batch.recordCount - 1, position - batch.basePosition); i >= 0 && remaining > 0; i--) {
          const record = batch.records[i]!;
          if (matches !== undefined && !matches(record)) continue;
          page.push(decodeEvent(record, batch.basePosition + i, batch.timestamp));
          remaining--;
        }
      }
      position = batches[0]!.basePosition - 1;
      return page;
    };
  }
  let position = options.fromPosition === 'end' ? log.commitEnd : options.fromPosition === 'start' || options.fromPosition === undefined ? log.startPosition : Math.max(options.fromPosition, log.startPosition);
  return async () => {
    if (remaining === 0) return undefined;
    const batches = await log.readForward(position);
    if (batches.length === 0) return undefined;
    const page: RecordedEvent[] = [];
    for (const batch of batches) {
      for (let i = Math.max(0, position - batch.basePosition); i < batch.recordCount && remaining > 0; i++) {
        const record = batch.records[i]!;
        if (matches !== undefined && !matches(record)) continue;
        page.push(decodeEvent(record, batch.basePosition + i, batch.timestamp));
        remaining--;
      }
      position = batch.basePosition + batch.recordCount;
    }
    return page;
  };
}
