export { EventStore } from './event-store.js';
export { DEFAULT_OPTIONS, type EventStoreOptions, type ResolvedOptions } from './options.js';
export type { EventClasses } from './validation.js';
export type * from './types.js';
