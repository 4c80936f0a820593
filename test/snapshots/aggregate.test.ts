import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { firstValueFrom, take, toArray } from 'rxjs';
import { EventStore, snapshotStreamOf, type AggregateOptions, type RecordedEvent } from '../../lib/index.js';
import { ManualClock, withOpenStore } from '../helpers/temp-dir.js';
import { collect } from '../helpers/async.js';

interface Cart {
  readonly items: number;
  readonly total: number;
}

/** A cart aggregate whose evolve counts its calls. */
function cart(extra: Partial<AggregateOptions<Cart>> = {}): AggregateOptions<Cart> & { calls: number } {
  const options = {
    calls: 0,
    initialState: () => ({ items: 0, total: 0 }),
    evolve: (state: Cart, event: RecordedEvent): Cart => {
      options.calls++;
      const { price } = event.data as { price: number };
      return event.type === 'ItemAdded' ? { items: state.items + 1, total: state.total + price } : state;
    },
    ...extra,
  };
  return options;
}


const clock = new ManualClock();
const open = (dir: string) => EventStore.open({ dir, durability: 'none', segmentBytes: 2048, indexIntervalBytes: 128, clock });

describe('EventStore aggregates and snapshots', () => {
  withOpenStore(open, (ctx) => {
    async function addItems(streamId: string, count: number, price = 2): Promise<void> {
      for (let i = 0; i < count; i++) await ctx.store.appendToStream(streamId, [{ type: 'ItemAdded', data: { price } }]);
    }

    it('folds a stream into state and revision, and a missing stream into the initial state', async () => {
      await addItems('cart-1', 5);
      expect(await ctx.store.aggregateStream('cart-1', cart())).to.deep.equal({ state: { items: 5, total: 10 }, revision: 4 });
      expect(await ctx.store.aggregateStream('cart-none', cart())).to.deep.equal({ state: { items: 0, total: 0 }, revision: 'no_stream' });
    });

    it('takes a snapshot every N events and then folds only the events after it', async () => {
      await addItems('cart-2', 30);
      const first = cart({ snapshots: { schemaVersion: 1, everyEvents: 25 } });
      expect((await ctx.store.aggregateStream('cart-2', first)).state).to.deep.equal({ items: 30, total: 60 });
      expect(first.calls).to.equal(30);
      const snapshots = await collect(ctx.store.readStream(snapshotStreamOf('cart-2')));
      expect(snapshots.map((s) => (s.data as { revision: number }).revision)).to.deep.equal([29]);
      await addItems('cart-2', 3, 10);
      const second = cart({ snapshots: { schemaVersion: 1, everyEvents: 25 } });
      expect(await ctx.store.aggregateStream('cart-2', second)).to.deep.equal({ state: { items: 33, total: 90 }, revision: 32 });
      expect(second.calls, 'only the events after the snapshot').to.equal(3);
      // The stream's own revisions are untouched by snapshots.
      expect((await ctx.store.streamHead('cart-2'))?.revision).to.equal(32);
    });

    it('ignores snapshots of another schema version and replays the stream', async () => {
      await addItems('cart-3', 10);
      await ctx.store.aggregateStream('cart-3', cart({ snapshots: { schemaVersion: 'v1', everyEvents: 5 } }));
      const v2 = cart({ snapshots: { schemaVersion: 'v2', everyEvents: 5 } });
      expect((await ctx.store.aggregateStream('cart-3', v2)).state).to.deep.equal({ items: 10, total: 20 });
      expect(v2.calls).to.equal(10);
      const versions = (await collect(ctx.store.readStream(snapshotStreamOf('cart-3')))).map((s) => (s.data as { schemaVersion: string }).schemaVersion);
      expect(versions).to.deep.equal(['v1', 'v2']);
    });

    it('takes a snapshot after a slow load (injected clock)', async () => {
      await addItems('cart-4', 3);
      const slow = cart({ snapshots: { schemaVersion: 1, everyEvents: 1000, whenLoadSlowerThanMs: 50 } });
      const evolve = slow.evolve;
      await ctx.store.aggregateStream('cart-4', { ...slow, evolve: (s, e) => (clock.advance(20), evolve(s, e)) });
      expect(await collect(ctx.store.readStream(snapshotStreamOf('cart-4')))).to.have.length(1);
    });

    it('falls back to a full replay, never a wrong state, when the snapshot is damaged on disk', async () => {
      await addItems('cart-5', 20);
      await ctx.store.aggregateStream('cart-5', cart({ snapshots: { schemaVersion: 'MARKER-7f3a', everyEvents: 10 } }));
      await addItems('filler', 40); // Seal the segment that holds the snapshot.
      await ctx.store.flush();
      const logDir = path.join(ctx.dir, 'log');
      const damaged = fs.readdirSync(logDir).filter((n) => n.endsWith('.log')).find((n) => fs.readFileSync(path.join(logDir, n)).includes('MARKER-7f3a'));
      expect(damaged, 'the segment holding the snapshot').to.not.equal(undefined);
      const file = path.join(logDir, damaged!);
      const bytes = fs.readFileSync(file);
      const at = bytes.indexOf('MARKER-7f3a');
      bytes[at] = bytes[at]! ^ 0x01;
      fs.writeFileSync(file, bytes);
      const after = cart({ snapshots: { schemaVersion: 'MARKER-7f3a', everyEvents: 1000 } });
      expect(await ctx.store.aggregateStream('cart-5', after)).to.deep.equal({ state: { items: 20, total: 40 }, revision: 19 });
      expect(after.calls, 'a full replay').to.equal(20);
    });

    it('aggregate$ emits the current state, then each new state as events arrive', async () => {
      await addItems('cart-6', 2);
      const states = firstValueFrom(ctx.store.aggregate$('cart-6', cart()).pipe(take(4), toArray()));
      await new Promise((resolve) => setTimeout(resolve, 5));
      await addItems('cart-6', 2, 5);
      await ctx.store.appendToStream('cart-6', [{ type: 'CartViewed', data: { price: 0 } }]);
      expect((await states).map((s) => [s.revision, s.state.items, s.state.total])).to.deep.equal([
        [1, 2, 4],
        [2, 3, 9],
        [3, 4, 14],
        [4, 4, 14],
      ]);
    });

    it('aggregate$ takes a snapshot every N live events', async () => {
      await addItems('cart-9', 1);
      const live = ctx.store.aggregate$('cart-9', cart({ snapshots: { schemaVersion: 1, everyEvents: 4 } })).subscribe();
      await new Promise((resolve) => setTimeout(resolve, 5));
      await addItems('cart-9', 9);
      const deadline = Date.now() + 5000;
      let revisions: number[] = [];
      while (revisions.length < 2 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        revisions = (await collect(ctx.store.readStream(snapshotStreamOf('cart-9')))).map((e) => (e.data as { revision: number }).revision);
      }
      live.unsubscribe();
      expect(revisions).to.deep.equal([4, 8]);
    });

    it('keeps snapshot streams out of readAll and subscribe unless asked for', async () => {
      await addItems('cart-7', 3);
      await ctx.store.aggregateStream('cart-7', cart({ snapshots: { schemaVersion: 1, everyEvents: 1 } }));
      expect((await collect(ctx.store.readAll())).map((e) => e.streamId)).to.deep.equal(['cart-7', 'cart-7', 'cart-7']);
      const all = await collect(ctx.store.readAll({ filter: { includeSystemStreams: true } }));
      expect(all.map((e) => e.streamId)).to.include(snapshotStreamOf('cart-7'));
      const seen = await firstValueFrom(ctx.store.subscribe().pipe(take(3), toArray()));
      expect(seen.map((e) => e.streamId)).to.deep.equal(['cart-7', 'cart-7', 'cart-7']);
    });

    it('rejects bad aggregate options with ValidationError', async () => {
      for (const bad of [{ initialState: 0 }, { ...cart(), snapshots: { schemaVersion: {} } }, { ...cart(), snapshots: { schemaVersion: 1, everyEvents: 0 } }] as never[]) {
        const error = await ctx.store.aggregateStream('cart-8', bad).then(() => undefined, (e: unknown) => e);
        expect(error, JSON.stringify(bad)).to.have.property('code', 'VALIDATION');
      }
    });
  });
});
