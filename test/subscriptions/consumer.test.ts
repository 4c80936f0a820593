import { expect } from 'chai';
import { VirtualTimeScheduler, concatMap, filter, type Subscription } from 'rxjs';
import { EventStore, consumerStreamOf, isColdstreamError, type ConsumerMessage, type RecordedEvent } from '../../lib/index.js';
import { seededRandom } from '../helpers/random.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { collect, until } from '../helpers/async.js';

const options = (dir: string) => ({ dir, durability: 'none' as const, segmentBytes: 4096, indexIntervalBytes: 256 });



const eventsOf = (messages: ConsumerMessage[]): RecordedEvent[] => messages.flatMap((m) => (m.type === 'event' ? [m.event] : []));

describe('EventStore durable consumers', () => {
  const tmp = useTempDir();

  async function fill(store: EventStore, from: number, count: number): Promise<void> {
    for (let i = from; i < from + count; i++) await store.appendToStream(`item-${i % 5}`, [{ type: 'Added', data: { i } }]);
  }

  it('resumes after its checkpoint when the store is reopened', async () => {
    let store = await EventStore.open(options(tmp.path));
    await fill(store, 0, 30);
    const first: ConsumerMessage[] = [];
    const sub = store.consumer('c').subscribe((m) => first.push(m));
    await until(() => first.some((m) => m.type === 'caughtUp'), 'caughtUp');
    sub.unsubscribe();
    await store.close();
    store = await EventStore.open(options(tmp.path));
    await fill(store, 30, 10);
    const second: ConsumerMessage[] = [];
    const again = store.consumer('c').subscribe((m) => second.push(m));
    await until(() => second.some((m) => m.type === 'caughtUp'), 'caughtUp again');
    again.unsubscribe();
    expect(eventsOf(first).map((e) => e.position)).to.deep.equal([...Array(30).keys()]);
    // The checkpoint written at the first stop is an event too (of a system stream, which
    // consumers and readAll skip), so the new events start after it.
    const added = await collect(store.readAll({ fromPosition: 30 }));
    expect(added).to.have.length(10);
    expect(eventsOf(second)).to.deep.equal(added);
    await store.close();
  });

  it('delivers again, after a restart, every event it did not commit (manual commits)', async () => {
    const store = await EventStore.open(options(tmp.path));
    await fill(store, 0, 20);
    const seen: ConsumerMessage[] = [];
    const sub = store.consumer('m', { commit: 'manual', checkpointEveryEvents: 1 }).subscribe((m) => {
      seen.push(m);
      // Commit out of order, as a concurrent handler would: 0-6 and 8, not 7.
      if (m.type === 'event' && m.event.position < 9 && m.event.position !== 7) m.commit();
    });
    await until(() => seen.some((m) => m.type === 'caughtUp'), 'caughtUp');
    sub.unsubscribe();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const again: ConsumerMessage[] = [];
    const resumed = store.consumer('m').subscribe((m) => again.push(m));
    await until(() => again.some((m) => m.type === 'caughtUp'), 'caughtUp again');
    resumed.unsubscribe();
    expect(eventsOf(again)[0]?.position, 'the first event not committed').to.equal(7);
    expect(eventsOf(again).map((e) => e.position)).to.deep.equal(Array.from({ length: 13 }, (_, k) => 7 + k));
    await store.close();
  });

  it('builds a read model equal to a full replay across kills and restarts (idempotent handler)', async function () {
    this.timeout(30_000);
    const store = await EventStore.open(options(tmp.path));
    const random = seededRandom(42);
    const model = new Map<string, number>(); // stream -> last i seen: idempotent by construction
    const apply = (event: RecordedEvent): void => {
      model.set(event.streamId, (event.data as { i: number }).i);
    };
    let written = 0;
    for (let round = 0; round < 6; round++) {
      await fill(store, written, 25);
      written += 25;
      const projection = store.project('model', async (event) => {
        if (random.int(10) === 0) await new Promise((resolve) => setImmediate(resolve));
        apply(event);
      }, { checkpointEveryEvents: 7 });
      // Stop at a random moment: sometimes before it caught up.
      if (random.int(2) === 0) await projection.caughtUp;
      else await new Promise((resolve) => setTimeout(resolve, random.int(3)));
      await projection.stop();
    }
    const final = store.project('model', apply);
    await final.caughtUp;
    await final.stop();
    const replay = new Map<string, number>();
    for (const event of await collect(store.readAll())) replay.set(event.streamId, (event.data as { i: number }).i);
    expect([...model].sort()).to.deep.equal([...replay].sort());
    await store.close();
  });

  it('writes the checkpoint everyMs after the first commit, on the given scheduler (no sleeping)', async () => {
    const store = await EventStore.open(options(tmp.path));
    await fill(store, 0, 3);
    const scheduler = new VirtualTimeScheduler();
    const seen: ConsumerMessage[] = [];
    const sub = store.consumer('timed', { scheduler, checkpointEveryEvents: 1000, checkpointEveryMs: 60_000 }).subscribe((m) => seen.push(m));
    await until(() => seen.some((m) => m.type === 'caughtUp'), 'caughtUp');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await collect(store.readStream(consumerStreamOf('timed'))), 'no checkpoint before the time').to.have.length(0);
    scheduler.flush(); // 60 s of virtual time.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const checkpoints = await collect(store.readStream(consumerStreamOf('timed')));
    expect(checkpoints.map((e) => (e.data as { position: number }).position)).to.deep.equal([3]);
    sub.unsubscribe();
    await store.close();
  });

  it('stops reading while too many delivered events are not committed (bounded memory for slow handlers)', async function () {
    this.timeout(20_000);
    const store = await EventStore.open({ ...options(tmp.path), segmentBytes: 1 << 20 });
    for (let i = 0; i < 40; i++) await store.appendMany([{ streamId: `bulk-${i}`, events: Array.from({ length: 250 }, (_, k) => ({ type: 'B', data: { k } })) }]);
    const pending: ConsumerMessage[] = [];
    let delivered = 0;
    const sub: Subscription = store.consumer('slow', { commit: 'manual', maxInFlight: 100 }).pipe(filter((m) => m.type === 'event')).subscribe((m) => {
      delivered++;
      pending.push(m);
    });
    await until(() => delivered > 0, 'first events');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const held = delivered;
    // One page (256 KiB of ~60-byte records) past the limit at most; far from the 10,000 there are.
    expect(held).to.be.at.most(100 + 5000);
    expect(held).to.be.below(10_000);
    for (const m of pending.splice(0)) if (m.type === 'event') m.commit();
    await until(() => delivered > held, 'reading to resume after commits');
    sub.unsubscribe();
    await store.close();
  });

  it('lets one consumer of a name run at a time, and completes consumers when the store closes', async () => {
    const store = await EventStore.open(options(tmp.path));
    await fill(store, 0, 3);
    let completed = false;
    store.consumer('solo').subscribe({ complete: () => (completed = true) });
    let error: unknown;
    store.consumer('solo').subscribe({ error: (e: unknown) => (error = e) });
    expect(isColdstreamError(error, 'CONSUMER_ACTIVE')).to.equal(true);
    await new Promise((resolve) => setTimeout(resolve, 10));
    await store.close();
    expect(completed).to.equal(true);
    const reopened = await EventStore.open(options(tmp.path));
    const checkpoints = await collect(reopened.readStream(consumerStreamOf('solo')));
    expect(checkpoints.at(-1)?.data, 'the last checkpoint, written on close').to.deep.equal({ position: 3 });
    await reopened.close();
  });

  it('processes asynchronously with concatMap and manual commits', async () => {
    const store = await EventStore.open(options(tmp.path));
    await fill(store, 0, 10);
    const handled: number[] = [];
    const sub = store
      .consumer('async', { commit: 'manual' })
      .pipe(
        filter((m) => m.type === 'event'),
        concatMap(async (m) => {
          if (m.type !== 'event') return;
          await new Promise((resolve) => setImmediate(resolve));
          handled.push(m.event.position);
          m.commit();
        }),
      )
      .subscribe();
    await until(() => handled.length === 10, 'ten handled');
    sub.unsubscribe();
    expect(handled).to.deep.equal([...Array(10).keys()]);
    await store.close();
  });
});
