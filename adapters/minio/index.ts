/**
 * The ObjectStore port on the `minio` client (MinIO, and any S3-compatible service it speaks to).
 *
 * - The minio client takes no AbortSignal: each call runs under a deadline (`requestTimeoutMs`)
 *   that rejects it with a timed-out ObjectStoreError, and the client's sockets get an idle
 *   timeout, so a server that stops answering cannot hang tiering.
 * - Conditional writes send `If-None-Match: *` (MinIO and RADOS Gateway honour it).
 * - The client signs the body (SHA-256 over HTTP, Content-MD5 over HTTPS), so the server refuses
 *   a body damaged on the way; a `md5` given by the caller is checked against the body first.
 * - A ranged get checks the Content-Range that came back and cuts a whole-object answer to the
 *   range asked for.
 *
 * @example
 * const objects = new MinioObjectStore({ endPoint: '127.0.0.1', port: 9000, useSSL: false,
 *   accessKey, secretKey, bucket: 'events', prefix: 'shop/' });
 * // or: new MinioObjectStore({ client: minioClient, bucket: 'events', prefix: 'shop/' })
 */
import http from 'node:http';
import https from 'node:https';
import { Client, type ClientOptions } from 'minio';
import type { Readable } from 'node:stream';
import { InvalidOptionsError, ObjectNotFoundError, ObjectStoreError, PreconditionFailedError, type ColdstreamError } from '../../lib/errors.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, describe, withDeadline } from '../../lib/tiering/deadline.js';
import { bytesOfRange, checkContentMd5, type GetOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from '../../lib/tiering/object-store.js';

export type MinioObjectStoreOptions = (
  | { /** A client configured by the application. */ readonly client: Client }
  | (ClientOptions & { readonly client?: undefined })
) & {
  readonly bucket: string;
  /** Prepended to every key, e.g. `'shop/'`. One store per prefix. */
  readonly prefix?: string;
  /** Deadline of one call; default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Keys per list page; default 1,000. */
  readonly pageSize?: number;
  /** Whether the service refuses `If-None-Match: *` on an existing key; default true. */
  readonly conditionalWrites?: boolean;
};

export class MinioObjectStore implements ObjectStore {
  readonly description: string;
  readonly conditionalWrites: boolean;
  /** The minio client in use. */
  readonly client: Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly pageSize: number;

  constructor(options: MinioObjectStoreOptions) {
    const { bucket, prefix, requestTimeoutMs, pageSize, conditionalWrites, client, ...connection } = options;
    // The minio client refuses such a name at every call, which tiering would retry for ever.
    if (typeof bucket !== 'string' || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
      throw new InvalidOptionsError([{ path: 'bucket', constraint: 'isBucketName', message: `must be an S3 bucket name (3–63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit); got ${JSON.stringify(bucket)}` }]);
    }
    this.bucket = bucket;
    this.prefix = prefix ?? '';
    this.timeoutMs = requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.pageSize = pageSize ?? 1000;
    this.conditionalWrites = conditionalWrites ?? true;
    if (client !== undefined) {
      this.client = client;
      this.description = `minio://${bucket}/${this.prefix}`;
    } else {
      const clientOptions = connection as ClientOptions;
      this.client = new Client(clientOptions);
      const secure = clientOptions.useSSL ?? true;
      const agentOptions = { keepAlive: true, timeout: this.timeoutMs };
      this.client.setRequestOptions({ agent: secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions) });
      this.description = `minio://${bucket}/${this.prefix} at ${clientOptions.endPoint}${clientOptions.port === undefined ? '' : `:${clientOptions.port}`}`;
    }
  }

  put(key: string, body: Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    return this.call('put', key, options.signal, async () => {
      checkContentMd5(key, body, options.md5);
      const headers = options.ifNoneMatch === true ? { 'If-None-Match': '*' } : {};
      const out = await this.client.putObject(this.bucket, this.prefix + key, body, body.length, headers);
      return { key, size: body.length, etag: out.etag === '' ? undefined : out.etag };
    });
  }

  get(key: string, options: GetOptions = {}): Promise<Buffer> {
    const { range } = options;
    if (range !== undefined && range.length <= 0) return Promise.resolve(Buffer.alloc(0));
    return this.call('get', key, options.signal, async () => {
      if (range === undefined) return collect(await this.client.getObject(this.bucket, this.prefix + key));
      let stream: Readable & { headers?: http.IncomingHttpHeaders };
      try {
        // getPartialObject sends no Range for offset 0 and length 0, so the length is always given.
        stream = await this.client.getPartialObject(this.bucket, this.prefix + key, range.offset, range.length);
      } catch (err) {
        if ((err as { code?: string }).code === 'InvalidRange') return Buffer.alloc(0); // The range starts at or past the end.
        throw err;
      }
      const bytes = await collect(stream);
      return bytesOfRange(key, bytes, range, stream.headers?.['content-range']);
    });
  }

  head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    return this.call('head', key, options.signal, async () => {
      try {
        const stat = await this.client.statObject(this.bucket, this.prefix + key);
        return { key, size: stat.size, etag: stat.etag === '' ? undefined : stat.etag };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    });
  }

  list(prefix: string, options: { after?: string; signal?: AbortSignal } = {}): Promise<ListPage> {
    return this.call('list', prefix, options.signal, async () => {
      const after = options.after === undefined ? '' : this.prefix + options.after;
      const out = await this.client.listObjectsV2Query(this.bucket, this.prefix + prefix, '', '', this.pageSize, after);
      const objects = out.objects
        .filter((o) => o.name !== undefined)
        .map((o) => ({ key: o.name!.slice(this.prefix.length), size: o.size, etag: o.etag === '' || o.etag === undefined ? undefined : o.etag }));
      const last = objects[objects.length - 1];
      return { objects, next: out.isTruncated && last !== undefined ? last.key : undefined };
    });
  }

  delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.call('delete', key, options.signal, async () => {
      try {
        await this.client.removeObject(this.bucket, this.prefix + key);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    });
  }

  private call<T>(operation: string, key: string, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
    return withDeadline(operation, key, this.timeoutMs, signal, run, (err) => translate(operation, key, err));
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'NoSuchKey' || code === 'NotFound';
}

function translate(operation: string, key: string, err: unknown): ColdstreamError {
  const code = (err as { code?: string }).code;
  if (operation === 'get' && isNotFound(err)) return new ObjectNotFoundError(key, { cause: err });
  if (code === 'PreconditionFailed') return new PreconditionFailedError(key, { cause: err });
  return new ObjectStoreError(operation, key, describe(err), { cause: err });
}
