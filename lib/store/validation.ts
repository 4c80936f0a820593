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
import {
  IsDefined,
  IsNotEmpty,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  ValidateBy,
  validateSync,
  type ValidationError as ClassValidatorError,
} from 'class-validator';
import { ValidationError, type ExpectedRevision, type ValidationFailure } from '../errors.js';
import { MAX_BATCH_BYTES } from '../log/record-batch.js';
import { recordBytes, type PreparedEvent } from './codec.js';
import type { AppendRequest, EventData } from './types.js';
import { isUuid } from './uuid.js';

export const MAX_NAME_BYTES = 256;
const NO_CONTROL_CHARACTERS = /^[^\p{Cc}]*$/u;
const EVENT_KEYS = new Set(['type', 'data', 'metadata', 'id']);
const MAX_JSON_DEPTH = 256;

function MaxUtf8Bytes(max: number): PropertyDecorator {
  return ValidateBy({
    name: 'maxUtf8Bytes',
    constraints: [max],
    validator: {
      validate: (value: unknown) => typeof value === 'string' && Buffer.byteLength(value) <= max,
      defaultMessage: () => `must be at most ${max} bytes of UTF-8`,
    },
  });
}

function NotReservedPrefix(): PropertyDecorator {
  return ValidateBy({
    name: 'notReserved',
    validator: {
      validate: (value: unknown) => typeof value !== 'string' || !value.startsWith('$'),
      defaultMessage: () => "must not start with '$' (reserved for the store's own streams)",
    },
  });
}

/** Why `value` is not a JSON value, or undefined when it is. */
export function jsonProblem(value: unknown, depth = 0): string | undefined {
  if (depth > MAX_JSON_DEPTH) return `is nested more than ${MAX_JSON_DEPTH} levels deep (or refers to itself)`;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `holds ${value}, which JSON cannot represent`;
    case 'object': {
      if (value === null) return undefined;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (value[i] === undefined) return `holds undefined at index ${i}: use null`;
          const problem = jsonProblem(value[i], depth + 1);
          if (problem !== undefined) return problem;
        }
        return undefined;
      }
      const kind = Object.prototype.toString.call(value);
      if (kind !== '[object Object]') return `holds a ${kind.slice(8, -1)}, which is not plain JSON: convert it (e.g. a Date to an ISO string)`;
      for (const key in value) {
        const item = (value as Record<string, unknown>)[key];
        if (item === undefined) continue; // JSON.stringify drops it, as a caller expects.
        const problem = jsonProblem(item, depth + 1);
        if (problem !== undefined) return problem;
      }
      return undefined;
    }
    default:
      return `holds a ${typeof value}, which JSON cannot represent`;
  }
}

function IsJsonValue(): PropertyDecorator {
  let problem: string | undefined;
  return ValidateBy({
    name: 'isJson',
    validator: {
      validate: (value: unknown) => (problem = jsonProblem(value)) === undefined,
      defaultMessage: () => `must be JSON-serialisable: it ${problem ?? 'is not'}`,
    },
  });
}

function IsPlainObject(): PropertyDecorator {
  return ValidateBy({
    name: 'isPlainObject',
    validator: {
      validate: (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value),
      defaultMessage: () => 'must be a plain object',
    },
  });
}

class StreamIdInput {
  @IsString({ message: 'must be a string' })
  @IsNotEmpty({ message: 'must not be empty' })
  @MaxUtf8Bytes(MAX_NAME_BYTES)
  @Matches(NO_CONTROL_CHARACTERS, { message: 'must not contain control characters' })
  @NotReservedPrefix()
  streamId!: unknown;
}

class EventInput {
  @IsString({ message: 'must be a string' })
  @IsNotEmpty({ message: 'must not be empty' })
  @MaxUtf8Bytes(MAX_NAME_BYTES)
  @Matches(NO_CONTROL_CHARACTERS, { message: 'must not contain control characters' })
  type!: unknown;

  @IsOptional()
  @IsUUID('all', { message: 'must be a UUID (e.g. from crypto.randomUUID()), or left out to generate one' })
  id!: unknown;

  @IsDefined({ message: 'is required (use null for no data)' })
  @IsJsonValue()
  data!: unknown;

  @IsOptional()
  @IsPlainObject()
  @IsJsonValue()
  metadata!: unknown;
}

/** Event classes registered by the application, by event type. */
export type EventClasses = Readonly<Record<string, new () => object>>;

