import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { MemoryObjectStore } from '../../adapters/memory/index.js';
import { endpointFromEnvironment, minioStoreFor, s3StoreFor, startS3rver, type S3Endpoint } from '../helpers/s3-servers.js';
import { CorruptRecordError, EventStore, FencedError, LocalDiskFullError, ReadOnlyError, type EventStoreOptions, type RecordedEvent } from '../../lib/index.js';
import { decodeSidecar, matchesDigest } from '../../lib/log/sidecar.js';
import { COMMITS_PREFIX, decodeCommit, parseCommitKey, segmentFiles as layoutFiles, segmentObjectKey } from '../../lib/tiering/layout.js';
import type { BlockCache } from '../../lib/tiering/block-cache.js';
import type { ObjectStore } from '../../lib/tiering/object-store.js';
import { collect, rejection, segmentFiles, storeOptions } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp-dir.js';

/** Appends `count` events over `streams` streams in batches of 5; returns what a full read must give. */
async function fill(store: EventStore, count: number, streams = 7, from = 0): Promise<void> {
  for (let i = from; i < from + count; i += 5) {
    const requests = [];
    for (let k = i; k < Math.min(i + 5, from + count); k++) requests.push({ streamId: `s-${k % streams}`, events: [{ type: 'E', data: { k, pad: 'x'.repeat(40) } }] });
    await store.appendMany(requests);
  }
}

function shape(events: RecordedEvent[]): unknown[] {
  return events.map((e) => [e.position, e.streamId, e.revision, e.type, e.data]);
}

export function tieredOptions(dir: string, objectStore: ObjectStore, overrides: Partial<EventStoreOptions> = {}): EventStoreOptions {
  return storeOptions(dir, { tiering: { objectStore, localRetentionBytes: 0, cacheBytes: 1 << 20, retryBaseMs: 5 }, ...overrides });
}

/** Every object that a commit names holds exactly the bytes its sidecar describes (size and CRC-32C). */
async function expectCommitsIntact(objects: MemoryObjectStore): Promise<void> {
  for (const key of objects.keys().filter((k) => k.startsWith(COMMITS_PREFIX))) {
    const base = parseCommitKey(key)!;
    const commit = decodeCommit(key, await objects.get(key), base);
    for (const [suffix, digest] of layoutFiles(commit.sidecar)) {
      const objectKey = segmentObjectKey(base, commit.attempt, suffix);
      expect(matchesDigest(await objects.get(objectKey), digest), `${objectKey} matches its commit`).to.equal(true);
    }
  }
}

