/**
 * The stream index of one segment: for every stream with events in the segment, where those
 * events are. Written once when the segment is sealed (`<base>.streams`, fsynced, listed with
 * its CRC in the segment's sidecar) and never changed. It is the immutable, verifiable unit of
 * the index: the store's LMDB index (index-db.ts) can be rebuilt from these files alone, without
 * reading the segments' data, which is what a restore from object storage does.
 *
 * It is built from the segment's records at seal time (StreamIndexBuilder), with memory per
 * event in typed arrays and no object per stream, so sealing a segment of 300,000 one-event
 * streams costs about 15 MB for a moment, not a map of 300,000 objects.
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
 * |     24 |    8 | reserved        | 0 (before the LMDB index: previous segment + 1)    |
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
import { RECORD_HEADER_BYTES } from './codec.js';
import type { IndexRun } from './index-db.js';
import type { StreamPart } from './stream-part.js';
import { readUuid } from './uuid.js';

export const STREAM_INDEX_MAGIC = 0x4953_5343; // "CSSI"
const HEADER_BYTES = 32;
const ROW_BYTES = 52;
const ENTRY_BYTES = 8;

/** A stream's part of a sealed segment, with its last event id (to rebuild heads). */
export interface SealedStreamPart extends StreamPart, IndexRun {
  readonly lastEventId: string;
}

/**
 * Collects a segment's records in position order and encodes its stream index. Each record
 * costs a few dozen bytes of typed arrays; the stream ids are kept once per run of consecutive
 * records of the same stream.
 */
export class StreamIndexBuilder {
  private count = 0;
  private hashes: Uint32Array;
  private relativePositions: Uint32Array;
  private batchOffsets: Uint32Array;
  private revisions: Float64Array;
  private idStarts: Uint32Array;
  private idLengths: Uint16Array;
  private eventIds: Buffer;
  private heap: Buffer;
  private heapBytes = 0;
  private lastIdStart = -1;

  constructor(
    readonly basePosition: number,
    capacity = 1024,
  ) {
    this.hashes = new Uint32Array(capacity);
    this.relativePositions = new Uint32Array(capacity);
    this.batchOffsets = new Uint32Array(capacity);
    this.revisions = new Float64Array(capacity);
    this.idStarts = new Uint32Array(capacity);
    this.idLengths = new Uint16Array(capacity);
    this.eventIds = Buffer.allocUnsafe(capacity * 16);
    this.heap = Buffer.allocUnsafe(capacity * 16);
  }

  /** Adds the event record at `position`, whose batch starts at `batchOffset` in the segment. */
  add(record: Buffer, position: number, batchOffset: number): void {
    if (this.count === this.hashes.length) this.grow();
    const n = this.count++;
    const idBytes = record.readUInt16LE(2);
    const idEnd = RECORD_HEADER_BYTES + idBytes;
    const last = this.lastIdStart;
    if (last >= 0 && this.idLengths[n - 1] === idBytes && record.compare(this.heap, last, last + idBytes, RECORD_HEADER_BYTES, idEnd) === 0) {
      this.idStarts[n] = last;
      this.hashes[n] = this.hashes[n - 1]!;
    } else {
      if (this.heapBytes + idBytes > this.heap.length) this.heap = grown(this.heap, this.heapBytes + idBytes);
      record.copy(this.heap, this.heapBytes, RECORD_HEADER_BYTES, idEnd);
      this.idStarts[n] = this.lastIdStart = this.heapBytes;
      this.hashes[n] = crc32c(record.subarray(RECORD_HEADER_BYTES, idEnd));
      this.heapBytes += idBytes;
    }
    this.idLengths[n] = idBytes;
    this.relativePositions[n] = position - this.basePosition;
    this.batchOffsets[n] = batchOffset;
    this.revisions[n] = readU64(record, 8);
    record.copy(this.eventIds, n * 16, 16, 32);
  }

