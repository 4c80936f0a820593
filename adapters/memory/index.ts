/**
 * An object store in memory, with fault injection: for tests of tiering against errors, hangs,
 * damaged bodies, outages and interrupted writes, without a server.
 *
 * @example
 * const objects = new MemoryObjectStore();
 * objects.inject({ operation: 'put', kind: 'error', times: 3 }); // the next three puts fail
 * objects.down = true;                                           // every call fails until set back
 */
import { createHash } from 'node:crypto';
import { ObjectNotFoundError, ObjectStoreError, PreconditionFailedError } from '../../lib/errors.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, withDeadline } from '../../lib/tiering/deadline.js';
import { checkContentMd5, type GetOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from '../../lib/tiering/object-store.js';

export type Operation = 'put' | 'get' | 'head' | 'list' | 'delete';

/**
 * A fault for the next matching calls:
 * - `error`: the call fails with an ObjectStoreError (nothing happens);
 * - `hang`: the call never answers (it fails at its deadline, or when aborted);
 * - `truncate`: a get returns its bytes without the last half; a put stores half the body and
 *   then fails (an interrupted upload whose partial object is visible, as on s3rver);
 * - `corrupt`: a get returns its bytes with one bit flipped; a put stores them so;
 * - `lost`: the call takes effect, then fails as if its answer was lost on the way back.
 */
export interface Fault {
  readonly operation?: Operation;
  /** Only keys that contain this string (or match this pattern). */
  readonly key?: string | RegExp;
  readonly kind: 'error' | 'hang' | 'truncate' | 'corrupt' | 'lost';
  /** How many calls it hits; default 1. Infinity for every call until {@link MemoryObjectStore.clearFaults}. */
  readonly times?: number;
}

export interface MemoryObjectStoreOptions {
  /** Deadline of each call; default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Objects per list page; default 1,000. */
  readonly pageSize?: number;
  /** Answer `put` with `ifNoneMatch` as a server that ignores it would; default true (honoured). */
  readonly conditionalWrites?: boolean;
}

interface Stored {
  readonly body: Buffer;
  readonly etag: string;
}

export class MemoryObjectStore implements ObjectStore {
  readonly description = 'memory';
  readonly conditionalWrites: boolean;
  /** While true, every call fails with an ObjectStoreError (an outage). */
  down = false;
  /** Calls made, by operation (faulty ones included). */
  readonly calls: Record<Operation, number> = { put: 0, get: 0, head: 0, list: 0, delete: 0 };
  /** Bytes returned by `get`. */
  bytesRead = 0;
  private readonly objects = new Map<string, Stored>();
  private faults: { fault: Fault; left: number }[] = [];
  private readonly timeoutMs: number;
  private readonly pageSize: number;

  constructor(options: MemoryObjectStoreOptions = {}) {
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.pageSize = options.pageSize ?? 1000;
    this.conditionalWrites = options.conditionalWrites ?? true;
  }

  /** Adds a fault for the next matching calls. */
  inject(fault: Fault): void {
    this.faults.push({ fault, left: fault.times ?? 1 });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** The stored keys, sorted (for tests). */
  keys(): string[] {
    return [...this.objects.keys()].sort();
  }

  /** Replaces an object's bytes behind tiering's back (for tests of damage at rest). */
  tamper(key: string, change: (body: Buffer) => Buffer): void {
    const stored = this.objects.get(key);
    if (stored === undefined) throw new Error(`no object ${key}`);
    const body = change(Buffer.from(stored.body));
    this.objects.set(key, { body, etag: md5Hex(body) });
  }

  put(key: string, body: Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    return this.call('put', key, options.signal, async (fault) => {
      checkContentMd5(key, body, options.md5);
      if (options.sha256 !== undefined && createHash('sha256').update(body).digest('hex') !== options.sha256) {
        throw new ObjectStoreError('put', key, 'XAmzContentSHA256Mismatch: the body does not match its SHA-256'); // As S3 answers.
      }
      if (options.ifNoneMatch === true && this.conditionalWrites && this.objects.has(key)) throw new PreconditionFailedError(key);
      if (fault === 'truncate') {
        this.store(key, body.subarray(0, body.length >> 1));
        throw new ObjectStoreError('put', key, 'connection reset (injected) after part of the body');
      }
      const stored = this.store(key, fault === 'corrupt' ? flipBit(body) : body);
      return { key, size: stored.body.length, etag: stored.etag };
    });
  }

  get(key: string, options: GetOptions = {}): Promise<Buffer> {
    return this.call('get', key, options.signal, async (fault) => {
      const stored = this.objects.get(key);
      if (stored === undefined) throw new ObjectNotFoundError(key);
      const { range } = options;
      let bytes = range === undefined ? stored.body : stored.body.subarray(range.offset, range.offset + range.length);
      if (fault === 'truncate') bytes = bytes.subarray(0, bytes.length >> 1);
      if (fault === 'corrupt') bytes = flipBit(bytes);
      this.bytesRead += bytes.length;
      return Buffer.from(bytes);
    });
  }

  head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    return this.call('head', key, options.signal, async () => {
      const stored = this.objects.get(key);
      return stored === undefined ? undefined : { key, size: stored.body.length, etag: stored.etag };
    });
  }

  list(prefix: string, options: { after?: string; signal?: AbortSignal } = {}): Promise<ListPage> {
    return this.call('list', prefix, options.signal, async () => {
      const keys = this.keys().filter((k) => k.startsWith(prefix) && (options.after === undefined || k > options.after));
      const page = keys.slice(0, this.pageSize);
      return {
        objects: page.map((k) => ({ key: k, size: this.objects.get(k)!.body.length, etag: this.objects.get(k)!.etag })),
        next: keys.length > page.length ? page[page.length - 1] : undefined,
      };
    });
  }

  delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.call('delete', key, options.signal, async () => {
      this.objects.delete(key);
    });
  }

  private store(key: string, body: Buffer): Stored {
    const stored = { body: Buffer.from(body), etag: md5Hex(body) };
    this.objects.set(key, stored);
    return stored;
  }

  private call<T>(operation: Operation, key: string, signal: AbortSignal | undefined, run: (fault: 'truncate' | 'corrupt' | undefined) => Promise<T>): Promise<T> {
    this.calls[operation]++;
    return withDeadline(operation, key, this.timeoutMs, signal, async (deadline) => {
      await Promise.resolve(); // Answer asynchronously, as a network would.
      if (this.down) throw new ObjectStoreError(operation, key, 'ECONNREFUSED (the memory store is down)');
      const fault = this.takeFault(operation, key);
      if (fault === 'error') throw new ObjectStoreError(operation, key, 'InternalError (injected)');
      if (fault === 'hang') await new Promise<never>((_, reject) => deadline.addEventListener('abort', () => reject(deadline.reason as Error), { once: true }));
      const result = await run(fault === 'truncate' || fault === 'corrupt' ? fault : undefined);
      if (fault === 'lost') throw new ObjectStoreError(operation, key, 'ECONNRESET (injected) after the call took effect');
      return result;
    });
  }

  private takeFault(operation: Operation, key: string): Fault['kind'] | undefined {
    const i = this.faults.findIndex(({ fault }) => (fault.operation === undefined || fault.operation === operation) && matches(fault.key, key));
    if (i < 0) return undefined;
    const entry = this.faults[i]!;
    if (--entry.left <= 0) this.faults.splice(i, 1);
    return entry.fault.kind;
  }
}

function matches(pattern: string | RegExp | undefined, key: string): boolean {
  if (pattern === undefined) return true;
  return typeof pattern === 'string' ? key.includes(pattern) : pattern.test(key);
}

function md5Hex(body: Buffer): string {
  return createHash('md5').update(body).digest('hex');
}

function flipBit(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  if (copy.length > 0) copy[copy.length >> 1]! ^= 0x10;
  return copy;
}
