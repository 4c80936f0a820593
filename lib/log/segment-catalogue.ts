/**
 * The segment catalogue: `segments.catalogue` in the log directory, the local index of the
 * sealed segments. One record per sealed segment, in position order, holding everything its
 * sidecar holds (sidecar.ts), so that opening the log reads this one file instead of one sidecar
 * per segment, and so that a segment is known to exist without any of its own files (once
 * tiered, its data may live only in object storage). The sidecar stays the per-segment unit that
 * any copy is verified against; the catalogue is derived from the sidecars and can be rebuilt
 * from them (recovery.ts does so when the file is missing or damaged).
 *
 * File layout, little-endian: a header, then records back to back.
 *
 * | offset | size | field         | meaning                                            |
 * |-------:|-----:|---------------|----------------------------------------------------|
 * |      0 |    4 | magic         | {@link CATALOGUE_MAGIC}                             |
 * |      4 |    4 | formatVersion | {@link CATALOGUE_FORMAT_VERSION}                    |
 *
 * Record (one per sealed segment):
 *
 * | offset | size | field           | meaning                                               |
 * |-------:|-----:|-----------------|-------------------------------------------------------|
 * |      0 |    4 | recordLength    | bytes of the whole record, this field included         |
 * |      4 |    4 | crc             | CRC-32C of bytes [8, recordLength): everything after it |
 * |      8 |    8 | basePosition    | position of the segment's first record                 |
 * |     16 |    8 | lastPosition    | position of its last record (≥ basePosition)           |
 * |     24 |    8 | firstTimestamp  | ms since the epoch, of its first batch                 |
 * |     32 |    8 | lastTimestamp   | ms since the epoch, of its last batch                  |
 * |     40 |    8 | dataBytes       | size of the `.log` file                                |
 * |     48 |    4 | dataCrc         | CRC-32C of the `.log` file                             |
 * |     52 |    8 | indexBytes      | size of the `.index` file                              |
 * |     60 |    4 | indexCrc        | CRC-32C of the `.index` file                           |
 * |     64 |    1 | attachmentCount | companion files of the layer above (e.g. `.streams`)   |
 * |     65 |    … | attachments     | attachmentCount × (u8 suffix length, suffix in UTF-8,  |
 * |        |      |                 | u64 bytes, u32 CRC-32C), in the sidecar's key order    |
 *
 * The length is outside the CRC (it says how far the CRC reaches). Records chain: each one's
 * basePosition is the previous one's lastPosition + 1.
 *
 * Writing. The file is created whole (temporary file, fsync, rename, fsync of the directory)
 * holding the header and the records known at that time. A segment's record is appended (one
 * positional write, then fdatasync) when its seal has made its sidecar durable, so the
 * catalogue never lists a segment that is not sealed, and lags the sidecars by at most the
 * segment being sealed.
 *
 * What a crash leaves behind: a torn last record (a prefix of it, or zeros where the file grew
 * but the data did not land). A record that fails its checks with no valid record anywhere after
 * it is such a tear and is cut off on open; the segment it described is still sealed (its sidecar
 * was durable first) and is catalogued again from its sidecar. A record that fails with a valid
 * one after it, a record whose CRC holds but whose positions break the chain, or a bad header, is
 * damage: the catalogue is not trusted and is rebuilt from the sidecars. (Damage to the last
 * record looks like a tear, and is repaired the same way.)
 *
 * What this does not do: it does not check the segments' files against their records (reads
 * check every batch's CRC, and the sealed index is checked against its record when loaded), and
 * it does not notice a sidecar damaged after its record was written (whatever copies a segment
 * elsewhere should verify the sidecar against the record, or write it from the record).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { crc32c, crc32cOfRange } from './crc.js';
import * as files from './files.js';
import type { FileDigest, SegmentSidecar } from './sidecar.js';
import { writeU64 } from './u64.js';

export const CATALOGUE_FILE = 'segments.catalogue';
export const CATALOGUE_MAGIC = 0x5443_5343; // "CSCT" read as little-endian bytes
export const CATALOGUE_FORMAT_VERSION = 1;
export const CATALOGUE_HEADER_BYTES = 8;
/** Bytes of a record without attachments. */
export const RECORD_FIXED_BYTES = 65;
/** Bytes of one attachment besides its suffix. */
const ATTACHMENT_FIXED_BYTES = 13;
const MAX_SUFFIX_BYTES = 255;
const MAX_ATTACHMENTS = 255;
const MAX_RECORD_BYTES = RECORD_FIXED_BYTES + MAX_ATTACHMENTS * (ATTACHMENT_FIXED_BYTES + MAX_SUFFIX_BYTES);

