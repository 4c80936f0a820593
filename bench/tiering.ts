/**
 * Tiering (issue 7): T1–T4 against s3rver, started in this process on 127.0.0.1 with its own
 * directory under the bench's temporary directory, through the S3ObjectStore adapter over HTTP.
 *
 *   T1  upload: drain() of a store built with tiering off, then reopened with tiering
 *       (localRetentionBytes 0) and its object store held until the clock starts, beside a
 *       plain PutObject loop of the same files (same bytes, same sizes), ABBA        MiB/s, ratio
 *   T2  W4 cold: readAll() of every event with every sealed segment evicted and the cache
 *       emptied, beside readAll() of the local copy the store was tiered from, ABBA  events/s, GETs, bytes
 *   T3  W5 cold: readStream() of one 1,000-event stream, cache emptied: GETs and bytes beside
 *       the block-aligned ranges of that stream's batches, the segments holding them and the data
 *   T4  EventStore.restore into an empty directory from the bucket: time, bytes fetched
 *
 * The dataset is the W3 shape (streams × 1,000 events, 100 per append, durability 'none') in
 * segments of `tSegmentBytes`. GETs and bytes are counted by {@link CountingObjectStore}, a
 * decorator on the adapter (it also holds calls back until T1's clock starts). s3rver shares
 * this process and its event loop: its CPU time lands in every measurement against it.
 *
 * s3rver encrypts ListObjectsV2 continuation tokens with DES, which Node ≥ 17 has only with
 * `--openssl-legacy-provider` (the `npm run bench` script passes it): checked before starting.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createCipheriv } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { S3ObjectStore } from '../adapters/s3/index.js';
import { EventStore, type GetOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from '../lib/index.js';
import { BLOCK_BYTES } from '../lib/tiering/block-cache.js';
import type { BenchConfig, Workload } from './config.js';
import { orderEvents } from './payload.js';
import { profiled } from './profiler.js';
import { readAllEvents, readOneStream } from './reads.js';
import { emit, log, median, perSecond, round } from './report.js';
import { alternate, settleDisk } from './sampling.js';
import type { Measured } from './summary.js';
import { datasetShape, type Dataset } from './writes.js';

const BUCKET = 'bench';
const MiB = 1024 * 1024;
const T_WORKLOADS: readonly Workload[] = ['T1', 'T2', 'T3', 'T4'];

// ------------------------------------------------------------------------------------ s3rver

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (options: { address: string; port: number; silent: boolean; directory: string; configureBuckets: { name: string }[] }) => S3rverInstance;

interface LocalS3 {
  readonly endpoint: string;
  /** The s3 adapter on the bench bucket under `prefix`, as test/helpers/s3-servers.ts makes it for s3rver. */
  adapter(prefix: string): S3ObjectStore;
  stop(): Promise<void>;
}

