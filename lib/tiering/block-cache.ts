/**
 * Ranged reads of segment data in the object store, through a cache bounded by bytes.
 *
 * Objects are read in aligned blocks of {@link BLOCK_BYTES}; the cache keeps blocks, least
 * recently used out first, within `maxBytes` (a block being fetched is not counted until it
 * lands). A read fetches the blocks it lacks, adjacent ones in one GET; concurrent readers of a
 * block share one GET. A reader that goes on where its last read ended is scanning: it reads
 * ahead in the background, a window that doubles from {@link READ_AHEAD_MIN_BYTES} up to
 * {@link READ_AHEAD_MAX_BYTES}, so the next read usually finds its bytes fetched or in flight.
 *
 * Nothing here checks the bytes: every batch read through it is CRC-checked by the segment
 * (segment.ts), which calls `discard` on a bad one so a retry fetches again.
 */
import { LRUCache } from 'lru-cache';
import { ObjectNotFoundError } from '../errors.js';
import type { RemoteSegmentData } from '../log/segment.js';
import type { ObjectStore } from './object-store.js';

export const BLOCK_BYTES = 64 * 1024;
const READ_AHEAD_MIN_BYTES = 256 * 1024;
const READ_AHEAD_MAX_BYTES = 8 * 1024 * 1024;
/** Attempts of one ranged GET before its error reaches the reader (the SDKs retry inside each). */
const FETCH_ATTEMPTS = 3;

export interface CacheStats {
  /** Bytes of blocks held. */
  readonly bytes: number;
  readonly maxBytes: number;
  /** Block lookups answered from the cache, and those that had to wait for a GET. */
  readonly hits: number;
  readonly misses: number;
  /** GETs made, and the bytes they returned. */
  readonly gets: number;
  readonly bytesFetched: number;
}

export class BlockCache {
  private readonly blocks: LRUCache<string, Buffer>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private hits = 0;
  private misses = 0;
  private gets = 0;
  private bytesFetched = 0;

  constructor(
    private readonly store: ObjectStore,
    readonly maxBytes: number,
  ) {
    this.blocks = new LRUCache<string, Buffer>({ maxSize: Math.max(1, maxBytes), sizeCalculation: (block) => Math.max(1, block.length) });
  }

  stats(): CacheStats {
    return { bytes: this.blocks.calculatedSize, maxBytes: this.maxBytes, hits: this.hits, misses: this.misses, gets: this.gets, bytesFetched: this.bytesFetched };
  }

  /** Empties the cache (blocks in flight land afterwards). */
  clear(): void {
    this.blocks.clear();
  }

  /** A reader of the object at `key`, `size` bytes long as its sidecar says. */
  reader(key: string, size: number): RemoteSegmentData {
    let scanEnd = -1;
    let window = READ_AHEAD_MIN_BYTES;
    return {
      readSync: (byteOffset, length) => {
        const end = Math.min(byteOffset + length, size);
        const parts: Buffer[] = [];
        for (let b = Math.floor(byteOffset / BLOCK_BYTES); b * BLOCK_BYTES < end; b++) {
          const block = this.blocks.get(blockKey(key, b));
          if (block === undefined) return undefined;
          parts.push(block);
        }
        this.hits += parts.length;
        return slice(parts, byteOffset, end);
      },
      read: async (byteOffset, length) => {
        const end = Math.min(byteOffset + length, size);
        if (byteOffset === scanEnd) {
          window = Math.min(window * 2, READ_AHEAD_MAX_BYTES);
          // Ahead of this read, in the background: its errors are met again by the read that needs those bytes.
          this.fetchBlocks(key, size, end, Math.min(end + window, size)).catch(() => {});
        } else {
          window = READ_AHEAD_MIN_BYTES;
        }
        scanEnd = end;
        return slice(await this.fetchBlocks(key, size, byteOffset, end, true), byteOffset, end);
      },
      discard: () => {
        for (const k of [...this.blocks.keys()]) if (k.startsWith(key + '#')) this.blocks.delete(k);
      },
    };
  }

  /** The blocks covering [start, end) of the object, fetching those not held (adjacent ones in one GET). */
  private async fetchBlocks(key: string, size: number, start: number, end: number, count = false): Promise<Buffer[]> {
    const first = Math.floor(start / BLOCK_BYTES);
    const last = Math.ceil(end / BLOCK_BYTES) - 1;
    const found: (Buffer | Promise<Buffer>)[] = [];
    let runStart = -1;
    const flush = (upTo: number): void => {
      if (runStart < 0) return;
      const blocks = this.fetchRun(key, size, runStart, upTo);
      for (const block of blocks) found.push(block);
      runStart = -1;
    };
    for (let b = first; b <= last; b++) {
      const k = blockKey(key, b);
      const held = this.blocks.get(k) ?? this.inflight.get(k);
      if (held === undefined) {
        if (count) this.misses++;
        if (runStart < 0) runStart = b;
        continue;
      }
      if (count) this[held instanceof Buffer ? 'hits' : 'misses']++;
      flush(b - 1);
      found.push(held);
    }
    flush(last);
    return Promise.all(found);
  }

  /** Starts one GET for blocks [first, last] and returns a promise of each block. */
  private fetchRun(key: string, size: number, first: number, last: number): Promise<Buffer>[] {
    const offset = first * BLOCK_BYTES;
    const length = Math.min((last + 1) * BLOCK_BYTES, size) - offset;
    const whole = this.getWithRetries(key, offset, length);
    const blocks: Promise<Buffer>[] = [];
    for (let b = first; b <= last; b++) {
      const k = blockKey(key, b);
      const at = (b - first) * BLOCK_BYTES;
      const block = whole.then((bytes) => {
        // A short answer (a truncated object) gives short or empty blocks: the segment's checks see it.
        const piece = Buffer.from(bytes.subarray(Math.min(at, bytes.length), Math.min(at + BLOCK_BYTES, bytes.length)));
        this.blocks.set(k, piece);
        return piece;
      });
      this.inflight.set(k, block);
      void block.then(
        () => this.inflight.delete(k),
        () => this.inflight.delete(k),
      );
      blocks.push(block);
    }
    return blocks;
  }

  private async getWithRetries(key: string, offset: number, length: number): Promise<Buffer> {
    for (let attempt = 1; ; attempt++) {
      try {
        this.gets++;
        const bytes = await this.store.get(key, { range: { offset, length } });
        this.bytesFetched += bytes.length;
        return bytes;
      } catch (err) {
        if (attempt >= FETCH_ATTEMPTS || err instanceof ObjectNotFoundError) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt * (0.5 + Math.random() / 2)));
      }
    }
  }
}

function blockKey(key: string, block: number): string {
  return `${key}#${block}`;
}

/** Bytes [start, end) of the object, from consecutive blocks starting at the block holding `start`. */
function slice(blocks: readonly Buffer[], start: number, end: number): Buffer {
  const from = start % BLOCK_BYTES;
  if (blocks.length === 1) return blocks[0]!.subarray(from, from + (end - start));
  return Buffer.concat(blocks).subarray(from, from + (end - start));
}
