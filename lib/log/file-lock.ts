/**
 * One writer per data directory.
 *
 * The lock is a file `LOCK` holding the owner's pid, host and process start time, created
 * atomically with `link(2)` (which fails if the name exists). A lock whose owner is gone (the
 * process died, even by SIGKILL) is stale and is taken over at once: there is no timeout to wait
 * out, because on one host a dead pid is certain. Reused pids are told apart by the process
 * start time from /proc. A lock written by another host is never considered stale.
 *
 * Taking over a stale lock happens under a second, short-lived guard directory (`mkdir` is
 * atomic) so that two processes racing for the same stale lock cannot both win.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StoreLockedError } from '../errors.js';

interface LockOwner {
  pid: number;
  host: string;
  startTime: string | undefined;
}

/** Fields of /proc/<pid>/stat after the command name, or undefined (not Linux, or no such process). */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces, so split after its ')': [0] is field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Start time of a process in clock ticks since boot (Linux, field 22), to tell a reused pid apart. */
function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.[19];
}

function isAlive(owner: LockOwner): boolean {
  if (owner.host !== os.hostname()) return true;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const stat = procStat(owner.pid);
  // A zombie (killed, not yet reaped by its parent) still answers kill(pid, 0), but it is dead.
  if (stat?.[0] === 'Z' || stat?.[0] === 'X') return false;
  const startTime = stat?.[19];
  return owner.startTime === undefined || startTime === undefined || startTime === owner.startTime;
}

function readOwner(lockPath: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as LockOwner;
    return typeof owner.pid === 'number' ? owner : undefined;
  } catch {
    return undefined;
  }
}

/** A held directory lock; release it exactly once. */
export class FileLock {
  private released = false;

  private constructor(readonly lockPath: string) {}

  /** Takes the lock on `dir` or throws {@link StoreLockedError}. */
  static acquire(dir: string): FileLock {
    const lockPath = path.join(dir, 'LOCK');
    const me: LockOwner = { pid: process.pid, host: os.hostname(), startTime: processStartTime(process.pid) };
    const tmp = `${lockPath}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    fs.writeFileSync(tmp, JSON.stringify(me));
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          fs.linkSync(tmp, lockPath);
          return new FileLock(lockPath);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const owner = readOwner(lockPath);
        if (owner !== undefined && isAlive(owner)) throw new StoreLockedError(dir, lockPath, owner.pid);
        FileLock.removeStale(lockPath, owner);
      }
      throw new StoreLockedError(dir, lockPath, readOwner(lockPath)?.pid);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  private static removeStale(lockPath: string, seen: LockOwner | undefined): void {
    const guard = `${lockPath}.takeover`;
    try {
      fs.mkdirSync(guard);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Someone else is taking over; a guard left by a process that died mid-takeover is old.
      // The guard may vanish between mkdir and stat (that taker finished): just retry then.
      const stat = fs.statSync(guard, { throwIfNoEntry: false });
      if (stat !== undefined && Date.now() - stat.mtimeMs > 10_000) fs.rmSync(guard, { recursive: true, force: true });
      return;
    }
    try {
      // Re-read under the guard: remove the lock only if it is still the stale one we saw.
      const now = readOwner(lockPath);
      if (JSON.stringify(now) === JSON.stringify(seen)) fs.rmSync(lockPath, { force: true });
    } finally {
      fs.rmSync(guard, { recursive: true, force: true });
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    const owner = readOwner(this.lockPath);
    if (owner?.pid === process.pid) fs.rmSync(this.lockPath, { force: true });
  }
}
