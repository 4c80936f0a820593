/**
 * The heads checkpoint (`heads.checkpoint`): every stream's head as of the end of the sealed
 * segments, and, when written at a clean close, the active segment's stream index too. It only
 * speeds up opening: all of it can be rebuilt from the sealed segments' stream indexes (for the
 * heads) and from the active segment (for its part). It is replaced atomically; a damaged or
 * inconsistent one is ignored and rebuilt.
 *
 * Byte layout, little-endian:
 *
 * | offset | size | field         | meaning                                                    |
 * |-------:|-----:|---------------|------------------------------------------------------------|
 * |      0 |    4 | magic         | {@link CHECKPOINT_MAGIC}                                   |
 * |      4 |    4 | crc           | CRC-32C of bytes [8, end of file)                          |
 * |      8 |    1 | version       | 1                                                          |
 * |     12 |    4 | streamCount   |                                                            |
 * |     16 |    8 | sealedEnd     | position after the last sealed segment the heads include   |
 * |     24 |    8 | activeBase    | base of the active segment + 1, or 0 when its part is absent |
 * |     32 |    8 | activeEnd     | position up to which the active part is complete            |
 * |     40 |    … | streamCount rows: u16 idBytes, id, u64 revision, u64 position, u64 lastSealedSegment + 1, 16-byte lastEventId |
 * |      … |    … | when activeBase > 0: u32 length, then the active part as a stream index (stream-index-file.ts) |
 */
import { crc32c } from '../log/crc.js';
import { readU64, writeU64 } from '../log/u64.js';
import { StreamIndexFile } from './stream-index-file.js';
import { readUuid, writeUuid } from './uuid.js';

export const CHECKPOINT_MAGIC = 0x4348_5343; // "CSHC"
const HEADER_BYTES = 40;

/** A stream's head as of the end of the sealed segments. */
export interface SealedHead {
  readonly revision: number;
  readonly position: number;
  readonly lastEventId: string;
  /** Base of the newest sealed segment holding the stream. */
  readonly lastSealedSegment: number;
}

export interface HeadsCheckpoint {
  readonly sealedEnd: number;
  readonly heads: Map<string, SealedHead>;
  readonly active?: { readonly basePosition: number; readonly end: number; readonly index: StreamIndexFile } | undefined;
}

export function encodeCheckpoint(sealedEnd: number, heads: ReadonlyMap<string, SealedHead>, active?: { basePosition: number; end: number; index: Buffer }): Buffer {
  const ids = [...heads.keys()].map((id) => Buffer.from(id));
  const rowsBytes = ids.reduce((n, id) => n + 2 + id.length + 40, 0);
  const activeBytes = active === undefined ? 0 : 4 + active.index.length;
  const buf = Buffer.alloc(HEADER_BYTES + rowsBytes + activeBytes);
  buf.writeUInt32LE(CHECKPOINT_MAGIC, 0);
  buf.writeUInt8(1, 8);
  buf.writeUInt32LE(heads.size, 12);
  writeU64(buf, 16, sealedEnd);
  writeU64(buf, 24, active === undefined ? 0 : active.basePosition + 1);
  writeU64(buf, 32, active?.end ?? 0);
  let at = HEADER_BYTES;
  let i = 0;
  for (const head of heads.values()) {
    const id = ids[i++]!;
    buf.writeUInt16LE(id.length, at);
    at += 2 + id.copy(buf, at + 2);
    writeU64(buf, at, head.revision);
    writeU64(buf, at + 8, head.position);
    writeU64(buf, at + 16, head.lastSealedSegment + 1);
    writeUuid(head.lastEventId, buf, at + 24);
    at += 40;
  }
  if (active !== undefined) {
    buf.writeUInt32LE(active.index.length, at);
    active.index.copy(buf, at + 4);
  }
  buf.writeUInt32LE(crc32c(buf.subarray(8)), 4);
  return buf;
}

/** Decodes a checkpoint, or returns undefined when it is damaged (it is then rebuilt). */
export function decodeCheckpoint(file: string, buf: Buffer): HeadsCheckpoint | undefined {
  try {
    if (buf.length < HEADER_BYTES || buf.readUInt32LE(0) !== CHECKPOINT_MAGIC || buf.readUInt8(8) !== 1) return undefined;
    if (buf.readUInt32LE(4) !== crc32c(buf.subarray(8))) return undefined;
    const count = buf.readUInt32LE(12);
    const heads = new Map<string, SealedHead>();
    let at = HEADER_BYTES;
    for (let i = 0; i < count; i++) {
      const idBytes = buf.readUInt16LE(at);
      const id = buf.toString('utf8', at + 2, at + 2 + idBytes);
      at += 2 + idBytes;
      heads.set(id, { revision: readU64(buf, at), position: readU64(buf, at + 8), lastSealedSegment: readU64(buf, at + 16) - 1, lastEventId: readUuid(buf, at + 24) });
      at += 40;
    }
    const activeBase = readU64(buf, 24) - 1;
    let active: HeadsCheckpoint['active'];
    if (activeBase >= 0) {
      const length = buf.readUInt32LE(at);
      active = { basePosition: activeBase, end: readU64(buf, 32), index: StreamIndexFile.decode(file, buf.subarray(at + 4, at + 4 + length), activeBase) };
    }
    return { sealedEnd: readU64(buf, 16), heads, active };
  } catch {
    return undefined; // A damaged checkpoint is rebuilt from the segments.
  }
}
