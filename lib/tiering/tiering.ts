/**
 * Tiering: sealed segments uploaded to an object store in the background, their local data
 * evicted past a retention bound, and evicted data read back through a bounded cache.
 *
 * Uploading. Sealed segments are uploaded one at a time, in position order, from a queue fed
 * after each seal (never inside it) and, on open, with every sealed segment not yet recorded as
 * remote. For each segment: if a commit object already exists (a crash after committing, before
 * recording it here), it is checked against the local sidecar and adopted; one listing of the
 * commits at the first upload says which segments may have one, so the others are not looked up
 * one GET at a time (see mayHaveCommit). Otherwise every file is read, checked against the
 * sidecar's size and CRC-32C (a damaged local file is never uploaded) and hashed for its
 * Content-MD5 and request signature, in a worker thread (file-hasher.ts) and one segment
 * ahead: the next segment's files are ready when its turn comes. The segment's files are put at
 * once under a fresh attempt's keys; each upload is verified by the etag the server computed
 * (its MD5 of what it stored), else by reading it back and checking its CRC. Only once every
 * one of them is verified is the commit object written (a conditional put: never replaced) and
 * the commit recorded locally (remote-state.ts); the next segment's puts start after that. A
 * failure anywhere leaves the segment queued: it is retried with jittered exponential backoff,
 * and appends are not affected. Objects of a failed attempt are orphans that
 * {@link Tiering.scrub} removes.
 *
 * Eviction. After each commit (and on open), the data files (`.log`) of the oldest committed
 * segments are deleted while the local sealed data exceeds `localRetentionBytes`, or while it is
 * older than `localRetentionMs` (each eviction is recorded before its file is unlinked; the
 * unlink goes on beside the next upload). The small files (`.index`, `.streams`, `.sealed`)
 * stay. A reader that has the file open keeps reading it (POSIX unlink); later reads fetch byte
 * ranges through the block cache (block-cache.ts).
 *
 * Fencing. Each writer of a bucket prefix has an epoch, an object `writers/<epoch>` created with
 * a conditional put; the store keeps its own in `tiering/writer.json`. Before each commit the
 * writer checks that no higher epoch exists; if one does, it is fenced (appends fail with
 * FENCED). The commit's own conditional put closes most of the window between that check and
 * the write; where the object store ignores conditional writes, a writer that was superseded in
 * that window can still commit one segment.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ColdstreamError, CorruptFileError, FencedError, InvalidOptionsError, LocalDiskFullError, ObjectNotFoundError, ObjectStoreError, PreconditionFailedError, ReadOnlyError } from '../errors.js';
import { CATALOGUE_FILE, encodeCatalogue } from '../log/segment-catalogue.js';
import { listCommits, pullSegments } from './pull.js';
import type { Clock } from '../clock.js';
import * as files from '../log/files.js';
import { parseSegmentName, segmentFile, SUFFIX } from '../log/segment-files.js';
import type { SegmentLog } from '../log/segment-log.js';
import type { RemoteSegmentData } from '../log/segment.js';
import { matchesDigest, type FileDigest, type SegmentSidecar } from '../log/sidecar.js';
import { BlockCache, type CacheStats } from './block-cache.js';
import { FileHasher, type HashedFile } from './file-hasher.js';
import {
  commitKey,
  decodeCommit,
  encodeCommit,
  parseWriterKey,
  sameSegment,
  segmentFiles,
  segmentObjectKey,
  SEGMENTS_PREFIX,
  WRITERS_PREFIX,
  writerKey,
  COMMITS_PREFIX,
  parseCommitKey,
  type Commit,
} from './layout.js';
import { listAll, type ObjectStore } from './object-store.js';
import { RemoteState } from './remote-state.js';

/** The `tiering` option of `EventStore.open`. */
export interface TieringOptions {
  /** Where sealed segments go: an adapter from `coldstream/adapters/*`. */
  readonly objectStore: ObjectStore;
  /**
   * Sealed segment data kept locally; the oldest segments beyond it are evicted once verified
   * remote (the store then holds at most this plus one segment). Default 1 GiB; 0 evicts every
   * segment as soon as it is remote.
   */
  readonly localRetentionBytes?: number;
  /** Sealed data older than this (by its last event) is evicted once remote, whatever its size. Default: no age limit. */
  readonly localRetentionMs?: number;
  /** Memory for blocks of evicted segments read back (LRU by bytes). Default 64 MiB. */
  readonly cacheBytes?: number;
  /** How often a read-only replica looks for segments newly committed by the writer. Default 5 s. */
  readonly pollIntervalMs?: number;
  /** Delay before the first retry of a failed upload; it doubles (with jitter) up to 30 s. Default 100 ms. */
  readonly retryBaseMs?: number;
  /**
   * High watermark of local segment data (sealed data not yet evicted, plus segments not sealed
   * yet): while it is reached, appends fail with LOCAL_DISK_FULL instead of filling the disk
   * when uploads fall behind (object store down or slow). Must exceed `localRetentionBytes` plus
   * two segments (`segmentBytes`), so that a healthy store never reaches it. Default: no limit.
   */
  readonly maxLocalBytes?: number;
}

