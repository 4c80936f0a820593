/**
 * Record batch: the unit of one append in the segment log, and of every read.
 *
 * One append writes one batch; a batch is all-or-nothing: recovery keeps it whole or drops it
 * whole, because its CRC covers every byte after the CRC field. Records are opaque bytes to
 * the log; their positions are `basePosition + index` (dense, no gaps, across the whole log).
 *
 * Byte layout, little-endian:
 *
 * | offset | size | field         | meaning                                                  |
 * |-------:|-----:|---------------|----------------------------------------------------------|
 * |      0 |    4 | magic         | {@link BATCH_MAGIC}; zeroes here mean "no batch"          |
 * |      4 |    4 | batchLength   | bytes of the whole batch, this header included            |
 * |      8 |    4 | crc           | CRC-32C of bytes [12, batchLength): header tail and body  |
 * |     12 |    1 | formatVersion | {@link BATCH_FORMAT_VERSION}                              |
 * |     13 |    1 | attributes    | 0 (reserved for compression); others are refused          |
 * |     14 |    2 | reserved      | 0; others are refused                                     |
 * |     16 |    8 | basePosition  | position of the first record                              |
 * |     24 |    4 | recordCount   | ≥ 1                                                       |
 * |     28 |    8 | timestamp     | milliseconds since the epoch, when the batch was appended |
 * |     36 |    4 | syncedBytes   | bytes of this segment known fdatasync'd when it was written |
 * |     40 |    … | records       | recordCount × (u32 length, that many bytes)               |
 *
 * The length is outside the CRC (it says how far the CRC reaches), so a damaged length shows as
 * a CRC mismatch or as a batch that runs past the end of the file; both are corruption.
 *
 * `syncedBytes` lets recovery tell a torn write from damage: a bad batch at byte X is cut off
 * only if no intact batch after it says the segment was synced past X when it was written
 * (the claim is always true: it is written after the sync it reports).
 */
import { CorruptRecordError } from '../errors.js';
import { crc32c } from './crc.js';
import { readU64, writeU64 } from './u64.js';

export const BATCH_MAGIC = 0x4243_5343; // "CSCB" read as little-endian bytes
export const BATCH_FORMAT_VERSION = 1;
export const BATCH_HEADER_BYTES = 40;
export const RECORD_LENGTH_BYTES = 4;
/** A batch's length field is a u32 but we keep it below 2^31 so byte offsets stay small integers. */
export const MAX_BATCH_BYTES = 0x7fff_ffff;

const MAGIC_OFFSET = 0;
const LENGTH_OFFSET = 4;
const CRC_OFFSET = 8;
const CRC_START = 12;
const VERSION_OFFSET = 12;
const ATTRIBUTES_OFFSET = 13;
const RESERVED_OFFSET = 14;
const BASE_POSITION_OFFSET = 16;
const RECORD_COUNT_OFFSET = 24;
const TIMESTAMP_OFFSET = 28;
const SYNCED_BYTES_OFFSET = 36;

export interface BatchHeader {
  readonly batchLength: number;
  readonly crc: number;
  readonly basePosition: number;
  readonly recordCount: number;
  readonly timestamp: number;
  /** Bytes of the segment known fdatasync'd when the batch was written. */
  readonly syncedBytes: number;
}

/** A decoded batch: its header fields and its records (views into the buffer it was read from). */
export interface RecordBatch extends BatchHeader {
  readonly records: Buffer[];
}

/** Bytes a batch of these records will take on disk. */
export function batchBytes(records: readonly Uint8Array[]): number {
  let total = BATCH_HEADER_BYTES;
  for (const record of records) total += RECORD_LENGTH_BYTES + record.length;
  return total;
}

/** Encodes one batch of `records`; there must be at least one. */
export function encodeBatch(basePosition: number, timestamp: number, records: readonly Uint8Array[], syncedBytes = 0): Buffer {
  return encodeFramedBatch(basePosition, timestamp, records.length, frameRecords(records), syncedBytes);
}

/** Frames records as a batch body: each one's u32 length, then its bytes. */
export function frameRecords(records: readonly Uint8Array[]): Buffer {
  const body = Buffer.allocUnsafe(batchBytes(records) - BATCH_HEADER_BYTES);
  let at = 0;
  for (const record of records) {
    body.writeUInt32LE(record.length, at);
    body.set(record, at + RECORD_LENGTH_BYTES);
    at += RECORD_LENGTH_BYTES + record.length;
  }
  return body;
}

