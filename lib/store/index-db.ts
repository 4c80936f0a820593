/**
 * The persistent part of the stream index: an LMDB environment (`index.lmdb` in the store
 * directory) mapping each stream to its head and to where its events are in the log.
 *
 * Why LMDB: a B-tree read through a memory map answers a lookup synchronously in about 2 µs,
 * without a byte per stream in the JS heap, and opens in about a millisecond whatever its size;
 * writes are batched into transactions committed on LMDB's own thread. The append path needs a
 * synchronous head lookup (checks and placement happen before the first `await`), which an
 * asynchronous engine could not give.
 *
 * It is derived data: everything in it can be rebuilt from the segments (their `.streams`
 * files, or their records), and only events already durable in the log are ever written to it.
 * A missing, stale or unreadable environment is rebuilt on open.
 *
 * Databases and value layouts (little-endian; keys are lmdb-js `ordered-binary`). A stream's
 * head and its chunks share one database, `streams`, under adjacent keys (`[streamId]` sorts
 * just before `[streamId, 0]`): creating a stream dirties one B-tree leaf, not one in each of
 * two trees, which with random stream ids measured 1.5× the insert rate of separate databases.
 *
 * `streams`, key `[streamId]` → 32 bytes, the stream's last indexed event
 * | offset | size | field       |
 * |-------:|-----:|-------------|
 * |      0 |    8 | revision    |
 * |      8 |    8 | position    |
 * |     16 |   16 | lastEventId |
 *
 * `streams`, key `[streamId, firstRevision]` (a chunk) → the positions of up to {@link CHUNK_MAX_EVENTS}
 * consecutive revisions of the stream, all in one segment
 * | offset | size | field                                          |
 * |-------:|-----:|------------------------------------------------|
 * |      0 |    8 | segmentBase                                    |
 * |  8 + 8i |    4 | relativePosition of event i (− segmentBase)    |
 * | 12 + 8i |    4 | byte offset of event i's batch in the segment  |
 *
 * Chunks of a stream may overlap after a crash (a flush whose transaction was not the last to
 * reach the disk is redone from the log with other boundaries); each chunk is still right about
 * the revisions it holds, and readers look up the chunk holding a revision, never the next key.
 *
 * `meta`: key `'state'` → 16 bytes: u32 format version ({@link INDEX_FORMAT}), u32 reserved,
 * u64 indexedEnd: every event below this position is in `streams`. Written after the
 * entries of each flush, in the same or a later transaction (lmdb-js commits single writes in
 * the order they were issued), so it never claims more than the transactions before it hold.
 */
import fs from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { CorruptFileError } from '../errors.js';
import { readU64, writeU64 } from '../log/u64.js';
import type { StreamPart } from './stream-part.js';
import { readUuid, writeUuid } from './uuid.js';

export const INDEX_FORMAT = 2;
export const CHUNK_MAX_EVENTS = 1024;
const HEAD_BYTES = 32;
const STATE_KEY = 'state';
/** Streams written between two waits for a commit in one {@link IndexDb.write}. */
const WRITE_BATCH_STREAMS = 16_384;

/** A stream's last event, as the index records it. */
export interface IndexHead {
  readonly revision: number;
  readonly position: number;
  readonly lastEventId: string;
}

/** Events of one stream to write: consecutive revisions from `firstRevision`. */
export interface IndexRun {
  readonly firstRevision: number;
  readonly count: number;
  readonly lastEventId: string;
  positionAt(i: number): number;
  batchOffsetAt(i: number): number;
  segmentBaseAt(i: number): number;
}

export class IndexDb {
  private constructor(
    /** The environment's file, named in errors. */
    readonly file: string,
    private readonly env: RootDatabase,
    private readonly streams: Database<Buffer, [string] | [string, number]>,
    private readonly meta: Database<Buffer, string>,
  ) {}

  /**
   * Opens (creating) the environment at `file`. One that fails {@link looksIntact} or that LMDB
   * cannot open is deleted and created anew (the caller then rebuilds it from the log): LMDB has
   * no page checksums and would crash the process on a garbage or truncated file.
   */
  static async open(file: string): Promise<IndexDb> {
    if (!looksIntact(file)) removeEnvironment(file);
    let db: IndexDb;
    try {
      db = IndexDb.openAt(file);
    } catch {
      removeEnvironment(file);
      return IndexDb.openAt(file);
    }
    if (db.formatVersion() === undefined || db.formatVersion() === INDEX_FORMAT) return db;
    // Another format (an earlier version's databases): start afresh rather than carry them.
    await db.close();
    removeEnvironment(file);
    return IndexDb.openAt(file);
  }

