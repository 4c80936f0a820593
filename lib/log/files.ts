/**
 * The file operations the log needs, over the storage port (storage.ts: the real disk, or a
 * simulated one mounted by a test), plus atomic replacement of small metadata files.
 */
import path from 'node:path';
import { storageOf, storageOfFd } from './storage.js';

export function open(file: string, flags: string | number, mode = 0o644): Promise<number> {
  return storageOf(file).open(file, flags, mode);
}

/** Opens `file` synchronously (an open takes microseconds, a thread-pool round trip tens of them). */
export function openSync(file: string, flags: string | number): number {
  return storageOf(file).openSync(file, flags);
}

export function close(fd: number): Promise<void> {
  return storageOfFd(fd).close(fd);
}

export function closeSync(fd: number): void {
  storageOfFd(fd).closeSync(fd);
}

/** Writes all of `buf` at `byteOffset` (looping over short writes). */
export async function writeAll(fd: number, buf: Buffer, byteOffset: number): Promise<void> {
  const storage = storageOfFd(fd);
  let done = 0;
  while (done < buf.length) done += await storage.write(fd, buf, done, buf.length - done, byteOffset + done);
}

/**
 * Writes all of `buf` at `byteOffset` synchronously. The log's writer uses this for data: a
 * write into the page cache takes microseconds, less than the thread-pool round trip of an
 * asynchronous write, and the slow part (fdatasync) stays asynchronous.
 */
export function writeAllSync(fd: number, buf: Buffer, byteOffset: number): void {
  const storage = storageOfFd(fd);
  let done = 0;
  while (done < buf.length) done += storage.writeSync(fd, buf, done, buf.length - done, byteOffset + done);
}

/** Reads up to `length` bytes at `byteOffset`; the result is shorter only at the end of the file. */
export async function readAt(fd: number, length: number, byteOffset: number): Promise<Buffer> {
  const storage = storageOfFd(fd);
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = await storage.read(fd, buf, done, length - done, byteOffset + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/**
 * Reads up to `length` bytes at `byteOffset` synchronously; the result is shorter only at the
 * end of the file. For small point reads of data the page cache most likely holds: a pread
 * there takes a few microseconds, where the thread-pool round trip of an asynchronous read
 * costs 20–50 µs (more under load). A read from a cold disk blocks the event loop for one
 * device read, as a page fault in LMDB's memory map does.
 */
export function readAtSync(fd: number, length: number, byteOffset: number): Buffer {
  const storage = storageOfFd(fd);
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = storage.readSync(fd, buf, done, length - done, byteOffset + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

export function fdatasync(fd: number): Promise<void> {
  return storageOfFd(fd).fdatasync(fd);
}

export function fsync(fd: number): Promise<void> {
  return storageOfFd(fd).fsync(fd);
}

export function ftruncate(fd: number, length: number): Promise<void> {
  return storageOfFd(fd).ftruncate(fd, length);
}

export function fstatSize(fd: number): Promise<number> {
  return storageOfFd(fd).fstatSize(fd);
}

/** Makes the directory entries of `dir` (created, renamed, removed files) durable. */
export function fsyncDir(dir: string): Promise<void> {
  return storageOf(dir).fsyncDir(dir);
}

/** Creates `dir` and its missing parents; resolves with the first one created, or undefined when `dir` existed. */
export function mkdirp(dir: string): Promise<string | undefined> {
  return storageOf(dir).mkdirp(dir);
}

/** The entry names of `dir`. */
export function readdir(dir: string): Promise<string[]> {
  return storageOf(dir).readdir(dir);
}

export function exists(file: string): Promise<boolean> {
  return storageOf(file).exists(file);
}

export function rename(from: string, to: string): Promise<void> {
  return storageOf(to).rename(from, to);
}

/**
 * Replaces `file` with `data` so that after a crash it holds either the old or the new content,
 * never a mix: write a temporary file, fsync it, rename it over `file`, fsync the directory.
 */
export async function writeFileAtomic(file: string, data: Buffer | string): Promise<void> {
  const tmp = `${file}.tmp`;
  const fd = await open(tmp, 'w');
  try {
    await writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data, 0);
    await fsync(fd);
  } finally {
    await close(fd);
  }
  await rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** Writes `data` to a new file and fsyncs it (the caller fsyncs the directory when it matters). */
export async function writeFileDurable(file: string, data: Buffer): Promise<void> {
  const fd = await open(file, 'w');
  try {
    await writeAll(fd, data, 0);
    await fsync(fd);
  } finally {
    await close(fd);
  }
}

/** Reads a whole file, or returns undefined when it does not exist. */
export async function readFileIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await storageOf(file).readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function unlinkIfExists(file: string): Promise<void> {
  try {
    await storageOf(file).unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Runs `task` on every item, at most `limit` at a time, and returns the results in order. For
 * file work over many segments: one `Promise.all` over thousands of files opens them all at
 * once and fails with EMFILE. After a task fails no new one starts; the first error is thrown
 * once the tasks in flight have settled (so that none is left holding a file).
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, task: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await task(items[i]!, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
