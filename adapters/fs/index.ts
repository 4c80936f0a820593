/**
 * An object store in a local directory: each key a file under `dir` (slashes make
 * subdirectories). For the quick start, single-machine setups that tier to another disk or a
 * network mount, and tests.
 *
 * Writes are atomic and durable: the body goes to a temporary file that is fsynced, then linked
 * into place (a conditional put fails if the key exists: `link` refuses to replace) or renamed
 * over it, and the directory is fsynced. A crash never leaves a partial object under a key.
 *
 * @example
 * const objects = new FsObjectStore({ dir: './objects' });
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ObjectNotFoundError, ObjectStoreError, PreconditionFailedError } from '../../lib/errors.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, withDeadline } from '../../lib/tiering/deadline.js';
import { fsyncDir } from '../../lib/log/files.js';
import { checkContentMd5, type GetOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from '../../lib/tiering/object-store.js';

export interface FsObjectStoreOptions {
  /** The directory that holds the objects (created if missing). */
  readonly dir: string;
  /** Prepended to every key (a subdirectory when it ends with '/'). */
  readonly prefix?: string;
  /** Deadline of each call (a hung network mount); default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Keys per list page; default 1,000 (as S3). */
  readonly pageSize?: number;
}

const TEMP_PREFIX = '.tmp-';

export class FsObjectStore implements ObjectStore {
  readonly description: string;
  readonly conditionalWrites = true;
  private readonly dir: string;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly pageSize: number;

  constructor(options: FsObjectStoreOptions) {
    this.pageSize = options.pageSize ?? 1000;
    this.dir = path.resolve(options.dir);
    this.prefix = options.prefix ?? '';
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.description = `fs:${this.dir}${this.prefix === '' ? '' : `/${this.prefix}`}`;
  }

  put(key: string, body: Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    return this.call('put', key, options.signal, async () => {
      const md5 = checkContentMd5(key, body, options.md5);
      const file = this.fileOf(key);
      await fs.mkdir(path.dirname(file), { recursive: true });
      const temp = path.join(path.dirname(file), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
      const handle = await fs.open(temp, 'wx');
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      try {
        if (options.ifNoneMatch === true) {
          await fs.link(temp, file).catch((err: NodeJS.ErrnoException) => {
            throw err.code === 'EEXIST' ? new PreconditionFailedError(key, { cause: err }) : err;
          });
          await fs.unlink(temp);
        } else {
          await fs.rename(temp, file);
        }
      } catch (err) {
        await fs.unlink(temp).catch(() => {});
        throw err;
      }
      await fsyncDir(path.dirname(file));
      return { key, size: body.length, etag: md5.toString('hex') };
    });
  }

  get(key: string, options: GetOptions = {}): Promise<Buffer> {
    return this.call('get', key, options.signal, async () => {
      let handle: fs.FileHandle;
      try {
        handle = await fs.open(this.fileOf(key), 'r');
      } catch (err) {
        throw notFound(err, key);
      }
      try {
        if (options.range === undefined) return await handle.readFile();
        const { offset, length } = options.range;
        const buf = Buffer.allocUnsafe(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await handle.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return buf.subarray(0, got);
      } finally {
        await handle.close();
      }
    });
  }

  head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    return this.call('head', key, options.signal, async () => {
      try {
        const stat = await fs.stat(this.fileOf(key));
        // No etag: computing one would read the whole file. Tiering verifies by the put's etag.
        return stat.isFile() ? { key, size: stat.size, etag: undefined } : undefined;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    });
  }

  list(prefix: string, options: { after?: string; signal?: AbortSignal } = {}): Promise<ListPage> {
    return this.call('list', prefix, options.signal, async () => {
      const keys: string[] = [];
      await this.walk(path.join(this.dir, this.prefix), '', prefix, options.after, keys);
      keys.sort();
      const page = keys.slice(0, this.pageSize);
      const objects: ObjectInfo[] = [];
      for (const key of page) {
        const stat = await fs.stat(this.fileOf(key)).catch(() => undefined);
        if (stat !== undefined) objects.push({ key, size: stat.size, etag: undefined });
      }
      return { objects, next: keys.length > page.length ? page[page.length - 1] : undefined };
    });
  }

  delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.call('delete', key, options.signal, async () => {
      await fs.unlink(this.fileOf(key)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    });
  }

  /** Keys under `dir` (relative key `base`) that start with `prefix`, after `after`. */
  private async walk(dir: string, base: string, prefix: string, after: string | undefined, out: string[]): Promise<void> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const key = base + entry.name;
      if (entry.isDirectory()) {
        const sub = key + '/';
        // Descend only where keys with the prefix can be.
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) await this.walk(path.join(dir, entry.name), sub, prefix, after, out);
      } else if (key.startsWith(prefix) && (after === undefined || key > after)) {
        out.push(key);
      }
    }
  }

  private fileOf(key: string): string {
    if (key === '' || key.split('/').some((part) => part === '' || part === '.' || part === '..' || part.startsWith(TEMP_PREFIX))) {
      throw new ObjectStoreError('access', key, 'a key must be non-empty, with no empty, "." or ".." parts');
    }
    return path.join(this.dir, this.prefix, ...key.split('/'));
  }

  private call<T>(operation: string, key: string, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
    return withDeadline(operation, key, this.timeoutMs, signal, run);
  }
}

function notFound(err: unknown, key: string): unknown {
  return (err as NodeJS.ErrnoException).code === 'ENOENT' ? new ObjectNotFoundError(key, { cause: err }) : err;
}
