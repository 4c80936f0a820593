/**
 * coldstream: an event-sourcing toolkit for Node.js on a crash-safe local segment log.
 * This is the one public entry point; it re-exports, nothing else.
 */
export { EventStore, DEFAULT_OPTIONS } from './store/index.js';
export type * from './store/index.js';
export type { Durability } from './log/index.js';
export type { Clock } from './clock.js';
export { consumerStreamOf, type ConsumerMessage, type ConsumerOptions, type Projection, type SubscribeOptions, type StreamSubscribeOptions, type SubscriptionMessage } from './subscriptions/index.js';
export { snapshotStreamOf, type AggregateOptions, type AggregateState, type SnapshotPolicy } from './snapshots/index.js';
export type { ObjectStore, ObjectInfo, PutOptions, GetOptions, ListPage } from './tiering/object-store.js';
export { listAll } from './tiering/object-store.js';
export type { TieringOptions, TieringStatus, TieringControl, ScrubReport } from './tiering/tiering.js';
export type { CacheStats } from './tiering/block-cache.js';
export {
  ColdstreamError,
  ConsumerActiveError,
  CorruptFileError,
  CorruptRecordError,
  ErrorCode,
  FencedError,
  LocalDiskFullError,
  ObjectNotFoundError,
  ObjectStoreError,
  PreconditionFailedError,
  ReadOnlyError,
  InvalidOptionsError,
  StoreClosedError,
  StoreFailedError,
  StoreLockedError,
  ValidationError,
  WrongExpectedRevisionError,
  isColdstreamError,
  type ValidationFailure,
  type CorruptRecordDetails,
} from './errors.js';
