/**
 * The stream index against a model: seeded random appends with a tiny memtable and tiny
 * segments (so that flushes and seals happen all the time), interleaved with clean reopens and
 * crash images (the directory copied while the store is open), some with the index database
 * removed, or replaced by an older copy of it. After every step every stream's events, read
 * forwards and backwards from anywhere, and its head must equal the model's.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { EventStore, type EventStoreOptions } from '../../lib/index.js';
import type { StreamIndex } from '../../lib/store/stream-index.js';
import { seededRandom } from '../helpers/random.js';
import { collect, emptyWorkload, expectStoreHolds, runWorkload, STREAM_IDS, type Workload } from '../helpers/store.js';
import { ManualClock, useTempDir } from '../helpers/temp-dir.js';

const SEEDS = Number(process.env.INDEX_MODEL_SEEDS ?? 12);
const STEPS = 10;

function indexOf(store: EventStore): StreamIndex {
  return (store as unknown as { index: StreamIndex }).index;
}

/**
 * A copy of `dir` as a crash would leave it, taken once no seal and no index flush is in flight
 * (a file copy racing a rename would fail, and a copy of LMDB's file mid-commit is no crash image).
 */
async function crashImage(store: EventStore, dir: string, to: string): Promise<void> {
  await store.flush(); // Resolves once the seals started so far have finished.
  await indexOf(store).settled();
  fs.cpSync(dir, to, { recursive: true, filter: (src) => path.basename(src) !== 'LOCK' });
}

async function expectRandomReads(store: EventStore, model: Workload, random: ReturnType<typeof seededRandom>, context: string): Promise<void> {
  for (const streamId of STREAM_IDS) {
    const history = model.byStream.get(streamId) ?? [];
    const from = random.int(history.length + 2);
    const maxCount = 1 + random.int(6);
    expect(await collect(store.readStream(streamId, { fromRevision: from, maxCount })), `${context}: ${streamId} from ${from}`).to.deep.equal(history.slice(from, from + maxCount));
    const back = await collect(store.readStream(streamId, { fromRevision: from, direction: 'backwards', maxCount }));
    expect(back, `${context}: ${streamId} backwards from ${from}`).to.deep.equal(history.slice(Math.max(0, Math.min(from, history.length - 1) - maxCount + 1), Math.min(from, history.length - 1) + 1).reverse());
  }
}

