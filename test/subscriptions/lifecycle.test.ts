import { expect } from 'chai';
import fs from 'node:fs';
import { firstValueFrom } from 'rxjs';
import { EventStore, consumerStreamOf, isColdstreamError, snapshotStreamOf, type ConsumerMessage } from '../../lib/index.js';
import { withOpenStore } from '../helpers/temp-dir.js';
import { collect, until, sleep } from '../helpers/async.js';



const open = (dir: string) => EventStore.open({ dir, durability: 'none' });
/** Internal state, for checks of what a subscription holds on to. */
const commitListeners = (store: EventStore): number => (store as unknown as { log: { commitListeners: Set<unknown> } }).log.commitListeners.size;

describe('subscription, consumer and aggregate lifecycles', () => {
  withOpenStore(open, (ctx) => {
    const add = async (streamId: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await ctx.store.appendToStream(streamId, [{ type: 'T', data: { i } }]);
    };

    it('reports a throwing projection handler through failure, without crashing the process', async () => {
      await add('p', 3);
      const projection = ctx.store.project('boom', (event) => {
        if (event.revision === 1) throw new Error('handler failed');
      });
      expect(((await projection.failure) as Error).message).to.equal('handler failed');
      const caughtUp = await projection.caughtUp.then(() => 'resolved', (e: unknown) => (e as Error).message);
      expect(caughtUp).to.equal('handler failed');
      await projection.stop();
      const stored = await collect(ctx.store.readStream(consumerStreamOf('boom')));
      expect(stored.at(-1)?.data, 'the failed event is not committed').to.deep.equal({ position: 1 });
    });

    it('writes no checkpoint for its own checkpoints while idle', async () => {
      await add('q', 2);
      const messages: ConsumerMessage[] = [];
      const sub = ctx.store.consumer('idle', { checkpointEveryEvents: 1, checkpointEveryMs: 1 }).subscribe((m) => messages.push(m));
      await until(() => messages.some((m) => m.type === 'caughtUp'), 'caughtUp');
      await sleep(100);
      sub.unsubscribe();
      await sleep(20);
      const written = await collect(ctx.store.readStream(consumerStreamOf('idle')));
      expect(written.length, 'checkpoints written by an idle consumer').to.be.at.most(3);
    });

    it('errors a live subscription with STORE_FAILED when the log fails', async () => {
      const dir = `${ctx.dir}-failing`;
      after(() => fs.rmSync(dir, { recursive: true, force: true }));
      const store = await open(dir);
      await store.appendToStream('r', [{ type: 'T', data: {} }]);
      let error: unknown;
      store.subscribe().subscribe({ error: (e: unknown) => (error = e) });
      await sleep(10);
      const log = (store as unknown as { log: { active: { fd: number | undefined } } }).log;
      fs.closeSync(log.active.fd!); // The next write fails.
      log.active.fd = undefined;
      await store.appendToStream('r', [{ type: 'T', data: {} }]).catch(() => {});
      await until(() => error !== undefined, 'the subscription error');
      expect(isColdstreamError(error, 'STORE_FAILED')).to.equal(true);
      await store.close().catch(() => {});
    });

    it('lets aggregate$ be unsubscribed by its first emission without leaking the live subscription', async () => {
      await add('cart', 3);
      const before = commitListeners(ctx.store);
      const first = await firstValueFrom(ctx.store.aggregate$('cart', { initialState: 0, evolve: (n) => n + 1 }));
      expect(first).to.deep.equal({ state: 3, revision: 2 });
      await sleep(10);
      expect(commitListeners(ctx.store)).to.equal(before);
    });

    it('still loads an aggregate whose state cannot be stored as a snapshot', async () => {
      await add('dated', 5);
      const loaded = await ctx.store.aggregateStream('dated', { initialState: () => ({ at: new Date(0), n: 0 }), evolve: (s) => ({ ...s, n: s.n + 1 }), snapshots: { schemaVersion: 1, everyEvents: 1 } });
      expect(loaded.state.n).to.equal(5);
      expect(await collect(ctx.store.readStream(snapshotStreamOf('dated')))).to.have.length(0);
    });

    it('never moves a checkpoint backwards when a consumer name is reused right after a stop', async () => {
      await add('s', 300);
      const first: ConsumerMessage[] = [];
      const sub = ctx.store.consumer('reuse', { checkpointEveryEvents: 1000 }).subscribe((m) => first.push(m));
      await until(() => first.some((m) => m.type === 'caughtUp'), 'caughtUp');
      sub.unsubscribe();
      const second: ConsumerMessage[] = [];
      const again = ctx.store.consumer('reuse').subscribe((m) => second.push(m));
      await until(() => second.some((m) => m.type === 'caughtUp'), 'caughtUp again');
      again.unsubscribe();
      expect(second.filter((m) => m.type === 'event'), 'nothing delivered twice').to.have.length(0);
      await sleep(10);
      const positions = (await collect(ctx.store.readStream(consumerStreamOf('reuse')))).map((e) => (e.data as { position: number }).position);
      expect(positions).to.deep.equal([...positions].sort((a, b) => a - b));
    });

    it("delivers an append in flight when subscribeToStream starts at 'end'", async () => {
      await add('e', 1);
      const seen: number[] = [];
      const appending = ctx.store.appendToStream('e', [{ type: 'T', data: {} }]);
      const sub = ctx.store.subscribeToStream('e', { fromRevision: 'end' }).subscribe((event) => seen.push(event.revision));
      await appending;
      await add('e', 1);
      await until(() => seen.length === 2, 'two events');
      sub.unsubscribe();
      expect(seen).to.deep.equal([1, 2]);
    });

    it('rejects bad filters and options of subscriptions and consumers with VALIDATION', () => {
      const bad: (() => unknown)[] = [
        () => ctx.store.subscribe({ filter: { eventTypes: 'OrderPlaced' as never } }),
        () => ctx.store.subscribe({ filter: { streamPrefix: 5 as never } }),
        () => ctx.store.subscribe(null as never),
        () => ctx.store.subscribeToStream('s', null as never),
        () => ctx.store.consumer('c', { filter: { eventTypes: 5 as never } }),
        () => ctx.store.consumer('c', { maxLagEvents: -1 }),
        () => ctx.store.project('c', 42 as never),
      ];
      for (const call of bad) {
        let error: unknown;
        try {
          call();
        } catch (e) {
          error = e;
        }
        expect(isColdstreamError(error, 'VALIDATION'), call.toString()).to.equal(true);
      }
    });
  });

  describe('around close', () => {
    withOpenStore(open, (ctx) => {
      it('refuses consumers and subscriptions once the store is closing, instead of hanging', async () => {
        const created = ctx.store.subscribe({ from: 'end' });
        const closing = ctx.store.close();
        const errors: unknown[] = [];
        ctx.store.consumer('late').subscribe({ error: (e: unknown) => errors.push(e) });
        created.subscribe({ error: (e: unknown) => errors.push(e) });
        await closing;
        expect(errors.map((e) => isColdstreamError(e, 'STORE_CLOSED'))).to.deep.equal([true, true]);
      });
    });
  });
});