export const TIERING_DEFAULTS = Object.freeze({
  localRetentionBytes: 1024 * 1024 * 1024,
  cacheBytes: 64 * 1024 * 1024,
  pollIntervalMs: 5000,
  retryBaseMs: 100,
});

/** What {@link Tiering.status} reports. */
export interface TieringStatus {
  readonly enabled: boolean;
  /** The object store's description (kind, bucket, prefix; never credentials). */
  readonly objectStore: string | undefined;
  /** This writer's epoch on the prefix, once claimed. */
  readonly epoch: number | undefined;
  /** Sealed segments not yet verified remote. */
  readonly backlog: { readonly segments: number; readonly bytes: number };
  /** Segments committed remote. */
  readonly remoteSegments: number;
  /** Sealed segments whose data is on the local disk, and its bytes. */
  readonly local: { readonly segments: number; readonly bytes: number };
  /** Uploaded by this process since open. */
  readonly uploaded: { readonly segments: number; readonly bytes: number };
  readonly cache: CacheStats & { readonly hitRatio: number };
  /** The last error of an upload or eviction (cleared by the next success), with when it happened. */
  readonly lastError: { readonly message: string; readonly code: string; readonly at: Date } | undefined;
  readonly fenced: boolean;
}

/** `store.tiering`: the tiering layer as the application sees it. */
export interface TieringControl {
  /** Resolves once every segment sealed so far is verified remote and retention has run. */
  drain(): Promise<void>;
  status(): TieringStatus;
  /** Deletes orphan objects and reports committed segments whose objects are missing or the wrong size. */
  scrub(): Promise<ScrubReport>;
  /** Empties the cache of evicted segments' blocks. */
  clearCache(): void;
  /**
   * On a read-only replica: pulls the segments the writer committed since the last look (it
   * also polls every `pollIntervalMs`) and resolves with how many there were. On a writer: 0.
   */
  refresh(): Promise<number>;
}

export interface ScrubReport {
  readonly deleted: readonly string[];
  readonly damaged: readonly { readonly basePosition: number; readonly key: string; readonly reason: string }[];
}

/** `store.tiering` of a store opened without the `tiering` option. */
export const TIERING_OFF: TieringControl = Object.freeze({
  drain: () => Promise.resolve(),
  status: (): TieringStatus => ({
    enabled: false,
    objectStore: undefined,
    epoch: undefined,
    backlog: { segments: 0, bytes: 0 },
    remoteSegments: 0,
    local: { segments: 0, bytes: 0 },
    uploaded: { segments: 0, bytes: 0 },
    cache: { bytes: 0, maxBytes: 0, hits: 0, misses: 0, gets: 0, bytesFetched: 0, hitRatio: 0 },
    lastError: undefined,
    fenced: false,
  }),
  scrub: () => Promise.resolve({ deleted: [], damaged: [] }),
  clearCache: () => {},
  refresh: () => Promise.resolve(0),
});

const BACKOFF_MAX_MS = 30_000;
const WRITER_FILE = 'writer.json';

/** One file of a segment to upload: read, checked against the sidecar, hashed. */
interface PreparedFile {
  readonly suffix: string;
  readonly digest: FileDigest;
  readonly hashed: HashedFile;
}

export class Tiering implements TieringControl {
  private log!: SegmentLog;
  private readonly queue: number[] = [];
  private readonly queued = new Set<number>();
  /** Sealed segments with local data, oldest first: base → [data bytes, last timestamp]. */
  private readonly localData = new Map<number, { bytes: number; lastTimestamp: number }>();
  /** The sum of {@link localData}'s bytes. */
  private localDataBytes = 0;
  private epoch: number | undefined;
  private fencedBy: FencedError | undefined;
  private lastError: TieringStatus['lastError'];
  private uploaded = { segments: 0, bytes: 0 };
  private wake: (() => void) | undefined;
  private drainWaiters: { resolve(): void; reject(err: unknown): void }[] = [];
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private closed = false;
  private failures = 0;
  /** Reads and hashes the files to upload off the event loop. */
  private readonly hasher = new FileHasher();
  /** The next segment's files, read and hashed while the one before it uploads. */
  private prepared: { base: number; sidecar: SegmentSidecar; ready: Promise<PreparedFile[]> } | undefined;
  /** The commits listed at the first upload: those of segments `from` on. */
  private commitListing: { from: number; found: Set<number> } | undefined;
  /** Segments whose upload was tried in this process and has not committed yet. */
  private readonly attempted = new Set<number>();
  /** Evicted segments whose data file is being unlinked: the unlink's error, if it failed. */
  private readonly unlinking = new Map<number, Promise<Error | void>>();

