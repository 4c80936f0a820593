import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { EventStore } from '../../lib/index.js';
import { decodeCheckpoint } from '../../lib/store/heads-checkpoint.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { collect } from '../helpers/async.js';


function checkpointOf(dir: string): ReturnType<typeof decodeCheckpoint> {
  return decodeCheckpoint('heads.checkpoint', fs.readFileSync(path.join(dir, 'heads.checkpoint')));
}

describe('EventStore index checkpoints', () => {
  const tmp = useTempDir();
  const options = (dir: string) => ({ dir, durability: 'fsync' as const, segmentBytes: 1 << 20, indexCheckpointEvents: 100 });

  async function writeStreams(store: EventStore, appends: number): Promise<void> {
    for (let i = 0; i < appends; i++) {
      await store.appendToStream(`s-${i % 7}`, [{ type: 'T', data: { i } }, { type: 'U', data: { i } }]);
    }
  }

  it('checkpoints the active segment while appending, and opening a crashed copy reads the same', async () => {
    const store = await EventStore.open(options(tmp.path));
    await writeStreams(store, 180);
    await store.flush();
    await new Promise((resolve) => setTimeout(resolve, 50)); // The checkpoint is written in the background.
    const part = checkpointOf(tmp.path)?.active;
    expect(part, 'an active part in the checkpoint').to.not.equal(undefined);
    expect(part!.end).to.be.at.least(300).and.at.most(360);
    // A copy taken while the store is open has no clean-close checkpoint: it is a crash.
    const copy = `${tmp.path}-copy`;
    fs.cpSync(tmp.path, copy, { recursive: true, filter: (src) => path.basename(src) !== 'LOCK' });
    after(() => fs.rmSync(copy, { recursive: true, force: true }));
    const expected = await Promise.all([0, 1, 2, 3, 4, 5, 6].map((k) => collect(store.readStream(`s-${k}`))));
    await store.close();
    const reopened = await EventStore.open(options(copy));
    for (const [k, events] of expected.entries()) {
      expect(await collect(reopened.readStream(`s-${k}`)), `stream s-${k}`).to.deep.equal(events);
      expect(await reopened.streamHead(`s-${k}`)).to.deep.equal({ revision: events.length - 1, position: events.at(-1)!.position });
    }
    // Idempotency needs each stream's last event id: a retry of the last append is recognised.
    const last = expected[179 % 7]!.slice(-2);
    const retry = await reopened.appendToStream(`s-${179 % 7}`, last.map((e) => ({ id: e.id, type: e.type, data: e.data })));
    expect(retry.position).to.equal(last[1]!.position);
    expect(reopened.nextPosition).to.equal(360);
    await reopened.close();
  });

  it('recovers the last event id of streams whose newer events the crash lost', async () => {
    const store = await EventStore.open({ ...options(tmp.path), indexCheckpointEvents: 37 });
    // Independent writer loops, so that checkpoints are taken while later appends are in flight;
    // bursts go on until the newest checkpoint has a stream cut short that way.
    const writer = async (k: number): Promise<void> => {
      for (let round = 0; round < 5; round++) await store.appendToStream(`c-${k}`, [{ type: 'T', data: { round } }]);
    };
    const cutShortIn = (dir: string): number =>
      [...(checkpointOf(dir)?.active?.index.streams() ?? [])].filter(([, p]) => p.lastEventId === '00000000-0000-0000-0000-000000000000').length;
    // Appends that arrive while a sync is in flight (timer-driven, not woken by an acknowledgement)
    // are what a checkpoint taken at that commit cuts short.
    const stray = async (k: number): Promise<void> => {
      const pending: Promise<unknown>[] = [];
      for (let n = 0; n < 20; n++) {
        await new Promise((resolve) => setImmediate(resolve));
        pending.push(store.appendToStream(`c-${k}`, [{ type: 'T', data: { n } }]));
      }
      await Promise.all(pending);
    };
    for (let burst = 0; burst < 30; burst++) {
      await Promise.all([...Array.from({ length: 16 }, (_, k) => writer(k)), stray(0), stray(1)]);
      await store.flush();
      await new Promise((resolve) => setTimeout(resolve, 20)); // Checkpoints are written in the background.
      if (fs.existsSync(path.join(tmp.path, 'heads.checkpoint')) && cutShortIn(tmp.path) > 0) break;
    }
    const copy = `${tmp.path}-copy`;
    fs.cpSync(tmp.path, copy, { recursive: true, filter: (src) => path.basename(src) !== 'LOCK' });
    after(() => fs.rmSync(copy, { recursive: true, force: true }));
    await store.close();
    expect(cutShortIn(copy), 'streams whose last event was in flight at the checkpoint').to.be.greaterThan(0);
    const end = checkpointOf(copy)!.active!.end;
    // Cut the copy's log back to the checkpoint's end: what was in flight then is lost.
    const { SegmentLog } = await import('../../lib/log/segment-log.js');
    const { logOptions } = await import('../helpers/log.js');
    const log = await SegmentLog.open(logOptions(path.join(copy, 'log'), { segmentBytes: 1 << 20, indexIntervalBytes: 4096 }));
    const [batch] = await log.readForward(end);
    await log.close();
    expect(batch?.basePosition).to.equal(end);
    fs.truncateSync(path.join(copy, 'log', '00000000000000000000.log'), batch!.byteOffset);
    fs.rmSync(path.join(copy, 'log', '00000000000000000000.index'));
    const reopened = await EventStore.open({ ...options(copy), indexCheckpointEvents: 37 });
    expect(reopened.commitPosition).to.equal(end);
    for (let k = 0; k < 16; k++) {
      const events = await collect(reopened.readStream(`c-${k}`));
      const last = events.at(-1)!;
      // A retry of the stream's last surviving event is recognised (its id is known again)...
      const retry = await reopened.appendToStream(`c-${k}`, [{ id: last.id, type: 'T', data: last.data }]);
      expect(retry).to.deep.equal({ nextExpectedRevision: last.revision, position: last.position });
    }
    expect(reopened.nextPosition, '...and writes nothing').to.equal(end);
    await reopened.close();
  });

  it('never trusts a checkpointed part that reaches past the recovered log', async () => {
    const store = await EventStore.open(options(tmp.path));
    await writeStreams(store, 60);
    await store.close(); // Clean close: the checkpoint's part covers all 120 events.
    expect(checkpointOf(tmp.path)?.active?.end).to.equal(120);
    // Lose the tail of the log (as a power loss under 'none' durability could).
    const logFile = path.join(tmp.path, 'log', '00000000000000000000.log');
    fs.truncateSync(logFile, Math.floor(fs.statSync(logFile).size / 2));
    fs.rmSync(path.join(tmp.path, 'log', '00000000000000000000.index'), { force: true });
    const reopened = await EventStore.open(options(tmp.path));
    const survivors = reopened.commitPosition;
    expect(survivors).to.be.below(120);
    expect(checkpointOf(tmp.path)?.active, 'the stale part was dropped from the checkpoint').to.equal(undefined);
    const all = await collect(reopened.readAll());
    expect(all.map((e) => e.position)).to.deep.equal([...Array(survivors).keys()]);
    for (let k = 0; k < 7; k++) {
      const events = await collect(reopened.readStream(`s-${k}`));
      expect(events.map((e) => e.revision)).to.deep.equal([...events.keys()]);
    }
    await reopened.close();
  });
});
