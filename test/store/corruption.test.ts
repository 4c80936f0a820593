import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { CorruptRecordError, EventStore, isColdstreamError, type RecordedEvent } from '../../lib/index.js';
import { openStore, runWorkload, segmentFiles, type Workload } from '../helpers/store.js';
import { ManualClock, useTempDir } from '../helpers/temp-dir.js';

/** A batch found by walking a `.log` file's headers. */
interface BatchAt {
  readonly file: string;
  readonly byteOffset: number;
  readonly length: number;
  readonly basePosition: number;
  readonly recordCount: number;
}

function batchesIn(file: string): BatchAt[] {
  const buf = fs.readFileSync(file);
  const out: BatchAt[] = [];
  for (let at = 0; at + 36 <= buf.length && buf.readUInt32LE(at) !== 0; ) {
    const length = buf.readUInt32LE(at + 4);
    out.push({ file, byteOffset: at, length, basePosition: Number(buf.readBigUInt64LE(at + 16)), recordCount: buf.readUInt32LE(at + 24) });
    at += length;
  }
  return out;
}

function xorByte(file: string, byteOffset: number, mask: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, byteOffset);
    byte[0]! ^= mask;
    fs.writeSync(fd, byte, 0, 1, byteOffset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads until the iterator ends or throws; returns what it yielded and what it threw. */
async function readUntilError(iterator: AsyncIterable<RecordedEvent>): Promise<{ events: RecordedEvent[]; error: unknown }> {
  const events: RecordedEvent[] = [];
  try {
    for await (const event of iterator) events.push(event);
  } catch (error) {
    return { events, error };
  }
  return { events, error: undefined };
}

describe('EventStore over damaged files', () => {
  const tmp = useTempDir();
  // Nested so that the store is closed before useTempDir removes its directory.
  describe('with many sealed segments', () => {
    let store: EventStore;
    let model: Workload;
    let clock: ManualClock;

    beforeEach(async () => {
      clock = new ManualClock();
      store = await openStore(tmp.path, { clock });
      model = await runWorkload(store, clock, 21, 120);
      await store.close();
      store = await openStore(tmp.path, { clock });
    });

    afterEach(async () => {
      await store.close();
    });

    /** The third batch of the fourth segment (sealed): batches before and after it in its own segment. */
    function victim(): BatchAt {
      const sealedLogs = segmentFiles(tmp.path, '.log').filter((f) => fs.existsSync(f.replace(/\.log$/, '.sealed')));
      expect(sealedLogs.length).to.be.greaterThan(8);
      const batches = batchesIn(sealedLogs[3]!);
      expect(batches.length).to.be.greaterThan(4);
      return batches[2]!;
    }

    function expectCorruptRecord(error: unknown, batch: BatchAt, context: string): void {
      expect(error, context).to.be.instanceOf(CorruptRecordError);
      const err = error as CorruptRecordError;
      expect(err.code, context).to.equal('CORRUPT_RECORD');
      expect(isColdstreamError(err, 'CORRUPT_RECORD'), context).to.equal(true);
      expect(err.file, context).to.equal(batch.file);
      expect(err.byteOffset, context).to.equal(batch.byteOffset);
    }

    function expectTrueEvents(events: RecordedEvent[], context: string): void {
      for (const event of events) expect(event, `${context}: position ${event.position}`).to.deep.equal(model.events[event.position]);
    }

    /** Byte offsets inside a batch to damage: header fields, record framing, record bodies, last byte. */
    function spotsIn(batch: BatchAt): [string, number, number][] {
      return [
        ['magic', 0, 0xff],
        ['length', 4, 0x10],
        ['crc', 9, 0x01],
        ['version', 12, 0x02],
        ['base position', 16, 0x01],
        ['record count', 24, 0x01],
        ['timestamp', 29, 0x80],
        ['record length', 36, 0x01],
        ['record body', 60, 0x20],
        ['last byte', batch.length - 1, 0x04],
      ];
    }

    it('reports a flipped byte in a sealed segment as CorruptRecordError when reading all forwards, never as data', async () => {
      const batch = victim();
      for (const [what, offset, mask] of spotsIn(batch)) {
        xorByte(batch.file, batch.byteOffset + offset, mask);
        const { events, error } = await readUntilError(store.readAll());
        expectCorruptRecord(error, batch, what);
        expectTrueEvents(events, what);
        // Everything before the damaged segment, then possibly intact batches of that segment.
        expect(events.map((e) => e.position), what).to.deep.equal(events.map((_, i) => i));
        expect(events.length, what).to.be.within(Number(path.basename(batch.file, '.log')), batch.basePosition);
        xorByte(batch.file, batch.byteOffset + offset, mask);
      }
      expect((await readUntilError(store.readAll())).events).to.deep.equal(model.events);
    });

    it('reads the events of other segments and of intact batches fine around a damaged batch', async () => {
      const batch = victim();
      const damaged = new Set(Array.from({ length: batch.recordCount }, (_, i) => batch.basePosition + i));
      const segmentEnd = Number(path.basename(batch.file, '.log')) + batchesIn(batch.file).reduce((n, b) => n + b.recordCount, 0);
      xorByte(batch.file, batch.byteOffset + 60, 0x20);
      const after = model.events.filter((e) => e.position >= segmentEnd);
      expect((await readUntilError(store.readAll({ fromPosition: segmentEnd }))).events).to.deep.equal(after);
      for (const [streamId, history] of model.byStream) {
        const hit = history.find((e) => damaged.has(e.position));
        const forwards = await readUntilError(store.readStream(streamId));
        const backwards = await readUntilError(store.readStream(streamId, { direction: 'backwards' }));
        expectTrueEvents([...forwards.events, ...backwards.events], streamId);
        if (hit === undefined) {
          expect(forwards, `${streamId} forwards`).to.deep.equal({ events: history, error: undefined });
          expect(backwards, `${streamId} backwards`).to.deep.equal({ events: [...history].reverse(), error: undefined });
        } else {
          expectCorruptRecord(forwards.error, batch, `${streamId} forwards`);
          expectCorruptRecord(backwards.error, batch, `${streamId} backwards`);
          expect(forwards.events, `${streamId} forwards`).to.deep.equal(history.slice(0, hit.revision));
          expect(backwards.events.at(-1)?.revision ?? hit.revision + 1, `${streamId} backwards`).to.equal(hit.revision + 1);
          const later = await readUntilError(store.readStream(streamId, { fromRevision: hit.revision + 1 }));
          expect(later, `${streamId} after the damage`).to.deep.equal({ events: history.slice(hit.revision + 1), error: undefined });
        }
      }
    });

    it('reports a flipped byte as CorruptRecordError when reading all backwards, never as data', async () => {
      const batch = victim();
      for (const [what, offset, mask] of spotsIn(batch).filter(([what]) => what !== 'length')) {
        xorByte(batch.file, batch.byteOffset + offset, mask);
        const { events, error } = await readUntilError(store.readAll({ direction: 'backwards' }));
        expectCorruptRecord(error, batch, what);
        expectTrueEvents(events, what);
        expect(events.at(-1)!.position, what).to.be.at.least(batch.basePosition + batch.recordCount);
        xorByte(batch.file, batch.byteOffset + offset, mask);
      }
    });

    // Regression: this was a bug (found by this test, fixed in the commit that enabled it).
    it('reports a damaged batch length as CorruptRecordError when reading all backwards from a later batch', async () => {
      const batch = victim();
      const [, , , next, after] = batchesIn(batch.file);
      const fd = fs.openSync(batch.file, 'r+');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(after!.byteOffset - batch.byteOffset + 1); // past the next index entry, inside the file
      fs.writeSync(fd, length, 0, 4, batch.byteOffset + 4);
      fs.closeSync(fd);
      const { events, error } = await readUntilError(store.readAll({ direction: 'backwards', fromPosition: next!.basePosition }));
      expectTrueEvents(events, 'backwards');
      expect(events.map((e) => e.position), 'no events skipped').to.deep.equal(events.map((_, i) => next!.basePosition - i));
      expectCorruptRecord(error, batch, 'backwards');
    });

    it('rebuilds the index from the records of a segment whose .streams file is damaged, and reads every stream right', async () => {
      await store.close();
      const indexes = segmentFiles(tmp.path, '.streams');
      expect(indexes.length).to.be.greaterThan(8);
      const file = indexes[2]!;
      const original = fs.readFileSync(file);
      const damages: [string, () => void][] = [
        ['a flipped byte', () => xorByte(file, Math.floor(original.length / 2), 0x40)],
        ['a flipped magic', () => xorByte(file, 1, 0x40)],
        ['a truncation', () => fs.truncateSync(file, original.length - 3)],
        ['another segment’s index', () => fs.copyFileSync(indexes[4]!, file)],
        ['removal', () => fs.rmSync(file)],
      ];
      for (const [what, damage] of damages) {
        damage();
        fs.rmSync(path.join(tmp.path, 'index.lmdb')); // The index database is rebuilt from the .streams files.
        store = await openStore(tmp.path, { clock });
        for (const [streamId, history] of model.byStream) {
          expect(await readUntilError(store.readStream(streamId)), `${what}: ${streamId}`).to.deep.equal({ events: history, error: undefined });
          expect(await store.streamHead(streamId), `${what}: head of ${streamId}`).to.deep.equal({ revision: history.length - 1, position: history.at(-1)!.position });
        }
        expect((await readUntilError(store.readAll())).events, what).to.deep.equal(model.events);
        await store.close();
        fs.writeFileSync(file, original);
      }
      store = await openStore(tmp.path, { clock });
    });
  });
});