  private static openAt(file: string): IndexDb {
    const env = open({ path: file, noSubdir: true, compression: false, encoding: 'binary' }) as unknown as RootDatabase;
    const streams = env.openDB<Buffer, [string] | [string, number]>({ name: 'streams', encoding: 'binary', compression: false });
    return new IndexDb(file, env, streams, env.openDB<Buffer, string>({ name: 'meta', encoding: 'binary', compression: false }));
  }

  /** The format version the environment's state records, or undefined when it has none. */
  private formatVersion(): number | undefined {
    const state = this.meta.getBinary(STATE_KEY);
    return state === undefined || state.length < 4 ? undefined : state.readUInt32LE(0);
  }

  /** Position below which every event is indexed, or undefined for an empty or foreign index. */
  indexedEnd(): number | undefined {
    const state = this.meta.getBinary(STATE_KEY);
    if (state === undefined || state.length !== 16 || state.readUInt32LE(0) !== INDEX_FORMAT) return undefined;
    const end = readU64(state, 8);
    return Number.isSafeInteger(end) ? end : undefined;
  }

  head(streamId: string): IndexHead | undefined {
    const value = this.reading(() => this.streams.getBinaryFast([streamId]));
    if (value === undefined) return undefined;
    return { revision: readU64(value, 0), position: readU64(value, 8), lastEventId: readUuid(value, 16) };
  }

  /** The chunk holding `revision` of the stream, or undefined when none does. */
  partAt(streamId: string, revision: number): StreamPart | undefined {
    return this.partsFrom(streamId, revision, 0, false)[0];
  }

  /**
   * The chunk holding `revision`, then up to `more` of the stream's chunks after it (or before
   * it, `backwards`), in one read transaction: a long stream's read looks up a page of its
   * chunks at once. Empty when no chunk holds `revision`. Chunks after the first may overlap
   * it (see the module comment): callers look for the chunk holding each revision. Forwards,
   * nothing after the first chunk is looked up when it reaches `headRevision`.
   */
  partsFrom(streamId: string, revision: number, more: number, backwards: boolean, headRevision = Number.MAX_SAFE_INTEGER): StreamPart[] {
    return this.reading(() => {
      const parts: StreamPart[] = [];
      // A chunk usually starts where the reader asks (revision 0, or where the last one ended):
      // an exact get costs a fraction of a range read's cursor.
      const exact = backwards ? undefined : this.streams.getBinaryFast([streamId, revision]);
      if (exact !== undefined) {
        parts.push(chunkPart(revision, exact));
      } else {
        for (const { key, value } of this.streams.getRange({ start: [streamId, revision], end: [streamId], reverse: true, limit: backwards ? more + 1 : 1 })) {
          parts.push(chunkPart((key as [string, number])[1], value));
        }
      }
      const first = parts[0];
      if (first === undefined || revision >= first.firstRevision + first.count) return [];
      if (!backwards && more > 1 && first.firstRevision + first.count <= headRevision) {
        const range = this.streams.getRange({ start: [streamId, first.firstRevision + first.count], end: [streamId, Number.MAX_SAFE_INTEGER], limit: more });
        for (const { key, value } of range) parts.push(chunkPart((key as [string, number])[1], value));
      }
      return parts;
    });
  }

  /** Runs an LMDB read; its errors (a damaged file) become CorruptFileError. */
  private reading<T>(read: () => T): T {
    try {
      return read();
    } catch (err) {
      throw new CorruptFileError(this.file, `the stream index database cannot be read (${(err as Error).message}): close the store and delete this file, and the next open rebuilds it from the log`, { cause: err });
    }
  }

