/**
 * The object-store port: the five operations tiering needs from S3, MinIO, a directory or
 * memory. Adapters (in `adapters/`) implement it; `lib/` never imports an SDK.
 *
 * Keys are relative: an adapter adds its own prefix (the `prefix` option of every adapter), so
 * tiering writes the same keys whatever the store. Every call takes an optional AbortSignal and
 * must finish (resolve or reject) within the adapter's deadline: both S3 SDKs wait forever on a
 * server that stops answering unless told otherwise, and a hung call must not hang tiering.
 *
 * Errors, for every adapter alike:
 * - {@link ObjectNotFoundError} when the key does not exist (get), never for head or delete;
 * - {@link PreconditionFailedError} when a conditional put (`ifNoneMatch`) finds the key taken;
 * - {@link ObjectStoreError} for everything else (network, server error, credentials, deadline:
 *   `timedOut`), with the SDK's error as `cause`. Tiering retries these.
 */
import { createHash } from 'node:crypto';
import { ObjectStoreError } from '../errors.js';

/** What {@link ObjectStore.head} and {@link ObjectStore.list} say of an object. */
export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /**
   * The entity tag without quotes. For an object written by one plain PUT it is the MD5 of the
   * content on S3, MinIO, RADOS Gateway and this project's adapters (not with SSE-KMS, and not
   * for multipart uploads): tiering compares it to verify an upload without reading it back,
   * and reads the object back when it does not match.
   */
  readonly etag: string | undefined;
}

export interface PutOptions {
  /**
   * Fail with {@link PreconditionFailedError} if an object exists at the key (S3's
   * `If-None-Match: *`). Only honoured where {@link ObjectStore.conditionalWrites} is true.
   */
  readonly ifNoneMatch?: boolean;
  /** Content-MD5 of the body, base64: the server refuses a body that does not match it. */
  readonly md5?: string;
  /**
   * SHA-256 of the body, hex, when the caller has it already: an adapter that signs the payload
   * (S3's SigV4, `x-amz-content-sha256`) sends it instead of hashing the body on the event loop;
   * S3 refuses a body that does not match it. Adapters that have no use for it may ignore it.
   */
  readonly sha256?: string;
  readonly signal?: AbortSignal;
}

export interface GetOptions {
  /** Bytes [offset, offset + length) only. A range past the end is cut at the end. */
  readonly range?: { readonly offset: number; readonly length: number };
  readonly signal?: AbortSignal;
}

export interface ListPage {
  readonly objects: readonly ObjectInfo[];
  /** Pass as `after` to get the next page; undefined on the last page. */
  readonly next: string | undefined;
}

export interface ObjectStore {
  /** For messages and status: the kind of store and where (never credentials). */
  readonly description: string;
  /**
   * True when `put` with `ifNoneMatch` is refused by the server itself when the key exists
   * (S3 since 2024, MinIO, RADOS Gateway, the fs and memory adapters). False makes tiering
   * check with `head` first, which leaves a window between the check and the write.
   */
  readonly conditionalWrites: boolean;
  /**
   * Writes `body` at `key`, replacing any object there (unless `ifNoneMatch`). Idempotent when
   * the body is the same. Resolves with the object's info as stored (the etag as the server
   * gave it, which may be undefined).
   */
  put(key: string, body: Buffer, options?: PutOptions): Promise<ObjectInfo>;
  /**
   * The object's bytes, or the bytes of `range` (fewer at the end of the object). Throws
   * {@link ObjectNotFoundError} when there is no object at `key`.
   */
  get(key: string, options?: GetOptions): Promise<Buffer>;
  /** The object's info, or undefined when there is none. */
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined>;
  /**
   * One page (up to about 1,000) of the objects whose keys start with `prefix`, in key order,
   * starting after the key `after`.
   */
  list(prefix: string, options?: { after?: string; signal?: AbortSignal }): Promise<ListPage>;
  /** Deletes the object at `key`; succeeds when there is none (idempotent). */
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void>;
}

/** Every object under `prefix` (after the key `after`, when given), page after page. */
export async function* listAll(store: ObjectStore, prefix: string, signal?: AbortSignal, after?: string): AsyncGenerator<ObjectInfo> {
  do {
    const page = await store.list(prefix, { after, signal });
    yield* page.objects;
    after = page.next;
  } while (after !== undefined);
}

/**
 * For adapters whose service does not check Content-MD5 itself (or whose client computes its
 * own): throws the ObjectStoreError a server would answer (BadDigest) when `body` does not
 * match the `md5` (base64) the caller gave. Returns the body's MD5, for its etag.
 */
export function checkContentMd5(key: string, body: Buffer, md5: string | undefined): Buffer {
  const digest = createHash('md5').update(body).digest();
  if (md5 !== undefined && digest.toString('base64') !== md5) throw new ObjectStoreError('put', key, 'BadDigest: the body does not match its Content-MD5');
  return digest;
}

/**
 * The bytes of `range` from a ranged GET's answer, checked against the Content-Range that came
 * back: a server that ignored the Range header (s3rver, for `bytes=0-0`) sent the whole object,
 * which is cut to the range; an answer that starts elsewhere is an ObjectStoreError.
 */
export function bytesOfRange(key: string, bytes: Buffer, range: { readonly offset: number; readonly length: number }, contentRange: string | undefined): Buffer {
  if (contentRange === undefined) return bytes.subarray(range.offset, range.offset + range.length); // The whole object came back.
  const start = Number(/bytes (\d+)-/.exec(contentRange)?.[1] ?? NaN);
  if (start !== range.offset) throw new ObjectStoreError('get', key, `asked for bytes from ${range.offset}, the server answered ${contentRange}`);
  return bytes.length > range.length ? bytes.subarray(0, range.length) : bytes;
}
