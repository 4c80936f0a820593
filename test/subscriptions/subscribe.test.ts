import { expect } from 'chai';
import fs from 'node:fs';
import { asapScheduler, concatMap, firstValueFrom, filter, take, toArray, type Subscription } from 'rxjs';
import { EventStore, isColdstreamError, type RecordedEvent, type SubscriptionMessage } from '../../lib/index.js';
import { seededRandom } from '../helpers/random.js';
import { withOpenStore } from '../helpers/temp-dir.js';
import { collect, until } from '../helpers/async.js';

const options = (dir: string) => ({ dir, durability: 'none' as const, segmentBytes: 4096, indexIntervalBytes: 256 });



describe('EventStore.subscribe', () => {
  withOpenStore((dir) => EventStore.open(options(dir)), (ctx) => {

  async function append(streamId: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) await ctx.store.appendToStream(streamId, [{ type: i % 2 === 0 ? 'Even' : 'Odd', data: { i } }]);
  }

  it('delivers history, signals caughtUp once, then delivers live events in order', async () => {
    await append('a', 30);
    const messages: SubscriptionMessage[] = [];
    const subscription = ctx.store.subscribeMessages().subscribe((m) => messages.push(m));
    await until(() => messages.some((m) => m.type === 'caughtUp'), 'caughtUp');
    await append('b', 20);
    await until(() => messages.filter((m) => m.type === 'event').length === 50, '50 events');
    subscription.unsubscribe();
    const caughtUp = messages.findIndex((m) => m.type === 'caughtUp');
    expect(messages[caughtUp]).to.deep.equal({ type: 'caughtUp', position: 30 });
    expect(messages.filter((m) => m.type === 'caughtUp')).to.have.length(1);
    const positions = messages.flatMap((m) => (m.type === 'event' ? [m.event.position] : []));
    expect(positions).to.deep.equal([...Array(50).keys()]);
    expect(messages.slice(0, caughtUp).every((m) => m.type === 'event')).to.equal(true);
  });

  it('starts at a position (inclusive) or at the end, and delivers events equal to what readAll reads', async () => {
    await append('a', 12);
    const fromSeven = await firstValueFrom(ctx.store.subscribe({ from: 7 }).pipe(take(5), toArray()));
    expect(fromSeven).to.deep.equal((await collect(ctx.store.readAll({ fromPosition: 7 }))).slice(0, 5));
    const received: RecordedEvent[] = [];
    const live = ctx.store.subscribe({ from: 'end' }).subscribe((e) => received.push(e));
    await append('b', 3);
    await until(() => received.length === 3, 'three live events');
    live.unsubscribe();
    expect(received.map((e) => e.position)).to.deep.equal([12, 13, 14]);
  });

  it('never delivers a gap or a duplicate to many subscribers started anywhere while writers append', async function () {
    this.timeout(60_000);
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = seededRandom(seed);
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let n = 0; n < 40; n++) {
          await ctx.store.appendToStream(`${w % 2 === 0 ? 'order' : 'user'}-${seed}-${w}`, Array.from({ length: 1 + random.int(3) }, (_, k) => ({ type: k === 0 ? 'Created' : 'Changed', data: { n, k } })));
          if (random.int(4) === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      });
      const subscribers: { from: number; prefix?: string; seen: RecordedEvent[]; subscription: Subscription }[] = [];
      const startSubscriber = (): void => {
        const from = random.int(ctx.store.commitPosition + 1);
        const prefix = random.int(3) === 0 ? 'order-' : undefined;
        const seen: RecordedEvent[] = [];
        const source = ctx.store.subscribe({ from, filter: prefix === undefined ? undefined : { streamPrefix: prefix } });
        // A third of the subscribers process each event asynchronously, with random delays.
        const delayed = random.int(3) === 0;
        const processed = delayed ? source.pipe(concatMap(async (e) => (random.int(4) === 0 ? await new Promise((resolve) => setTimeout(resolve, 1)) : undefined, e))) : source.pipe(filter(() => true));
        const subscription = processed.subscribe((e) => seen.push(e));
        subscribers.push({ from, prefix, seen, subscription });
      };
      const starting = (async () => {
        for (let s = 0; s < 12; s++) {
          startSubscriber();
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const onScheduler: RecordedEvent[] = [];
      const scheduled = ctx.store.subscribe({ from: 'start', scheduler: asapScheduler }).subscribe((e) => onScheduler.push(e));
      await Promise.all([...writers, starting]);
      const all = await collect(ctx.store.readAll());
      for (const s of subscribers) {
        const expected = all.filter((e) => e.position >= s.from && (s.prefix === undefined || e.streamId.startsWith(s.prefix)));
        await until(() => s.seen.length >= expected.length, `seed ${seed}: a subscriber from ${s.from} to catch up`);
        s.subscription.unsubscribe();
        expect(s.seen.map((e) => e.position), `seed ${seed}, from ${s.from}, prefix ${s.prefix}`).to.deep.equal(expected.map((e) => e.position));
        expect(s.seen).to.deep.equal(expected);
      }
      await until(() => onScheduler.length >= all.length, 'the scheduled subscriber');
      scheduled.unsubscribe();
      expect(onScheduler.map((e) => e.position)).to.deep.equal(all.map((e) => e.position));
    }
  });

  it('makes progress through non-matching events of a filtered subscription (checkpoints)', async () => {
    await append('noise', 200);
    await append('signal', 1);
    const messages: SubscriptionMessage[] = [];
    const subscription = ctx.store.subscribeMessages({ filter: { streamPrefix: 'signal' } }).subscribe((m) => messages.push(m));
    await until(() => messages.some((m) => m.type === 'caughtUp'), 'caughtUp');
    subscription.unsubscribe();
    const checkpoints = messages.flatMap((m) => (m.type === 'checkpoint' ? [m.position] : []));
    expect(checkpoints.length).to.be.greaterThan(0);
    expect(checkpoints.at(-1)).to.equal(201);
    expect(messages.filter((m) => m.type === 'event').map((m) => (m as { event: RecordedEvent }).event.streamId)).to.deep.equal(['signal']);
  });

  it('tells a subscriber that fell behind, keeps reading history for it, and tells it when it caught up again', async () => {
    const messages: SubscriptionMessage[] = [];
    let burst = false;
    const subscription = ctx.store.subscribeMessages({ maxLagEvents: 5 }).subscribe((m) => {
      messages.push(m);
      if (m.type === 'event' && !burst) {
        burst = true;
        // Twenty appends land while the subscriber is still busy with this event.
        for (let i = 0; i < 20; i++) void ctx.store.appendToStream('burst', [{ type: 'B', data: { i } }]);
      }
    });
    await until(() => messages.some((m) => m.type === 'caughtUp'), 'caughtUp');
    await append('first', 1);
    await until(() => messages.filter((m) => m.type === 'event').length === 21, 'all 21 events');
    subscription.unsubscribe();
    const kinds = messages.map((m) => m.type);
    expect(kinds.indexOf('fellBehind')).to.be.greaterThan(kinds.indexOf('caughtUp'));
    expect(kinds.lastIndexOf('caughtUp')).to.be.greaterThan(kinds.indexOf('fellBehind'));
    const positions = messages.flatMap((m) => (m.type === 'event' ? [m.event.position] : []));
    expect(positions).to.deep.equal([...Array(21).keys()]);
  });

  it('completes every subscription when the store closes, and stops delivering after unsubscribe', async () => {
    await append('a', 3);
    let completed = 0;
    const received: RecordedEvent[] = [];
    ctx.store.subscribe().subscribe({ complete: () => completed++ });
    ctx.store.subscribe({ from: 'end' }).subscribe({ complete: () => completed++ });
    const stopped = ctx.store.subscribe().subscribe((e) => received.push(e));
    await until(() => received.length === 3, 'history');
    stopped.unsubscribe();
    await append('a', 2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(received).to.have.length(3);
    await ctx.store.close();
    expect(completed).to.equal(2);
  });

  it('delivers to a live subscriber while a writer that awaits each append is still writing (durability none)', async () => {
    // Default (large) segments: no segment file is created, which would yield by accident.
    const store = await EventStore.open({ dir: `${ctx.dir}-busy`, durability: 'none' });
    after(() => fs.rmSync(`${ctx.dir}-busy`, { recursive: true, force: true }));
    const received: RecordedEvent[] = [];
    const subscription = store.subscribe({ from: 'end' }).subscribe((e) => received.push(e));
    await store.appendToStream('busy', [{ type: 'T', data: { i: -1 } }]);
    await until(() => received.length === 1, 'the first event');
    let receivedWhileWriting = 0;
    for (let i = 0; i < 3000; i++) {
      await store.appendToStream('busy', [{ type: 'T', data: { i } }]);
      receivedWhileWriting = Math.max(receivedWhileWriting, received.length - 1);
      if (receivedWhileWriting > 0 && i > 100) break;
    }
    subscription.unsubscribe();
    await store.close();
    // A writer loop that never reaches a macrotask would starve the subscriber until it stops.
    expect(receivedWhileWriting).to.be.greaterThan(0);
  });

  it('rejects bad options with ValidationError', () => {
    for (const bad of [{ from: -1 }, { from: 'middle' }, { maxLagEvents: 0 }, { filter: 7 }] as never[]) {
      let error: unknown;
      try {
        ctx.store.subscribe(bad);
      } catch (e) {
        error = e;
      }
      expect(isColdstreamError(error, 'VALIDATION'), JSON.stringify(bad)).to.equal(true);
    }
  });
});
});

describe('EventStore.subscribeToStream', () => {
  withOpenStore((dir) => EventStore.open(options(dir)), (ctx) => {

  it('delivers the stream from a revision through history into live, without a gap or a duplicate at the switch', async () => {
    for (let i = 0; i < 40; i++) {
      await ctx.store.appendToStream('s', [{ type: 'T', data: { i } }]);
      await ctx.store.appendToStream(`other-${i % 3}`, [{ type: 'T', data: { i } }]);
    }
    const seen: RecordedEvent[] = [];
    const messages: string[] = [];
    const subscription = ctx.store.subscribeToStreamMessages('s', { fromRevision: 5 }).subscribe((m) => {
      messages.push(m.type);
      if (m.type === 'event') seen.push(m.event);
    });
    // Appends race the catch-up.
    for (let i = 40; i < 60; i++) await ctx.store.appendToStream('s', [{ type: 'T', data: { i } }]);
    await until(() => seen.length === 55, '55 events');
    subscription.unsubscribe();
    expect(seen.map((e) => e.revision)).to.deep.equal(Array.from({ length: 55 }, (_, k) => k + 5));
    expect(seen.every((e) => e.streamId === 's')).to.equal(true);
    expect(messages.filter((t) => t === 'caughtUp')).to.have.length(1);
  });

  it("starts at the end with 'end', and delivers nothing of other streams", async () => {
    await ctx.store.appendToStream('s', [{ type: 'T', data: 0 }]);
    const seen: RecordedEvent[] = [];
    const subscription = ctx.store.subscribeToStream('s', { fromRevision: 'end' }).subscribe((e) => seen.push(e));
    await ctx.store.appendToStream('t', [{ type: 'T', data: 1 }]);
    await ctx.store.appendToStream('s', [{ type: 'T', data: 2 }]);
    await until(() => seen.length === 1, 'one event');
    subscription.unsubscribe();
    expect(seen.map((e) => [e.streamId, e.revision])).to.deep.equal([['s', 1]]);
  });
});
});
