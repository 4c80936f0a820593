/**
 * One writer per data directory.
 *
 * The lock is a file `LOCK` holding its owner's identity, created atomically with `link(2)`
 * (which fails if the name exists). A lock is taken over only when its owner is provably gone,
 * at once (there is no timeout to wait out). A pid alone proves nothing: two containers may
 * share a host name and a directory while each numbers its processes in a pid namespace of its
 * own, where a pid running (or not) in one says nothing of the other, and pids are reused. So
 * the owner records, besides its pid and host name, the kernel's boot id
 * (`/proc/sys/kernel/random/boot_id`), its pid namespace (`readlink /proc/self/ns/pid`) and its
 * start time (`/proc/<pid>/stat` field 22, clock ticks since boot). On Linux a lock is stale
 * when this host wrote it during an earlier boot (a power cut or a crash of the machine: every
 * process of that boot is gone), or in this boot and pid namespace when that pid is not
 * running, is a zombie, or is a later process (another start time). Anything else (another
 * host, another namespace, a lock of an earlier version without these fields, /proc not
 * readable) is refused with STORE_LOCKED, saying why and how to clear it (delete LOCK once no
 * process uses the store). Without /proc (macOS, Windows: no pid namespaces there) a lock of the
 * same host whose pid is not running is stale, and a running pid is taken for the owner.
 *
 * A LOCK file that holds no owner record at all is taken over: the owner's record is complete
 * before `link(2)` publishes it, so no live owner ever shows one.
 *
 * Taking over a stale lock happens under a second, short-lived guard directory (`mkdir` is
 * atomic) so that two processes racing for the same stale lock cannot both win.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StoreLockedError } from '../errors.js';

/** Who holds a lock, as `LOCK` records it. The last two fields are missing in locks of earlier versions, and off Linux. */
interface LockOwner {
  pid: number;
  host: string;
  /** Start time of the process in clock ticks since boot (Linux), to tell a reused pid apart. */
  startTime: string | undefined;
  /** The kernel's boot id (Linux): start times and pids mean something within one boot only. */
  bootId?: string | undefined;
  /** The pid namespace `pid` is a number in (Linux), e.g. `pid:[4026531836]`. */
  pidNamespace?: string | undefined;
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

function bootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function pidNamespace(): string | undefined {
  try {
    return fs.readlinkSync('/proc/self/ns/pid') || undefined;
  } catch {
    return undefined;
  }
}

/** This process as a lock owner. */
function currentOwner(): LockOwner {
  return { pid: process.pid, host: os.hostname(), startTime: processStartTime(process.pid), bootId: bootId(), pidNamespace: pidNamespace() };
}

/** What is known of a lock's owner: provably gone, alive, or maybe alive (`unproven` says why it cannot be told). */
type Verdict = { readonly stale: true } | { readonly stale: false; readonly unproven?: string };

const ALIVE: Verdict = { stale: false };
const STALE: Verdict = { stale: true };

/** Judges the owner of a lock, as seen by `me` (see the module comment). */
function judge(owner: LockOwner, me: LockOwner): Verdict {
  if (owner.host !== me.host) return { stale: false, unproven: `the lock was written on host '${owner.host}', and a lock of another host is never taken over` };
  if (me.bootId !== undefined && me.pidNamespace !== undefined) {
    if (owner.bootId === undefined || owner.pidNamespace === undefined) {
      return { stale: false, unproven: 'the lock does not record the boot and pid namespace of its owner (it was written by an earlier version, or where /proc could not be read), so its pid proves nothing' };
    }
    // Written on this host during an earlier boot: every process of that boot is gone (a power
    // cut or a crash of the machine left it), so the store opens again without a person deleting
    // LOCK. Not protected: two machines with the same host name sharing the directory over a
    // network file system (give them distinct host names; tiering's fencing guards the bucket).
    if (owner.bootId !== me.bootId) return STALE;
    if (owner.pidNamespace !== me.pidNamespace) {
      return { stale: false, unproven: `its owner runs in another pid namespace (${owner.pidNamespace}; this process runs in ${me.pidNamespace}), such as another container, where pid ${owner.pid} cannot be checked from here` };
    }
    return judgePid(owner, true);
  }
  if (process.platform === 'linux') {
    return { stale: false, unproven: 'this process cannot read its boot id and pid namespace from /proc, so it cannot tell whether the owner is alive' };
  }
  if (owner.bootId !== undefined || owner.pidNamespace !== undefined) {
    return { stale: false, unproven: 'the lock was written by a process with a Linux boot id and pid namespace, which this system cannot compare' };
  }
  return judgePid(owner, false);
}

/** Judges the owner by its pid, known to be a number in this process's pid namespace and boot. */
function judgePid(owner: LockOwner, linux: boolean): Verdict {
  const gone = (): boolean => {
    try {
      process.kill(owner.pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH'; // EPERM: it exists, another user's.
    }
  };
  if (gone()) return STALE;
  if (!linux) return ALIVE; // Without /proc there is no start time: a running pid is taken for the owner.
  const stat = procStat(owner.pid);
  if (stat === undefined) {
    if (gone()) return STALE; // It exited in between.
    return { stale: false, unproven: `/proc/${owner.pid}/stat cannot be read, so whether process ${owner.pid} is still the owner cannot be told` };
  }
  // A zombie (killed, not yet reaped by its parent) still answers kill(pid, 0), but it is dead.
  if (stat[0] === 'Z' || stat[0] === 'X') return STALE;
  if (owner.startTime === undefined) {
    return { stale: false, unproven: `the lock does not record its owner's start time, so whether the running process ${owner.pid} is the owner or a later one cannot be told` };
  }
  return stat[19] === owner.startTime ? ALIVE : STALE;
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

  private constructor(
    readonly lockPath: string,
    private readonly owner: LockOwner,
  ) {}

  /** Takes the lock on `dir` or throws {@link StoreLockedError}. */
  static acquire(dir: string): FileLock {
    const lockPath = path.join(dir, 'LOCK');
    const me = currentOwner();
    const tmp = `${lockPath}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    fs.writeFileSync(tmp, JSON.stringify(me));
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          fs.linkSync(tmp, lockPath);
          return new FileLock(lockPath, me);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const owner = readOwner(lockPath);
        const verdict = owner === undefined ? STALE : judge(owner, me);
        if (!verdict.stale) throw new StoreLockedError(dir, lockPath, owner!.pid, verdict.unproven);
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
    // Only if it is still this lock (not one another owner took since, after a takeover).
    const owner = readOwner(this.lockPath);
    const me = this.owner;
    if (owner?.pid === me.pid && owner.startTime === me.startTime && owner.bootId === me.bootId && owner.pidNamespace === me.pidNamespace) {
      fs.rmSync(this.lockPath, { force: true });
    }
  }
}
