/**
 * Validation of everything an append brings in, with class-validator, before anything is
 * written. Every failing field is reported at once (as a {@link ValidationError} listing paths
 * like `events[2].type`), so a caller fixes its input in one round.
 *
 * Rules:
 * - stream id: a non-empty string of at most 256 bytes of UTF-8, no control characters, not
 *   starting with `$` (reserved for the store's own streams);
 * - event type: the same rules, `$` allowed;
 * - event id: a UUID when given (one is generated otherwise), unique within the append;
 * - data: a JSON value (no functions, symbols, bigints, undefined array items, NaN or
 *   Infinity, Dates, Maps or other non-plain objects), validated further with the class the
 *   application registered for the event type, if any;
 * - metadata: a plain JSON object when given;
 * - the encoded event: at most `maxEventBytes`;
 * - expected revision: `'any'`, `'no_stream'`, `'stream_exists'` or a revision (integer ≥ 0).
 *
 * Registered classes are checked with `validateSync`: asynchronous constraints are not run.
 * Plain data is copied onto a new instance of the class (shallowly); nested objects are
 * validated only when they are already instances (or use class-validator's own nesting rules).
 */
import { ValidateBy, validateSync, type ValidationError as ClassValidatorError } from 'class-validator';
import { ValidationError, type ExpectedRevision, type ValidationFailure } from '../errors.js';
import { MAX_BATCH_BYTES } from '../log/record-batch.js';
import { maxFramedRecordBytes, recordBytes, type PreparedEvent } from './codec.js';
import type { AppendRequest, EventData } from './types.js';
import { isUuid } from './uuid.js';

export const MAX_NAME_BYTES = 256;
const NO_CONTROL_CHARACTERS = /^[^\p{Cc}]*$/u;
const EVENT_KEYS = new Set(['type', 'data', 'metadata', 'id']);
const MAX_JSON_DEPTH = 256;
/** One append's encoded events, at most (a batch must stay below 2 GiB; half leaves room for the bound's slack). */
export const MAX_APPEND_BYTES = MAX_BATCH_BYTES / 2;

/** A rule: what is wrong with a value, or undefined when nothing is. */
type Rule = (value: unknown) => string | undefined;

function nameProblem(value: unknown, maxBytes = MAX_NAME_BYTES): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'must not be empty';
  if (value.length > maxBytes / 3 && Buffer.byteLength(value) > maxBytes) return `must be at most ${maxBytes} bytes of UTF-8`;
  if (!NO_CONTROL_CHARACTERS.test(value)) return 'must not contain control characters';
  // An unpaired surrogate would be stored as U+FFFD and read back as another name.
  if (!value.isWellFormed()) return 'must be well-formed Unicode (it holds an unpaired surrogate)';
  return undefined;
}

/**
 * The rules of the append envelope, by class and field: the one source of truth. The classes
 * below get them as class-validator constraints (so class-validator reports failures, with its
 * paths and nesting); {@link passes} evaluates the same functions directly on the hot path, and
 * class-validator runs only when a rule fails. Either way the same functions decide.
 */
const STREAM_RULES: Record<string, Rule> = {
  streamId: (value) => nameProblem(value) ?? ((value as string).startsWith('$') ? "must not start with '$' (reserved for the store's own streams)" : undefined),
};

/** The store's own streams (snapshots, consumer checkpoints): `$` and a user stream id after a short prefix. */
export const SYSTEM_STREAM_MAX_BYTES = 2 * MAX_NAME_BYTES;
const SYSTEM_STREAM_RULES: Record<string, Rule> = {
  streamId: (value) => (typeof value === 'string' && value.startsWith('$') ? nameProblem(value, SYSTEM_STREAM_MAX_BYTES) : 'must be a system stream id'),
};

const EVENT_RULES: Record<string, Rule> = {
  type: nameProblem,
  id: (value) => (value === undefined || (typeof value === 'string' && isUuid(value)) ? undefined : 'must be a UUID (e.g. from crypto.randomUUID()), or left out to generate one'),
  data: (value) => (value === undefined ? 'is required (use null for no data)' : jsonProblem(value)),
  metadata: (value) => {
    if (value === undefined) return undefined;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be a plain object';
    return jsonProblem(value);
  },
};

function applyRules(target: object, rules: Record<string, Rule>): void {
  for (const [field, rule] of Object.entries(rules)) {
    ValidateBy({
      // Stable constraint names for callers that branch on them: validStreamId, validType, validData…
      name: `valid${field[0]!.toUpperCase()}${field.slice(1)}`,
      validator: { validate: (value: unknown) => rule(value) === undefined, defaultMessage: (args) => rule(args?.value) ?? '' },
    })(target, field);
  }
}

