/**
 * The event store: streams of events on the segment log.
 *
 * Appends are checked and placed synchronously, in call order: the expected revision is compared
 * with the stream's head (which includes appends still being written), the events get their
 * revisions and positions, and the index is updated, all before the first `await`. So for a
 * given expected revision exactly one of several concurrent appends wins, and appends to
 * different streams share the log's group commit. The promise resolves when the batch is
 * acknowledged under the durability policy; readers never see unacknowledged events.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InvalidOptionsError, ReadOnlyError, StoreClosedError, StoreFailedError, ValidationError, WrongExpectedRevisionError, type ExpectedRevision } from '../errors.js';
import { fsyncDir } from '../log/files.js';
import { FileLock } from '../log/file-lock.js';
import { SegmentLog } from '../log/segment-log.js';
import { checkEventRecord, RecordEncoder } from './codec.js';
import { resolveOptions, type EventStoreOptions, type ResolvedOptions } from './options.js';
import { readAll, readStream, type ReadContext } from './reads.js';
import { StreamIndex, type IndexHead } from './stream-index.js';
import { restoreInto, Tiering, TIERING_OFF, type TieringControl } from '../tiering/tiering.js';
import type { AppendOptions, AppendRequest, AppendResult, EventData, ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamHead } from './types.js';
import { AppendValidator, type PreparedRequest } from './validation.js';
import type { Observable } from 'rxjs';
import { CHECKPOINT_EVENT_TYPE, consume, consumerStreamOf, project, type ConsumerContext, type ConsumerMessage, type ConsumerOptions, type Projection } from '../subscriptions/consumer.js';
import { aggregate$, aggregateStream, SNAPSHOT_EVENT_TYPE, snapshotStreamOf, type AggregateContext, type AggregateOptions, type AggregateState } from '../snapshots/aggregate.js';
import {
  eventsOf,
  subscribeMessages,
  subscribeToStreamMessages,
  type StreamSubscribeOptions,
  type SubscribeOptions,
  type SubscriptionContext,
  type SubscriptionMessage,
} from '../subscriptions/subscribe.js';

/** What the synchronous check found for one request of an append. */
type Check = 'ok' | 'maybe_retry' | 'conflict';

/**
 * An embedded event store in one directory.
 *
 * @example
 * const store = await EventStore.open({ dir: './data' });
 * await store.appendToStream('order-1', [{ type: 'OrderPlaced', data: { total: 42 } }], { expectedRevision: 'no_stream' });
 * for await (const event of store.readStream('order-1')) console.log(event.revision, event.type, event.data);
 * await store.close();
 */
export class EventStore {
  private closed = false;
  private readonly validator: AppendValidator;
  private readonly reads: ReadContext;
  private readonly encoder = new RecordEncoder();
  private readonly closeListeners = new Set<() => void>();
  private readonly closingHooks = new Set<() => Promise<void>>();
  private readonly subscriptions: SubscriptionContext;
  private stopCheckpointing: () => void = () => {};

  private constructor(
    /** The options in force, defaults applied, frozen. */
    readonly options: ResolvedOptions,
    private readonly lock: FileLock,
    private readonly log: SegmentLog,
    private readonly index: StreamIndex,
    private readonly tiering_: Tiering | undefined,
  ) {
    this.validator = new AppendValidator(options.maxEventBytes, options.eventClasses);
    this.reads = { log, index, assertOpen: () => this.assertOpen() };
    this.subscriptions = {
      log,
      reads: this.reads,
      onClose: (listener) => {
        this.closeListeners.add(listener);
        return () => this.closeListeners.delete(listener);
      },
      isClosing: () => this.closing !== undefined,
    };
  }