/** s3rver on 127.0.0.1, a random port, a bucket named {@link BUCKET}, its files in `directory`. */
async function startS3rver(directory: string): Promise<LocalS3> {
  try {
    createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
  } catch {
    throw new Error('s3rver pages ListObjectsV2 with DES tokens: run node with --openssl-legacy-provider (npm run bench does)');
  }
  const specifier = 's3rver'; // No types (test/types/s3rver.d.ts is outside the bench build): typed here.
  const { default: S3rver } = (await import(specifier)) as { default: S3rverClass };
  fs.mkdirSync(directory, { recursive: true });
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: BUCKET }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    adapter: (prefix) =>
      new S3ObjectStore({
        bucket: BUCKET,
        prefix,
        endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, // The only access key s3rver accepts.
        forcePathStyle: true,
        conditionalWrites: false, // s3rver ignores If-None-Match: tiering checks with a HEAD first.
        requestTimeoutMs: 120_000,
      }),
    async stop() {
      await server.close();
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------ counting decorator

export interface Counts {
  gets: number;
  getBytes: number;
  puts: number;
  putBytes: number;
  heads: number;
  lists: number;
  deletes: number;
  /** Wall time with at least one call in flight (the union of the calls' intervals). */
  inFlightMs: number;
  /** Wall time from call to answer, summed over the calls of each kind (overlapping calls add up). */
  getMs: number;
  putMs: number;
  headMs: number;
  listMs: number;
  deleteMs: number;
}

const zeroCounts = (): Counts => ({ gets: 0, getBytes: 0, puts: 0, putBytes: 0, heads: 0, lists: 0, deletes: 0, inFlightMs: 0, getMs: 0, putMs: 0, headMs: 0, listMs: 0, deleteMs: 0 });

function minus(a: Counts, b: Counts): Counts {
  const out = zeroCounts();
  for (const k of Object.keys(out) as (keyof Counts)[]) out[k] = a[k] - b[k];
  return out;
}

/**
 * An ObjectStore that counts the calls to the one it wraps (a GET when it is made, its bytes
 * when they arrive) and, when created paused, holds every call until {@link resume}.
 */
export class CountingObjectStore implements ObjectStore {
  readonly description: string;
  readonly conditionalWrites: boolean;
  private readonly counts = zeroCounts();
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  private inFlight = 0;
  private busySince = 0;

  constructor(
    private readonly inner: ObjectStore,
    options: { paused?: boolean } = {},
  ) {
    this.description = inner.description;
    this.conditionalWrites = inner.conditionalWrites;
    if (options.paused === true) this.gate = new Promise((resolve) => (this.open = resolve));
  }

  /** Lets the held calls (and every later one) through. */
  resume(): void {
    this.open?.();
    this.gate = undefined;
  }

  snapshot(): Counts {
    return { ...this.counts };
  }

  async put(key: string, body: Buffer, options?: PutOptions): Promise<ObjectInfo> {
    await this.gate;
    this.counts.puts++;
    this.counts.putBytes += body.length;
    return this.timed('putMs', () => this.inner.put(key, body, options));
  }

  async get(key: string, options?: GetOptions): Promise<Buffer> {
    await this.gate;
    this.counts.gets++;
    const bytes = await this.timed('getMs', () => this.inner.get(key, options));
    this.counts.getBytes += bytes.length;
    return bytes;
  }

  async head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined> {
    await this.gate;
    this.counts.heads++;
    return this.timed('headMs', () => this.inner.head(key, options));
  }

  async list(prefix: string, options?: { after?: string; signal?: AbortSignal }): Promise<ListPage> {
    await this.gate;
    this.counts.lists++;
    return this.timed('listMs', () => this.inner.list(prefix, options));
  }

  async delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    await this.gate;
    this.counts.deletes++;
    return this.timed('deleteMs', () => this.inner.delete(key, options));
  }

  private async timed<T>(kind: 'getMs' | 'putMs' | 'headMs' | 'listMs' | 'deleteMs', call: () => Promise<T>): Promise<T> {
    const start = performance.now();
    if (this.inFlight++ === 0) this.busySince = start;
    try {
      return await call();
    } finally {
      const end = performance.now();
      this.counts[kind] += end - start;
      if (--this.inFlight === 0) this.counts.inFlightMs += end - this.busySince;
    }
  }
}

// --------------------------------------------------------------------------------- dataset

interface SegmentOnDisk {
  readonly base: number;
  readonly sealed: boolean;
  readonly logBytes: number;
  /** What tiering uploads of a sealed segment: every file of it but the `.sealed` sidecar. */
  readonly uploads: readonly { readonly name: string; readonly bytes: number }[];
}

