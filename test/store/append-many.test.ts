import { expect } from 'chai';
import { EventStore, ValidationError, WrongExpectedRevisionError, type AppendRequest } from '../../lib/index.js';
import { collect, openStore, rejection, uuid } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp-dir.js';

describe('EventStore appendMany', () => {
  const tmp = useTempDir();
  // Nested so that the store is closed before useTempDir removes its directory.
  describe('on a store with a few streams', () => {
    let store: EventStore;

    beforeEach(async () => {
      store = await openStore(tmp.path, { segmentBytes: 1024 });
      for (let i = 0; i < 10; i++) await store.appendToStream(`order-${i % 2}`, [{ type: 'Placed', data: { i, pad: 'p'.repeat(100) } }]);
      await store.appendToStream('payment-0', [{ type: 'Taken', data: 0 }]);
      // order-0 at revision 4, order-1 at revision 4, payment-0 at revision 0; next position 11.
    });

    afterEach(async () => {
      await store.close();
    });

    function requests(salt: number): AppendRequest[] {
      return [
        { streamId: 'order-0', events: [{ type: 'Paid', data: 'o0', id: uuid(1, salt) }], expectedRevision: 4 },
        { streamId: 'payment-1', events: [{ type: 'Taken', data: 'p1-a', id: uuid(2, salt) }, { type: 'Settled', data: 'p1-b', id: uuid(3, salt) }], expectedRevision: 'no_stream' },
        { streamId: 'order-1', events: [{ type: 'Paid', data: 'o1', id: uuid(4, salt) }], expectedRevision: 'stream_exists' },
        { streamId: 'audit', events: [{ type: 'Logged', data: 'a', id: uuid(5, salt) }, { type: 'Logged', data: 'b', id: uuid(6, salt) }, { type: 'Logged', data: 'c', id: uuid(7, salt) }] },
      ];
    }

    it('writes every request in one batch at contiguous positions and returns a result per request', async () => {
      const results = await store.appendMany(requests(0));
      expect(results).to.deep.equal([
        { nextExpectedRevision: 5, position: 11 },
        { nextExpectedRevision: 1, position: 13 },
        { nextExpectedRevision: 5, position: 14 },
        { nextExpectedRevision: 2, position: 17 },
      ]);
      const tail = await collect(store.readAll({ fromPosition: 11 }));
      expect(tail.map((e) => [e.position, e.streamId, e.revision, e.data])).to.deep.equal([
        [11, 'order-0', 5, 'o0'],
        [12, 'payment-1', 0, 'p1-a'],
        [13, 'payment-1', 1, 'p1-b'],
        [14, 'order-1', 5, 'o1'],
        [15, 'audit', 0, 'a'],
        [16, 'audit', 1, 'b'],
        [17, 'audit', 2, 'c'],
      ]);
      expect(new Set(tail.map((e) => e.timestamp)).size, 'one batch, one timestamp').to.equal(1);
      expect((await collect(store.readStream('order-0'))).map((e) => e.revision)).to.deep.equal([0, 1, 2, 3, 4, 5]);
      expect(await store.streamHead('payment-1')).to.deep.equal({ revision: 1, position: 13 });
      await store.close();
      store = await openStore(tmp.path, { segmentBytes: 1024 });
      expect(await collect(store.readAll({ fromPosition: 11 }))).to.deep.equal(tail);
    });

    const conflicts: [string, number, AppendRequest['expectedRevision'], number | 'no_stream'][] = [
      ['the first', 0, 3, 4],
      ['a middle', 1, 'stream_exists', 'no_stream'],
      ['the last', 3, 0, 'no_stream'],
    ];
    for (const [which, index, expectedRevision] of conflicts) {
      it(`writes nothing for any stream when ${which} request's expected revision fails`, async () => {
        const next = store.nextPosition;
        const before = await collect(store.readAll());
        const batch = requests(0).map((r, i) => (i === index ? { ...r, expectedRevision } : r));
        const err = await rejection(store.appendMany(batch), WrongExpectedRevisionError);
        expect(err.code).to.equal('WRONG_EXPECTED_REVISION');
        expect(store.nextPosition).to.equal(next);
        expect(await collect(store.readAll())).to.deep.equal(before);
        for (const streamId of ['payment-1', 'audit']) expect(await store.streamHead(streamId), streamId).to.equal(undefined);
        expect(await store.appendMany(requests(0)), 'the store stays usable').to.have.length(4);
      });
    }

    it('names the stream whose expected revision failed, with its expected and actual revisions (first request)', async () => {
      const batch = requests(0).map((r, i) => (i === 0 ? { ...r, expectedRevision: 3 } : r));
      const err = await rejection(store.appendMany(batch), WrongExpectedRevisionError);
      expect(err).to.include({ streamId: 'order-0', expected: 3, actual: 4 });
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it('names the stream whose expected revision failed when it is not the first request', async () => {
      for (const [, index, expectedRevision, actual] of conflicts.slice(1)) {
        const batch = requests(0).map((r, i) => (i === index ? { ...r, expectedRevision } : r));
        const err = await rejection(store.appendMany(batch), WrongExpectedRevisionError);
        expect(err).to.include({ streamId: batch[index]!.streamId, expected: expectedRevision, actual });
      }
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it("appends a request expecting 'any' whose last id merely repeats its stream's last id next to a valid numeric one", async () => {
      const last = (await collect(store.readStream('payment-0')))[0]!.id;
      const results = await store.appendMany([
        { streamId: 'order-0', events: [{ type: 'Paid', data: 1 }], expectedRevision: 4 },
        { streamId: 'payment-0', events: [{ type: 'New', data: 2 }, { type: 'Again', data: 3, id: last }], expectedRevision: 'any' },
      ]);
      expect(results).to.deep.equal([
        { nextExpectedRevision: 5, position: 11 },
        { nextExpectedRevision: 2, position: 13 },
      ]);
    });

    it('rejects the same stream twice in one appendMany, writing nothing', async () => {
      const next = store.nextPosition;
      const batch: AppendRequest[] = [
        { streamId: 'order-0', events: [{ type: 'A', data: 1 }] },
        { streamId: 'audit', events: [{ type: 'B', data: 2 }] },
        { streamId: 'order-0', events: [{ type: 'C', data: 3 }] },
      ];
      const err = await rejection(store.appendMany(batch), ValidationError);
      expect(err.code).to.equal('VALIDATION');
      expect(err.failures.map((f) => [f.path, f.constraint])).to.deep.equal([['requests[2].streamId', 'unique']]);
      expect(store.nextPosition).to.equal(next);
      expect(await store.streamHead('audit')).to.equal(undefined);
    });

    it('rejects an empty or non-array appendMany and reports failures by request path', async () => {
      for (const bad of [[], undefined, 'requests', { streamId: 'x', events: [] }]) {
        const err = await rejection(store.appendMany(bad as unknown as AppendRequest[]), ValidationError, JSON.stringify(bad));
        expect(err.failures.map((f) => f.path)).to.deep.equal(['requests']);
      }
      const err = await rejection(
        store.appendMany([
          { streamId: 'ok', events: [{ type: 'A', data: 1 }] },
          { streamId: '', events: [{ type: 'B', data: 2 }, { type: 7 as unknown as string, data: 3 }], expectedRevision: -1 },
          { streamId: 'ok-2', events: [] },
        ]),
        ValidationError,
      );
      expect(err.failures.map((f) => f.path)).to.deep.equal(['requests[1].streamId', 'requests[1].expectedRevision', 'requests[1].events[1].type', 'requests[2].events']);
      expect(store.nextPosition).to.equal(11);
    });

    it('returns the original results for a retry of the whole appendMany, writing nothing', async () => {
      const original = await store.appendMany(requests(0));
      const next = store.nextPosition;
      expect(await store.appendMany(requests(0))).to.deep.equal(original);
      expect(store.nextPosition).to.equal(next);
      await store.appendToStream('order-0', [{ type: 'Shipped', data: 'later' }]);
      for (let i = 0; i < 12; i++) await store.appendToStream('filler', [{ type: 'F', data: 'f'.repeat(100) }]);
      await store.close();
      store = await openStore(tmp.path, { segmentBytes: 1024 });
      const numericOnly = requests(0).filter((r) => r.expectedRevision === 4 || r.expectedRevision === 'no_stream');
      expect(await store.appendMany(numericOnly)).to.deep.equal([original[0], original[1]]);
      expect(store.nextPosition).to.equal(next + 13);
    });

    it('recognises a retry issued concurrently with the original appendMany', async () => {
      const next = store.nextPosition;
      const [first, second] = await Promise.all([store.appendMany(requests(0)), store.appendMany(requests(0))]);
      expect(second).to.deep.equal(first);
      expect(store.nextPosition).to.equal(next + 7);
    });

    it('rejects a retry of only part of an earlier appendMany together with new events, writing nothing', async () => {
      await store.appendMany(requests(0));
      const next = store.nextPosition;
      const mixed = [requests(0)[0]!, { streamId: 'payment-9', events: [{ type: 'New', data: 1 }], expectedRevision: 'no_stream' as const }];
      await rejection(store.appendMany(mixed), WrongExpectedRevisionError);
      expect(store.nextPosition).to.equal(next);
      expect(await store.streamHead('payment-9')).to.equal(undefined);
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it('names the retried request when a retry of part of an appendMany comes with new events', async () => {
      await store.appendMany(requests(0));
      const mixed = [requests(0)[0]!, { streamId: 'payment-9', events: [{ type: 'New', data: 1 }], expectedRevision: 'no_stream' as const }];
      const err = await rejection(store.appendMany(mixed), WrongExpectedRevisionError);
      expect(err).to.include({ streamId: 'order-0', expected: 4, actual: 5 });
    });
  });
});