  private constructor(
    private readonly dir: string,
    private readonly logDir: string,
    readonly options: Required<Omit<TieringOptions, 'localRetentionMs' | 'maxLocalBytes'>> & { localRetentionMs: number | undefined; maxLocalBytes: number | undefined },
    /** A replica: pulls what the writer commits, uploads nothing, writes nothing remote. */
    private readonly readOnly: boolean,
    private readonly state: RemoteState,
    private readonly cache: BlockCache,
    private readonly clock: Clock,
  ) {}

  /** Opens tiering's local state in `<storeDir>/tiering`. The log is attached by {@link start}. */
  static async open(storeDir: string, logDir: string, options: TieringOptions, clock: Clock, readOnly = false): Promise<Tiering> {
    if (await files.readFileIfExists(path.join(storeDir, RESTORING_FILE)) !== undefined) {
      throw new CorruptFileError(path.join(storeDir, RESTORING_FILE), 'a restore into this directory was interrupted: run EventStore.restore again');
    }
    const dir = path.join(storeDir, 'tiering');
    const { state } = await RemoteState.open(dir);
    const resolved = {
      objectStore: options.objectStore,
      localRetentionBytes: options.localRetentionBytes ?? TIERING_DEFAULTS.localRetentionBytes,
      localRetentionMs: options.localRetentionMs,
      cacheBytes: options.cacheBytes ?? TIERING_DEFAULTS.cacheBytes,
      pollIntervalMs: options.pollIntervalMs ?? TIERING_DEFAULTS.pollIntervalMs,
      retryBaseMs: options.retryBaseMs ?? TIERING_DEFAULTS.retryBaseMs,
      maxLocalBytes: options.maxLocalBytes,
    };
    const tiering = new Tiering(dir, logDir, resolved, readOnly, state, new BlockCache(options.objectStore, resolved.cacheBytes), clock);
    if (!readOnly) tiering.hasher.warmUp(); // It boots while the log opens, before the first upload needs it.
    return tiering;
  }

  private get store(): ObjectStore {
    return this.options.objectStore;
  }

  /**
   * Where the log reads a sealed segment whose data file is gone: the committed attempt's
   * `.log` object through the cache, or undefined when the segment is not remote.
   */
  remoteData(sidecar: SegmentSidecar): RemoteSegmentData | undefined {
    const attempt = this.state.committed.get(sidecar.basePosition);
    if (attempt === undefined) return undefined;
    return this.cache.reader(segmentObjectKey(sidecar.basePosition, attempt, SUFFIX.log), sidecar.data.bytes);
  }

  /**
   * The sidecar of the committed segment at `basePosition`, from its commit object: for the log's
   * recovery, where the local sidecar of an evicted segment is missing or damaged. Unless `gap`
   * says the segment must exist, only a segment recorded as committed is looked up. Undefined
   * when there is no commit (or it is damaged); an object store that cannot be reached throws.
   */
  async remoteSidecar(basePosition: number, gap: boolean): Promise<SegmentSidecar | undefined> {
    if (!gap && !this.state.committed.has(basePosition)) return undefined;
    const commit = await this.getCommit(basePosition);
    return commit === 'damaged' ? undefined : commit?.sidecar;
  }

  /**
   * Starts the background work on `log`: queues every sealed segment not yet remote, and claims
   * (or checks) this writer's epoch first thing in the loop.
   */
  start(log: SegmentLog, onPulled?: () => Promise<void>): void {
    this.log = log;
    this.onPulled = onPulled;
    if (this.readOnly) {
      this.running = this.poll();
      return;
    }
    for (const info of log.segmentInfos()) {
      if (!info.sealed) continue;
      if (!this.state.evicted.has(info.basePosition)) this.addLocal(info.basePosition, info.bytes, log.sidecarOf(info.basePosition).lastTimestamp);
      if (!this.state.committed.has(info.basePosition)) this.enqueue(info.basePosition);
    }
    this.prepareAt(0); // While the epoch is claimed.
    this.running = this.run();
  }

  /** Whether {@link resumeEvictions} has run in this process. */
  private evictionsResumed = false;

