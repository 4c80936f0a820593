/**
 * Checks of the options that reads, subscriptions, consumers and aggregates share. Each adds a
 * ValidationFailure naming the option and what it must be; the caller throws them together.
 */
import type { ValidationFailure } from '../errors.js';
import type { EventFilter } from './types.js';

/** Options left out mean the defaults; anything else but an object is a failure. */
export function checkOptionsObject<T extends object>(options: T | null | undefined, failures: ValidationFailure[]): T {
  if (options === undefined) return {} as T;
  if (typeof options === 'object' && options !== null) return options;
  failures.push({ path: 'options', constraint: 'isObject', message: 'must be an object (or left out)' });
  return {} as T;
}

const isStrings = (value: unknown): boolean => Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Checks a filter of readAll, subscribe or a consumer. */
export function checkFilter(filter: unknown, failures: ValidationFailure[]): void {
  if (filter === undefined) return;
  const f = filter as Partial<Record<keyof EventFilter, unknown>>;
  if (
    typeof filter !== 'object' ||
    filter === null ||
    (f.streamPrefix !== undefined && typeof f.streamPrefix !== 'string' && !isStrings(f.streamPrefix)) ||
    (f.eventTypes !== undefined && !isStrings(f.eventTypes)) ||
    (f.includeSystemStreams !== undefined && typeof f.includeSystemStreams !== 'boolean')
  ) {
    failures.push({ path: 'options.filter', constraint: 'isFilter', message: 'must be { streamPrefix?: string | string[], eventTypes?: string[], includeSystemStreams?: boolean }' });
  }
}

/** A position or revision to start from: `'start'`, `'end'` or an integer ≥ 0 (undefined passes). */
export function checkPosition(value: unknown, path: string, failures: ValidationFailure[]): void {
  if (value !== undefined && value !== 'start' && value !== 'end' && !(Number.isSafeInteger(value) && (value as number) >= 0)) {
    failures.push({ path, constraint: 'isPosition', message: "must be 'start', 'end' or an integer ≥ 0" });
  }
}

/** A count or duration that must be an integer > 0 (undefined passes). */
export function checkPositiveInteger(value: unknown, path: string, failures: ValidationFailure[]): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) > 0)) {
    failures.push({ path, constraint: 'isCount', message: 'must be an integer > 0' });
  }
}