/** The segments in `<storeDir>/log`, by base position, from the file names alone. */
function segmentsOnDisk(storeDir: string): SegmentOnDisk[] {
  const logDir = path.join(storeDir, 'log');
  const bySegment = new Map<number, { name: string; suffix: string; bytes: number }[]>();
  for (const name of fs.readdirSync(logDir)) {
    const m = /^(\d{20})(\.[a-z]+)$/.exec(name);
    if (m === null) continue;
    const base = Number(m[1]);
    const list = bySegment.get(base) ?? [];
    list.push({ name, suffix: m[2]!, bytes: fs.statSync(path.join(logDir, name)).size });
    bySegment.set(base, list);
  }
  return [...bySegment.entries()]
    .sort(([a], [b]) => a - b)
    .map(([base, files]) => ({
      base,
      sealed: files.some((f) => f.suffix === '.sealed'),
      logBytes: files.find((f) => f.suffix === '.log')?.bytes ?? 0,
      uploads: files.filter((f) => f.suffix !== '.sealed').map(({ name, bytes }) => ({ name, bytes })),
    }));
}

/** The W3 workload's appends (append k: 100 events to stream k mod streams), durability 'none', in segments of `segmentBytes`. */
async function buildDataset(dataset: Dataset, perAppend: number, segmentBytes: number): Promise<number> {
  const start = performance.now();
  const store = await EventStore.open({ dir: dataset.dir, durability: 'none', segmentBytes });
  try {
    const appends = dataset.total / perAppend;
    for (let k = 0; k < appends; k++) await store.appendToStream(dataset.streamId(k % dataset.streams), orderEvents(k * perAppend, perAppend));
    if (store.commitPosition !== dataset.total) throw new Error(`tiering dataset: ${store.commitPosition} events, expected ${dataset.total}`);
  } finally {
    await store.close();
  }
  return performance.now() - start;
}

/** A copy of a closed store's directory (its LOCK left out). */
async function copyStore(from: string, to: string): Promise<void> {
  await fs.promises.cp(from, to, { recursive: true, filter: (src) => path.basename(src) !== 'LOCK' });
}

// ------------------------------------------------------------------------------- workloads

interface Shape {
  readonly dataset: Dataset;
  readonly perAppend: number;
  readonly segmentBytes: number;
  readonly segments: readonly SegmentOnDisk[];
  readonly sealed: readonly SegmentOnDisk[];
  /** Position after the last sealed segment's last event (the active segment's base). */
  readonly sealedEnd: number;
  readonly dataBytes: number;
  readonly sealedDataBytes: number;
  readonly uploadBytes: number;
}

/** T1–T4; returns at once when none of them is selected. */
export async function tieringWorkloads(config: BenchConfig, root: string, measured: Measured): Promise<void> {
  const on = (w: Workload): boolean => config.only.has(w);
  if (!T_WORKLOADS.some(on)) return;
  const dirOf = (name: string): string => path.join(root, name);
  const dataset = datasetShape(dirOf('t-base'), config.w3Streams, config.w3EventsPerStream);
  const perAppend = config.w3EventsPerAppend;
  const segmentBytes = config.tSegmentBytes;

  log(`T: s3rver on 127.0.0.1 (in this process); dataset of ${dataset.total} events, ${perAppend} per append, over ${dataset.streams} streams, segments of ${round(segmentBytes / MiB, 2)} MiB, tiering off`);
  const s3 = await startS3rver(dirOf('s3rver'));
  try {
    const buildMs = await buildDataset(dataset, perAppend, segmentBytes);
    const segments = segmentsOnDisk(dataset.dir);
    const sealed = segments.filter((s) => s.sealed);
    const active = segments.find((s) => !s.sealed);
    if (sealed.length === 0) throw new Error('tiering dataset: no sealed segment');
    const shape: Shape = {
      dataset,
      perAppend,
      segmentBytes,
      segments,
      sealed,
      sealedEnd: active?.base ?? dataset.total,
      dataBytes: segments.reduce((n, s) => n + s.logBytes, 0),
      sealedDataBytes: sealed.reduce((n, s) => n + s.logBytes, 0),
      uploadBytes: sealed.reduce((n, s) => n + s.uploads.reduce((m, f) => m + f.bytes, 0), 0),
    };
    const common = { events: dataset.total, streams: dataset.streams, segment_bytes: segmentBytes, sealed_segments: sealed.length, data_bytes: shape.dataBytes, sealed_data_bytes: shape.sealedDataBytes };
    emit({ bench: 'T', metric: 'dataset_build_ms', value: round(buildMs), unit: 'ms', server: 's3rver in-process', endpoint: s3.endpoint, ...common, active_segment_bytes: active?.logBytes ?? 0 });

    const tiered = await t1(config, s3, shape, measured, on('T1'), dirOf);
    if (on('T2') || on('T3')) await t2t3(config, s3, shape, tiered, measured, on);
    if (on('T4')) await t4(s3, shape, tiered.prefix, measured, dirOf('t4-restore'));
    fs.rmSync(tiered.dir, { recursive: true, force: true });
    fs.rmSync(dataset.dir, { recursive: true, force: true });
  } finally {
    await s3.stop();
  }
}