/**
 * Encodes one batch around `body`, `recordCount` framed records (see {@link frameRecords}), with
 * one copy of the body. The caller asserts sizes; a batch holds at least one record.
 */
export function encodeFramedBatch(basePosition: number, timestamp: number, recordCount: number, body: Uint8Array, syncedBytes = 0): Buffer {
  const length = BATCH_HEADER_BYTES + body.length;
  const buf = Buffer.allocUnsafe(length);
  buf.writeUInt32LE(BATCH_MAGIC, MAGIC_OFFSET);
  buf.writeUInt32LE(length, LENGTH_OFFSET);
  buf.writeUInt8(BATCH_FORMAT_VERSION, VERSION_OFFSET);
  buf.writeUInt8(0, ATTRIBUTES_OFFSET);
  buf.writeUInt16LE(0, RESERVED_OFFSET);
  writeU64(buf, BASE_POSITION_OFFSET, basePosition);
  buf.writeUInt32LE(recordCount, RECORD_COUNT_OFFSET);
  writeU64(buf, TIMESTAMP_OFFSET, timestamp);
  buf.writeUInt32LE(syncedBytes, SYNCED_BYTES_OFFSET);
  buf.set(body, BATCH_HEADER_BYTES);
  buf.writeUInt32LE(crc32c(buf.subarray(CRC_START)), CRC_OFFSET);
  return buf;
}

/**
 * Why the bytes at `byteOffset` are not a whole, valid batch, or undefined if they are.
 * `available` is how many bytes of the file (or fetched range) exist from `byteOffset` on.
 * `expectedPosition`, when given, must equal the batch's base position.
 */
export interface BatchCheck {
  readonly ok: boolean;
  /** `'incomplete'` when only the bytes after the end of `buf` are missing (read more and retry). */
  readonly problem?: string;
  readonly incomplete?: boolean;
  readonly header?: BatchHeader;
  readonly storedCrc?: number;
  readonly computedCrc?: number;
}

/** Reads the header fields at `at` without checking them; `buf` must hold at least a header there. */
export function readBatchHeader(buf: Buffer, at: number): BatchHeader & { magic: number; version: number; attributes: number; reserved: number } {
  return {
    magic: buf.readUInt32LE(at + MAGIC_OFFSET),
    batchLength: buf.readUInt32LE(at + LENGTH_OFFSET),
    crc: buf.readUInt32LE(at + CRC_OFFSET),
    version: buf.readUInt8(at + VERSION_OFFSET),
    attributes: buf.readUInt8(at + ATTRIBUTES_OFFSET),
    reserved: buf.readUInt16LE(at + RESERVED_OFFSET),
    basePosition: readU64(buf, at + BASE_POSITION_OFFSET),
    recordCount: buf.readUInt32LE(at + RECORD_COUNT_OFFSET),
    timestamp: readU64(buf, at + TIMESTAMP_OFFSET),
    syncedBytes: buf.readUInt32LE(at + SYNCED_BYTES_OFFSET),
  };
}

/**
 * Checks the batch starting at `at` in `buf`. `bytesToEndOfFile` says how many bytes exist in
 * the file from `at` on (it may exceed what `buf` holds): a batch running past the end of the
 * file is invalid; one running past the end of `buf` only is `incomplete`.
 */
export function checkBatch(buf: Buffer, at: number, bytesToEndOfFile: number, expectedPosition?: number): BatchCheck {
  const inBuf = buf.length - at;
  if (bytesToEndOfFile < BATCH_HEADER_BYTES) return { ok: false, problem: 'truncated header' };
  if (inBuf < BATCH_HEADER_BYTES) return { ok: false, incomplete: true, problem: 'header beyond buffer' };
  const header = readBatchHeader(buf, at);
  if (header.magic !== BATCH_MAGIC) return { ok: false, problem: `bad magic 0x${header.magic.toString(16)}` };
  if (header.batchLength < BATCH_HEADER_BYTES || header.batchLength > MAX_BATCH_BYTES) {
    return { ok: false, problem: `impossible batch length ${header.batchLength}` };
  }
  if (header.batchLength > bytesToEndOfFile) {
    return { ok: false, problem: `batch length ${header.batchLength} runs past the end of the file` };
  }
  if (header.batchLength > inBuf) return { ok: false, incomplete: true, problem: 'batch beyond buffer', header };
  const computedCrc = crc32c(buf.subarray(at + CRC_START, at + header.batchLength));
  if (computedCrc !== header.crc) {
    return { ok: false, problem: 'CRC mismatch', storedCrc: header.crc, computedCrc };
  }
  // The CRC matched, so the fields below are what the writer wrote; a mismatch is a bug or a
  // batch from somewhere else (a file copied under the wrong name), never a torn write.
  if (header.version !== BATCH_FORMAT_VERSION) return { ok: false, problem: `unknown format version ${header.version}` };
  // Attributes (compression, another record framing) this version does not know would make
  // the records below read as garbage.
  if (header.attributes !== 0 || header.reserved !== 0) {
    return { ok: false, problem: `unknown batch attributes 0x${header.attributes.toString(16).padStart(2, '0')} (reserved field 0x${header.reserved.toString(16).padStart(4, '0')}): written by another version or format` };
  }
  if (header.recordCount < 1 || Number.isNaN(header.basePosition) || Number.isNaN(header.timestamp)) {
    return { ok: false, problem: 'impossible header fields' };
  }
  if (expectedPosition !== undefined && header.basePosition !== expectedPosition) {
    return { ok: false, problem: `base position ${header.basePosition}, expected ${expectedPosition}` };
  }
  return { ok: true, header };
}

