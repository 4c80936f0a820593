/**
 * Durable consumers: a named subscription whose progress (checkpoint) is kept in the store, in
 * the system stream `$consumer-<name>`, so it is durable, tiered and restorable with the events
 * themselves. A consumer resumes after its checkpoint: at-least-once delivery (events handled
 * after the last checkpoint are delivered again after a crash; make handlers idempotent).
 *
 * Each event arrives with a `commit()`. In `'auto'` mode (default) an event counts as handled
 * once the subscriber's `next` returns (synchronous handlers); in `'manual'` mode once `commit()`
 * is called (asynchronous handlers, e.g. in `concatMap`). The checkpoint is the position of the
 * first event not yet committed (commits may come out of order, as from `mergeMap`), or the end
 * of what was read when all are: filtered consumers make progress through events they skip.
 * It is written after `checkpointEveryEvents` commits or `checkpointEveryMs` after the first
 * one not yet written, and when the consumer stops or the store closes.
 *
 * Memory stays bounded whatever the handler's speed: with more than `maxInFlight` events
 * delivered and not committed, the consumer stops reading the log until commits catch up.
 */
import { Observable, Subject, asyncScheduler, type SchedulerLike, type Subscription } from 'rxjs';
import { ConsumerActiveError, StoreClosedError, ValidationError, type ValidationFailure } from '../errors.js';
import { checkFilter, checkOptionsObject, checkPositiveInteger } from '../store/option-checks.js';
import type { EventFilter, RecordedEvent } from '../store/types.js';
import { checkpointPolicy } from './checkpoint-policy.js';
import { subscribeMessages, type SubscriptionContext, type SubscriptionMessage } from './subscribe.js';

export interface ConsumerOptions {
  /** Which events (as `subscribe`'s filter). */
  readonly filter?: EventFilter;
  /** Where a consumer without a checkpoint starts: `'start'` (default) or `'end'`. */
  readonly startFrom?: 'start' | 'end';
  /** `'auto'` (default): handled when `next` returns; `'manual'`: when `commit()` is called. */
  readonly commit?: 'auto' | 'manual';
  /** Write the checkpoint after this many commits. Default 100. */
  readonly checkpointEveryEvents?: number;
  /** ... or this long after the first commit not yet written. Default 1,000 ms. */
  readonly checkpointEveryMs?: number;
  /** Events delivered and not committed before reading pauses. Default 1,000. */
  readonly maxInFlight?: number;
  readonly maxLagEvents?: number;
  /** Scheduler of the checkpoint timer (a VirtualTimeScheduler in tests). Default: asyncScheduler. */
  readonly scheduler?: SchedulerLike;
}

/** What a consumer delivers: events with their `commit`, and the subscription signals. */
export type ConsumerMessage =
  | { readonly type: 'event'; readonly event: RecordedEvent; commit(): void }
  | Exclude<SubscriptionMessage, { type: 'event' } | { type: 'checkpoint' }>;

/** What consumers need of the store. */
export interface ConsumerContext extends SubscriptionContext {
  /** The stored checkpoint of `name` (the position to resume from), or undefined. */
  readCheckpoint(name: string): Promise<number | undefined>;
  writeCheckpoint(name: string, position: number): Promise<void>;
  /** Runs `hook` (awaited) when the store closes, before it stops accepting appends. */
  onClosing(hook: () => Promise<void>): () => void;
  /** Names of the consumers running in this store. */
  readonly active: Set<string>;
  /** Each consumer's checkpoint writes so far (resolves once they are done). */
  readonly pendingWrites: Map<string, Promise<void>>;
}

export const CHECKPOINT_EVENT_TYPE = '$checkpoint';

export function consumerStreamOf(name: string): string {
  return `$consumer-${name}`;
}

