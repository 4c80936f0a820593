/**
 * coldstream quick start: open an embedded store, append to a few streams, read them back
 * (one stream, then the whole log filtered), follow it live with a subscription, fold a stream
 * into an aggregate with a snapshot, run a durable projection, close, reopen, and show that
 * everything is there. Sealed segments are tiered to an object store: here a directory beside
 * the data (FsObjectStore; S3ObjectStore or MinioObjectStore the same way), so old segments are
 * uploaded, evicted from the local log, and read back from the object store when needed.
 *
 *   npm run example            (data in ./data/quickstart, objects in ./data/quickstart-objects, both removed first)
 */
import fs from 'node:fs';
import path from 'node:path';
import { firstValueFrom, filter, take, toArray } from 'rxjs';
import { FsObjectStore } from '../adapters/fs/index.js';
import { EventStore, isColdstreamError, type EventStoreOptions } from '../lib/index.js';

const dir = path.resolve(process.argv[2] ?? 'data/quickstart');
const objectsDir = `${dir}-objects`;
fs.rmSync(dir, { recursive: true, force: true });
fs.rmSync(objectsDir, { recursive: true, force: true });

// Tiny segments so that this small example seals several; localRetentionBytes: 0 evicts each
// sealed segment's data as soon as it is verified in the object store.
const options: EventStoreOptions = {
  dir,
  segmentBytes: 8 * 1024,
  tiering: { objectStore: new FsObjectStore({ dir: objectsDir }), localRetentionBytes: 0 },
};
let store = await EventStore.open(options);
console.log(`opened a store in ${dir} (durability: ${store.options.durability})`);

// Each order is a stream; its events are facts, appended with optimistic concurrency.
for (let order = 1; order <= 3; order++) {
  const streamId = `order-${order}`;
  let result = await store.appendToStream(streamId, [{ type: 'OrderPlaced', data: { order, items: order * 2 } }], { expectedRevision: 'no_stream' });
  for (let item = 0; item < order * 2; item++) {
    result = await store.appendToStream(streamId, [{ type: 'ItemPicked', data: { sku: `sku-${item}` } }], { expectedRevision: result.nextExpectedRevision });
  }
  result = await store.appendToStream(streamId, [{ type: 'OrderShipped', data: { carrier: 'bike' } }], { expectedRevision: result.nextExpectedRevision });
  console.log(`appended ${result.nextExpectedRevision + 1} events to ${streamId}, last at position ${result.position}`);
}

// Two writers racing on one stream: exactly one wins.
try {
  await store.appendToStream('order-1', [{ type: 'OrderCancelled', data: {} }], { expectedRevision: 0 });
} catch (e) {
  if (!isColdstreamError(e, 'WRONG_EXPECTED_REVISION')) throw e;
  console.log(`stale writer rejected: ${e.message.split(':')[0]}`);
}

// A payment and the order it pays for, in one atomic batch.
await store.appendMany([
  { streamId: 'payment-1', events: [{ type: 'PaymentTaken', data: { amount: 42 } }], expectedRevision: 'no_stream' },
  { streamId: 'order-1', events: [{ type: 'OrderPaid', data: { payment: 'payment-1' } }] },
]);

console.log('order-2, as stored:');
for await (const event of store.readStream('order-2')) {
  console.log(`  #${event.revision} @${event.position} ${event.type} ${JSON.stringify(event.data)}`);
}

// A live subscription: history first, then 'caughtUp', then events as they are appended.
const live = firstValueFrom(store.subscribeMessages({ filter: { streamPrefix: 'order-' } }).pipe(filter((m) => m.type !== 'checkpoint'), take(21), toArray()));
await new Promise((resolve) => setTimeout(resolve, 10));
await store.appendToStream('order-4', [{ type: 'OrderPlaced', data: { order: 4, items: 1 } }]);
const messages = await live;
const history = messages.findIndex((m) => m.type === 'caughtUp');
const last = messages.at(-1);
console.log(`subscription: ${history} events of history, caught up, then live: ${last?.type === 'event' ? `${last.event.type} on ${last.event.streamId}` : '?'}`);

// An aggregate: the stream folded into state, with a snapshot taken along the way.
const picked = await store.aggregateStream('order-3', {
  initialState: { picked: 0, shipped: false },
  evolve: (state, event) => (event.type === 'ItemPicked' ? { ...state, picked: state.picked + 1 } : event.type === 'OrderShipped' ? { ...state, shipped: true } : state),
  snapshots: { schemaVersion: 1, everyEvents: 5 },
});
console.log(`order-3 folded: ${JSON.stringify(picked.state)} at revision ${picked.revision}`);

// A durable projection: its checkpoint is kept in the store, so it resumes where it stopped.
const totals = new Map<string, number>();
const projection = store.project('items-per-order', (event) => {
  if (event.type === 'ItemPicked') totals.set(event.streamId, (totals.get(event.streamId) ?? 0) + 1);
});
await projection.caughtUp;
await projection.stop();
console.log(`projection: ${JSON.stringify(Object.fromEntries(totals))}`);

// A busy hour: 500 more orders, enough to seal several segments.
for (let order = 100; order < 600; order += 50) {
  await store.appendMany(Array.from({ length: 50 }, (_, i) => ({ streamId: `order-${order + i}`, events: [{ type: 'OrderPlaced', data: { order: order + i, items: 1 } }] })));
}

// Tiering: wait until every sealed segment is verified in the object store and evicted locally.
await store.tiering.drain();
const tiered = store.tiering.status();
const localLogs = fs.readdirSync(path.join(dir, 'log')).filter((name) => name.endsWith('.log')).length;
console.log(`tiering: ${tiered.remoteSegments} sealed segments uploaded to ${tiered.objectStore}, ${tiered.local.segments} kept locally, ${localLogs} data file (the active segment) left in ${path.join(dir, 'log')}`);
await store.close();

store = await EventStore.open(options);
let events = 0;
let shipped = 0;
for await (const event of store.readAll()) {
  events++;
  if (event.type === 'OrderShipped') shipped++;
}
const head = await store.streamHead('order-1');
console.log(`reopened: ${events} events (and ${store.commitPosition - events} of the store's own: snapshot, checkpoint), ${shipped} orders shipped, order-1 at revision ${head?.revision}`);
const { cache } = store.tiering.status();
console.log(`cold read: the evicted segments came back from the object store in ${cache.gets} ranged GETs (${cache.bytesFetched} bytes), checked batch by batch`);
await store.close();

// The bucket alone is enough to restore the store on an empty directory.
const restoredDir = `${dir}-restored`;
fs.rmSync(restoredDir, { recursive: true, force: true });
const restored = await EventStore.restore({ ...options, dir: restoredDir });
let restoredEvents = 0;
for await (const event of restored.readAll()) if (!event.streamId.startsWith('$')) restoredEvents++;
console.log(`restored into ${restoredDir} from the object store: ${restoredEvents} events (those in uploaded segments), appends continue at position ${restored.nextPosition}`);
await restored.close();
