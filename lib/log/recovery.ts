/**
 * Recovery on open: which segments the log holds, and the end of the valid data of those that
 * were not sealed when the log was last closed.
 *
 * Finding the segments. Sealed segments come from the segment catalogue (segment-catalogue.ts),
 * one file read whatever their number; no per-segment file of a catalogued segment is read or
 * even looked for, so a segment whose files were moved elsewhere is still a segment. After the
 * catalogue's last record come, in order, segments sealed but not yet catalogued (a crash
 * between the sidecar and the catalogue append), segments whose seal was interrupted, and the
 * active segment. In the common case (a clean close, or a crash that tore nothing) they are found
 * by name, probing the sidecar and then the data file at each next base position, and the first
 * unsealed segment is the active one if nothing exists where it ends. Anything else (a torn tail,
 * a segment after the first unsealed one, no data file where one is expected) falls back to
 * listing the directory, which also removes leftover temporary files. A missing catalogue (a log
 * written by a version without one) or a damaged one is rebuilt from the sidecars found by
 * listing, read at most {@link SIDECAR_READ_CONCURRENCY} at a time. A segment whose data was
 * evicted by tiering is found by its sidecar alone; where that is missing or damaged too, the
 * sidecar comes back from the remote copy ({@link RemoteSidecar}) and is written again. Listing costs about 40 ms
 * for 40,000 files, as much as everything else opening 10,000 segments does, which is why the
 * common case avoids it.
 *
 * Recovering a segment. The scan starts at the last offset-index entry that points at a valid
 * batch with the expected base position, not at the beginning of the file: index entries are
 * persisted only after the data they point at was written (and, under `fsync` durability,
 * synced), so everything before that entry is known good and opening a store costs a read of the
 * tail only. From there batches are checked one by one (magic, length, CRC, the chain of
 * positions); the first that fails, and everything after it, is a torn write of an append that
 * was never acknowledged, and is cut off.
 *
 * A bad batch followed by an intact one that records (in its header) that the segment had been
 * synced past the bad one is not a torn write but damaged acknowledged data: recovery then
 * refuses with CorruptRecordError and changes nothing (see assertTornWrite).
 *
 * A segment whose seal was interrupted and whose tail was torn may have held the end of what was
 * ever acknowledged, the segments after it only unacknowledged data, written in the same
 * unsynced writes as the torn batch. Recovery weighs the evidence first: the writer syncs a
 * segment only once every earlier segment is synced whole (SegmentLog.syncEarlierSegments), so
 * an intact batch of a later segment whose header records a sync, or a persisted index entry of
 * a later segment (written only after the data it points at was synced), proves that the
 * damaged segment was synced whole and the damage is not a torn write: recovery then refuses with
 * CorruptRecordError and changes nothing. Without such evidence the later segments held only
 * unacknowledged data: they are set aside, never deleted, in a directory of their own under
 * `quarantine/` with a note saying what was found (and a copy of the bytes cut from the torn
 * segment), before the torn tail is cut, so that a crash in between leaves the tear to be found
 * again (and the directory to be listed again) by the next open.
 *
 * What this does not do: it does not look for damage before the start of the scan. Under
 * `fsync` durability that data was synced before any index entry pointed past it; a bit flipped
 * later by the disk is caught by the CRC check of every read, as a CorruptRecordError. Nor does
 * it check catalogued segments' files: reads do.
 */
import path from 'node:path';
import { CorruptFileError, CorruptRecordError } from '../errors.js';
import * as files from './files.js';
import { OffsetIndex } from './offset-index.js';
import { BATCH_HEADER_BYTES, BATCH_MAGIC, MAX_BATCH_BYTES, checkBatch, readBatchHeader } from './record-batch.js';
import { CatalogueRecords, SegmentCatalogue } from './segment-catalogue.js';
import { SegmentList } from './segment-list.js';
import { READ_CHUNK_BYTES, Segment } from './segment.js';
import { parseSegmentName, segmentName, SUFFIX } from './segment-files.js';
import { decodeSidecar, digestFile, encodeSidecar, type FileDigest, type SegmentSidecar } from './sidecar.js';