/** Opens the tiered copy of the dataset (every sealed segment remote, their data evicted). */
function openTiered(shape: Shape, dir: string, objectStore: ObjectStore): Promise<EventStore> {
  return EventStore.open({ dir, durability: 'none', segmentBytes: shape.segmentBytes, tiering: { objectStore, localRetentionBytes: 0 } });
}

/**
 * T1: tiered uploads and plain PutObject loops of the same files in ABBA rounds (measured when
 * `measure`; else one tiered pass, not reported). The last tiered copy, with its prefix, is the
 * store of T2–T4.
 */
async function t1(config: BenchConfig, s3: LocalS3, shape: Shape, measured: Measured, measure: boolean, dirOf: (name: string) => string): Promise<{ dir: string; prefix: string }> {
  const rounds = measure ? config.t1Rounds : 1;
  const files = shape.sealed.flatMap((s) => s.uploads);
  const bodies = files.map((f) => ({ name: f.name, body: fs.readFileSync(path.join(shape.dataset.dir, 'log', f.name)) }));
  const plain = s3.adapter('');
  let last: { dir: string; prefix: string } | undefined;

  const tierRound = async (r: number): Promise<{ ms: number; bytes: number; counts: Counts }> => {
    const dir = dirOf(`t-tiered-${r}`);
    const prefix = `tiered-${r}/`;
    await copyStore(shape.dataset.dir, dir);
    settleDisk();
    const objects = new CountingObjectStore(s3.adapter(prefix), { paused: true });
    const store = await openTiered(shape, dir, objects);
    let ms: number;
    try {
      const start = performance.now();
      objects.resume();
      await profiled(`T1-drain-${r}`, () => store.tiering.drain());
      ms = performance.now() - start;
      const status = store.tiering.status();
      if (status.uploaded.bytes !== shape.uploadBytes || status.remoteSegments !== shape.sealed.length || status.local.segments !== 0 || status.backlog.segments !== 0) {
        throw new Error(`T1: after drain, ${status.uploaded.bytes} bytes uploaded (${shape.uploadBytes} expected), ${status.remoteSegments} segments remote and ${status.local.segments} local`);
      }
    } finally {
      await store.close();
    }
    if (last !== undefined) fs.rmSync(last.dir, { recursive: true, force: true });
    last = { dir, prefix };
    return { ms, bytes: shape.uploadBytes, counts: objects.snapshot() };
  };

  const putRound = async (r: number): Promise<{ ms: number; bytes: number }> => {
    settleDisk();
    const start = performance.now();
    await profiled(`T1-put-${r}`, async () => {
      for (const { name, body } of bodies) {
        await plain.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `plain-${r}/${name}`, Body: body, ContentLength: body.length }));
      }
    });
    return { ms: performance.now() - start, bytes: shape.uploadBytes };
  };

  if (!measure) {
    log(`T2–T4: tiering the dataset (${shape.sealed.length} sealed segments, ${round(shape.uploadBytes / MiB, 1)} MiB; not measured)`);
    await tierRound(0);
    return last!;
  }

  log(`T1: drain() of ${shape.sealed.length} sealed segments (${files.length} files, ${round(shape.uploadBytes / MiB, 1)} MiB) vs a plain PutObject loop of the same files, ABBA in ${rounds} rounds`);
  const [puts, tiers] = await alternate(rounds, putRound, tierRound);
  const mibPerSec = (xs: readonly { ms: number; bytes: number }[]): number => round(xs.reduce((n, x) => n + x.bytes, 0) / MiB / (xs.reduce((n, x) => n + x.ms, 0) / 1000), 1);
  const perRound = tiers.map((t, r) => t.bytes / t.ms / (puts[r]!.bytes / puts[r]!.ms));
  const tierRate = mibPerSec(tiers);
  const putRate = mibPerSec(puts);
  const ratio = round(tierRate / putRate, 3);
  measured.T1_upload_mib_per_sec = tierRate;
  measured.T1_put_object_mib_per_sec = putRate;
  measured.T1_ratio_median_of_rounds = round(median(perRound), 3);
  const shared = { bytes: shape.uploadBytes, objects: files.length, segments: shape.sealed.length, largest_object_bytes: Math.max(...files.map((f) => f.bytes)) };
  emit({ bench: 'plain_put_object', baseline_of: 'T1', metric: 'upload_mib_per_sec', value: putRate, unit: 'MiB/s', ...shared, ms: round(puts.reduce((n, x) => n + x.ms, 0), 1), rounds_mib_per_sec: puts.map((x) => mibPerSec([x])), note: 'PutObjectCommand of each file, one at a time, bodies in memory, no Content-MD5' });
  const lastTier = tiers[tiers.length - 1]!;
  const counts = lastTier.counts;
  emit({
    bench: 'T1',
    metric: 'upload_mib_per_sec',
    value: tierRate,
    unit: 'MiB/s',
    baseline: 'plain_put_object',
    baseline_value: putRate,
    ratio,
    ratio_median_of_rounds: round(median(perRound), 3),
    ratio_min_of_rounds: round(Math.min(...perRound), 3),
    ratio_max_of_rounds: round(Math.max(...perRound), 3),
    target_ratio: 0.8,
    ...shared,
    ms: round(tiers.reduce((n, x) => n + x.ms, 0), 1),
    rounds_mib_per_sec: tiers.map((x) => mibPerSec([x])),
    requests_per_drain: { puts: counts.puts, heads: counts.heads, gets: counts.gets, lists: counts.lists },
    last_drain: {
      ms: round(lastTier.ms, 1),
      put_ms_summed: round(counts.putMs, 1),
      small_requests_ms_summed: round(counts.headMs + counts.getMs + counts.listMs, 1),
      no_request_in_flight_ms: round(lastTier.ms - counts.inFlightMs, 1),
    },
    note: 'store built with tiering off, reopened with it (localRetentionBytes 0) and its object store held until the clock starts; timed to drain(). last_drain: time summed inside PUTs and inside the other requests, and time with no request in flight (fdatasyncs of the tiering state, eviction, waiting for the files of a segment to be read and hashed; those of the next segment are read and hashed in a worker thread while the current one uploads)',
  });
  return last!;
}