function checkOptions(name: unknown, givenOptions: ConsumerOptions | null | undefined): ConsumerOptions {
  const failures: ValidationFailure[] = [];
  const options = checkOptionsObject(givenOptions, failures);
  checkFilter(options.filter, failures);
  checkPositiveInteger(options.maxLagEvents, 'options.maxLagEvents', failures);
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > 200 || /\p{Cc}/u.test(name)) {
    failures.push({ path: 'name', constraint: 'isName', message: 'must be a non-empty string of at most 200 bytes without control characters' });
  }
  for (const key of ['checkpointEveryEvents', 'checkpointEveryMs', 'maxInFlight'] as const) checkPositiveInteger(options[key], `options.${key}`, failures);
  if (options.commit !== undefined && options.commit !== 'auto' && options.commit !== 'manual') failures.push({ path: 'options.commit', constraint: 'isMode', message: "must be 'auto' or 'manual'" });
  if (options.startFrom !== undefined && options.startFrom !== 'start' && options.startFrom !== 'end') failures.push({ path: 'options.startFrom', constraint: 'isStart', message: "must be 'start' or 'end'" });
  if (failures.length > 0) throw new ValidationError(failures);
  return options;
}

/** Events delivered and not yet committed, in position order. */
class InFlight {
  private readonly positions: number[] = [];
  private readonly done: boolean[] = [];
  private head = 0;

  get size(): number {
    return this.positions.length - this.head;
  }

  add(position: number): void {
    this.positions.push(position);
    this.done.push(false);
  }