  /**
   * Resumes the evictions a crash cut between their record and their unlink (nothing else would
   * ever remove those data files): one listing of the log directory finds them, whatever the
   * number of evicted segments, and their unlinks join those under way ({@link finishUnlinks}).
   */
  private async resumeEvictions(): Promise<void> {
    for (const name of await files.readdir(this.logDir)) {
      const base = parseSegmentName(name, SUFFIX.log);
      if (base !== undefined && this.state.evicted.has(base) && !this.unlinking.has(base)) this.unlinkData(base);
    }
    this.evictionsResumed = true;
  }

  /** Queues a segment sealed since open (the log's afterSeal hook). */
  sealed(basePosition: number): void {
    if (this.running === undefined) return; // Sealed while the store opens: start() queues it.
    const sidecar = this.log.sidecarOf(basePosition);
    this.addLocal(basePosition, sidecar.data.bytes, sidecar.lastTimestamp);
    this.enqueue(basePosition);
  }

  private addLocal(basePosition: number, bytes: number, lastTimestamp: number): void {
    this.localDataBytes += bytes - (this.localData.get(basePosition)?.bytes ?? 0);
    this.localData.set(basePosition, { bytes, lastTimestamp });
  }

  /**
   * The error an append fails with while local segment data (sealed and not evicted, plus
   * `unsealedBytes` of the segments not sealed yet) is at `maxLocalBytes`; else undefined.
   */
  diskFull(unsealedBytes: number): LocalDiskFullError | undefined {
    const max = this.options.maxLocalBytes;
    if (max === undefined) return undefined;
    const local = this.localDataBytes + unsealedBytes;
    return local < max ? undefined : new LocalDiskFullError(local, max, this.lastError?.message);
  }

  private enqueue(basePosition: number): void {
    if (this.queued.has(basePosition)) return;
    this.queued.add(basePosition);
    this.queue.push(basePosition);
    this.wake?.();
  }

  /** The error appends fail with once this writer was superseded on its prefix, else undefined. */
  get fenced(): FencedError | undefined {
    return this.fencedBy;
  }

  /**
   * Resolves once every segment sealed so far (and every one rolled whose seal is under way) is
   * verified remote and retention has run. Rejects with FENCED when this writer is fenced.
   */
  async drain(): Promise<void> {
    if (this.readOnly) return;
    await this.log.sealsSettled();
    if (this.closed) throw new ObjectStoreError('drain', '', 'tiering is closed');
    if (this.fencedBy !== undefined) throw this.fencedBy;
    return new Promise((resolve, reject) => {
      this.drainWaiters.push({ resolve, reject });
      this.wake?.();
    });
  }

  status(): TieringStatus {
    let backlogBytes = 0;
    for (const base of this.queue) backlogBytes += this.localData.get(base)?.bytes ?? 0;
    const cache = this.cache.stats();
    const lookups = cache.hits + cache.misses;
    return {
      enabled: true,
      objectStore: this.store.description,
      epoch: this.epoch,
      backlog: { segments: this.queue.length, bytes: backlogBytes },
      remoteSegments: this.state.committed.size,
      local: { segments: this.localData.size, bytes: this.localBytes() },
      uploaded: { ...this.uploaded },
      cache: { ...cache, hitRatio: lookups === 0 ? 0 : cache.hits / lookups },
      lastError: this.lastError,
      fenced: this.fencedBy !== undefined,
    };
  }

  /** Empties the cache of evicted segments' blocks. */
  clearCache(): void {
    this.cache.clear();
  }

  // ------------------------------------------------------------------------------ replicas

  private onPulled: (() => Promise<void>) | undefined;
  private refreshing: Promise<number> = Promise.resolve(0);

  refresh(): Promise<number> {
    if (!this.readOnly) return Promise.resolve(0);
    const run = this.refreshing
      .catch(() => 0)
      .then(() => this.pullNew())
      .then(
        (pulled) => {
          this.lastError = undefined;
          return pulled;
        },
        (err: unknown) => {
          if (!this.closed) this.noteError(err);
          throw err;
        },
      );
    this.refreshing = run;
    return run;
  }

  private async pullNew(): Promise<number> {
    if (this.closed) return 0;
    const { commits } = await listCommits(this.store, this.log.nextPosition, this.abort.signal);
    if (commits.length === 0) return 0;
    await pullSegments(this.store, this.logDir, commits, this.abort.signal);
    await this.state.noteRestored(commits.map((c) => ({ base: c.sidecar.basePosition, attempt: c.attempt })));
    for (const commit of commits) await this.log.adoptSealed(commit.sidecar);
    await this.onPulled?.();
    return commits.length;
  }

