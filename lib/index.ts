/**
 * coldstream: an event-sourcing toolkit for Node.js on a crash-safe local segment log.
 * This is the one public entry point; it re-exports, nothing else.
 */
export { EventStore, DEFAULT_OPTIONS } from './store/index.js';
export type * from './store/index.js';
export type { Durability } from './log/index.js';
export type { Clock } from './clock.js';
export type { SubscribeOptions, StreamSubscribeOptions, SubscriptionMessage } from './subscriptions/subscribe.js';
export { consumerStreamOf, type ConsumerMessage, type ConsumerOptions, type Projection } from './subscriptions/consumer.js';
export { snapshotStreamOf, type AggregateOptions, type AggregateState, type SnapshotPolicy } from './snapshots/aggregate.js';
export {
  ColdstreamError,
  ConsumerActiveError,
  CorruptFileError,
  CorruptRecordError,
  ErrorCode,
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