/** Throws the CorruptRecordError that describes a failed {@link checkBatch}. */
export function corruptBatch(file: string, byteOffset: number, check: BatchCheck, position?: number): CorruptRecordError {
  return new CorruptRecordError({
    file,
    byteOffset,
    reason: check.problem ?? 'invalid batch',
    storedCrc: check.storedCrc,
    computedCrc: check.computedCrc,
    position,
  });
}

/**
 * Splits a checked batch into its records (views into `buf`, not copies). Returns undefined when
 * the record lengths do not add up to the batch length, which for a batch whose CRC matched can
 * only be a writer bug (or a batch of another format); {@link splitRecords} says how.
 */
export function decodeRecords(buf: Buffer, at: number, header: BatchHeader): Buffer[] | undefined {
  const records = splitRecords(buf, at, header);
  return typeof records === 'string' ? undefined : records;
}

/**
 * {@link decodeRecords}, or, when the record lengths do not add up to the batch length, what
 * was found instead. Every length is checked against the end of the batch before anything is
 * sliced; the record count against the bytes there are (each record takes at least its length
 * field) before anything is allocated.
 */
export function splitRecords(buf: Buffer, at: number, header: BatchHeader): Buffer[] | string {
  const bodyBytes = header.batchLength - BATCH_HEADER_BYTES;
  if (header.recordCount > bodyBytes / RECORD_LENGTH_BYTES) {
    return `${FRAMING_MISMATCH}: ${header.recordCount} records cannot fit in the ${bodyBytes} bytes after the header`;
  }
  const records: Buffer[] = new Array(header.recordCount);
  const end = at + header.batchLength;
  let cursor = at + BATCH_HEADER_BYTES;
  for (let i = 0; i < header.recordCount; i++) {
    if (cursor + RECORD_LENGTH_BYTES > end) {
      return `${FRAMING_MISMATCH}: record ${i} of ${header.recordCount} would start at byte ${cursor - at}, where ${end - cursor} bytes of the batch are left`;
    }
    const length = buf.readUInt32LE(cursor);
    cursor += RECORD_LENGTH_BYTES;
    if (cursor + length > end) {
      return `${FRAMING_MISMATCH}: record ${i} of ${header.recordCount} at byte ${cursor - at} claims ${length} bytes, but the batch ends ${end - cursor} bytes later`;
    }
    records[i] = buf.subarray(cursor, cursor + length);
    cursor += length;
  }
  if (cursor !== end) return `${FRAMING_MISMATCH}: its ${header.recordCount} records end at byte ${cursor - at}, ${end - cursor} bytes before the end of the batch`;
  return records;
}

const FRAMING_MISMATCH = 'record lengths do not match the batch length';

/** Checks and decodes the batch at `at`, throwing CorruptRecordError for anything but a whole valid batch. */
export function decodeBatchOrThrow(
  buf: Buffer,
  at: number,
  bytesToEndOfFile: number,
  file: string,
  fileByteOffset: number,
  expectedPosition?: number,
): RecordBatch {
  const check = checkBatch(buf, at, bytesToEndOfFile, expectedPosition);
  if (!check.ok || check.header === undefined) throw corruptBatch(file, fileByteOffset, check, expectedPosition);
  const records = splitRecords(buf, at, check.header);
  if (typeof records === 'string') throw corruptBatch(file, fileByteOffset, { ok: false, problem: records }, expectedPosition);
  return { ...check.header, records };
}