  /**
   * Opens the store in `options.dir` (creating it), recovering from a crash if there was one.
   * Throws InvalidOptionsError for bad options and StoreLockedError when another writer has it open.
   */
  static async open(options: EventStoreOptions): Promise<EventStore> {
    const resolved = resolveOptions(options);
    await createDirectory(resolved.dir);
    const lock = FileLock.acquire(resolved.dir);
    let log: SegmentLog | undefined;
    let tiering: Tiering | undefined;
    let index: StreamIndex | undefined;
    try {
      const logDir = path.join(resolved.dir, 'log');
      tiering = resolved.tiering === undefined ? undefined : await Tiering.open(resolved.dir, logDir, resolved.tiering, resolved.clock, resolved.readOnly);
      const tiered = tiering;
      log = await SegmentLog.open({
        dir: logDir,
        durability: resolved.durability,
        fsyncIntervalMs: resolved.fsyncIntervalMs,
        segmentBytes: resolved.segmentBytes,
        segmentMaxAgeMs: resolved.segmentMaxAgeMs,
        indexIntervalBytes: resolved.indexIntervalBytes,
        preallocateBytes: resolved.preallocateBytes,
        maxOpenSegments: resolved.maxOpenSegments,
        clock: resolved.clock,
        checkRecord: checkEventRecord,
        onSeal: (segment, sealingLog) => StreamIndex.sealSegment(segment, sealingLog),
        afterSeal: async (segment) => tiered?.sealed(segment.basePosition),
        remoteData: tiered === undefined ? undefined : (sidecar) => tiered.remoteData(sidecar),
        remoteSidecar: tiered === undefined ? undefined : (base, gap) => tiered.remoteSidecar(base, gap),
      });
      index = await StreamIndex.open(resolved.dir, logDir, log, resolved.indexCheckpointEvents);
      const opened = log;
      const openedIndex = index;
      tiering?.start(log, () => openedIndex.indexAdopted(opened));
      // A replica serves what the writer committed up to now from the start (or, with the object
      // store unreachable, what it pulled before: status() says why).
      if (resolved.readOnly) await tiering?.refresh().catch(() => 0);
      const store = new EventStore(resolved, lock, log, index, tiering);
      const syncFirst = resolved.durability === 'fsync' ? undefined : () => opened.flush();
      store.stopCheckpointing = log.onCommit(() => openedIndex.noteCommitted(opened, syncFirst));
      return store;
    } catch (err) {
      // Everything opened is closed (and so done writing) before the directory is released.
      await tiering?.close().catch(() => {});
      await index?.close(false).catch(() => {});
      await log?.close().catch(() => {});
      lock.release();
      throw err;
    }
  }

  /**
   * Opens a writable store on the empty directory `options.dir` from the object store of
   * `options.tiering` alone: the segments' sidecars, offset indexes and stream indexes are
   * fetched (a few percent of the data's bytes), the data stays remote and is read on demand,
   * and appends continue after the last committed event. This store becomes the prefix's writer:
   * the writer it replaces is fenced (FENCED) at its next commit. Events the old writer had not
   * yet committed to the object store are not in the restored store.
   */
  static async restore(options: EventStoreOptions): Promise<EventStore> {
    const resolved = resolveOptions(options);
    if (resolved.tiering === undefined || resolved.readOnly) {
      throw new InvalidOptionsError([{ path: 'options.tiering', constraint: 'isDefined', message: 'must name the object store to restore from (and readOnly must be false)' }]);
    }
    await createDirectory(resolved.dir);
    await restoreInto(resolved.dir, path.join(resolved.dir, 'log'), resolved.tiering, resolved.clock);
    return EventStore.open(options);
  }

  /**
   * Tiering to the object store of the `tiering` option: `drain()`, `status()`, `scrub()`,
   * `clearCache()`. Without the option, drain resolves at once and status says it is off.
   */
  get tiering(): TieringControl {
    return this.tiering_ ?? TIERING_OFF;
  }

  /**
   * Appends events to one stream, atomically. Resolves once they are acknowledged.
   *
   * Throws ValidationError (nothing written) for bad input and WrongExpectedRevisionError when
   * `expectedRevision` does not hold. Retrying an append whose event ids are already the
   * stream's events at that point returns the first result and writes nothing: with a numeric
   * expected revision or `'no_stream'`, at the revisions the first attempt got; with `'any'` or
   * `'stream_exists'`, when they are the stream's last events.
   */
  appendToStream(streamId: string, events: readonly EventData[], options: AppendOptions = {}): Promise<AppendResult> {
    if (typeof options !== 'object' || options === null) {
      return Promise.reject(new ValidationError([{ path: 'options', constraint: 'isObject', message: "must be an object such as { expectedRevision: 'any' }" }]));
    }
    const request: AppendRequest = { streamId, events, expectedRevision: options.expectedRevision ?? 'any' };
    return this.append([request], () => '').then((results) => results[0]!);
  }

