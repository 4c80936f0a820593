/**
 * Raw baselines: framed records appended to one file with plain Node `fs`, no store logic.
 * Frame: u32 length, u32 CRC-32C of the payload, payload (the benchmark event's JSON data).
 *
 * (a) {@link RawFile.appendSynced}: one writer, each record written then fdatasync'd before
 *     the next (the W1 baseline: the floor of a durable append with one writer).
 * (a′) {@link RawFile.appendSyncedBatch}: the same with many records per write (W3's floor).
 * (b) {@link RawFile.appendGrouped}: concurrent writers; records arriving while a write +
 *     fdatasync is in flight are written together with one write and one fdatasync (the W2
 *     baseline: group commit with nothing else around it).
 *
 * Both use the same promise-over-callback calls as the log itself (lib/log/files.ts), the
 * cheapest way to do async file I/O in Node.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { rawPayload } from './payload.js';

const FRAME_HEADER_BYTES = 8;

export function frame(payload: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  buf.writeUInt32LE(payload.length, 0);
  buf.writeUInt32LE(crc32c(payload) >>> 0, 4);
  payload.copy(buf, FRAME_HEADER_BYTES);
  return buf;
}

function open(file: string): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, 'wx', 0o644, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function close(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

async function writeAll(fd: number, buf: Buffer, at: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    done += await new Promise<number>((resolve, reject) => fs.write(fd, buf, done, buf.length - done, at + done, (err, n) => (err ? reject(err) : resolve(n))));
  }
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function fsyncDir(dir: string): Promise<void> {
  return new Promise((resolve, reject) =>
    fs.open(dir, 'r', (err, fd) => {
      if (err) return reject(err);
      fs.fsync(fd, (syncErr) => fs.close(fd, () => (syncErr ? reject(syncErr) : resolve())));
    }),
  );
}

interface Queued {
  readonly buf: Buffer;
  resolve(): void;
  reject(err: unknown): void;
}

/** An append-only file of framed records. */
export class RawFile {
  private at = 0;
  private queue: Queued[] = [];
  private busy = false;

  private constructor(
    private readonly file: string,
    private readonly fd: number,
  ) {}

  /** Creates `name` in `dir` (and makes its directory entry durable, as a segment's creation does). */
  static async create(dir: string, name: string): Promise<RawFile> {
    const file = path.join(dir, name);
    const fd = await open(file);
    await fsyncDir(dir);
    return new RawFile(file, fd);
  }

  get bytes(): number {
    return this.at;
  }

  /** (a) Frames event `n`, writes it and fdatasyncs. One caller at a time. */
  async appendSynced(n: number): Promise<void> {
    const buf = frame(rawPayload(n));
    const at = this.at;
    this.at += buf.length;
    await writeAll(this.fd, buf, at);
    await fdatasync(this.fd);
  }

  /** (a′) Frames events `first` … `first + count − 1` into one buffer, writes it and fdatasyncs (the floor of W3). */
  async appendSyncedBatch(first: number, count: number): Promise<void> {
    const frames: Buffer[] = new Array(count);
    for (let i = 0; i < count; i++) frames[i] = frame(rawPayload(first + i));
    const buf = Buffer.concat(frames);
    const at = this.at;
    this.at += buf.length;
    await writeAll(this.fd, buf, at);
    await fdatasync(this.fd);
  }

  /** (b) Frames event `n` and resolves once a group write + fdatasync holding it is done. */
  appendGrouped(n: number): Promise<void> {
    const buf = frame(rawPayload(n));
    return new Promise((resolve, reject) => {
      this.queue.push({ buf, resolve, reject });
      if (!this.busy) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length > 0) {
        const group = this.queue;
        this.queue = [];
        try {
          const buf = group.length === 1 ? group[0]!.buf : Buffer.concat(group.map((g) => g.buf));
          const at = this.at;
          this.at += buf.length;
          await writeAll(this.fd, buf, at);
          await fdatasync(this.fd);
          for (const g of group) g.resolve();
        } catch (err) {
          for (const g of group) g.reject(err);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** Closes and deletes the file. */
  async remove(): Promise<void> {
    await close(this.fd);
    fs.rmSync(this.file, { force: true });
  }
}