/** The rules as [field, rule] pairs, for the hot path (no for-in over an object per call). */
const RULE_LISTS = new Map<Record<string, Rule>, [string, Rule][]>();

function passes(input: Record<string, unknown>, rules: Record<string, Rule>): boolean {
  let list = RULE_LISTS.get(rules);
  if (list === undefined) RULE_LISTS.set(rules, (list = Object.entries(rules)));
  for (let i = 0; i < list.length; i++) if (list[i]![1](input[list[i]![0]]) !== undefined) return false;
  return true;
}

/** Why `value` is not a JSON value, or undefined when it is. */
export function jsonProblem(value: unknown, depth = 0): string | undefined {
  if (depth > MAX_JSON_DEPTH) return `must be JSON: it is nested more than ${MAX_JSON_DEPTH} levels deep (or refers to itself)`;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `must be JSON: it holds ${value}, which JSON cannot represent`;
    case 'object': {
      if (value === null) return undefined;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (value[i] === undefined) return `must be JSON: it holds undefined at index ${i}; use null`;
          const problem = jsonProblem(value[i], depth + 1);
          if (problem !== undefined) return problem;
        }
        return undefined;
      }
      const kind = Object.prototype.toString.call(value);
      if (kind !== '[object Object]') return `must be JSON: it holds a ${kind.slice(8, -1)}, which is not plain JSON; convert it (e.g. a Date to an ISO string)`;
      for (const key in value) {
        const item = (value as Record<string, unknown>)[key];
        if (item === undefined) continue; // JSON.stringify drops it, as a caller expects.
        const problem = jsonProblem(item, depth + 1);
        if (problem !== undefined) return problem;
      }
      return undefined;
    }
    default:
      return `must be JSON: it holds a ${typeof value}, which JSON cannot represent`;
  }
}

class StreamIdInput {
  streamId!: unknown;
}
applyRules(StreamIdInput.prototype, STREAM_RULES);

class EventInput {
  type!: unknown;
  id!: unknown;
  data!: unknown;
  metadata!: unknown;
}
applyRules(EventInput.prototype, EVENT_RULES);

/** Event classes registered by the application, by event type. */
export type EventClasses = Readonly<Record<string, new () => object>>;

export interface PreparedRequest {
  readonly streamId: string;
  readonly events: PreparedEvent[];
  readonly expectedRevision: ExpectedRevision;
}

/** A validated append: its requests and an upper bound of its framed body's bytes. */
export interface PreparedAppend {
  readonly requests: PreparedRequest[];
  readonly maxBodyBytes: number;
}

/** Turns class-validator's error tree into failures; `prefix` is '' or ends with '.'. */
function flatten(errors: ClassValidatorError[], prefix: string, out: ValidationFailure[]): void {
  for (const error of errors) {
    const path = prefix + error.property;
    for (const [constraint, message] of Object.entries(error.constraints ?? {})) {
      // class-validator's default messages start with the property name; the path already says it.
      const text = message.startsWith(`${error.property} `) ? message.slice(error.property.length + 1) : message;
      out.push({ path, constraint, message: text });
    }
    flatten(error.children ?? [], `${path}.`, out);
  }
}

function checkExpectedRevision(value: unknown, path: string, out: ValidationFailure[]): void {
  if (value === 'any' || value === 'no_stream' || value === 'stream_exists') return;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return;
  out.push({ path, constraint: 'isExpectedRevision', message: "must be 'any', 'no_stream', 'stream_exists' or a revision (an integer ≥ 0)" });
}

/** Validates and serialises the events of an append. */
export class AppendValidator {
  constructor(
    private readonly maxEventBytes: number,
    private readonly eventClasses: EventClasses,
  ) {}