describe('StreamIndex against a model', function () {
  this.timeout(120_000);
  const tmp = useTempDir();
  const images: string[] = [];
  afterEach(() => {
    for (const image of images.splice(0)) fs.rmSync(image, { recursive: true, force: true });
  });

  for (let seed = 1; seed <= SEEDS; seed++) {
    it(`seed ${seed}: reads and heads equal the model through flushes, seals, reopens and crash images`, async () => {
      const random = seededRandom(seed * 7919);
      const clock = new ManualClock();
      const options = (dir: string): EventStoreOptions => ({ dir, durability: 'fsync', segmentBytes: 4096, indexIntervalBytes: 256, indexCheckpointEvents: 1 + random.int(40), clock });
      let dir = tmp.path;
      let store = await EventStore.open(options(dir));
      const model = emptyWorkload();
      let staleIndex: string | undefined;
      const steps: string[] = [];
      try {
        for (let step = 0; step < STEPS; step++) {
          await runWorkload(store, clock, seed * 100 + step, 5 + random.int(40), model);
          const image = `${tmp.path}-image-${step}`;
          const choice = random.int(6);
          steps.push(['appends', 'reopen', 'crash', 'crash without index', 'crash with an older index', 'keep an older index'][choice]!);
          if (choice === 1) {
            await store.close();
            store = await EventStore.open(options(dir));
          } else if (choice >= 2 && choice <= 4) {
            images.push(image);
            await crashImage(store, dir, image);
            if (choice === 3) fs.rmSync(path.join(image, 'index.lmdb'));
            if (choice === 4 && staleIndex !== undefined) fs.copyFileSync(staleIndex, path.join(image, 'index.lmdb'));
            await store.close();
            dir = image;
            store = await EventStore.open(options(dir));
          } else if (choice === 5) {
            await indexOf(store).settled();
            staleIndex = `${image}.lmdb`;
            images.push(staleIndex);
            fs.copyFileSync(path.join(dir, 'index.lmdb'), staleIndex);
          }
          const context = `seed ${seed}, steps ${steps.join(' → ')}`;
          await expectStoreHolds(store, model, context);
          await expectRandomReads(store, model, random, context);
        }
      } finally {
        await store.close();
      }
    });
  }

  it('rebuilds an index that reaches past the recovered log', async () => {
    const options = { dir: tmp.path, durability: 'none' as const, segmentBytes: 1 << 20, indexCheckpointEvents: 10 };
    const store = await EventStore.open(options);
    for (let i = 0; i < 60; i++) await store.appendToStream(`s-${i % 7}`, [{ type: 'T', data: { i } }, { type: 'U', data: { i } }]);
    await store.close(); // The index now covers all 120 events.
    // Lose the tail of the log (as a power loss under 'none' durability could).
    const logFile = path.join(tmp.path, 'log', '00000000000000000000.log');
    fs.truncateSync(logFile, Math.floor(fs.statSync(logFile).size / 2));
    fs.rmSync(path.join(tmp.path, 'log', '00000000000000000000.index'), { force: true });
    const reopened = await EventStore.open(options);
    try {
      const survivors = reopened.commitPosition;
      expect(survivors).to.be.within(1, 119);
      const all = await collect(reopened.readAll());
      expect(all.map((e) => e.position)).to.deep.equal([...Array(survivors).keys()]);
      for (let k = 0; k < 7; k++) {
        const events = await collect(reopened.readStream(`s-${k}`));
        expect(events, `s-${k}`).to.deep.equal(all.filter((e) => e.streamId === `s-${k}`));
        const last = events.at(-1);
        expect(await reopened.streamHead(`s-${k}`)).to.deep.equal(last === undefined ? undefined : { revision: last.revision, position: last.position });
      }
      // Appends go on from the recovered heads.
      const head = (await reopened.streamHead('s-0'))!;
      expect(await reopened.appendToStream('s-0', [{ type: 'T', data: {} }], { expectedRevision: head.revision })).to.deep.equal({ nextExpectedRevision: head.revision + 1, position: survivors });
    } finally {
      await reopened.close();
    }
  });

  it('makes appends wait for the index database rather than grow the memtable without bound', async () => {
    const store = await EventStore.open({ dir: tmp.path, durability: 'none', indexCheckpointEvents: 50 });
    const index = indexOf(store) as unknown as { db: { write: (...args: unknown[]) => Promise<void> }; active: { events: number } };
    // An index database far slower than the log.
    const write = index.db.write.bind(index.db);
    index.db.write = async (...args: unknown[]) => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      return write(...args);
    };
    let largest = 0;
    try {
      await Promise.all(
        Array.from({ length: 8 }, async (_, writer) => {
          for (let i = 0; i < 150; i++) {
            await store.appendToStream(`w-${writer}-${i % 13}`, [{ type: 'T', data: { i } }]);
            largest = Math.max(largest, index.active.events);
          }
        }),
      );
      expect(largest, 'events in the active memtable').to.be.at.most(4 * 50 + 8);
      expect(store.commitPosition).to.equal(1200);
    } finally {
      await store.close();
    }
    const reopened = await EventStore.open({ dir: tmp.path, durability: 'none' });
    try {
      expect(await reopened.streamHead('w-7-12')).to.deep.equal({ revision: 10, position: (await collect(reopened.readStream('w-7-12'))).at(-1)!.position });
    } finally {
      await reopened.close();
    }
  });
});
