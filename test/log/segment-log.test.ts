import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { CorruptRecordError, isColdstreamError } from '../../lib/errors.js';
import { SegmentLog } from '../../lib/log/segment-log.js';
import { logOptions, readAllRecords, records } from '../helpers/log.js';
import { mountStorage } from '../../lib/log/storage.js';
import { SimStorage } from '../helpers/sim-storage.js';
import { ManualClock, useTempDir } from '../helpers/temp-dir.js';

/** The log's Segment objects of sealed segments (those that may hold a file or an index). */
function sealedSegmentObjects(log: SegmentLog): { fd?: number; index?: unknown }[] {
  const list = (log as unknown as { segments: { objects(): Iterable<{ sealed: boolean; fd?: number; index?: unknown }> } }).segments;
  return [...list.objects()].filter((s) => s.sealed);
}

describe('SegmentLog', () => {
  const tmp = useTempDir();

  async function fill(log: SegmentLog, batches: number, perBatch = 3): Promise<string[]> {
    const written: string[] = [];
    for (let b = 0; b < batches; b++) {
      const texts = Array.from({ length: perBatch }, (_, i) => `batch-${b}-record-${i}-${'x'.repeat((b * 7) % 50)}`);
      written.push(...texts);
      await log.append(records(...texts)).committed;
    }
    return written;
  }

  it('assigns dense positions and reads them back across many rolled segments', async () => {
    const log = await SegmentLog.open(logOptions(tmp.path));
    const written = await fill(log, 60);
    await log.flush(); // Sealing follows the acknowledgement; flush waits for the loop to finish it.
    expect(log.segmentInfos().length).to.be.greaterThan(5);
    expect(log.segmentInfos().slice(0, -1).every((s) => s.sealed)).to.equal(true);
    const read = await readAllRecords(log);
    expect(read.map((r) => r.text)).to.deep.equal(written);
    expect(read.map((r) => r.position)).to.deep.equal(written.map((_, i) => i));
    await log.close();
  });

  it('reads from any position forwards and backwards', async () => {
    const log = await SegmentLog.open(logOptions(tmp.path));
    const written = await fill(log, 40);
    for (const from of [0, 1, 17, 59, written.length - 1]) {
      expect((await readAllRecords(log, from)).map((r) => r.text)).to.deep.equal(written.slice(from));
    }
    const backwards: string[] = [];
    let position = written.length - 1;
    while (position >= 0) {
      const batches = await log.readBackward(position, 200);
      expect(batches.length).to.be.greaterThan(0);
      for (const batch of [...batches].reverse()) {
        for (let i = batch.recordCount - 1; i >= 0; i--) {
          if (batch.basePosition + i <= position) backwards.push(batch.records[i]!.toString());
        }
      }
      position = batches[0]!.basePosition - 1;
    }
    expect(backwards).to.deep.equal([...written].reverse());
    await log.close();
  });

  it('keeps everything across a reopen and goes on appending at the next position', async () => {
    let log = await SegmentLog.open(logOptions(tmp.path));
    const first = await fill(log, 30);
    await log.close();
    log = await SegmentLog.open(logOptions(tmp.path));
    expect(log.nextPosition).to.equal(first.length);
    const second = await fill(log, 5);
    expect((await readAllRecords(log)).map((r) => r.text)).to.deep.equal([...first, ...second]);
    await log.close();
  });

  it('groups concurrent appends into shared writes and syncs, and keeps their order', async () => {
    // On a simulated disk, which counts the writes and syncs the log asks for.
    const logDir = path.join(tmp.path, 'log');
    const sim = new SimStorage(logDir, 1);
    const unmount = mountStorage(logDir, sim);
    try {
      const log = await SegmentLog.open(logOptions(logDir, { segmentBytes: 1 << 20, durability: 'fsync' }));
      const before = { ...sim.counts };
      const receipts = Array.from({ length: 200 }, (_, i) => log.append(records(`r${i}`)));
      await Promise.all(receipts.map((r) => r.committed));
      const writes = sim.counts.write - before.write;
      const syncs = sim.counts.fdatasync - before.fdatasync;
      // 200 appends placed in one tick go out as one group (measured: 4 writes, the batches and
      // index entries, and 1 fdatasync); one write or sync per append would be 200.
      expect(syncs, 'fdatasyncs for 200 concurrent appends').to.be.at.most(2);
      expect(writes, 'writes for 200 concurrent appends (batches and index entries)').to.be.at.most(8);
      expect(receipts.map((r) => r.basePosition)).to.deep.equal(receipts.map((_, i) => i));
      expect((await readAllRecords(log)).map((r) => r.text)).to.deep.equal(receipts.map((_, i) => `r${i}`));
      await log.close();
    } finally {
      unmount();
    }
  });

  it('rolls a segment whose first batch is older than segmentMaxAgeMs', async () => {
    const clock = new ManualClock();
    const log = await SegmentLog.open(logOptions(tmp.path, { segmentBytes: 1 << 20, segmentMaxAgeMs: 1000, clock }));
    await log.append(records('a')).committed;
    clock.advance(999);
    await log.append(records('b')).committed;
    expect(log.segmentInfos()).to.have.length(1);
    clock.advance(1);
    await log.append(records('c')).committed;
    expect(log.segmentInfos().map((s) => s.basePosition)).to.deep.equal([0, 2]);
    await log.close();
  });

  it('writes a sidecar with positions, timestamps and checksums when sealing', async () => {
    const log = await SegmentLog.open(logOptions(tmp.path));
    await fill(log, 20);
    const [first] = log.segmentInfos();
    const sidecar = JSON.parse(JSON.parse(fs.readFileSync(first!.logFile.replace('.log', '.sealed'), 'utf8')).body);
    expect(sidecar.basePosition).to.equal(0);
    expect(sidecar.lastPosition).to.equal(first!.nextPosition - 1);
    expect(sidecar.data.bytes).to.equal(fs.statSync(first!.logFile).size);
    await log.close();
  });

  it('reports a flipped byte in a sealed segment as CorruptRecordError, never as data', async () => {
    let log = await SegmentLog.open(logOptions(tmp.path));
    await fill(log, 30);
    await log.close();
    const file = path.join(tmp.path, '00000000000000000000.log');
    const bytes = fs.readFileSync(file);
    bytes[60] = bytes[60]! ^ 0x40;
    fs.writeFileSync(file, bytes);
    log = await SegmentLog.open(logOptions(tmp.path));
    let error: unknown;
    try {
      await readAllRecords(log);
    } catch (e) {
      error = e;
    }
    expect(isColdstreamError(error, 'CORRUPT_RECORD')).to.equal(true);
    expect((error as CorruptRecordError).file).to.equal(file);
    expect((error as CorruptRecordError).byteOffset).to.equal(0);
    await log.close();
  });

  it('rebuilds a damaged sealed index from the data', async () => {
    let log = await SegmentLog.open(logOptions(tmp.path));
    const written = await fill(log, 30);
    await log.close();
    fs.writeFileSync(path.join(tmp.path, '00000000000000000000.index'), Buffer.from('garbage!'));
    log = await SegmentLog.open(logOptions(tmp.path));
    expect((await readAllRecords(log, 2)).map((r) => r.text)).to.deep.equal(written.slice(2));
    await log.close();
  });

  // Recovery trusts everything before the last index entry that checks out, so an entry must
  // never reach the disk before the data it points past.
  it('persists no index entry past the data fdatasync\'d so far under interval durability', async () => {
    const syncedBytes: number[] = [0];
    const mutableFs = fs as { fdatasync: typeof fs.fdatasync };
    const fdatasync = fs.fdatasync;
    mutableFs.fdatasync = ((fd: number, callback: fs.NoParamCallback) => {
      syncedBytes.push(fs.fstatSync(fd).size);
      fdatasync(fd, callback);
    }) as typeof fs.fdatasync;
    const log = await SegmentLog.open(logOptions(tmp.path, { durability: 'interval', fsyncIntervalMs: 60_000, segmentBytes: 1 << 20 }));
    try {
      for (let i = 0; i < 20; i++) await log.append(records(`record ${i} ${'x'.repeat(60)}`)).committed;
      const indexFile = path.join(tmp.path, '00000000000000000000.index');
      const index = fs.existsSync(indexFile) ? fs.readFileSync(indexFile) : Buffer.alloc(0);
      const lastIndexed = index.length === 0 ? 0 : index.readUInt32LE(index.length - 4);
      expect(lastIndexed).to.be.lessThan(Math.max(1, ...syncedBytes));
    } finally {
      mutableFs.fdatasync = fdatasync;
      await log.close();
    }
  });

  it('keeps at most maxOpenSegments sealed segments open, with their indexes, and reads them all again', async () => {
    const log = await SegmentLog.open(logOptions(tmp.path, { maxOpenSegments: 2 }));
    const written = await fill(log, 60);
    await log.close();
    const reopened = await SegmentLog.open(logOptions(tmp.path, { maxOpenSegments: 2 }));
    expect(reopened.segmentInfos().filter((s) => s.sealed).length).to.be.greaterThan(5);
    for (let round = 0; round < 2; round++) {
      expect((await readAllRecords(reopened)).map((r) => r.text)).to.deep.equal(written);
      const segments = sealedSegmentObjects(reopened);
      expect(segments.filter((s) => s.fd !== undefined).length, 'open files').to.be.at.most(2);
      expect(segments.filter((s) => s.index !== undefined).length, 'loaded indexes').to.be.at.most(2);
    }
    await reopened.close();
  });

  it('keeps at most maxOpenSegments sealed segments open while writing, with no read at all', async () => {
    const log = await SegmentLog.open(logOptions(tmp.path, { maxOpenSegments: 2, durability: 'none' }));
    await fill(log, 80);
    await log.flush(); // Waits for the seals too.
    try {
      expect(log.segmentInfos().filter((s) => s.sealed).length).to.be.greaterThan(8);
      const segments = sealedSegmentObjects(log);
      expect(segments.filter((s) => s.fd !== undefined).length, 'open files').to.be.at.most(2);
      expect(segments.filter((s) => s.index !== undefined).length, 'indexes in memory').to.be.at.most(2);
    } finally {
      await log.close();
    }
  });

  it('refuses appends after close', async () => {
    const log = await SegmentLog.open(logOptions(tmp.path));
    await log.close();
    expect(() => log.append(records('late'))).to.throw().with.property('code', 'STORE_CLOSED');
  });
});
