import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { MemoryObjectStore } from '../../adapters/memory/index.js';
import { ColdstreamError, EventStore, InvalidOptionsError, StoreClosedError, StoreLockedError, isColdstreamError, type EventStoreOptions } from '../../lib/index.js';
import { collect, openStore, rejection, storeOptions } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp-dir.js';

const ok = { type: 'Ok', data: { fine: true } };

describe('EventStore open options, lock and close', () => {
  const tmp = useTempDir();

  it('rejects each invalid open option with InvalidOptionsError naming it, creating nothing', async () => {
    const dir = path.join(tmp.path, 'store');
    const cases: [Partial<EventStoreOptions> & Record<string, unknown>, string][] = [
      [{ segmentBytes: 10 }, 'options.segmentBytes'],
      [{ segmentBytes: 4096.5 }, 'options.segmentBytes'],
      [{ durability: 'sometimes' as never }, 'options.durability'],
      [{ dir: undefined as never }, 'options.dir'],
      [{ dir: '' }, 'options.dir'],
      [{ dir: 42 as never }, 'options.dir'],
      [{ clock: {} as never }, 'options.clock'],
      [{ clock: { now: 5 } as never }, 'options.clock'],
      [{ indexIntervalBytes: 1 }, 'options.indexIntervalBytes'],
      [{ maxEventBytes: -1 }, 'options.maxEventBytes'],
      [{ fsyncIntervalMs: 0 }, 'options.fsyncIntervalMs'],
      [{ indexCheckpointEvents: 0 }, 'options.indexCheckpointEvents'],
      [{ eventClasses: { ItemAdded: 'not a class' as never } }, 'options.eventClasses.ItemAdded'],
      [{ readOnly: 'yes' as never }, 'options.readOnly'],
      [{ tiering: 5 as never }, 'options.tiering'],
      [{ tiering: {} as never }, 'options.tiering.objectStore'],
      [{ tiering: { objectStore: { put() {} } as never } }, 'options.tiering.objectStore'],
      [{ tiering: { objectStore: new MemoryObjectStore(), localRetentionBytes: -1 } }, 'options.tiering.localRetentionBytes'],
      [{ tiering: { objectStore: new MemoryObjectStore(), localRetentionMs: 0 } }, 'options.tiering.localRetentionMs'],
      [{ tiering: { objectStore: new MemoryObjectStore(), cacheBytes: 1000 } }, 'options.tiering.cacheBytes'],
      [{ tiering: { objectStore: new MemoryObjectStore(), pollIntervalMs: 20.5 } }, 'options.tiering.pollIntervalMs'],
      [{ tiering: { objectStore: new MemoryObjectStore(), retryBaseMs: 0 } }, 'options.tiering.retryBaseMs'],
      [{ tiering: { objectStore: new MemoryObjectStore(), localRetentionBytes: 2 ** 60 } }, 'options.tiering.localRetentionBytes'],
      [{ tiering: { objectStore: new MemoryObjectStore(), maxLocalBytes: 0 } }, 'options.tiering.maxLocalBytes'],
      // storeOptions' segments are 2 KiB: the watermark must exceed retention plus two of them.
      [{ tiering: { objectStore: new MemoryObjectStore(), localRetentionBytes: 10_000, maxLocalBytes: 14_096 } }, 'options.tiering.maxLocalBytes'],
    ];
    for (const [overrides, name] of cases) {
      const options = { ...storeOptions(dir), ...overrides };
      if ('dir' in overrides && overrides.dir === undefined) delete (options as Record<string, unknown>).dir;
      const err = await rejection(EventStore.open(options), InvalidOptionsError, name);
      expect(err).to.be.instanceOf(ColdstreamError);
      expect(err.code).to.equal('INVALID_OPTIONS');
      expect(isColdstreamError(err, 'INVALID_OPTIONS')).to.equal(true);
      expect([...new Set(err.failures.map((f) => f.path))], JSON.stringify(overrides)).to.deep.equal([name]);
      expect(err.message).to.contain(name);
    }
    const all = await rejection(EventStore.open({ dir: '', segmentBytes: 10, durability: 'sometimes' as never, clock: {} as never }), InvalidOptionsError);
    expect([...new Set(all.failures.map((f) => f.path))].sort()).to.deep.equal(['options.clock', 'options.dir', 'options.durability', 'options.segmentBytes']);
    expect((await rejection(EventStore.open(undefined as never), InvalidOptionsError)).failures.map((f) => f.path)).to.deep.equal(['options']);
    expect(fs.existsSync(dir), 'nothing created for invalid options').to.equal(false);
  });

  it('refuses a second open of the same directory until the first store is closed', async () => {
    const first = await openStore(tmp.path);
    await first.appendToStream('s', [ok]);
    const err = await rejection(openStore(tmp.path), StoreLockedError);
    expect(err).to.be.instanceOf(ColdstreamError);
    expect(err).to.include({ code: 'STORE_LOCKED', ownerPid: process.pid });
    expect(isColdstreamError(err, 'STORE_LOCKED')).to.equal(true);
    expect(err.message).to.contain(String(process.pid));
    expect(await first.appendToStream('s', [ok]), 'the first store is untouched').to.deep.equal({ nextExpectedRevision: 1, position: 1 });
    await first.close();
    const second = await openStore(tmp.path);
    try {
      expect((await collect(second.readStream('s'))).map((e) => e.revision)).to.deep.equal([0, 1]);
      await rejection(openStore(tmp.path), StoreLockedError, 'locked again by the second store');
    } finally {
      await second.close();
    }
  });

  it('rejects every call after close with StoreClosedError, and close is idempotent', async () => {
    const store = await openStore(tmp.path);
    await store.appendToStream('s', [ok]);
    await store.close();
    const calls: [string, () => Promise<unknown>][] = [
      ['appendToStream', () => store.appendToStream('s', [ok])],
      ['appendMany', () => store.appendMany([{ streamId: 's', events: [ok] }])],
      ['readStream', () => store.readStream('s').next()],
      ['readAll', () => store.readAll().next()],
      ['streamHead', () => store.streamHead('s')],
      ['flush', () => store.flush()],
    ];
    for (const [name, call] of calls) {
      const err = await rejection(call(), StoreClosedError, name);
      expect(err, name).to.be.instanceOf(ColdstreamError);
      expect(err.code, name).to.equal('STORE_CLOSED');
      expect(isColdstreamError(err, 'STORE_CLOSED'), name).to.equal(true);
    }
    await store.close();
    const reopened = await openStore(tmp.path);
    expect(await reopened.streamHead('s')).to.deep.equal({ revision: 0, position: 0 });
    await reopened.close();
  });
});
