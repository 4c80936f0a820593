/**
 * The few file operations the log needs, as promises over Node's callback API (measurably
 * cheaper per call than `fs/promises` FileHandles on the append path), plus atomic replacement
 * of small metadata files.
 */
import fs from 'node:fs';
import path from 'node:path';

export function open(file: string, flags: string | number, mode = 0o644): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function close(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

/** Writes all of `buf` at `byteOffset` (looping over short writes). */
export async function writeAll(fd: number, buf: Buffer, byteOffset: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const written = await new Promise<number>((resolve, reject) =>
      fs.write(fd, buf, done, buf.length - done, byteOffset + done, (err, n) => (err ? reject(err) : resolve(n))),
    );
    done += written;
  }
}

/**
 * Writes all of `buf` at `byteOffset` synchronously. The log's writer uses this for data: a
 * write into the page cache takes microseconds, less than the thread-pool round trip of an
 * asynchronous write, and the slow part (fdatasync) stays asynchronous.
 */
export function writeAllSync(fd: number, buf: Buffer, byteOffset: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, byteOffset + done);
}

/** Reads up to `length` bytes at `byteOffset`; the result is shorter only at the end of the file. */
export async function readAt(fd: number, length: number, byteOffset: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buf, done, length - done, byteOffset + done, (err, bytes) => (err ? reject(err) : resolve(bytes))),
    );
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
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, byteOffset + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function fsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

export function ftruncate(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
}

export function fstatSize(fd: number): Promise<number> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, stats) => (err ? reject(err) : resolve(stats.size))));
}

/** Makes the directory entries of `dir` (created, renamed, removed files) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fsync(fd);
  } finally {
    await close(fd);
  }
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
  await fs.promises.rename(tmp, file);
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
    return await fs.promises.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function unlinkIfExists(file: string): Promise<void> {
  try {
    await fs.promises.unlink(file);
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
