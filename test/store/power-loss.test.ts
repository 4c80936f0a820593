/**
 * Power loss on simulated storage (test/helpers/sim-storage.ts): the log's directory lives on a
 * simulated disk whose unsynced pages and directory entries may be lost at a power cut. Each
 * run is a sequence of cycles on one store: open (recovery), check everything acknowledged so
 * far, let concurrent writers append (single appends and two-stream appendMany, with expected
 * revisions) while segments roll and seal and the stream index checkpoints, then cut the power
 * before a random mutating operation, close what is left of the store, and reboot the disk with
 * a random choice of what survived.
 *
 * After every cut: every acknowledged append is there, at the position it was acknowledged at,
 * with its data; an unacknowledged append is there whole or not at all (both streams of an
 * appendMany, or neither); positions are dense; readStream, streamHead and readAll agree; the
 * store accepts appends again.
 *
 *   POWER_SEED=<n>     replay a run (the seed is printed on failure). The seed fixes every random
 *                      choice (cut points, what survives, the workload); the writers' interleaving
 *                      also depends on timing (the writer loop yields to the event loop by the
 *                      clock), so a replay usually, not always, repeats a failure. On failure the
 *                      simulated disk's history of the segments named is printed.
 *   POWER_CUTS=<n>     cuts per run (default 60); POWER_RUNS=<n> runs (default 4: CI)
 *   POWER_NONE=1       odd runs use 'none' durability, where what a resolved flush() covered must survive
 *   POWER_TRACE=<position>  print the files of segments from that position on after each open
 *   POWER_SKIP_SYNC=<file:line>  mutation: syncs called from there do nothing (see scripts in the closing note)
 *
 * The stream index's LMDB environment is on the real disk (LMDB is native code): it keeps every
 * transaction, one of the outcomes a real power cut allows for transactions it synced.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventStore, isColdstreamError, type RecordedEvent } from '../../lib/index.js';
import { mountStorage } from '../../lib/log/storage.js';
import { seededRandom, type SeededRandom } from '../helpers/random.js';
import { SimStorage } from '../helpers/sim-storage.js';

// CI: 4 runs of 60 cuts (about a minute on 2 cores). A run's cost grows with its log (every cut
// checks everything), so a longer torture is more runs: POWER_RUNS=50 for 3,000 cuts.
const CUTS = Number(process.env.POWER_CUTS ?? 60);
const RUNS = Number(process.env.POWER_RUNS ?? 4);
const WRITERS = 4;

interface Append {
  readonly id: string;
  /** Stream → [first position, event ids]; filled in when acknowledged. */
  readonly parts: { readonly streamId: string; readonly ids: readonly string[] }[];
  position?: number;
}

interface Model {
  /** Acknowledged, or found whole after a cut: must be there for good. */
  readonly durable: Map<string, Append>;
  /** Issued but not durable when the power went (not acknowledged, or under 'none' not flushed since): whole or absent. */
  pending: Append[];
  /** Under 'none': acknowledged, not yet covered by a flush that resolved. */
  unflushed: Append[];
}

const OPTIONS = { durability: 'fsync', segmentBytes: 4096, indexIntervalBytes: 256, indexCheckpointEvents: 50 } as const;

async function readEverything(store: EventStore): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const event of store.readAll()) all.push(event);
  return all;
}

/** Checks the store against the model; moves pending appends found whole into durable. */
async function verify(store: EventStore, model: Model, where: string): Promise<void> {
  const all = await readEverything(store);
  expect(all.map((e) => e.position), `${where}: dense positions`).to.deep.equal(all.map((_, i) => i));
  const byId = new Map(all.map((e) => [e.id, e]));
  expect(byId.size, `${where}: no duplicate event ids`).to.equal(all.length);
  for (const append of model.durable.values()) {
    for (const part of append.parts) {
      for (const id of part.ids) expect(byId.get(id)?.streamId, `${where}: acknowledged event ${id} of append ${append.id}`).to.equal(part.streamId);
    }
  }
  for (const append of model.pending) {
    const ids = append.parts.flatMap((p) => p.ids);
    const present = ids.filter((id) => byId.has(id)).length;
    expect([0, ids.length], `${where}: unacknowledged append ${append.id} is there in part (${present} of ${ids.length} events)`).to.include(present);
    if (present > 0) model.durable.set(append.id, append);
  }
  model.pending = [];
  model.unflushed = [];
  // Each stream: readStream gives its events in revision order, and the head agrees.
  const streams = new Map<string, RecordedEvent[]>();
  for (const event of all) {
    if (event.streamId.startsWith('$')) continue;
    streams.set(event.streamId, [...(streams.get(event.streamId) ?? []), event]);
  }
  for (const [streamId, events] of streams) {
    const read: RecordedEvent[] = [];
    for await (const event of store.readStream(streamId)) read.push(event);
    expect(read.map((e) => e.id), `${where}: readStream(${streamId})`).to.deep.equal(events.map((e) => e.id));
    expect(read.map((e) => e.revision), `${where}: revisions of ${streamId}`).to.deep.equal(events.map((_, i) => i));
    expect((await store.streamHead(streamId))?.revision, `${where}: streamHead(${streamId})`).to.equal(events.length - 1);
  }
}

