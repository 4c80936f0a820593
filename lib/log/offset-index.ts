/**
 * Sparse offset index of one segment: relative position → byte offset of the batch that starts
 * there, one entry every `indexIntervalBytes` of data or so.
 *
 * File layout: a flat array of 8-byte entries, little-endian, no header:
 *
 * | offset | size | field            | meaning                                        |
 * |-------:|-----:|------------------|------------------------------------------------|
 * |      0 |    4 | relativePosition | batch base position − segment base position     |
 * |      4 |    4 | byteOffset       | where that batch starts in the `.log` file      |
 *
 * Entries strictly increase in both fields. The implicit first entry (0, 0) is not stored.
 *
 * Crash behaviour: the active segment's index is appended (not fsynced) after the data it points
 * at is written and synced, so a crash can leave it short or with a torn last entry, never
 * pointing at data that was not written. Recovery truncates it to whole, increasing entries that
 * point inside the data and checks the last one against the data. A sealed segment's index is
 * rewritten whole and fsynced at seal time, and its CRC is kept in the sidecar; one that fails
 * its CRC is rebuilt from the data.
 */
export const INDEX_ENTRY_BYTES = 8;

export interface IndexEntry {
  readonly relativePosition: number;
  readonly byteOffset: number;
}

const FIRST: IndexEntry = { relativePosition: 0, byteOffset: 0 };

export class OffsetIndex {
  private readonly relativePositions: number[] = [];
  private readonly byteOffsets: number[] = [];
  /** How many entries the index file already holds (for incremental appends). */
  persistedCount = 0;

  get length(): number {
    return this.relativePositions.length;
  }

  /** Byte offset of the last entry, or 0. */
  get lastByteOffset(): number {
    return this.byteOffsets.length === 0 ? 0 : this.byteOffsets[this.byteOffsets.length - 1]!;
  }

  add(relativePosition: number, byteOffset: number): void {
    this.relativePositions.push(relativePosition);
    this.byteOffsets.push(byteOffset);
  }

  at(i: number): IndexEntry {
    return i < 0 ? FIRST : { relativePosition: this.relativePositions[i]!, byteOffset: this.byteOffsets[i]! };
  }

  /** Index (−1 for the implicit first entry) of the last entry at or before `relativePosition`. */
  floorIndex(relativePosition: number): number {
    let lo = 0;
    let hi = this.relativePositions.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.relativePositions[mid]! <= relativePosition) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  floor(relativePosition: number): IndexEntry {
    return this.at(this.floorIndex(relativePosition));
  }

  /**
   * Byte offset of the first entry after `byteOffset`, or undefined. A batch starting at
   * `byteOffset` ends at or before it (entries sit at batch starts), which sizes a read.
   */
  nextByteOffsetAfter(byteOffset: number): number | undefined {
    let lo = 0;
    let hi = this.byteOffsets.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.byteOffsets[mid]! <= byteOffset) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.byteOffsets.length ? this.byteOffsets[lo] : undefined;
  }

  /** Drops entries from `count` on (used when recovery truncates the data). */
  truncate(count: number): void {
    this.relativePositions.length = count;
    this.byteOffsets.length = count;
    this.persistedCount = Math.min(this.persistedCount, count);
  }

  /** Entries from `from` on, encoded for the file. */
  encode(from = 0): Buffer {
    const buf = Buffer.allocUnsafe((this.length - from) * INDEX_ENTRY_BYTES);
    for (let i = from; i < this.length; i++) {
      buf.writeUInt32LE(this.relativePositions[i]!, (i - from) * INDEX_ENTRY_BYTES);
      buf.writeUInt32LE(this.byteOffsets[i]!, (i - from) * INDEX_ENTRY_BYTES + 4);
    }
    return buf;
  }

  /**
   * Decodes an index file, keeping the longest prefix of whole entries that strictly increase
   * and point before `dataBytes`. `intact` is false when anything was dropped.
   */
  static decode(buf: Buffer, dataBytes: number): { index: OffsetIndex; intact: boolean } {
    const index = new OffsetIndex();
    const whole = Math.floor(buf.length / INDEX_ENTRY_BYTES);
    let previous = FIRST;
    for (let i = 0; i < whole; i++) {
      const relativePosition = buf.readUInt32LE(i * INDEX_ENTRY_BYTES);
      const byteOffset = buf.readUInt32LE(i * INDEX_ENTRY_BYTES + 4);
      if (relativePosition <= previous.relativePosition || byteOffset <= previous.byteOffset || byteOffset >= dataBytes) {
        index.persistedCount = index.length;
        return { index, intact: false };
      }
      index.add(relativePosition, byteOffset);
      previous = { relativePosition, byteOffset };
    }
    index.persistedCount = index.length;
    return { index, intact: whole * INDEX_ENTRY_BYTES === buf.length };
  }
}
