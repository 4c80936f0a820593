/**
 * Aggregates: a stream folded into state (`aggregateStream`), or kept folded as events arrive
 * (`aggregate$`), with snapshots.
 *
 * A snapshot is the state at a revision, stored as an event of the system stream
 * `$snapshot-<streamId>` (so it is durable, tiered and restored with everything else, and never
 * changes the stream's own revisions). It is tagged with the policy's `schemaVersion`: change
 * the version when `evolve` or the state's shape changes, and older snapshots are ignored.
 * Loading takes the newest usable snapshot (same version, at or below the stream's head) and
 * folds the events after it. A snapshot that cannot be read (damaged on disk) is skipped and
 * the stream replayed from the start: never a wrong state from a broken snapshot.
 *
 * A snapshot is taken after a load that folded at least `everyEvents` events (default 100), or
 * that took longer than `whenLoadSlowerThanMs`; `aggregate$` also takes one every `everyEvents`
 * live events. The state must be JSON-serialisable (and encode within maxEventBytes): a
 * snapshot that cannot be written is skipped, and the load still succeeds.
 */
import { Observable, type Subscription } from 'rxjs';
import type { Clock } from '../clock.js';
import { isColdstreamError, ValidationError, type ValidationFailure } from '../errors.js';
import { checkPositiveInteger } from '../store/option-checks.js';
import type { ReadStreamOptions, RecordedEvent, StreamHead } from '../store/types.js';

export interface SnapshotPolicy {
  /** Identifies the state's shape and `evolve`'s logic; snapshots of another version are ignored. */
  readonly schemaVersion: number | string;
  /** Snapshot after folding at least this many events since the last snapshot. Default 100. */
  readonly everyEvents?: number;
  /** Also snapshot after a load that took at least this long. */
  readonly whenLoadSlowerThanMs?: number;
}

export interface AggregateOptions<State> {
  /** The state before the first event; a function gives a fresh one per load. */
  readonly initialState: State | (() => State);
  /** The state after `event`. Should not mutate `state` when snapshots or `aggregate$` are used. */
  readonly evolve: (state: State, event: RecordedEvent) => State;
  readonly snapshots?: SnapshotPolicy;
}

/** A folded stream: the state after `revision` (`'no_stream'` when the stream has no events: pass it as `expectedRevision` as it is). */
export interface AggregateState<State> {
  readonly state: State;
  readonly revision: number | 'no_stream';
}

/** What aggregates need of the store. */
export interface AggregateContext {
  readStream(streamId: string, options: ReadStreamOptions): AsyncIterableIterator<RecordedEvent>;
  streamHead(streamId: string): Promise<StreamHead | undefined>;
  subscribeToStream(streamId: string, fromRevision: number): Observable<RecordedEvent>;
  appendSnapshot(streamId: string, snapshot: StoredSnapshot): Promise<void>;
  readonly clock: Clock;
}

export interface StoredSnapshot {
  readonly revision: number;
  readonly schemaVersion: number | string;
  readonly state: unknown;
}

export const SNAPSHOT_EVENT_TYPE = '$snapshot';
const DEFAULT_EVERY_EVENTS = 100;
/** Snapshots looked at, newest first, for one of the right version. */
const SNAPSHOTS_CONSIDERED = 16;

export function snapshotStreamOf(streamId: string): string {
  return `$snapshot-${streamId}`;
}

function checkOptions(streamId: unknown, options: AggregateOptions<unknown>): void {
  const failures: ValidationFailure[] = [];
  if (typeof streamId !== 'string' || streamId.length === 0) failures.push({ path: 'streamId', constraint: 'isString', message: 'must be a non-empty string' });
  if (typeof options !== 'object' || options === null || typeof options.evolve !== 'function') {
    failures.push({ path: 'options.evolve', constraint: 'isFunction', message: 'must be a function (state, event) => state' });
  }
  const policy = options?.snapshots;
  if (policy === null || (policy !== undefined && typeof policy !== 'object')) {
    failures.push({ path: 'options.snapshots', constraint: 'isPolicy', message: 'must be { schemaVersion, everyEvents?, whenLoadSlowerThanMs? } or left out' });
  } else if (policy !== undefined) {
    if (typeof policy.schemaVersion !== 'number' && typeof policy.schemaVersion !== 'string') {
      failures.push({ path: 'options.snapshots.schemaVersion', constraint: 'isVersion', message: 'must be a number or a string naming the state shape' });
    }
    for (const key of ['everyEvents', 'whenLoadSlowerThanMs'] as const) checkPositiveInteger(policy[key], `options.snapshots.${key}`, failures);
  }
  if (failures.length > 0) throw new ValidationError(failures);
}

function initial<State>(options: AggregateOptions<State>): State {
  return typeof options.initialState === 'function' ? (options.initialState as () => State)() : options.initialState;
}

