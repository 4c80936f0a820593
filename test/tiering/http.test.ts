/**
 * Restore, read-only replicas and fencing end to end over HTTP, through the s3 and minio
 * adapters: against s3rver always, and against the endpoint in the environment when one is given
 * (`.ci/run` gives the RADOS Gateway that `.ci/rgw` starts). Where the server honours conditional
 * writes, fencing is proven by them: a writer that missed a newer writer's epoch (the window
 * between its check and its commit) is refused by the server itself (412), never replaces the
 * newer writer's commit, and is fenced.
 */
import { expect } from 'chai';
import { endpointFromEnvironment, freshPrefix, minioStoreFor, s3StoreFor, startS3rver, type S3Endpoint } from '../helpers/s3-servers.js';
import { EventStore, FencedError, ReadOnlyError, type EventStoreOptions, type RecordedEvent } from '../../lib/index.js';
import { isColdstreamError, ObjectNotFoundError } from '../../lib/errors.js';
import { commitKey, writerKey } from '../../lib/tiering/layout.js';
import { listAll, type GetOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from '../../lib/tiering/object-store.js';
import { collect, rejection, storeOptions } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp-dir.js';

/** Appends `count` events over `streams` streams in batches of 5, each event's data saying `by` whom. */
async function fill(store: EventStore, count: number, by: string, streams = 7): Promise<void> {
  for (let i = 0; i < count; i += 5) {
    const requests = [];
    for (let k = i; k < Math.min(i + 5, count); k++) requests.push({ streamId: `s-${k % streams}`, events: [{ type: 'E', data: { by, k, pad: 'x'.repeat(40) } }] });
    await store.appendMany(requests);
  }
}

function shape(events: RecordedEvent[]): unknown[] {
  return events.map((e) => [e.position, e.streamId, e.revision, e.type, e.data]);
}

function options(dir: string, objectStore: ObjectStore, overrides: Partial<EventStoreOptions> = {}): EventStoreOptions {
  return storeOptions(dir, { segmentBytes: 8 * 1024, tiering: { objectStore, localRetentionBytes: 0, cacheBytes: 1 << 20, retryBaseMs: 5 }, ...overrides });
}

/**
 * An adapter seen through a writer's stale view: keys in `hidden` (what another writer wrote
 * since this one last looked) read as absent, until the server refuses a conditional put on one
 * of them, which every refusal records. Writes go to the server unchanged. Also records the keys
 * fetched with get.
 */
class StaleView implements ObjectStore {
  readonly hidden = new Set<string>();
  readonly refused: { key: string; error: unknown }[] = [];
  readonly fetched: string[] = [];
  constructor(private readonly inner: ObjectStore) {}
  get description(): string {
    return this.inner.description;
  }
  get conditionalWrites(): boolean {
    return this.inner.conditionalWrites;
  }
  async put(key: string, body: Buffer, options?: PutOptions): Promise<ObjectInfo> {
    try {
      return await this.inner.put(key, body, options);
    } catch (err) {
      if (isColdstreamError(err, 'PRECONDITION_FAILED')) {
        this.refused.push({ key, error: err });
        this.hidden.delete(key);
      }
      throw err;
    }
  }
  get(key: string, options?: GetOptions): Promise<Buffer> {
    if (this.hidden.has(key)) return Promise.reject(new ObjectNotFoundError(key));
    this.fetched.push(key);
    return this.inner.get(key, options);
  }
  async head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined> {
    return this.hidden.has(key) ? undefined : this.inner.head(key, options);
  }
  async list(prefix: string, options?: { after?: string; signal?: AbortSignal }): Promise<ListPage> {
    const page = await this.inner.list(prefix, options);
    return { objects: page.objects.filter((o) => !this.hidden.has(o.key)), next: page.next };
  }
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.inner.delete(key, options);
  }
}

async function keysOf(store: ObjectStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of listAll(store, '')) keys.push(info.key);
  return keys;
}