  /**
   * Appends to several streams in one atomic batch: after a crash either all of it is there or
   * none. Each request has its own expected revision; if any does not hold, nothing is written.
   * A retry is recognised only as a whole (every request a retry of the same earlier append).
   */
  appendMany(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    if (!Array.isArray(requests) || requests.length === 0) {
      return Promise.reject(new ValidationError([{ path: 'requests', constraint: 'isNonEmptyArray', message: 'must be a non-empty array of { streamId, events, expectedRevision? }' }]));
    }
    return this.append(requests, (i) => `requests[${i}].`);
  }

  private async append(requests: readonly AppendRequest[], prefixOf: (i: number) => string, skipRetryCheck = false, system = false): Promise<AppendResult[]> {
    this.assertOpen();
    if (this.options.readOnly) throw new ReadOnlyError('append');
    const refused = this.tiering_?.fenced ?? this.tiering_?.diskFull(this.log.unsealedBytes);
    if (refused !== undefined) throw refused;
    // Appends outrunning the stream index's database wait for it (see StreamIndex.backpressure).
    for (let wait = this.index.backpressure(); wait !== undefined; wait = this.index.backpressure()) {
      await wait;
      this.assertOpen();
    }
    const { requests: prepared, maxBodyBytes } = this.validator.prepare(requests, prefixOf, system);
    // Synchronous from here to log.append: nothing else can append in between.
    const heads = prepared.map((r) => this.index.head(r.streamId));
    const checks = prepared.map((r, i) => check(r, heads[i], skipRetryCheck));
    if (checks.some((c) => c !== 'ok')) return this.resolveRetryOrConflict(requests, prepared, heads, checks, prefixOf, system);
    const encoder = this.encoder;
    encoder.begin(maxBodyBytes);
    const appended = prepared.map((request, i) => {
      const firstRevision = (heads[i]?.revision ?? -1) + 1;
      request.events.forEach((event, k) => encoder.add(request.streamId, event, firstRevision + k));
      return { streamId: request.streamId, firstRevision, eventIds: request.events.map((e) => e.id) };
    });
    const receipt = this.log.appendFramed(encoder.body(), encoder.count);
    this.index.recordAppend(receipt.segmentBase, receipt.basePosition, receipt.byteOffset, appended);
    await receipt.committed;
    let position = receipt.basePosition - 1;
    return appended.map((a) => {
      position += a.eventIds.length;
      return { nextExpectedRevision: a.firstRevision + a.eventIds.length - 1, position };
    });
  }

  /**
   * The slow path of an append whose check did not pass outright: either it repeats an earlier
   * append (same event ids at the same revisions: return that append's result), or it conflicts.
   */
  private async resolveRetryOrConflict(
    requests: readonly AppendRequest[],
    prepared: PreparedRequest[],
    heads: (IndexHead | undefined)[],
    checks: Check[],
    prefixOf: (i: number) => string,
    system: boolean,
  ): Promise<AppendResult[]> {
    const results: (AppendResult | undefined)[] = [];
    for (const [i, request] of prepared.entries()) {
      results.push(checks[i] === 'maybe_retry' ? await this.earlierResult(request, heads[i]!) : undefined);
    }
    if (results.every((r) => r !== undefined)) return results as AppendResult[];
    // A conflict: a failed check, or a suspected retry that was not one, unless it expected
    // 'any'/'stream_exists' (then its last id merely matched and it may go ahead).
    const conflict = prepared.findIndex(
      (r, i) => checks[i] === 'conflict' || (checks[i] === 'maybe_retry' && results[i] === undefined && r.expectedRevision !== 'any' && r.expectedRevision !== 'stream_exists'),
    );
    // Else a retry of part of the batch only: the batch as a whole conflicts at that request.
    const blamed = conflict >= 0 ? conflict : prepared.findIndex((_, i) => results[i] !== undefined);
    if (blamed >= 0) {
      const { streamId, expectedRevision } = prepared[blamed]!;
      throw new WrongExpectedRevisionError(streamId, expectedRevision, this.index.head(streamId)?.revision ?? 'no_stream');
    }
    // Only 'any'/'stream_exists' requests whose last id merely matched: not retries after all.
    return this.append(requests, prefixOf, true, system);
  }

