/**
 * Errors of coldstream.
 *
 * Every error the library throws on purpose is a {@link ColdstreamError} with a stable string
 * `code`. Subclasses exist only where callers branch on them, and each carries the values that
 * explain it (stream and revisions, file and byte offset, lock owner…). Codes never change
 * meaning between versions; messages may be reworded.
 *
 * Broken internal invariants are plain `AssertionError`s from `node:assert` and are not
 * ColdstreamErrors: they mean a bug, not an operating condition.
 */

/** Every stable error code, with the subclass that carries it. */
export const ErrorCode = {
  /** Options passed to `EventStore.open` are invalid. {@link InvalidOptionsError} */
  INVALID_OPTIONS: 'INVALID_OPTIONS',
  /** An append's input is invalid; nothing was written. {@link ValidationError} */
  VALIDATION: 'VALIDATION',
  /** The stream's revision did not match the expected one. {@link WrongExpectedRevisionError} */
  WRONG_EXPECTED_REVISION: 'WRONG_EXPECTED_REVISION',
  /** Another process (or another open store in this process) holds the directory's lock. {@link StoreLockedError} */
  STORE_LOCKED: 'STORE_LOCKED',
  /** The store was closed. {@link StoreClosedError} */
  STORE_CLOSED: 'STORE_CLOSED',
  /** A write or fsync failed; the store refuses further appends until reopened. {@link StoreFailedError} */
  STORE_FAILED: 'STORE_FAILED',
  /** A record batch failed its length or CRC check when read. {@link CorruptRecordError} */
  CORRUPT_RECORD: 'CORRUPT_RECORD',
  /** A metadata file (sidecar, index, checkpoint) or the segment sequence is damaged beyond repair. {@link CorruptFileError} */
  CORRUPT_FILE: 'CORRUPT_FILE',
  /** A durable consumer of that name is already running in this store. {@link ConsumerActiveError} */
  CONSUMER_ACTIVE: 'CONSUMER_ACTIVE',
  /** An object-store request failed (network, server error, credentials, deadline). {@link ObjectStoreError} */
  OBJECT_STORE: 'OBJECT_STORE',
  /** The object asked for does not exist in the object store. {@link ObjectNotFoundError} */
  OBJECT_NOT_FOUND: 'OBJECT_NOT_FOUND',
  /** A conditional write found the object already there (or changed). {@link PreconditionFailedError} */
  PRECONDITION_FAILED: 'PRECONDITION_FAILED',
  /** Another writer took over this store's bucket prefix; this one stopped appending. {@link FencedError} */
  FENCED: 'FENCED',
  /** The store was opened read-only. {@link ReadOnlyError} */
  READ_ONLY: 'READ_ONLY',
  /** Local segment data reached `tiering.maxLocalBytes` because uploads fall behind; nothing was written. {@link LocalDiskFullError} */
  LOCAL_DISK_FULL: 'LOCAL_DISK_FULL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The base class of every error coldstream throws on purpose. */
export class ColdstreamError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * True when `error` is a {@link ColdstreamError}, and, when `code` is given, has that code.
 *
 * @example
 * try { await store.appendToStream(id, events, { expectedRevision: 3 }); }
 * catch (e) { if (isColdstreamError(e, 'WRONG_EXPECTED_REVISION')) retry(); else throw e; }
 */
export function isColdstreamError(error: unknown, code?: ErrorCode): error is ColdstreamError {
  return error instanceof ColdstreamError && (code === undefined || error.code === code);
}

/** One failing field of a {@link ValidationError}. */
export interface ValidationFailure {
  /** Where the value is, e.g. `events[2].type` or `options.segmentBytes`. */
  readonly path: string;
  /** The rule that failed, e.g. `isUuid` or `maxBytes`. */
  readonly constraint: string;
  /** What is wrong and what to do about it. */
  readonly message: string;
}

function listFailures(failures: readonly ValidationFailure[]): string {
  return failures.map((f) => `${f.path}: ${f.message}`).join('; ');
}

/** Input (an append's events, or the options of a read, subscription or aggregate) was invalid. Nothing was written; the store stays usable. */
export class ValidationError extends ColdstreamError {
  readonly failures: readonly ValidationFailure[];

  constructor(failures: readonly ValidationFailure[]) {
    super(ErrorCode.VALIDATION, `Invalid input: ${listFailures(failures)}`);
    this.failures = failures;
  }
}

/** Options given to `EventStore.open` were invalid; nothing was opened. */
export class InvalidOptionsError extends ColdstreamError {
  readonly failures: readonly ValidationFailure[];

  constructor(failures: readonly ValidationFailure[]) {
    super(ErrorCode.INVALID_OPTIONS, `Invalid store options: ${listFailures(failures)}`);
    this.failures = failures;
  }
}

/** What a caller expected of a stream's revision. */
export type ExpectedRevision = 'any' | 'no_stream' | 'stream_exists' | number;

/** The stream's actual revision did not match `expected`. `actual` is `'no_stream'` when the stream has no events. */
export class WrongExpectedRevisionError extends ColdstreamError {
  readonly streamId: string;
  readonly expected: ExpectedRevision;
  readonly actual: number | 'no_stream';

  constructor(streamId: string, expected: ExpectedRevision, actual: number | 'no_stream') {
    super(
      ErrorCode.WRONG_EXPECTED_REVISION,
      `Stream '${streamId}' is at revision ${String(actual)}, but the append expected ${String(expected)}: ` +
        're-read the stream, decide again, and retry with its current revision',
    );
    this.streamId = streamId;
    this.expected = expected;
    this.actual = actual;
  }
}

/** The store directory is locked by another writer. */
export class StoreLockedError extends ColdstreamError {
  readonly dir: string;
  readonly lockPath: string;
  readonly ownerPid: number | undefined;

  /**
   * `unproven`, when given, says why the lock could not be proven stale although its owner may
   * be gone (another pid namespace, another boot…); the message then says how to clear it.
   */
  constructor(dir: string, lockPath: string, ownerPid: number | undefined, unproven?: string) {
    super(
      ErrorCode.STORE_LOCKED,
      `Store directory ${dir} is already open for writing` +
        (ownerPid === undefined ? '' : ` by process ${ownerPid}`) +
        (unproven === undefined
          ? `: close that store first (one writer per directory; the lock is ${lockPath})`
          : `, or was: ${unproven}. Close that store first (one writer per directory); if no process uses this store any more, ` +
            `delete ${lockPath} and open it again`),
    );
    this.dir = dir;
    this.lockPath = lockPath;
    this.ownerPid = ownerPid;
  }
}

/** The store was closed; open it again to use it. */
export class StoreClosedError extends ColdstreamError {
  constructor(what = 'The store') {
    super(ErrorCode.STORE_CLOSED, `${what} is closed: open the store again to use it`);
  }
}

/**
 * A write or fsync to the log failed. The data that was acknowledged before is safe; the store
 * stops accepting appends, because after a failed fsync the page cache can no longer be
 * trusted. Close it and open it again (recovery truncates whatever was half written).
 */
export class StoreFailedError extends ColdstreamError {
  constructor(cause: unknown) {
    super(
      ErrorCode.STORE_FAILED,
      `The store stopped accepting appends after an I/O error (${describe(cause)}): ` +
        'fix the disk problem, then close and reopen the store',
      { cause },
    );
  }
}

/** Where a {@link CorruptRecordError} was found and why. */
export interface CorruptRecordDetails {
  readonly file: string;
  readonly byteOffset: number;
  readonly reason: string;
  readonly storedCrc?: number | undefined;
  readonly computedCrc?: number | undefined;
  /** The position the batch should start at, when known. */
  readonly position?: number | undefined;
}

function hex(crc: number | undefined): string {
  return crc === undefined ? '?' : `0x${crc.toString(16).padStart(8, '0')}`;
}

/** A record batch read from disk failed its checks. Never returned as data. */
export class CorruptRecordError extends ColdstreamError {
  readonly file: string;
  readonly byteOffset: number;
  readonly reason: string;
  readonly storedCrc: number | undefined;
  readonly computedCrc: number | undefined;
  readonly position: number | undefined;

  constructor(details: CorruptRecordDetails) {
    const crcs =
      details.storedCrc === undefined ? '' : ` (stored CRC ${hex(details.storedCrc)}, computed ${hex(details.computedCrc)})`;
    const at = details.position === undefined ? '' : ` for position ${details.position}`;
    super(
      ErrorCode.CORRUPT_RECORD,
      `Corrupt record batch in ${details.file} at byte ${details.byteOffset}${at}: ${details.reason}${crcs}; ` +
        'the file was damaged after it was written: restore it from a replica or backup',
    );
    this.file = details.file;
    this.byteOffset = details.byteOffset;
    this.reason = details.reason;
    this.storedCrc = details.storedCrc;
    this.computedCrc = details.computedCrc;
    this.position = details.position;
  }
}

/** A metadata file or the sequence of segment files is damaged in a way recovery cannot repair. */
export class CorruptFileError extends ColdstreamError {
  readonly file: string;

  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super(ErrorCode.CORRUPT_FILE, `Corrupt file ${file}: ${reason}`, options);
    this.file = file;
  }
}

