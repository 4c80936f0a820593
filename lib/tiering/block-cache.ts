/**
 * Ranged reads of segment data in the object store, through a cache bounded by bytes.
 *
 * Objects are read in aligned blocks of {@link BLOCK_BYTES}; the cache keeps blocks, least
 * recently used out first, within `maxBytes` of memory (a block being fetched is not counted
 * until it lands). A read fetches the blocks it lacks, adjacent ones in one GET; concurrent
 * readers of a block share one GET.
 *
 * Read-ahead. A read that starts inside the reader's previous read (or where it ended) and goes
 * past its end is a forward scan: the segment's scans read chunks that each start at the last
 * whole batch of the chunk before. While a scan goes on, a window of bytes ahead of it is
 * fetched in the background, refilled when less than half of it is left ahead (and grown
 * {@link READ_AHEAD_GROWTH}-fold, from {@link READ_AHEAD_MIN_BYTES} up to
 * {@link READ_AHEAD_MAX_BYTES} and a quarter of the cache), so the next reads usually find their
 * bytes fetched or in flight. Any other read ends
 * the scan: point reads (one stream's batches) fetch only the blocks they cover. A read served
 * from the cache while GETs are in flight lets their I/O run (one turn of the event loop) before
 * it returns: a reader that only ever meets resolved promises would hold the read-ahead back
 * until it next had to wait.
 *
 * Memory. The blocks of one GET are views of its answer, not copies, as long as that answer is
 * small beside the cache (at most a quarter of it) and is a buffer of its own: the answer is
 * then counted in full, once, until the last of its blocks leaves the cache (a view pins the
 * whole buffer). A block found in the cache when most of its GET's answer is gone is copied out
 * of it, so that a few hot blocks do not pin large answers. Any other answer (large beside the
 * cache, or a slice of a larger buffer) is copied block by block. `stats().bytes` is thus the
 * memory that the cache's blocks hold, and stays within `maxBytes`.
 *
 * Nothing here checks the bytes: every batch read through it is CRC-checked by the segment
 * (segment.ts), which calls `discard` on a bad one so a retry fetches again.
 */
import { LRUCache } from 'lru-cache';
import { ObjectNotFoundError } from '../errors.js';
import type { RemoteSegmentData } from '../log/segment.js';
import type { ObjectStore } from './object-store.js';

export const BLOCK_BYTES = 64 * 1024;
export const READ_AHEAD_MIN_BYTES = 256 * 1024;
export const READ_AHEAD_MAX_BYTES = 16 * 1024 * 1024;
/**
 * How much the window grows at each refill. Fewer, larger GETs make a scan faster (each costs a
 * request's overhead, and the reader waits less often); fourfold reaches the largest window
 * within three refills while a scan that stops early has fetched little ahead.
 */
export const READ_AHEAD_GROWTH = 4;
/** Attempts of one ranged GET before its error reaches the reader (the SDKs retry inside each). */
const FETCH_ATTEMPTS = 3;

export interface CacheStats {
  /** Memory held by the cached blocks: their GETs' answers, counted once each (see above). */
  readonly bytes: number;
  readonly maxBytes: number;
  /** Block lookups answered from the cache, and those that had to wait for a GET. */
  readonly hits: number;
  readonly misses: number;
  /** GETs made, and the bytes they returned. */
  readonly gets: number;
  readonly bytesFetched: number;
}

/** One GET's answer whose blocks are views of it: counted while any of them is cached. */
interface Run {
  /** The bytes of the buffer the views pin. */
  readonly bytes: number;
  /** Blocks of it still cached, and their bytes. */
  blocks: number;
  blockBytes: number;
}

/** A cached block: a view of a run's answer, or (run undefined) a buffer of its own. */
interface Block {
  bytes: Buffer;
  run: Run | undefined;
}

export class BlockCache {
  private readonly blocks: LRUCache<string, Block>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  /** Memory the cached blocks hold (see {@link CacheStats.bytes}). */
  private held = 0;
  private hits = 0;
  private misses = 0;
  private gets = 0;
  private bytesFetched = 0;
  /** The largest read-ahead window: a quarter of the cache, at most {@link READ_AHEAD_MAX_BYTES}. */
  private readonly maxWindow: number;
  /** The largest GET answer whose blocks are kept as views of it: a quarter of the cache. */
  private readonly maxViewed: number;

