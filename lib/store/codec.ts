/**
 * The event record: how one event is stored as one record of a log batch. The batch supplies
 * the event's position (base position + index) and timestamp; the record holds the rest.
 *
 * Byte layout, little-endian:
 *
 * | offset | size | field         | meaning                                    |
 * |-------:|-----:|---------------|--------------------------------------------|
 * |      0 |    1 | version       | {@link RECORD_VERSION}                     |
 * |      1 |    1 | flags         | bit 0: metadata present                    |
 * |      2 |    2 | streamIdBytes | length of the UTF-8 stream id              |
 * |      4 |    2 | typeBytes     | length of the UTF-8 event type             |
 * |      6 |    2 | reserved      | 0                                          |
 * |      8 |    8 | revision      | u64, the event's revision in its stream    |
 * |     16 |   16 | eventId       | the UUID's 16 bytes                        |
 * |     32 |    4 | dataBytes     | length of the JSON data                    |
 * |     36 |    … | streamId, type, data (UTF-8 JSON), metadata (UTF-8 JSON, the rest) |
 *
 * The record has no checksum of its own: the batch CRC covers it. The stream id and type come
 * first so that filters and the stream index can read them without parsing the JSON.
 */
import { RECORD_LENGTH_BYTES } from '../log/record-batch.js';
import { readU64, writeU64 } from '../log/u64.js';
import type { RecordedEvent } from './types.js';
import { readUuid, writeUuid } from './uuid.js';

export const RECORD_VERSION = 1;
export const RECORD_HEADER_BYTES = 36;
const FLAG_METADATA = 1;

/** An event whose fields are validated and serialised, waiting for its revision. */
export interface PreparedEvent {
  readonly id: string;
  readonly type: string;
  /** The data as JSON. */
  readonly data: string;
  /** The metadata as JSON, when given. */
  readonly metadata: string | undefined;
  /** Upper bound of the framed record's bytes (3 bytes of UTF-8 per UTF-16 unit at most). */
  readonly maxFramedBytes: number;
}

/** Exact bytes of an event's record. */
export function recordBytes(streamId: string, type: string, data: string, metadata: string | undefined): number {
  return RECORD_HEADER_BYTES + Buffer.byteLength(streamId) + Buffer.byteLength(type) + Buffer.byteLength(data) + (metadata === undefined ? 0 : Buffer.byteLength(metadata));
}

/** Upper bound of a framed record's bytes, computed without encoding. */
export function maxFramedRecordBytes(streamId: string, type: string, data: string, metadata: string | undefined): number {
  return RECORD_LENGTH_BYTES + RECORD_HEADER_BYTES + 3 * (streamId.length + type.length + data.length + (metadata?.length ?? 0));
}

const SCRATCH_KEEP_BYTES = 1 << 20;

/**
 * Encodes an append's events as a framed batch body (record-batch.ts), writing strings straight
 * into one reused buffer: no intermediate buffer per event. The body it returns is valid until
 * the next `begin`; the log copies it into the batch synchronously.
 */
export class RecordEncoder {
  private scratch = Buffer.allocUnsafe(64 * 1024);
  private buf = this.scratch;
  private at = 0;
  count = 0;

  /** Starts a body of at most `maxBytes`. */
  begin(maxBytes: number): void {
    if (maxBytes > this.scratch.length) {
      // A huge append gets a buffer of its own; the kept scratch stays small.
      this.buf = Buffer.allocUnsafe(maxBytes);
      if (maxBytes <= SCRATCH_KEEP_BYTES) this.scratch = this.buf;
    } else {
      this.buf = this.scratch;
    }
    this.at = 0;
    this.count = 0;
  }

  add(streamId: string, event: PreparedEvent, revision: number): void {
    const { buf } = this;
    const start = this.at + RECORD_LENGTH_BYTES;
    let at = start + RECORD_HEADER_BYTES;
    const streamIdBytes = buf.write(streamId, at);
    at += streamIdBytes;
    const typeBytes = buf.write(event.type, at);
    at += typeBytes;
    const dataBytes = buf.write(event.data, at);
    at += dataBytes;
    if (event.metadata !== undefined) at += buf.write(event.metadata, at);
    buf.writeUInt32LE(at - start, this.at);
    buf[start] = RECORD_VERSION;
    buf[start + 1] = event.metadata === undefined ? 0 : FLAG_METADATA;
    buf.writeUInt16LE(streamIdBytes, start + 2);
    buf.writeUInt16LE(typeBytes, start + 4);
    buf.writeUInt16LE(0, start + 6);
    writeU64(buf, start + 8, revision);
    writeUuid(event.id, buf, start + 16);
    buf.writeUInt32LE(dataBytes, start + 32);
    this.at = at;
    this.count++;
  }

