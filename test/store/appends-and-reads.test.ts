import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { EventStore, type RecordedEvent } from '../../lib/index.js';
import { collect, emptyWorkload, expectStoreHolds, openStore, runWorkload, sealedBases, STREAM_IDS, uuid, type Workload } from '../helpers/store.js';
import { ManualClock, useTempDir } from '../helpers/temp-dir.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What readStream must yield for these options, computed from the model. */
function expectedStream(history: readonly RecordedEvent[], from: number | 'start' | 'end' | undefined, backwards: boolean, maxCount?: number): RecordedEvent[] {
  const last = history.length - 1;
  const start = from === 'start' ? 0 : from === 'end' ? last : (from ?? (backwards ? last : 0));
  const picked = backwards ? history.slice(0, Math.max(0, Math.min(start, last) + 1)).reverse() : history.slice(start);
  return maxCount === undefined ? picked : picked.slice(0, maxCount);
}

describe('EventStore appends and reads', () => {
  const tmp = useTempDir();
  // Nested so that the store is closed (afterEach below) before useTempDir removes its directory.
  describe('over a seeded workload of many tiny segments', () => {
    let clock: ManualClock;
    let store: EventStore;
    let model: Workload;

    async function open(): Promise<EventStore> {
      return openStore(tmp.path, { clock });
    }

    beforeEach(async () => {
      clock = new ManualClock();
      store = await open();
      model = await runWorkload(store, clock, 7, 220);
    });

    afterEach(async () => {
      await store.close();
    });

    it('reads back hundreds of events of 20 streams across many sealed segments', async () => {
      await store.flush();
      expect(model.events.length).to.be.greaterThan(250);
      expect(model.byStream.size).to.equal(STREAM_IDS.length);
      expect(model.events.some((e, i) => i > 0 && model.events[i - 1]!.timestamp === e.timestamp), 'some appends hold several events').to.equal(true);
      expect(sealedBases(tmp.path).length).to.be.greaterThan(10);
      await expectStoreHolds(store, model, 'after the workload');
    });

    it('reads a stream forwards and backwards from any revision, with and without maxCount', async () => {
      for (const streamId of ['order-0', 'customer-3', 'shipment-b']) {
        const history = model.byStream.get(streamId)!;
        expect(history.length).to.be.greaterThan(8);
        const last = history.length - 1;
        for (const from of [undefined, 'start', 'end', 0, 1, Math.floor(last / 2), last - 1, last, last + 1, last + 50] as const) {
          for (const maxCount of [undefined, 0, 1, 3, last + 10]) {
            for (const direction of ['forwards', 'backwards'] as const) {
              const read = await collect(store.readStream(streamId, { fromRevision: from, maxCount, direction }));
              const context = `${streamId} ${direction} from ${String(from)} maxCount ${String(maxCount)}`;
              expect(read, context).to.deep.equal(expectedStream(history, from, direction === 'backwards', maxCount));
            }
          }
        }
      }
    });

    it('reads all forwards and backwards from any position, with and without maxCount', async () => {
      const all = model.events;
      const last = all.length - 1;
      for (const from of [0, 1, 37, 150, last - 1, last]) {
        expect(await collect(store.readAll({ fromPosition: from })), `forwards from ${from}`).to.deep.equal(all.slice(from));
        expect(await collect(store.readAll({ fromPosition: from, maxCount: 5 })), `forwards from ${from}, 5`).to.deep.equal(all.slice(from, from + 5));
        expect(await collect(store.readAll({ fromPosition: from, direction: 'backwards' })), `backwards from ${from}`).to.deep.equal(all.slice(0, from + 1).reverse());
        const back = await collect(store.readAll({ fromPosition: from, direction: 'backwards', maxCount: 7 }));
        expect(back, `backwards from ${from}, 7`).to.deep.equal(all.slice(Math.max(0, from - 6), from + 1).reverse());
      }
      expect(await collect(store.readAll({ fromPosition: last + 1 }))).to.deep.equal([]);
      expect(await collect(store.readAll({ fromPosition: 'end' }))).to.deep.equal([]);
      expect(await collect(store.readAll({ fromPosition: 'start', maxCount: 2 }))).to.deep.equal(all.slice(0, 2));
      expect(await collect(store.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 2 }))).to.deep.equal([all[last], all[last - 1]]);
      expect(await collect(store.readAll({ fromPosition: last + 100, direction: 'backwards', maxCount: 1 }))).to.deep.equal([all[last]]);
      expect(await collect(store.readAll({ maxCount: 0 }))).to.deep.equal([]);
    });

    it('filters readAll by stream prefix (a string or an array) and by event types, both ways', async () => {
      const all = model.events;
      const cases = [
        { filter: { streamPrefix: 'order-' }, keep: (e: RecordedEvent) => e.streamId.startsWith('order-') },
        { filter: { streamPrefix: ['invoice-', 'shipment-'] }, keep: (e: RecordedEvent) => /^(invoice|shipment)-/.test(e.streamId) },
        { filter: { streamPrefix: 'customer-1' }, keep: (e: RecordedEvent) => e.streamId === 'customer-1' },
        { filter: { eventTypes: ['Closed', 'Noted'] }, keep: (e: RecordedEvent) => e.type === 'Closed' || e.type === 'Noted' },
        { filter: { streamPrefix: 'order-', eventTypes: ['Created'] }, keep: (e: RecordedEvent) => e.streamId.startsWith('order-') && e.type === 'Created' },
        { filter: { streamPrefix: 'nope-' }, keep: () => false },
        { filter: { eventTypes: [] }, keep: () => false },
        { filter: {}, keep: () => true },
      ];
      for (const { filter, keep } of cases) {
        const context = JSON.stringify(filter);
        const wanted = all.filter(keep);
        expect(await collect(store.readAll({ filter })), context).to.deep.equal(wanted);
        expect(await collect(store.readAll({ filter, direction: 'backwards' })), `${context} backwards`).to.deep.equal([...wanted].reverse());
        expect(await collect(store.readAll({ filter, fromPosition: 100, maxCount: 4 })), `${context} from 100`).to.deep.equal(wanted.filter((e) => e.position >= 100).slice(0, 4));
      }
    });

    it('yields nothing for a missing stream, which has no head', async () => {
      expect(await collect(store.readStream('order-404'))).to.deep.equal([]);
      expect(await collect(store.readStream('order-404', { direction: 'backwards' }))).to.deep.equal([]);
      expect(await store.streamHead('order-404')).to.equal(undefined);
      expect(await store.streamHead('order-')).to.equal(undefined); // a prefix of real streams is not one
      const last = model.byStream.get('order-0')!.at(-1)!;
      expect(await store.streamHead('order-0')).to.deep.equal({ revision: last.revision, position: last.position });
    });

    it('keeps everything across close and reopen, and goes on at the right revisions and positions', async () => {
      await store.close();
      store = await open();
      await expectStoreHolds(store, model, 'after reopen');
      await runWorkload(store, clock, 8, 60, model);
      await expectStoreHolds(store, model, 'after more appends');
      await store.close();
      store = await open();
      await expectStoreHolds(store, model, 'after a second reopen');
    });

    it('reopens a copy of the directory taken while the store was open, as after a crash', async () => {
      await store.close();
      store = await open(); // The checkpoint now holds the active segment's part as of this close.
      await runWorkload(store, clock, 10, 25, model);
      await store.flush();
      const copy = `${tmp.path}-crashed`;
      try {
        fs.cpSync(tmp.path, copy, { recursive: true });
        fs.rmSync(path.join(copy, 'LOCK'));
        const crashed = await openStore(copy, { clock });
        try {
          await expectStoreHolds(crashed, model, 'crash image');
          await runWorkload(crashed, clock, 11, 10, model);
          await expectStoreHolds(crashed, model, 'crash image, after more appends');
        } finally {
          await crashed.close();
        }
      } finally {
        fs.rmSync(copy, { recursive: true, force: true });
      }
    });

    for (const [what, damage] of [
      ['deleted', (file: string) => fs.rmSync(file)],
      ['overwritten with garbage', (file: string) => fs.writeFileSync(file, Buffer.from('garbage, not an index'.repeat(900)))],
      ['truncated', (file: string) => fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2))],
    ] as const) {
      it(`rebuilds identical reads and heads when the index database is ${what}`, async () => {
        await store.close();
        const indexDb = path.join(tmp.path, 'index.lmdb');
        expect(fs.existsSync(indexDb)).to.equal(true);
        damage(indexDb);
        store = await open();
        await expectStoreHolds(store, model, `index database ${what}`);
        await runWorkload(store, clock, 9, 30, model);
        await expectStoreHolds(store, model, `index database ${what}, after more appends`);
      });
    }
  });
});

