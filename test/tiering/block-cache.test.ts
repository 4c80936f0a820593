import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { MemoryObjectStore } from '../../adapters/memory/index.js';
import { BLOCK_BYTES, BlockCache, READ_AHEAD_GROWTH, READ_AHEAD_MAX_BYTES, READ_AHEAD_MIN_BYTES } from '../../lib/tiering/block-cache.js';
import type { RemoteSegmentData } from '../../lib/log/segment.js';

const MiB = 1024 * 1024;
/** What a segment's scan reads at once (segment.ts READ_CHUNK_BYTES). */
const CHUNK = 256 * 1024;

/**
 * Reads [0, size) the way a segment scans: chunks of {@link CHUNK}, each starting at the last
 * whole batch of the chunk before (here: `overlap` bytes before its end), checking every byte.
 */
async function scan(reader: RemoteSegmentData, object: Buffer, overlap = 3000, after?: () => void): Promise<void> {
  for (let at = 0; at < object.length; ) {
    const bytes = await reader.read(at, CHUNK);
    expect(bytes.equals(object.subarray(at, at + CHUNK)), `bytes at ${at}`).to.equal(true);
    after?.();
    const end = at + bytes.length;
    at = end >= object.length ? end : end - overlap;
  }
}

async function storeWith(size: number): Promise<{ objects: MemoryObjectStore; object: Buffer }> {
  const objects = new MemoryObjectStore();
  const object = randomBytes(size);
  await objects.put('seg.log', object);
  objects.calls.get = 0;
  objects.bytesRead = 0;
  return { objects, object };
}

describe('block cache', () => {
  it('reads ahead for a scan whose reads start inside the previous one: few GETs, each byte fetched once', async () => {
    const size = 40 * MiB;
    const { objects, object } = await storeWith(size);
    const cache = new BlockCache(objects, 64 * MiB);
    await scan(cache.reader('seg.log', size), object);
    expect(objects.bytesRead, 'nothing fetched twice').to.equal(size);
    // The window grows from READ_AHEAD_MIN_BYTES to READ_AHEAD_MAX_BYTES (one GET each step, after
    // the first two reads'), then each refill fetches at least half of it: 256 KiB reads alone would
    // take 96 GETs here.
    const ramp = Math.ceil(Math.log(READ_AHEAD_MAX_BYTES / READ_AHEAD_MIN_BYTES) / Math.log(READ_AHEAD_GROWTH)) + 2;
    expect(objects.calls.get).to.be.at.most(ramp + Math.ceil(size / (READ_AHEAD_MAX_BYTES / 2)));
    expect(cache.stats().gets).to.equal(objects.calls.get);
  });

  it('does not read ahead for reads that are not a forward scan', async () => {
    const size = 8 * MiB;
    const { objects, object } = await storeWith(size);
    const cache = new BlockCache(objects, 64 * MiB);
    const reader = cache.reader('seg.log', size);
    // Point reads of batches far apart (one stream's), forwards and backwards, and a longer read again at the same offset.
    const reads: [number, number][] = [[100_000, 3000], [1_000_000, 5000], [500_000, 2000], [3_000_000, 1000], [3_000_000, 90_000], [6_000_000, 100]];
    const blocks = new Set<number>();
    for (const [offset, length] of reads) {
      expect((await reader.read(offset, length)).equals(object.subarray(offset, offset + length))).to.equal(true);
      for (let b = Math.floor(offset / BLOCK_BYTES); b * BLOCK_BYTES < offset + length; b++) blocks.add(b);
    }
    await new Promise((resolve) => setTimeout(resolve, 10)); // Anything read ahead would have landed.
    expect(objects.bytesRead, 'only the blocks the reads cover').to.equal(blocks.size * BLOCK_BYTES);
  });

  it('holds at most maxBytes of memory, measured by the buffers its blocks really hold, whatever the reads', async () => {
    const size = 12 * MiB + 12_345;
    const { objects, object } = await storeWith(size);
    for (const maxBytes of [4 * MiB, 1 * MiB, 200 * 1024, 100 * 1024]) {
      const cache = new BlockCache(objects, maxBytes);
      const check = (): void => {
        const { bytes } = cache.stats();
        expect(bytes, 'counted').to.be.at.most(maxBytes);
        expect(cache.measureHeldBytes(), 'held in fact').to.equal(bytes);
      };
      const reader = cache.reader('seg.log', size);
      // A scan, with a few hot blocks read again and again in between (they outlive the GETs they came with).
      let reads = 0;
      await scan(reader, object, 3000, () => {
        if (++reads % 4 === 0) expect(reader.readSync(70_000, 100)?.equals(object.subarray(70_000, 70_100))).to.not.equal(false);
        check();
      });
      for (const offset of [5 * MiB, 70_000, 11 * MiB, 2 * MiB + 7]) {
        expect((await reader.read(offset, 40_000)).equals(object.subarray(offset, offset + 40_000))).to.equal(true);
        check();
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
      check();
      cache.clear();
      expect(cache.stats().bytes).to.equal(0);
      expect(cache.measureHeldBytes()).to.equal(0);
    }
  });
});