/** A durable consumer of that name is already running in this store: two would fight over one checkpoint. */
export class ConsumerActiveError extends ColdstreamError {
  readonly consumer: string;

  constructor(consumer: string) {
    super(ErrorCode.CONSUMER_ACTIVE, `Consumer '${consumer}' is already running in this store: stop it first, or give this one another name`);
    this.consumer = consumer;
  }
}

/**
 * An object-store request failed: the service answered with an error, could not be reached, or
 * did not answer before the request's deadline (`timedOut`). Tiering retries these with backoff;
 * a caller that sees one (a cold read) may retry too. The SDK's error is the `cause`.
 */
export class ObjectStoreError extends ColdstreamError {
  readonly operation: string;
  readonly key: string;
  readonly timedOut: boolean;

  constructor(operation: string, key: string, reason: string, options?: { cause?: unknown; timedOut?: boolean }) {
    super(ErrorCode.OBJECT_STORE, `Object store ${operation} of '${key}' failed: ${reason}; check the endpoint, credentials and bucket, then retry`, options);
    this.operation = operation;
    this.key = key;
    this.timedOut = options?.timedOut ?? false;
  }
}

/** The object does not exist (or the byte range asked for is outside it). */
export class ObjectNotFoundError extends ColdstreamError {
  readonly key: string;

