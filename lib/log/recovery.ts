/**
 * Recovery of a segment that was not sealed when the log was last closed: finds the end of the
 * valid data and truncates everything after it.
 *
 * The scan starts at the last offset-index entry that points at a valid batch with the expected
 * base position, not at the beginning of the file: index entries are persisted only after the
 * data they point at was written (and, under `fsync` durability, synced), so everything before
 * that entry is known good and opening a store costs a read of the tail only. From there batches
 * are checked one by one (magic, length, CRC, the chain of positions); the first that fails, and
 * everything after it, is a torn write of an append that was never acknowledged, and is cut off.
 *
 * A bad batch followed by an intact one that records (in its header) that the segment had been
 * synced past the bad one is not a torn write but damaged acknowledged data: recovery then
 * refuses with CorruptRecordError and changes nothing (see assertTornWrite).
 *
 * What this does not do: it does not look for damage before the start of the scan. Under
 * `fsync` durability that data was synced before any index entry pointed past it; a bit flipped
 * later by the disk is caught by the CRC check of every read, as a CorruptRecordError.
 */
import * as files from './files.js';
import { OffsetIndex } from './offset-index.js';
import { CorruptRecordError } from '../errors.js';
import { BATCH_HEADER_BYTES, BATCH_MAGIC, checkBatch, readBatchHeader } from './record-batch.js';
import { READ_CHUNK_BYTES, type Segment } from './segment.js';

export interface RecoveryResult {
  /** Bytes cut off the end of the data file. */
  readonly truncatedBytes: number;
  /** Byte offset the scan started at. */
  readonly scannedFromByte: number;
}

/**
 * Rebuilds `segment`'s bookkeeping from its files, truncating a torn tail. `fromStart` scans the
 * whole file and rebuilds the index (for a segment whose seal was interrupted).
 */
export async function recoverSegment(segment: Segment, indexIntervalBytes: number, fromStart = false): Promise<RecoveryResult> {
  const fd = await files.open(segment.logFile, 'r+');
  segment.fd = fd;
  segment.created = true;
  const size = await files.fstatSize(fd);
  const indexBytes = fromStart ? undefined : await files.readFileIfExists(segment.indexFile);
  const { index, intact } = OffsetIndex.decode(indexBytes ?? Buffer.alloc(0), size);
  let indexChanged = !intact || indexBytes === undefined;

  // Walk back from the last index entry to one that points at a valid batch.
  let start = index.at(-1);
  for (let i = index.length - 1; i >= 0; i--) {
    const entry = index.at(i);
    const head = await files.readAt(fd, BATCH_HEADER_BYTES, entry.byteOffset);
    const length = head.length === BATCH_HEADER_BYTES ? readBatchHeader(head, 0).batchLength : 0;
    const batch = length > 0 && length <= size - entry.byteOffset ? await files.readAt(fd, length, entry.byteOffset) : head;
    if (checkBatch(batch, 0, size - entry.byteOffset, segment.basePosition + entry.relativePosition).ok) {
      start = entry;
      break;
    }
    index.truncate(i);
    indexChanged = true;
  }
  segment.index = index;

  if (start.byteOffset > 0) {
    const first = await files.readAt(fd, BATCH_HEADER_BYTES, 0);
    segment.firstTimestamp = readBatchHeader(first, 0).timestamp;
  }
  const indexLengthBefore = index.length;
  const end = await scanForward(segment, fd, size, start.byteOffset, segment.basePosition + start.relativePosition, indexIntervalBytes);
  if (end < size) await assertTornWrite(segment, fd, end, size);
  if (index.length !== indexLengthBefore) indexChanged = true;

  if (end < size) await files.ftruncate(fd, end);
  // After a process crash under 'none'/'interval' durability the tail may sit only in the page
  // cache; sync it so that it counts as synced (index entries may then point into it).
  await files.fsync(fd);
  if (indexChanged) {
    await files.writeFileDurable(segment.indexFile, index.encode());
    index.persistedCount = index.length;
  }
  segment.reservedBytes = segment.writtenBytes = segment.committedBytes = segment.allocatedBytes = segment.syncedBytes = end;
  segment.committedEnd = segment.nextPosition;
  return { truncatedBytes: size - end, scannedFromByte: start.byteOffset };
}

/**
 * Throws CorruptRecordError, before anything is changed, when the invalid bytes at `byteOffset`
 * are not a torn write: when an intact batch after them says the segment had been fdatasync'd
 * past `byteOffset` by the time it was written. A write torn by a crash was never synced (a
 * sync would have made it whole), so no later batch can say that of it; synced data that no
 * longer checks out has been damaged since, and cutting it off would lose acknowledged events.
 * Zero-filled preallocated space holds no batch and passes.
 */
async function assertTornWrite(segment: Segment, fd: number, byteOffset: number, size: number): Promise<void> {
  const rest = await files.readAt(fd, size - byteOffset - 1, byteOffset + 1);
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(BATCH_MAGIC);
  for (let at = rest.indexOf(magic); at >= 0; at = rest.indexOf(magic, at + 1)) {
    const check = checkBatch(rest, at, rest.length - at);
    if (check.ok && check.header!.syncedBytes > byteOffset) {
      throw new CorruptRecordError({
        file: segment.logFile,
        byteOffset,
        reason:
          `the batch here is damaged, but the intact batch at byte ${byteOffset + 1 + at} was written after the segment was synced past it: ` +
          'this is acknowledged data, not a torn write, so recovery will not cut it off',
      });
    }
  }
}

/**
 * Scans a whole segment without changing anything, rebuilding its bookkeeping (index, positions,
 * timestamps) in memory. Returns where the valid batches end and the file's size.
 */
export async function scanSegmentReadOnly(segment: Segment, indexIntervalBytes: number): Promise<{ end: number; size: number }> {
  const fd = await files.open(segment.logFile, 'r');
  try {
    const size = await files.fstatSize(fd);
    segment.index = new OffsetIndex();
    if (size >= BATCH_HEADER_BYTES) segment.firstTimestamp = readBatchHeader(await files.readAt(fd, BATCH_HEADER_BYTES, 0), 0).timestamp;
    const end = await scanForward(segment, fd, size, 0, segment.basePosition, indexIntervalBytes);
    return { end, size };
  } finally {
    await files.close(fd);
  }
}

/** Checks batches from `byteOffset` on; returns the byte offset just after the last valid one. */
async function scanForward(segment: Segment, fd: number, size: number, byteOffset: number, position: number, indexIntervalBytes: number): Promise<number> {
  let cursor = byteOffset;
  let expected = position;
  segment.nextPosition = position;
  while (cursor < size) {
    let buf = await files.readAt(fd, Math.min(READ_CHUNK_BYTES, size - cursor), cursor);
    let at = 0;
    let progressed = false;
    while (cursor < size) {
      const check = checkBatch(buf, at, size - cursor, expected);
      if (check.incomplete === true) {
        if (progressed) break;
        buf = await files.readAt(fd, check.header?.batchLength ?? BATCH_HEADER_BYTES, cursor);
        at = 0;
        continue;
      }
      if (!check.ok || check.header === undefined) return cursor;
      const { batchLength, recordCount, timestamp } = check.header;
      segment.noteBatch(expected, recordCount, cursor, timestamp, indexIntervalBytes);
      at += batchLength;
      cursor += batchLength;
      expected += recordCount;
      progressed = true;
    }
  }
  return cursor;
}