describe('tiering', () => {
  const tmp = useTempDir();

  it('uploads sealed segments, evicts their data, and reads them back the same as before', async () => {
    const objects = new MemoryObjectStore();
    const store = await EventStore.open(tieredOptions(tmp.path, objects));
    try {
      await fill(store, 600);
      const hot = shape(await collect(store.readAll()));
      const hotStream = shape(await collect(store.readStream('s-3')));
      await store.tiering.drain();
      const status = store.tiering.status();
      expect(status.backlog.segments).to.equal(0);
      expect(status.remoteSegments).to.be.greaterThan(5);
      expect(status.local.segments).to.equal(0);
      const logs = segmentFiles(tmp.path, '.log');
      expect(logs.length, 'only the active segment keeps its data').to.equal(1);
      expect(segmentFiles(tmp.path, '.streams').length).to.equal(status.remoteSegments);
      expect(objects.keys().filter((k) => k.startsWith('commits/')).length).to.equal(status.remoteSegments);

      store.tiering.clearCache();
      expect(shape(await collect(store.readAll()))).to.deep.equal(hot);
      expect(shape(await collect(store.readStream('s-3')))).to.deep.equal(hotStream);
      expect(shape(await collect(store.readAll({ direction: 'backwards' })))).to.deep.equal([...hot].reverse());
      expect(store.tiering.status().cache.gets).to.be.greaterThan(0);
    } finally {
      await store.close();
    }
  });

  it('after a reopen, reads evicted segments from the object store and goes on tiering', async () => {
    const objects = new MemoryObjectStore();
    let store = await EventStore.open(tieredOptions(tmp.path, objects));
    await fill(store, 300);
    await store.tiering.drain();
    const before = shape(await collect(store.readAll()));
    await store.close();
    store = await EventStore.open(tieredOptions(tmp.path, objects));
    try {
      expect(shape(await collect(store.readAll()))).to.deep.equal(before);
      await fill(store, 300, 7, 300);
      await store.tiering.drain();
      const all = await collect(store.readAll());
      expect(all.map((e) => e.position)).to.deep.equal(all.map((_, i) => i));
      expect(store.tiering.status().epoch).to.equal(1);
    } finally {
      await store.close();
    }
  });

  it('keeps appending through an object-store outage, evicts nothing unuploaded, and catches up when it returns', async () => {
    const objects = new MemoryObjectStore();
    objects.down = true;
    const store = await EventStore.open(tieredOptions(tmp.path, objects));
    try {
      await fill(store, 400);
      await store.flush(); // Every rolled segment sealed (and queued).
      await new Promise((resolve) => setTimeout(resolve, 150));
      const status = store.tiering.status();
      expect(status.remoteSegments).to.equal(0);
      expect(status.backlog.segments).to.be.greaterThan(3);
      expect(status.lastError?.code).to.equal('OBJECT_STORE');
      expect(segmentFiles(tmp.path, '.log').length).to.equal(status.backlog.segments + 1);
      objects.down = false;
      await store.tiering.drain();
      expect(store.tiering.status().backlog.segments).to.equal(0);
      expect(store.tiering.status().lastError).to.equal(undefined);
      store.tiering.clearCache();
      expect((await collect(store.readAll())).length).to.equal(400);
    } finally {
      await store.close();
    }
  });

  it('refuses appends with LOCAL_DISK_FULL at maxLocalBytes while uploads are down, writes nothing of them, and accepts them again once uploads catch up', async () => {
    const objects = new MemoryObjectStore();
    objects.down = true;
    // Segments of 2 KiB, none retained: the watermark must exceed 2 segments; 6 segments' worth here.
    const store = await EventStore.open(tieredOptions(tmp.path, objects, { tiering: { objectStore: objects, localRetentionBytes: 0, maxLocalBytes: 12 * 1024, retryBaseMs: 5 } }));
    try {
      let acknowledged = 0;
      let refused: LocalDiskFullError | undefined;
      while (refused === undefined) {
        try {
          await store.appendToStream('s', [{ type: 'E', data: { n: acknowledged, pad: 'x'.repeat(100) } }]);
          acknowledged++;
        } catch (err) {
          refused = err as LocalDiskFullError;
        }
        expect(acknowledged, 'appends never refused').to.be.lessThan(1000);
      }
      expect(refused).to.be.instanceOf(LocalDiskFullError);
      expect(refused.code).to.equal('LOCAL_DISK_FULL');
      expect(refused.message).to.match(/maxLocalBytes \(12288\).*last object-store error/);
      expect(refused.localBytes).to.be.at.least(12 * 1024);
      await store.flush();
      const logBytes = segmentFiles(tmp.path, '.log').reduce((sum, file) => sum + fs.statSync(file).size, 0);
      expect(logBytes, 'local data stays near the watermark').to.be.lessThan(12 * 1024 + 2048 + 4096);
      expect((await rejection(store.appendToStream('s', [{ type: 'E', data: {} }]), LocalDiskFullError)).code).to.equal('LOCAL_DISK_FULL');
      expect(store.commitPosition, 'nothing of a refused append is written').to.equal(acknowledged);

      objects.down = false;
      await store.tiering.drain();
      await store.appendToStream('s', [{ type: 'E', data: { n: acknowledged } }]);
      store.tiering.clearCache();
      const events = await collect(store.readStream('s'));
      expect(events.map((e) => (e.data as { n: number }).n)).to.deep.equal([...Array(acknowledged + 1).keys()]);
    } finally {
      await store.close();
    }
  });

  it('looks for commits left by an earlier run with one listing, not one GET per segment', async () => {
    const objects = new MemoryObjectStore();
    objects.down = true; // Nothing uploads: a backlog for the next open.
    let store = await EventStore.open(tieredOptions(tmp.path, objects));
    await fill(store, 400);
    await store.close();
    objects.down = false;
    const before = { ...objects.calls };
    store = await EventStore.open(tieredOptions(tmp.path, objects));
    try {
      await store.tiering.drain();
      const { remoteSegments } = store.tiering.status();
      expect(remoteSegments).to.be.greaterThan(5);
      expect(objects.calls.get - before.get, 'GETs').to.equal(0);
      expect(objects.calls.list - before.list, 'listings: the writers, then the commits').to.equal(2);
      await expectCommitsIntact(objects);
      store.tiering.clearCache();
      expect((await collect(store.readAll())).length).to.equal(400);
    } finally {
      await store.close();
    }
  });

  it('retries failed, hung and truncated uploads, and a commit whose answer was lost, with nothing lost', async () => {
    const objects = new MemoryObjectStore({ requestTimeoutMs: 50 });
    objects.inject({ operation: 'put', kind: 'error', times: 2 });
    objects.inject({ operation: 'put', kind: 'hang', key: '.index' });
    objects.inject({ operation: 'put', kind: 'truncate', key: '.streams' });
    objects.inject({ operation: 'put', kind: 'corrupt', key: '.log' });
    objects.inject({ operation: 'put', kind: 'lost', key: 'commits/' });
    objects.inject({ operation: 'put', kind: 'truncate', key: 'commits/' });
    const store = await EventStore.open(tieredOptions(tmp.path, objects));
    try {
      await fill(store, 300);
      await store.tiering.drain();
      await expectCommitsIntact(objects); // Concurrent puts of a segment's files: none committed with a bad object.
      store.tiering.clearCache();
      expect((await collect(store.readAll())).map((e) => e.position)).to.deep.equal([...Array(300).keys()]);
      // An object of a segment with no commit yet (an upload in progress) is not an orphan.
      const inProgress = 'segments/00000000000001000000/0123456789abcdef/00000000000001000000.log';
      await objects.put(inProgress, Buffer.from('uploading'));
      const report = await store.tiering.scrub();
      expect(report.damaged).to.deep.equal([]);
      expect(report.deleted.length, 'the failed attempts left orphans').to.be.greaterThan(0);
      expect(report.deleted).to.not.include(inProgress);
      expect(objects.keys().filter((k) => k.startsWith('segments/') && k !== inProgress).length).to.equal(store.tiering.status().remoteSegments * 3);
      expect(objects.keys()).to.include(inProgress);
    } finally {
      await store.close();
    }
  });

  it('reads a corrupted or truncated remote object as CORRUPT_RECORD, never as data, and recovers once it is good', async () => {
    const objects = new MemoryObjectStore();
    const store = await EventStore.open(tieredOptions(tmp.path, objects));
    try {
      await fill(store, 200);
      await store.tiering.drain();
      const firstLog = objects.keys().find((k) => k.endsWith('.log'))!;
      const good = await objects.get(firstLog);
      for (const damage of [(b: Buffer) => b.subarray(0, b.length - 10), (b: Buffer) => Buffer.from(b.map((x, i) => (i === 100 ? x ^ 1 : x)))]) {
        objects.tamper(firstLog, damage);
        store.tiering.clearCache();
        await rejection(collect(store.readAll()), CorruptRecordError);
        objects.tamper(firstLog, () => good);
        expect((await collect(store.readAll())).length).to.equal(200);
      }
      objects.inject({ operation: 'get', kind: 'corrupt' });
      store.tiering.clearCache();
      await rejection(collect(store.readAll()), CorruptRecordError, 'a body damaged in transit');
      expect((await collect(store.readAll())).length, 'the retry fetches again').to.equal(200);
    } finally {
      await store.close();
    }
  });

  it('keeps local sealed data within localRetentionBytes plus one segment', async () => {
    const objects = new MemoryObjectStore();
    const store = await EventStore.open(storeOptions(tmp.path, { tiering: { objectStore: objects, localRetentionBytes: 5000 } }));
    try {
      await fill(store, 600);
      await store.tiering.drain();
      const logs = segmentFiles(tmp.path, '.log');
      const sealedBytes = logs.slice(0, -1).reduce((sum, f) => sum + fs.statSync(f).size, 0);
      expect(sealedBytes).to.be.at.most(5000 + 2048);
      expect(sealedBytes).to.be.greaterThan(5000 - 2048);
      expect(store.tiering.status().local.bytes).to.equal(sealedBytes);
    } finally {
      await store.close();
    }
  });

  for (const cacheBytes of [128 * 1024, 1024 * 1024]) {
    it(`keeps the memory of fetched blocks within cacheBytes (${cacheBytes / 1024} KiB), counted and measured`, async () => {
      const objects = new MemoryObjectStore();
      const store = await EventStore.open(storeOptions(tmp.path, { segmentBytes: 64 * 1024, tiering: { objectStore: objects, localRetentionBytes: 0, cacheBytes } }));
      try {
        // About 2 MiB, in 100 appends of 50 events.
        for (let i = 0; i < 100; i++) await store.appendToStream(`s-${i % 7}`, Array.from({ length: 50 }, (_, k) => ({ type: 'E', data: { i, k, pad: 'x'.repeat(300) } })));
        await store.tiering.drain();
        store.tiering.clearCache();
        // What the blocks really hold: the distinct buffers under them (a block may be a view of a larger GET answer).
        const measured = (): number => (store.tiering as unknown as { cache: BlockCache }).cache.measureHeldBytes();
        let events = 0;
        for await (const event of store.readAll()) {
          events = event.position + 1;
          if (events % 500 === 0) {
            expect(store.tiering.status().cache.bytes).to.be.at.most(cacheBytes);
            expect(measured()).to.equal(store.tiering.status().cache.bytes);
          }
        }
        expect(events).to.equal(5000);
        const { cache } = store.tiering.status();
        expect(cache.bytes).to.be.at.most(cacheBytes);
        expect(measured()).to.equal(cache.bytes);
        expect(cache.bytesFetched).to.be.greaterThan(cacheBytes);
      } finally {
        await store.close();
      }
    });
  }

  it('reads ahead on a cold scan: a readAll fetches each byte once, in a few GETs per segment', async () => {
    const objects = new MemoryObjectStore();
    const segmentBytes = 2 * 1024 * 1024;
    const store = await EventStore.open(storeOptions(tmp.path, { segmentBytes, indexIntervalBytes: 4096, tiering: { objectStore: objects, localRetentionBytes: 0 } }));
    try {
      // About 9 MiB: four sealed segments of 2 MiB and the active one.
      for (let i = 0; i < 80; i++) await store.appendToStream(`s-${i % 7}`, Array.from({ length: 100 }, (_, k) => ({ type: 'E', data: { i, k, pad: 'x'.repeat(1000) } })));
      const hot = shape(await collect(store.readAll()));
      await store.tiering.drain();
      const { remoteSegments } = store.tiering.status();
      expect(remoteSegments).to.be.at.least(3);
      const remoteBytes = segmentFiles(tmp.path, '.sealed').reduce((sum, file) => sum + decodeSidecar(file, fs.readFileSync(file)).data.bytes, 0);
      store.tiering.clearCache();
      const [gets, bytes] = [objects.calls.get, objects.bytesRead];
      expect(shape(await collect(store.readAll()))).to.deep.equal(hot);
      expect(objects.bytesRead - bytes, 'every byte of the evicted segments, once').to.equal(remoteBytes);
      // Without read-ahead each 256 KiB chunk of a scan is one GET: 8 or 9 per segment of 2 MiB.
      // With it: the first two chunks, then a window of 1 MiB and one of 4 MiB (the rest): at most 5.
      expect(objects.calls.get - gets).to.be.at.most(remoteSegments * 5);
    } finally {
      await store.close();
    }
  });

  it('rolls, seals and uploads an idle active segment after segmentMaxAgeMs', async () => {
    const objects = new MemoryObjectStore();
    const store = await EventStore.open(tieredOptions(tmp.path, objects, { segmentBytes: 1 << 20, segmentMaxAgeMs: 40 }));
    try {
      await store.appendToStream('idle', [{ type: 'E', data: {} }]);
      for (let i = 0; i < 100 && store.tiering.status().remoteSegments === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      await store.tiering.drain();
      expect(store.tiering.status().remoteSegments).to.equal(1);
      expect((await collect(store.readStream('idle'))).length).to.equal(1);
    } finally {
      await store.close();
    }
  });

  for (const damage of ['deleted', 'corrupted'] as const) {
    it(`repairs the ${damage} sidecar of an evicted segment from its commit, with the segment catalogue gone too`, async () => {
      const objects = new MemoryObjectStore();
      let store = await EventStore.open(tieredOptions(tmp.path, objects));
      await fill(store, 300);
      await store.tiering.drain();
      const before = shape(await collect(store.readAll()));
      await store.close();
      const sidecars = segmentFiles(tmp.path, '.sealed');
      expect(segmentFiles(tmp.path, '.log').length, 'evicted: only the active segment has data').to.equal(1);
      // The first segment's, one in the middle and the last sealed one's (the active one follows it).
      const damaged = [sidecars[0]!, sidecars[3]!, sidecars[sidecars.length - 1]!];
      const originals = damaged.map((file) => fs.readFileSync(file));
      for (const file of damaged) {
        if (damage === 'deleted') fs.rmSync(file);
        else fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 20));
      }
      fs.rmSync(path.join(tmp.path, 'log', 'segments.catalogue'));

      store = await EventStore.open(tieredOptions(tmp.path, objects));
      try {
        store.tiering.clearCache();
        expect(shape(await collect(store.readAll()))).to.deep.equal(before);
        expect(shape(await collect(store.readStream('s-4')))).to.deep.equal(before.filter((e) => (e as unknown[])[1] === 's-4'));
        damaged.forEach((file, i) => expect(fs.readFileSync(file).equals(originals[i]!), `${path.basename(file)} written back`).to.equal(true));
      } finally {
        await store.close();
      }
    });
  }

  it('fences a writer superseded on its prefix: its appends fail with FENCED', async () => {
    const objects = new MemoryObjectStore();
    const store = await EventStore.open(tieredOptions(tmp.path, objects));
    try {
      await fill(store, 100);
      await store.tiering.drain();
      // Another writer claims the next epoch (as a restore elsewhere does).
      await objects.put('writers/000000000002', Buffer.from('{}'), { ifNoneMatch: true });
      await fill(store, 200, 7, 100);
      await rejection(store.tiering.drain(), FencedError);
      expect(store.tiering.status().fenced).to.equal(true);
      await rejection(store.appendToStream('s-1', [{ type: 'E', data: {} }]), FencedError);
      expect((await collect(store.readAll())).length, 'what it acknowledged stays readable').to.equal(300);
    } finally {
      await store.close();
    }
  });
});

