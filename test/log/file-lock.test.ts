import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreLockedError, isColdstreamError } from '../../lib/errors.js';
import { FileLock } from '../../lib/log/file-lock.js';
import { useTempDir } from '../helpers/temp-dir.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOLD_LOCK = fileURLToPath(new URL('../fixtures/hold-lock.ts', import.meta.url));

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await once(child, 'exit');
  expect(child.pid).to.be.a('number');
  return child.pid!;
}

/** A child process that holds the lock on `dir`, once it has printed `locked` (run under `wrapper`, e.g. unshare, when given). */
async function lockingChild(dir: string, wrapper: string[] = []): Promise<ChildProcess> {
  const command = [...wrapper, process.execPath, '--import', 'tsx', HOLD_LOCK, dir];
  const child = spawn(command[0]!, command.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 15_000;
  while (!output.includes('locked')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the child did not take the lock: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return child;
}

/** State letter of a process from /proc (R, S, Z…), or undefined once it is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

function acquireError(dir: string): unknown {
  try {
    FileLock.acquire(dir).release();
  } catch (err) {
    return err;
  }
  return undefined;
}

function writeLock(dir: string, owner: object | string): void {
  fs.writeFileSync(path.join(dir, 'LOCK'), typeof owner === 'string' ? owner : JSON.stringify(owner));
}

interface Owner {
  pid: number;
  host: string;
  startTime?: string;
  bootId?: string;
  pidNamespace?: string;
}

function lockOwner(dir: string): Owner {
  return JSON.parse(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8')) as Owner;
}

/** This boot and this process's pid namespace, as a lock records them (Linux). */
const here = {
  bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
  pidNamespace: fs.readlinkSync('/proc/self/ns/pid'),
};

/** A lock of `pid` written on this host, in this boot and this pid namespace unless `other` says otherwise. */
function ownerHere(pid: number, other: Partial<Owner> = {}): Owner {
  return { pid, host: os.hostname(), startTime: '1', ...here, ...other };
}

/** Runs `body` as if /proc could not be read (and, with `platform`, as if on another system). */
function withoutProc<T>(platform: NodeJS.Platform, body: () => T): T {
  const mutable = fs as { readFileSync: typeof fs.readFileSync; readlinkSync: typeof fs.readlinkSync };
  const { readFileSync, readlinkSync } = fs;
  const missing = (file: fs.PathOrFileDescriptor): Error => Object.assign(new Error(`ENOENT: no such file or directory, open '${String(file)}'`), { code: 'ENOENT' });
  mutable.readFileSync = ((file: fs.PathOrFileDescriptor, options?: unknown) => {
    if (String(file).startsWith('/proc/')) throw missing(file);
    return readFileSync(file, options as never);
  }) as typeof fs.readFileSync;
  mutable.readlinkSync = ((file: fs.PathLike, options?: unknown) => {
    if (String(file).startsWith('/proc/')) throw missing(file as string);
    return readlinkSync(file, options as never);
  }) as typeof fs.readlinkSync;
  const realPlatform = Object.getOwnPropertyDescriptor(process, 'platform')!;
  Object.defineProperty(process, 'platform', { ...realPlatform, value: platform });
  try {
    return body();
  } finally {
    mutable.readFileSync = readFileSync;
    mutable.readlinkSync = readlinkSync;
    Object.defineProperty(process, 'platform', realPlatform);
  }
}

/** The lock on `dir` is refused with STORE_LOCKED, saying `why` and how to clear it, and LOCK is left as it was. */
function expectRefused(dir: string, why: RegExp): void {
  const before = fs.readFileSync(path.join(dir, 'LOCK'), 'utf8');
  const error = acquireError(dir);
  expect(error).to.be.instanceOf(StoreLockedError);
  expect(isColdstreamError(error, 'STORE_LOCKED')).to.equal(true);
  expect((error as Error).message).to.match(why);
  expect((error as Error).message).to.contain(`delete ${path.join(dir, 'LOCK')}`);
  expect(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8')).to.equal(before);
}

describe('FileLock', () => {
  const tmp = useTempDir();

  it('refuses a second acquire in the same process, naming the owner pid', () => {
    const lock = FileLock.acquire(tmp.path);
    try {
      const error = acquireError(tmp.path);
      expect(error).to.be.instanceOf(StoreLockedError);
      expect(isColdstreamError(error, 'STORE_LOCKED')).to.equal(true);
      expect(error).to.include({ ownerPid: process.pid, dir: tmp.path, lockPath: path.join(tmp.path, 'LOCK') });
      expect((error as Error).message).to.contain(`by process ${process.pid}`);
    } finally {
      lock.release();
    }
  });

  it('writes its owner into LOCK and removes it on release', () => {
    const lock = FileLock.acquire(tmp.path);
    const owner = lockOwner(tmp.path);
    expect(owner.pid).to.equal(process.pid);
    expect(owner.host).to.equal(os.hostname());
    expect(owner.startTime).to.match(/^\d+$/);
    expect(owner.bootId).to.equal(here.bootId);
    expect(owner.pidNamespace).to.equal(here.pidNamespace).and.to.match(/^pid:\[\d+\]$/);
    expect(fs.readdirSync(tmp.path)).to.deep.equal(['LOCK']);
    lock.release();
    lock.release();
    expect(fs.readdirSync(tmp.path)).to.deep.equal([]);
  });

  it('can be acquired again after release', () => {
    for (let i = 0; i < 3; i++) FileLock.acquire(tmp.path).release();
    const lock = FileLock.acquire(tmp.path);
    expect(acquireError(tmp.path)).to.be.instanceOf(StoreLockedError);
    lock.release();
    expect(acquireError(tmp.path)).to.equal(undefined);
  });

  it('does not remove a lock that another owner took after a release', () => {
    const lock = FileLock.acquire(tmp.path);
    writeLock(tmp.path, { pid: 1, host: 'elsewhere', startTime: '1' });
    lock.release();
    expect(lockOwner(tmp.path)).to.include({ pid: 1, host: 'elsewhere' });
  });

  it('takes over a lock left by a dead process of this boot and pid namespace', async () => {
    const pid = await deadPid();
    for (const startTime of ['4242', undefined]) {
      writeLock(tmp.path, ownerHere(pid, { startTime }));
      const lock = FileLock.acquire(tmp.path);
      expect(lockOwner(tmp.path).pid).to.equal(process.pid);
      lock.release();
    }
  });

  it('takes over a lock whose pid is alive but belongs to a later process', () => {
    writeLock(tmp.path, ownerHere(process.pid, { startTime: '1' }));
    const lock = FileLock.acquire(tmp.path);
    expect(lockOwner(tmp.path).startTime).to.not.equal('1');
    lock.release();
  });

  it('takes over a LOCK file that holds no owner record', () => {
    for (const junk of ['', '{"pid":', 'null', '{"pid":"7"}']) {
      writeLock(tmp.path, junk);
      const lock = FileLock.acquire(tmp.path);
      expect(lockOwner(tmp.path).pid).to.equal(process.pid);
      lock.release();
    }
  });

  it('never takes over a lock written on another host', async () => {
    const pid = await deadPid();
    writeLock(tmp.path, { pid, host: `not-${os.hostname()}`, startTime: '1' });
    expect(acquireError(tmp.path)).to.be.instanceOf(StoreLockedError).with.property('ownerPid', pid);
    expect(lockOwner(tmp.path).pid).to.equal(pid);
    writeLock(tmp.path, ownerHere(pid, { host: `not-${os.hostname()}` }));
    expectRefused(tmp.path, /written on host 'not-/);
  });

  it('refuses a lock of another pid namespace (another container on a host of the same name), whether or not its pid runs here', async () => {
    const dead = await deadPid();
    for (const pid of [dead, process.pid]) {
      writeLock(tmp.path, ownerHere(pid, { pidNamespace: 'pid:[4026532999]', startTime: '12345' }));
      expectRefused(tmp.path, /another pid namespace \(pid:\[4026532999\]; this process runs in pid:\[\d+\]\)/);
    }
  });

  it('takes over a lock this host wrote during an earlier boot, whether or not its pid runs now (a power cut left it)', async () => {
    const dead = await deadPid();
    for (const pid of [dead, process.pid]) {
      writeLock(tmp.path, ownerHere(pid, { bootId: '00000000-0000-4000-8000-000000000000' }));
      const lock = FileLock.acquire(tmp.path);
      lock.release();
    }
  });

  it('refuses a lock that records no boot and pid namespace (an earlier version\u2019s), even with a dead pid', async () => {
    const pid = await deadPid();
    writeLock(tmp.path, { pid, host: os.hostname(), startTime: '1' });
    expectRefused(tmp.path, /does not record the boot and pid namespace/);
  });

  it('refuses a running pid of this namespace whose lock records no start time', () => {
    writeLock(tmp.path, ownerHere(process.pid, { startTime: undefined }));
    expectRefused(tmp.path, /does not record its owner's start time/);
  });

  it('without /proc on Linux, refuses to judge a lock whose pid is dead', async () => {
    const pid = await deadPid();
    writeLock(tmp.path, ownerHere(pid));
    withoutProc('linux', () => expectRefused(tmp.path, /cannot read its boot id and pid namespace from \/proc/));
  });

  it('without /proc elsewhere (no pid namespaces), judges by the pid alone', async () => {
    const pid = await deadPid();
    withoutProc('darwin', () => {
      writeLock(tmp.path, { pid: process.pid, host: os.hostname() });
      expect(acquireError(tmp.path)).to.be.instanceOf(StoreLockedError).with.property('ownerPid', process.pid);
      writeLock(tmp.path, ownerHere(pid));
      expectRefused(tmp.path, /Linux boot id and pid namespace/);
      writeLock(tmp.path, { pid, host: os.hostname() });
      const lock = FileLock.acquire(tmp.path);
      expect(lockOwner(tmp.path)).to.deep.equal({ pid: process.pid, host: os.hostname() });
      lock.release();
      expect(fs.existsSync(path.join(tmp.path, 'LOCK'))).to.equal(false);
    });
  });

  it('clears a takeover guard left behind by a process that died mid-takeover', async () => {
    const pid = await deadPid();
    writeLock(tmp.path, ownerHere(pid));
    const guard = path.join(tmp.path, 'LOCK.takeover');
    fs.mkdirSync(guard);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(guard, old, old);
    const lock = FileLock.acquire(tmp.path);
    expect(lockOwner(tmp.path).pid).to.equal(process.pid);
    expect(fs.existsSync(guard)).to.equal(false);
    lock.release();
  });

  it('retries when the takeover guard vanishes between its mkdir and its stat', async () => {
    const pid = await deadPid();
    writeLock(tmp.path, ownerHere(pid));
    const guard = path.join(tmp.path, 'LOCK.takeover');
    fs.mkdirSync(guard);
    const mutableFs = fs as { statSync: typeof fs.statSync };
    const statSync = fs.statSync;
    // The other taker finishes (removes its guard) just before this one looks at it.
    mutableFs.statSync = ((file: fs.PathLike, options?: fs.StatSyncOptions) => {
      if (file === guard) fs.rmSync(guard, { recursive: true, force: true });
      return statSync(file, options);
    }) as typeof fs.statSync;
    let lock: FileLock | undefined;
    try {
      lock = FileLock.acquire(tmp.path);
      expect(lockOwner(tmp.path).pid).to.equal(process.pid);
    } finally {
      mutableFs.statSync = statSync;
      lock?.release();
    }
  });

  it('blocks while a live child process holds the lock and takes it at once after SIGKILL', async function () {
    this.timeout(30_000);
    const child = await lockingChild(tmp.path);
    try {
      expect(lockOwner(tmp.path).pid).to.equal(child.pid);
      const error = acquireError(tmp.path);
      expect(error).to.be.instanceOf(StoreLockedError).with.property('ownerPid', child.pid);
      expect((error as Error).message).to.contain(`by process ${child.pid}`);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    const lock = FileLock.acquire(tmp.path);
    expect(lockOwner(tmp.path).pid).to.equal(process.pid);
    lock.release();
  });

  it('refuses the live lock of a process in another pid namespace (a container), where its pid means another process', async function () {
    this.timeout(30_000);
    // Needs unshare(1) and the right to create a pid namespace (root, or user namespaces).
    const probe = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
    if (probe.error !== undefined || probe.status !== 0) this.skip();
    const child = await lockingChild(tmp.path, ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child']);
    try {
      const owner = lockOwner(tmp.path);
      expect(owner.pidNamespace).to.not.equal(here.pidNamespace);
      expect(owner.bootId).to.equal(here.bootId);
      // Its pid is a small number in its own namespace, which here is some other process (or none).
      expect(owner.pid).to.not.equal(child.pid);
      expectRefused(tmp.path, /another pid namespace/);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('takes over a lock whose owner was killed but not yet reaped (a zombie)', async function () {
    this.timeout(30_000);
    const child = await lockingChild(tmp.path);
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    // Spin without yielding to the event loop, so Node cannot reap the child yet.
    const deadline = Date.now() + 5000;
    while (procState(child.pid!) !== 'Z' && Date.now() < deadline);
    expect(procState(child.pid!)).to.equal('Z');
    let lock: FileLock | undefined;
    try {
      lock = FileLock.acquire(tmp.path);
      expect(lockOwner(tmp.path).pid).to.equal(process.pid);
    } finally {
      lock?.release();
      await exited;
    }
  });
});
