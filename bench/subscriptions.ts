/**
 * The subscription and aggregate workloads.
 *   S1: append-to-delivery latency of a live subscriber (`subscribe({ from: 'end' })`): one
 *       writer appends one event at a time, awaiting each append; each event's latency runs from
 *       just before its `appendToStream` call to its arrival in the subscriber's `next`. Also
 *       with a writer that yields to the event loop (setImmediate) after each append: an append
 *       that completes without I/O callbacks (durability 'none') lets a writer that only awaits
 *       appends hold the event loop, and with it the subscriber's reads, until it stops;
 *   S2: catch-up throughput of `subscribeMessages({ from: 'start' })` over the W3 dataset, up to
 *       the first 'caughtUp', against `readAll()` of the same data, interleaved in the same run;
 *   S3: `aggregateStream` of one long stream, replayed in full and from a snapshot.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Subscription } from 'rxjs';
import { EventStore, snapshotStreamOf, type AggregateOptions, type Durability, type RecordedEvent } from '../lib/index.js';
import { EVENT_TYPE, orderData, orderEvent, orderEvents, orderNumberOf, type OrderPlaced } from './payload.js';
import { readAllEvents } from './reads.js';
import { latencySummary, median, round } from './report.js';
import { alternate, interleaved, type Comparison, type Sample } from './sampling.js';

/** How long the subscriber may take, after the last append, to receive everything. */
const DELIVERY_TIMEOUT_MS = 10_000;

export interface S1Result {
  readonly events: number;
  /** Append call to delivery, per event. */
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  /** Append call to its promise resolving, per event (the writer's side). */
  readonly append_p50_ms: number;
  readonly append_p99_ms: number;
  /** Events per burst of `next` calls (one synchronous run, one page of the log), mean. */
  readonly events_per_delivery_burst: number;
  /** Events delivered before the writer's last append resolved, of all `warmup + events`. */
  readonly delivered_while_writing: number;
  /** The writer's loop, all appends. */
  readonly writer_ms: number;
}

/**
 * S1: a live subscriber from 'end', and one writer appending `warmup + events` events one at a
 * time to one stream of a fresh store; the first `warmup` are not counted. Events are matched
 * by the sequence number in their data. With `writerYields`, the writer lets the event loop run
 * (setImmediate) after each append, outside the timed span of the next event.
 */
export async function runS1(dir: string, durability: Durability, events: number, warmup: number, writerYields = false): Promise<S1Result> {
  const store = await EventStore.open({ dir, durability });
  const total = warmup + events;
  const sentAt = new Float64Array(total);
  const deliveredAt = new Float64Array(total).fill(Number.NaN);
  const appendMs: number[] = [];
  let delivered = 0;
  let bursts = 0;
  let inBurst = false;
  let failure: unknown;
  let allDelivered!: () => void;
  const done = new Promise<void>((resolve) => (allDelivered = resolve));
  const subscription = store.subscribe({ from: 'end' }).subscribe({
    next: (event) => {
      const now = performance.now();
      const n = orderNumberOf(event.data as OrderPlaced);
      if (event.position !== delivered || n !== delivered || !Number.isNaN(deliveredAt[n]!)) failure ??= new Error(`S1: event ${n} at position ${event.position} delivered as the ${delivered}th`);
      if (!inBurst) {
        bursts++;
        inBurst = true;
        queueMicrotask(() => (inBurst = false));
      }
      deliveredAt[n] = now;
      if (++delivered === total) allDelivered();
    },
    error: (err: unknown) => {
      failure ??= err;
      allDelivered();
    },
  });
  try {
    const writerStart = performance.now();
    for (let n = 0; n < total; n++) {
      if (writerYields) await yieldToEventLoop();
      const t0 = performance.now();
      sentAt[n] = t0;
      await store.appendToStream('order-s1', [orderEvent(n)]);
      if (n >= warmup) appendMs.push(performance.now() - t0);
    }
    const writerMs = performance.now() - writerStart;
    const deliveredWhileWriting = delivered;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, DELIVERY_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (failure !== undefined) throw failure;
    if (delivered !== total) throw new Error(`S1: ${delivered} of ${total} events delivered ${DELIVERY_TIMEOUT_MS} ms after the last append`);
    const latencies = Array.from({ length: events }, (_, i) => deliveredAt[warmup + i]! - sentAt[warmup + i]!);
    const appends = latencySummary(appendMs);
    return {
      events,
      ...latencySummary(latencies),
      append_p50_ms: appends.p50_ms,
      append_p99_ms: appends.p99_ms,
      events_per_delivery_burst: round(total / bursts, 2),
      delivered_while_writing: deliveredWhileWriting,
      writer_ms: round(writerMs, 1),
    };
  } finally {
    subscription.unsubscribe();
    await store.close();
  }
}

/**
 * Subscribes from 'start' and receives every event (checked as readAllEvents checks them) until
 * the first 'caughtUp', then unsubscribes. With no writer about, 'fellBehind' is an error.
 */
