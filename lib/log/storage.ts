/**
 * The storage port: every file operation the log (and tiering's local state) performs, in one
 * narrow interface. Production uses {@link nodeStorage}, Node's `fs` on the real disk. Tests
 * mount a simulated storage (test/helpers/sim-storage.ts) on a directory to model what a disk
 * and its page cache may do across a power cut: unsynced writes lost whole or per page, new
 * directory entries that were never made durable vanishing, writes and syncs failing.
 *
 * Selection is by path and by descriptor: {@link mountStorage} routes every operation on a path
 * under its root, and every descriptor such an open returned, to the mounted storage. Anything
 * else goes to {@link nodeStorage}. A descriptor of a mounted storage is at or above
 * {@link MOUNTED_FD_BASE}, a number no operating system hands out, so routing a descriptor
 * costs one comparison on the append path.
 *
 * Semantics every implementation keeps (the ones the log relies on, and the simulation models):
 * - `write` changes the page cache only; it is durable after `fdatasync` (data and size) or
 *   `fsync` (also other metadata) of that descriptor.
 * - A created, renamed or removed directory entry is durable after `fsyncDir` of its
 *   directory, not before (a file's own fsync does not make its name durable).
 * - `rename` over an existing name replaces it atomically: after a crash the name refers to the
 *   old file or the new one, never to neither.
 * - Errors are Node's: an `Error` with `code` (`ENOENT`, `EEXIST`, `EIO`, `ENOSPC`…).
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Storage {
  open(file: string, flags: string | number, mode?: number): Promise<number>;
  openSync(file: string, flags: string | number, mode?: number): number;
  close(fd: number): Promise<void>;
  closeSync(fd: number): void;
  /** Writes up to `length` bytes of `buf` from `offset` at file position `position`; returns how many. */
  write(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  writeSync(fd: number, buf: Buffer, offset: number, length: number, position: number): number;
  /** Reads up to `length` bytes at `position` into `buf` from `offset`; returns how many (0 at the end). */
  read(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  readSync(fd: number, buf: Buffer, offset: number, length: number, position: number): number;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  fstatSize(fd: number): Promise<number>;
  /** Makes the directory entries of `dir` durable. */
  fsyncDir(dir: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  /** Entry names of `dir` (ENOENT when it does not exist). */
  readdir(dir: string): Promise<string[]>;
  /** Creates `dir` and missing parents; resolves with the first directory created, or undefined when it existed. */
  mkdirp(dir: string): Promise<string | undefined>;
  readFile(file: string): Promise<Buffer>;
  /** True when `file` exists. */
  exists(file: string): Promise<boolean>;
}

function callback<T>(run: (done: (err: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** Node's `fs` on the real disk (callback API: measurably cheaper per call than FileHandles). */
export const nodeStorage: Storage = Object.freeze({
  open: (file: string, flags: string | number, mode = 0o644) => callback<number>((done) => fs.open(file, flags, mode, done)),
  openSync: (file: string, flags: string | number, mode = 0o644) => fs.openSync(file, flags, mode),
  close: (fd: number) => callback<void>((done) => fs.close(fd, done)),
  closeSync: (fd: number) => fs.closeSync(fd),
  write: (fd: number, buf: Buffer, offset: number, length: number, position: number) => callback<number>((done) => fs.write(fd, buf, offset, length, position, done)),
  writeSync: (fd: number, buf: Buffer, offset: number, length: number, position: number) => fs.writeSync(fd, buf, offset, length, position),
  read: (fd: number, buf: Buffer, offset: number, length: number, position: number) => callback<number>((done) => fs.read(fd, buf, offset, length, position, done)),
  readSync: (fd: number, buf: Buffer, offset: number, length: number, position: number) => fs.readSync(fd, buf, offset, length, position),
  fdatasync: (fd: number) => callback<void>((done) => fs.fdatasync(fd, done)),
  fsync: (fd: number) => callback<void>((done) => fs.fsync(fd, done)),
  ftruncate: (fd: number, length: number) => callback<void>((done) => fs.ftruncate(fd, length, done)),
  fstatSize: (fd: number) => callback<fs.Stats>((done) => fs.fstat(fd, done)).then((stats) => stats.size),
  async fsyncDir(dir: string): Promise<void> {
    const fd = await nodeStorage.open(dir, 'r');
    try {
      await nodeStorage.fsync(fd);
    } finally {
      await nodeStorage.close(fd);
    }
  },
  rename: (from: string, to: string) => fs.promises.rename(from, to),
  unlink: (file: string) => fs.promises.unlink(file),
  readdir: (dir: string) => fs.promises.readdir(dir),
  mkdirp: (dir: string) => fs.promises.mkdir(dir, { recursive: true }),
  readFile: (file: string) => fs.promises.readFile(file),
  exists: (file: string) => fs.promises.access(file).then(
    () => true,
    () => false,
  ),
});

/** Descriptors of mounted storages start here. */
export const MOUNTED_FD_BASE = 1 << 30;

/** A storage that can be mounted: it says which descriptors are its own. */
export interface MountableStorage extends Storage {
  ownsFd(fd: number): boolean;
}

const mounts: { readonly root: string; readonly storage: MountableStorage }[] = [];

/**
 * Routes every file operation under `root` (resolved now) to `storage`, whose descriptors must
 * be at or above {@link MOUNTED_FD_BASE}. Returns the unmount. For tests: a simulated storage
 * under a store's log directory.
 */
export function mountStorage(root: string, storage: MountableStorage): () => void {
  const mount = { root: path.resolve(root), storage };
  mounts.push(mount);
  return () => {
    const i = mounts.indexOf(mount);
    if (i >= 0) mounts.splice(i, 1);
  };
}

/** The storage that holds `file`. */
export function storageOf(file: string): Storage {
  if (mounts.length === 0) return nodeStorage;
  const resolved = path.resolve(file);
  for (const mount of mounts) {
    if (resolved === mount.root || resolved.startsWith(mount.root + path.sep)) return mount.storage;
  }
  return nodeStorage;
}

/** The storage that handed out `fd`. */
export function storageOfFd(fd: number): Storage {
  if (fd < MOUNTED_FD_BASE) return nodeStorage;
  for (const mount of mounts) if (mount.storage.ownsFd(fd)) return mount.storage;
  // A descriptor of a storage unmounted since.
  throw Object.assign(new Error(`EBADF: bad file descriptor ${fd}`), { code: 'EBADF' });
}
