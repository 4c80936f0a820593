/**
 * Helpers for the event store tests: opening a store with tiny segments, collecting reads,
 * expecting rejections, a seeded workload with the model of what it wrote, and the store's files.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { EventStore, type EventData, type EventStoreOptions, type RecordedEvent } from '../../lib/index.js';
import { seededRandom as rng } from './random.js';
import { ManualClock } from './temp-dir.js';


/** Tiny segments and index intervals so that rolling and sealing happen in nearly every test. */
export function storeOptions(dir: string, overrides: Partial<EventStoreOptions> = {}): EventStoreOptions {
  return { dir, durability: 'none', segmentBytes: 2048, indexIntervalBytes: 128, ...overrides };
}

export function openStore(dir: string, overrides: Partial<EventStoreOptions> = {}): Promise<EventStore> {
  return EventStore.open(storeOptions(dir, overrides));
}

export async function collect<T>(iterator: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterator) out.push(item);
  return out;
}

/** Awaits `promise`, expecting it to reject with an instance of `type`; returns the error. */
export async function rejection<E extends Error>(promise: Promise<unknown>, type: abstract new (...args: never[]) => E, context = ''): Promise<E> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (err) {
    expect(err, `${context} rejected with ${String(err)}`).to.be.instanceOf(type);
    return err as E;
  }
  expect.fail(`${context} expected a ${type.name}, but it resolved with ${JSON.stringify(outcome)}`);
}

/** Same for a function that may throw synchronously or return a rejected promise. */
export function failureOf<E extends Error>(run: () => unknown, type: abstract new (...args: never[]) => E, context = ''): Promise<E> {
  return rejection(
    (async () => run())(),
    type,
    context,
  );
}

/** A deterministic UUID, distinct for distinct `n`. */
export function uuid(n: number, salt = 0): string {
  const hex = (n * 7919 + salt * 104_729 + 1).toString(16).padStart(12, '0').slice(-12);
  return `0000${salt.toString(16).padStart(4, '0')}-1111-4222-8333-${hex}`;
}

export function ev(type: string, data: unknown, extra: { id?: string; metadata?: Record<string, unknown> } = {}): EventData {
  return { type, data, ...extra };
}

/** The store's segment files with a suffix, e.g. '.log', sorted by base position. */
export function segmentFiles(dir: string, suffix: string): string[] {
  const logDir = path.join(dir, 'log');
  return fs
    .readdirSync(logDir)
    .filter((name) => name.endsWith(suffix))
    .sort()
    .map((name) => path.join(logDir, name));
}

/** Base positions of the sealed segments (those with a sidecar). */
export function sealedBases(dir: string): number[] {
  return segmentFiles(dir, '.sealed').map((file) => Number(path.basename(file, '.sealed')));
}

export const STREAM_IDS: readonly string[] = [
  ...Array.from({ length: 8 }, (_, i) => `order-${i}`),
  ...Array.from({ length: 6 }, (_, i) => `customer-${i}`),
  ...Array.from({ length: 4 }, (_, i) => `invoice-${i}`),
  'shipment-a',
  'shipment-b',
];
export const TYPES: readonly string[] = ['Created', 'Updated', 'Noted', 'Closed'];

/** What a seeded workload wrote: every event as a reader must see it, in position order. */
export interface Workload {
  readonly events: RecordedEvent[];
  readonly byStream: Map<string, RecordedEvent[]>;
}

export function emptyWorkload(): Workload {
  return { events: [], byStream: new Map() };
}

/**
 * Appends `appends` seeded random appends of 1–4 events each over {@link STREAM_IDS} (with
 * expected revisions checked by the store), advancing `clock` by 1 ms per append, and adds what
 * it wrote to `model`.
 */
export async function runWorkload(store: EventStore, clock: ManualClock, seed: number, appends: number, model: Workload = emptyWorkload()): Promise<Workload> {
  const random = rng(seed);
  for (let a = 0; a < appends; a++) {
    const streamId = STREAM_IDS[random.int(STREAM_IDS.length)]!;
    const history = model.byStream.get(streamId) ?? [];
    const count = 1 + (random.int(4) === 0 ? random.int(4) : 0);
    const events = Array.from({ length: count }, (_, k) => {
      const n = model.events.length + k;
      const metadata = random.int(3) === 0 ? undefined : { correlation: `c-${seed}-${a}`, k };
      return { id: uuid(n, seed), type: TYPES[random.int(TYPES.length)]!, data: { n, streamId, text: 'x'.repeat(random.int(60)), list: [k, null, true] }, metadata };
    });
    clock.advance(1);
    const expectedRevision = history.length === 0 ? 'no_stream' : history.length - 1;
    const result = await store.appendToStream(streamId, events, { expectedRevision });
    const first = model.events.length;
    expect(result).to.deep.equal({ nextExpectedRevision: history.length + count - 1, position: first + count - 1 });
    events.forEach((event, k) => {
      const recorded: RecordedEvent = {
        streamId,
        revision: history.length,
        position: first + k,
        id: event.id,
        type: event.type,
        data: event.data,
        metadata: event.metadata,
        timestamp: clock.now(),
      };
      history.push(recorded);
      model.events.push(recorded);
    });
    model.byStream.set(streamId, history);
  }
  return model;
}

/** The events of a store, read every way: all forwards, all backwards and per stream. */
export async function expectStoreHolds(store: EventStore, model: Workload, context = ''): Promise<void> {
  expect(await collect(store.readAll()), `${context}: readAll`).to.deep.equal(model.events);
  expect(await collect(store.readAll({ direction: 'backwards' })), `${context}: readAll backwards`).to.deep.equal([...model.events].reverse());
  for (const streamId of STREAM_IDS) {
    const history = model.byStream.get(streamId) ?? [];
    expect(await collect(store.readStream(streamId)), `${context}: ${streamId}`).to.deep.equal(history);
    const last = history[history.length - 1];
    expect(await store.streamHead(streamId), `${context}: head of ${streamId}`).to.deep.equal(last === undefined ? undefined : { revision: last.revision, position: last.position });
  }
  expect(store.nextPosition, `${context}: nextPosition`).to.equal(model.events.length);
  expect(store.commitPosition, `${context}: commitPosition`).to.equal(model.events.length);
}