/**
 * The sidecar of the sealed segment starting at a base position, from a copy of the log
 * elsewhere (tiering's commit objects), or undefined when there is none. Recovery asks for it
 * where a segment's data file is gone and its sidecar is missing or damaged: with `gap` true
 * when later segments prove it must exist (look for it even if not known to be remote), false
 * at the end of the log (only a segment known to be remote; answering costs no request else).
 */
export type RemoteSidecar = (basePosition: number, gap: boolean) => Promise<SegmentSidecar | undefined>;

/** Subdirectory of the log directory where recovery sets aside the files it will not keep in the log. */
export const QUARANTINE_DIR = 'quarantine';

/** Sidecars read at once when the directory is listed (each read holds a file open). */
export const SIDECAR_READ_CONCURRENCY = 16;

export interface RecoveryResult {
  /** Bytes cut off the end of the data file. */
  readonly truncatedBytes: number;
  /** Byte offset the scan started at. */
  readonly scannedFromByte: number;
}

/** What {@link scanTail} found, before anything was changed. */
interface TailScan {
  readonly size: number;
  /** Byte offset just after the last valid batch. */
  readonly end: number;
  readonly indexChanged: boolean;
  readonly scannedFromByte: number;
}

/**
 * Rebuilds `segment`'s bookkeeping from its files, truncating a torn tail. `fromStart` scans the
 * whole file and rebuilds the index (for a segment whose seal was interrupted).
 */
export async function recoverSegment(segment: Segment, indexIntervalBytes: number, fromStart = false): Promise<RecoveryResult> {
  const scan = await scanTail(segment, indexIntervalBytes, fromStart);
  if (scan.end < scan.size) await assertTornWrite(segment, segment.fd!, scan.end, scan.size);
  return applyTailScan(segment, scan);
}

/**
 * Opens `segment`'s data file (read-write, left open in `segment.fd`) and finds the end of its
 * valid batches, rebuilding its bookkeeping in memory; changes nothing on disk.
 */
async function scanTail(segment: Segment, indexIntervalBytes: number, fromStart: boolean): Promise<TailScan> {
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
  if (index.length !== indexLengthBefore) indexChanged = true;
  return { size, end, indexChanged, scannedFromByte: start.byteOffset };
}