  /** Marks the event at `position` (one that was added) committed. */
  commit(position: number): void {
    this.done[this.slotOf(position)] = true;
    while (this.head < this.positions.length && this.done[this.head]) this.head++;
    if (this.head > 1024 && this.head * 2 > this.positions.length) {
      this.positions.splice(0, this.head);
      this.done.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Where `position` is in the arrays (which compaction shifts, so it is searched each time). */
  private slotOf(position: number): number {
    let lo = this.head;
    let hi = this.positions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.positions[mid]! < position) lo = mid + 1;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Position of the first event not committed, or undefined when all are. */
  get first(): number | undefined {
    return this.head < this.positions.length ? this.positions[this.head] : undefined;
  }
}

/** A durable consumer; see EventStore.consumer. */
export function consume(context: ConsumerContext, name: string, givenOptions?: ConsumerOptions | null): Observable<ConsumerMessage> {
  const options = checkOptions(name, givenOptions);
  return new Observable<ConsumerMessage>((subscriber) => {
    if (context.isClosing()) {
      subscriber.error(new StoreClosedError());
      return;
    }
    if (context.active.has(name)) {
      subscriber.error(new ConsumerActiveError(name));
      return;
    }
    context.active.add(name);
    const manual = options.commit === 'manual';
    const maxInFlight = options.maxInFlight ?? 1000;
    const inFlight = new InFlight();
    const commits = new Subject<number>();
    let readEnd = 0;
    let lastOffered = -1;
    let release: (() => void) | undefined;
    let writes: Promise<void> = Promise.resolve();
    let inner: Subscription | undefined;
    let finished = false;

    const offer = (): void => {
      const safe = inFlight.first ?? readEnd;
      if (safe > lastOffered) {
        lastOffered = safe;
        commits.next(safe);
      }
      if (inFlight.size <= maxInFlight && release !== undefined && !finished) {
        const resume = release;
        release = undefined;
        resume();
      }
    };
    const checkpoints = commits.pipe(checkpointPolicy(options.checkpointEveryEvents ?? 100, options.checkpointEveryMs ?? 1000, options.scheduler ?? asyncScheduler)).subscribe((position) => {
      writes = writes.then(() => context.writeCheckpoint(name, position)).catch((err: unknown) => subscriber.error(err));
      context.pendingWrites.set(name, writes);
    });
    const finish = (): Promise<void> => {
      if (!finished) {
        finished = true;
        inner?.unsubscribe();
        if (inFlight.first === undefined) offer(); // Skipped-over progress too.
        commits.complete(); // Writes the last checkpoint.
        checkpoints.unsubscribe();
        context.active.delete(name);
      }
      return writes;
    };
    const offClosing = context.onClosing(async () => {
      await finish();
      subscriber.complete();
    });
    const gate = (): Promise<void> | undefined => (inFlight.size > maxInFlight ? new Promise<void>((resolve) => (release = resolve)) : undefined);

    context.readCheckpoint(name).then(
      (stored) => {
        if (finished) return;
        const from = stored ?? (options.startFrom === 'end' ? context.log.commitEnd : context.log.startPosition);
        // Progress starts where the consumer resumes: the checkpoint never moves backwards.
        readEnd = lastOffered = from;
        inner = subscribeMessages(context, { from, filter: options.filter ?? {}, maxLagEvents: options.maxLagEvents }, gate).subscribe({
          next: (message) => {
            if (message.type === 'checkpoint') {
              // Progress through skipped events (the consumer's own checkpoint events among
              // them) is saved with the next commit or at the end, not on its own: otherwise an
              // idle consumer would write a checkpoint for its own checkpoint, forever.
              readEnd = message.position;
            } else if (message.type === 'event') {
              const position = message.event.position;
              inFlight.add(position);
              readEnd = Math.max(readEnd, position + 1); // Everything before it was delivered or skipped.
              let committed = false;
              const commit = (): void => {
                if (committed) return;
                committed = true;
                inFlight.commit(position);
                offer();
              };
              subscriber.next({ type: 'event', event: message.event, commit });
              if (!manual) commit();
            } else {
              subscriber.next(message);
            }
          },
          error: (err: unknown) => subscriber.error(err),
          complete: () => void finish().then(() => subscriber.complete()),
        });
      },
      (err: unknown) => subscriber.error(err),
    );
    return () => {
      offClosing();
      void finish();
    };
  });
}

/** A running projection; see EventStore.project. */
export interface Projection {
  /** Resolves when the projection has handled everything there was when it started (at its first caughtUp). */
  readonly caughtUp: Promise<number>;
  /** Resolves with the error that stopped the projection, if one does (never rejects). */
  readonly failure: Promise<unknown>;
  /** Stops after the event being handled and writes the checkpoint. */
  stop(): Promise<void>;
}

/**
 * Runs `handle` for each event on the consumer `name`, one at a time, committing each after its
 * handler resolves. A handler that throws stops the projection (its event is not committed, so
 * it is delivered again on the next start).
 */
export function project(context: ConsumerContext, name: string, handle: (event: RecordedEvent) => void | Promise<void>, options: Omit<ConsumerOptions, 'commit'> = {}): Projection {
  if (typeof handle !== 'function') throw new ValidationError([{ path: 'handle', constraint: 'isFunction', message: 'must be a function (event) => void | Promise<void>' }]);
  let caughtUp!: (position: number) => void;
  let notCaughtUp!: (err: unknown) => void;
  let failed!: (err: unknown) => void;
  const caughtUpPromise = new Promise<number>((resolve, reject) => {
    caughtUp = resolve;
    notCaughtUp = reject;
  });
  caughtUpPromise.catch(() => {}); // Rejected only for callers that await it.
  const failure = new Promise<unknown>((resolve) => (failed = resolve));
  let chain: Promise<void> = Promise.resolve();
  let stopped = false;
  const fail = (err: unknown): void => {
    if (stopped) return;
    stopped = true;
    subscription.unsubscribe();
    notCaughtUp(err);
    failed(err);
  };
  const subscription = consume(context, name, { ...options, commit: 'manual' }).subscribe({
    next: (message) => {
      if (message.type === 'caughtUp') {
        const position = message.position;
        chain = chain.then(() => caughtUp(position));
      } else if (message.type === 'event') {
        // Every link handles its own failure: the chain itself never rejects.
        chain = chain
          .then(async () => {
            if (stopped) return;
            await handle(message.event);
            message.commit();
          })
          .catch(fail);
      }
    },
    error: (err: unknown) => fail(err),
    complete: () => void chain.then(() => notCaughtUp(new StoreClosedError('The projection'))),
  });
  return {
    caughtUp: caughtUpPromise,
    failure,
    stop: async () => {
      stopped = true;
      await chain;
      subscription.unsubscribe(); // Writes the last checkpoint.
      notCaughtUp(new StoreClosedError('The projection'));
      await context.pendingWrites.get(name);
    },
  };
}