  /** The replica's loop: a refresh every `pollIntervalMs` (the store's open makes the first). */
  private async poll(): Promise<void> {
    for (;;) {
      await this.sleep(this.options.pollIntervalMs);
      if (this.closed) return;
      await this.refresh().catch(() => {}); // Recorded in lastError; the next poll tries again.
    }
  }

  /** Records `err` as the last error that status() reports. */
  private noteError(err: unknown): void {
    const code = err instanceof ColdstreamError ? err.code : ((err as NodeJS.ErrnoException).code ?? 'ERROR');
    this.lastError = { message: err instanceof Error ? err.message : String(err), code, at: new Date() };
  }

  // ------------------------------------------------------------------------------ the loop

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        if (!this.evictionsResumed) await this.resumeEvictions();
        if (this.epoch === undefined) await this.claimEpoch();
        if (this.queue.length > 0) {
          const base = this.queue[0]!;
          await this.upload(base);
          this.queue.shift();
          this.queued.delete(base);
        }
        await this.applyRetention();
        this.failures = 0;
        this.lastError = undefined;
      } catch (err) {
        if (this.closed) break;
        this.noteError(err);
        if (err instanceof FencedError) {
          this.fencedBy = err;
          this.settleDrains(err);
          return;
        }
        this.failures++;
        const ms = Math.min(BACKOFF_MAX_MS, this.options.retryBaseMs * 2 ** Math.min(this.failures - 1, 20)) * (0.5 + Math.random() / 2);
        await this.sleep(ms);
        continue;
      }
      if (this.queue.length === 0) {
        this.settleDrains();
        await this.sleep(Infinity);
      }
    }
  }

  private settleDrains(err?: unknown): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) (err === undefined ? w.resolve() : w.reject(err));
  }

  /** Waits `ms`, or until woken (new work, a drain, close). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  // ---------------------------------------------------------------------------- uploading

  private async upload(base: number): Promise<void> {
    if (this.state.committed.has(base)) return;
    const sidecar = this.log.sidecarOf(base);
    const ready = this.takePrepared(base, sidecar);
    this.prepareAt(this.queue.indexOf(base) + 1);
    if (await this.mayHaveCommit(base)) {
      const existing = await this.readCommit(base);
      if (existing !== undefined) {
        this.adoptCommit(existing, sidecar);
        await this.state.noteCommitted(base, existing.attempt);
        this.attempted.delete(base);
        return;
      }
    }
    this.attempted.add(base);
    const attempt = randomBytes(8).toString('hex');
    // Every file at once; the commit waits for every one of them to be verified.
    const puts = await Promise.allSettled(
      (await ready).map(async ({ suffix, digest, hashed }) => {
        const key = segmentObjectKey(base, attempt, suffix);
        const put = await this.store.put(key, hashed.body, { md5: hashed.md5Base64, sha256: hashed.sha256Hex, signal: this.abort.signal });
        await this.verifyUpload(key, digest, hashed.md5Hex, put.etag);
        return hashed.body.length;
      }),
    );
    const failed = puts.find((p) => p.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const bytes = puts.reduce((sum, p) => sum + (p.status === 'fulfilled' ? p.value : 0), 0);
    const committed = await this.writeCommit(base, { formatVersion: 1, attempt, epoch: this.epoch!, sidecar });
    await this.state.noteCommitted(base, committed);
    this.attempted.delete(base);
    this.uploaded.segments++;
    this.uploaded.bytes += bytes;
  }

  /**
   * Whether a commit object may exist for `base` (a crash after committing, before recording it
   * here; or another writer's): then it is looked for before uploading. One listing of the
   * commits, at the first upload after open, answers for every segment from there on: a segment
   * it found no commit for can have one later only from an earlier try of ours in this process
   * (which {@link attempted} remembers) or from another writer, whose commit the conditional
   * write of ours finds (writeCommit), and adopts or is fenced by.
   */
  private async mayHaveCommit(base: number): Promise<boolean> {
    if (this.attempted.has(base)) return true;
    if (this.commitListing === undefined) {
      const found = new Set<number>();
      for await (const info of listAll(this.store, COMMITS_PREFIX, this.abort.signal, base === 0 ? undefined : commitKey(base - 1))) {
        const listed = parseCommitKey(info.key);
        if (listed !== undefined) found.add(listed);
      }
      this.commitListing = { from: base, found };
    }
    return base < this.commitListing.from || this.commitListing.found.has(base);
  }

  /** The files of `base` read, checked and hashed: prepared ahead of time, or now. */
  private takePrepared(base: number, sidecar: SegmentSidecar): Promise<PreparedFile[]> {
    const prepared = this.prepared;
    this.prepared = undefined;
    if (prepared !== undefined && prepared.base === base && sameSegment(prepared.sidecar, sidecar)) return prepared.ready;
    const ready = this.prepare(base, sidecar);
    ready.catch(() => {}); // Unused when a commit is found: no unhandled rejection then.
    return ready;
  }

  /** Starts reading and hashing the segment at `index` in the queue (the next one, while one uploads). */
  private prepareAt(index: number): void {
    const next = this.queue[index];
    if (next === undefined || this.state.committed.has(next)) return;
    const sidecar = this.log.sidecarOf(next);
    const ready = this.prepare(next, sidecar);
    ready.catch(() => {}); // Met again by its upload, which prepares it anew.
    this.prepared = { base: next, sidecar, ready };
  }

  /**
   * Reads every file of the segment and hashes it (MD5 and SHA-256, in a worker thread), and
   * checks it against the sidecar's size and CRC-32C: a damaged local file is never uploaded.
   */
  private prepare(base: number, sidecar: SegmentSidecar): Promise<PreparedFile[]> {
    return Promise.all(
      segmentFiles(sidecar).map(async ([suffix, digest]) => {
        const file = segmentFile(this.logDir, base, suffix);
        const hashed = await this.hasher.read(file);
        if (!matchesDigest(hashed.body, digest)) {
          throw new CorruptFileError(file, `its size or CRC-32C does not match the segment's sidecar: it is not uploaded (restore the file, or remove the segment's sidecar for it to be re-sealed)`);
        }
        return { suffix, digest, hashed };
      }),
    );
  }

  /** Checks that the object at `key` holds the bytes uploaded: by the server's MD5 etag, else by reading it back. */
  private async verifyUpload(key: string, digest: FileDigest, md5: string, etag: string | undefined): Promise<void> {
    if (etag === md5) return;
    const head = await this.store.head(key, { signal: this.abort.signal });
    if (head === undefined) throw new ObjectStoreError('verify', key, 'the object is missing right after its upload');
    if (head.size !== digest.bytes) throw new ObjectStoreError('verify', key, `the object holds ${head.size} bytes, not the ${digest.bytes} uploaded`);
    if (head.etag === md5) return;
    const back = await this.store.get(key, { signal: this.abort.signal });
    if (!matchesDigest(back, digest)) throw new ObjectStoreError('verify', key, 'the object read back does not match the CRC-32C of what was uploaded');
  }

  /**
   * The commit object of `base`, or undefined when there is none. A damaged one (cut short by an
   * interrupted PUT: servers such as s3rver keep the part that arrived) is accepted by no reader,
   * so it is deleted and reported as none.
   */
  private async readCommit(base: number): Promise<Commit | undefined> {
    const commit = await this.getCommit(base);
    if (commit !== 'damaged') return commit;
    await this.store.delete(commitKey(base), { signal: this.abort.signal });
    return undefined;
  }

  /** The commit object of `base`: undefined when there is none, 'damaged' when it does not decode. */
  private async getCommit(base: number): Promise<Commit | 'damaged' | undefined> {
    const key = commitKey(base);
    let bytes: Buffer;
    try {
      bytes = await this.store.get(key, { signal: this.abort.signal });
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return undefined;
      throw err;
    }
    try {
      return decodeCommit(key, bytes, base);
    } catch (err) {
      if (err instanceof CorruptFileError) return 'damaged';
      throw err;
    }
  }

  /**
   * Accepts a commit found in the object store if it describes the local segment; one that
   * describes other data was written by another writer of the prefix, which supersedes this one.
   */
  private adoptCommit(commit: Commit, sidecar: SegmentSidecar): void {
    if (!sameSegment(commit.sidecar, sidecar)) throw new FencedError(this.epoch ?? 0, commit.epoch);
  }

  /** Writes the commit object (never replacing one); returns the attempt committed. */
  private async writeCommit(base: number, commit: Commit): Promise<string> {
    const key = commitKey(base);
    // The fencing check, and where the store ignores conditional writes the look for a commit, at once.
    const [fence, found] = await Promise.allSettled([
      this.checkNotSuperseded(),
      this.store.conditionalWrites ? Promise.resolve(undefined) : this.store.head(key, { signal: this.abort.signal }),
    ]);
    if (fence.status === 'rejected') throw fence.reason;
    try {
      if (found.status === 'rejected') throw found.reason;
      if (found.value !== undefined) throw new PreconditionFailedError(key);
      await this.store.put(key, encodeCommit(commit), { ifNoneMatch: true, signal: this.abort.signal });
      return commit.attempt;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      // Committed already: by an earlier try of ours whose answer was lost, or by another writer.
      const existing = await this.readCommit(base);
      if (existing === undefined) throw err; // It was damaged, and is gone now: the next try writes it.
      this.adoptCommit(existing, commit.sidecar);
      return existing.attempt;
    }
  }

  // ------------------------------------------------------------------------------ fencing

  /** Reads this store's epoch, or claims the next one on the prefix; fenced when a newer one exists. */
  private async claimEpoch(): Promise<void> {
    const file = path.join(this.dir, WRITER_FILE);
    const local = await files.readFileIfExists(file);
    if (local === undefined) {
      this.epoch = await claimNextEpoch(this.store, this.dir, this.clock, this.abort.signal);
      return;
    }
    const { epoch } = JSON.parse(local.toString('utf8')) as { epoch: number };
    const newest = await newestEpoch(this.store, this.abort.signal);
    if (newest !== undefined && newest > epoch) throw new FencedError(epoch, newest);
    this.epoch = epoch;
  }

  private async checkNotSuperseded(): Promise<void> {
    const epoch = this.epoch!;
    if ((await this.store.head(writerKey(epoch + 1), { signal: this.abort.signal })) !== undefined) {
      throw new FencedError(epoch, (await newestEpoch(this.store, this.abort.signal)) ?? epoch + 1);
    }
  }

  // ------------------------------------------------------------------------------ retention

  /** Bytes of sealed segment data on the local disk. */
  private localBytes(): number {
    return this.localDataBytes;
  }

  /**
   * Evicts the oldest committed segments' data beyond the retention bounds. Each eviction is
   * recorded (durably) before its file is unlinked; the unlink itself (milliseconds for a large
   * file) goes on beside the next upload, and is awaited by the next pass, or by this one when
   * no upload follows (a drain resolves after it).
   */
  private async applyRetention(): Promise<void> {
    await this.finishUnlinks();
    const now = this.clock.now();
    let localBytes = this.localBytes();
    // Oldest first: Map iteration is insertion order, and segments are added in position order.
    for (const [base, { bytes, lastTimestamp }] of this.localData) {
      const tooOld = this.options.localRetentionMs !== undefined && now - lastTimestamp > this.options.localRetentionMs;
      if (localBytes <= this.options.localRetentionBytes && !tooOld) break;
      if (!this.state.committed.has(base)) break; // Never past a segment that is not remote yet.
      await this.state.noteEvicted(base);
      this.unlinkData(base);
      this.localData.delete(base);
      this.localDataBytes -= bytes;
      localBytes -= bytes;
    }
    if (this.queue.length === 0) await this.finishUnlinks();
  }

  /** Starts removing the data file of `base`, whose eviction is recorded; the log reads it remotely from now on. */
  private unlinkData(base: number): void {
    this.unlinking.set(base, files.unlinkIfExists(segmentFile(this.logDir, base, SUFFIX.log)).catch((err: unknown) => err as Error));
    this.log.dataEvicted(base);
  }

  /** Waits for the unlinks of evicted data under way; one that failed is tried again, and throws if it fails again. */
  private async finishUnlinks(): Promise<void> {
    for (const [base, unlinked] of this.unlinking) {
      if ((await unlinked) !== undefined) await files.unlinkIfExists(segmentFile(this.logDir, base, SUFFIX.log));
      this.unlinking.delete(base);
    }
  }

  // ------------------------------------------------------------------------------ scrub

  /**
   * Checks the object store against the commits. Deletes orphans: objects of an attempt at a
   * segment whose commit names another attempt (a commit is never replaced, so nothing can ever
   * reference them). Reports committed segments whose objects are missing or not the size their
   * sidecar records. Objects of a segment with no commit are left alone: they may be an upload
   * in progress, and become orphans for the next scrub once that segment commits. A read-only
   * replica writes nothing to the object store: there it throws READ_ONLY.
   */
  async scrub(): Promise<ScrubReport> {
    if (this.readOnly) throw new ReadOnlyError('scrub the object store');
    const { signal } = this.abort;
    const committed = new Set<number>();
    /** The objects the commits reference, with the size each must have. */
    const referenced = new Map<string, { basePosition: number; bytes: number }>();
    for await (const info of listAll(this.store, COMMITS_PREFIX, signal)) {
      const base = parseCommitKey(info.key);
      if (base === undefined) continue;
      const commit = decodeCommit(info.key, await this.store.get(info.key, { signal }), base);
      committed.add(base);
      for (const [suffix, digest] of segmentFiles(commit.sidecar)) referenced.set(segmentObjectKey(base, commit.attempt, suffix), { basePosition: base, bytes: digest.bytes });
    }
    const deleted: string[] = [];
    const intact = new Set<string>();
    for await (const info of listAll(this.store, SEGMENTS_PREFIX, signal)) {
      const wanted = referenced.get(info.key);
      if (wanted !== undefined) {
        if (info.size === wanted.bytes) intact.add(info.key);
      } else if (committed.has(Number(info.key.slice(SEGMENTS_PREFIX.length).split('/')[0]))) {
        await this.store.delete(info.key, { signal });
        deleted.push(info.key);
      }
    }
    const damaged = [...referenced]
      .filter(([key]) => !intact.has(key))
      .map(([key, { basePosition }]) => ({ basePosition, key, reason: 'missing, or not the size its sidecar records' }));
    return { deleted, damaged };
  }

  /** Stops the background work (an upload in flight is aborted and redone on the next open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort(new Error('the store is closing'));
    this.wake?.();
    await this.running;
    await this.finishUnlinks().catch(() => {}); // A file left is removed by the next open (resumeEvictions).
    this.prepared = undefined;
    await this.hasher.close();
    this.settleDrains(new ObjectStoreError('drain', '', 'the store closed before tiering drained'));
    await this.state.close();
  }
}

/** The highest writer epoch on the prefix, or undefined when no writer ever claimed one. */
async function newestEpoch(store: ObjectStore, signal?: AbortSignal): Promise<number | undefined> {
  let newest: number | undefined;
  for await (const info of listAll(store, WRITERS_PREFIX, signal)) {
    const epoch = parseWriterKey(info.key);
    if (epoch !== undefined && (newest === undefined || epoch > newest)) newest = epoch;
  }
  return newest;
}