export interface PreparedRequest {
  readonly streamId: string;
  readonly streamIdBytes: Buffer;
  readonly events: PreparedEvent[];
  readonly expectedRevision: ExpectedRevision;
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
  prepare(requests: readonly AppendRequest[], prefixOf: (i: number) => string): PreparedRequest[] {
    const failures: ValidationFailure[] = [];
    const prepared: PreparedRequest[] = [];
    const seenStreams = new Set<string>();
    let totalBytes = 0;
    requests.forEach((request, r) => {
      const prefix = prefixOf(r);
      const streamErrors = validateSync(Object.assign(new StreamIdInput(), { streamId: request?.streamId }));
      flatten(streamErrors, prefix, failures);
      const streamId = request?.streamId as string;
      if (streamErrors.length === 0 && seenStreams.has(streamId)) {
        failures.push({ path: `${prefix}streamId`, constraint: 'unique', message: 'appears twice in one append: put all its events in one request' });
      }
      seenStreams.add(streamId);
      checkExpectedRevision(request?.expectedRevision ?? 'any', `${prefix}expectedRevision`, failures);
      const streamIdBytes = streamErrors.length === 0 ? Buffer.from(streamId) : Buffer.alloc(0);
      const events = this.prepareEvents(request?.events, streamIdBytes.length, `${prefix}events`, failures);
      for (const event of events) totalBytes += event.recordBytes;
      prepared.push({ streamId, streamIdBytes, events, expectedRevision: request?.expectedRevision ?? 'any' });
    });
    if (totalBytes > MAX_BATCH_BYTES / 2) {
      failures.push({ path: 'events', constraint: 'maxAppendBytes', message: `total ${totalBytes} bytes; one append holds at most ${MAX_BATCH_BYTES / 2}: split it` });
    }
    if (failures.length > 0) throw new ValidationError(failures);
    return prepared;
  }

  private prepareEvents(events: unknown, streamIdBytes: number, path: string, failures: ValidationFailure[]): PreparedEvent[] {
    if (!Array.isArray(events) || events.length === 0) {
      failures.push({ path, constraint: 'isNonEmptyArray', message: 'must be a non-empty array of events' });
      return [];
    }
    const prepared: PreparedEvent[] = [];
    const ids = new Set<string>();
    events.forEach((event: EventData, i) => {
      const at = `${path}[${i}]`;
      const before = failures.length;
      if (typeof event !== 'object' || event === null) {
        failures.push({ path: at, constraint: 'isObject', message: 'must be an object { type, data, metadata?, id? }' });
        return;
      }
      for (const key of Object.keys(event)) {
        if (!EVENT_KEYS.has(key)) failures.push({ path: `${at}.${key}`, constraint: 'unknownProperty', message: 'is not an event field: use type, data, metadata and id' });
      }
      const input = Object.assign(new EventInput(), { type: event.type, id: event.id, data: event.data, metadata: event.metadata });
      flatten(validateSync(input), `${at}.`, failures);
      if (failures.length === before) this.validateData(event, `${at}.data.`, failures);
      const id = event.id ?? crypto.randomUUID();
      if (typeof id === 'string' && isUuid(id)) {
        const canonical = id.toLowerCase();
        if (ids.has(canonical)) failures.push({ path: `${at}.id`, constraint: 'unique', message: 'repeats an earlier event id of this append' });
        ids.add(canonical);
      }
      if (failures.length > before) return;
      const typeBytes = Buffer.from(event.type);
      const data = Buffer.from(JSON.stringify(event.data));
      const metadata = event.metadata === undefined ? undefined : Buffer.from(JSON.stringify(event.metadata));
      const bytes = recordBytes(streamIdBytes, typeBytes.length, data.length, metadata?.length ?? 0);
      if (bytes > this.maxEventBytes) {
        failures.push({ path: at, constraint: 'maxEventBytes', message: `encodes to about ${bytes} bytes; the limit is maxEventBytes = ${this.maxEventBytes}: store large payloads elsewhere and keep a reference` });
        return;
      }
      prepared.push({ id: id.toLowerCase(), type: event.type, typeBytes, data, metadata, recordBytes: bytes });
    });
    return prepared;
  }

  private validateData(event: EventData, path: string, failures: ValidationFailure[]): void {
    const EventClass = this.eventClasses[event.type];
    if (EventClass === undefined) return;
    if (typeof event.data !== 'object' || event.data === null || Array.isArray(event.data)) {
      failures.push({ path: path.slice(0, -1), constraint: 'isObject', message: `must be an object: ${event.type} events are validated with ${EventClass.name}` });
      return;
    }
    const instance = event.data instanceof EventClass ? event.data : Object.assign(new EventClass(), event.data);
    flatten(validateSync(instance), path, failures);
  }
}
