/**
 * coldstream against a real S3-compatible object store: AWS S3, MinIO, or Ceph's RADOS
 * Gateway, named by environment variables (the same ones the test suites read):
 *
 *   COLDSTREAM_S3_BUCKET       the bucket (must exist)
 *   COLDSTREAM_S3_ENDPOINT     e.g. http://127.0.0.1:9000 for MinIO; unset for AWS
 *   COLDSTREAM_S3_REGION       default us-east-1
 *   COLDSTREAM_S3_ACCESS_KEY, COLDSTREAM_S3_SECRET_KEY
 *   COLDSTREAM_S3_CLIENT       's3' (@aws-sdk/client-s3, the default) or 'minio' (the minio client)
 *   COLDSTREAM_S3_PREFIX       key prefix; default a fresh one per run under examples/
 *
 * With the compose file's MinIO (docker compose -f docker/compose.yml up -d):
 *
 *   COLDSTREAM_S3_ENDPOINT=http://127.0.0.1:9000 COLDSTREAM_S3_BUCKET=coldstream \
 *   COLDSTREAM_S3_ACCESS_KEY=coldstream COLDSTREAM_S3_SECRET_KEY=coldstream-secret \
 *   npm run example:s3
 *
 * It appends orders to a store whose sealed segments go to the bucket, waits for them to be
 * verified there and evicted locally, reads the history back cold, restores a second store
 * from the bucket alone, follows the writer with a read-only replica, and scrubs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MinioObjectStore } from '../adapters/minio/index.js';
import { S3ObjectStore } from '../adapters/s3/index.js';
import { EventStore, type EventStoreOptions } from '../lib/index.js';
import type { ObjectStore } from '../lib/tiering/object-store.js';

const env = (name: string): string | undefined => (process.env[name] === '' ? undefined : process.env[name]);
const bucket = env('COLDSTREAM_S3_BUCKET');
if (bucket === undefined) {
  console.error('Set COLDSTREAM_S3_BUCKET (and COLDSTREAM_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY for MinIO): see the comment at the top of examples/object-store.ts');
  process.exit(2);
}
const endpoint = env('COLDSTREAM_S3_ENDPOINT');
const region = env('COLDSTREAM_S3_REGION') ?? 'us-east-1';
const accessKey = env('COLDSTREAM_S3_ACCESS_KEY') ?? '';
const secretKey = env('COLDSTREAM_S3_SECRET_KEY') ?? '';
const prefix = env('COLDSTREAM_S3_PREFIX') ?? `examples/${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}/`;

function objectStore(): ObjectStore {
  if (env('COLDSTREAM_S3_CLIENT') === 'minio') {
    const url = new URL(endpoint ?? `https://s3.${region}.amazonaws.com`);
    return new MinioObjectStore({
      endPoint: url.hostname,
      port: url.port === '' ? undefined : Number(url.port),
      useSSL: url.protocol === 'https:',
      region,
      accessKey,
      secretKey,
      pathStyle: endpoint !== undefined,
      bucket: bucket!,
      prefix,
    });
  }
  return new S3ObjectStore({ bucket: bucket!, prefix, endpoint, region, forcePathStyle: endpoint !== undefined, credentials: { accessKeyId: accessKey, secretAccessKey: secretKey } });
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-example-'));
const objects = objectStore();
const options = (dir: string, extra: Partial<EventStoreOptions> = {}): EventStoreOptions => ({
  dir: path.join(root, dir),
  segmentBytes: 64 * 1024, // Small, so that a few thousand events seal several segments.
  tiering: { objectStore: objects, localRetentionBytes: 0, pollIntervalMs: 200 },
  ...extra,
});

try {
  console.log(`object store: ${objects.description}`);
  const writer = await EventStore.open(options('writer'));
  for (let batch = 0; batch < 40; batch++) {
    await writer.appendMany(Array.from({ length: 50 }, (_, i) => ({ streamId: `order-${(batch * 50 + i) % 500}`, events: [{ type: 'OrderPlaced', data: { batch, i, note: 'x'.repeat(100) } }] })));
  }
  const started = Date.now();
  await writer.tiering.drain();
  const status = writer.tiering.status();
  console.log(`tiered: ${status.remoteSegments} segments (${status.uploaded.bytes} bytes) verified remote in ${Date.now() - started} ms; ${status.local.segments} sealed segments keep local data`);

  writer.tiering.clearCache();
  let events = 0;
  for await (const _ of writer.readAll()) events++;
  const order7 = [];
  for await (const event of writer.readStream('order-7')) order7.push(event.revision);
  const { cache } = writer.tiering.status();
  console.log(`cold read: ${events} events, order-7 has ${order7.length}; ${cache.gets} ranged GETs, ${cache.bytesFetched} bytes fetched`);

  const replica = await EventStore.open(options('replica', { readOnly: true }));
  console.log(`replica: serves up to position ${replica.nextPosition}`);

  for (let batch = 0; batch < 40; batch++) {
    await writer.appendMany(Array.from({ length: 50 }, (_, i) => ({ streamId: `order-${(batch * 50 + i) % 500}`, events: [{ type: 'OrderShipped', data: { batch, i, note: 'y'.repeat(100) } }] })));
  }
  await writer.tiering.drain();
  const pulled = await replica.tiering.refresh();
  console.log(`replica: pulled ${pulled} new segments, now serves up to position ${replica.nextPosition} (writer at ${writer.nextPosition}; the active segment is not uploaded yet)`);
  await replica.close();

  const scrub = await writer.tiering.scrub();
  console.log(`scrub: ${scrub.deleted.length} orphan objects deleted, ${scrub.damaged.length} committed segments damaged`);
  await writer.close();

  const restored = await EventStore.restore(options('restored'));
  console.log(`restored from ${prefix} alone: appends continue at position ${restored.nextPosition}`);
  await restored.close();
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
