import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { EventStore, isColdstreamError } from '../../lib/index.js';
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
