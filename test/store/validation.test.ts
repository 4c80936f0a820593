import { expect } from 'chai';
import { IsInt, IsString, MaxLength, Min } from 'class-validator';
import { ColdstreamError, EventStore, ValidationError, isColdstreamError, type EventData } from '../../lib/index.js';
import { collect, openStore, rejection, uuid } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp-dir.js';

const ok = { type: 'Ok', data: { fine: true } };

class ItemAdded {
  @IsInt()
  @Min(1)
  quantity!: number;

  @IsString()
  @MaxLength(8)
  sku!: string;
}

describe('EventStore validation of appends', () => {
  const tmp = useTempDir();
  // Nested so that the store is closed before useTempDir removes its directory.
  describe('on an open store', () => {
    let store: EventStore;

    beforeEach(async () => {
      store = await openStore(tmp.path, { segmentBytes: 1024, maxEventBytes: 1024 });
      for (let i = 0; i < 8; i++) await store.appendToStream('existing', [{ type: 'Filler', data: 'f'.repeat(100) }]);
    });

    afterEach(async () => {
      await store.close();
    });

    /** Expects `append` to fail with a ValidationError listing exactly `paths`, having written nothing. */
    async function expectInvalid(append: () => Promise<unknown>, paths: string[], context = ''): Promise<ValidationError> {
      const next = store.nextPosition;
      const head = await store.streamHead('existing');
      const err = await rejection(append(), ValidationError, context);
      expect(err, context).to.be.instanceOf(ColdstreamError);
      expect(err.code, context).to.equal('VALIDATION');
      expect(isColdstreamError(err, 'VALIDATION'), context).to.equal(true);
      expect(isColdstreamError(err, 'WRONG_EXPECTED_REVISION'), context).to.equal(false);
      expect(err.failures.map((f) => f.path), context).to.deep.equal(paths);
      for (const failure of err.failures) {
        expect(failure.message, `${context}: ${failure.path}`).to.be.a('string').and.not.equal('');
        expect(err.message, context).to.contain(`${failure.path}: ${failure.message}`);
      }
      expect(store.nextPosition, `${context}: nothing written`).to.equal(next);
      expect(await store.streamHead('existing'), context).to.deep.equal(head);
      expect(await store.appendToStream('existing', [ok]), `${context}: the store stays usable`).to.deep.include({ position: next });
      return err;
    }

    const appendTo = (streamId: unknown, events: unknown, options?: unknown) => () => store.appendToStream(streamId as string, events as EventData[], options as never);

    it('rejects empty, too long, control-character, reserved and non-string stream ids', async () => {
      for (const streamId of ['', '€'.repeat(100), 'x'.repeat(257), '€'.repeat(86), 'a\nb', 'tab\there', 'nul\u0000', 'del\u007f', '$all', '$system-1', 42, undefined, null, ['a']]) {
        const err = await expectInvalid(appendTo(streamId, [ok]), ['streamId'], JSON.stringify(streamId));
        expect(err.failures[0]!.constraint).to.be.a('string').and.not.equal('');
      }
      expect(await store.appendToStream('x'.repeat(256), [ok])).to.include({ nextExpectedRevision: 0 });
      expect(await store.appendToStream('€'.repeat(85), [ok])).to.include({ nextExpectedRevision: 0 });
      expect(await store.appendToStream('ünïcödé-$-stream', [ok])).to.include({ nextExpectedRevision: 0 });
      expect((await collect(store.readStream('€'.repeat(85))))[0]!.streamId).to.equal('€'.repeat(85));
    });

    it('rejects event types that are not non-empty strings of at most 256 bytes without control characters', async () => {
      const types: unknown[] = [42, undefined, null, '', 'x'.repeat(257), '€'.repeat(86), 'line\nbreak', { name: 'T' }];
      await expectInvalid(appendTo('s', types.map((type) => ({ type, data: 1 }))), types.map((_, i) => `events[${i}].type`));
      const result = await store.appendToStream('s', [{ type: '$Reserved-Is-Fine', data: 1 }, { type: '€'.repeat(85), data: 2 }]);
      expect((await collect(store.readStream('s'))).map((e) => e.type)).to.deep.equal(['$Reserved-Is-Fine', '€'.repeat(85)]);
      expect(result.nextExpectedRevision).to.equal(1);
    });

    it('rejects ids that are not UUIDs and ids repeated within one append, whatever their case', async () => {
      const id = uuid(1);
      const events = [
        { ...ok, id: 'not-a-uuid' },
        { ...ok, id: `${id}0` },
        { ...ok, id: id.replaceAll('-', '') },
        { ...ok, id: 12345 },
        { ...ok, id },
        { ...ok, id: id.toUpperCase() },
        { ...ok, id: uuid(2) },
        { ...ok, id },
      ];
      await expectInvalid(appendTo('s', events), ['events[0].id', 'events[1].id', 'events[2].id', 'events[3].id', 'events[5].id', 'events[7].id']);
      await store.appendToStream('s', [{ ...ok, id }, { ...ok, id: uuid(2).toUpperCase() }]);
      expect((await collect(store.readStream('s'))).map((e) => e.id)).to.deep.equal([id, uuid(2)]);
    });

    it('rejects data that is not JSON: undefined, functions, bigints, NaN, Infinity, Dates, Maps, symbols, cycles', async () => {
      const cyclic: Record<string, unknown> = { name: 'loop' };
      cyclic.self = cyclic;
      const data: unknown[] = [undefined, () => 1, 10n, NaN, -Infinity, new Date(0), new Map([[1, 2]]), new Set([1]), Symbol('s'), cyclic, [1, undefined], { deep: { list: [1, { when: new Date(0) }] } }, { n: 1n }, Buffer.from('b')];
      const err = await expectInvalid(appendTo('s', data.map((d) => ({ type: 'T', data: d }))), data.map((_, i) => `events[${i}].data`));
      expect(err.failures[2]!.message).to.contain('bigint');
      expect(err.failures[5]!.message).to.contain('Date');
      await store.appendToStream('s', [{ type: 'T', data: { kept: 1, dropped: undefined, list: [null, 'a', { b: false }] } }]);
      expect((await collect(store.readStream('s')))[0]!.data).to.deep.equal({ kept: 1, list: [null, 'a', { b: false }] });
    });

    it('rejects metadata that is not a plain JSON object', async () => {
      const metadata: unknown[] = [['a', 'b'], 'text', 5, null, { when: new Date(0) }, new Map(), { f: () => 1 }];
      await expectInvalid(appendTo('s', metadata.map((m) => ({ type: 'T', data: 1, metadata: m }))), metadata.map((_, i) => `events[${i}].metadata`));
    });

    it('lists every failing field of an append at once, unknown event properties included', async () => {
      const events = [
        ok,
        { type: 5, data: 1 },
        { type: 'T', data: 1, eventType: 'T', extra: true },
        { type: 'T', id: 'bad', data: undefined, metadata: [1] },
        null,
        'event',
      ];
      await expectInvalid(appendTo('$bad', events), [
        'streamId',
        'events[1].type',
        'events[2].eventType',
        'events[2].extra',
        'events[3].id',
        'events[3].data',
        'events[3].metadata',
        'events[4]',
        'events[5]',
      ]);
    });

    it('rejects events that are not a non-empty array', async () => {
      for (const events of [undefined, null, [], 'events', { type: 'T', data: 1 }, 7]) {
        await expectInvalid(appendTo('s', events), ['events'], JSON.stringify(events));
      }
    });

    it('rejects an event whose encoding exceeds maxEventBytes, counting UTF-8 bytes exactly', async () => {
      // Record: 36-byte header + stream id 's' + type 'T' + the JSON data (a string: 2 quotes).
      await store.appendToStream('s', [{ type: 'T', data: 'x'.repeat(984) }]);
      await store.appendToStream('s', [{ type: 'T', data: '€'.repeat(328) }]);
      const err = await expectInvalid(appendTo('s', [ok, { type: 'T', data: 'x'.repeat(985) }, { type: 'T', data: '€'.repeat(329) }]), ['events[1]', 'events[2]']);
      expect(err.failures.map((f) => f.constraint)).to.deep.equal(['maxEventBytes', 'maxEventBytes']);
      expect(err.failures[0]!.message).to.contain('1025').and.contain('1024');
      await expectInvalid(appendTo('s', [{ type: 'T', data: 'x', metadata: { pad: 'p'.repeat(1000) } }]), ['events[0]']);
      expect((await collect(store.readStream('s'))).map((e) => (e.data as string).length)).to.deep.equal([984, 328]);
    });

    it('rejects an expected revision that is not any, no_stream, stream_exists or an integer ≥ 0', async () => {
      for (const expectedRevision of [-1, 1.5, NaN, Infinity, 2 ** 53, 'latest', '3', 'ANY', {}]) {
        const err = await rejection(store.appendToStream('existing', [ok], { expectedRevision: expectedRevision as never }), ValidationError, String(expectedRevision));
        expect(err.failures).to.have.length(1);
        expect(err.failures[0]!.path).to.match(/(^|\.)expectedRevision$/);
      }
      expect(await store.streamHead('existing')).to.deep.include({ revision: 7 });
      const many = await rejection(store.appendMany([{ streamId: 'a', events: [ok], expectedRevision: -1 }]), ValidationError);
      expect(many.failures.map((f) => f.path)).to.deep.equal(['requests[0].expectedRevision']);
    });

    it('rejects bad read options with ValidationError naming options.<field>', async () => {
      const reads: [() => AsyncIterator<unknown>, string][] = [
        [() => store.readStream(5 as never), 'streamId'],
        [() => store.readStream('existing', { direction: 'sideways' as never }), 'options.direction'],
        [() => store.readStream('existing', { maxCount: -1 }), 'options.maxCount'],
        [() => store.readStream('existing', { fromRevision: 1.5 }), 'options.fromRevision'],
        [() => store.readAll({ fromPosition: -3 }), 'options.fromPosition'],
        [() => store.readAll({ maxCount: 2.5 }), 'options.maxCount'],
        [() => store.readAll({ filter: { eventTypes: 'Filler' as never } }), 'options.filter'],
        [() => store.readAll({ filter: { streamPrefix: 5 as never } }), 'options.filter'],
      ];
      for (const [read, path] of reads) {
        const err = await rejection(read().next(), ValidationError, path);
        expect(err.failures.map((f) => f.path)).to.deep.equal([path]);
      }
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it('rejects null read options and filters with ValidationError, or reads as without them', async () => {
      const reads: [() => AsyncIterable<unknown>, () => AsyncIterable<unknown>][] = [
        [() => store.readStream('existing', null as never), () => store.readStream('existing')],
        [() => store.readAll(null as never), () => store.readAll()],
        [() => store.readAll({ filter: null as never }), () => store.readAll()],
      ];
      for (const [read, plain] of reads) {
        const outcome = await collect(read()).catch((err: unknown) => err);
        if (!(outcome instanceof ValidationError)) expect(outcome).to.deep.equal(await collect(plain()));
      }
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it('accepts event types named like Object.prototype members', async () => {
      const events = [
        { type: 'constructor', data: 5 },
        { type: 'constructor', data: { a: 1 } },
        { type: 'toString', data: { a: 1 } },
        { type: 'hasOwnProperty', data: { a: 1 } },
        { type: 'valueOf', data: [1] },
      ];
      expect(await store.appendToStream('proto', events)).to.include({ nextExpectedRevision: 4 });
      expect((await collect(store.readStream('proto'))).map((e) => e.type)).to.deep.equal(events.map((e) => e.type));
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it('rejects stream ids and event types holding lone surrogates', async () => {
      await expectInvalid(appendTo('odd-\uD800', [{ type: 'T\uDC00', data: 1 }]), ['streamId', 'events[0].type']);
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it('names a bad expected revision of appendToStream options.expectedRevision', async () => {
      await expectInvalid(appendTo('s', [ok], { expectedRevision: -1 }), ['options.expectedRevision']);
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it('rejects append options that are not an object instead of appending with any', async () => {
      await expectInvalid(appendTo('existing', [ok], 3), ['options']);
    });
  });

  it('validates the data of a registered event type with its class, reporting paths inside data', async () => {
    const store = await openStore(tmp.path, { eventClasses: { ItemAdded } });
    try {
      const events: unknown[] = [
        { type: 'ItemAdded', data: { quantity: 3, sku: 'ok' } },
        { type: 'ItemAdded', data: { quantity: 0, sku: 'abc' } },
        { type: 'ItemAdded', data: { quantity: 2.5, sku: 'much-too-long' } },
        { type: 'ItemAdded', data: { sku: 'abc' } },
        { type: 'ItemAdded', data: 'not an object' },
        { type: 'ItemAdded', data: [{ quantity: 1, sku: 'a' }] },
        { type: 'Unregistered', data: { quantity: 0 } },
      ];
      const err = await rejection(store.appendToStream('cart-1', events as EventData[]), ValidationError);
      expect(err.failures.map((f) => `${f.path} ${f.constraint}`).sort()).to.deep.equal([
        'events[1].data.quantity min',
        'events[2].data.quantity isInt',
        'events[2].data.sku maxLength',
        'events[3].data.quantity isInt',
        'events[3].data.quantity min',
        'events[4].data isObject',
        'events[5].data isObject',
      ]);
      expect(store.nextPosition).to.equal(0);
      const instance = Object.assign(new ItemAdded(), { quantity: 2, sku: 'inst' });
      await store.appendToStream('cart-1', [events[0] as EventData, { type: 'ItemAdded', data: instance }, events[6] as EventData]);
      const read = await collect(store.readStream('cart-1'));
      expect(read.map((e) => e.data)).to.deep.equal([{ quantity: 3, sku: 'ok' }, { quantity: 2, sku: 'inst' }, { quantity: 0 }]);
      expect(read[1]!.data).not.to.be.instanceOf(ItemAdded);
    } finally {
      await store.close();
    }
  });
});
