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
import fs from 'node:fs';
import path from 'node:path';
import { CorruptFileError, CorruptRecordError } from '../errors.js';
import { BATCH_HEADER_BYTES, BATCH_MAGIC, checkBatch, readBatchHeader } from './record-batch.js';
import { READ_CHUNK_BYTES, Segment } from './segment.js';
import { parseSegmentLogName, SUFFIX } from './segment-files.js';
import { decodeSidecar, digestFile, encodeSidecar, type FileDigest, type SegmentSidecar } from './sidecar.js';

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

/**
 * Recovers the log directory `dir` on open: the segments in position order (the last one
 * active, created empty when there is none or the last is sealed) and those whose seal a crash
 * interrupted (the trailing run of unsealed segments before the active one, sealed later by the
 * log). Sealed segments are trusted by their sidecars and not read; a damaged sidecar before a
 * sealed segment is rebuilt from the segment's files; unsealed segments are recovered
 * (recoverSegment). Segments after an interrupted seal whose tail was torn held only
 * unacknowledged data and are removed. On failure every file opened is closed.
 */
export async function recoverLog(dir: string, indexIntervalBytes: number): Promise<{ segments: Segment[]; interrupted: Segment[] }> {
  const opened: Segment[] = [];
  try {
    return await recoverSegments(dir, indexIntervalBytes, opened);
  } catch (err) {
    await Promise.all(opened.map((s) => s.closeFiles().catch(() => {})));
    throw err;
  }
}

async function recoverSegments(dir: string, indexIntervalBytes: number, opened: Segment[]): Promise<{ segments: Segment[]; interrupted: Segment[] }> {
  if ((await fs.promises.mkdir(dir, { recursive: true })) !== undefined) await files.fsyncDir(path.dirname(path.resolve(dir)));
  const names = await fs.promises.readdir(dir);
  await Promise.all(names.filter((n) => n.endsWith('.tmp')).map((n) => files.unlinkIfExists(path.join(dir, n))));
  const bases = names.map(parseSegmentLogName).filter((b): b is number => b !== undefined).sort((a, b) => a - b);
  const segments: Segment[] = [];
  const interrupted: Segment[] = [];
  const sidecars = await Promise.all(bases.map((base) => readSidecar(new Segment(dir, base))));
  // Segments seal strictly in order, so only the run of unsealed segments at the end can be
  // interrupted seals; one without a valid sidecar before a sealed one is damage.
  const lastSealed = sidecars.findLastIndex((sidecar) => sidecar !== undefined);
  for (const [i, base] of bases.entries()) {
    const segment = new Segment(dir, base);
    opened.push(segment);
    const isLast = i === bases.length - 1;
    const sidecar = sidecars[i];
    if (sidecar !== undefined) {
      applySidecar(segment, sidecar);
    } else if (i < lastSealed) {
      applySidecar(segment, await rebuildSidecar(segment, bases[i + 1]!, indexIntervalBytes));
    } else {
      await files.unlinkIfExists(segment.sealedFile);
      await recoverSegment(segment, indexIntervalBytes, !isLast);
      if (!isLast) interrupted.push(segment);
    }
    const previous = segments[segments.length - 1];
    if (previous !== undefined && previous.nextPosition !== segment.basePosition) {
      if (previous.sealed || segment.sealed) {
        throw new CorruptFileError(segment.logFile, `segment starts at position ${segment.basePosition} but the previous one ends before ${previous.nextPosition}`);
      }
      // The previous segment's seal was interrupted and its tail was torn: everything after
      // the tear was never acknowledged, as recovery of a single segment would cut it off.
      await dropSegmentsFrom(dir, bases.slice(i));
      interrupted.pop();
      await segment.closeFiles();
      break;
    }
    segments.push(segment);
  }
  const last = segments[segments.length - 1];
  if (last === undefined || last.sealed) {
    const fresh = new Segment(dir, last?.nextPosition ?? 0);
    fresh.index = new OffsetIndex();
    segments.push(fresh);
  } else if (interrupted[interrupted.length - 1] === last) {
    interrupted.pop(); // After dropping its successors it is the active segment again.
  }
  return { segments, interrupted };
}

/**
 * Rebuilds the damaged (or missing) sidecar of a sealed segment in the middle of the log from
 * its files, which sealing left complete and which nothing has changed since: a read-only scan
 * of the data (which must hold whole, valid batches up to the next segment's base position),
 * the offset index rebuilt from it, and the digests of the segment's other files (the layer
 * above's attachments, as they are). Nothing but the index and the sidecar is written. Data
 * that does not check out is a CorruptFileError, and nothing is changed.
 */
async function rebuildSidecar(segment: Segment, nextBase: number, indexIntervalBytes: number): Promise<SegmentSidecar> {
  const scan = await scanSegmentReadOnly(segment, indexIntervalBytes);
  if (scan.end !== scan.size || segment.nextPosition !== nextBase) {
    throw new CorruptFileError(
      segment.sealedFile,
      `the sidecar of a sealed segment is damaged and its data does not check out either (valid batches end at byte ${scan.end} of ${scan.size}, ` +
        `position ${segment.nextPosition} where the next segment starts at ${nextBase}): restore the segment's files from a backup`,
    );
  }
  const indexBytes = segment.index!.encode();
  await files.writeFileDurable(segment.indexFile, indexBytes);
  const prefix = path.basename(segment.logFile, SUFFIX.log);
  const attachments: Record<string, FileDigest> = {};
  for (const name of (await fs.promises.readdir(segment.dir)).sort()) {
    const suffix = name.slice(prefix.length);
    if (!name.startsWith(prefix) || [SUFFIX.log, SUFFIX.index, SUFFIX.sealed].includes(suffix as never) || suffix.endsWith('.tmp')) continue;
    attachments[suffix] = await digestFile(path.join(segment.dir, name));
  }
  const sidecar = segment.sidecarFor(await digestFile(segment.logFile), indexBytes, attachments);
  await files.writeFileAtomic(segment.sealedFile, encodeSidecar(sidecar));
  return sidecar;
}

async function readSidecar(segment: Segment): Promise<SegmentSidecar | undefined> {
  const text = await files.readFileIfExists(segment.sealedFile);
  if (text === undefined) return undefined;
  try {
    const sidecar = decodeSidecar(segment.sealedFile, text);
    return sidecar.basePosition === segment.basePosition ? sidecar : undefined;
  } catch (err) {
    if (err instanceof CorruptFileError) return undefined; // Sealed again from the data.
    throw err;
  }
}

function applySidecar(segment: Segment, sidecar: SegmentSidecar): void {
  segment.sidecar = sidecar;
  segment.created = true;
  segment.reservedBytes = segment.writtenBytes = segment.committedBytes = sidecar.data.bytes;
  segment.nextPosition = segment.committedEnd = sidecar.lastPosition + 1;
  segment.firstTimestamp = sidecar.firstTimestamp;
  segment.lastTimestamp = sidecar.lastTimestamp;
}

async function dropSegmentsFrom(dir: string, bases: number[]): Promise<void> {
  const names = await fs.promises.readdir(dir);
  for (const base of bases) {
    const prefix = String(base).padStart(20, '0') + '.';
    for (const name of names.filter((n) => n.startsWith(prefix))) await files.unlinkIfExists(path.join(dir, name));
  }
  await files.fsyncDir(dir);
}
