/**
 * Live subscriptions as RxJS Observables: catch-up from a position, then live, with no gap and
 * no duplicate at the switch, and memory bounded whatever the subscriber's speed.
 *
 * The log is the single source of truth for delivery. A subscription holds one number, the next
 * position to consider, and reads committed pages of the log from it, in catch-up and in live
 * mode alike; a commit only wakes it up. Positions are dense, so nothing can be skipped or
 * delivered twice, and at most one page (about 256 KiB of log) is held per subscription. A
 * subscriber slow enough that the commit position runs more than `maxLagEvents` ahead of it is
 * told so (`fellBehind`) and simply keeps reading history page by page until it has caught up
 * again (`caughtUp`); nothing is buffered for it meanwhile.
 *
 * Events are delivered only once they are acknowledged under the store's durability policy.
 * `from` is inclusive, as `readAll`'s `fromPosition`: to resume after a checkpoint `p`, pass
 * `p + 1`.
 */
import { Observable, filter, map, observeOn, type SchedulerLike } from 'rxjs';
import { StoreClosedError, ValidationError, type ValidationFailure } from '../errors.js';
import type { SegmentLog } from '../log/segment-log.js';
import { decodeEvent, decodeRecordHead } from '../store/codec.js';
import { checkFilter, checkOptionsObject, checkPosition, checkPositiveInteger } from '../store/option-checks.js';
import { compileFilter, readStream, type ReadContext } from '../store/reads.js';
import type { EventFilter, RecordedEvent } from '../store/types.js';

/** What a subscription tells its subscriber, in order. */
export type SubscriptionMessage =
  | { readonly type: 'event'; readonly event: RecordedEvent }
  /** Every acknowledged event before `position` has been delivered; live from here. */
  | { readonly type: 'caughtUp'; readonly position: number }
  /** The commit position ran `lag` events ahead of the subscriber: it reads history again. */
  | { readonly type: 'fellBehind'; readonly position: number; readonly lag: number }
  /** Filtered subscriptions, after each page: every event before `position` has been considered. */
  | { readonly type: 'checkpoint'; readonly position: number };

export interface SubscribeOptions {
  /** First position to deliver (inclusive): `'start'` (default), `'end'` (only events appended from now on), or a position. */
  readonly from?: 'start' | 'end' | number;
  /** Only events of streams with one of these prefixes and/or of these types. */
  readonly filter?: EventFilter;
  /** How far (in events) the commit position may run ahead of a live subscriber before it falls behind. Default 10,000. */
  readonly maxLagEvents?: number;
  /** Deliver on this scheduler (for instance a TestScheduler in tests). Default: as pages are read. */
  readonly scheduler?: SchedulerLike;
}

export interface StreamSubscribeOptions {
  /** First revision to deliver (inclusive): `'start'` (default), `'end'` (only events appended from now on), or a revision. */
  readonly fromRevision?: 'start' | 'end' | number;
  readonly maxLagEvents?: number;
  readonly scheduler?: SchedulerLike;
}

/** What subscriptions need of the store. */
export interface SubscriptionContext {
  readonly log: SegmentLog;
  readonly reads: ReadContext;
  /** Calls `listener` when the store closes; returns an unsubscribe. */
  onClose(listener: () => void): () => void;
  /** True once the store has started closing: new subscriptions fail with StoreClosedError. */
  isClosing(): boolean;
}

export const DEFAULT_MAX_LAG_EVENTS = 10_000;
const PAGE_BYTES = 256 * 1024;

type Matcher = (record: Buffer) => boolean;

/** The state shared by a subscription's reading loop and its teardown. */
class Pump {
  stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly log: SegmentLog,
    private readonly emit: (message: SubscriptionMessage) => void,
    private readonly maxLagEvents: number,
    /** Called after each page: a promise holds the next read back (backpressure for consumers). */
    private readonly gate?: () => Promise<void> | undefined,
  ) {}

  emitEvent(event: RecordedEvent): void {
    this.emit({ type: 'event', event });
  }

  /** Wakes the loop if it waits for a commit (or for nothing, when stopped). */
  poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /**
   * Reads and delivers from `position` on until stopped; live once it reaches the commit
   * position. With `checkpoints`, reports progress after each page (filtered subscriptions).
   */
  async run(position: number, matches: Matcher | undefined, checkpoints = false): Promise<void> {
    const { log } = this;
    let live = false;
    for (;;) {
      const batches = await log.readForward(Math.max(position, log.startPosition), PAGE_BYTES);
      if (this.stopped) return;
      if (batches.length === 0) {
        if (log.failed !== undefined) return; // Nothing more will be committed; reported by the caller.
        if (!live) {
          live = true;
          this.emit({ type: 'caughtUp', position });
        }
        await this.nextCommit(position);
        if (this.stopped || log.failed !== undefined) return;
        continue;
      }
      const lag = log.commitEnd - position;
      if (live && lag > this.maxLagEvents) {
        live = false;
        this.emit({ type: 'fellBehind', position, lag });
      }
      for (const batch of batches) {
        for (let i = Math.max(0, position - batch.basePosition); i < batch.recordCount; i++) {
          const record = batch.records[i]!;
          if (matches !== undefined && !matches(record)) continue;
          this.emit({ type: 'event', event: decodeEvent(record, batch.basePosition + i, batch.timestamp) });
          if (this.stopped) return;
        }
        position = batch.basePosition + batch.recordCount;
      }
      if (checkpoints) this.emit({ type: 'checkpoint', position });
      const held = this.gate?.();
      if (held !== undefined) {
        await held;
        if (this.stopped) return;
      }
    }
  }

  private nextCommit(position: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      // A commit may have landed between the empty read and now.
      if (this.log.commitEnd > position || this.stopped) this.poke();
    });
  }
}