  /** The result of the earlier append this one repeats, or undefined when it repeats none. */
  private async earlierResult(request: PreparedRequest, head: IndexHead): Promise<AppendResult | undefined> {
    const count = request.events.length;
    const expected = request.expectedRevision;
    const fromRevision = typeof expected === 'number' ? expected + 1 : expected === 'no_stream' ? 0 : head.revision - count + 1;
    if (fromRevision < 0 || fromRevision + count - 1 > head.revision) return undefined;
    await this.log.waitForCommit(head.position);
    let i = 0;
    let last: RecordedEvent | undefined;
    for await (const event of readStream(this.reads, request.streamId, { fromRevision, maxCount: count })) {
      if (event.id !== request.events[i++]!.id) return undefined;
      last = event;
    }
    return i === count && last !== undefined ? { nextExpectedRevision: last.revision, position: last.position } : undefined;
  }

  /**
   * Reads one stream's events page by page. A stream without events yields nothing (use
   * {@link streamHead} to tell a missing stream apart). `fromRevision` is inclusive.
   */
  readStream(streamId: string, options: ReadStreamOptions = {}): AsyncIterableIterator<RecordedEvent> {
    return readStream(this.reads, streamId, options);
  }

  /** Reads events of all streams in position order, page by page. `fromPosition` is inclusive. */
  readAll(options: ReadAllOptions = {}): AsyncIterableIterator<RecordedEvent> {
    return readAll(this.reads, options);
  }

  /**
   * All events (`$all`, or those matching `filter`) as an Observable: history from `from`
   * (inclusive; default `'start'`), then live events as they are acknowledged, with no gap and no
   * duplicate at the switch. Memory is bounded whatever the subscriber's speed: a subscriber
   * that falls behind keeps reading history. Completes when the store closes; unsubscribing
   * releases everything. Throws ValidationError for bad options.
   *
   * @example
   * store.subscribe({ from: 'end', filter: { streamPrefix: 'order-' } }).subscribe((e) => console.log(e.position, e.type));
   */
  subscribe(options: SubscribeOptions = {}): Observable<RecordedEvent> {
    return eventsOf(subscribeMessages(this.subscriptions, options));
  }

  /**
   * {@link subscribe}, with the signals: `{ type: 'event', event }`, `{ type: 'caughtUp',
   * position }` when history is exhausted (live from there), `{ type: 'fellBehind', position,
   * lag }` when the commit position ran more than `maxLagEvents` ahead, and, for filtered
   * subscriptions, `{ type: 'checkpoint', position }` after each page read (progress through
   * events that do not match).
   */
  subscribeMessages(options: SubscribeOptions = {}): Observable<SubscriptionMessage> {
    return subscribeMessages(this.subscriptions, options);
  }

  /** One stream's events from `fromRevision` (inclusive; default `'start'`), then live. See {@link subscribe}. */
  subscribeToStream(streamId: string, options: StreamSubscribeOptions = {}): Observable<RecordedEvent> {
    return eventsOf(subscribeToStreamMessages(this.subscriptions, streamId, options));
  }

  /** {@link subscribeToStream} with the `caughtUp` and `fellBehind` signals (see {@link subscribeMessages}). */
  subscribeToStreamMessages(streamId: string, options: StreamSubscribeOptions = {}): Observable<SubscriptionMessage> {
    return subscribeToStreamMessages(this.subscriptions, streamId, options);
  }