/** T3 (one stream cold) and T2 (readAll cold vs hot), on the tiered store and the local copy it was tiered from. */
async function t2t3(config: BenchConfig, s3: LocalS3, shape: Shape, tiered: { dir: string; prefix: string }, measured: Measured, on: (w: Workload) => boolean): Promise<void> {
  const { dataset } = shape;
  const objects = new CountingObjectStore(s3.adapter(tiered.prefix));
  const cold = await openTiered(shape, tiered.dir, objects);
  const hot = await EventStore.open({ dir: dataset.dir, durability: 'none', segmentBytes: shape.segmentBytes });
  try {
    const status = cold.tiering.status();
    if (status.local.segments !== 0 || status.remoteSegments !== shape.sealed.length || cold.commitPosition !== dataset.total) {
      throw new Error(`T2: the tiered store holds ${status.local.segments} sealed segments locally, ${status.remoteSegments} remote, ${cold.commitPosition} events`);
    }
    // T3 first: its hot reads are then W5's (run after T2's passes, they measured 9–16 ms, not ~2.4).
    if (on('T3')) await t3(config, shape, hot, cold, objects, measured);
    const coldShare = { cold_data_bytes: shape.sealedDataBytes, local_active_segment_bytes: shape.dataBytes - shape.sealedDataBytes, cold_events: shape.sealedEnd };

    if (on('T2')) {
      log(`T2: readAll() of ${dataset.total} events, every sealed segment cold (${round(shape.sealedDataBytes / MiB, 1)} MiB evicted, cache emptied before each pass) vs hot (the local copy), ABBA in ${config.t2Rounds} rounds`);
      const hotRead = async (r: number): Promise<{ ms: number }> => {
        settleDisk();
        return profiled(`T2-hot-${r}`, () => readAllEvents(hot, dataset.total));
      };
      const coldRead = async (r: number): Promise<{ ms: number; counts: Counts; hits: number; misses: number }> => {
        settleDisk();
        cold.tiering.clearCache();
        const before = objects.snapshot();
        const cacheBefore = cold.tiering.status().cache;
        const { ms } = await profiled(`T2-cold-${r}`, () => readAllEvents(cold, dataset.total));
        const cacheAfter = cold.tiering.status().cache;
        return { ms, counts: minus(objects.snapshot(), before), hits: cacheAfter.hits - cacheBefore.hits, misses: cacheAfter.misses - cacheBefore.misses };
      };
      const [hots, colds] = await alternate(config.t2Rounds, hotRead, coldRead);
      const rate = (xs: readonly { ms: number }[]): number => perSecond(dataset.total * xs.length, xs.reduce((n, x) => n + x.ms, 0));
      const perRound = colds.map((c, r) => hots[r]!.ms / c.ms);
      const hotRate = rate(hots);
      const coldRate = rate(colds);
      const counts = colds[colds.length - 1]!;
      measured.T2_hot_events_per_sec = hotRate;
      measured.T2_cold_events_per_sec = coldRate;
      measured.T2_ratio_median_of_rounds = round(median(perRound), 3);
      measured.T2_cold_gets = counts.counts.gets;
      measured.T2_cold_bytes_fetched = counts.counts.getBytes;
      emit({ bench: 'W4_hot', baseline_of: 'T2', metric: 'read_all_events_per_sec', value: hotRate, unit: 'events/s', events: dataset.total, rounds_events_per_sec: hots.map((h) => perSecond(dataset.total, h.ms)) });
      emit({
        bench: 'T2',
        metric: 'read_all_events_per_sec',
        value: coldRate,
        unit: 'events/s',
        baseline: 'W4_hot',
        baseline_value: hotRate,
        ratio: round(coldRate / hotRate, 3),
        ratio_median_of_rounds: round(median(perRound), 3),
        target_ratio: 0.5,
        events: dataset.total,
        rounds_events_per_sec: colds.map((c) => perSecond(dataset.total, c.ms)),
        gets: counts.counts.gets,
        bytes_fetched: counts.counts.getBytes,
        mean_get_bytes: round(counts.counts.getBytes / Math.max(1, counts.counts.gets)),
        get_ms: round(counts.counts.getMs, 1),
        pass_ms: round(counts.ms, 1),
        cache_hits: counts.hits,
        cache_misses: counts.misses,
        cache_bytes: status.cache.maxBytes,
        ...coldShare,
        note: 'gets, bytes, get_ms (wall time inside GETs, summed) and pass_ms of the last cold pass',
      });
    }

  } finally {
    await hot.close();
    await cold.close();
  }
}