/** Runs `body` as an Observable of messages, wiring store close, commits and teardown. */
function subscription(
  context: SubscriptionContext,
  maxLagEvents: number | undefined,
  scheduler: SchedulerLike | undefined,
  body: (pump: Pump) => Promise<void>,
  gate?: () => Promise<void> | undefined,
): Observable<SubscriptionMessage> {
  const messages = new Observable<SubscriptionMessage>((subscriber) => {
    if (context.isClosing()) {
      subscriber.error(new StoreClosedError());
      return;
    }
    const pump = new Pump(context.log, (message) => subscriber.next(message), maxLagEvents ?? DEFAULT_MAX_LAG_EVENTS, gate);
    const offCommit = context.log.onCommit(() => pump.poke());
    const offClose = context.onClose(() => {
      pump.stopped = true;
      pump.poke();
      subscriber.complete();
    });
    body(pump).then(
      () => {
        // A failed log wakes the loop with no new commits: report the failure.
        if (!pump.stopped && context.log.failed !== undefined) subscriber.error(context.log.failed);
      },
      (err: unknown) => {
        if (pump.stopped) return;
        if (err instanceof StoreClosedError) subscriber.complete();
        else subscriber.error(err);
      },
    );
    return () => {
      pump.stopped = true;
      offCommit();
      offClose();
      pump.poke();
    };
  });
  return scheduler === undefined ? messages : messages.pipe(observeOn(scheduler));
}

/**
 * Messages of a subscription to all streams (`$all`); see EventStore.subscribeMessages.
 * `gate`, called after each page read, may return a promise that holds the next read back.
 */
export function subscribeMessages(context: SubscriptionContext, givenOptions?: SubscribeOptions | null, gate?: () => Promise<void> | undefined): Observable<SubscriptionMessage> {
  const failures: ValidationFailure[] = [];
  const options = checkOptionsObject(givenOptions, failures);
  checkPosition(options.from, 'options.from', failures);
  checkPositiveInteger(options.maxLagEvents, 'options.maxLagEvents', failures);
  checkFilter(options.filter, failures);
  if (failures.length > 0) throw new ValidationError(failures);
  context.reads.assertOpen();
  const matches = compileFilter(options.filter);
  return subscription(context, options.maxLagEvents, options.scheduler, (pump) => {
    const { log } = context;
    const from = options.from === 'end' ? log.commitEnd : options.from === 'start' || options.from === undefined ? log.startPosition : options.from;
    return pump.run(from, matches, options.filter !== undefined);
  }, gate);
}

/**
 * Messages of a subscription to one stream; see EventStore.subscribeToStreamMessages. History
 * comes through the stream index (only the stream's batches are read), up to the commit
 * position of the moment the index was read; from there on it goes on live.
 */
export function subscribeToStreamMessages(context: SubscriptionContext, streamId: string, givenOptions?: StreamSubscribeOptions | null): Observable<SubscriptionMessage> {
  const failures: ValidationFailure[] = [];
  const options = checkOptionsObject(givenOptions, failures);
  if (typeof streamId !== 'string' || streamId.length === 0) failures.push({ path: 'streamId', constraint: 'isString', message: 'must be a non-empty string' });
  checkPosition(options.fromRevision, 'options.fromRevision', failures);
  checkPositiveInteger(options.maxLagEvents, 'options.maxLagEvents', failures);
  if (failures.length > 0) throw new ValidationError(failures);
  context.reads.assertOpen();
  return subscription(context, options.maxLagEvents, options.scheduler, async (pump) => {
    const { log } = context;
    let liveFrom = log.commitEnd;
    let fromRevision = 0;
    // 'end': every event of the stream acknowledged from now on (by position, not revision:
    // the index's head counts appends still in flight, which are acknowledged after this).
    if (options.fromRevision !== 'end') {
      fromRevision = options.fromRevision === 'start' || options.fromRevision === undefined ? 0 : options.fromRevision;
      const history = readStream(context.reads, streamId, { fromRevision }, { onSnapshot: (end) => (liveFrom = end) });
      for await (const event of history) {
        pump.emitEvent(event);
        if (pump.stopped) return;
      }
    }
    const inStream: Matcher = (record) => {
      const head = decodeRecordHead(record);
      return head.streamId === streamId && head.revision >= fromRevision;
    };
    await pump.run(liveFrom, inStream);
  });
}

/** Only the events of a message stream. */
export function eventsOf(messages: Observable<SubscriptionMessage>): Observable<RecordedEvent> {
  return messages.pipe(
    filter((message): message is Extract<SubscriptionMessage, { type: 'event' }> => message.type === 'event'),
    map((message) => message.event),
  );
}
