import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { CorruptRecordError } from '../../lib/errors.js';
import { encodeBatch } from '../../lib/log/record-batch.js';
import { SegmentLog } from '../../lib/log/segment-log.js';
import { READ_CHUNK_BYTES } from '../../lib/log/segment.js';
import {
  activeBase,
  appendBatch,
  buildLog,
  end,
  expectRecovered,
  fileOf,
  readAllBatches,
  restore,
  rng,
  snapshot,
  type Snapshot,
  type WrittenBatch,
} from '../helpers/log-fixture.js';
import { logOptions } from '../helpers/log.js';
import { useTempDir } from '../helpers/temp-dir.js';

/** The built log and its active segment's files. */
interface Fixture {
  readonly written: WrittenBatch[];
  readonly sealed: WrittenBatch[];
  readonly active: WrittenBatch[];
  readonly snap: Snapshot;
  readonly logFile: string;
  readonly indexFile: string;
  readonly size: number;
  /** Byte offset of the last entry of the active index file (0 when it has none). */
  readonly lastIndexedByte: number;
}

async function setup(dir: string, seed: number): Promise<Fixture> {
  const written = await buildLog(dir, seed);
  const base = activeBase(written);
  const logFile = fileOf(dir, base, '.log');
  const indexFile = fileOf(dir, base, '.index');
  const index = fs.readFileSync(indexFile);
  const active = written.filter((b) => b.segmentBase === base);
  expect(fs.statSync(logFile).size).to.equal(end(active[active.length - 1]!));
  return {
    written,
    sealed: written.filter((b) => b.segmentBase !== base),
    active,
    snap: snapshot(dir),
    logFile,
    indexFile,
    size: fs.statSync(logFile).size,
    lastIndexedByte: index.length === 0 ? 0 : index.readUInt32LE(index.length - 4),
  };
}

/** What must survive damage at byte `at` of the active segment: every batch that ends at or before it. */
function survivorsOf(f: Fixture, at: number): WrittenBatch[] {
  return [...f.sealed, ...f.active.filter((b) => end(b) <= at)];
}

/** Every byte offset of the last two batches, then `count` seeded random offsets before them. */
function damagePoints(f: Fixture, count: number, seed: number): number[] {
  const from = f.active[f.active.length - 2]!.byteOffset;
  const random = rng(seed);
  const earlier = Array.from({ length: count }, () => random.int(from));
  return [...Array.from({ length: f.size - from }, (_, i) => from + i), ...earlier];
}

/**
 * Opens the log after a byte of `batches` was flipped at `at`: when the damaged batch is the
 * last one (no later batch says it was synced) recovery cuts it off like a torn write; when a
 * later intact batch was written after it was synced, opening refuses with CorruptRecordError
 * naming the damaged batch and changes no file.
 */
