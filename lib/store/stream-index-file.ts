/**
 * The stream index of one segment: for every stream with events in the segment, where those
 * events are. Written once when the segment is sealed (`<base>.streams`, fsynced, listed with
 * its CRC in the segment's sidecar) and never changed; it stays on local disk when the segment
 * itself is tiered, so reading a stream from cold history fetches only the batches it needs.
 * The same encoding holds the active segment's part in the heads checkpoint at a clean close.
 *
 * Byte layout, little-endian:
 *
 * Header (32 bytes)
 * | offset | size | field        | meaning                                      |
 * |-------:|-----:|--------------|----------------------------------------------|
 * |      0 |    4 | magic        | {@link STREAM_INDEX_MAGIC}                   |
 * |      4 |    4 | crc          | CRC-32C of bytes [8, end of file)            |
 * |      8 |    1 | version      | 1                                            |
 * |      9 |    3 | reserved     | 0                                            |
 * |     12 |    4 | streamCount  |                                              |
 * |     16 |    4 | entryCount   | events in the segment                        |
 * |     20 |    8 | basePosition | the segment's base position                  |
 * |     28 |    4 | reserved     | 0                                            |
 *
 * Stream table: streamCount rows of 52 bytes, sorted by (hash, stream id bytes)
 * | offset | size | field           | meaning                                           |
 * |-------:|-----:|-----------------|---------------------------------------------------|
 * |      0 |    4 | hash            | CRC-32C of the UTF-8 stream id                    |
 * |      4 |    4 | idOffset        | where the stream id starts in the string heap     |
 * |      8 |    2 | idBytes         | its length                                        |
 * |     10 |    2 | reserved        | 0                                                 |
 * |     12 |    4 | eventCount      | events of the stream in this segment (≥ 1)        |
 * |     16 |    8 | firstRevision   | revision of the first of them (the rest follow)   |
 * |     24 |    8 | previousSegment | base of the newest earlier segment holding the stream, plus 1 (0: none) |
 * |     32 |    4 | entriesStart    | first of the stream's entries in the entry table   |
 * |     36 |   16 | lastEventId     | id of the stream's last event in this segment     |
 *
 * Entry table: entryCount rows of 8 bytes, grouped by stream, in revision order
 * | 0 | 4 | relativePosition | event position − base position   |
 * | 4 | 4 | batchByteOffset  | where its batch starts in `.log` |
 *
 * String heap: the stream ids, UTF-8.
 */
import { CorruptFileError } from '../errors.js';
import { crc32c } from '../log/crc.js';
import { readU64, writeU64 } from '../log/u64.js';
import { readUuid, writeUuid } from './uuid.js';

export const STREAM_INDEX_MAGIC = 0x4953_5343; // "CSSI"
const HEADER_BYTES = 32;
const ROW_BYTES = 52;
const ENTRY_BYTES = 8;

/** The events of one stream within one segment. */
export interface StreamPart {
  readonly segmentBase: number;
  readonly firstRevision: number;
  readonly count: number;
  /** Base of the newest earlier segment holding the stream, or −1. Known for sealed segments only. */
  readonly previousSegment: number;
  readonly lastEventId: string;
  positionAt(i: number): number;
  batchOffsetAt(i: number): number;
}

/** A stream's events in a segment that is still being written (kept in memory). */
export class StreamRun implements StreamPart {
  readonly relativePositions: number[] = [];
  readonly batchOffsets: number[] = [];
  lastEventId = '';
  previousSegment = -1;

  constructor(
    readonly segmentBase: number,
    readonly firstRevision: number,
  ) {}

  /** A run holding the same events as `part` (restoring a checkpointed active segment). */
  static from(part: StreamPart): StreamRun {
    const run = new StreamRun(part.segmentBase, part.firstRevision);
    for (let i = 0; i < part.count; i++) {
      run.relativePositions.push(part.positionAt(i) - part.segmentBase);
      run.batchOffsets.push(part.batchOffsetAt(i));
    }
    run.lastEventId = part.lastEventId;
    return run;
  }

  get count(): number {
    return this.relativePositions.length;
  }

  positionAt(i: number): number {
    return this.segmentBase + this.relativePositions[i]!;
  }

  batchOffsetAt(i: number): number {
    return this.batchOffsets[i]!;
  }
}

function hashOf(id: Buffer): number {
  return crc32c(id);
}

/** The last event id of a run cut short by `encodeStreamIndex`'s `endPosition`: unknown, to be read from the log. */
export const UNKNOWN_EVENT_ID = '00000000-0000-0000-0000-000000000000';

/**
 * Encodes the runs of one segment; `previousOf` gives each stream's previous segment (or −1).
 * Only events before `endPosition` are included; a run cut short gets {@link UNKNOWN_EVENT_ID}
 * as its last event id (the in-memory index knows only each stream's very last id).
 */
