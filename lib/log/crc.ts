/**
 * CRC-32C (Castagnoli), the checksum of every record batch, sidecar, index file and catalogue
 * record.
 *
 * Computed by `@node-rs/crc32`, which uses the SSE 4.2 / ARMv8 CRC instructions (tens of GB/s),
 * instead of a table-driven JavaScript loop (hundreds of MB/s). The one exception is
 * {@link crc32cOfRange}, for many small ranges of one buffer (the records of the segment
 * catalogue): there the native call's fixed cost (a Buffer view to create, a call into the addon)
 * is larger than the table loop over ~100 bytes, most of all in a process that just started,
 * before the JIT has compiled either.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC-32C of `bytes`, continuing from `previous` when a running checksum is being extended. */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  return nativeCrc32c(bytes as Buffer, previous) >>> 0;
}

/** The reflected CRC-32C table: the CRC of each byte value. */
const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f6_3b78 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}

/**
 * CRC-32C of `bytes[start, end)`, the same value as `crc32c(bytes.subarray(start, end))`, without
 * creating the view or calling the addon. For small ranges only (it runs at hundreds of MB/s).
 */
export function crc32cOfRange(bytes: Uint8Array, start: number, end: number): number {
  let c = -1;
  for (let i = start; i < end; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
