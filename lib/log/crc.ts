/**
 * CRC-32C (Castagnoli), the checksum of every record batch, sidecar and index file.
 *
 * Computed by `@node-rs/crc32`, which uses the SSE 4.2 / ARMv8 CRC instructions (tens of GB/s),
 * instead of a table-driven JavaScript loop (hundreds of MB/s).
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC-32C of `bytes`, continuing from `previous` when a running checksum is being extended. */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  return nativeCrc32c(bytes as Buffer, previous) >>> 0;
}
