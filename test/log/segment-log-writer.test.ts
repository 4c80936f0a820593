/**
 * The writer loop under a failing layer above (a commit listener that throws), the order of its
 * syncs across segments (which recovery relies on), and what close settles before it returns.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { StoreClosedError } from '../../lib/errors.js';
import { SegmentLog } from '../../lib/log/segment-log.js';
import { logOptions, readAllRecords, records } from '../helpers/log.js';
import { useTempDir } from '../helpers/temp-dir.js';

/** `promise`, or a rejection naming `what` once `ms` have passed without it settling. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Collects unhandled rejections while `body` runs (mocha would otherwise blame a later test). */
async function noUnhandledRejection(body: () => Promise<void>): Promise<void> {
  const unhandled: unknown[] = [];
  const record = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', record);
  try {
    await body();
    await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    process.off('unhandledRejection', record);
  }
  expect(unhandled.map(String), 'unhandled rejections').to.deep.equal([]);
}

describe('SegmentLog writer loop', () => {
  const tmp = useTempDir();

  it('goes on when a commit listener throws: the group is acknowledged, flush settles, the other listeners run, the error is reported', async () => {
    await noUnhandledRejection(async () => {
      const reported: unknown[] = [];
      const log = await SegmentLog.open(logOptions(tmp.path, { onListenerError: (err) => reported.push(err) }));
      const seen: number[] = [];
      const off = log.onCommit(() => {
        throw new Error('a bug in a listener');
      });
      log.onCommit((commitEnd) => seen.push(commitEnd));
      const first = log.append(records('a', 'b'));
      const flushed = log.flush();
      await within(5000, 'the append and the flush', Promise.all([first.committed, flushed]));
      expect(log.commitEnd).to.equal(2);
      // The loop is alive: later appends and flushes go through, and the log stays consistent.
      const more = Array.from({ length: 20 }, (_, i) => log.append(records(`r${i}`)));
      await within(5000, 'later appends', Promise.all([...more.map((r) => r.committed), log.flush()]));
      expect(log.failed).to.equal(undefined);
      expect(log.commitEnd).to.equal(22);
      expect(seen.at(-1)).to.equal(22);
      expect(reported.length).to.be.at.least(2);
      expect(reported.every((e) => e instanceof Error && e.message === 'a bug in a listener')).to.equal(true);
      off();
      await within(5000, 'close', log.close());
      const reopened = await SegmentLog.open(logOptions(tmp.path));
      expect((await readAllRecords(reopened)).map((r) => r.text)).to.deep.equal(['a', 'b', ...more.map((_, i) => `r${i}`)]);
      await reopened.close();
    });
  });

  it('reports what a commit listener threw as a process warning by default', async () => {
    await noUnhandledRejection(async () => {
      const log = await SegmentLog.open(logOptions(tmp.path));
      const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
      const off = log.onCommit(() => {
        throw new Error('listener failure');
      });
      await within(5000, 'the append', log.append(records('x')).committed);
      off();
      const warning = await within(5000, 'the warning', warned);
      expect(warning.name).to.equal('ColdstreamWarning');
      expect(warning.message).to.contain('listener failure').and.to.contain(tmp.path);
      await within(5000, 'the flush', log.flush());
      await log.close();
    });
  });

  it('wakes a waitForCommit caller with StoreClosedError when the log closes', async () => {
    const log = await SegmentLog.open(logOptions(tmp.path));
    await log.append(records('a')).committed;
    const waiting = log.waitForCommit(log.nextPosition + 5).then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await log.close();
    expect(await within(5000, 'waitForCommit', waiting)).to.be.instanceOf(StoreClosedError);
  });

  it('creates a segment only once the one before it is synced whole (a group of appends across a roll, fsync durability)', async () => {
    const log = await SegmentLog.open(logOptions(tmp.path, { preallocateBytes: 0 }));
    const mutableFs = fs as { fdatasync: typeof fs.fdatasync; writeSync: typeof fs.writeSync; open: typeof fs.open };
    const { fdatasync, writeSync, open } = fs;
    const events: string[] = [];
    const nameOf = (fd: number): string => path.basename(fs.readlinkSync(`/proc/self/fd/${fd}`));
    try {
      mutableFs.fdatasync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
        events.push(`sync ${nameOf(fd)}`);
        fdatasync(fd, callback);
      }) as typeof fs.fdatasync;
      mutableFs.writeSync = ((fd: number, ...rest: unknown[]) => {
        if (nameOf(fd).endsWith('.log')) events.push(`write ${nameOf(fd)}`);
        return (writeSync as (...args: unknown[]) => number)(fd, ...rest);
      }) as typeof fs.writeSync;
      mutableFs.open = ((file: fs.PathLike, flags: fs.OpenMode, ...rest: unknown[]) => {
        if (flags === 'wx+') events.push(`create ${path.basename(String(file))}`);
        return (open as (...args: unknown[]) => void)(file, flags, ...rest);
      }) as typeof fs.open;
      // Concurrent appends: groups of many batches, some of them across a roll.
      const receipts = Array.from({ length: 300 }, (_, i) => log.append(records(`record-${i}-${'z'.repeat(40)}`)));
      await Promise.all(receipts.map((r) => r.committed));
    } finally {
      Object.assign(mutableFs, { fdatasync, writeSync, open });
    }
    const created = events.filter((e) => e.startsWith('create ')).map((e) => e.slice(7));
    expect(created.length).to.be.greaterThan(3);
    for (const [k, file] of created.entries()) {
      if (k === 0) continue;
      const before = events.slice(0, events.indexOf(`create ${file}`));
      const previous = created[k - 1]!;
      const lastWrite = before.lastIndexOf(`write ${previous}`);
      const lastSync = before.lastIndexOf(`sync ${previous}`);
      expect(lastSync, `${previous} synced after its last write and before ${file} was created`).to.be.greaterThan(lastWrite);
    }
    // The same order holds inside a group that reaches a new segment (written, synced, created).
    expect(events.some((e, i) => e.startsWith('write ') && events[i + 1]?.startsWith('sync ') && events[i + 2]?.startsWith('create '))).to.equal(true);
    await log.close();
  });

  it('never syncs a segment while an earlier one holds unsynced data (none durability, a flush before the seal)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // The first seal waits (after its own fsync), so the next segment's seal, queued behind
    // it, has not synced that segment when the flush comes.
    const log = await SegmentLog.open(
      logOptions(tmp.path, {
        durability: 'none',
        onSeal: async (segment) => {
          if (segment.basePosition === 0) await gate;
          return {};
        },
      }),
    );
    const mutableFs = fs as { fdatasync: typeof fs.fdatasync };
    const fdatasync = fs.fdatasync;
    const synced: string[] = [];
    try {
      const bases = new Set<number>();
      for (let i = 0; bases.size < 3; i++) {
        const receipt = log.append(records(`record-${i}-${'y'.repeat(60)}`));
        await receipt.committed;
        bases.add(receipt.segmentBase);
      }
      const [, second, third] = [...bases] as [number, number, number];
      mutableFs.fdatasync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
        synced.push(path.basename(fs.readlinkSync(`/proc/self/fd/${fd}`)));
        fdatasync(fd, callback);
      }) as typeof fs.fdatasync;
      const flushed = log.flush();
      const name = (base: number): string => `${String(base).padStart(20, '0')}.log`;
      for (const deadline = Date.now() + 5000; !synced.includes(name(third)) && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(synced, 'fdatasync calls').to.include(name(third));
      expect(synced.indexOf(name(second)), `${name(second)} synced before ${name(third)}: ${synced.join(', ')}`).to.be.within(0, synced.indexOf(name(third)));
      release();
      await within(5000, 'the flush', flushed);
    } finally {
      mutableFs.fdatasync = fdatasync;
      release();
      await log.close();
    }
  });
});