/** T3: W5's stream, cold, cache emptied before each read. */
async function t3(config: BenchConfig, shape: Shape, hot: EventStore, cold: EventStore, objects: CountingObjectStore, measured: Measured): Promise<void> {
  const { dataset, perAppend } = shape;
  const streamId = dataset.streamId(Math.floor(dataset.streams / 2));
  log(`T3: readStream() of one ${dataset.eventsPerStream}-event stream (${streamId}) among ${dataset.total}, cold, cache emptied before each of ${config.t3Reads} reads; warm hot reads beside`);

  // Where the stream's events are: its batches (one append each) and the segments holding them.
  const positions: number[] = [];
  for await (const event of hot.readStream(streamId)) positions.push(event.position);
  const hotMs: number[] = [];
  for (let i = 0; i < config.t3Reads; i++) hotMs.push(await readOneStream(hot, streamId, dataset.eventsPerStream));
  const segmentOf = (position: number): SegmentOnDisk => {
    let found = shape.segments[0]!;
    for (const s of shape.segments) if (s.base <= position) found = s;
    return found;
  };
  const batches = [...new Set(positions.map((p) => p - (p % perAppend)))];
  const coldBatches = batches.filter((b) => b < shape.sealedEnd);
  const holding = [...new Set(coldBatches.map((b) => segmentOf(b)))];
  const cover = blockCover(shape, coldBatches);

  const reads: { ms: number; counts: Counts }[] = [];
  for (let i = 0; i < config.t3Reads; i++) {
    cold.tiering.clearCache();
    settleDisk();
    const before = objects.snapshot();
    const ms = await profiled(`T3-${i}`, () => readOneStream(cold, streamId, dataset.eventsPerStream));
    reads.push({ ms, counts: minus(objects.snapshot(), before) });
  }
  const first = reads[0]!;
  const coldMedian = round(median(reads.map((r) => r.ms)), 3);
  measured.T3_cold_median_ms = coldMedian;
  measured.T3_gets = first.counts.gets;
  measured.T3_bytes_fetched = first.counts.getBytes;
  measured.T3_stream_block_bytes = cover?.blockBytes;
  measured.T3_segments_bytes = holding.reduce((n, s) => n + s.logBytes, 0);
  emit({
    bench: 'T3',
    metric: 'read_stream_cold_median_ms',
    value: coldMedian,
    unit: 'ms',
    reads: config.t3Reads,
    first_ms: round(first.ms, 3),
    rounds_ms: reads.map((r) => round(r.ms, 3)),
    hot_median_ms: round(median(hotMs), 3),
    stream: streamId,
    events: positions.length,
    gets: first.counts.gets,
    bytes_fetched: first.counts.getBytes,
    gets_per_read: reads.map((r) => r.counts.gets),
    get_ms: round(first.counts.getMs, 1),
    other_requests: first.counts.heads + first.counts.lists + first.counts.puts,
    stream_batches: batches.length,
    stream_batches_cold: coldBatches.length,
    ...(cover === undefined ? {} : { stream_batch_bytes: cover.streamBytes, stream_blocks: cover.blocks, stream_block_bytes: cover.blockBytes, block_bytes: BLOCK_BYTES }),
    segments_holding_stream: holding.length,
    segments_holding_stream_bytes: measured.T3_segments_bytes,
    cold_data_bytes: shape.sealedDataBytes,
    data_bytes: shape.dataBytes,
    fetched_vs_stream_blocks: cover === undefined ? undefined : round(first.counts.getBytes / cover.blockBytes, 3),
    fetched_vs_segments: round(first.counts.getBytes / measured.T3_segments_bytes, 4),
    fetched_vs_data: round(first.counts.getBytes / shape.dataBytes, 5),
    target: "bytes fetched = the 64 KiB blocks covering the stream's batches in cold segments (stream_block_bytes); index lookups are local",
  });
}

