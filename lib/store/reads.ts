/**
 * Reading events: `readAll` walks the log in position order; `readStream` walks one stream's
 * parts (stream-index.ts) and reads only the batches holding its events. Both are async
 * iterators that read a page (a chunk of the log, or one batch) at a time, never the whole
 * result, and yield only acknowledged events.
 */
import { ValidationError, type ValidationFailure } from '../errors.js';
import type { SegmentLog } from '../log/segment-log.js';
import type { LocatedBatch } from '../log/segment.js';
import { decodeEvent, decodeRecordHead } from './codec.js';
import type { StreamIndex } from './stream-index.js';
import type { StreamPart } from './stream-index-file.js';
import type { EventFilter, ReadAllOptions, ReadStreamOptions, RecordedEvent } from './types.js';

export interface ReadContext {
  readonly log: SegmentLog;
  readonly index: StreamIndex;
  assertOpen(): void;
}

function checkOptionsObject<T extends object>(options: T | null | undefined, failures: ValidationFailure[]): T {
  if (options === undefined) return {} as T;
  if (typeof options === 'object' && options !== null) return options;
  failures.push({ path: 'options', constraint: 'isObject', message: 'must be an object (or left out)' });
  return {} as T;
}

function checkReadOptions(direction: unknown, maxCount: unknown, from: unknown, fromName: string, failures: ValidationFailure[]): void {
  if (direction !== undefined && direction !== 'forwards' && direction !== 'backwards') {
    failures.push({ path: 'options.direction', constraint: 'isDirection', message: "must be 'forwards' or 'backwards'" });
  }
  if (maxCount !== undefined && !(Number.isSafeInteger(maxCount) && (maxCount as number) >= 0)) {
    failures.push({ path: 'options.maxCount', constraint: 'isCount', message: 'must be an integer ≥ 0' });
  }
  if (from !== undefined && from !== 'start' && from !== 'end' && !(Number.isSafeInteger(from) && (from as number) >= 0)) {
    failures.push({ path: `options.${fromName}`, constraint: 'isPosition', message: "must be 'start', 'end' or an integer ≥ 0" });
  }
}

/** Events of one stream; see EventStore.readStream. */
export async function* readStream(context: ReadContext, streamId: string, givenOptions?: ReadStreamOptions | null): AsyncIterableIterator<RecordedEvent> {
  context.assertOpen();
  const failures: ValidationFailure[] = [];
  const options = checkOptionsObject(givenOptions, failures);
  if (typeof streamId !== 'string') failures.push({ path: 'streamId', constraint: 'isString', message: 'must be a string' });
  checkReadOptions(options.direction, options.maxCount, options.fromRevision, 'fromRevision', failures);
  if (failures.length > 0) throw new ValidationError(failures);
  const head = context.index.head(streamId);
  let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
  if (head === undefined || remaining === 0) return;
  const backwards = options.direction === 'backwards';
  const from = options.fromRevision === 'start' ? 0 : options.fromRevision === 'end' ? head.revision : (options.fromRevision ?? (backwards ? head.revision : 0));
  const batches = new BatchReader(context.log);
  if (backwards) {
    for await (const part of context.index.partsNewestFirst(streamId)) {
      for (let i = Math.min(part.count - 1, from - part.firstRevision); i >= 0; i--) {
        const event = await batches.eventAt(part, i);
        if (event === undefined) continue; // Not acknowledged yet.
        yield event;
        if (--remaining === 0) return;
      }
    }
    return;
  }
  if (from > head.revision) return;
  const parts: StreamPart[] = [];
  for await (const part of context.index.partsNewestFirst(streamId)) {
    parts.push(part);
    if (part.firstRevision <= from) break;
  }
  for (const part of parts.reverse()) {
    for (let i = Math.max(0, from - part.firstRevision); i < part.count; i++) {
      const event = await batches.eventAt(part, i);
      if (event === undefined) return; // Not acknowledged yet, nor is anything after it.
      yield event;
      if (--remaining === 0) return;
    }
  }
}

