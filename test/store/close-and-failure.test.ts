import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { EventStore, isColdstreamError } from '../../lib/index.js';
import { FileLock } from '../../lib/log/file-lock.js';
import { SegmentLog } from '../../lib/log/segment-log.js';
import { IndexDb } from '../../lib/store/index-db.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { collect } from '../helpers/async.js';

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}


describe('EventStore close and failures', () => {
  const tmp = useTempDir();

  it('rejects close() with STORE_FAILED when the final sync fails, and still releases the directory', async () => {
    const store = await EventStore.open({ dir: tmp.path, durability: 'none' });
    await store.appendToStream('s', [{ type: 'T', data: 1 }]);
    const mutable = fs as { fsync: typeof fs.fsync };
    const realFsync = mutable.fsync;
    mutable.fsync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) =>
      callback(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }))) as typeof fs.fsync;
    let error: unknown;
    try {
      error = await rejectionOf(store.close());
    } finally {
      mutable.fsync = realFsync;
    }
    expect(isColdstreamError(error, 'STORE_FAILED')).to.equal(true);
    const reopened = await EventStore.open({ dir: tmp.path });
    await reopened.close();
  });

  it('keeps the directory locked until a background index flush has settled, also when the log fails to close', async function () {
    this.timeout(30_000);
    const lockFile = path.join(tmp.path, 'LOCK');
    const store = await EventStore.open({ dir: tmp.path, durability: 'fsync', indexCheckpointEvents: 8 });
    const proto = IndexDb.prototype as { write: IndexDb['write'] };
    const write = proto.write;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const flushing = new Promise<void>((resolve) => (entered = resolve));
    const lockedWhenWritten: boolean[] = [];
    proto.write = async function (this: IndexDb, ...args: Parameters<IndexDb['write']>): Promise<void> {
      entered();
      await gate;
      try {
        await write.apply(this, args);
      } finally {
        lockedWhenWritten.push(fs.existsSync(lockFile));
      }
    };
    const mutable = fs as { fsync: typeof fs.fsync };
    const realFsync = mutable.fsync;
    try {
      for (let i = 0; i < 10; i++) await store.appendToStream('s', [{ type: 'T', data: i }]);
      await flushing; // The index flush after 8 events is under way, held at its write.
      mutable.fsync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) =>
        callback(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }))) as typeof fs.fsync;
      let settled = false;
      const closed = rejectionOf(store.close()).finally(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(settled, 'close settled while the index was still writing').to.equal(false);
      const error = (() => {
        try {
          FileLock.acquire(tmp.path).release();
        } catch (err) {
          return err;
        }
        return undefined;
      })();
      expect(isColdstreamError(error, 'STORE_LOCKED'), 'another writer could take the directory meanwhile').to.equal(true);
      release();
      expect(isColdstreamError(await closed, 'STORE_FAILED')).to.equal(true);
      expect(lockedWhenWritten).to.deep.equal([true]);
      expect(fs.existsSync(lockFile)).to.equal(false);
    } finally {
      proto.write = write;
      mutable.fsync = realFsync;
      release();
    }
    const reopened = await EventStore.open({ dir: tmp.path });
    expect((await collect(reopened.readStream('s'))).map((e) => e.data)).to.deep.equal([...Array(10).keys()]);
    await reopened.close();
  });

  it('closes the index before it releases the directory when open fails after opening it', async () => {
    const lockFile = path.join(tmp.path, 'LOCK');
    const proto = SegmentLog.prototype as { onCommit: SegmentLog['onCommit'] };
    const onCommit = proto.onCommit;
    const indexProto = IndexDb.prototype as { close: IndexDb['close'] };
    const close = indexProto.close;
    const lockedWhenClosed: boolean[] = [];
    proto.onCommit = () => {
      throw new Error('the last step of open fails');
    };
    indexProto.close = function (this: IndexDb): Promise<void> {
      lockedWhenClosed.push(fs.existsSync(lockFile));
      return close.call(this);
    };
    try {
      const error = await rejectionOf(EventStore.open({ dir: tmp.path }));
      expect((error as Error).message).to.equal('the last step of open fails');
    } finally {
      proto.onCommit = onCommit;
      indexProto.close = close;
    }
    expect(lockedWhenClosed).to.deep.equal([true]);
    expect(fs.existsSync(lockFile)).to.equal(false);
    const reopened = await EventStore.open({ dir: tmp.path });
    await reopened.close();
  });

  it('makes every concurrent close() wait until the directory is released', async () => {
    const store = await EventStore.open({ dir: tmp.path });
    await store.appendToStream('s', [{ type: 'T', data: 1 }]);
    const first = store.close();
    await store.close();
    const reopened = await EventStore.open({ dir: tmp.path });
    expect((await collect(reopened.readStream('s'))).length).to.equal(1);
    await first;
    await reopened.close();
  });

  it('reports a dir that is a file as INVALID_OPTIONS', async () => {
    const file = path.join(tmp.path, 'a-file');
    fs.writeFileSync(file, 'not a directory');
    for (const dir of [file, path.join(file, 'below')]) {
      const error = await rejectionOf(EventStore.open({ dir }));
      expect(isColdstreamError(error, 'INVALID_OPTIONS'), String(error)).to.equal(true);
      expect((error as Error).message).to.contain('options.dir');
    }
  });

  it('reports a sealed segment file cut short as CORRUPT_RECORD instead of reading forever', async function () {
    this.timeout(10_000);
    let store = await EventStore.open({ dir: tmp.path, durability: 'none', segmentBytes: 4096 });
    for (let i = 0; i < 40; i++) await store.appendToStream('s', [{ type: 'T', data: { i, pad: 'x'.repeat(200) } }]);
    await store.close();
    const first = path.join(tmp.path, 'log', '00000000000000000000.log');
    fs.truncateSync(first, fs.statSync(first).size - 10);
    store = await EventStore.open({ dir: tmp.path, durability: 'none', segmentBytes: 4096 });
    const forwards = await rejectionOf(collect(store.readAll()));
    expect(isColdstreamError(forwards, 'CORRUPT_RECORD'), String(forwards)).to.equal(true);
    const backwards = await rejectionOf(collect(store.readStream('s', { direction: 'backwards' })));
    expect(isColdstreamError(backwards, 'CORRUPT_RECORD'), String(backwards)).to.equal(true);
    await store.close();
  });
});