/**
 * Claims the next writer epoch on the prefix (a conditional put of `writers/<epoch>`) and
 * records it in `<tieringDir>/writer.json`; from then on, older writers are fenced at their
 * next commit.
 */
async function claimNextEpoch(store: ObjectStore, tieringDir: string, clock: Clock, signal?: AbortSignal): Promise<number> {
  for (let epoch = ((await newestEpoch(store, signal)) ?? 0) + 1; ; epoch++) {
    try {
      if (!store.conditionalWrites && (await store.head(writerKey(epoch), { signal })) !== undefined) continue;
      await store.put(writerKey(epoch), Buffer.from(JSON.stringify({ epoch, at: new Date(clock.now()).toISOString() })), { ifNoneMatch: true, signal });
    } catch (err) {
      if (err instanceof PreconditionFailedError) continue;
      throw err;
    }
    await fs.promises.mkdir(tieringDir, { recursive: true });
    await files.writeFileAtomic(path.join(tieringDir, WRITER_FILE), JSON.stringify({ epoch }));
    return epoch;
  }
}

/** Present while a restore is under way: a directory with it is not a store yet. */
export const RESTORING_FILE = 'RESTORING';

/**
 * Fills the empty store directory `storeDir` from the object store alone: claims a new writer
 * epoch (older writers are fenced at their next commit), then pulls every committed segment's
 * sidecar, offset index and attachments (no data), writes the segment catalogue and tiering's
 * state (every segment remote, none local). `EventStore.open` then opens it as any store.
 */