for (const start of [startS3rver, async () => endpointFromEnvironment()]) {
  describe(`restore, replicas and fencing over HTTP (${start === startS3rver ? 's3rver' : 'environment'})`, function () {
    this.timeout(120_000);
    const writerDir = useTempDir();
    const otherDir = useTempDir();
    const thirdDir = useTempDir();
    let endpoint: S3Endpoint | undefined;
    before(async function () {
      endpoint = await start();
      if (endpoint === undefined) this.skip();
    });
    after(async () => endpoint?.stop());

    /** Adapters on one prefix, as separate machines would have them. */
    const adapters: [string, (prefix: string) => ObjectStore][] = [
      ['s3', (prefix) => s3StoreFor(endpoint!, { prefix })],
      ['minio', (prefix) => minioStoreFor(endpoint!, { prefix })],
    ];
    for (const [name, make] of adapters) {
      it(`restores a writable store from the bucket alone, fetching no segment data, and fences the old writer (${name})`, async () => {
        const prefix = freshPrefix();
        const writer = await EventStore.open(options(writerDir.path, make(prefix)));
        await fill(writer, 600, 'writer');
        await writer.tiering.drain();
        const written = shape(await collect(writer.readAll()));
        await writer.close();

        const objects = new StaleView(make(prefix));
        const restored = await EventStore.restore(options(otherDir.path, objects));
        try {
          expect(objects.fetched.filter((k) => k.endsWith('.log')), 'restore fetched no segment data').to.deep.equal([]);
          const upTo = restored.nextPosition;
          expect(upTo).to.be.greaterThan(100);
          expect(shape(await collect(restored.readAll()))).to.deep.equal(written.slice(0, upTo));
          const { position } = await restored.appendToStream('s-2', [{ type: 'E', data: { after: true } }]);
          expect(position).to.equal(upTo);
          expect(restored.tiering.status().epoch).to.equal(2);

          // The old writer, opened again on its own directory, is fenced: it cannot interleave commits.
          const old = await EventStore.open(options(writerDir.path, make(prefix)));
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

      it(`serves a read-only replica that picks up new segments and delivers them to live subscriptions (${name})`, async () => {
        const prefix = freshPrefix();
        const writer = await EventStore.open(options(writerDir.path, make(prefix)));
        try {
          await fill(writer, 600, 'writer');
          await writer.tiering.drain();
          const replicaObjects = make(prefix);
          const replica = await EventStore.open(options(otherDir.path, replicaObjects, { readOnly: true, tiering: { objectStore: replicaObjects, pollIntervalMs: 60_000 } }));
          try {
            const first = replica.nextPosition;
            expect(first).to.be.greaterThan(100);
            expect(shape(await collect(replica.readAll()))).to.deep.equal(shape((await collect(writer.readAll())).slice(0, first)));
            await rejection(replica.appendToStream('x', [{ type: 'E', data: {} }]), ReadOnlyError);

            const seen: number[] = [];
            const subscription = replica.subscribe({ from: 'start' }).subscribe((e) => seen.push(e.position));
            await fill(writer, 600, 'more');
            await writer.tiering.drain();
            expect(await replica.tiering.refresh()).to.be.greaterThan(0);
            const end = replica.nextPosition;
            expect(end).to.be.greaterThan(first);
            for (let i = 0; i < 200 && seen.length < end; i++) await new Promise((resolve) => setTimeout(resolve, 10));
            subscription.unsubscribe();
            expect(seen).to.deep.equal([...Array(end).keys()]);
            replica.tiering.clearCache();
            expect(shape(await collect(replica.readStream('s-4')))).to.deep.equal(shape((await collect(writer.readStream('s-4'))).filter((e) => e.position < end)));
          } finally {
            await replica.close();
          }
        } finally {
          await writer.close();
        }
      });

      it(`fences by conditional writes: a writer that missed a newer epoch is refused by the server (412) and never replaces its commit (${name})`, async function () {
        if (!endpoint!.conditionalWrites) this.skip(); // s3rver ignores If-None-Match: the HEAD before each put leaves this window open.
        const prefix = freshPrefix();
        const plain = make(prefix);
        // Writer A (epoch 1) commits some segments; its active segment, from position P, is not committed.
        const aObjects = new StaleView(make(prefix));
        const a = await EventStore.open(options(writerDir.path, aObjects));
        try {
          await fill(a, 150, 'A');
          await a.tiering.drain();
          expect(a.tiering.status().epoch).to.equal(1);
          const before = new Set(await keysOf(plain));

          // Writer B restores on another machine (epoch 2) and commits its own events from P on.
          const b = await EventStore.restore(options(otherDir.path, make(prefix)));
          try {
            const p = b.nextPosition;
            expect(p).to.be.greaterThan(0);
            await fill(b, 300, 'B');
            await b.tiering.drain();
            expect(b.tiering.status().epoch).to.equal(2);
            const bCommit = await plain.get(commitKey(p));
            const bEvents = shape(await collect(b.readAll()));

            // A has not seen anything B wrote (B claimed its epoch just after A's check), and seals a
            // different segment at P: only the server's refusal of its conditional commit stops it.
            for (const key of await keysOf(plain)) if (!before.has(key)) aObjects.hidden.add(key);
            expect(aObjects.hidden.has(writerKey(2)) && aObjects.hidden.has(commitKey(p))).to.equal(true);
            await fill(a, 300, 'A2');
            await rejection(a.tiering.drain(), FencedError, "A's drain");
            expect(a.tiering.status().fenced).to.equal(true);
            await rejection(a.appendToStream('s-1', [{ type: 'E', data: {} }]), FencedError);
            const refusal = aObjects.refused.find((r) => r.key === commitKey(p));
            expect(refusal, `refused: ${aObjects.refused.map((r) => r.key).join(', ')}`).to.not.equal(undefined);
            expect((refusal!.error as Error).cause, 'the refusal came from the server').to.not.equal(undefined);
            expect((await plain.get(commitKey(p))).equals(bCommit), "B's commit is intact").to.equal(true);

            // A third writer that also missed B's epoch claims it: refused (412), it takes the next one.
            const cObjects = new StaleView(make(prefix));
            const bWriter = await plain.get(writerKey(2));
            cObjects.hidden.add(writerKey(2));
            const c = await EventStore.restore(options(thirdDir.path, cObjects));
            try {
              await c.tiering.drain();
              expect(c.tiering.status().epoch).to.equal(3);
              expect(cObjects.refused.map((r) => r.key)).to.deep.equal([writerKey(2)]);
              expect((await plain.get(writerKey(2))).equals(bWriter), "B's epoch object is intact").to.equal(true);
              c.tiering.clearCache();
              expect(shape(await collect(c.readAll())), "what B committed, none of A's later events").to.deep.equal(bEvents.slice(0, c.nextPosition));
              expect(c.nextPosition).to.be.greaterThan(p);
            } finally {
              await c.close();
            }
          } finally {
            await b.close();
          }
        } finally {
          await a.close();
        }
      });
    }
  });
}
