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
  readonly typeBytes: Buffer;
  readonly data: Buffer;
  readonly metadata: Buffer | undefined;
  /** Bytes of the encoded record. */
  readonly recordBytes: number;
}

export function recordBytes(streamIdBytes: number, typeBytes: number, dataBytes: number, metadataBytes: number): number {
  return RECORD_HEADER_BYTES + streamIdBytes + typeBytes + dataBytes + metadataBytes;
}

export function encodeRecord(streamId: Buffer, event: PreparedEvent, revision: number): Buffer {
  const buf = Buffer.allocUnsafe(event.recordBytes);
  buf.writeUInt8(RECORD_VERSION, 0);
  buf.writeUInt8(event.metadata === undefined ? 0 : FLAG_METADATA, 1);
  buf.writeUInt16LE(streamId.length, 2);
  buf.writeUInt16LE(event.typeBytes.length, 4);
  buf.writeUInt16LE(0, 6);
  writeU64(buf, 8, revision);
  writeUuid(event.id, buf, 16);
  buf.writeUInt32LE(event.data.length, 32);
  let at = RECORD_HEADER_BYTES;
  at += streamId.copy(buf, at);
  at += event.typeBytes.copy(buf, at);
  at += event.data.copy(buf, at);
  if (event.metadata !== undefined) event.metadata.copy(buf, at);
  return buf;
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