/** Makes a {@link scanTail} durable: cuts the file at the end of the valid batches, syncs it, rewrites the index if it changed. */
async function applyTailScan(segment: Segment, scan: TailScan): Promise<RecoveryResult> {
  const { end, size } = scan;
  const fd = segment.fd!;
  if (end < size) await files.ftruncate(fd, end);
  // After a process crash under 'none'/'interval' durability the tail may sit only in the page
  // cache; sync it so that it counts as synced (index entries may then point into it).
  await files.fsync(fd);
  const index = segment.index!;
  if (scan.indexChanged) {
    await files.writeFileDurable(segment.indexFile, index.encode());
    index.persistedCount = index.length;
  }
  segment.reservedBytes = segment.writtenBytes = segment.committedBytes = segment.allocatedBytes = segment.syncedBytes = end;
  segment.committedEnd = segment.nextPosition;
  return { truncatedBytes: size - end, scannedFromByte: scan.scannedFromByte };
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

/** The segments of a log directory as recovered on open. */
export interface RecoveredLog {
  /** In position order; the last one active (created empty when there is none or the last is sealed). */
  readonly segments: SegmentList;
  /** Segments whose seal a crash interrupted, in order; sealed later by the log. Their files are closed. */
  readonly interrupted: Segment[];
  /** The catalogue, up to date with every sealed segment, open for appending. */
  readonly catalogue: SegmentCatalogue;
}

/** The segments after the catalogued ones. */
interface Tail {
  readonly segments: Segment[];
  readonly interrupted: Segment[];
  /** Sidecars of the tail's sealed segments, to catalogue. */
  readonly sealed: SegmentSidecar[];
}

/**
 * Recovers the log directory `dir` on open (see the module comment): the catalogued segments,
 * then the tail found by probing or, failing that, by listing; catalogues the sealed segments
 * of the tail (or rebuilds a missing or damaged catalogue). Sealed segments are trusted by
 * their catalogue records or sidecars and not read; a damaged sidecar before a sealed segment is
 * rebuilt from the segment's files; unsealed segments are recovered (recoverSegment). Segments
 * after an interrupted seal whose tail was torn are set aside in `quarantine/` when nothing in
 * them proves the torn data acknowledged, and recovery refuses (CorruptRecordError) when something does.
 * Holds a few files open at a time, whatever the number of segments; on failure every file
 * opened is closed.
 */
export async function recoverLog(dir: string, indexIntervalBytes: number, remoteSidecar?: RemoteSidecar): Promise<RecoveredLog> {
  if ((await files.mkdirp(dir)) !== undefined) await files.fsyncDir(path.dirname(path.resolve(dir)));
  const loaded = await SegmentCatalogue.open(dir);
  const opened: Segment[] = [];
  try {
    const catalogued = loaded.records ?? CatalogueRecords.empty;
    const end = catalogued.nextPosition;
    const tail = (end === undefined ? undefined : await probeTail(dir, end, indexIntervalBytes, opened)) ?? (await listTail(dir, end, indexIntervalBytes, opened, remoteSidecar));
    if (loaded.records !== undefined) {
      await loaded.catalogue.append(tail.sealed);
    } else if (tail.sealed.length > 0 || loaded.rebuildReason !== 'missing') {
      await loaded.catalogue.rewrite(tail.sealed);
    }
    const later = tail.segments;
    const last = later[later.length - 1];
    if (last === undefined || last.sealed) {
      const fresh = new Segment(dir, last?.nextPosition ?? end ?? 0);
      fresh.index = new OffsetIndex();
      later.push(fresh);
    }
    return { segments: new SegmentList(dir, catalogued, later), interrupted: tail.interrupted, catalogue: loaded.catalogue };
  } catch (err) {
    await Promise.all(opened.map((s) => s.closeFiles().catch(() => {})));
    await loaded.catalogue.close().catch(() => {});
    throw err;
  }
}

/**
 * The tail after the catalogued segments, found by name from `start` on: sealed segments while
 * `<base>.sealed` holds a valid sidecar, then the active segment, if its data file exists, its
 * tail is intact and nothing exists where it ends. Undefined (nothing changed, nothing left open)
 * when the directory must be listed instead.
 */
async function probeTail(dir: string, start: number, indexIntervalBytes: number, opened: Segment[]): Promise<Tail | undefined> {
  const segments: Segment[] = [];
  const sealed: SegmentSidecar[] = [];
  let base = start;
  for (let sidecar = await readSidecar(new Segment(dir, base)); sidecar !== undefined; sidecar = await readSidecar(new Segment(dir, base))) {
    segments.push(Segment.sealedBy(dir, sidecar));
    sealed.push(sidecar);
    base = sidecar.lastPosition + 1;
  }
  const active = new Segment(dir, base);
  let scan: TailScan;
  try {
    scan = await scanTail(active, indexIntervalBytes, false);
  } catch (err) {
    await active.closeFiles();
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  opened.push(active);
  // An active segment with no valid batch cannot say by name where a later segment would start:
  // a later segment's file can exist (created durably before this one's first batch was synced,
  // and lost), so only a listing tells. Found by the power-loss torture.
  if (scan.end < scan.size || active.isEmpty || (await anySegmentFileAt(dir, active.nextPosition))) {
    await active.closeFiles();
    opened.pop();
    return undefined;
  }
  await applyTailScan(active, scan);
  segments.push(active);
  return { segments, interrupted: [], sealed };
}

/** True when a data file or a sidecar exists for a segment at `basePosition`. */
async function anySegmentFileAt(dir: string, basePosition: number): Promise<boolean> {
  const probe = new Segment(dir, basePosition);
  return (await files.exists(probe.logFile)) || (await files.exists(probe.sealedFile));
}

/**
 * The tail from `start` (the end of the catalogued segments; all segments when there is none),
 * found by listing the directory: every base position with a data file or a sidecar. Removes
 * temporary files left by a crash.
 */
async function listTail(dir: string, start: number | undefined, indexIntervalBytes: number, opened: Segment[], remoteSidecar?: RemoteSidecar): Promise<Tail> {
  const names = await files.readdir(dir);
  await files.mapBounded(names.filter((n) => n.endsWith('.tmp')), SIDECAR_READ_CONCURRENCY, (n) => files.unlinkIfExists(path.join(dir, n)));
  const logBases = new Set(names.map((n) => parseSegmentName(n, SUFFIX.log)));
  const listed = [...new Set([...logBases, ...names.map((n) => parseSegmentName(n, SUFFIX.sealed))])]
    .filter((b): b is number => b !== undefined && b >= (start ?? 0))
    .sort((a, b) => a - b);
  const read = await files.mapBounded(listed, SIDECAR_READ_CONCURRENCY, (base) => readSidecar(new Segment(dir, base)));
  // A segment is a data file, or a valid sidecar (its data may be elsewhere).
  const bases = listed.filter((base, i) => read[i] !== undefined || logBases.has(base));
  const sidecars = read.filter((sidecar, i) => sidecar !== undefined || logBases.has(listed[i]!));
  // Segments seal strictly in order, so only the run of unsealed segments at the end can be
  // interrupted seals; one without a valid sidecar before a sealed one is damage.
  const lastSealed = sidecars.findLastIndex((sidecar) => sidecar !== undefined);
  const tail: Tail = { segments: [], interrupted: [], sealed: [] };
  /** Bases of segments set aside (quarantine/) on the way. */
  const setAside = new Set<number>();
  for (const [i, base] of bases.entries()) {
    if (setAside.has(base)) continue;
    const segment = new Segment(dir, base);
    // With a remote copy, the log starts at 0 (tiering evicts data, never segments).
    let expected = tail.segments[tail.segments.length - 1]?.nextPosition ?? start ?? (remoteSidecar === undefined ? undefined : 0);
    const previous = tail.segments[tail.segments.length - 1];
    if (previous !== undefined && base < previous.nextPosition && sidecars[i] === undefined) {
      // An unsealed segment starting inside the previous one: a leftover (see setAsideLeftovers).
      await setAsideLeftovers(previous, names, [base]);
      setAside.add(base);
      continue;
    }
    if (expected !== undefined && expected < base) expected = await repairFromRemote(dir, tail, expected, base, remoteSidecar);
    if (expected !== undefined && expected !== base) {
      throw new CorruptFileError(segment.logFile, `segment starts at position ${base} but the previous one ends before ${expected}`);
    }
    const sidecar = sidecars[i] ?? (i < lastSealed ? await rebuildSidecar(segment, bases[i + 1]!, indexIntervalBytes, names) : undefined);
    if (sidecar !== undefined) {
      segment.adoptSidecar(sidecar);
      tail.segments.push(segment);
      tail.sealed.push(sidecar);
      continue;
    }
    opened.push(segment);
    if (await recoverUnsealed(segment, bases.slice(i + 1), indexIntervalBytes, names, setAside)) {
      tail.segments.push(segment);
      break; // It is the active segment.
    }
    tail.segments.push(segment);
    tail.interrupted.push(segment);
  }
  const last = tail.segments[tail.segments.length - 1];
  if (last === undefined || last.sealed) {
    // Evicted segments after the last one found, known to be remote, whose sidecars are gone.
    const end = last?.nextPosition ?? start ?? 0;
    await repairFromRemote(dir, tail, end, Number.MAX_SAFE_INTEGER, remoteSidecar, false);
  }
  return tail;
}

/**
 * Fills the gap from `from` to `until` in `tail` with sealed segments whose sidecars
 * `remoteSidecar` has (a segment evicted to the object store, its local sidecar missing or
 * damaged): writes each sidecar back and appends the segment. Returns where the segments
 * found end. `gap` says the segments must exist (something follows them); otherwise only
 * segments known to be remote are asked for.
 */
async function repairFromRemote(dir: string, tail: Tail, from: number, until: number, remoteSidecar: RemoteSidecar | undefined, gap = true): Promise<number> {
  let end = from;
  while (end < until) {
    const sidecar = await remoteSidecar?.(end, gap);
    if (sidecar === undefined) break;
    await files.writeFileAtomic(new Segment(dir, sidecar.basePosition).sealedFile, encodeSidecar(sidecar));
    tail.segments.push(Segment.sealedBy(dir, sidecar));
    tail.sealed.push(sidecar);
    end = sidecar.lastPosition + 1;
  }
  return end;
}

/**
 * Recovers an unsealed segment found by listing, followed by the segments at `laterBases`.
 * Returns true when it is the active segment: when none follows, or when its tail was torn (then
 * the segments after it, never acknowledged, are set aside first; when one of them proves the
 * torn data acknowledged, CorruptRecordError and nothing is changed). Otherwise its seal was
 * interrupted: it is scanned from its start and its file is closed again (sealing reopens it).
 * Later segments that start inside its valid batches are leftovers, set aside first (their
 * bases are added to `setAside`).
 */
async function recoverUnsealed(segment: Segment, laterBases: readonly number[], indexIntervalBytes: number, names: readonly string[], setAside: Set<number>): Promise<boolean> {
  const scan = await scanTail(segment, indexIntervalBytes, laterBases.length > 0);
  if (scan.end < scan.size) await assertTornWrite(segment, segment.fd!, scan.end, scan.size);
  const leftovers = laterBases.filter((base) => base < segment.nextPosition);
  if (leftovers.length > 0) {
    await setAsideLeftovers(segment, names, leftovers);
    for (const base of leftovers) setAside.add(base);
    laterBases = laterBases.filter((base) => base >= segment.nextPosition);
  }
  const nextBase = laterBases[0];
  if (nextBase !== undefined && segment.nextPosition < nextBase) {
    // Its tail was torn. Everything after the tear was never acknowledged, as recovery of a
    // single segment would cut it off, unless a later segment proves otherwise.
    const damage = await describeEnd(segment, scan, nextBase);
    const evidence = await syncEvidence(segment.dir, laterBases);
    if (evidence !== undefined) {
      throw new CorruptRecordError({
        file: segment.logFile,
        byteOffset: scan.end,
        position: segment.nextPosition,
        reason:
          `this segment's seal was interrupted and its batches end here (${damage}), but ${evidence}; the writer syncs a segment only once ` +
          'every earlier one is synced whole, so this is damaged acknowledged data, not a torn write: recovery changed nothing, ' +
          'and will not cut it off or set the later segments aside',
      });
    }
    await quarantineSegments(segment.dir, names, laterBases, segment.basePosition, tornNote(segment, laterBases, damage), { segment, scan });
    await files.unlinkIfExists(segment.sealedFile);
    await applyTailScan(segment, scan);
    return true;
  }
  await files.unlinkIfExists(segment.sealedFile);
  await applyTailScan(segment, scan);
  if (nextBase === undefined) return true;
  await segment.closeFiles();
  return false;
}

/** What ends the valid batches of `segment` at `scan.end`, in words (for an error or a note). */
async function describeEnd(segment: Segment, scan: TailScan, nextBase: number): Promise<string> {
  const where = `position ${segment.nextPosition}, short of the next segment's first position ${nextBase}`;
  if (scan.end >= scan.size) return `the file ends at byte ${scan.end}, at ${where}`;
  const available = scan.size - scan.end;
  const head = await files.readAt(segment.fd!, Math.min(BATCH_HEADER_BYTES, available), scan.end);
  const length = head.length === BATCH_HEADER_BYTES ? readBatchHeader(head, 0).batchLength : 0;
  const batch = length > BATCH_HEADER_BYTES && length <= Math.min(available, MAX_BATCH_BYTES) ? await files.readAt(segment.fd!, length, scan.end) : head;
  const problem = checkBatch(batch, 0, available, segment.nextPosition).problem ?? 'invalid batch';
  return `the batch at byte ${scan.end} of ${scan.size} is invalid (${problem}), at ${where}`;
}

/**
 * What, in the segments at `bases` (those after a segment whose tail is torn), proves that some
 * later segment was fdatasync'd, and so (the writer syncs a segment only once every earlier one
 * is synced whole) that every earlier segment was synced whole: an intact batch whose header
 * records a sync, or an index entry pointing at an intact batch past the start of its segment
 * (entries are written only once the data they point at is synced). Undefined when nothing does.
 * Reads each data file whole (a rare path: an interrupted seal with a torn tail).
 */
async function syncEvidence(dir: string, bases: readonly number[]): Promise<string | undefined> {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(BATCH_MAGIC);
  for (const base of bases) {
    const later = new Segment(dir, base);
    let fd: number;
    try {
      fd = await files.open(later.logFile, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    try {
      const size = await files.fstatSize(fd);
      const data = await files.readAt(fd, size, 0);
      const indexBytes = await files.readFileIfExists(later.indexFile);
      if (indexBytes !== undefined) {
        const { index } = OffsetIndex.decode(indexBytes, size);
        for (let i = index.length - 1; i >= 0; i--) {
          const entry = index.at(i);
          if (entry.byteOffset > 0 && checkBatch(data, entry.byteOffset, size - entry.byteOffset, base + entry.relativePosition).ok) {
            return `${later.indexFile}, the index of a later segment, has an entry for the intact batch at byte ${entry.byteOffset} of ${later.logFile}, written only once that segment was synced past it`;
          }
        }
      }
      for (let at = data.indexOf(magic); at >= 0; at = data.indexOf(magic, at + 1)) {
        const check = checkBatch(data, at, size - at);
        if (check.ok && check.header!.syncedBytes > 0 && check.header!.basePosition >= base) {
          return `the intact batch at byte ${at} of ${later.logFile} (a later segment) records that this later segment had been synced (to byte ${check.header!.syncedBytes}) before it was written`;
        }
      }
    } finally {
      await files.close(fd);
    }
  }
  return undefined;
}

/** The note of the segments set aside after `torn`, whose valid batches end early as `damage` says. */
function tornNote(torn: Segment, bases: readonly number[], damage: string): string {
  return (
    `Segment ${path.basename(torn.logFile)} (first position ${torn.basePosition}) had not finished sealing when the log was last closed, ` +
    `and its valid batches end early: ${damage}.\n\n` +
    `Nothing in the segments after it (first positions ${bases.join(', ')}) proves that they were ever synced: no intact batch of theirs ` +
    'records a sync, and no entry of their index files points at an intact batch. So they were written after the damaged batch, in ' +
    'writes that a crash caught before their sync: none of their appends was acknowledged under fsync durability.\n\n' +
    `The log goes on from position ${torn.nextPosition}. If appends at or past that position were acknowledged (under interval or none ` +
    'durability, or if something other than coldstream changed the files), stop the store and compare with a replica or a backup: these ' +
    'are the files as recovery found them. Otherwise this directory may be deleted.'
  );
}

/**
 * Sets aside unsealed segments at `bases` that start inside the valid batches of `owner` (the
 * segment before them): leftovers of an earlier life of the log. A crash cut `owner` back below
 * their start (what was cut off was never acknowledged: a recovery that found them then would
 * have set them aside, but one that found the log's end by probing does not see a segment
 * that starts past it), and the log went on from there, past them. Nothing in them is part of
 * the log; they are kept with a note, and any sign that they had been synced is reported in it.
 */
async function setAsideLeftovers(owner: Segment, names: readonly string[], bases: readonly number[]): Promise<void> {
  const evidence = await syncEvidence(owner.dir, bases);
  const note =
    `Segment${bases.length === 1 ? '' : 's'} ${bases.map((base) => `${segmentName(base)}.log`).join(', ')} (first position${bases.length === 1 ? '' : 's'} ${bases.join(', ')}) ` +
    `start${bases.length === 1 ? 's' : ''} inside segment ${path.basename(owner.logFile)}, whose valid batches run from position ${owner.basePosition} to ${owner.nextPosition - 1}, ` +
    'and had not been sealed. They are left over from an earlier life of the log: a crash cut the end of the segment before them back below ' +
    'their first position, and the log went on from there with other appends at those positions. Nothing in them is part of the log.\n\n' +
    (evidence === undefined
      ? 'Nothing in them proves that they were ever synced, so none of their appends was acknowledged under fsync durability: this directory may be deleted.'
      : `But ${evidence}: appends in them may have been acknowledged and lost at that earlier crash. Compare them with a replica or a backup.`);
  await quarantineSegments(owner.dir, names, bases, owner.basePosition, note);
}

/**
 * Sets aside every file of the segments at `bases` (given the directory's listing) in a new
 * directory under `quarantine/` (named by the time and by `about`, the segment that caused it),
 * with `NOTE.txt` saying why (`explanation`). With `cut`, also a copy of the bytes its recovery
 * is about to cut off the end of that segment's data (trailing zero bytes left out). The note
 * and the copy are written first; the segments are moved last one first, each one's data file
 * after its other files, so that a crash part way leaves a data file to be found (and the move
 * finished) by the next open. Returns the directory. Nothing is deleted.
 */
async function quarantineSegments(
  dir: string,
  names: readonly string[],
  bases: readonly number[],
  about: number,
  explanation: string,
  cut?: { readonly segment: Segment; readonly scan: TailScan },
): Promise<string> {
  const root = path.join(dir, QUARANTINE_DIR);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let entry = path.join(root, `${stamp}-${segmentName(about)}`);
  for (let n = 1; await files.exists(entry); n++) entry = path.join(root, `${stamp}-${segmentName(about)}-${n}`);
  await files.mkdirp(entry);
  await files.fsyncDir(root);
  await files.fsyncDir(dir); // For `quarantine/` itself, when it was just created.

  const moved: string[] = [];
  for (const base of [...bases].sort((a, b) => b - a)) {
    const prefix = `${segmentName(base)}.`;
    const own = names.filter((name) => name.startsWith(prefix) && !name.endsWith('.tmp'));
    moved.push(...own.filter((name) => !name.endsWith(SUFFIX.log)), ...own.filter((name) => name.endsWith(SUFFIX.log)));
  }
  let cutNote = '';
  if (cut !== undefined) {
    const { segment, scan } = cut;
    const file = path.basename(segment.logFile);
    cutNote = scan.end < scan.size ? `Only zero bytes (preallocated space) are cut from the end of ${file}.` : `Nothing is cut from ${file}.`;
    if (scan.end < scan.size) {
      const tail = await files.readAt(segment.fd!, scan.size - scan.end, scan.end);
      let last = tail.length;
      while (last > 0 && tail[last - 1] === 0) last--; // Preallocated space holds only zeroes.
      if (last > 0) {
        const copy = `${file}.from-byte-${scan.end}`;
        await files.writeFileDurable(path.join(entry, copy), tail.subarray(0, last));
        cutNote = `The ${last} bytes cut from the end of ${file} (from byte ${scan.end}; trailing zero bytes of preallocated space left out) are kept here as ${copy}.`;
      }
    }
  }
  const note = [
    `coldstream recovery set these files of the log in ${dir} aside on ${new Date().toISOString()} instead of deleting them.`,
    '',
    explanation,
    '',
    `Moved here: ${moved.join(', ') || '(no file)'}.`,
    ...(cutNote === '' ? [] : [cutNote]),
    '',
  ].join('\n');
  await files.writeFileDurable(path.join(entry, 'NOTE.txt'), Buffer.from(note));
  await files.fsyncDir(entry);
  for (const name of moved) await files.rename(path.join(dir, name), path.join(entry, name));
  await files.fsyncDir(entry);
  await files.fsyncDir(dir);
  return entry;
}

/**
 * Rebuilds the damaged (or missing) sidecar of a sealed segment in the middle of the log from
 * its files, which sealing left complete and which nothing has changed since: a read-only scan
 * of the data (which must hold whole, valid batches up to the next segment's base position),
 * the offset index rebuilt from it, and the digests of the segment's other files (the layer
 * above's attachments, as they are). Nothing but the index and the sidecar is written. Data
 * that does not check out is a CorruptFileError, and nothing is changed.
 */
async function rebuildSidecar(segment: Segment, nextBase: number, indexIntervalBytes: number, names: readonly string[]): Promise<SegmentSidecar> {
  let scan: { end: number; size: number };
  try {
    scan = await scanSegmentReadOnly(segment, indexIntervalBytes);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new CorruptFileError(segment.sealedFile, "the sidecar of a sealed segment is damaged and its data file is missing: restore the segment's files from a backup", { cause: err });
  }
  if (scan.end !== scan.size || segment.nextPosition !== nextBase) {
    throw new CorruptFileError(
      segment.sealedFile,
      `the sidecar of a sealed segment is damaged and its data does not check out either (valid batches end at byte ${scan.end} of ${scan.size}, ` +
        `position ${segment.nextPosition} where the next segment starts at ${nextBase}): restore the segment's files from a backup`,
    );
  }
  const indexBytes = segment.index!.encode();
  await files.writeFileDurable(segment.indexFile, indexBytes);
  const prefix = segmentName(segment.basePosition);
  const attachments: Record<string, FileDigest> = {};
  for (const name of names.filter((n) => n.startsWith(prefix)).sort()) {
    const suffix = name.slice(prefix.length);
    if ([SUFFIX.log, SUFFIX.index, SUFFIX.sealed].includes(suffix as never) || suffix.endsWith('.tmp')) continue;
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