describe('restore and read-only replicas', () => {
  const writerDir = useTempDir();
  const otherDir = useTempDir();

  it('restores a writable store from the bucket alone, fetching no segment data, and appends after the last event', async () => {
    const objects = new MemoryObjectStore();
    const writer = await EventStore.open(tieredOptions(writerDir.path, objects));
    await fill(writer, 500);
    await writer.tiering.drain();
    const committed = writer.tiering.status().remoteSegments;
    const lastCommitted = (await collect(writer.readAll())).slice(0, 500);
    await writer.close();

    expect(objects.keys().filter((k) => k.endsWith('.log')).length).to.equal(committed);
    let smallBytes = 0;
    for (const key of objects.keys()) if (!key.endsWith('.log') && !key.startsWith('writers/')) smallBytes += (await objects.head(key))!.size;
    objects.bytesRead = 0;
    const restored = await EventStore.restore(tieredOptions(otherDir.path, objects));
    try {
      expect(objects.keys().filter((k) => k.startsWith('writers/'))).to.have.length(2);
      expect(objects.bytesRead, 'restore fetched commits and indexes, no segment data').to.equal(smallBytes);
      const events = await collect(restored.readAll());
      const upTo = restored.nextPosition;
      expect(shape(events)).to.deep.equal(shape(lastCommitted.slice(0, upTo)));
      expect(shape(await collect(restored.readStream('s-2')))).to.deep.equal(shape(lastCommitted.slice(0, upTo).filter((e) => e.streamId === 's-2')));
      const { position } = await restored.appendToStream('s-2', [{ type: 'E', data: { after: true } }]);
      expect(position).to.equal(upTo);
      expect(restored.tiering.status().epoch).to.equal(2);

      // The old writer, opened again on its own directory, is fenced: it cannot interleave commits.
      const old = await EventStore.open(tieredOptions(writerDir.path, objects));
      try {
        await rejection(old.tiering.drain(), FencedError);
        await rejection(old.appendToStream('s-2', [{ type: 'E', data: {} }]), FencedError);
      } finally {
        await old.close();
      }
    } finally {
      await restored.close();
    }
  });

  it('a restored store (no active data file) finds its evicted segments with their sidecars and catalogue gone', async () => {
    const objects = new MemoryObjectStore();
    const writer = await EventStore.open(tieredOptions(writerDir.path, objects));
    await fill(writer, 300);
    await writer.tiering.drain();
    await writer.close();
    let restored = await EventStore.restore(tieredOptions(otherDir.path, objects));
    const end = restored.nextPosition;
    const events = shape(await collect(restored.readAll()));
    await restored.close();
    expect(segmentFiles(otherDir.path, '.log'), 'a restore fetches no data').to.deep.equal([]);
    const sidecars = segmentFiles(otherDir.path, '.sealed');
    for (const file of sidecars.slice(-2)) fs.rmSync(file);
    fs.rmSync(path.join(otherDir.path, 'log', 'segments.catalogue'));
    restored = await EventStore.open(tieredOptions(otherDir.path, objects));
    try {
      expect(restored.nextPosition, 'the log still ends after the last committed segment').to.equal(end);
      expect(shape(await collect(restored.readAll()))).to.deep.equal(events);
      expect((await restored.appendToStream('s-1', [{ type: 'E', data: {} }])).position).to.equal(end);
    } finally {
      await restored.close();
    }
  });

  it('serves a read-only replica that picks up new segments and delivers them to live subscriptions', async () => {
    const objects = new MemoryObjectStore();
    const writer = await EventStore.open(tieredOptions(writerDir.path, objects));
    try {
      await fill(writer, 300);
      await writer.tiering.drain();
      const replica = await EventStore.open(tieredOptions(otherDir.path, objects, { readOnly: true, tiering: { objectStore: objects, pollIntervalMs: 60_000 } }));
      try {
        const first = replica.nextPosition;
        expect(first).to.be.greaterThan(100);
        expect(shape(await collect(replica.readAll()))).to.deep.equal(shape((await collect(writer.readAll())).slice(0, first)));
        await rejection(replica.appendToStream('x', [{ type: 'E', data: {} }]), ReadOnlyError);
        await rejection(replica.tiering.scrub(), ReadOnlyError, 'a replica deletes nothing in the writer\'s bucket');

        const seen: number[] = [];
        const subscription = replica.subscribe({ from: 'start' }).subscribe((e) => seen.push(e.position));
        await fill(writer, 300, 7, 300);
        await writer.tiering.drain();
        expect(await replica.tiering.refresh()).to.be.greaterThan(0);
        const end = replica.nextPosition;
        expect(end).to.be.greaterThan(first);
        for (let i = 0; i < 100 && seen.length < end; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        subscription.unsubscribe();
        expect(seen).to.deep.equal([...Array(end).keys()]);
        expect(shape(await collect(replica.readStream('s-4')))).to.deep.equal(shape((await collect(writer.readStream('s-4'))).filter((e) => e.position < end)));
      } finally {
        await replica.close();
      }
    } finally {
      await writer.close();
    }
  });
});

/** Cold equals hot through the real S3 and MinIO clients over HTTP (s3rver here; the environment's endpoint too when given). */
for (const start of [startS3rver, async () => endpointFromEnvironment()]) {
  describe(`cold equals hot over HTTP (${start === startS3rver ? 's3rver' : 'environment'})`, function () {
    this.timeout(120_000);
    const tmp = useTempDir();
    let endpoint: S3Endpoint | undefined;
    before(async function () {
      endpoint = await start();
      if (endpoint === undefined) this.skip();
    });
    after(async () => endpoint?.stop());

    const adapters: [string, () => ObjectStore][] = [
      ['s3', () => s3StoreFor(endpoint!)],
      ['minio', () => minioStoreFor(endpoint!)],
    ];
    for (const [name, make] of adapters) {
      it(`reads every event back identically once tiered, evicted and uncached (${name})`, async () => {
        const objects = make();
        const store = await EventStore.open(tieredOptions(tmp.path, objects, { segmentBytes: 16 * 1024 }));
        try {
          await fill(store, 2000, 13);
          const hot = shape(await collect(store.readAll()));
          const hotStreams = await Promise.all(['s-1', 's-12'].map(async (id) => shape(await collect(store.readStream(id)))));
          await store.tiering.drain();
          expect(store.tiering.status().local.segments).to.equal(0);
          store.tiering.clearCache();
          expect(shape(await collect(store.readAll()))).to.deep.equal(hot);
          store.tiering.clearCache();
          expect(await Promise.all(['s-1', 's-12'].map(async (id) => shape(await collect(store.readStream(id)))))).to.deep.equal(hotStreams);
          expect((await store.tiering.scrub()).damaged).to.deep.equal([]);
        } finally {
          await store.close();
        }
      });
    }
  });
}