/**
 * The cache's 64 KiB blocks that cover the stream's batches (append k at positions [k·100,
 * k·100+100), one batch each) in the cold segments: the least a block-aligned cold read can
 * fetch. Every batch of the dataset has the same size (same-width stream ids, same data), which
 * is checked against every sealed segment's size; undefined when it does not hold.
 */
function blockCover(shape: Shape, batchBases: readonly number[]): { streamBytes: number; blocks: number; blockBytes: number } | undefined {
  const { perAppend } = shape;
  const batchBytes = shape.dataBytes / (shape.dataset.total / perAppend);
  if (!Number.isInteger(batchBytes)) return undefined;
  const ends = shape.segments.map((s, i) => shape.segments[i + 1]?.base ?? shape.dataset.total);
  for (const [i, s] of shape.segments.entries()) if (s.logBytes !== ((ends[i]! - s.base) / perAppend) * batchBytes) return undefined;
  const blocks = new Set<string>();
  let blockBytes = 0;
  for (const b of batchBases) {
    const i = shape.segments.findLastIndex((s) => s.base <= b);
    const segment = shape.segments[i]!;
    const offset = ((b - segment.base) / perAppend) * batchBytes;
    for (let k = Math.floor(offset / BLOCK_BYTES); k * BLOCK_BYTES < offset + batchBytes; k++) {
      const key = `${segment.base}#${k}`;
      if (blocks.has(key)) continue;
      blocks.add(key);
      blockBytes += Math.min(BLOCK_BYTES, segment.logBytes - k * BLOCK_BYTES);
    }
  }
  return { streamBytes: batchBases.length * batchBytes, blocks: blocks.size, blockBytes };
}