/** Reads each batch once for consecutive events of a stream that share it. */
class BatchReader {
  private batch: LocatedBatch | undefined;
  constructor(private readonly log: SegmentLog) {}

  async eventAt(part: StreamPart, i: number): Promise<RecordedEvent | undefined> {
    const position = part.positionAt(i);
    if (position >= this.log.commitEnd) return undefined;
    const byteOffset = part.batchOffsetAt(i);
    if (this.batch === undefined || this.batch.segmentBase !== part.segmentBase || this.batch.byteOffset !== byteOffset) {
      this.batch = await this.log.readBatchAt(part.segmentBase, byteOffset);
    }
    return decodeEvent(this.batch.records[position - this.batch.basePosition]!, position, this.batch.timestamp);
  }
}

function compileFilter(filter: EventFilter | undefined): ((record: Buffer) => boolean) | undefined {
  if (filter === undefined) return undefined;
  const prefixes = filter.streamPrefix === undefined ? undefined : typeof filter.streamPrefix === 'string' ? [filter.streamPrefix] : filter.streamPrefix;
  const types = filter.eventTypes === undefined ? undefined : new Set(filter.eventTypes);
  if (prefixes === undefined && types === undefined) return undefined;
  return (record) => {
    const head = decodeRecordHead(record);
    return (prefixes === undefined || prefixes.some((p) => head.streamId.startsWith(p))) && (types === undefined || types.has(head.type));
  };
}

/** Events of all streams in position order; see EventStore.readAll. */
export async function* readAll(context: ReadContext, givenOptions?: ReadAllOptions | null): AsyncIterableIterator<RecordedEvent> {
  context.assertOpen();
  const failures: ValidationFailure[] = [];
  const options = checkOptionsObject(givenOptions, failures);
  checkReadOptions(options.direction, options.maxCount, options.fromPosition, 'fromPosition', failures);
  const { filter } = options;
  if (filter !== undefined && (typeof filter !== 'object' || filter === null || (filter.streamPrefix !== undefined && typeof filter.streamPrefix !== 'string' && !Array.isArray(filter.streamPrefix)) || (filter.eventTypes !== undefined && !Array.isArray(filter.eventTypes)))) {
    failures.push({ path: 'options.filter', constraint: 'isFilter', message: 'must be { streamPrefix?: string | string[], eventTypes?: string[] }' });
  }
  if (failures.length > 0) throw new ValidationError(failures);
  const { log } = context;
  const matches = compileFilter(filter);
  let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
  if (remaining === 0) return;
  if (options.direction === 'backwards') {
    let position = options.fromPosition === 'start' ? log.startPosition : options.fromPosition === 'end' || options.fromPosition === undefined ? log.commitEnd - 1 : options.fromPosition;
    while (position >= log.startPosition) {
      const batches = await log.readBackward(position);
      if (batches.length === 0) return;
      for (let b = batches.length - 1; b >= 0; b--) {
        const batch = batches[b]!;
        for (let i = Math.min(batch.recordCount - 1, position - batch.basePosition); i >= 0; i--) {
          const record = batch.records[i]!;
          if (matches !== undefined && !matches(record)) continue;
          yield decodeEvent(record, batch.basePosition + i, batch.timestamp);
          if (--remaining === 0) return;
        }
      }
      position = batches[0]!.basePosition - 1;
    }
    return;
  }
  let position = options.fromPosition === 'end' ? log.commitEnd : options.fromPosition === 'start' || options.fromPosition === undefined ? log.startPosition : Math.max(options.fromPosition, log.startPosition);
  for (;;) {
    const batches = await log.readForward(position);
    if (batches.length === 0) return;
    for (const batch of batches) {
      for (let i = Math.max(0, position - batch.basePosition); i < batch.recordCount; i++) {
        const record = batch.records[i]!;
        if (matches !== undefined && !matches(record)) continue;
        yield decodeEvent(record, batch.basePosition + i, batch.timestamp);
        if (--remaining === 0) return;
      }
      position = batch.basePosition + batch.recordCount;
    }
  }
}