  /** Validates `requests` (paths are prefixed with `prefixOf(i)`); throws ValidationError listing every failure. */
  prepare(requests: readonly AppendRequest[], prefixOf: (i: number) => string, system = false): PreparedAppend {
    const failures: ValidationFailure[] = [];
    const prepared: PreparedRequest[] = [];
    const seenStreams = new Set<string>();
    let totalBytes = 0;
    requests.forEach((request, r) => {
      const prefix = prefixOf(r);
      const streamInput = { streamId: request?.streamId };
      // The store's own appends (system = true) are to '$' streams, which users may not write.
      const streamErrors = system
        ? passes(streamInput, SYSTEM_STREAM_RULES)
          ? []
          : [{ property: 'streamId', constraints: { validSystemStreamId: SYSTEM_STREAM_RULES.streamId!(streamInput.streamId)! }, children: [] } as unknown as ClassValidatorError]
        : passes(streamInput, STREAM_RULES)
          ? []
          : validateSync(Object.assign(new StreamIdInput(), streamInput));
      flatten(streamErrors, prefix, failures);
      const streamId = request?.streamId as string;
      if (streamErrors.length === 0 && seenStreams.has(streamId)) {
        failures.push({ path: `${prefix}streamId`, constraint: 'unique', message: 'appears twice in one append: put all its events in one request' });
      }
      seenStreams.add(streamId);
      checkExpectedRevision(request?.expectedRevision ?? 'any', prefix === '' ? 'options.expectedRevision' : `${prefix}expectedRevision`, failures);
      const events = this.prepareEvents(request?.events, streamErrors.length === 0 ? streamId : '', `${prefix}events`, failures);
      for (const event of events) totalBytes += event.maxFramedBytes;
      prepared.push({ streamId, events, expectedRevision: request?.expectedRevision ?? 'any' });
    });
    if (totalBytes > MAX_APPEND_BYTES) {
      failures.push({ path: 'events', constraint: 'maxAppendBytes', message: `may take up to ${totalBytes} bytes; one append holds at most ${MAX_APPEND_BYTES}: split it` });
    }
    if (failures.length > 0) throw new ValidationError(failures);
    return { requests: prepared, maxBodyBytes: totalBytes };
  }

  private prepareEvents(events: unknown, streamId: string, path: string, failures: ValidationFailure[]): PreparedEvent[] {
    if (!Array.isArray(events) || events.length === 0) {
      failures.push({ path, constraint: 'isNonEmptyArray', message: 'must be a non-empty array of events' });
      return [];
    }
    const prepared: PreparedEvent[] = [];
    // Duplicate ids are only possible with several events; a set is made only then.
    const ids = events.length > 1 ? new Set<string>() : undefined;
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as EventData;
      const before = failures.length;
      // Paths are built only for failures: this loop runs for every event appended.
      if (typeof event !== 'object' || event === null) {
        failures.push({ path: `${path}[${i}]`, constraint: 'isObject', message: 'must be an object { type, data, metadata?, id? }' });
        continue;
      }
      for (const key in event) {
        if (!EVENT_KEYS.has(key)) failures.push({ path: `${path}[${i}].${key}`, constraint: 'unknownProperty', message: 'is not an event field: use type, data, metadata and id' });
      }
      if (!passes(event as unknown as Record<string, unknown>, EVENT_RULES)) {
        const input = { type: event.type, id: event.id, data: event.data, metadata: event.metadata };
        flatten(validateSync(Object.assign(new EventInput(), input)), `${path}[${i}].`, failures);
      }
      if (failures.length === before) this.validateData(event, () => `${path}[${i}].data.`, failures);
      const id = typeof event.id === 'string' ? event.id.toLowerCase() : crypto.randomUUID();
      if (ids !== undefined) {
        if (ids.has(id)) failures.push({ path: `${path}[${i}].id`, constraint: 'unique', message: 'repeats an earlier event id of this append' });
        ids.add(id);
      }
      if (failures.length > before) continue;
      const data = JSON.stringify(event.data);
      const metadata = event.metadata === undefined ? undefined : JSON.stringify(event.metadata);
      const maxFramedBytes = maxFramedRecordBytes(streamId, event.type, data, metadata);
      // The bound is cheap; count exact bytes only when the bound could break the limit.
      if (maxFramedBytes > this.maxEventBytes) {
        const bytes = recordBytes(streamId, event.type, data, metadata);
        if (bytes > this.maxEventBytes) {
          failures.push({ path: `${path}[${i}]`, constraint: 'maxEventBytes', message: `encodes to ${bytes} bytes; the limit is maxEventBytes = ${this.maxEventBytes}: store large payloads elsewhere and keep a reference` });
          continue;
        }
      }
      prepared.push({ id, type: event.type, data, metadata, maxFramedBytes });
    }
    return prepared;
  }

  private validateData(event: EventData, pathOf: () => string, failures: ValidationFailure[]): void {
    // Own properties only: an event type such as 'constructor' or 'toString' has no class.
    const EventClass = Object.hasOwn(this.eventClasses, event.type) ? this.eventClasses[event.type] : undefined;
    if (EventClass === undefined) return;
    if (typeof event.data !== 'object' || event.data === null || Array.isArray(event.data)) {
      failures.push({ path: pathOf().slice(0, -1), constraint: 'isObject', message: `must be an object: ${event.type} events are validated with ${EventClass.name}` });
      return;
    }
    const instance = event.data instanceof EventClass ? event.data : Object.assign(new EventClass(), event.data);
    flatten(validateSync(instance), pathOf(), failures);
  }
}