export function encodeStreamIndex(basePosition: number, runs: ReadonlyMap<string, StreamRun>, previousOf: (streamId: string) => number, endPosition = Number.POSITIVE_INFINITY): Buffer {
  const rows = [];
  for (const [streamId, run] of runs) {
    let count = run.count;
    while (count > 0 && run.positionAt(count - 1) >= endPosition) count--;
    if (count === 0) continue;
    const id = Buffer.from(streamId);
    rows.push({ id, hash: hashOf(id), run, count, lastEventId: count === run.count ? run.lastEventId : UNKNOWN_EVENT_ID, previous: previousOf(streamId) });
  }
  rows.sort((a, b) => a.hash - b.hash || Buffer.compare(a.id, b.id));
  const entryCount = rows.reduce((n, r) => n + r.count, 0);
  const heapBytes = rows.reduce((n, r) => n + r.id.length, 0);
  const entriesAt = HEADER_BYTES + rows.length * ROW_BYTES;
  const heapAt = entriesAt + entryCount * ENTRY_BYTES;
  const buf = Buffer.alloc(heapAt + heapBytes);
  buf.writeUInt32LE(STREAM_INDEX_MAGIC, 0);
  buf.writeUInt8(1, 8);
  buf.writeUInt32LE(rows.length, 12);
  buf.writeUInt32LE(entryCount, 16);
  writeU64(buf, 20, basePosition);
  let entry = 0;
  let heap = 0;
  rows.forEach((row, i) => {
    const at = HEADER_BYTES + i * ROW_BYTES;
    buf.writeUInt32LE(row.hash, at);
    buf.writeUInt32LE(heap, at + 4);
    buf.writeUInt16LE(row.id.length, at + 8);
    buf.writeUInt32LE(row.count, at + 12);
    writeU64(buf, at + 16, row.run.firstRevision);
    writeU64(buf, at + 24, row.previous + 1);
    buf.writeUInt32LE(entry, at + 32);
    writeUuid(row.lastEventId, buf, at + 36);
    for (let k = 0; k < row.count; k++, entry++) {
      buf.writeUInt32LE(row.run.relativePositions[k]!, entriesAt + entry * ENTRY_BYTES);
      buf.writeUInt32LE(row.run.batchOffsets[k]!, entriesAt + entry * ENTRY_BYTES + 4);
    }
    heap += row.id.copy(buf, heapAt + heap);
  });
  buf.writeUInt32LE(crc32c(buf.subarray(8)), 4);
  return buf;
}

/** A decoded, read-only stream index, answering lookups straight from its buffer. */
export class StreamIndexFile {
  readonly basePosition: number;
  readonly streamCount: number;
  private readonly entriesAt: number;
  private readonly heapAt: number;

  private constructor(readonly buf: Buffer) {
    this.streamCount = buf.readUInt32LE(12);
    this.basePosition = readU64(buf, 20);
    this.entriesAt = HEADER_BYTES + this.streamCount * ROW_BYTES;
    this.heapAt = this.entriesAt + buf.readUInt32LE(16) * ENTRY_BYTES;
  }

  /** Checks magic, CRC and table bounds; throws CorruptFileError naming `file`. */
  static decode(file: string, buf: Buffer, expectedBase?: number): StreamIndexFile {
    if (buf.length < HEADER_BYTES || buf.readUInt32LE(0) !== STREAM_INDEX_MAGIC) throw new CorruptFileError(file, 'not a stream index (bad magic)');
    const stored = buf.readUInt32LE(4);
    const computed = crc32c(buf.subarray(8));
    if (stored !== computed) throw new CorruptFileError(file, `stream index CRC mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`);
    const index = new StreamIndexFile(buf);
    if (index.heapAt > buf.length || (expectedBase !== undefined && index.basePosition !== expectedBase)) {
      throw new CorruptFileError(file, 'stream index tables do not fit the file or name another segment');
    }
    return index;
  }

  /** The stream's part of this segment, or undefined when it has no events here. */
  find(streamId: string): StreamPart | undefined {
    const id = Buffer.from(streamId);
    const hash = hashOf(id);
    let lo = 0;
    let hi = this.streamCount - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const midHash = this.buf.readUInt32LE(HEADER_BYTES + mid * ROW_BYTES);
      if (midHash < hash) lo = mid + 1;
      else hi = mid - 1;
    }
    for (let row = lo; row < this.streamCount && this.buf.readUInt32LE(HEADER_BYTES + row * ROW_BYTES) === hash; row++) {
      if (this.rowId(row).equals(id)) return this.part(row);
    }
    return undefined;
  }

  /** Every stream of the segment with its part. */
  *streams(): IterableIterator<[string, StreamPart]> {
    for (let row = 0; row < this.streamCount; row++) yield [this.rowId(row).toString('utf8'), this.part(row)];
  }

  private rowId(row: number): Buffer {
    const at = HEADER_BYTES + row * ROW_BYTES;
    const start = this.heapAt + this.buf.readUInt32LE(at + 4);
    return this.buf.subarray(start, start + this.buf.readUInt16LE(at + 8));
  }

  private part(row: number): StreamPart {
    const at = HEADER_BYTES + row * ROW_BYTES;
    const { buf, entriesAt, basePosition } = this;
    const entriesStart = entriesAt + buf.readUInt32LE(at + 32) * ENTRY_BYTES;
    return {
      segmentBase: basePosition,
      count: buf.readUInt32LE(at + 12),
      firstRevision: readU64(buf, at + 16),
      previousSegment: readU64(buf, at + 24) - 1,
      lastEventId: readUuid(buf, at + 36),
      positionAt: (i) => basePosition + buf.readUInt32LE(entriesStart + i * ENTRY_BYTES),
      batchOffsetAt: (i) => buf.readUInt32LE(entriesStart + i * ENTRY_BYTES + 4),
    };
  }
}
