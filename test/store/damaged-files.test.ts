import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { EventStore, isColdstreamError, type RecordedEvent } from '../../lib/index.js';
import { IndexDb } from '../../lib/store/index-db.js';
import { INDEX_DB_FILE } from '../../lib/store/stream-index.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { collect } from '../helpers/async.js';


describe('EventStore with damaged files', () => {
  const tmp = useTempDir();
  const options = (dir: string) => ({ dir, durability: 'none' as const, segmentBytes: 2048, indexIntervalBytes: 128 });
  const sidecarOf = (dir: string) => path.join(dir, 'log', '00000000000000000000.sealed');
  // Open trusts the segment catalogue and reads no sidecar of a segment it lists: these tests
  // damage sidecars of a store as the version before the catalogue left it, without one.
  const removeCatalogue = (dir: string) => fs.rmSync(path.join(dir, 'log', 'segments.catalogue'));

  async function fill(): Promise<RecordedEvent[]> {
    const store = await EventStore.open(options(tmp.path));
    for (let i = 0; i < 100; i++) await store.appendToStream(i < 60 ? 'a' : 'b', [{ type: 'T', data: { i, pad: 'p'.repeat(40) } }]);
    const all = await collect(store.readAll());
    await store.close();
    return all;
  }

  it('rebuilds the sidecar byte for byte and keeps heads, reads and revisions intact', async () => {
    const before = await fill();
    const original = fs.readFileSync(sidecarOf(tmp.path));
    const damaged = Buffer.from(original);
    damaged[20] = damaged[20]! ^ 0x01;
    fs.writeFileSync(sidecarOf(tmp.path), damaged);
    removeCatalogue(tmp.path);
    const store = await EventStore.open(options(tmp.path));
    expect(fs.readFileSync(sidecarOf(tmp.path)).equals(original), 'the rebuilt sidecar').to.equal(true);
    expect(await store.streamHead('a')).to.deep.equal({ revision: 59, position: 59 });
    expect(await collect(store.readAll())).to.deep.equal(before);
    expect((await collect(store.readStream('a'))).map((e) => e.revision)).to.deep.equal([...Array(60).keys()]);
    expect((await collect(store.readStream('a', { direction: 'backwards' }))).length).to.equal(60);
    let error: unknown;
    try {
      await store.appendToStream('a', [{ type: 'T', data: {} }], { expectedRevision: 12 });
    } catch (e) {
      error = e;
    }
    expect(isColdstreamError(error, 'WRONG_EXPECTED_REVISION')).to.equal(true);
    await store.close();
  });

  it("refuses to open, changing nothing, when that segment's data is damaged too", async () => {
    await fill();
    fs.writeFileSync(sidecarOf(tmp.path), 'garbage');
    removeCatalogue(tmp.path);
    const logFile = path.join(tmp.path, 'log', '00000000000000000000.log');
    const bytes = fs.readFileSync(logFile);
    bytes[100] = bytes[100]! ^ 0x01;
    fs.writeFileSync(logFile, bytes);
    let error: unknown;
    try {
      await EventStore.open(options(tmp.path));
    } catch (e) {
      error = e;
    }
    expect(isColdstreamError(error, 'CORRUPT_FILE'), String(error)).to.equal(true);
    expect(fs.readFileSync(logFile).equals(bytes), 'the data file is untouched').to.equal(true);
    expect(fs.readdirSync(path.join(tmp.path, 'log')).filter((n) => n.endsWith('.log')).length).to.be.greaterThan(2);
  });

  it('reports a stream index that disagrees with the log as CORRUPT_FILE, not as another event', async () => {
    await fill();
    // A well-formed index entry for 'a' whose positions are one off.
    const db = await IndexDb.open(path.join(tmp.path, INDEX_DB_FILE));
    const end = db.indexedEnd()!;
    const positions = Array.from({ length: 60 }, (_, k) => k + 1);
    await db.write([['a', { firstRevision: 0, count: 60, lastEventId: '00000000-0000-4000-8000-000000000000', positionAt: (k: number) => positions[k]!, batchOffsetAt: () => 0, segmentBaseAt: () => 0 }]], end);
    await db.close();
    const store = await EventStore.open(options(tmp.path));
    let error: unknown;
    try {
      await collect(store.readStream('a'));
    } catch (e) {
      error = e;
    }
    expect(isColdstreamError(error, 'CORRUPT_FILE'), String(error)).to.equal(true);
    await store.close();
  });

  it('rebuilds a lost index database from the .streams files, and from the records where one is damaged', async () => {
    const before = await fill();
    const streamsFiles = fs.readdirSync(path.join(tmp.path, 'log')).filter((n) => n.endsWith('.streams'));
    expect(streamsFiles.length).to.be.greaterThan(2);
    fs.writeFileSync(path.join(tmp.path, 'log', streamsFiles[1]!), 'garbage');
    fs.rmSync(path.join(tmp.path, INDEX_DB_FILE));
    const store = await EventStore.open(options(tmp.path));
    expect(await store.streamHead('a')).to.deep.equal({ revision: 59, position: 59 });
    expect(await store.streamHead('b')).to.deep.equal({ revision: 39, position: 99 });
    expect(await collect(store.readStream('a'))).to.deep.equal(before.slice(0, 60));
    expect(await collect(store.readStream('b', { direction: 'backwards' }))).to.deep.equal(before.slice(60).reverse());
    await store.close();
  });

  it('refuses to open, instead of cutting acknowledged events, after a bit flip in synced data of the active segment', async () => {
    const store = await EventStore.open({ dir: tmp.path, durability: 'fsync' });
    for (let i = 0; i < 50; i++) await store.appendToStream('s', [{ type: 'T', data: { i } }]);
    await store.close();
    const logFile = path.join(tmp.path, 'log', '00000000000000000000.log');
    const bytes = fs.readFileSync(logFile);
    // Inside the tail that recovery scans (after the last index entry), with intact batches after it.
    bytes[bytes.length - 150] = bytes[bytes.length - 150]! ^ 0x08;
    fs.writeFileSync(logFile, bytes);
    let error: unknown;
    try {
      await EventStore.open({ dir: tmp.path, durability: 'fsync' });
    } catch (e) {
      error = e;
    }
    expect(isColdstreamError(error, 'CORRUPT_RECORD'), String(error)).to.equal(true);
    expect(fs.readFileSync(logFile).equals(bytes), 'nothing was cut').to.equal(true);
  });
});