  /**
   * Folds a stream into state: `{ state, revision }` after its last event (`revision` is
   * `'no_stream'` for a stream without events; pass it as `expectedRevision` as it is). With
   * `snapshots`, loads the newest snapshot of that `schemaVersion` and folds only the events
   * after it, and takes a snapshot after folding `everyEvents` (default 100) events or a load
   * slower than `whenLoadSlowerThanMs`. Snapshots live in the system stream
   * `$snapshot-<streamId>`; a damaged one is skipped for a full replay.
   *
   * @example
   * const { state, revision } = await store.aggregateStream('cart-7', {
   *   initialState: { items: 0 },
   *   evolve: (s, e) => (e.type === 'ItemAdded' ? { items: s.items + 1 } : s),
   *   snapshots: { schemaVersion: 1, everyEvents: 500 },
   * });
   */
  aggregateStream<State>(streamId: string, options: AggregateOptions<State>): Promise<AggregateState<State>> {
    return aggregateStream(this.aggregates, streamId, options);
  }

  /**
   * {@link aggregateStream} as an Observable: emits the folded state, then the new state after
   * each event appended to the stream (taking a snapshot every `everyEvents` events).
   * Completes when the store closes.
   */
  aggregate$<State>(streamId: string, options: AggregateOptions<State>): Observable<AggregateState<State>> {
    return aggregate$(this.aggregates, streamId, options);
  }

  private get aggregates(): AggregateContext {
    return (this.aggregateContext ??= {
      readStream: (streamId, options) => this.readStream(streamId, options),
      streamHead: (streamId) => this.streamHead(streamId),
      subscribeToStream: (streamId, fromRevision) => this.subscribeToStream(streamId, { fromRevision }),
      appendSnapshot: (streamId, snapshot) => this.appendSystem('snapshot', snapshotStreamOf(streamId), SNAPSHOT_EVENT_TYPE, snapshot),
      clock: this.options.clock,
    });
  }

  private aggregateContext: AggregateContext | undefined;

  /**
   * Appends one event to one of the store's own ('$') streams, which applications cannot write.
   * `what` prefixes the paths of a ValidationError (e.g. `snapshot.events[0].data`).
   */
  private async appendSystem(what: string, streamId: string, type: string, data: unknown): Promise<void> {
    await this.append([{ streamId, events: [{ type, data }] }], () => `${what}.`, false, true);
  }

  /**
   * A durable consumer named `name`: a subscription that resumes after its checkpoint, kept in
   * the store (system stream `$consumer-<name>`); at-least-once. Each event message carries a
   * `commit()`: in `'auto'` mode (default) an event counts as handled when `next` returns, in
   * `'manual'` mode when `commit()` is called (asynchronous handlers). At most `maxInFlight`
   * uncommitted events are delivered before reading pauses, so memory stays bounded. Fails with
   * ConsumerActiveError while another consumer of that name runs in this store.
   *
   * @example
   * store.consumer('emails', { commit: 'manual' }).pipe(
   *   filter((m) => m.type === 'event'),
   *   concatMap(async (m) => { await sendEmail(m.event); m.commit(); }),
   * ).subscribe();
   */
  consumer(name: string, options: ConsumerOptions = {}): Observable<ConsumerMessage> {
    return consume(this.consumers, name, options);
  }

  /**
   * Runs a projection: `handle` for each event on the consumer `name`, one at a time, each
   * committed once its handler resolves (with an idempotent handler, the read model equals a
   * full replay after any restart). `caughtUp` resolves once it has handled what was there at
   * the start; `stop()` waits for the event in hand and writes the checkpoint.
   */
  project(name: string, handle: (event: RecordedEvent) => void | Promise<void>, options: Omit<ConsumerOptions, 'commit'> = {}): Projection {
    return project(this.consumers, name, handle, options);
  }

