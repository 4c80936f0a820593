/**
 * coldstream quick start: open an embedded store, append to a few streams, read them back
 * (one stream, then the whole log filtered), close, reopen, and show that everything is there.
 *
 *   npm run example            (data in ./data/quickstart, removed first)
 */
import fs from 'node:fs';
import path from 'node:path';
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
await store.close();

store = await EventStore.open({ dir, segmentBytes: 64 * 1024 });
let shipped = 0;
for await (const _event of store.readAll({ filter: { eventTypes: ['OrderShipped'] } })) shipped++;
const head = await store.streamHead('order-1');
console.log(`reopened: ${store.commitPosition} events in $all, ${shipped} orders shipped, order-1 at revision ${head?.revision}`);
await store.close();
