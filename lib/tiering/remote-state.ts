/**
 * The local record of what tiering has done: `tiering/segments.state` in the store directory,
 * an append-only file of fixed 32-byte records, each fdatasync'd before tiering acts on it:
 *
 * | offset | size | field    | meaning                                                      |
 * |-------:|-----:|----------|--------------------------------------------------------------|
 * |      0 |    4 | crc      | CRC-32C of bytes [4, 32)                                     |
 * |      4 |    1 | kind     | 1: committed remote (attempt below); 2: local data evicted   |
 * |      5 |    3 | zero     |                                                              |
 * |      8 |    8 | base     | the segment's base position                                   |
 * |     16 |   16 | attempt  | the committed attempt's id, ASCII hex (zeros for an eviction) |
 *
 * A segment's data is evicted only after its commit record is durable here, so "evicted" always
 * means "committed remote". A crash tears at most the last record, which is cut off on open (the
 * commit is found again in the object store, the eviction redone). A damaged record with valid
 * ones after it, or a missing file, loses nothing either: the state is then rebuilt from the
 * object store's commits and from which `.log` files exist.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '../log/crc.js';
import * as files from '../log/files.js';
import { readU64, writeU64 } from '../log/u64.js';

const RECORD_BYTES = 32;
const KIND_COMMITTED = 1;
const KIND_EVICTED = 2;
export const STATE_FILE = 'segments.state';

export class RemoteState {
  /** Committed segments: base position → attempt. */
  readonly committed = new Map<number, string>();
  /** Segments whose local data was evicted. */
  readonly evicted = new Set<number>();

  private constructor(
    private fd: number,
    private size: number,
  ) {}

  /** Opens (creating) the state file in `dir`; `damaged` is true when records had to be dropped. */
  static async open(dir: string): Promise<{ state: RemoteState; damaged: boolean }> {
    await fs.promises.mkdir(dir, { recursive: true });
    const file = path.join(dir, STATE_FILE);
    const bytes = (await files.readFileIfExists(file)) ?? Buffer.alloc(0);
    const fd = await files.open(file, fs.constants.O_RDWR | fs.constants.O_CREAT);
    let valid = 0;
    let damaged = false;
    const state = new RemoteState(fd, 0);
    for (let at = 0; at + RECORD_BYTES <= bytes.length; at += RECORD_BYTES) {
      const record = bytes.subarray(at, at + RECORD_BYTES);
      if (record.readUInt32LE(0) !== crc32c(record.subarray(4))) {
        damaged = bytes.length - at > RECORD_BYTES; // Only a torn last record is expected.
        break;
      }
      state.apply(record);
      valid = at + RECORD_BYTES;
    }
    if (valid < bytes.length) {
      await files.ftruncate(fd, valid);
      await files.fdatasync(fd);
    }
    state.size = valid;
    return { state, damaged };
  }

  /** Records (durably) that `base` is committed remote as `attempt`. */
  async noteCommitted(base: number, attempt: string): Promise<void> {
    await this.append(KIND_COMMITTED, base, attempt);
    this.committed.set(base, attempt);
  }

  /** Records (durably) that `base`'s local data is being evicted; call before deleting it. */
  async noteEvicted(base: number): Promise<void> {
    await this.append(KIND_EVICTED, base, '');
    this.evicted.add(base);
  }

  /** Records (durably, in one write) segments pulled from the object store: committed, with no local data. */
  async noteRestored(segments: readonly { readonly base: number; readonly attempt: string }[]): Promise<void> {
    if (segments.length === 0) return;
    const records = Buffer.concat(segments.flatMap(({ base, attempt }) => [record(KIND_COMMITTED, base, attempt), record(KIND_EVICTED, base, '')]));
    await files.writeAll(this.fd, records, this.size);
    await files.fdatasync(this.fd);
    this.size += records.length;
    for (const { base, attempt } of segments) {
      this.committed.set(base, attempt);
      this.evicted.add(base);
    }
  }

  async close(): Promise<void> {
    const { fd } = this;
    this.fd = -1;
    if (fd >= 0) await files.close(fd);
  }

  private async append(kind: number, base: number, attempt: string): Promise<void> {
    await files.writeAll(this.fd, record(kind, base, attempt), this.size);
    await files.fdatasync(this.fd);
    this.size += RECORD_BYTES;
  }

  private apply(record: Buffer): void {
    const kind = record.readUInt8(4);
    const base = readU64(record, 8);
    if (kind === KIND_COMMITTED) this.committed.set(base, record.toString('ascii', 16, 32));
    else if (kind === KIND_EVICTED) this.evicted.add(base);
  }
}

function record(kind: number, base: number, attempt: string): Buffer {
  const bytes = Buffer.alloc(RECORD_BYTES);
  bytes.writeUInt8(kind, 4);
  writeU64(bytes, 8, base);
  bytes.write(attempt, 16, 16, 'ascii');
  bytes.writeUInt32LE(crc32c(bytes.subarray(4)), 0);
  return bytes;
}