  constructor(
    private readonly store: ObjectStore,
    readonly maxBytes: number,
  ) {
    this.maxViewed = Math.floor(maxBytes / 4);
    this.maxWindow = Math.min(READ_AHEAD_MAX_BYTES, this.maxViewed);
    this.blocks = new LRUCache<string, Block>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (block) => Math.max(1, block.bytes.length),
      dispose: (block) => this.release(block),
    });
  }

  stats(): CacheStats {
    return { bytes: this.held, maxBytes: this.maxBytes, hits: this.hits, misses: this.misses, gets: this.gets, bytesFetched: this.bytesFetched };
  }

  /**
   * The memory the cached blocks really hold, measured by walking them: the distinct buffers
   * under them (for tests of the accounting behind {@link CacheStats.bytes}).
   */
  measureHeldBytes(): number {
    const buffers = new Set<ArrayBufferLike>();
    let bytes = 0;
    for (const block of this.blocks.values()) {
      const buffer = block.bytes.buffer;
      if (buffers.has(buffer)) continue;
      buffers.add(buffer);
      bytes += buffer.byteLength;
    }
    return bytes;
  }

  /** Empties the cache (blocks in flight land afterwards). */
  clear(): void {
    this.blocks.clear();
  }

  /** A reader of the object at `key`, `size` bytes long as its sidecar says. */
  reader(key: string, size: number): RemoteSegmentData {
    // The previous read's range, the end of what was read ahead of it, and the window's size.
    let scanStart = -1;
    let scanEnd = -1;
    let aheadEnd = 0;
    let window = READ_AHEAD_MIN_BYTES;
    return {
      readSync: (byteOffset, length) => {
        const end = Math.min(byteOffset + length, size);
        const parts: Buffer[] = [];
        for (let b = Math.floor(byteOffset / BLOCK_BYTES); b * BLOCK_BYTES < end; b++) {
          const block = this.lookUp(blockKey(key, b));
          if (block === undefined) return undefined;
          parts.push(block);
        }
        this.hits += parts.length;
        return slice(parts, byteOffset, end);
      },
      read: async (byteOffset, length) => {
        const end = Math.min(byteOffset + length, size);
        // This read's blocks first: a block it shares with the window ahead must not wait for the window's GET.
        const wanted = this.fetchBlocks(key, size, byteOffset, end, true);
        if (byteOffset > scanStart && byteOffset <= scanEnd && end > scanEnd) {
          // Forward from inside the previous read (or from its end): a scan. Refill the window when less than half of it is ahead.
          if (aheadEnd - end < window / 2) {
            window = Math.max(Math.min(window * READ_AHEAD_GROWTH, this.maxWindow), BLOCK_BYTES);
            const from = Math.max(end, aheadEnd);
            const to = Math.min(end + window, size);
            // In the background: its errors are met again by the read that needs those bytes.
            if (to > from) this.fetchBlocks(key, size, from, to).catch(() => {});
            aheadEnd = Math.max(aheadEnd, to);
          }
        } else if (byteOffset !== scanStart && !(byteOffset > scanStart && end <= scanEnd)) {
          // Not the previous read again (longer, as for a batch larger than the first guess), nor inside it: no scan.
          window = READ_AHEAD_MIN_BYTES;
          aheadEnd = end;
        }
        scanStart = byteOffset;
        scanEnd = end;
        const blocks = await wanted;
        // GETs in flight (read ahead): let their I/O run before the caller goes on (see above).
        if (this.inflight.size > 0) await new Promise((resolve) => setImmediate(resolve));
        return slice(blocks, byteOffset, end);
      },
      discard: () => {
        for (const k of [...this.blocks.keys()]) if (k.startsWith(key + '#')) this.blocks.delete(k);
      },
    };
  }

  /**
   * The cached block at `k` (now most recently used), or undefined. A view of a run most of
   * which has left the cache is copied out of it first, so that it no longer pins the run.
   */
  private lookUp(k: string): Buffer | undefined {
    const block = this.blocks.get(k);
    if (block === undefined) return undefined;
    const run = block.run;
    if (run !== undefined && run.blockBytes * 4 < run.bytes) {
      this.release(block);
      block.bytes = ownCopy(block.bytes);
      block.run = undefined;
      this.held += block.bytes.length;
      this.enforceBound();
    }
    return block.bytes;
  }

  /** A block leaves the cache (evicted, deleted, replaced) or is copied out of its run: its memory is no longer held. */
  private release(block: Block): void {
    const run = block.run;
    if (run === undefined) {
      this.held -= block.bytes.length;
      return;
    }
    run.blocks--;
    run.blockBytes -= block.bytes.length;
    if (run.blocks === 0) this.held -= run.bytes;
  }

  /** Evicts the least recently used blocks while the memory held is over the bound. */
  private enforceBound(): void {
    while (this.held > this.maxBytes && this.blocks.size > 0) this.blocks.pop();
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
      const held = this.lookUp(k) ?? this.inflight.get(k);
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
    const landed = this.getWithRetries(key, offset, length).then((bytes) => this.land(key, first, last, bytes));
    const blocks: Promise<Buffer>[] = [];
    for (let b = first; b <= last; b++) {
      const k = blockKey(key, b);
      const block = landed.then((pieces) => pieces[b - first]!);
      this.inflight.set(k, block);
      void block.then(
        () => this.inflight.delete(k),
        () => this.inflight.delete(k),
      );
      blocks.push(block);
    }
    return blocks;
  }

  /**
   * Caches the blocks [first, last] of one GET's answer `bytes` and returns them. A short answer
   * (a truncated object) gives short or empty blocks: the segment's checks see it.
   */
  private land(key: string, first: number, last: number, bytes: Buffer): Buffer[] {
    const pieces: Buffer[] = [];
    for (let b = first; b <= last; b++) {
      const at = (b - first) * BLOCK_BYTES;
      pieces.push(bytes.subarray(Math.min(at, bytes.length), Math.min(at + BLOCK_BYTES, bytes.length)));
    }
    // Views, when the answer is a buffer of its own (not much more than these bytes) and small beside the cache.
    const pinned = bytes.buffer.byteLength;
    const asViews = pinned <= this.maxViewed && pinned <= 2 * bytes.length;
    const run: Run | undefined = asViews ? { bytes: pinned, blocks: 0, blockBytes: 0 } : undefined;
    const out: Buffer[] = [];
    for (const [i, piece] of pieces.entries()) {
      const block: Block = { bytes: run === undefined ? ownCopy(piece) : piece, run };
      out.push(block.bytes);
      if (block.bytes.length > this.maxBytes) continue; // Never kept (a cache smaller than a block).
      if (run !== undefined) {
        if (run.blocks === 0) this.held += run.bytes;
        run.blocks++;
        run.blockBytes += block.bytes.length;
      } else {
        this.held += block.bytes.length;
      }
      this.blocks.set(blockKey(key, first + i), block);
    }
    this.enforceBound();
    return out;
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

/** A copy of `bytes` in a buffer of its own (not a slice of Node's shared pool). */
function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

function blockKey(key: string, block: number): string {
  return `${key}#${block}`;
}

/**
 * Bytes [start, end) of the object, from consecutive blocks starting at the block holding
 * `start`: a view when the blocks are adjacent views of one GET's answer, else a copy.
 */
function slice(blocks: readonly Buffer[], start: number, end: number): Buffer {
  const from = start % BLOCK_BYTES;
  const first = blocks[0]!;
  if (blocks.length === 1) return first.subarray(from, from + (end - start));
  let bytes = first.length;
  for (let i = 1; i < blocks.length; i++) {
    const block = blocks[i]!;
    if (block.buffer !== first.buffer || block.byteOffset !== first.byteOffset + bytes) return Buffer.concat(blocks).subarray(from, from + (end - start));
    bytes += block.length;
  }
  return Buffer.from(first.buffer, first.byteOffset + Math.min(from, bytes), Math.max(0, Math.min(end - start, bytes - from)));
}
