/**
 * The ObjectStore port on AWS S3 and S3-compatible services (MinIO, Ceph RADOS Gateway,
 * s3rver…), through `@aws-sdk/client-s3`.
 *
 * - Every request runs under a deadline (`requestTimeoutMs`) and the caller's AbortSignal, and
 *   the SDK's own retry strategy (`maxAttempts`) retries throttling and 5xx answers inside it.
 * - Bodies are Buffers sent with Content-MD5, so the server refuses a body damaged on the way;
 *   the client's default flexible checksums are switched to `WHEN_REQUIRED`, which services
 *   other than AWS handle badly (s3rver stores `aws-chunked` bodies verbatim; RADOS Gateway
 *   refuses them with 411). A caller that has the body's SHA-256 already (`sha256`: tiering
 *   hashes off the event loop) spares the request signer hashing the body again.
 * - A get's body is collected into one buffer of its own, copied once from the socket's chunks.
 * - Bodies above `multipartThresholdBytes` go up in parts through `@aws-sdk/lib-storage`.
 * - A ranged get checks what came back: a server that ignores the Range header (s3rver, for
 *   `bytes=0-0`) answers with the whole object, which is cut here to the range asked for.
 *
 * @example
 * const objects = new S3ObjectStore({
 *   bucket: 'events', prefix: 'shop/', endpoint: 'http://127.0.0.1:9000', region: 'us-east-1',
 *   credentials: { accessKeyId, secretAccessKey }, forcePathStyle: true,
 * });
 * // or, with a client configured elsewhere: new S3ObjectStore({ client: s3Client, bucket, prefix })
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { ObjectNotFoundError, ObjectStoreError, PreconditionFailedError, type ColdstreamError } from '../../lib/errors.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, describe, withDeadline } from '../../lib/tiering/deadline.js';
import { bytesOfRange, type GetOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from '../../lib/tiering/object-store.js';

export interface S3ObjectStoreOptions {
  readonly bucket: string;
  /** Prepended to every key, e.g. `'shop/'`. One store per prefix. */
  readonly prefix?: string;
  /** A client configured by the application; the connection options below are then ignored. */
  readonly client?: S3Client;
  /** e.g. `http://127.0.0.1:9000` for MinIO; omit for AWS. */
  readonly endpoint?: string;
  /** Default `us-east-1`. */
  readonly region?: string;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string };
  /** Path-style URLs (`endpoint/bucket/key`), which MinIO and most self-hosted services need. */
  readonly forcePathStyle?: boolean;
  /** Attempts per request by the SDK's retry strategy; default 3. */
  readonly maxAttempts?: number;
  /** Deadline of one call, retries included; default 30 s (bodies of a whole segment may need more). */
  readonly requestTimeoutMs?: number;
  /** Keys per list page; default 1,000. */
  readonly pageSize?: number;
  /** Bodies larger than this are uploaded in parts; default 64 MiB (a default segment goes in one PUT). */
  readonly multipartThresholdBytes?: number;
  /** Part size of multipart uploads; default 16 MiB. */
  readonly partSizeBytes?: number;
  /**
   * Whether the service refuses `If-None-Match: *` on an existing key (AWS S3 since 2024,
   * MinIO, RADOS Gateway). Default true; set false for a service that ignores it (s3rver), and
   * tiering checks with a HEAD first instead.
   */
  readonly conditionalWrites?: boolean;
}

const MiB = 1024 * 1024;