  private grow(): void {
    const capacity = this.hashes.length * 2;
    const widen = <T extends Uint32Array | Uint16Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(capacity);
      b.set(a);
      return b;
    };
    this.hashes = widen(this.hashes, (n) => new Uint32Array(n));
    this.relativePositions = widen(this.relativePositions, (n) => new Uint32Array(n));
    this.batchOffsets = widen(this.batchOffsets, (n) => new Uint32Array(n));
    this.revisions = widen(this.revisions, (n) => new Float64Array(n));
    this.idStarts = widen(this.idStarts, (n) => new Uint32Array(n));
    this.idLengths = widen(this.idLengths, (n) => new Uint16Array(n));
    this.eventIds = grown(this.eventIds, capacity * 16);
  }

  private compareIds(a: number, b: number): number {
    const { heap, idStarts, idLengths } = this;
    return heap.compare(heap, idStarts[b]!, idStarts[b]! + idLengths[b]!, idStarts[a]!, idStarts[a]! + idLengths[a]!);
  }

  /** Encodes the stream index of the records added. Throws CorruptFileError (naming `file`) when a stream's revisions are not consecutive. */
  encode(file: string): Buffer {
    const n = this.count;
    const { hashes } = this;
    // Stable sort by (hash, id): each stream's events stay in position (so revision) order.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => hashes[a]! - hashes[b]! || (this.idStarts[a] === this.idStarts[b] ? 0 : this.compareIds(a, b)));
    const rowStarts: number[] = [];
    const uniqueIdBytes: number[] = [];
    for (let k = 0; k < n; k++) {
      const i = order[k]!;
      const previous = k === 0 ? -1 : order[k - 1]!;
      if (previous >= 0 && hashes[previous] === hashes[i] && (this.idStarts[previous] === this.idStarts[i] || this.compareIds(previous, i) === 0)) {
        if (this.revisions[i] !== this.revisions[previous]! + 1) {
          throw new CorruptFileError(file, `revision ${this.revisions[i]} of a stream follows revision ${this.revisions[previous]} in the segment's records`);
        }
        continue;
      }
      rowStarts.push(k);
      uniqueIdBytes.push(this.idLengths[i]!);
    }
    const rows = rowStarts.length;
    const entriesAt = HEADER_BYTES + rows * ROW_BYTES;
    const heapAt = entriesAt + n * ENTRY_BYTES;
    const buf = Buffer.alloc(heapAt + uniqueIdBytes.reduce((s, b) => s + b, 0));
    buf.writeUInt32LE(STREAM_INDEX_MAGIC, 0);
    buf.writeUInt8(1, 8);
    buf.writeUInt32LE(rows, 12);
    buf.writeUInt32LE(n, 16);
    writeU64(buf, 20, this.basePosition);
    let heap = 0;
    for (let r = 0; r < rows; r++) {
      const from = rowStarts[r]!;
      const to = r + 1 < rows ? rowStarts[r + 1]! : n;
      const first = order[from]!;
      const last = order[to - 1]!;
      const at = HEADER_BYTES + r * ROW_BYTES;
      buf.writeUInt32LE(hashes[first]!, at);
      buf.writeUInt32LE(heap, at + 4);
      buf.writeUInt16LE(this.idLengths[first]!, at + 8);
      buf.writeUInt32LE(to - from, at + 12);
      writeU64(buf, at + 16, this.revisions[first]!);
      buf.writeUInt32LE(from, at + 32);
      this.eventIds.copy(buf, at + 36, last * 16, last * 16 + 16);
      for (let k = from; k < to; k++) {
        buf.writeUInt32LE(this.relativePositions[order[k]!]!, entriesAt + k * ENTRY_BYTES);
        buf.writeUInt32LE(this.batchOffsets[order[k]!]!, entriesAt + k * ENTRY_BYTES + 4);
      }
      heap += this.heap.copy(buf, heapAt + heap, this.idStarts[first]!, this.idStarts[first]! + this.idLengths[first]!);
    }
    buf.writeUInt32LE(crc32c(buf.subarray(8)), 4);
    return buf;
  }
}

function grown(buf: Buffer, atLeast: number): Buffer {
  const bigger = Buffer.allocUnsafe(Math.max(atLeast, buf.length * 2));
  buf.copy(bigger);
  return bigger;
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
  find(streamId: string): SealedStreamPart | undefined {
    const id = Buffer.from(streamId);
    const hash = crc32c(id);
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
  *streams(): IterableIterator<[string, SealedStreamPart]> {
    for (let row = 0; row < this.streamCount; row++) yield [this.rowId(row).toString('utf8'), this.part(row)];
  }

  private rowId(row: number): Buffer {
    const at = HEADER_BYTES + row * ROW_BYTES;
    const start = this.heapAt + this.buf.readUInt32LE(at + 4);
    return this.buf.subarray(start, start + this.buf.readUInt16LE(at + 8));
  }

  private part(row: number): SealedStreamPart {
    const at = HEADER_BYTES + row * ROW_BYTES;
    const { buf, entriesAt, basePosition } = this;
    const entriesStart = entriesAt + buf.readUInt32LE(at + 32) * ENTRY_BYTES;
    return {
      segmentBase: basePosition,
      count: buf.readUInt32LE(at + 12),
      firstRevision: readU64(buf, at + 16),
      lastEventId: readUuid(buf, at + 36),
      positionAt: (i) => basePosition + buf.readUInt32LE(entriesStart + i * ENTRY_BYTES),
      batchOffsetAt: (i) => buf.readUInt32LE(entriesStart + i * ENTRY_BYTES + 4),
      segmentBaseAt: () => basePosition,
    };
  }
}