const MAGIC_OFFSET = 0;
const VERSION_OFFSET = 4;

const LENGTH_OFFSET = 0;
const CRC_OFFSET = 4;
const CRC_START = 8;
const BASE_POSITION_OFFSET = 8;
const LAST_POSITION_OFFSET = 16;
const FIRST_TIMESTAMP_OFFSET = 24;
const LAST_TIMESTAMP_OFFSET = 32;
/** A digest is its file's size (u64), then its CRC-32C (u32). */
const DATA_DIGEST_OFFSET = 40;
const INDEX_DIGEST_OFFSET = 52;
const ATTACHMENT_COUNT_OFFSET = 64;

function encodeHeader(): Buffer {
  const buf = Buffer.alloc(CATALOGUE_HEADER_BYTES);
  buf.writeUInt32LE(CATALOGUE_MAGIC, MAGIC_OFFSET);
  buf.writeUInt32LE(CATALOGUE_FORMAT_VERSION, VERSION_OFFSET);
  return buf;
}

/** A whole catalogue file holding these records. */
export function encodeCatalogue(sidecars: readonly SegmentSidecar[]): Buffer {
  return Buffer.concat([encodeHeader(), ...sidecars.map(encodeCatalogueRecord)]);
}

/** Encodes the catalogue record of one sealed segment, from its sidecar. */
export function encodeCatalogueRecord(sidecar: SegmentSidecar): Buffer {
  const attachments = Object.entries(sidecar.attachments).map(([suffix, digest]) => [Buffer.from(suffix, 'utf8'), digest] as const);
  assert(attachments.length <= MAX_ATTACHMENTS, `a segment has at most ${MAX_ATTACHMENTS} attachments`);
  let length = RECORD_FIXED_BYTES;
  for (const [suffix] of attachments) {
    assert(suffix.length > 0 && suffix.length <= MAX_SUFFIX_BYTES, `attachment suffix of ${suffix.length} bytes`);
    length += ATTACHMENT_FIXED_BYTES + suffix.length;
  }
  assert(sidecar.lastPosition >= sidecar.basePosition);
  const buf = Buffer.allocUnsafe(length);
  buf.writeUInt32LE(length, LENGTH_OFFSET);
  writeU64(buf, BASE_POSITION_OFFSET, sidecar.basePosition);
  writeU64(buf, LAST_POSITION_OFFSET, sidecar.lastPosition);
  writeU64(buf, FIRST_TIMESTAMP_OFFSET, sidecar.firstTimestamp);
  writeU64(buf, LAST_TIMESTAMP_OFFSET, sidecar.lastTimestamp);
  writeDigest(buf, DATA_DIGEST_OFFSET, sidecar.data);
  writeDigest(buf, INDEX_DIGEST_OFFSET, sidecar.index);
  buf.writeUInt8(attachments.length, ATTACHMENT_COUNT_OFFSET);
  let at = RECORD_FIXED_BYTES;
  for (const [suffix, digest] of attachments) {
    buf.writeUInt8(suffix.length, at);
    suffix.copy(buf, at + 1);
    at = writeDigest(buf, at + 1 + suffix.length, digest);
  }
  buf.writeUInt32LE(crc32c(buf.subarray(CRC_START)), CRC_OFFSET);
  return buf;
}

function writeDigest(buf: Buffer, at: number, digest: FileDigest): number {
  writeU64(buf, at, digest.bytes);
  buf.writeUInt32LE(digest.crc32c, at + 8);
  return at + 12;
}

/**
 * Decodes attachment suffixes, reusing the strings already decoded (every record of a log names
 * the same few suffixes): a byte comparison costs less than decoding UTF-8 into a new string.
 */
class SuffixCache {
  private readonly known: { bytes: Buffer; text: string }[] = [];

