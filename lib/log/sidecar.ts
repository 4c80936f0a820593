/**
 * The sidecar of a sealed segment: `<base>.sealed`, a small JSON document written atomically
 * (temp file, fsync, rename, fsync directory) as the last step of sealing. Its presence is what
 * makes a segment sealed: immutable, its index final, ready to be tiered.
 *
 * It records the first and last position and timestamp, the byte size and CRC-32C of the data
 * file and of every companion file (the offset index, and attachments the layer above writes at
 * seal time, such as the event store's stream index), so that a copy of the segment anywhere
 * (another disk, an object store) can be verified without trusting anything else. The document
 * carries a CRC of its own body; one that fails it is treated as missing and the segment is
 * sealed again from its data.
 */
import { CorruptFileError } from '../errors.js';
import { crc32c } from './crc.js';
import * as files from './files.js';

export interface FileDigest {
  readonly bytes: number;
  readonly crc32c: number;
}

export interface SegmentSidecar {
  readonly formatVersion: 1;
  readonly basePosition: number;
  /** Position of the last record; the segment holds `lastPosition − basePosition + 1` records. */
  readonly lastPosition: number;
  readonly firstTimestamp: number;
  readonly lastTimestamp: number;
  /** The `.log` file. */
  readonly data: FileDigest;
  /** The `.index` file. */
  readonly index: FileDigest;
  /** Companion files by suffix (e.g. `.streams`), written by the layer above before sealing. */
  readonly attachments: Readonly<Record<string, FileDigest>>;
}

const DIGEST_CHUNK_BYTES = 1 << 20;

/** True when `bytes` are what `digest` describes: the same size and CRC-32C. */
export function matchesDigest(bytes: Buffer, digest: FileDigest): boolean {
  return bytes.length === digest.bytes && crc32c(bytes) === digest.crc32c;
}

/** Size and CRC-32C of the first `bytes` bytes of the open file `fd`, read in 1 MiB chunks. */
export async function digestOpenFile(fd: number, bytes: number): Promise<FileDigest> {
  let crc = 0;
  for (let at = 0; at < bytes; at += DIGEST_CHUNK_BYTES) {
    crc = crc32c(await files.readAt(fd, Math.min(DIGEST_CHUNK_BYTES, bytes - at), at), crc);
  }
  return { bytes, crc32c: crc };
}

/** Size and CRC-32C of a whole file. */
export async function digestFile(file: string): Promise<FileDigest> {
  const fd = await files.open(file, 'r');
  try {
    return await digestOpenFile(fd, await files.fstatSize(fd));
  } finally {
    await files.close(fd);
  }
}

export function encodeSidecar(sidecar: SegmentSidecar): string {
  return encodeCheckedJson(sidecar);
}

/** Parses a sidecar; throws CorruptFileError when it is damaged. */
export function decodeSidecar(file: string, text: Buffer): SegmentSidecar {
  const sidecar = decodeCheckedJson<SegmentSidecar>(file, text, 'sidecar');
  if (sidecar.formatVersion !== 1) throw new CorruptFileError(file, `unknown sidecar version ${String(sidecar.formatVersion)}`);
  return sidecar;
}

/**
 * A JSON document that carries a CRC-32C of its own body: `{"crc32c":…,"body":"<JSON>"}` and a
 * newline. Sidecars and tiering's commit objects are written so.
 */
export function encodeCheckedJson(value: unknown): string {
  const body = JSON.stringify(value);
  return JSON.stringify({ crc32c: crc32c(Buffer.from(body)), body }) + '\n';
}

/** Parses {@link encodeCheckedJson}'s output; throws CorruptFileError naming `what` when it is damaged. */
export function decodeCheckedJson<T>(file: string, text: Buffer, what: string): T {
  let envelope: { crc32c?: unknown; body?: unknown };
  try {
    envelope = JSON.parse(text.toString('utf8')) as typeof envelope;
  } catch (err) {
    throw new CorruptFileError(file, `${what} is not JSON`, { cause: err });
  }
  if (typeof envelope.body !== 'string' || crc32c(Buffer.from(envelope.body)) !== envelope.crc32c) {
    throw new CorruptFileError(file, `${what} CRC mismatch`);
  }
  return JSON.parse(envelope.body) as T;
}
