import type { ExpectedRevision } from '../errors.js';

export type { ExpectedRevision };

/** An event to append. */
export interface EventData<Data = unknown, Metadata = Record<string, unknown>> {
  /** The event type, e.g. `'OrderPlaced'`: 1–256 bytes of UTF-8 without control characters. */
  readonly type: string;
  /** Any JSON value (objects, arrays, strings, finite numbers, booleans, null). */
  readonly data: Data;
  /** An optional JSON object stored beside the data (correlation ids, user, …). */
  readonly metadata?: Metadata | undefined;
  /** A UUID identifying the event; generated when absent. Retrying with the same ids is idempotent. */
  readonly id?: string | undefined;
}

/** An event as stored. */
export interface RecordedEvent<Data = unknown, Metadata = Record<string, unknown>> {
  readonly streamId: string;
  /** 0-based number of the event within its stream. */
  readonly revision: number;
  /** 0-based number of the event in the whole store (`$all` order). */
  readonly position: number;
  readonly id: string;
  readonly type: string;
  readonly data: Data;
  /** Undefined when the event was appended without metadata. */
  readonly metadata: Metadata | undefined;
  /** When the append that wrote the event was accepted, in milliseconds since the epoch. */
  readonly timestamp: number;
}

export interface AppendOptions {
  /**
   * What the stream's revision must be for the append to go ahead (default `'any'`):
   * `'any'`, `'no_stream'` (the stream has no events), `'stream_exists'`, or the revision of
   * the stream's last event.
   */
  readonly expectedRevision?: ExpectedRevision;
}

export interface AppendResult {
  /** Revision of the last event written: pass it as `expectedRevision` to append next. */
  readonly nextExpectedRevision: number;
  /** Position of the last event written. */
  readonly position: number;
}

/** One stream's part of an atomic multi-stream append. */
export interface AppendRequest {
  readonly streamId: string;
  readonly events: readonly EventData[];
  readonly expectedRevision?: ExpectedRevision;
}

export type Direction = 'forwards' | 'backwards';

export interface ReadStreamOptions {
  /** First revision to read (inclusive). Default: 0 forwards, the last revision backwards. */
  readonly fromRevision?: number | 'start' | 'end';
  readonly direction?: Direction;
  /** Stop after this many events. Default: no limit. */
  readonly maxCount?: number;
}

/** Which events a `readAll` yields. Both conditions apply when both are given. */
export interface EventFilter {
  /** Only streams whose id starts with one of these prefixes (a category such as `'order-'`). */
  readonly streamPrefix?: string | readonly string[];
  /** Only events of these types. */
  readonly eventTypes?: readonly string[];
  /** Include the store's own streams (ids starting with '$': snapshots, consumer checkpoints). Default false. */
  readonly includeSystemStreams?: boolean;
}

export interface ReadAllOptions {
  /** First position to read (inclusive). Default: the start forwards, the end backwards. */
  readonly fromPosition?: number | 'start' | 'end';
  readonly direction?: Direction;
  readonly maxCount?: number;
  readonly filter?: EventFilter;
}

/** The last event of a stream, as the store's index knows it. */
export interface StreamHead {
  readonly revision: number;
  readonly position: number;
}
