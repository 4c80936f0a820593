/**
 * Where a store's segments live in the object store, under the adapter's prefix:
 *
 * - `segments/<name>/<attempt>/<name>.log`, `.index`, and one object per attachment
 *   (`.streams`): a segment's files as one upload attempt wrote them. `<name>` is the segment's
 *   20-digit base position; `<attempt>` is random per attempt, so a retried or repeated upload
 *   writes new keys and never overwrites an object that a commit references.
 * - `commits/<name>`: the commit object, written last and only once (a conditional put), after
 *   every object of the attempt it names was verified. It holds the segment's sidecar (sizes
 *   and CRC-32Cs of every file), so a restore or a replica needs nothing else to know the
 *   segment and to verify what it fetches. Keys sort in position order.
 * - `writers/<epoch>`: one object per writer that ever opened the prefix (see fencing in
 *   tiering.ts); the highest epoch is the current writer.
 *
 * Anything under `segments/` that no commit names is an orphan of an interrupted attempt, which
 * a scrub deletes.
 */
import { CorruptFileError } from '../errors.js';
import { segmentName, SUFFIX } from '../log/segment-files.js';
import { decodeCheckedJson, encodeCheckedJson, type SegmentSidecar } from '../log/sidecar.js';

export const COMMITS_PREFIX = 'commits/';
export const SEGMENTS_PREFIX = 'segments/';
export const WRITERS_PREFIX = 'writers/';
const EPOCH_DIGITS = 12;

/** What a commit object says: this segment's files are the ones of `attempt`, verified. */
export interface Commit {
  readonly formatVersion: 1;
  readonly attempt: string;
  /** The writer's epoch that committed it. */
  readonly epoch: number;
  readonly sidecar: SegmentSidecar;
}

export function commitKey(basePosition: number): string {
  return COMMITS_PREFIX + segmentName(basePosition);
}

/** The base position a commit key stands for, or undefined for another key. */
export function parseCommitKey(key: string): number | undefined {
  const name = key.slice(COMMITS_PREFIX.length);
  if (!key.startsWith(COMMITS_PREFIX) || !/^\d{20}$/.test(name)) return undefined;
  const base = Number(name);
  return Number.isSafeInteger(base) ? base : undefined;
}

/** The key of one file (`.log`, `.index` or an attachment's suffix) of an upload attempt. */
export function segmentObjectKey(basePosition: number, attempt: string, suffix: string): string {
  const name = segmentName(basePosition);
  return `${SEGMENTS_PREFIX}${name}/${attempt}/${name}${suffix}`;
}

/** The prefix of every object of every attempt at one segment. */
export function segmentObjectsPrefix(basePosition: number): string {
  return `${SEGMENTS_PREFIX}${segmentName(basePosition)}/`;
}

/** The files of a sealed segment, by suffix, with the digest each must match. */
export function segmentFiles(sidecar: SegmentSidecar): [suffix: string, digest: { bytes: number; crc32c: number }][] {
  return [[SUFFIX.log, sidecar.data], [SUFFIX.index, sidecar.index], ...Object.entries(sidecar.attachments)];
}

export function writerKey(epoch: number): string {
  return WRITERS_PREFIX + String(epoch).padStart(EPOCH_DIGITS, '0');
}

export function parseWriterKey(key: string): number | undefined {
  const digits = key.slice(WRITERS_PREFIX.length);
  if (!key.startsWith(WRITERS_PREFIX) || !/^\d+$/.test(digits)) return undefined;
  return Number(digits);
}

export function encodeCommit(commit: Commit): Buffer {
  return Buffer.from(encodeCheckedJson(commit));
}

/** Parses a commit object; throws CorruptFileError when it is damaged or for another segment. */
export function decodeCommit(key: string, bytes: Buffer, basePosition?: number): Commit {
  const commit = decodeCheckedJson<Commit>(key, bytes, 'commit object');
  if (commit.formatVersion !== 1) throw new CorruptFileError(key, `unknown commit format ${String(commit.formatVersion)}`);
  if (basePosition !== undefined && commit.sidecar?.basePosition !== basePosition) {
    throw new CorruptFileError(key, `the commit describes segment ${commit.sidecar?.basePosition}, not ${basePosition}`);
  }
  return commit;
}

/** True when two sidecars describe the same segment content (every file's size and CRC). */
export function sameSegment(a: SegmentSidecar, b: SegmentSidecar): boolean {
  const fa = segmentFiles(a);
  const fb = segmentFiles(b);
  return (
    a.basePosition === b.basePosition &&
    a.lastPosition === b.lastPosition &&
    fa.length === fb.length &&
    fa.every(([suffix, digest], i) => fb[i]![0] === suffix && fb[i]![1].bytes === digest.bytes && fb[i]![1].crc32c === digest.crc32c)
  );
}