/** T4: EventStore.restore into an empty directory from the tiered prefix. */
async function t4(s3: LocalS3, shape: Shape, prefix: string, measured: Measured, dir: string): Promise<void> {
  log(`T4: EventStore.restore into an empty directory from the bucket (${shape.sealed.length} committed segments, ${round(shape.sealedDataBytes / MiB, 1)} MiB of data)`);
  let objectBytes = 0;
  let objectCount = 0;
  const lister = s3.adapter(prefix);
  for (let after: string | undefined, first = true; first || after !== undefined; first = false) {
    const page = await lister.list('', { after });
    for (const o of page.objects) {
      objectBytes += o.size;
      objectCount++;
    }
    after = page.next;
  }
  settleDisk();
  const objects = new CountingObjectStore(s3.adapter(prefix));
  const start = performance.now();
  const restored = await profiled('T4', () => EventStore.restore({ dir, durability: 'none', segmentBytes: shape.segmentBytes, tiering: { objectStore: objects, localRetentionBytes: 0 } }));
  const ms = performance.now() - start;
  try {
    if (restored.commitPosition !== shape.sealedEnd) throw new Error(`T4: the restored store holds ${restored.commitPosition} events, expected ${shape.sealedEnd} (the sealed segments')`);
  } finally {
    await restored.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const counts = objects.snapshot();
  measured.T4_restore_ms = round(ms, 1);
  measured.T4_bytes_fetched = counts.getBytes;
  measured.T4_data_bytes = shape.sealedDataBytes;
  emit({
    bench: 'T4',
    metric: 'restore_ms',
    value: round(ms, 1),
    unit: 'ms',
    bytes_fetched: counts.getBytes,
    gets: counts.gets,
    lists: counts.lists,
    heads: counts.heads,
    puts: counts.puts,
    data_bytes: shape.sealedDataBytes,
    fetched_vs_data: round(counts.getBytes / shape.sealedDataBytes, 5),
    target_fetched_vs_data: 0.05,
    prefix_objects: objectCount,
    prefix_bytes: objectBytes,
    segments: shape.sealed.length,
    events: shape.sealedEnd,
    note: 'data_bytes: the .log bytes of the committed segments; the time includes the open that EventStore.restore ends with',
  });
}
