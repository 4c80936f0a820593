/**
 * coldstream quick start: open an embedded store, append to a few streams, read them back
 * (one stream, then the whole log filtered), follow it live with a subscription, fold a stream
 * into an aggregate with a snapshot, run a durable projection, close, reopen, and show that
 * everything is there.
 *
 *   npm run example            (data in ./data/quickstart, removed first)
 */
import fs from 'node:fs';
import path from 'node:path';
import { firstValueFrom, filter, take, toArray } from 'rxjs';
import { EventStore, isColdstreamError } from '../lib/index.js';

const dir = path.resolve(process.argv[2] ?? 'data/quickstart');
fs.rmSync(dir, { recursive: true, force: true });

let store = await EventStore.open({ dir, segmentBytes: 64 * 1024 });
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
await store.close();

store = await EventStore.open({ dir, segmentBytes: 64 * 1024 });
let events = 0;
let shipped = 0;
for await (const event of store.readAll()) {
  events++;
  if (event.type === 'OrderShipped') shipped++;
}
const head = await store.streamHead('order-1');
console.log(`reopened: ${events} events (and ${store.commitPosition - events} of the store's own: snapshot, checkpoint), ${shipped} orders shipped, order-1 at revision ${head?.revision}`);
await store.close();
