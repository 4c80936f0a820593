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

/** Every object under `prefix`, page after page. */
export async function* listAll(store: ObjectStore, prefix: string, signal?: AbortSignal): AsyncGenerator<ObjectInfo> {
  let after: string | undefined;
  do {
    const page = await store.list(prefix, { after, signal });
    yield* page.objects;
    after = page.next;
  } while (after !== undefined);
}