  body(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

/**
 * Why `record` is not an event record this version can read, or undefined when it is: the
 * version and flags are known ones, the record holds its whole header, and the lengths of the
 * stream id, type and data stay inside it (a record without metadata ends with its data).
 * Every decoder below slices by these lengths, so a record must pass this first; the log checks
 * every record it reads with it (SegmentLogOptions.checkRecord), so no decoder sees one that
 * does not, CRC-valid batch or not.
 */
export function checkEventRecord(record: Buffer): string | undefined {
  if (record.length < RECORD_HEADER_BYTES) return `the record holds ${record.length} bytes, fewer than the ${RECORD_HEADER_BYTES} of an event record's header`;
  const version = record[0]!;
  if (version !== RECORD_VERSION) return `unknown event record version ${version} (this version of coldstream reads version ${RECORD_VERSION})`;
  const flags = record[1]!;
  if ((flags & ~FLAG_METADATA) !== 0) return `unknown event record flags 0x${flags.toString(16).padStart(2, '0')}`;
  const streamIdBytes = record.readUInt16LE(2);
  const typeBytes = record.readUInt16LE(4);
  const dataBytes = record.readUInt32LE(32);
  const end = RECORD_HEADER_BYTES + streamIdBytes + typeBytes + dataBytes;
  if (end > record.length) {
    return `the stream id (${streamIdBytes} bytes), type (${typeBytes} bytes) and data (${dataBytes} bytes) would end at byte ${end} of a ${record.length}-byte record`;
  }
  if ((flags & FLAG_METADATA) === 0 && end !== record.length) return `${record.length - end} bytes follow the data of a record without metadata`;
  return undefined;
}

/** The fields the index and filters need, without parsing JSON. */
export interface RecordHead {
  readonly streamId: string;
  readonly type: string;
  readonly revision: number;
  readonly id: string;
}

export function decodeRecordHead(record: Buffer): RecordHead {
  const streamIdBytes = record.readUInt16LE(2);
  const typeBytes = record.readUInt16LE(4);
  const typeStart = RECORD_HEADER_BYTES + streamIdBytes;
  return {
    streamId: record.toString('utf8', RECORD_HEADER_BYTES, typeStart),
    type: record.toString('utf8', typeStart, typeStart + typeBytes),
    revision: readU64(record, 8),
    id: readUuid(record, 16),
  };
}

/** True when two records belong to the same stream (compares the stream id bytes in place). */
export function sameStreamId(a: Buffer, b: Buffer): boolean {
  const aBytes = a.readUInt16LE(2);
  return aBytes === b.readUInt16LE(2) && a.compare(b, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + aBytes, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + aBytes) === 0;
}

/** True for a record of one of the store's own streams (id starting with '$'), without decoding it. */
export function isSystemRecord(record: Buffer): boolean {
  return record.readUInt16LE(2) > 0 && record[RECORD_HEADER_BYTES] === 0x24;
}

/** The stream id only (for filters). */
export function decodeStreamId(record: Buffer): string {
  return record.toString('utf8', RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + record.readUInt16LE(2));
}

/** The whole event; `position` and `timestamp` come from the batch. */
export function decodeEvent(record: Buffer, position: number, timestamp: number): RecordedEvent {
  const streamIdBytes = record.readUInt16LE(2);
  const typeBytes = record.readUInt16LE(4);
  const dataBytes = record.readUInt32LE(32);
  const typeStart = RECORD_HEADER_BYTES + streamIdBytes;
  const dataStart = typeStart + typeBytes;
  const metadataStart = dataStart + dataBytes;
  return {
    streamId: record.toString('utf8', RECORD_HEADER_BYTES, typeStart),
    revision: readU64(record, 8),
    position,
    id: readUuid(record, 16),
    type: record.toString('utf8', typeStart, dataStart),
    data: JSON.parse(record.toString('utf8', dataStart, metadataStart)) as unknown,
    metadata: (record[1]! & FLAG_METADATA) === 0 ? undefined : (JSON.parse(record.toString('utf8', metadataStart)) as Record<string, unknown>),
    timestamp,
  };
}
