/**
 * Unsigned 64-bit fields holding JavaScript numbers.
 *
 * Positions, revisions and timestamps are stored as u64 on disk, so the format never needs to
 * change, but are JavaScript numbers in memory: exact up to 2^53 − 1 (9·10^15), far more events
 * than one log will ever hold. Writing a larger or fractional value is a bug and asserts.
 */
import assert from 'node:assert/strict';

const TWO_32 = 0x1_0000_0000;

export function writeU64(buf: Buffer, byteOffset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `u64 field out of range: ${value}`);
  buf.writeUInt32LE(value % TWO_32, byteOffset);
  buf.writeUInt32LE(Math.floor(value / TWO_32), byteOffset + 4);
}

/** Reads a u64 field; returns NaN when it does not fit a safe integer (only damaged data does). */
export function readU64(buf: Buffer, byteOffset: number): number {
  const low = buf.readUInt32LE(byteOffset);
  const high = buf.readUInt32LE(byteOffset + 4);
  if (high > 0x1f_ffff) return Number.NaN;
  return high * TWO_32 + low;
}