  decode(buf: Buffer, start: number, end: number): string {
    for (const { bytes, text } of this.known) {
      if (bytes.length !== end - start) continue;
      let same = true;
      for (let i = 0; same && i < bytes.length; i++) same = bytes[i] === buf[start + i];
      if (same) return text;
    }
    const text = buf.toString('utf8', start, end);
    if (this.known.length < 16) this.known.push({ bytes: Buffer.from(buf.subarray(start, end)), text });
    return text;
  }
}

/**
 * The records of a catalogue, checked and decoded into columns: a few typed-array slots per
 * segment and no object, so that opening a log of tens of thousands of segments allocates next
 * to nothing per segment. {@link sidecarAt} decodes one record whole, when its segment is used.
 */
export class CatalogueRecords {
  private readonly suffixes = new SuffixCache();

  constructor(
    private readonly buf: Buffer,
    /** Byte offset of each record in `buf`. */
    private readonly offsets: Float64Array,
    private readonly basePositions: Float64Array,
    readonly count: number,
  ) {}

  static readonly empty = new CatalogueRecords(Buffer.alloc(0), new Float64Array(0), new Float64Array(0), 0);

  basePositionAt(i: number): number {
    return this.basePositions[i]!;
  }

  /** Position after the last record of segment `i`. */
  nextPositionAt(i: number): number {
    return u64(this.buf, this.offsets[i]! + LAST_POSITION_OFFSET) + 1;
  }

  /** Size of segment `i`'s data file. */
  dataBytesAt(i: number): number {
    return u64(this.buf, this.offsets[i]! + DATA_DIGEST_OFFSET);
  }

  /** Position after the last catalogued segment, or undefined when there is none. */
  get nextPosition(): number | undefined {
    return this.count === 0 ? undefined : this.nextPositionAt(this.count - 1);
  }

  /** Index of the segment holding `position`: the last one starting at or before it (0 if none does). */
  indexOf(position: number): number {
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.basePositions[mid]! <= position) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Segment `i`'s record as the sidecar it stands for. */
  sidecarAt(i: number): SegmentSidecar {
    assert(i >= 0 && i < this.count);
    return decodeSidecar(this.buf, this.offsets[i]!, this.suffixes);
  }

  /** Every record as a sidecar, in order. */
  sidecars(): SegmentSidecar[] {
    return Array.from({ length: this.count }, (_, i) => this.sidecarAt(i));
  }
}

/** What the bytes of a catalogue file hold. */
export interface CatalogueContents {
  readonly records: CatalogueRecords;
  /** Bytes of the header and the whole, valid records; anything after them is a torn append. */
  readonly validBytes: number;
  /** Why the file cannot be trusted, when it cannot: damage before its last record. */
  readonly damage?: string;
}

/**
 * Checks and decodes a whole catalogue file. A torn last record is left out; damage is
 * reported, not thrown.
 *
 * Written for a process that has just started: it runs once per open over thousands of records,
 * mostly before the JIT has compiled it, so fields are read byte by byte (a Buffer method call
 * per field costs more than the rest together), the CRC is computed in place, and nothing is
 * allocated per record (each allocation is paid again by the garbage collector).
 */
export function decodeCatalogue(buf: Buffer): CatalogueContents {
  if (buf.length < CATALOGUE_HEADER_BYTES || u32(buf, MAGIC_OFFSET) !== CATALOGUE_MAGIC) {
    return { records: CatalogueRecords.empty, validBytes: 0, damage: 'bad header' };
  }
  const version = u32(buf, VERSION_OFFSET);
  if (version !== CATALOGUE_FORMAT_VERSION) return { records: CatalogueRecords.empty, validBytes: 0, damage: `unknown format version ${version}` };
  const capacity = Math.floor((buf.length - CATALOGUE_HEADER_BYTES) / RECORD_FIXED_BYTES);
  const offsets = new Float64Array(capacity);
  const basePositions = new Float64Array(capacity);
  let count = 0;
  let next = Number.NaN;
  let at = CATALOGUE_HEADER_BYTES;
  let damage: string | undefined;
  while (at < buf.length) {
    const problem = checkRecord(buf, at);
    if (problem !== undefined) {
      if (!isTornTail(buf, at)) damage = `record at byte ${at}: ${problem}`;
      break;
    }
    const basePosition = u64(buf, at + BASE_POSITION_OFFSET);
    const lastPosition = u64(buf, at + LAST_POSITION_OFFSET);
    if (!(lastPosition >= basePosition) || (count > 0 && basePosition !== next)) {
      damage = `record at byte ${at} holds positions ${basePosition}..${lastPosition}, where ${next} comes next`;
      break;
    }
    offsets[count] = at;
    basePositions[count] = basePosition;
    count++;
    next = lastPosition + 1;
    at += u32(buf, at + LENGTH_OFFSET);
  }
  const records = new CatalogueRecords(buf.subarray(0, at), offsets, basePositions, count);
  return damage === undefined ? { records, validBytes: at } : { records: CatalogueRecords.empty, validBytes: at, damage };
}

