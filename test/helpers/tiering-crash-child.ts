/**
 * Child process of the tiering crash tests (test/tiering/crash.test.ts). It appends to a tiered
 * store until it kills itself (SIGKILL) at one chosen step of the tiering work:
 *
 *   node --import tsx test/helpers/tiering-crash-child.ts <storeDir> <objectsDir> <step JSON> <streams>
 *
 * `step` is `{ "op": "put", "key": "<key prefix>", "nth": n, "when": "before" | "after" | "torn" }`:
 * the n-th put of a key starting with `key` into the object store (an `FsObjectStore` on
 * `objectsDir`) kills the process before it reaches the store, after the store has it, or after
 * half of its body was stored under the key (what servers that keep an interrupted PUT, such as
 * s3rver, leave). Or `{ "op": "evict", "nth": n }`: the n-th removal of a segment's `.log` by
 * eviction kills the process just before the file goes (the eviction is already recorded).
 *
 * The store uses `fsync` durability and small segments, and retains no sealed data locally, so
 * every sealed segment is uploaded and evicted at once. After each append resolves one line goes
 * to stdout: `{"n":…,"position":…}` (event `n`'s data is `{ n }`, on stream `s-<n % streams>`).
 * Anything unexpected goes to stderr and exits with code 1.
 */
import fs from 'node:fs';
import { FsObjectStore } from '../../adapters/fs/index.js';
import { EventStore } from '../../lib/index.js';
import type { GetOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from '../../lib/tiering/object-store.js';

export type CrashStep = { readonly op: 'put'; readonly key: string; readonly nth: number; readonly when: 'before' | 'after' | 'torn' } | { readonly op: 'evict'; readonly nth: number };

export interface CrashAck {
  readonly n: number;
  readonly position: number;
}

function fail(what: string, err: unknown): never {
  process.stderr.write(`tiering-crash-child: ${what}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}

function die(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: SIGKILL was sent');
}

/** The object store, killing the process at the chosen put. */
class CrashingObjectStore implements ObjectStore {
  readonly description: string;
  readonly conditionalWrites: boolean;
  private puts = 0;

  constructor(
    private readonly inner: ObjectStore,
    private readonly step: CrashStep,
  ) {
    this.description = inner.description;
    this.conditionalWrites = inner.conditionalWrites;
  }

  async put(key: string, body: Buffer, options?: PutOptions): Promise<ObjectInfo> {
    const step = this.step;
    if (step.op !== 'put' || !key.startsWith(step.key) || ++this.puts !== step.nth) return this.inner.put(key, body, options);
    if (step.when === 'before') die();
    if (step.when === 'torn') {
      await this.inner.put(key, body.subarray(0, Math.floor(body.length / 2)));
      die();
    }
    await this.inner.put(key, body, options);
    die();
  }

  get(key: string, options?: GetOptions): Promise<Buffer> {
    return this.inner.get(key, options);
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined> {
    return this.inner.head(key, options);
  }

  list(prefix: string, options?: { after?: string; signal?: AbortSignal }): Promise<ListPage> {
    return this.inner.list(prefix, options);
  }

  delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.inner.delete(key, options);
  }
}

const [storeDir, objectsDir, stepArg, streamsArg] = process.argv.slice(2);
if (storeDir === undefined || objectsDir === undefined || stepArg === undefined || streamsArg === undefined) fail('usage', 'tiering-crash-child.ts <storeDir> <objectsDir> <step JSON> <streams>');
const step = JSON.parse(stepArg) as CrashStep;
const streams = Number(streamsArg);

if (step.op === 'evict') {
  // Eviction records itself durably, then unlinks the segment's `.log`: die in between.
  const unlink = fs.promises.unlink;
  let evictions = 0;
  fs.promises.unlink = (file: fs.PathLike) => {
    if (String(file).endsWith('.log') && ++evictions === step.nth) die();
    return unlink(file);
  };
}

const store = await EventStore.open({
  dir: storeDir,
  durability: 'fsync',
  segmentBytes: 4096,
  indexIntervalBytes: 256,
  tiering: { objectStore: new CrashingObjectStore(new FsObjectStore({ dir: objectsDir }), step), localRetentionBytes: 0, retryBaseMs: 5 },
}).catch((err: unknown) => fail('open', err));

let n = store.commitPosition;
for (;;) {
  const result = await store.appendToStream(`s-${n % streams}`, [{ type: 'Crashed', data: { n, pad: 'x'.repeat(100) } }]).catch((err: unknown) => fail(`append ${n}`, err));
  process.stdout.write(`${JSON.stringify({ n, position: result.position } satisfies CrashAck)}\n`);
  n++;
}
