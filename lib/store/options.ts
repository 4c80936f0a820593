/**
 * Options of `EventStore.open`, their defaults, and their validation. Resolved options are
 * frozen: changing them after open has no effect and is a TypeError.
 */
import fs from 'node:fs';
import { IsBoolean, IsIn, IsInt, IsNotEmpty, IsObject, IsOptional, IsString, Max, Min, validateSync } from 'class-validator';
import { systemClock, type Clock } from '../clock.js';
import { InvalidOptionsError, type ValidationFailure } from '../errors.js';
import type { Durability } from '../log/segment-log.js';
import type { EventClasses } from './validation.js';
import { TIERING_DEFAULTS, type TieringOptions } from '../tiering/tiering.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export interface EventStoreOptions {
  /** Directory of the store; created when missing. One writer process at a time. */
  readonly dir: string;
  /**
   * When an append is acknowledged. Default `'fsync'`.
   * - `'fsync'`: after its bytes are fdatasync'd (concurrent appends share one sync);
   * - `'interval'`: after they are written; the store fdatasyncs every `fsyncIntervalMs`,
   *   so an operating-system crash or power loss may lose that window (a process crash does not);
   * - `'none'`: after they are written; synced only when segments seal, on `flush()` and on close.
   */
  readonly durability?: Durability;
  /** Sync period under `'interval'` durability. Default 100 ms. */
  readonly fsyncIntervalMs?: number;
  /** A segment rolls when the next batch would take it past this size. Default 64 MiB (1 KiB – 1 GiB). */
  readonly segmentBytes?: number;
  /** A segment rolls at the first append after its first event is this old. Default 7 days. */
  readonly segmentMaxAgeMs?: number;
  /**
   * Zero-filled space kept allocated ahead of the active segment's write head, so fdatasync
   * need not commit a growing file size (about 0.6× the cost, measured on ext4). Default 1 MiB;
   * 0 disables. Unused under `'none'` durability.
   */
  readonly preallocateBytes?: number;
  /**
   * Sealed segments whose data files may stay open between reads. A read of a stream spread
   * over more segments than this opens and closes files as it goes (about 8 µs a file here).
   * Default: a quarter of the process's open-file limit (`ulimit -n`, read from
   * /proc/self/limits), between 64 and 4,096; 64 where the limit cannot be read.
   */
  readonly maxOpenSegments?: number;
  /** Bytes of log between two offset-index entries. Default 4 KiB. */
  readonly indexIntervalBytes?: number;
  /** Largest encoded event (stream id, type, data, metadata and a 36-byte header). Default 1 MiB. */
  readonly maxEventBytes?: number;
  /**
   * The stream index keeps this many recent events in memory, then writes them to its database
   * (`index.lmdb`) in the background, once they are durable in the log: it bounds the index's
   * memory (about 40 bytes an event, plus a map entry per stream in it) and what opening after
   * a crash re-reads from the log. Default 65,536.
   */
  readonly indexCheckpointEvents?: number;
  /** Classes (with class-validator decorators) that validate the data of events of a type. */
  readonly eventClasses?: EventClasses;
  /** Time source, for tests. Default: `Date.now`. */
  readonly clock?: Clock;
  /**
   * Upload sealed segments to an object store, evict their local data past a retention bound,
   * and read evicted data back through a cache (see `TieringOptions`). Default: off.
   */
  readonly tiering?: TieringOptions;
  /**
   * Open as a reader only: appends fail with READ_ONLY. With `tiering`, the directory is a
   * read-only replica of the store on that bucket prefix: it pulls the writer's committed
   * segments (their small files; data is read remotely on demand) on open, every
   * `tiering.pollIntervalMs`, and on `store.tiering.refresh()`. Default false.
   */
  readonly readOnly?: boolean;
}

export type ResolvedOptions = Required<Readonly<Omit<EventStoreOptions, 'tiering'>>> & { readonly tiering: TieringOptions | undefined };

export const DEFAULT_OPTIONS = Object.freeze({
  durability: 'fsync' as Durability,
  fsyncIntervalMs: 100,
  segmentBytes: 64 * MiB,
  segmentMaxAgeMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 4 * KiB,
  preallocateBytes: 1 * MiB,
  maxEventBytes: 1 * MiB,
  indexCheckpointEvents: 65_536,
  maxOpenSegments: defaultMaxOpenSegments(),
  readOnly: false,
});