let nextId = 0;

/** `promise`, or a failure naming `what` if it has not settled within 10 s (a hang is a bug, not a slow machine). */
async function settles<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within 10 s`)), 10_000)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One writer: appends until the store fails. */
async function writer(store: EventStore, k: number, model: Model, random: SeededRandom, durability: 'fsync' | 'none', cut: () => boolean): Promise<void> {
  const single = `w${k}`;
  const pair = [`m${k}a`, `m${k}b`];
  const revision = async (streamId: string): Promise<number | 'no_stream'> => (await store.streamHead(streamId))?.revision ?? 'no_stream';
  for (;;) {
    const streams = random.next() < 0.2 ? pair : [single];
    const parts = streams.map((streamId) => ({ streamId, ids: Array.from({ length: 1 + random.int(4) }, () => `00000000-0000-4000-8000-${(nextId++).toString(16).padStart(12, '0')}`) }));
    const append: Append = { id: `a${nextId}`, parts };
    try {
      const requests = await Promise.all(parts.map(async (p) => ({ streamId: p.streamId, expectedRevision: await revision(p.streamId), events: p.ids.map((id, i) => ({ id, type: 'Written', data: { writer: k, i, pad: 'p'.repeat(random.int(300)) } })) })));
      model.pending.push(append);
      const results = await store.appendMany(requests);
      append.position = results[0]!.position;
      if (durability === 'fsync') {
        model.pending.splice(model.pending.indexOf(append), 1);
        model.durable.set(append.id, append);
        continue;
      }
      // Under 'none' an acknowledged append is durable once a flush that began after it resolves.
      model.unflushed.push(append);
      if (random.next() < 0.15) {
        const covered = [...model.unflushed];
        await store.flush();
        for (const done of covered) {
          model.pending.splice(model.pending.indexOf(done), 1);
          model.unflushed.splice(model.unflushed.indexOf(done), 1);
          model.durable.set(done.id, done);
        }
      }
    } catch (err) {
      if (isColdstreamError(err, 'STORE_FAILED') && cut()) return; // The power went.
      throw err;
    }
  }
}

describe('power loss on simulated storage', function () {
  this.timeout(600_000);

  it('close settles after a seal fails while later segments wait for theirs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-power-'));
    const logDir = path.join(dir, 'log');
    const sim = new SimStorage(logDir, 1);
    const unmount = mountStorage(logDir, sim);
    try {
      const store = await EventStore.open({ dir, ...OPTIONS });
      // The first seal's fsync fails, while appends of a few events per segment keep rolling
      // segments that queue behind it.
      sim.failAt('fsync', 3);
      let acknowledged = 0;
      const writers = Array.from({ length: 8 }, async (_, k) => {
        for (;;) {
          await store.appendToStream(`s-${k}`, [{ type: 'E', data: { pad: 'y'.repeat(700) } }]);
          acknowledged++;
        }
      });
      await settles(Promise.allSettled(writers), 'the writers');
      await settles(store.close().catch(() => {}), 'close');
      const reopened = await EventStore.open({ dir, ...OPTIONS });
      expect((await readEverything(reopened)).length).to.be.at.least(acknowledged);
      await reopened.close();
    } finally {
      unmount();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an empty active segment followed by a later segment file: recovery lists the directory and sets the later file aside', async () => {
    // The state a power cut leaves when a new segment's creation was made durable (its
    // directory synced) but neither its nor the previous segment's first batch was.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-power-'));
    try {
      let store = await EventStore.open({ dir, ...OPTIONS });
      for (let i = 0; i < 30; i++) await store.appendToStream('s', [{ type: 'E', data: { i, pad: 'x'.repeat(300) } }]);
      const active = store.nextPosition;
      await store.appendToStream('s', [{ type: 'E', data: { pad: 'z'.repeat(3000) } }]); // Rolls: a segment of its own at `active`.
      await store.close();
      const name = (base: number): string => path.join(dir, 'log', `${String(base).padStart(20, '0')}.log`);
      expect(fs.existsSync(name(active)), 'the last append began a segment').to.equal(true);
      fs.truncateSync(name(active), 0); // Its only batch lost...
      fs.writeFileSync(name(active + 1), Buffer.alloc(0)); // ...and a later segment's file there.
      store = await EventStore.open({ dir, ...OPTIONS });
      expect(store.nextPosition).to.equal(active);
      for (let i = 0; i < 20; i++) await store.appendToStream('s', [{ type: 'E', data: { again: i, pad: 'y'.repeat(300) } }]);
      await store.close();
      store = await EventStore.open({ dir, ...OPTIONS });
      expect((await readEverything(store)).length).to.equal(active + 20);
      await store.close();
      expect(fs.existsSync(name(active + 1)), 'the later file was set aside').to.equal(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  for (let run = 0; run < RUNS; run++) {
    // With POWER_NONE=1, odd runs use 'none' durability, where an append is durable once a later
    // flush resolves. Not in CI yet: about one such run in 25 ends with the store failing without
    // a power cut (a STORE_FAILED whose cause is under investigation; the writer now rethrows it).
    const durability = process.env.POWER_NONE === '1' && run % 2 === 1 ? 'none' : 'fsync';
    const what = durability === 'fsync' ? 'acknowledged append' : 'append a flush covered (none durability)';
    it(`keeps every ${what} across ${CUTS} power cuts, and nothing in part (run ${run + 1})`, async () => {
      const options = { dir: '', ...OPTIONS, durability } as const;
      const seed = process.env.POWER_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.POWER_SEED) + run;
      const random = seededRandom(seed);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-power-'));
      const logDir = path.join(dir, 'log');
      const sim = new SimStorage(logDir, seed);
      sim.skipSyncsFrom(process.env.POWER_SKIP_SYNC);
      const unmount = mountStorage(logDir, sim);
      const model: Model = { durable: new Map(), pending: [], unflushed: [] };
      let cut = 0;
      try {
        for (; cut < CUTS; cut++) {
          const where = `seed ${seed}, after cut ${cut}`;
          const store = await EventStore.open({ ...options, dir });
          // POWER_TRACE=<position>: after each open, the files of the segments from that position on.
          const trace = process.env.POWER_TRACE === undefined ? undefined : Number(process.env.POWER_TRACE);
          if (trace !== undefined) console.log(`cut ${cut}: opened at ${store.nextPosition}; ${sim.listing().filter((f) => !/^\d{20}/.test(f) || Number(f.slice(0, 20)) >= trace).join(', ')}`);
          try {
            await verify(store, model, where);
            sim.cutAfter(1 + random.int(cut % 10 === 9 ? 2000 : 150));
            await settles(Promise.all(Array.from({ length: WRITERS }, (_, k) => writer(store, k, model, random, durability, () => sim.isCut))), `${where}: the writers`);
            expect(sim.isCut, `${where}: the writers stopped without a power cut`).to.equal(true);
          } finally {
            await settles(store.close().catch(() => {}), `${where}: close after the power cut`);
          }
          sim.reboot();
        }
        // The store accepts appends again, and keeps them.
        let store = await EventStore.open({ ...options, dir });
        await verify(store, model, `seed ${seed}, at the end`);
        const { position } = await store.appendToStream('final', [{ type: 'Final', data: {} }]);
        await store.close();
        store = await EventStore.open({ ...options, dir });
        expect((await readEverything(store)).at(-1)?.position).to.equal(position);
        await store.close();
        expect(model.durable.size, 'appends acknowledged over the run').to.be.greaterThan(CUTS);
      } catch (err) {
        // The simulated disk's history of the segments the failure names.
        const names = [...new Set(String((err as Error).message).match(/\d{20}/g) ?? [])];
        for (const base of String((err as Error).message).match(/position (\d+)|segment at (\d+)/g) ?? []) names.push(base.replace(/\D/g, '').padStart(20, '0'));
        if (names.length > 0) console.log(sim.history(...names).slice(-60).map((line) => `        ${line}`).join('\n'));
        console.log(`      power-loss torture failed at cut ${cut}: rerun with POWER_SEED=${seed} POWER_CUTS=${CUTS} POWER_RUNS=1; store kept in ${dir}`);
        throw err;
      } finally {
        unmount();
      }
      fs.rmSync(dir, { recursive: true, force: true });
    });
  }
});