  private get consumers(): ConsumerContext {
    this.consumerContext ??= {
      ...this.subscriptions,
      active: new Set(),
      pendingWrites: new Map(),
      onClosing: (hook) => {
        this.closingHooks.add(hook);
        return () => this.closingHooks.delete(hook);
      },
      readCheckpoint: async (name) => {
        // A consumer of the same name that just stopped may still be writing its last one.
        await this.consumerContext?.pendingWrites.get(name);
        for await (const event of this.readStream(consumerStreamOf(name), { direction: 'backwards', maxCount: 1 })) {
          const { position } = event.data as { position?: unknown };
          if (Number.isSafeInteger(position)) return position as number;
        }
        return undefined;
      },
      writeCheckpoint: (name, position) => this.appendSystem('checkpoint', consumerStreamOf(name), CHECKPOINT_EVENT_TYPE, { position }),
    };
    return this.consumerContext;
  }

  private consumerContext: ConsumerContext | undefined;

  /** The stream's last acknowledged event's revision and position, or undefined when it has none. */
  async streamHead(streamId: string): Promise<StreamHead | undefined> {
    this.assertOpen();
    const head = this.index.head(streamId);
    if (head === undefined) return undefined;
    await this.log.waitForCommit(head.position);
    return { revision: head.revision, position: head.position };
  }

  /** Position the next appended event will get (= number of events ever appended). */
  get nextPosition(): number {
    return this.log.nextPosition;
  }

  /** Positions below this are acknowledged and readable. */
  get commitPosition(): number {
    return this.log.commitEnd;
  }

  /** Resolves once everything appended so far is acknowledged and fdatasync'd, whatever the durability policy. */
  async flush(): Promise<void> {
    this.assertOpen();
    await this.log.flush();
  }

  private closing: Promise<void> | undefined;

  /**
   * Waits for pending appends, syncs, checkpoints the index and releases the directory.
   * Idempotent: every call returns the same promise. Rejects with StoreFailedError when the final
   * sync failed (under `'interval'`/`'none'` durability, appends since the last sync may then be
   * lost); the directory is released either way.
   */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    // Consumers write their last checkpoints while appends are still accepted.
    await Promise.allSettled([...this.closingHooks].map((hook) => hook()));
    this.closed = true;
    this.stopCheckpointing();
    for (const complete of [...this.closeListeners]) complete(); // Every subscription completes.
    let failure: unknown;
    await this.tiering_?.close().catch(() => {}); // An upload in flight is redone on the next open.
    try {
      await this.log.close(); // Rejects with StoreFailedError when the final sync fails.
    } catch (err) {
      failure = err;
    }
    try {
      // The index is derived data: what it cannot flush now, the next open reads from the log.
      // Closed (its background flush settled, its database closed) before the lock is released,
      // on the failure path too: another process may open the directory as soon as it is.
      await this.index.close(failure === undefined && this.log.commitEnd === this.log.nextPosition);
    } catch (err) {
      failure ??= new StoreFailedError(err);
    } finally {
      this.lock.release();
    }
    if (failure !== undefined) throw failure;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }
}

/** Creates the store directory (durably: its entry is synced into its parent), or explains why it cannot be one. */
async function createDirectory(dir: string): Promise<void> {
  try {
    const made = await fs.promises.mkdir(dir, { recursive: true });
    if (made !== undefined) await fsyncDir(path.dirname(path.resolve(dir)));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EROFS') {
      throw new InvalidOptionsError([{ path: 'options.dir', constraint: 'isDirectory', message: `cannot be used as the store directory (${code}): give a directory path that can be created and written` }]);
    }
    throw err;
  }
}

/** Compares an append's expected revision with the stream's head. */
function check(request: PreparedRequest, head: IndexHead | undefined, skipRetryCheck: boolean): Check {
  const expected: ExpectedRevision = request.expectedRevision;
  const lastId = request.events[request.events.length - 1]!.id;
  const maybeRetry = (): Check => (!skipRetryCheck && head !== undefined && head.lastEventId === lastId ? 'maybe_retry' : 'ok');
  switch (expected) {
    case 'any':
      return maybeRetry();
    case 'stream_exists':
      return head === undefined ? 'conflict' : maybeRetry();
    case 'no_stream':
      return head === undefined ? 'ok' : 'maybe_retry';
    default:
      if (head?.revision === expected) return 'ok';
      return head !== undefined && head.revision > expected ? 'maybe_retry' : 'conflict';
  }
}