describe('EventStore recorded events', () => {
  const tmp = useTempDir();

  it('records every field: ids, types, JSON data, metadata or its absence, and the clock time', async () => {
    const clock = new ManualClock(1_650_000_000_000);
    const store = await openStore(tmp.path, { clock });
    try {
      await store.appendToStream('filler', [{ type: 'Filler', data: 1 }]);
      clock.advance(250);
      const upper = uuid(1).toUpperCase();
      const result = await store.appendToStream('thing-1', [
        { type: 'Made', data: { nested: { a: [1, 'two', null, false] }, skipped: undefined }, metadata: { user: 'ann', trace: [1, 2] }, id: upper },
        { type: '$Typed ü', data: null },
        { type: 'Listed', data: ['x', 2.5, { y: true }] },
        { type: 'Text', data: 'just a string', metadata: {} },
      ]);
      expect(result).to.deep.equal({ nextExpectedRevision: 3, position: 4 });
      clock.advance(1000);
      await store.appendToStream('thing-1', [{ type: 'Later', data: 0 }]);
      const events = await collect(store.readStream('thing-1'));
      const at = 1_650_000_000_250;
      expect(events.slice(0, 4)).to.deep.equal([
        { streamId: 'thing-1', revision: 0, position: 1, id: upper.toLowerCase(), type: 'Made', data: { nested: { a: [1, 'two', null, false] } }, metadata: { user: 'ann', trace: [1, 2] }, timestamp: at },
        { streamId: 'thing-1', revision: 1, position: 2, id: events[1]!.id, type: '$Typed ü', data: null, metadata: undefined, timestamp: at },
        { streamId: 'thing-1', revision: 2, position: 3, id: events[2]!.id, type: 'Listed', data: ['x', 2.5, { y: true }], metadata: undefined, timestamp: at },
        { streamId: 'thing-1', revision: 3, position: 4, id: events[3]!.id, type: 'Text', data: 'just a string', metadata: {}, timestamp: at },
      ]);
      expect(events[4]).to.include({ revision: 4, position: 5, timestamp: at + 1000 });
      expect('metadata' in events[1]!).to.equal(true);
      const generated = events.slice(1).map((e) => e.id);
      for (const id of generated) expect(id).to.match(UUID);
      expect(new Set(generated).size).to.equal(generated.length);
      expect(await collect(store.readAll({ fromPosition: 1, maxCount: 4 }))).to.deep.equal(events.slice(0, 4));
    } finally {
      await store.close();
    }
  });

  it('never yields events whose append is not acknowledged yet', async () => {
    const store = await openStore(tmp.path, { durability: 'fsync' });
    try {
      const model = await runWorkload(store, new ManualClock(), 3, 20, emptyWorkload());
      const before = store.commitPosition;
      const pending = store.appendToStream('order-0', [{ type: 'InFlight', data: 1 }]);
      expect(store.nextPosition).to.equal(before + 1);
      expect(store.commitPosition, 'not acknowledged synchronously').to.equal(before);
      const seen: RecordedEvent[] = [];
      const check = async (iterator: AsyncIterable<RecordedEvent>): Promise<void> => {
        for await (const event of iterator) {
          expect(event.position, `${event.type} at ${event.position}`).to.be.lessThan(store.commitPosition);
          seen.push(event);
        }
      };
      const writers = Array.from({ length: 40 }, (_, i) => store.appendToStream(STREAM_IDS[i % 5]!, [{ type: 'Racing', data: i }, { type: 'Racing', data: -i }]));
      const readers = [
        check(store.readAll()),
        check(store.readAll({ direction: 'backwards' })),
        check(store.readStream('order-0')),
        check(store.readStream('order-0', { direction: 'backwards' })),
        check(store.readStream('order-1', { fromRevision: 'end', direction: 'backwards' })),
      ];
      const head = store.streamHead('order-0').then((h) => {
        expect(h!.position, 'a head is returned only once acknowledged').to.be.lessThan(store.commitPosition);
      });
      await Promise.all([pending, ...writers, ...readers, head]);
      expect(seen.filter((e) => e.position < before).length).to.be.greaterThan(model.events.length);
      const order0 = await collect(store.readStream('order-0'));
      expect(order0.map((e) => e.revision)).to.deep.equal(order0.map((_, i) => i));
      expect(order0.filter((e) => e.type === 'InFlight')).to.have.length(1);
    } finally {
      await store.close();
    }
  });
});