export function catchUp(store: EventStore, expected: number): Promise<{ ms: number }> {
  return new Promise((resolve, reject) => {
    let next = 0;
    let finished = false;
    let subscription: Subscription | undefined;
    const finish = (err?: unknown, result?: { ms: number }): void => {
      if (finished) return;
      finished = true;
      subscription?.unsubscribe();
      if (err !== undefined) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(result!);
    };
    const start = performance.now();
    subscription = store.subscribeMessages({ from: 'start' }).subscribe({
      next: (message) => {
        if (finished) return;
        switch (message.type) {
          case 'event': {
            const event: RecordedEvent = message.event;
            if (event.position !== next++ || event.type !== EVENT_TYPE) finish(new Error(`catch-up: unexpected event at position ${event.position}`));
            break;
          }
          case 'caughtUp': {
            const ms = performance.now() - start;
            if (next !== expected || message.position !== expected) finish(new Error(`catch-up: caught up at ${message.position} after ${next} events, expected ${expected}`));
            else finish(undefined, { ms });
            break;
          }
          case 'fellBehind':
            finish(new Error(`catch-up: fell behind at ${message.position} with no writer`));
            break;
          case 'checkpoint':
            break;
        }
      },
      error: (err: unknown) => finish(err),
      complete: () => finish(new Error(`catch-up: completed after ${next} events, before caughtUp`)),
    });
    if (finished) subscription.unsubscribe();
  });
}

/**
 * S2: `rounds` rounds of a catch-up subscription and a `readAll()` over the whole open store, in
 * ABBA order (the subscription is the subject, readAll the baseline).
 */
export async function runS2(store: EventStore, expected: number, rounds: number): Promise<Comparison> {
  const sample = async (pass: () => Promise<{ ms: number }>): Promise<Sample> => {
    const { ms } = await pass();
    return { events: expected, ms, latencies: [ms] };
  };
  return interleaved(
    rounds,
    () => sample(() => catchUp(store, expected)),
    () => sample(() => readAllEvents(store, expected)),
  );
}

/** S3's aggregate: the number of events and the sum of their order ids. */
interface Totals {
  readonly count: number;
  readonly sum: number;
}

const totals: AggregateOptions<Totals> = {
  initialState: () => ({ count: 0, sum: 0 }),
  evolve: (state, event) => ({ count: state.count + 1, sum: state.sum + (event.data as OrderPlaced).orderId }),
};

export interface S3Options {
  readonly events: number;
  readonly perAppend: number;
  /** Events appended after the snapshot is taken, folded by every snapshot load. */
  readonly eventsAfterSnapshot: number;
  readonly loads: number;
  readonly everyEvents: number;
}

export interface S3Result {
  readonly streamEvents: number;
  readonly buildMs: number;
  /** The untimed first load with snapshots: full replay, then the snapshot taken. */
  readonly firstLoadMs: number;
  readonly fullMs: number[];
  readonly snapshotMs: number[];
  readonly fullMedianMs: number;
  readonly snapshotMedianMs: number;
  /** Snapshot events in the stream's snapshot stream at the end (1 expected). */
  readonly snapshots: number;
}

/**
 * S3: one stream of `events` events (durability 'none'), a first load with snapshots that takes
 * one, `eventsAfterSnapshot` more events, then `loads` timed loads each way, alternating.
 */
export async function runS3(dir: string, options: S3Options): Promise<S3Result> {
  const { events, perAppend, eventsAfterSnapshot, loads, everyEvents } = options;
  if (events % perAppend !== 0) throw new Error('S3: events must be a multiple of events per append');
  const streamId = 'order-s3';
  const store = await EventStore.open({ dir, durability: 'none' });
  try {
    const buildStart = performance.now();
    for (let n = 0; n < events; n += perAppend) await store.appendToStream(streamId, orderEvents(n, perAppend));
    const buildMs = performance.now() - buildStart;
    const withSnapshots: AggregateOptions<Totals> = { ...totals, snapshots: { schemaVersion: 1, everyEvents } };

    const firstStart = performance.now();
    check(await store.aggregateStream(streamId, withSnapshots), events);
    const firstLoadMs = performance.now() - firstStart;
    await store.appendToStream(streamId, orderEvents(events, eventsAfterSnapshot));
    const total = events + eventsAfterSnapshot;

    const timed = async (aggregateOptions: AggregateOptions<Totals>): Promise<number> => {
      const start = performance.now();
      const loaded = await store.aggregateStream(streamId, aggregateOptions);
      const ms = performance.now() - start;
      check(loaded, total);
      return ms;
    };
    const [fullMs, snapshotMs] = await alternate(loads, () => timed(totals), () => timed(withSnapshots));
    let snapshots = 0;
    for await (const _ of store.readStream(snapshotStreamOf(streamId))) snapshots++;
    const r3 = (xs: number[]): number[] => xs.map((x) => round(x, 3));
    return {
      streamEvents: total,
      buildMs: round(buildMs, 1),
      firstLoadMs: round(firstLoadMs, 3),
      fullMs: r3(fullMs),
      snapshotMs: r3(snapshotMs),
      fullMedianMs: round(median(fullMs), 3),
      snapshotMedianMs: round(median(snapshotMs), 3),
      snapshots,
    };
  } finally {
    await store.close();
  }
}

/** The loaded state must be the fold of events 0 … `count - 1`. */
function check(loaded: { state: Totals; revision: number | 'no_stream' }, count: number): void {
  const sum = count * orderData(0).orderId + (count * (count - 1)) / 2;
  if (loaded.revision !== count - 1 || loaded.state.count !== count || loaded.state.sum !== sum) {
    throw new Error(`S3: loaded ${JSON.stringify(loaded)}, expected count ${count}, sum ${sum}, revision ${count - 1}`);
  }
}
