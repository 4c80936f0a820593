/**
 * Pulling committed segments from the object store into a local log directory, without their
 * data: what a restore (an empty directory, from the bucket alone) and a read-only replica (new
 * segments as the writer commits them) need. For each commit after the local end, the segment's
 * small files are fetched and checked against the commit's sidecar: the offset index and the
 * attachments (the stream index's `.streams`), then the sidecar itself is written. The `.log`
 * data stays remote and is read through the cache like any evicted segment's.
 */
import fs from 'node:fs';
import { CorruptFileError } from '../errors.js';
import * as files from '../log/files.js';
import { segmentFile, SUFFIX } from '../log/segment-files.js';
import { encodeSidecar, matchesDigest, type SegmentSidecar } from '../log/sidecar.js';
import { COMMITS_PREFIX, commitKey, decodeCommit, parseCommitKey, segmentFiles, segmentObjectKey, type Commit } from './layout.js';
import { listAll, type ObjectStore } from './object-store.js';

/** Files fetched at once. */
const PULL_CONCURRENCY = 8;

export interface Pulled {
  /** The commits pulled, in position order, each continuing the one before. */
  readonly commits: readonly Commit[];
  readonly bytesFetched: number;
}

/**
 * The commits of segments starting at or after `from`, in order and chained (a commit that does
 * not continue the previous one stops the list: a writer is still committing before it).
 */
export async function listCommits(store: ObjectStore, from: number, signal?: AbortSignal): Promise<{ commits: Commit[]; bytesFetched: number }> {
  const bases: number[] = [];
  // Keys sort in position order: list from just after the last commit before `from`.
  for await (const info of listAll(store, COMMITS_PREFIX, signal, from === 0 ? undefined : commitKey(from - 1))) {
    const base = parseCommitKey(info.key);
    if (base !== undefined && base >= from) bases.push(base);
  }
  const commits: Commit[] = [];
  let bytesFetched = 0;
  let next = from;
  const fetched = await files.mapBounded(bases, PULL_CONCURRENCY, async (base) => {
    const bytes = await store.get(commitKey(base), { signal });
    bytesFetched += bytes.length;
    try {
      return decodeCommit(commitKey(base), bytes, base);
    } catch (err) {
      if (err instanceof CorruptFileError) return undefined; // Being rewritten by its writer after an interrupted PUT.
      throw err;
    }
  });
  for (const commit of fetched) {
    if (commit === undefined || commit.sidecar.basePosition !== next) break;
    commits.push(commit);
    next = commit.sidecar.lastPosition + 1;
  }
  return { commits, bytesFetched };
}

/**
 * Fetches the small files of each commit's segment into `logDir` (checked against its sidecar)
 * and writes its sidecar. The caller catalogues them.
 */
export async function pullSegments(store: ObjectStore, logDir: string, commits: readonly Commit[], signal?: AbortSignal): Promise<number> {
  let bytesFetched = 0;
  await fs.promises.mkdir(logDir, { recursive: true });
  const work = commits.flatMap((commit) => segmentFiles(commit.sidecar).filter(([suffix]) => suffix !== SUFFIX.log).map(([suffix, digest]) => ({ commit, suffix, digest })));
  await files.mapBounded(work, PULL_CONCURRENCY, async ({ commit, suffix, digest }) => {
    const base = commit.sidecar.basePosition;
    const key = segmentObjectKey(base, commit.attempt, suffix);
    const bytes = await store.get(key, { signal });
    bytesFetched += bytes.length;
    if (!matchesDigest(bytes, digest)) {
      throw new CorruptFileError(key, `the object does not match its commit's sidecar (${bytes.length} bytes, ${digest.bytes} expected, or a CRC-32C mismatch): run a scrub on the writer`);
    }
    await files.writeFileDurable(segmentFile(logDir, base, suffix), bytes);
  });
  for (const commit of commits) await writeSidecar(logDir, commit.sidecar);
  await files.fsyncDir(logDir);
  return bytesFetched;
}

async function writeSidecar(logDir: string, sidecar: SegmentSidecar): Promise<void> {
  await files.writeFileDurable(segmentFile(logDir, sidecar.basePosition, SUFFIX.sealed), Buffer.from(encodeSidecar(sidecar)));
}
