import { expect } from 'chai';
import { EventStore, WrongExpectedRevisionError, isColdstreamError, type AppendResult, type ExpectedRevision, type RecordedEvent } from '../../lib/index.js';
import { collect, openStore, rejection, uuid } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp-dir.js';

describe('EventStore expected revisions', () => {
  const tmp = useTempDir();
  // Nested so that the store is closed before useTempDir removes its directory.
  describe('with a store holding an existing stream among others', () => {
    let store: EventStore;
    /** Events of 'account-1' (revisions 0–2) interleaved with other streams' events. */
    let existing: RecordedEvent[];

    beforeEach(async () => {
      store = await openStore(tmp.path, { segmentBytes: 1024 });
      for (let i = 0; i < 12; i++) await store.appendToStream(`other-${i % 3}`, [{ type: 'Filler', data: { i, pad: 'p'.repeat(150) } }]);
      await store.appendToStream('account-1', [{ type: 'Opened', data: 0 }], { expectedRevision: 'no_stream' });
      await store.appendToStream('other-0', [{ type: 'Filler', data: 'between' }]);
      await store.appendToStream('account-1', [{ type: 'Deposited', data: 1 }, { type: 'Deposited', data: 2 }], { expectedRevision: 0 });
      await store.appendToStream('other-1', [{ type: 'Filler', data: 'after' }]);
      existing = await collect(store.readStream('account-1'));
      expect(existing.map((e) => [e.revision, e.position])).to.deep.equal([[0, 12], [1, 14], [2, 15]]);
    });

    afterEach(async () => {
      await store.close();
    });

    /** Two new events, so that results tell the revision of the last one from the first. */
    const two = (tag: string): { type: string; data: string }[] => [{ type: 'Tried', data: `${tag}-a` }, { type: 'Tried', data: `${tag}-b` }];

    async function snapshotState(): Promise<unknown> {
      return {
        next: store.nextPosition,
        commit: store.commitPosition,
        all: await collect(store.readAll()),
        account: await store.streamHead('account-1'),
        missing: await store.streamHead('account-404'),
      };
    }

    const successes: [string, string, ExpectedRevision, AppendResult][] = [
      ['a missing stream', 'account-404', 'any', { nextExpectedRevision: 1, position: 18 }],
      ['a missing stream', 'account-404', 'no_stream', { nextExpectedRevision: 1, position: 18 }],
      ['an existing stream', 'account-1', 'any', { nextExpectedRevision: 4, position: 18 }],
      ['an existing stream', 'account-1', 'stream_exists', { nextExpectedRevision: 4, position: 18 }],
      ['an existing stream', 'account-1', 2, { nextExpectedRevision: 4, position: 18 }],
    ];
    for (const [what, streamId, expectedRevision, result] of successes) {
      it(`appends to ${what} expecting ${String(expectedRevision)}`, async () => {
        expect(store.nextPosition).to.equal(17);
        expect(await store.appendToStream(streamId, two('ok'), { expectedRevision })).to.deep.equal(result);
        const events = await collect(store.readStream(streamId));
        expect(events.slice(-2).map((e) => [e.revision, e.position, e.data])).to.deep.equal([
          [result.nextExpectedRevision - 1, 17, 'ok-a'],
          [result.nextExpectedRevision, 18, 'ok-b'],
        ]);
        expect(events.slice(0, -2)).to.deep.equal(streamId === 'account-1' ? existing : []);
        expect(await store.streamHead(streamId)).to.deep.equal({ revision: result.nextExpectedRevision, position: 18 });
      });
    }

    const failures: [string, string, ExpectedRevision, number | 'no_stream'][] = [
      ['a missing stream', 'account-404', 'stream_exists', 'no_stream'],
      ['a missing stream', 'account-404', 0, 'no_stream'],
      ['a missing stream', 'account-404', 5, 'no_stream'],
      ['an existing stream', 'account-1', 'no_stream', 2],
      ['an existing stream', 'account-1', 0, 2],
      ['an existing stream', 'account-1', 1, 2],
      ['an existing stream', 'account-1', 3, 2],
      ['an existing stream', 'account-1', 99, 2],
    ];
    for (const [what, streamId, expectedRevision, actual] of failures) {
      it(`rejects an append to ${what} expecting ${String(expectedRevision)} with the actual revision, writing nothing`, async () => {
        const before = await snapshotState();
        for (const events of [two('stale'), [{ type: 'Tried', data: 'single' }]]) {
          const err = await rejection(store.appendToStream(streamId, events, { expectedRevision }), WrongExpectedRevisionError);
          expect(err.code).to.equal('WRONG_EXPECTED_REVISION');
          expect(isColdstreamError(err, 'WRONG_EXPECTED_REVISION')).to.equal(true);
          expect({ streamId: err.streamId, expected: err.expected, actual: err.actual }).to.deep.equal({ streamId, expected: expectedRevision, actual });
          expect(err.message).to.contain(streamId);
        }
        expect(await snapshotState()).to.deep.equal(before);
        const next = await store.appendToStream(streamId, [{ type: 'After', data: 1 }]);
        expect(next.position, 'the store stays usable').to.equal(17);
      });
    }

    it('lets exactly one of 50 concurrent appends with the same expected revision win', async () => {
      const attempts = Array.from({ length: 50 }, (_, i) => store.appendToStream('account-1', [{ type: 'Raced', data: i }], { expectedRevision: 2 }));
      const settled = await Promise.allSettled(attempts);
      const won = settled.flatMap((s, i) => (s.status === 'fulfilled' ? [{ i, result: s.value }] : []));
      expect(won).to.have.length(1);
      expect(won[0]!.result).to.deep.equal({ nextExpectedRevision: 3, position: 17 });
      for (const s of settled) {
        if (s.status === 'fulfilled') continue;
        expect(s.reason).to.be.instanceOf(WrongExpectedRevisionError);
        expect(s.reason).to.include({ streamId: 'account-1', expected: 2, actual: 3 });
      }
      const events = await collect(store.readStream('account-1'));
      expect(events.map((e) => e.data)).to.deep.equal([0, 1, 2, won[0]!.i]);
      expect(store.nextPosition).to.equal(18);
    });

    it('lets exactly one of 50 concurrent appends to a missing stream expecting no_stream win', async () => {
      const settled = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => store.appendToStream('fresh', [{ type: 'Raced', data: i }], { expectedRevision: 'no_stream' })));
      expect(settled.filter((s) => s.status === 'fulfilled')).to.have.length(1);
      for (const s of settled) if (s.status === 'rejected') expect(s.reason).to.include({ code: 'WRONG_EXPECTED_REVISION', actual: 0 });
      expect(await collect(store.readStream('fresh'))).to.have.length(1);
    });

    it('gives 50 concurrent appends expecting any distinct contiguous revisions', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.appendToStream('account-1', [{ type: 'Raced', data: i }, { type: 'Raced', data: -i }], { expectedRevision: 'any' })));
      expect(results.map((r) => r.nextExpectedRevision).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 50 }, (_, i) => 4 + 2 * i));
      expect(new Set(results.map((r) => r.position)).size).to.equal(50);
      const events = await collect(store.readStream('account-1'));
      expect(events.map((e) => e.revision)).to.deep.equal(Array.from({ length: 103 }, (_, i) => i));
      results.forEach((r, i) => {
        expect(events[r.nextExpectedRevision - 1]!.data).to.equal(i);
        expect(events[r.nextExpectedRevision]!).to.include({ data: -i, position: r.position });
      });
    });
  });

  describe('idempotent retries', () => {
    let store: EventStore;

    beforeEach(async () => {
      store = await openStore(tmp.path, { segmentBytes: 1024 });
      await store.appendToStream('retry-1', [{ type: 'First', data: 0, id: uuid(0) }]);
    });

    afterEach(async () => {
      await store.close();
    });

    const batch = (from: number, salt = 0): { type: string; data: number; id: string }[] => [0, 1, 2].map((k) => ({ type: 'Retried', data: from + k, id: uuid(from + k, salt) }));

    /** Appends filler events to other streams, enough to seal a few segments. */
    async function moveOn(): Promise<void> {
      for (let i = 0; i < 15; i++) await store.appendToStream(`filler-${i % 2}`, [{ type: 'Filler', data: 'f'.repeat(120) }]);
    }

    async function expectRetried(retry: () => Promise<AppendResult>, original: AppendResult): Promise<void> {
      const next = store.nextPosition;
      const events = await collect(store.readStream('retry-1'));
      expect(await retry()).to.deep.equal(original);
      expect(store.nextPosition, 'a retry writes nothing').to.equal(next);
      expect(await collect(store.readStream('retry-1'))).to.deep.equal(events);
    }

    for (const expectedRevision of [0, 'any', 'stream_exists'] as const) {
      it(`returns the original result for a retry expecting ${expectedRevision} while its events are the tail`, async () => {
        const original = await store.appendToStream('retry-1', batch(1), { expectedRevision });
        expect(original).to.deep.equal({ nextExpectedRevision: 3, position: 3 });
        await expectRetried(() => store.appendToStream('retry-1', batch(1), { expectedRevision }), original);
        const upper = batch(1).map((e) => ({ ...e, id: e.id.toUpperCase() }));
        await expectRetried(() => store.appendToStream('retry-1', upper, { expectedRevision }), original);
      });
    }

    it('returns the original result for a retry expecting no_stream', async () => {
      const original = await store.appendToStream('retry-2', batch(1), { expectedRevision: 'no_stream' });
      expect(original).to.deep.equal({ nextExpectedRevision: 2, position: 3 });
      const next = store.nextPosition;
      expect(await store.appendToStream('retry-2', batch(1), { expectedRevision: 'no_stream' })).to.deep.equal(original);
      expect(store.nextPosition).to.equal(next);
      expect((await collect(store.readStream('retry-2'))).map((e) => e.data)).to.deep.equal([1, 2, 3]);
    });

    it('recognises a retry with a numeric expected revision after the stream moved on and segments were sealed', async () => {
      const original = await store.appendToStream('retry-1', batch(1), { expectedRevision: 0 });
      await store.appendToStream('retry-1', [{ type: 'Later', data: 'later' }], { expectedRevision: 3 });
      await moveOn();
      await store.flush();
      await expectRetried(() => store.appendToStream('retry-1', batch(1), { expectedRevision: 0 }), original);
    });

    it('recognises retries issued concurrently with the original append', async () => {
      const next = store.nextPosition;
      const appends = [
        store.appendToStream('retry-1', batch(1), { expectedRevision: 0 }),
        store.appendToStream('retry-1', batch(1), { expectedRevision: 0 }),
        store.appendToStream('retry-1', batch(1), { expectedRevision: 'any' }),
        store.appendToStream('retry-3', batch(10), { expectedRevision: 'no_stream' }),
        store.appendToStream('retry-3', batch(10), { expectedRevision: 'no_stream' }),
        store.appendToStream('retry-3', batch(10)),
      ];
      const results = await Promise.all(appends);
      expect(results).to.deep.equal([
        ...Array(3).fill({ nextExpectedRevision: 3, position: next + 2 }),
        ...Array(3).fill({ nextExpectedRevision: 2, position: next + 5 }),
      ]);
      expect(store.nextPosition).to.equal(next + 6);
      expect((await collect(store.readStream('retry-1'))).map((e) => e.data)).to.deep.equal([0, 1, 2, 3]);
      expect((await collect(store.readStream('retry-3'))).map((e) => e.data)).to.deep.equal([10, 11, 12]);
    });

    it('recognises a retry after the store is closed and reopened', async () => {
      const original = await store.appendToStream('retry-1', batch(1), { expectedRevision: 0 });
      const fresh = await store.appendToStream('retry-2', batch(5), { expectedRevision: 'no_stream' });
      await moveOn();
      await store.close();
      store = await openStore(tmp.path, { segmentBytes: 1024 });
      await expectRetried(() => store.appendToStream('retry-1', batch(1), { expectedRevision: 0 }), original);
      await expectRetried(() => store.appendToStream('retry-1', batch(1), { expectedRevision: 'any' }), original);
      const next = store.nextPosition;
      expect(await store.appendToStream('retry-2', batch(5), { expectedRevision: 'no_stream' })).to.deep.equal(fresh);
      expect(store.nextPosition).to.equal(next);
    });

    for (const expectedRevision of [0, 'no_stream'] as const) {
      it(`rejects a retry expecting ${expectedRevision} whose ids partly differ, writing nothing`, async () => {
        const streamId = expectedRevision === 0 ? 'retry-1' : 'retry-2';
        await store.appendToStream(streamId, batch(1), { expectedRevision });
        const next = store.nextPosition;
        const head = await store.streamHead(streamId);
        const variants = [
          [batch(1)[0]!, batch(1)[1]!, batch(1, 9)[2]!],
          [batch(1, 9)[0]!, batch(1)[1]!, batch(1)[2]!],
          [...batch(1), batch(1, 9)[0]!],
          batch(1).reverse(),
        ];
        for (const events of variants) {
          const err = await rejection(store.appendToStream(streamId, events, { expectedRevision }), WrongExpectedRevisionError, JSON.stringify(events));
          expect(err).to.include({ streamId, expected: expectedRevision, actual: head!.revision });
        }
        expect(store.nextPosition).to.equal(next);
        expect(await store.streamHead(streamId)).to.deep.equal(head);
      });
    }
  });
});
