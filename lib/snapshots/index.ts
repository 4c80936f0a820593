export { aggregate$, aggregateStream, snapshotStreamOf, type AggregateOptions, type AggregateState, type SnapshotPolicy } from './aggregate.js';