/** A quarter of the soft open-file limit, within [64, 4096]; 64 where it cannot be read (not Linux). */
export function defaultMaxOpenSegments(limits = '/proc/self/limits'): number {
  try {
    const line = fs.readFileSync(limits, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const field = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    const soft = field === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(field);
    return Number.isSafeInteger(soft) ? Math.min(4096, Math.max(64, Math.floor(soft / 4))) : 64;
  } catch {
    return 64;
  }
}

class OptionsInput {
  @IsString({ message: 'must be a path (string)' })
  @IsNotEmpty({ message: 'must not be empty' })
  dir!: unknown;

  @IsIn(['fsync', 'interval', 'none'], { message: "must be 'fsync', 'interval' or 'none'" })
  durability!: unknown;

  @IsInt({ message: 'must be an integer number of milliseconds' })
  @Min(1)
  @Max(60_000)
  fsyncIntervalMs!: unknown;

  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(KiB)
  @Max(GiB)
  segmentBytes!: unknown;

  @IsInt({ message: 'must be an integer number of milliseconds' })
  @Min(1)
  segmentMaxAgeMs!: unknown;

  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(0)
  @Max(GiB)
  preallocateBytes!: unknown;

  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(64)
  @Max(16 * MiB)
  indexIntervalBytes!: unknown;

  @IsInt({ message: 'must be an integer number of files' })
  @Min(1)
  maxOpenSegments!: unknown;

  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(KiB)
  @Max(256 * MiB)
  maxEventBytes!: unknown;

  @IsInt({ message: 'must be an integer number of events' })
  @Min(1)
  indexCheckpointEvents!: unknown;

  @IsOptional()
  @IsObject({ message: 'must map event types to classes' })
  eventClasses!: unknown;

  @IsBoolean({ message: 'must be true or false' })
  readOnly!: unknown;
}

/** Applies defaults and validates; throws InvalidOptionsError listing every bad option. */
export function resolveOptions(options: EventStoreOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionsError([{ path: 'options', constraint: 'isObject', message: 'must be an object with at least { dir }' }]);
  }
  const merged = { ...DEFAULT_OPTIONS, eventClasses: {}, clock: systemClock, ...definedOnly(options) };
  const failures = failuresOf(Object.assign(new OptionsInput(), merged), 'options.');
  for (const [type, EventClass] of Object.entries(merged.eventClasses ?? {})) {
    if (typeof EventClass !== 'function') failures.push({ path: `options.eventClasses.${type}`, constraint: 'isClass', message: 'must be a class' });
  }
  if (typeof merged.clock?.now !== 'function') failures.push({ path: 'options.clock', constraint: 'isClock', message: 'must have a now() method' });
  if (merged.tiering !== undefined) failures.push(...checkTiering(merged.tiering, merged.segmentBytes));
  if (failures.length > 0) throw new InvalidOptionsError(failures);
  return Object.freeze({ tiering: undefined, ...merged }) as ResolvedOptions;
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The numeric fields of the `tiering` option (undefined: the default). */
class TieringInput {
  @IsOptional()
  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  localRetentionBytes!: unknown;

  @IsOptional()
  @IsInt({ message: 'must be an integer number of milliseconds' })
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  localRetentionMs!: unknown;

  @IsOptional()
  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(64 * KiB)
  @Max(Number.MAX_SAFE_INTEGER)
  cacheBytes!: unknown;

  @IsOptional()
  @IsInt({ message: 'must be an integer number of milliseconds' })
  @Min(10)
  @Max(Number.MAX_SAFE_INTEGER)
  pollIntervalMs!: unknown;

  @IsOptional()
  @IsInt({ message: 'must be an integer number of milliseconds' })
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  retryBaseMs!: unknown;

  @IsOptional()
  @IsInt({ message: 'must be an integer number of bytes' })
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  maxLocalBytes!: unknown;
}

/** The failures class-validator finds in `input`, with paths under `prefix` (e.g. `options.`). */
function failuresOf(input: object, prefix: string): ValidationFailure[] {
  const failures: ValidationFailure[] = [];
  for (const error of validateSync(input)) {
    for (const [constraint, message] of Object.entries(error.constraints ?? {})) {
      failures.push({ path: `${prefix}${error.property}`, constraint, message: message.replace(`${error.property} `, '') });
    }
  }
  return failures;
}

/** The checks of the `tiering` option. */
function checkTiering(tiering: TieringOptions, segmentBytes: unknown): ValidationFailure[] {
  if (typeof tiering !== 'object' || tiering === null) {
    return [{ path: 'options.tiering', constraint: 'isObject', message: 'must be an object such as { objectStore: new FsObjectStore({ dir }) }' }];
  }
  const failures: ValidationFailure[] = [];
  const store = tiering.objectStore as unknown as Record<string, unknown> | undefined;
  const missing = ['put', 'get', 'head', 'list', 'delete'].filter((m) => typeof store?.[m] !== 'function');
  if (missing.length > 0) {
    failures.push({ path: 'options.tiering.objectStore', constraint: 'isObjectStore', message: `must be an ObjectStore (an adapter from coldstream/adapters/*); lacks ${missing.join(', ')}` });
  }
  const { localRetentionBytes, localRetentionMs, cacheBytes, pollIntervalMs, retryBaseMs, maxLocalBytes } = tiering;
  const fieldFailures = failuresOf(Object.assign(new TieringInput(), { localRetentionBytes, localRetentionMs, cacheBytes, pollIntervalMs, retryBaseMs, maxLocalBytes }), 'options.tiering.');
  failures.push(...fieldFailures);
  if (maxLocalBytes !== undefined && fieldFailures.length === 0 && typeof segmentBytes === 'number') {
    // A healthy store holds up to localRetentionBytes of sealed data, plus a segment waiting for
    // its upload and the active one: a watermark below that would refuse appends for no reason.
    const floor = (localRetentionBytes ?? TIERING_DEFAULTS.localRetentionBytes) + 2 * segmentBytes;
    if ((maxLocalBytes as number) <= floor) {
      failures.push({ path: 'options.tiering.maxLocalBytes', constraint: 'exceedsRetention', message: `must exceed localRetentionBytes plus two segments (${floor} bytes here), or a healthy store would refuse appends` });
    }
  }
  return failures;
}