async function expectFlipHandled(dir: string, batches: readonly WrittenBatch[], kept: readonly WrittenBatch[], at: number, logFile: string, context: string, options?: Parameters<typeof expectRecovered>[4]): Promise<void> {
  const damaged = batches.find((b) => b.byteOffset <= at && at < end(b))!;
  if (damaged === batches[batches.length - 1]) {
    await expectRecovered(dir, [...kept, ...batches.filter((b) => end(b) <= at)], context, undefined, options);
    return;
  }
  const before = fs.readFileSync(logFile);
  const error = await SegmentLog.open(logOptions(dir, options)).then(
    async (log) => {
      await log.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error, `${context}: refused`).to.be.instanceOf(CorruptRecordError);
  expect(error, context).to.include({ code: 'CORRUPT_RECORD', file: logFile, byteOffset: damaged.byteOffset });
  expect(fs.readFileSync(logFile).equals(before), `${context}: the file is unchanged`).to.equal(true);
}

function flipByte(file: string, at: number, mask: number): void {
  const bytes = fs.readFileSync(file);
  bytes[at] = bytes[at]! ^ mask;
  fs.writeFileSync(file, bytes);
}

describe('recovery of the active segment', () => {
  const tmp = useTempDir();

  it('truncates a torn batch on recovery, wherever the file was cut', async () => {
    const f = await setup(tmp.path, 1);
    for (const at of damagePoints(f, 50, 11)) {
      restore(tmp.path, f.snap);
      fs.truncateSync(f.logFile, at);
      const survivors = survivorsOf(f, at);
      const kept = survivors.filter((b) => b.segmentBase === f.active[0]!.segmentBase);
      await expectRecovered(tmp.path, survivors, `cut at byte ${at}`, () => {
        expect(fs.statSync(f.logFile).size, `size after a cut at ${at}`).to.equal(kept.length === 0 ? 0 : end(kept[kept.length - 1]!));
      });
    }
  });

  it('cuts a flipped last batch, and refuses (changing nothing) a flipped batch a later one proves synced', async () => {
    const f = await setup(tmp.path, 2);
    const random = rng(22);
    for (const at of damagePoints(f, 50, 21)) {
      restore(tmp.path, f.snap);
      flipByte(f.logFile, at, 1 + random.int(255));
      fs.rmSync(f.indexFile);
      await expectFlipHandled(tmp.path, f.active, f.sealed, at, f.logFile, `byte ${at} flipped, no index`);
    }
  });

  it('handles a flipped byte after the last index entry the same way, using the index', async () => {
    const f = await setup(tmp.path, 3);
    const random = rng(33);
    for (let at = f.lastIndexedByte; at < f.size; at += 1 + random.int(3)) {
      restore(tmp.path, f.snap);
      flipByte(f.logFile, at, 1 + random.int(255));
      await expectFlipHandled(tmp.path, f.active, f.sealed, at, f.logFile, `byte ${at} flipped, index kept`);
    }
  });

  it('cuts a flipped batch that no later batch proves synced (a torn write under none durability)', async () => {
    const written = await buildLog(tmp.path, 8);
    const base = activeBase(written);
    const active = written.filter((b) => b.segmentBase === base);
    // Rewrite the active segment as 'none' durability leaves it: nothing synced, every claim 0.
    const logFile = fileOf(tmp.path, base, '.log');
    fs.writeFileSync(logFile, Buffer.concat(active.map((b) => encodeBatch(b.basePosition, 1, b.records, 0))));
    fs.rmSync(fileOf(tmp.path, base, '.index'));
    const victim = active[1]!;
    flipByte(logFile, victim.byteOffset + 5, 0x04);
    const log = await SegmentLog.open(logOptions(tmp.path));
    try {
      expect(log.nextPosition).to.equal(victim.basePosition);
    } finally {
      await log.close();
    }
  });

  it('keeps a batch flipped before the last index entry and reports it when read', async () => {
    const f = await setup(tmp.path, 4);
    const victim = f.active.find((b) => end(b) <= f.lastIndexedByte && b.byteOffset > 0);
    expect(victim, 'an indexed batch before the last index entry').to.not.equal(undefined);
    flipByte(f.logFile, victim!.byteOffset + 20, 0x10);
    const log = await SegmentLog.open(logOptions(tmp.path));
    try {
      const last = f.active[f.active.length - 1]!;
      expect(log.nextPosition).to.equal(last.basePosition + last.records.length);
      const error = await readAllBatches(log).then(() => undefined, (e: unknown) => e);
      expect(error).to.be.instanceOf(CorruptRecordError);
      expect(error).to.include({ file: f.logFile, byteOffset: victim!.byteOffset, code: 'CORRUPT_RECORD' });
    } finally {
      await log.close();
    }
  });

  it('truncates a zero-filled tail', async () => {
    const f = await setup(tmp.path, 5);
    fs.appendFileSync(f.logFile, Buffer.alloc(4096));
    await expectRecovered(tmp.path, f.written, 'zero tail', () => expect(fs.statSync(f.logFile).size).to.equal(f.size));
  });

  it('truncates a tail of random bytes', async () => {
    const f = await setup(tmp.path, 6);
    const random = rng(66);
    fs.appendFileSync(f.logFile, Buffer.from(Array.from({ length: 777 }, () => random.int(256))));
    await expectRecovered(tmp.path, f.written, 'random tail', () => expect(fs.statSync(f.logFile).size).to.equal(f.size));
  });

  it('cuts off a valid batch that breaks the chain of positions', async () => {
    const f = await setup(tmp.path, 7);
    const last = f.active[f.active.length - 1]!;
    const next = last.basePosition + last.records.length;
    for (const position of [last.basePosition, next + 1, 0]) {
      restore(tmp.path, f.snap);
      fs.appendFileSync(f.logFile, encodeBatch(position, Date.now(), [Buffer.from('replayed')]));
      await expectRecovered(tmp.path, f.written, `stray batch at position ${position}`, () =>
        expect(fs.statSync(f.logFile).size).to.equal(f.size),
      );
    }
  });

  it('recovers an active segment emptied by a cut at byte 0', async () => {
    const f = await setup(tmp.path, 8);
    fs.truncateSync(f.logFile, 0);
    await expectRecovered(tmp.path, f.sealed, 'emptied active segment');
  });

  it('opens a log whose last segment is sealed and starts a new one after it', async () => {
    const f = await setup(tmp.path, 9);
    fs.rmSync(f.logFile);
    fs.rmSync(f.indexFile);
    await expectRecovered(tmp.path, f.sealed, 'no active segment');
  });
});

describe('recovery of a damaged active index', () => {
  const tmp = useTempDir();

  async function expectIndexRepaired(f: Fixture, damage: (index: Buffer) => Buffer, what: string): Promise<void> {
    restore(tmp.path, f.snap);
    fs.writeFileSync(f.indexFile, damage(fs.readFileSync(f.indexFile)));
    const pristine = f.snap.get(path.basename(f.indexFile))!;
    await expectRecovered(tmp.path, f.written, what, () => {
      expect(fs.readFileSync(f.indexFile).toString('hex'), `index rewritten after ${what}`).to.equal(pristine.toString('hex'));
      expect(fs.statSync(f.logFile).size).to.equal(f.size);
    });
  }

  const entry = (relativePosition: number, byteOffset: number): Buffer => {
    const buf = Buffer.alloc(8);
    buf.writeUInt32LE(relativePosition, 0);
    buf.writeUInt32LE(byteOffset, 4);
    return buf;
  };

  it('recovers every intact batch despite a torn, garbage or overreaching index', async () => {
    const f = await setup(tmp.path, 10);
    expect(f.snap.get(path.basename(f.indexFile))!.length).to.be.at.least(16);
    const random = rng(1010);
    const next = f.written[f.written.length - 1]!.basePosition - f.active[0]!.basePosition + 1;
    const cases: [string, (index: Buffer) => Buffer][] = [
      ['torn last entry', (i) => i.subarray(0, i.length - 3)],
      ['half an entry appended', (i) => Buffer.concat([i, Buffer.from([1, 2, 3, 4, 5])])],
      ['entries past the data', (i) => Buffer.concat([i, entry(next + 5, f.size), entry(next + 9, f.size + 4096)])],
      ['an entry inside the last batch', (i) => Buffer.concat([i, entry(next + 1, f.size - 3)])],
      ['last entry pointing mid-batch', (i) => Buffer.concat([i.subarray(0, i.length - 8), entry(i.readUInt32LE(i.length - 8), i.readUInt32LE(i.length - 4) + 1)])],
      ['last entry with a wrong position', (i) => Buffer.concat([i.subarray(0, i.length - 8), entry(i.readUInt32LE(i.length - 8) + 1, i.readUInt32LE(i.length - 4))])],
      ['random bytes', (i) => Buffer.from(Array.from({ length: i.length + 13 }, () => random.int(256)))],
      ['all zeroes', (i) => Buffer.alloc(i.length)],
      ['decreasing entries', (i) => Buffer.concat([entry(1000, 900), i])],
      ['an empty file', () => Buffer.alloc(0)],
    ];
    for (const [what, damage] of cases) await expectIndexRepaired(f, damage, what);
  });

  it('rebuilds a missing active index', async () => {
    const f = await setup(tmp.path, 11);
    restore(tmp.path, f.snap);
    fs.rmSync(f.indexFile);
    await expectRecovered(tmp.path, f.written, 'missing index', () =>
      expect(fs.readFileSync(f.indexFile).equals(f.snap.get(path.basename(f.indexFile))!)).to.equal(true),
    );
  });

  it('recovers every intact batch when both the index and the data tail are damaged', async () => {
    const f = await setup(tmp.path, 12);
    const cut = f.active[f.active.length - 1]!.byteOffset + 5;
    fs.truncateSync(f.logFile, cut);
    fs.appendFileSync(f.logFile, Buffer.alloc(300));
    fs.appendFileSync(f.indexFile, Buffer.concat([entry(9999, cut + 100), Buffer.from([7, 7])]));
    await expectRecovered(tmp.path, survivorsOf(f, cut), 'torn tail and torn index');
  });
});

describe('recovery across read-chunk boundaries', () => {
  const tmp = useTempDir();
  const BIG = { segmentBytes: 16 << 20, indexIntervalBytes: 64 << 10 };

  /** About 1.5 MiB in one segment: small batches around batches larger than READ_CHUNK_BYTES. */
  async function setupBig(): Promise<{ written: WrittenBatch[]; snap: Snapshot; logFile: string; indexFile: string }> {
    const random = rng(77);
    const log = await SegmentLog.open(logOptions(tmp.path, BIG));
    const written: WrittenBatch[] = [];
    for (const size of [3000, 300_000, 70_000, 600_000, 5, 200_000, 260_000, 40_000]) {
      for (let i = 0; i < 3; i++) written.push(await appendBatch(log, [Buffer.from([i]), randomBytes(random, size + i)]));
    }
    await log.close();
    return { written, snap: snapshot(tmp.path), logFile: fileOf(tmp.path, 0, '.log'), indexFile: fileOf(tmp.path, 0, '.index') };
  }

  it('recovers every batch of a large segment scanned from the start, and cuts a torn one', async () => {
    const f = await setupBig();
    const size = fs.statSync(f.logFile).size;
    expect(size).to.be.greaterThan(4 * READ_CHUNK_BYTES);
    const batchAt = (at: number): WrittenBatch => f.written.find((b) => b.byteOffset <= at && at < end(b))!;
    const points = [READ_CHUNK_BYTES - 1, READ_CHUNK_BYTES + 7, 2 * READ_CHUNK_BYTES, batchAt(3 * READ_CHUNK_BYTES).byteOffset + 30, size - 2];
    for (const at of points) {
      restore(tmp.path, f.snap);
      fs.truncateSync(f.logFile, at);
      fs.rmSync(f.indexFile);
      await expectRecovered(tmp.path, f.written.filter((b) => end(b) <= at), `cut at ${at} of a large segment`, undefined, BIG);
      restore(tmp.path, f.snap);
      flipByte(f.logFile, at, 0x80);
      fs.rmSync(f.indexFile);
      await expectFlipHandled(tmp.path, f.written, [], at, f.logFile, `flipped at ${at} of a large segment`, BIG);
    }
    restore(tmp.path, f.snap);
    fs.appendFileSync(f.logFile, Buffer.alloc(300_000));
    await expectRecovered(tmp.path, f.written, 'large zero tail', () => expect(fs.statSync(f.logFile).size).to.equal(size), BIG);
  });
});

function randomBytes(random: ReturnType<typeof rng>, length: number): Buffer {
  const buf = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) buf.writeUInt32LE(random.int(2 ** 32), i - (i + 4 > length ? i + 4 - length : 0));
  return buf;
}