function u32(buf: Buffer, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

/** A u64 field as a number; NaN when it is not a safe integer (see u64.ts). */
function u64(buf: Buffer, at: number): number {
  const high = u32(buf, at + 4);
  return high > 0x1f_ffff ? Number.NaN : high * 0x1_0000_0000 + u32(buf, at);
}

/**
 * True when the invalid record at `at` is what a crash mid-append leaves: when no valid record
 * starts anywhere after it. A torn append is the last thing in the file; a damaged record (its
 * length field included, which is why its stated end proves nothing) has intact ones after it.
 */
function isTornTail(buf: Buffer, at: number): boolean {
  for (let next = at + 1; next + RECORD_FIXED_BYTES <= buf.length; next++) if (checkRecord(buf, next) === undefined) return false;
  return true;
}

/** Why the record at `at` is not a whole, valid record, or undefined when it is. */
function checkRecord(buf: Buffer, at: number): string | undefined {
  if (buf.length - at < CRC_START) return 'truncated length';
  const length = u32(buf, at + LENGTH_OFFSET);
  if (length < RECORD_FIXED_BYTES || length > MAX_RECORD_BYTES) return `impossible record length ${length}`;
  if (at + length > buf.length) return `record length ${length} runs past the end of the file`;
  const stored = u32(buf, at + CRC_OFFSET);
  const computed = crc32cOfRange(buf, at + CRC_START, at + length);
  if (stored !== computed) return `CRC mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`;
  // The CRC matched, so what follows is what the writer wrote (which asserted every u64 field a
  // safe integer); the structure is checked all the same, as a file from elsewhere could fail it.
  const end = at + length;
  let cursor = at + RECORD_FIXED_BYTES;
  for (let n = buf[at + ATTACHMENT_COUNT_OFFSET]!; n > 0; n--) {
    const suffixBytes = cursor < end ? buf[cursor]! : 0;
    if (suffixBytes === 0 || cursor + ATTACHMENT_FIXED_BYTES + suffixBytes > end) return 'attachments overrun the record';
    cursor += ATTACHMENT_FIXED_BYTES + suffixBytes;
  }
  return cursor === end ? undefined : 'attachments do not fill the record';
}

/** The record at `at`, already checked by {@link checkRecord}, as the sidecar it stands for. */
function decodeSidecar(buf: Buffer, at: number, suffixes: SuffixCache): SegmentSidecar {
  const attachments: Record<string, FileDigest> = {};
  let cursor = at + RECORD_FIXED_BYTES;
  for (let n = buf[at + ATTACHMENT_COUNT_OFFSET]!; n > 0; n--) {
    const digestAt = cursor + 1 + buf[cursor]!;
    attachments[suffixes.decode(buf, cursor + 1, digestAt)] = { bytes: u64(buf, digestAt), crc32c: u32(buf, digestAt + 8) };
    cursor = digestAt + 12;
  }
  // Keys in the order of Segment.sidecarFor, so that the sidecar encodes to the same JSON.
  return {
    formatVersion: 1,
    basePosition: u64(buf, at + BASE_POSITION_OFFSET),
    lastPosition: u64(buf, at + LAST_POSITION_OFFSET),
    firstTimestamp: u64(buf, at + FIRST_TIMESTAMP_OFFSET),
    lastTimestamp: u64(buf, at + LAST_TIMESTAMP_OFFSET),
    data: { bytes: u64(buf, at + DATA_DIGEST_OFFSET), crc32c: u32(buf, at + DATA_DIGEST_OFFSET + 8) },
    index: { bytes: u64(buf, at + INDEX_DIGEST_OFFSET), crc32c: u32(buf, at + INDEX_DIGEST_OFFSET + 8) },
    attachments,
  };
}

/** The catalogue as found on open. */
export interface LoadedCatalogue {
  readonly catalogue: SegmentCatalogue;
  /** Its records, or undefined when the file is missing or damaged: rebuild it from the sidecars. */
  readonly records: CatalogueRecords | undefined;
  /** Why it must be rebuilt: `missing`, or the damage found. */
  readonly rebuildReason?: string;
  /** Bytes of a torn last record cut off. */
  readonly cutBytes: number;
}

/**
 * The catalogue file of one log directory, open for appending while the log is open. Holds one
 * file descriptor (none until the file exists).
 */
export class SegmentCatalogue {
  private constructor(
    readonly file: string,
    private fd: number | undefined,
    private bytes: number,
    private nextPosition_: number | undefined,
  ) {}

  /**
   * Opens and reads the catalogue of `dir`, cutting off a torn last record. A missing or damaged
   * one comes back empty with `records` undefined; nothing is changed on disk for it until
   * {@link rewrite} replaces it.
   */
  static async open(dir: string): Promise<LoadedCatalogue> {
    const file = path.join(dir, CATALOGUE_FILE);
    let fd: number;
    try {
      fd = await files.open(file, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return { catalogue: new SegmentCatalogue(file, undefined, 0, undefined), records: undefined, rebuildReason: 'missing', cutBytes: 0 };
    }
    try {
      const size = await files.fstatSize(fd);
      const contents = decodeCatalogue(await files.readAt(fd, size, 0));
      if (contents.damage !== undefined) {
        await files.close(fd);
        return { catalogue: new SegmentCatalogue(file, undefined, 0, undefined), records: undefined, rebuildReason: contents.damage, cutBytes: 0 };
      }
      if (contents.validBytes < size) {
        await files.ftruncate(fd, contents.validBytes);
        await files.fsync(fd);
      }
      const catalogue = new SegmentCatalogue(file, fd, contents.validBytes, contents.records.nextPosition);
      return { catalogue, records: contents.records, cutBytes: size - contents.validBytes };
    } catch (err) {
      await files.close(fd).catch(() => {});
      throw err;
    }
  }

  /** Position after the last catalogued segment, or undefined when none is. */
  get nextPosition(): number | undefined {
    return this.nextPosition_;
  }

  /**
   * Appends the records of newly sealed segments (whose sidecars are durable), in order, with
   * one write and one fdatasync; creates the file if there is none yet.
   */
  async append(sidecars: readonly SegmentSidecar[]): Promise<void> {
    if (sidecars.length === 0) return;
    for (const [i, sidecar] of sidecars.entries()) {
      const expected = i === 0 ? this.nextPosition_ : sidecars[i - 1]!.lastPosition + 1;
      assert(expected === undefined || sidecar.basePosition === expected, `catalogue record for ${sidecar.basePosition} does not follow on from ${expected}`);
    }
    if (this.fd === undefined) {
      await this.rewrite(sidecars);
      return;
    }
    const buf = Buffer.concat(sidecars.map(encodeCatalogueRecord));
    await files.writeAll(this.fd, buf, this.bytes);
    await files.fdatasync(this.fd);
    this.bytes += buf.length;
    this.nextPosition_ = sidecars[sidecars.length - 1]!.lastPosition + 1;
  }

  /** Replaces the file, atomically, with one holding exactly these records. */
  async rewrite(sidecars: readonly SegmentSidecar[]): Promise<void> {
    const buf = encodeCatalogue(sidecars);
    await this.close();
    await files.writeFileAtomic(this.file, buf);
    this.fd = await files.open(this.file, 'r+');
    this.bytes = buf.length;
    const last = sidecars[sidecars.length - 1];
    this.nextPosition_ = last === undefined ? undefined : last.lastPosition + 1;
  }

  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await files.close(fd);
  }
}