/** The newest snapshot of `schemaVersion` at or below `headRevision`, or undefined (then the stream is replayed). */
async function newestUsableSnapshot(context: AggregateContext, streamId: string, schemaVersion: number | string, headRevision: number): Promise<StoredSnapshot | undefined> {
  try {
    for await (const event of context.readStream(snapshotStreamOf(streamId), { direction: 'backwards', maxCount: SNAPSHOTS_CONSIDERED })) {
      const snapshot = event.data as Partial<StoredSnapshot> | null;
      if (
        event.type === SNAPSHOT_EVENT_TYPE &&
        snapshot !== null &&
        snapshot.schemaVersion === schemaVersion &&
        Number.isSafeInteger(snapshot.revision) &&
        snapshot.revision! <= headRevision &&
        'state' in snapshot
      ) {
        return snapshot as StoredSnapshot;
      }
    }
  } catch (err) {
    // A damaged snapshot is no reason to fail the load: replay the stream instead.
    if (isColdstreamError(err, 'CORRUPT_RECORD') || isColdstreamError(err, 'CORRUPT_FILE')) return undefined;
    throw err;
  }
  return undefined;
}

/**
 * Stores a snapshot, best-effort: a snapshot only speeds up later loads, so one that cannot be
 * written (a state that is not JSON, larger than maxEventBytes, a closing store) is skipped and
 * the load it follows still succeeds.
 */
async function takeSnapshot(context: AggregateContext, streamId: string, snapshot: StoredSnapshot): Promise<void> {
  try {
    await context.appendSnapshot(streamId, snapshot);
  } catch {
    // Skipped; the next load folds from the previous snapshot (or the start).
  }
}

/** Folds a stream into state; see EventStore.aggregateStream. */
export async function aggregateStream<State>(context: AggregateContext, streamId: string, options: AggregateOptions<State>): Promise<AggregateState<State>> {
  checkOptions(streamId, options as AggregateOptions<unknown>);
  const started = context.clock.now();
  const head = await context.streamHead(streamId);
  if (head === undefined) return { state: initial(options), revision: 'no_stream' };
  const policy = options.snapshots;
  const snapshot = policy === undefined ? undefined : await newestUsableSnapshot(context, streamId, policy.schemaVersion, head.revision);
  let state = snapshot === undefined ? initial(options) : (snapshot.state as State);
  let revision: number | 'no_stream' = snapshot === undefined ? 'no_stream' : snapshot.revision;
  let folded = 0;
  for await (const event of context.readStream(streamId, { fromRevision: snapshot === undefined ? 0 : snapshot.revision + 1 })) {
    state = options.evolve(state, event);
    revision = event.revision;
    folded++;
  }
  if (policy !== undefined && typeof revision === 'number' && folded > 0) {
    const slow = policy.whenLoadSlowerThanMs !== undefined && context.clock.now() - started >= policy.whenLoadSlowerThanMs;
    if (slow || folded >= (policy.everyEvents ?? DEFAULT_EVERY_EVENTS)) await takeSnapshot(context, streamId, { revision, schemaVersion: policy.schemaVersion, state });
  }
  return { state, revision };
}

/** The folded state, then each new state as events arrive; see EventStore.aggregate$. */
export function aggregate$<State>(context: AggregateContext, streamId: string, options: AggregateOptions<State>): Observable<AggregateState<State>> {
  checkOptions(streamId, options as AggregateOptions<unknown>);
  return new Observable<AggregateState<State>>((subscriber) => {
    let live: Subscription | undefined;
    let stopped = false;
    aggregateStream(context, streamId, options).then(
      (loaded) => {
        if (stopped) return;
        subscriber.next(loaded);
        if (stopped) return; // Unsubscribed by that very emission (take(1), firstValueFrom).
        let { state, revision } = loaded;
        let sinceSnapshot = 0;
        const policy = options.snapshots;
        live = context.subscribeToStream(streamId, revision === 'no_stream' ? 0 : revision + 1).subscribe({
          next: (event) => {
            try {
              state = options.evolve(state, event);
            } catch (err) {
              subscriber.error(err);
              return;
            }
            revision = event.revision;
            subscriber.next({ state, revision });
            if (policy !== undefined && ++sinceSnapshot >= (policy.everyEvents ?? DEFAULT_EVERY_EVENTS)) {
              sinceSnapshot = 0;
              void takeSnapshot(context, streamId, { revision, schemaVersion: policy.schemaVersion, state });
            }
          },
          error: (err: unknown) => subscriber.error(err),
          complete: () => subscriber.complete(),
        });
      },
      (err: unknown) => subscriber.error(err),
    );
    return () => {
      stopped = true;
      live?.unsubscribe();
    };
  });
}