export async function restoreInto(storeDir: string, logDir: string, options: TieringOptions, clock: Clock): Promise<{ segments: number; bytesFetched: number }> {
  const entries = await fs.promises.readdir(storeDir).catch(() => [] as string[]);
  if (entries.includes(RESTORING_FILE)) {
    // An interrupted restore: start again from nothing.
    for (const entry of entries) if (entry !== RESTORING_FILE) await fs.promises.rm(path.join(storeDir, entry), { recursive: true, force: true });
  } else if (entries.length > 0) {
    throw new InvalidOptionsError([{ path: 'options.dir', constraint: 'isEmpty', message: `must be an empty directory to restore into (${storeDir} holds ${entries.length} entries)` }]);
  }
  await fs.promises.mkdir(storeDir, { recursive: true });
  await files.writeFileAtomic(path.join(storeDir, RESTORING_FILE), 'restore under way\n');
  const store = options.objectStore;
  const tieringDir = path.join(storeDir, 'tiering');
  await claimNextEpoch(store, tieringDir, clock);
  const { commits, bytesFetched: listed } = await listCommits(store, 0);
  const pulled = await pullSegments(store, logDir, commits);
  await files.writeFileAtomic(path.join(logDir, CATALOGUE_FILE), encodeCatalogue(commits.map((c) => c.sidecar)));
  const { state } = await RemoteState.open(tieringDir);
  await state.noteRestored(commits.map((c) => ({ base: c.sidecar.basePosition, attempt: c.attempt })));
  await state.close();
  await fs.promises.unlink(path.join(storeDir, RESTORING_FILE));
  await files.fsyncDir(storeDir);
  return { segments: commits.length, bytesFetched: listed + pulled };
}
