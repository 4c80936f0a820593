/**
 * A simulated disk for the log's storage port (lib/log/storage.ts), modelling what a real disk
 * and its page cache may do when the power goes, after SQLite's crash-test VFS and
 * TigerBeetle's simulated storage:
 *
 * - Writes go to a volatile copy of each file. `fdatasync`/`fsync` make a file's data and size
 *   durable. At a power cut each page (4 KiB) written since the file's last sync is kept or
 *   lost independently, in any combination; the size is the synced one or the latest one.
 * - Creating, renaming and removing directory entries is volatile until `fsyncDir` of the
 *   directory. At a cut, a random prefix of each directory's changes since its last fsync
 *   survives (file systems journal metadata in order), so a new file, a rename or an unlink
 *   may be undone; a file whose name did not survive is gone.
 * - Faults: the n-th operation of a kind fails with EIO or ENOSPC ({@link SimStorage.failAt}).
 * - {@link SimStorage.cutAfter}: the power goes just before the n-th mutating operation (a
 *   write, sync, create, rename, truncate or unlink); from then on every operation fails with
 *   EIO, as on a dead machine, until {@link SimStorage.reboot}.
 * - Mutation testing: {@link SimStorage.skipSyncsFrom} turns the syncs called from a source
 *   location (`segment-log.ts:432`) into no-ops, to show that a torture notices the sync missing.
 *
 * Seeded: the same seed and the same sequence of operations give the same outcome.
 */
import fs from 'node:fs';
import path from 'node:path';
import { MOUNTED_FD_BASE, type MountableStorage } from '../../lib/log/storage.js';
import { seededRandom } from './random.js';

export const PAGE_BYTES = 4096;

interface Inode {
  readonly id: number;
  data: Buffer;
  size: number;
  durable: { data: Buffer; size: number };
  /** Pages written (or cut off by a truncate) since the last sync. */
  dirty: Set<number>;
}

type Entry = { kind: 'file'; inode: Inode } | { kind: 'dir' };

type DirOp = { op: 'set'; name: string; entry: Entry } | { op: 'delete'; name: string };

interface Dir {
  entries: Map<string, Entry>;
  durable: Map<string, Entry>;
  /** Changes since the last fsyncDir, in order. */
  pending: DirOp[];
}

interface OpenFile {
  readonly inode: Inode;
  readonly writable: boolean;
}

type Operation = 'open' | 'create' | 'write' | 'read' | 'fdatasync' | 'fsync' | 'fsyncDir' | 'rename' | 'unlink' | 'truncate' | 'mkdir';

const MUTATING = new Set<Operation>(['create', 'write', 'fdatasync', 'fsync', 'fsyncDir', 'rename', 'unlink', 'truncate', 'mkdir']);