export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  readonly conditionalWrites: boolean;
  /** The SDK client in use (the application's own, or the one made from the options). */
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly pageSize: number;
  private readonly multipartThreshold: number;
  private readonly partSize: number;

  constructor(options: S3ObjectStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? '';
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.pageSize = options.pageSize ?? 1000;
    this.multipartThreshold = options.multipartThresholdBytes ?? 64 * MiB;
    this.partSize = options.partSizeBytes ?? 16 * MiB;
    this.conditionalWrites = options.conditionalWrites ?? true;
    this.client = options.client ?? new S3Client(clientConfig(options, this.timeoutMs));
    this.description = `s3://${this.bucket}/${this.prefix}${options.endpoint === undefined ? '' : ` at ${options.endpoint}`}`;
  }

  put(key: string, body: Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    return this.call('put', key, options.signal, async (signal) => {
      const Key = this.prefix + key;
      if (body.length > this.multipartThreshold) {
        if (options.ifNoneMatch === true) throw new ObjectStoreError('put', key, `a conditional put is limited to ${this.multipartThreshold} bytes (one PUT)`);
        const upload = new Upload({ client: this.client, params: { Bucket: this.bucket, Key, Body: body }, partSize: this.partSize, queueSize: 4, leavePartsOnError: false });
        signal.addEventListener('abort', () => void upload.abort().catch(() => {}), { once: true });
        const done = await upload.done();
        return { key, size: body.length, etag: unquote(done.ETag) };
      }
      const command = new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength: body.length, ContentMD5: options.md5, IfNoneMatch: options.ifNoneMatch === true ? '*' : undefined });
      const { sha256 } = options;
      if (sha256 !== undefined) {
        // The payload's SHA-256 as the caller computed it (off the event loop): the signer uses it instead of hashing the body.
        command.middlewareStack.add(
          (next) => (args) => {
            const request = args.request as { headers?: Record<string, string> };
            if (request.headers !== undefined) request.headers['x-amz-content-sha256'] = sha256;
            return next(args);
          },
          { step: 'build', name: 'coldstreamPayloadSha256' },
        );
      }
      const out = await this.client.send(command, { abortSignal: signal });
      return { key, size: body.length, etag: unquote(out.ETag) };
    });
  }

  get(key: string, options: GetOptions = {}): Promise<Buffer> {
    const { range } = options;
    if (range !== undefined && range.length <= 0) return Promise.resolve(Buffer.alloc(0));
    return this.call('get', key, options.signal, async (signal) => {
      let out;
      try {
        out = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Range: range === undefined ? undefined : `bytes=${range.offset}-${range.offset + range.length - 1}` }),
          { abortSignal: signal },
        );
      } catch (err) {
        if (range !== undefined && statusOf(err) === 416) return Buffer.alloc(0); // The range starts at or past the end.
        throw err;
      }
      const bytes = await bodyBytes(out.Body!, out.ContentLength);
      if (range === undefined) return bytes;
      return bytesOfRange(key, bytes, range, out.ContentRange);
    });
  }

  head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    return this.call('head', key, options.signal, async (signal) => {
      try {
        const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), { abortSignal: signal });
        return { key, size: out.ContentLength ?? 0, etag: unquote(out.ETag) };
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    });
  }

  list(prefix: string, options: { after?: string; signal?: AbortSignal } = {}): Promise<ListPage> {
    return this.call('list', prefix, options.signal, async (signal) => {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          // StartAfter, not continuation tokens: the next page is the keys after the last one seen.
          StartAfter: options.after === undefined ? undefined : this.prefix + options.after,
          MaxKeys: this.pageSize,
        }),
        { abortSignal: signal },
      );
      const objects = (out.Contents ?? []).map((o) => ({ key: o.Key!.slice(this.prefix.length), size: o.Size ?? 0, etag: unquote(o.ETag) }));
      const last = objects[objects.length - 1];
      return { objects, next: out.IsTruncated === true && last !== undefined ? last.key : undefined };
    });
  }

  delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.call('delete', key, options.signal, async (signal) => {
      try {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), { abortSignal: signal });
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
    });
  }

  private call<T>(operation: string, key: string, signal: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withDeadline(operation, key, this.timeoutMs, signal, run, (err) => translate(operation, key, err));
  }
}

/**
 * The bytes of a GET's body in one buffer of their own. A Node stream (the SDK's Node handler
 * answers with one) is copied chunk by chunk into a buffer of the announced length, allocated
 * without zero-filling; anything else goes through the SDK's own collector. No copy follows:
 * the buffer is the answer (the block cache keeps views of it).
 */
async function bodyBytes(body: NonNullable<GetObjectCommandOutput['Body']>, contentLength: number | undefined): Promise<Buffer> {
  const stream = body as unknown as Readable;
  if (contentLength === undefined || !(stream instanceof Readable)) {
    const array = await body.transformToByteArray();
    return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
  }
  const bytes = Buffer.allocUnsafeSlow(contentLength);
  let length = 0;
  let extra: Buffer[] | undefined; // A body longer than announced (never from a sound server): kept, so nothing is cut silently.
  stream.on('data', (chunk: Buffer) => {
    if (extra === undefined && length + chunk.length <= contentLength) {
      chunk.copy(bytes, length);
      length += chunk.length;
    } else {
      (extra ??= []).push(chunk);
    }
  });
  await finished(stream); // Rejects on an error, and on a body cut short (premature close).
  if (extra !== undefined) return Buffer.concat([bytes.subarray(0, length), ...extra]);
  return length === contentLength ? bytes : bytes.subarray(0, length);
}

function clientConfig(options: S3ObjectStoreOptions, timeoutMs: number): S3ClientConfig {
  return {
    endpoint: options.endpoint,
    region: options.region ?? 'us-east-1',
    credentials: options.credentials,
    forcePathStyle: options.forcePathStyle,
    maxAttempts: options.maxAttempts ?? 3,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: Math.min(timeoutMs, 10_000), requestTimeout: timeoutMs },
  };
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function translate(operation: string, key: string, err: unknown): ColdstreamError {
  const status = statusOf(err);
  const name = (err as { name?: string }).name;
  if (name === 'NoSuchKey' || (operation === 'get' && status === 404)) return new ObjectNotFoundError(key, { cause: err });
  if (status === 412 || name === 'PreconditionFailed' || (status === 409 && name === 'ConditionalRequestConflict')) return new PreconditionFailedError(key, { cause: err });
  // RADOS Gateway's error bodies have a Code but no Message, which the SDK reports as the message
  // 'UnknownError': say the code alone ("BadDigest (HTTP 400)", not "BadDigest: UnknownError").
  const what = (err as Error).message === 'UnknownError' && name !== undefined && name !== '' ? name : describe(err);
  return new ObjectStoreError(operation, key, `${what}${status === undefined ? '' : ` (HTTP ${status})`}`, { cause: err });
}

function unquote(etag: string | undefined): string | undefined {
  if (etag === undefined || etag === '') return undefined;
  return etag.replace(/^"(.*)"$/, '$1');
}