  constructor(key: string, options?: { cause?: unknown }) {
    super(ErrorCode.OBJECT_NOT_FOUND, `Object '${key}' does not exist in the object store`, options);
    this.key = key;
  }
}

/** A conditional write (`ifNoneMatch`) found an object already at the key. */
export class PreconditionFailedError extends ColdstreamError {
  readonly key: string;

  constructor(key: string, options?: { cause?: unknown }) {
    super(ErrorCode.PRECONDITION_FAILED, `Object '${key}' already exists: a conditional write refused to replace it`, options);
    this.key = key;
  }
}

/**
 * Another writer opened this store's bucket prefix (a restore elsewhere, or a second machine)
 * and superseded this one. The store refuses appends from then on; what it acknowledged before
 * is in its local log. Close it; open the new writer's store instead.
 */
export class FencedError extends ColdstreamError {
  readonly epoch: number;
  readonly newerEpoch: number;

  constructor(epoch: number, newerEpoch: number) {
    super(
      ErrorCode.FENCED,
      `This store's writer (epoch ${epoch}) was superseded by a newer writer (epoch ${newerEpoch}) on the same bucket prefix: ` +
        'appends are refused; close this store and use the newer one',
    );
    this.epoch = epoch;
    this.newerEpoch = newerEpoch;
  }
}

/** An append (or other write) to a store opened with `readOnly: true`. */
export class ReadOnlyError extends ColdstreamError {
  constructor(operation: string) {
    super(ErrorCode.READ_ONLY, `Cannot ${operation}: the store was opened read-only; open it without readOnly to write`);
  }
}

/**
 * An append refused because the store's local segment data reached `tiering.maxLocalBytes`:
 * sealed segments wait to be uploaded (the object store is down, slow or refusing), and only
 * uploaded data can be evicted. Nothing of the append was written, and nothing acknowledged is
 * lost; appends succeed again once uploads catch up (`store.tiering.status()` shows the backlog
 * and the object store's last error).
 */
export class LocalDiskFullError extends ColdstreamError {
  readonly localBytes: number;
  readonly maxLocalBytes: number;

  constructor(localBytes: number, maxLocalBytes: number, lastError: string | undefined) {
    super(
      ErrorCode.LOCAL_DISK_FULL,
      `Local segment data is ${localBytes} bytes, at or over tiering.maxLocalBytes (${maxLocalBytes}): sealed segments are waiting to be uploaded` +
        `${lastError === undefined ? '' : ` (last object-store error: ${lastError})`}. Nothing was written; retry once uploads catch up ` +
        '(store.tiering.status().backlog), or raise maxLocalBytes',
    );
    this.localBytes = localBytes;
    this.maxLocalBytes = maxLocalBytes;
  }
}

function describe(cause: unknown): string {
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message;
  return String(cause);
}