function errno(code: string, what: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${what} (simulated storage)`), { code });
}

export class SimStorage implements MountableStorage {
  readonly root: string;
  private readonly dirs = new Map<string, Dir>();
  private fds = new Map<number, OpenFile>();
  private nextFd = MOUNTED_FD_BASE + 3;
  private nextInode = 1;
  private random: () => number;
  private crashed = false;
  private mutations = 0;
  private cutAt: number | undefined;
  private readonly faults: { operation: Operation; nth: number; code: 'EIO' | 'ENOSPC'; seen: number }[] = [];
  private skipped: string | undefined;
  /** Operations performed, by kind. */
  readonly counts: Record<Operation, number> = { open: 0, create: 0, write: 0, read: 0, fdatasync: 0, fsync: 0, fsyncDir: 0, rename: 0, unlink: 0, truncate: 0, mkdir: 0 };
  /** Syncs skipped by {@link skipSyncsFrom}. */
  skippedSyncs = 0;
  /** The last directory changes, syncs and reboots, for failure reports ({@link history}). */
  private readonly journal: string[] = [];
  private boots = 0;

  private note(line: string): void {
    this.journal.push(`[boot ${this.boots}] ${line}`);
    if (this.journal.length > 50_000) this.journal.splice(0, 10_000);
  }

  /** Journal lines that mention any of `names` (file names, or any text). */
  history(...names: string[]): string[] {
    return this.journal.filter((line) => names.some((name) => line.includes(name)));
  }

  constructor(root: string, seed: number) {
    this.root = path.resolve(root);
    this.random = seededRandom(seed).next;
    this.dirs.set(this.root, { entries: new Map(), durable: new Map(), pending: [] });
  }

  ownsFd(fd: number): boolean {
    return this.fds.has(fd);
  }

  /** Mutating operations performed so far. */
  get mutationCount(): number {
    return this.mutations;
  }

  get isCut(): boolean {
    return this.crashed;
  }

  /** The power goes just before the `n`-th mutating operation from now (1: the next one). */
  cutAfter(n: number): void {
    this.cutAt = this.mutations + n;
  }

  /** The power goes now. */
  cut(): void {
    this.crashed = true;
  }

  /** The `nth` operation of kind `operation` from now fails with `code` (and changes nothing). */
  failAt(operation: Operation, nth: number, code: 'EIO' | 'ENOSPC' = 'EIO'): void {
    this.faults.push({ operation, nth, code, seen: 0 });
  }

  /** Syncs (fsync, fdatasync, fsyncDir) called from a stack frame containing `location` do nothing. */
  skipSyncsFrom(location: string | undefined): void {
    this.skipped = location;
  }

  /**
   * Power back on: what survives of every file and directory entry (see the module comment),
   * chosen with this storage's generator. Every descriptor is gone.
   */
  reboot(): void {
    this.boots++;
    const survivingDirs = new Map<string, Dir>();
    for (const [dirPath, dir] of this.dirs) {
      const kept = Math.floor(this.random() * (dir.pending.length + 1));
      for (const [i, op] of dir.pending.entries()) this.note(`reboot: ${i < kept ? 'kept' : 'LOST'} ${op.op} ${path.relative(this.root, path.join(dirPath, op.name))}`);
      const entries = new Map(dir.durable);
      for (const op of dir.pending.slice(0, kept)) {
        if (op.op === 'set') entries.set(op.name, op.entry);
        else entries.delete(op.name);
      }
      survivingDirs.set(dirPath, { entries, durable: new Map(entries), pending: [] });
    }
    const seen = new Set<Inode>();
    this.dirs.clear();
    for (const [dirPath, dir] of survivingDirs) {
      // A directory whose own entry did not survive is gone, with what it held.
      if (dirPath !== this.root && survivingDirs.get(path.dirname(dirPath))?.entries.get(path.basename(dirPath))?.kind !== 'dir') continue;
      this.dirs.set(dirPath, dir);
      for (const [name, entry] of dir.entries) {
        if (entry.kind === 'file' && !seen.has(entry.inode)) {
          seen.add(entry.inode);
          this.settle(entry.inode, path.relative(this.root, path.join(dirPath, name)));
        }
      }
    }
    this.fds = new Map();
    this.crashed = false;
    this.cutAt = undefined;
  }

  /** What survives of a file's unsynced writes. */
  private settle(inode: Inode, name: string): void {
    const size = inode.size === inode.durable.size || this.random() < 0.5 ? inode.durable.size : inode.size;
    if (inode.dirty.size > 0 || size !== inode.size) this.note(`reboot: ${name} size ${size} (synced ${inode.durable.size}, written ${inode.size}), ${inode.dirty.size} unsynced pages`);
    const data = Buffer.alloc(Math.max(size, PAGE_BYTES));
    inode.durable.data.copy(data, 0, 0, Math.min(size, inode.durable.size));
    for (const page of [...inode.dirty].sort((a, b) => a - b)) {
      const start = page * PAGE_BYTES;
      if (start >= size || this.random() < 0.5) continue; // Lost: the durable bytes (or zeros) stay.
      data.fill(0, start, Math.min(size, start + PAGE_BYTES));
      inode.data.copy(data, start, start, Math.min(size, inode.size, start + PAGE_BYTES));
    }
    inode.data = data;
    inode.size = size;
    inode.durable = { data: Buffer.from(data.subarray(0, size)), size };
    inode.dirty = new Set();
  }

  // ------------------------------------------------------------------------ the operations

  private begin(operation: Operation, what: string): void {
    if (this.crashed) throw errno('EIO', `${operation} ${what} after a power cut`);
    if (MUTATING.has(operation)) {
      this.mutations++;
      if (this.cutAt !== undefined && this.mutations >= this.cutAt) {
        this.crashed = true;
        throw errno('EIO', `${operation} ${what}: the power went`);
      }
    }
    this.counts[operation]++;
    for (const fault of this.faults) {
      if (fault.operation === operation && ++fault.seen === fault.nth) throw errno(fault.code, `${operation} ${what}`);
    }
  }

  private dirOf(file: string): { dir: Dir; name: string } {
    const resolved = path.resolve(file);
    const dir = this.dirs.get(path.dirname(resolved));
    if (dir === undefined) throw errno('ENOENT', `no directory ${path.dirname(resolved)}`);
    return { dir, name: path.basename(resolved) };
  }

  private fileAt(file: string): Inode | undefined {
    const { dir, name } = this.dirOf(file);
    const entry = dir.entries.get(name);
    if (entry?.kind === 'dir') throw errno('EISDIR', file);
    return entry?.inode;
  }

  private setEntry(dir: Dir, name: string, entry: Entry): void {
    this.note(`set ${name}${entry.kind === 'file' ? ` (inode ${entry.inode.id})` : '/'}`);
    dir.entries.set(name, entry);
    dir.pending.push({ op: 'set', name, entry });
  }

  private deleteEntry(dir: Dir, name: string): void {
    this.note(`delete ${name}`);
    dir.entries.delete(name);
    dir.pending.push({ op: 'delete', name });
  }

  private handle(fd: number): OpenFile {
    const open = this.fds.get(fd);
    if (open === undefined) throw errno('EBADF', `descriptor ${fd}`);
    return open;
  }

  openSync(file: string, flags: string | number): number {
    this.begin('open', file);
    const resolved = path.resolve(file);
    if (this.dirs.has(resolved)) {
      const fd = this.nextFd++;
      this.fds.set(fd, { inode: { id: 0, data: Buffer.alloc(0), size: 0, durable: { data: Buffer.alloc(0), size: 0 }, dirty: new Set() }, writable: false });
      this.dirFds.set(fd, resolved);
      return fd;
    }
    const { create, exclusive, truncate, writable } = parseFlags(flags);
    const { dir, name } = this.dirOf(resolved);
    let inode = this.fileAt(resolved);
    if (inode !== undefined && exclusive) throw errno('EEXIST', file);
    if (inode === undefined) {
      if (!create) throw errno('ENOENT', file);
      this.begin('create', file);
      inode = { id: this.nextInode++, data: Buffer.alloc(PAGE_BYTES), size: 0, durable: { data: Buffer.alloc(0), size: 0 }, dirty: new Set() };
      this.setEntry(dir, name, { kind: 'file', inode });
    } else if (truncate && inode.size > 0) {
      this.truncateInode(inode, 0);
    }
    const fd = this.nextFd++;
    this.fds.set(fd, { inode, writable });
    return fd;
  }

  private readonly dirFds = new Map<number, string>();

  async open(file: string, flags: string | number): Promise<number> {
    return this.openSync(file, flags);
  }

  closeSync(fd: number): void {
    if (this.crashed) throw errno('EIO', 'close after a power cut');
    this.handle(fd);
    this.fds.delete(fd);
    this.dirFds.delete(fd);
  }

  async close(fd: number): Promise<void> {
    this.closeSync(fd);
  }

  writeSync(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
    this.begin('write', `descriptor ${fd}`);
    const { inode, writable } = this.handle(fd);
    if (!writable) throw errno('EBADF', `descriptor ${fd} is not open for writing`);
    const end = position + length;
    if (inode.data.length < end) {
      const grown = Buffer.alloc(Math.max(end, inode.data.length * 2));
      inode.data.copy(grown, 0, 0, inode.size);
      inode.data = grown;
    }
    if (position > inode.size) inode.data.fill(0, inode.size, position);
    buf.copy(inode.data, position, offset, offset + length);
    for (let page = Math.floor(position / PAGE_BYTES); page * PAGE_BYTES < end; page++) inode.dirty.add(page);
    inode.size = Math.max(inode.size, end);
    return length;
  }

  async write(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.writeSync(fd, buf, offset, length, position);
  }

  readSync(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
    this.begin('read', `descriptor ${fd}`);
    const { inode } = this.handle(fd);
    const n = Math.max(0, Math.min(length, inode.size - position));
    inode.data.copy(buf, offset, position, position + n);
    return n;
  }

  async read(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.readSync(fd, buf, offset, length, position);
  }

  private skipThisSync(): boolean {
    if (this.skipped === undefined || !(new Error().stack ?? '').includes(this.skipped)) return false;
    this.skippedSyncs++;
    return true;
  }

  async fdatasync(fd: number): Promise<void> {
    this.begin('fdatasync', `descriptor ${fd}`);
    const dirPath = this.dirFds.get(fd);
    if (dirPath !== undefined) return this.syncDir(dirPath);
    if (this.skipThisSync()) return;
    const { inode } = this.handle(fd);
    inode.durable = { data: Buffer.from(inode.data.subarray(0, inode.size)), size: inode.size };
    inode.dirty = new Set();
  }

  async fsync(fd: number): Promise<void> {
    const dirPath = this.dirFds.get(fd);
    if (dirPath !== undefined) {
      this.begin('fsyncDir', dirPath);
      return this.syncDir(dirPath);
    }
    this.begin('fsync', `descriptor ${fd}`);
    if (this.skipThisSync()) return;
    const { inode } = this.handle(fd);
    inode.durable = { data: Buffer.from(inode.data.subarray(0, inode.size)), size: inode.size };
    inode.dirty = new Set();
  }

  async fsyncDir(dir: string): Promise<void> {
    this.begin('fsyncDir', dir);
    this.syncDir(path.resolve(dir));
  }

  private syncDir(dirPath: string): void {
    if (this.skipThisSync()) return;
    const dir = this.dirs.get(dirPath);
    if (dir === undefined) throw errno('ENOENT', dirPath);
    dir.durable = new Map(dir.entries);
    dir.pending = [];
  }

  async ftruncate(fd: number, length: number): Promise<void> {
    this.begin('truncate', `descriptor ${fd}`);
    this.note(`truncate inode ${this.handle(fd).inode.id} to ${length}`);
    this.truncateInode(this.handle(fd).inode, length);
  }

  private truncateInode(inode: Inode, length: number): void {
    if (length > inode.data.length) {
      const grown = Buffer.alloc(length);
      inode.data.copy(grown, 0, 0, inode.size);
      inode.data = grown;
    }
    const from = Math.min(length, inode.size);
    const to = Math.max(length, inode.size);
    inode.data.fill(0, from, Math.max(from, Math.min(to, inode.data.length)));
    for (let page = Math.floor(from / PAGE_BYTES); page * PAGE_BYTES < to; page++) inode.dirty.add(page);
    inode.size = length;
  }

  async fstatSize(fd: number): Promise<number> {
    if (this.crashed) throw errno('EIO', 'fstat after a power cut');
    return this.handle(fd).inode.size;
  }

  async rename(from: string, to: string): Promise<void> {
    this.begin('rename', `${from} → ${to}`);
    const source = this.dirOf(from);
    const entry = source.dir.entries.get(source.name);
    if (entry === undefined) throw errno('ENOENT', from);
    const target = this.dirOf(to);
    this.deleteEntry(source.dir, source.name);
    this.setEntry(target.dir, target.name, entry);
  }

  async unlink(file: string): Promise<void> {
    this.begin('unlink', file);
    const { dir, name } = this.dirOf(file);
    const entry = dir.entries.get(name);
    if (entry === undefined) throw errno('ENOENT', file);
    if (entry.kind === 'dir') throw errno('EISDIR', file);
    this.deleteEntry(dir, name);
  }

  async readdir(dir: string): Promise<string[]> {
    if (this.crashed) throw errno('EIO', 'readdir after a power cut');
    const found = this.dirs.get(path.resolve(dir));
    if (found === undefined) throw errno('ENOENT', dir);
    return [...found.entries.keys()].sort();
  }

  async mkdirp(dir: string): Promise<string | undefined> {
    const resolved = path.resolve(dir);
    if (this.dirs.has(resolved)) return undefined;
    const first = (await this.mkdirp(path.dirname(resolved))) ?? resolved;
    this.begin('mkdir', resolved);
    const parent = this.dirOf(resolved);
    this.setEntry(parent.dir, parent.name, { kind: 'dir' });
    this.dirs.set(resolved, { entries: new Map(), durable: new Map(), pending: [] });
    return first;
  }

  async readFile(file: string): Promise<Buffer> {
    this.begin('read', file);
    const inode = this.fileAt(file);
    if (inode === undefined) throw errno('ENOENT', file);
    return Buffer.from(inode.data.subarray(0, inode.size));
  }

  async exists(file: string): Promise<boolean> {
    if (this.crashed) throw errno('EIO', 'access after a power cut');
    const resolved = path.resolve(file);
    if (this.dirs.has(resolved)) return true;
    const dir = this.dirs.get(path.dirname(resolved));
    return dir?.entries.has(path.basename(resolved)) ?? false;
  }

  /** The names of the files under the root, with their current sizes (for failure reports). */
  listing(): string[] {
    const out: string[] = [];
    for (const [dirPath, dir] of this.dirs) {
      for (const [name, entry] of dir.entries) out.push(`${path.relative(this.root, path.join(dirPath, name))}${entry.kind === 'file' ? ` ${entry.inode.size}` : '/'}`);
    }
    return out.sort();
  }
}

function parseFlags(flags: string | number): { create: boolean; exclusive: boolean; truncate: boolean; writable: boolean } {
  if (typeof flags === 'number') {
    const { O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;
    return { create: (flags & O_CREAT) !== 0, exclusive: (flags & O_EXCL) !== 0, truncate: (flags & O_TRUNC) !== 0, writable: (flags & (O_WRONLY | O_RDWR)) !== 0 };
  }
  switch (flags) {
    case 'r':
      return { create: false, exclusive: false, truncate: false, writable: false };
    case 'r+':
      return { create: false, exclusive: false, truncate: false, writable: true };
    case 'w':
    case 'w+':
      return { create: true, exclusive: false, truncate: true, writable: true };
    case 'wx':
    case 'wx+':
      return { create: true, exclusive: true, truncate: false, writable: true };
    case 'a+':
      return { create: true, exclusive: false, truncate: false, writable: true };
    default:
      throw new Error(`simulated storage: open flags ${flags} are not modelled`);
  }
}