  /**
   * Writes the runs of streams and then `indexedEnd`; resolves once committed. Runs must be
   * given in the order their events were appended across calls (a later head wins).
   */
  async write(runs: Iterable<[string, IndexRun]>, indexedEnd: number): Promise<void> {
    let streams = 0;
    let written: Promise<boolean> | undefined;
    for (const [streamId, run] of runs) {
      // lmdb-js queues every put of one event turn for one transaction: let a large write
      // (a whole segment's streams on a rebuild) commit in parts, and the event loop turn.
      if (++streams % WRITE_BATCH_STREAMS === 0) await written;
      for (let i = 0; i < run.count; ) {
        const segmentBase = run.segmentBaseAt(i);
        let j = i + 1;
        while (j < run.count && j - i < CHUNK_MAX_EVENTS && run.segmentBaseAt(j) === segmentBase) j++;
        const chunk = Buffer.allocUnsafe(8 + 8 * (j - i));
        writeU64(chunk, 0, segmentBase);
        for (let k = i; k < j; k++) {
          chunk.writeUInt32LE(run.positionAt(k) - segmentBase, 8 + 8 * (k - i));
          chunk.writeUInt32LE(run.batchOffsetAt(k), 12 + 8 * (k - i));
        }
        void this.streams.put([streamId, run.firstRevision + i], chunk);
        i = j;
      }
      // A buffer per value: lmdb-js may read it when the transaction runs, not at put().
      const head = Buffer.allocUnsafe(HEAD_BYTES);
      writeU64(head, 0, run.firstRevision + run.count - 1);
      writeU64(head, 8, run.positionAt(run.count - 1));
      writeUuid(run.lastEventId, head, 16);
      written = this.streams.put([streamId], head);
    }
    await this.writeState(indexedEnd);
  }

  private async writeState(indexedEnd: number): Promise<void> {
    const state = Buffer.alloc(16);
    state.writeUInt32LE(INDEX_FORMAT, 0);
    writeU64(state, 8, indexedEnd);
    await this.meta.put(STATE_KEY, state);
    // Reads on this thread see the commit from here on, before the caller drops its copy.
    this.env.resetReadTxn();
  }

  /** Empties every database (for a rebuild from the log). */
  async clear(): Promise<void> {
    await Promise.all([this.streams.clearAsync(), this.meta.clearAsync()]);
    this.env.resetReadTxn();
  }

  close(): Promise<void> {
    return this.env.close();
  }
}

function removeEnvironment(file: string): void {
  for (const name of [file, `${file}-lock`]) fs.rmSync(name, { force: true });
}

// LMDB's meta pages (pages 0 and 1), as the LMDB that lmdb-js bundles lays them out: a 24-byte
// page header (page number, transaction id, pad, flags with P_META = 0x08, bounds), then the
// meta: magic, version, address, map size, the free and main databases (48 bytes each; the free
// database's first field holds the page size), the last page number and the transaction id.
const META_FLAGS = 18;
const META_MAGIC = 24;
const META_PAGE_SIZE = 48;
const META_LAST_PAGE = 144;
const META_TXN_ID = 152;
const LMDB_MAGIC = 0xbeefc0de;

/**
 * True when `file` is absent (a new environment) or its newest valid meta page describes a file
 * of at least the size it has: a cheap check that catches a truncated or overwritten file before
 * LMDB maps it. A test pins this layout to the bundled LMDB.
 */
export function looksIntact(file: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const page = Buffer.alloc(META_TXN_ID + 8);
    let newest: { txnId: number; lastPage: number; pageSize: number } | undefined;
    for (let at = 0; at < 2; at++) {
      const pageSize: number = newest?.pageSize ?? 4096;
      if (fs.readSync(fd, page, 0, page.length, at * pageSize) !== page.length) return false;
      if (page.readUInt32LE(META_MAGIC) !== LMDB_MAGIC || (page.readUInt16LE(META_FLAGS) & 0x08) === 0) continue;
      const meta = { txnId: readU64(page, META_TXN_ID), lastPage: readU64(page, META_LAST_PAGE), pageSize: page.readUInt32LE(META_PAGE_SIZE) };
      if (newest === undefined || meta.txnId > newest.txnId) newest = meta;
    }
    return newest !== undefined && newest.pageSize >= 512 && (newest.lastPage + 1) * newest.pageSize <= size;
  } finally {
    fs.closeSync(fd);
  }
}

function chunkPart(firstRevision: number, value: Buffer): StreamPart {
  const segmentBase = readU64(value, 0);
  // The buffer from a range read or getBinaryFast is reused by lmdb-js: keep a copy.
  const entries = Buffer.from(value.subarray(8));
  return {
    segmentBase,
    firstRevision,
    count: entries.length >>> 3,
    positionAt: (i) => segmentBase + entries.readUInt32LE(i * 8),
    batchOffsetAt: (i) => entries.readUInt32LE(i * 8 + 4),
  };
}
