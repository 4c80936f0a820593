import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { CHUNK_MAX_EVENTS, IndexDb, looksIntact, type IndexRun } from '../../lib/store/index-db.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { open } from 'lmdb';

const ID = '11111111-2222-4333-8444-555555555555';

/** A run of `count` events from `firstRevision` at positions `positionOf(i)`, in the segment `segmentOf(i)`. */
function run(firstRevision: number, count: number, positionOf: (i: number) => number, segmentOf: (i: number) => number = () => 0): IndexRun {
  return { firstRevision, count, lastEventId: ID, positionAt: positionOf, batchOffsetAt: (i) => i * 10, segmentBaseAt: segmentOf };
}

function revisionsOf(db: IndexDb, streamId: string, upTo: number): number[] {
  const positions: number[] = [];
  for (let revision = 0; revision <= upTo; ) {
    const part = db.partAt(streamId, revision);
    if (part === undefined) break;
    for (let i = revision - part.firstRevision; i < part.count; i++) positions.push(part.positionAt(i));
    revision = part.firstRevision + part.count;
  }
  return positions;
}

describe('IndexDb', () => {
  const tmp = useTempDir();
  const file = (): string => path.join(tmp.path, 'index.lmdb');

  it('stores heads and parts, splitting chunks at segment boundaries and at the chunk size, and reopens', async () => {
    let db = await IndexDb.open(file());
    expect(db.indexedEnd()).to.equal(undefined);
    const count = CHUNK_MAX_EVENTS * 2 + 10;
    await db.write([['long', run(0, count, (i) => 1000 + i, (i) => (i < 700 ? 0 : 1700))], ['short', run(5, 1, () => 3)]], 5000);
    await db.close();
    db = await IndexDb.open(file());
    try {
      expect(db.indexedEnd()).to.equal(5000);
      expect(db.head('long')).to.deep.equal({ revision: count - 1, position: 1000 + count - 1, lastEventId: ID });
      expect(db.head('short')).to.deep.equal({ revision: 5, position: 3, lastEventId: ID });
      expect(db.head('shor')).to.equal(undefined);
      expect(revisionsOf(db, 'long', count)).to.deep.equal(Array.from({ length: count }, (_, i) => 1000 + i));
      const split = db.partAt('long', 699)!;
      expect([split.segmentBase, split.firstRevision, split.count]).to.deep.equal([0, 0, 700]);
      const next = db.partAt('long', 700)!;
      expect([next.segmentBase, next.firstRevision, next.count, next.batchOffsetAt(0)]).to.deep.equal([1700, 700, CHUNK_MAX_EVENTS, 7000]);
      expect(db.partAt('short', 4)).to.equal(undefined);
      expect(db.partAt('short', 6)).to.equal(undefined);
      expect(db.partAt('long', count)).to.equal(undefined);
    } finally {
      await db.close();
    }
  });

  it('answers from the chunk holding a revision when chunks overlap (a flush redone after a crash)', async () => {
    const db = await IndexDb.open(file());
    try {
      await db.write([['s', run(0, 8, (i) => i * 2)]], 16);
      await db.write([['s', run(3, 9, (i) => (3 + i) * 2)]], 24);
      expect(revisionsOf(db, 's', 20)).to.deep.equal(Array.from({ length: 12 }, (_, i) => i * 2));
      expect(db.head('s')?.revision).to.equal(11);
    } finally {
      await db.close();
    }
  });

  it('starts afresh on an index of another format (an earlier version)', async () => {
    const db = await IndexDb.open(file());
    await db.write([['s', run(0, 2, (i) => i)]], 2);
    await db.close();
    const env = open({ path: file(), noSubdir: true, encoding: 'binary' });
    const meta = env.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' });
    const state = Buffer.from(meta.getBinary('state')!);
    state.writeUInt32LE(1, 0);
    await meta.put('state', state);
    await env.close();
    const reopened = await IndexDb.open(file());
    try {
      expect(reopened.indexedEnd()).to.equal(undefined);
      expect(reopened.head('s')).to.equal(undefined);
    } finally {
      await reopened.close();
    }
  });

  it('recognises an intact file, and a truncated or overwritten one before LMDB maps it (pins the bundled LMDB layout)', async () => {
    expect(looksIntact(file()), 'no file yet').to.equal(true);
    const db = await IndexDb.open(file());
    await db.write(Array.from({ length: 5000 }, (_, i) => [`stream-${i}`, run(0, 3, (k) => i * 3 + k)] as [string, IndexRun]), 15_000);
    await db.close();
    expect(looksIntact(file()), 'as written').to.equal(true);
    const bytes = fs.readFileSync(file());
    fs.truncateSync(file(), Math.floor(bytes.length / 2));
    expect(looksIntact(file()), 'truncated').to.equal(false);
    fs.writeFileSync(file(), Buffer.alloc(bytes.length, 0x61));
    expect(looksIntact(file()), 'overwritten').to.equal(false);
    fs.writeFileSync(file(), bytes);
    // Opening a damaged file starts an empty index instead of crashing the process.
    fs.truncateSync(file(), 4096 * 3);
    const reopened = await IndexDb.open(file());
    expect(reopened.indexedEnd()).to.equal(undefined);
    await reopened.close();
  });
});
