/**
 * Child process of the crash test (test/store/crash.test.ts). Never exits on its own: the test
 * SIGKILLs it at a random moment.
 *
 *   node --import tsx test/helpers/crash-child.ts <dir> <round> [seed]
 *
 * Opens the store with `fsync` durability and small segments (so that segments roll and seal
 * all the time, and a kill often lands in the middle of a seal), prints `ready`, then runs
 * {@link WRITERS} concurrent writer loops. Writer k appends batches of 1–5 events to its own
 * stream `w<k>` with a numeric expected revision (`'no_stream'` for a new stream), and about
 * every 5th append is an atomic `appendMany` over its own two streams `m<k>a` and `m<k>b`. Each
 * writer first reads its streams' heads, so it continues where earlier rounds (and the test
 * process) left them.
 *
 * Every event's data is `{ writer, appendId, index, count }`: `appendId` is unique across rounds,
 * `index` is the event's place among the `count` events the append wrote to that stream.
 *
 * After each append resolves (is acknowledged) one line goes to stdout (synchronous for pipes
 * on Linux, so a printed line is never lost to the kill that follows):
 *   {"appendId":…,"results":[{"streamId","nextExpectedRevision","position"}…],"ids":[…]}
 * `ids` are the event ids in the order written: the first request's, then the second's.
 * Anything unexpected (an append rejected, open failing) goes to stderr and exits with code 1,
 * which the test reports.
 */
import { randomUUID } from 'node:crypto';
import { EventStore } from '../../lib/index.js';
import type { AppendRequest, EventData, ExpectedRevision } from '../../lib/index.js';
import { seededRandom } from './random.js';

const rng = (seed: number): (() => number) => seededRandom(seed).next;

export const WRITERS = 32;
/** Probability that an append is a two-stream appendMany. */
const MANY_SHARE = 0.2;

export interface AckLine {
  readonly appendId: string;
  readonly results: readonly { readonly streamId: string; readonly nextExpectedRevision: number; readonly position: number }[];
  readonly ids: readonly string[];
}

export interface CrashEventData {
  readonly writer: number;
  readonly appendId: string;
  readonly index: number;
  readonly count: number;
}


function fail(what: string, err: unknown): never {
  process.stderr.write(`crash-child: ${what}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}

const [dir, roundArg, seedArg] = process.argv.slice(2);
if (dir === undefined || roundArg === undefined) fail('usage', 'crash-child.ts <dir> <round> [seed]');
const round = Number(roundArg);
const seed = Number(seedArg ?? 0);

const store = await EventStore.open({ dir, durability: 'fsync', segmentBytes: 16 * 1024, indexIntervalBytes: 256, indexCheckpointEvents: 200 }).catch((err: unknown) => fail('open', err));
process.stdout.write('ready\n');

function events(writer: number, appendId: string, count: number): EventData<CrashEventData>[] {
  return Array.from({ length: count }, (_, index) => ({ type: 'CrashTested', id: randomUUID(), data: { writer, appendId, index, count } }));
}

function expected(revision: number): ExpectedRevision {
  return revision < 0 ? 'no_stream' : revision;
}

async function writer(k: number): Promise<never> {
  const random = rng((seed ^ Math.imul(round + 1, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b)) >>> 0);
  const batchSize = (): number => 1 + Math.floor(random() * 5);
  const streams = { single: `w${k}`, a: `m${k}a`, b: `m${k}b` };
  const revisions = new Map<string, number>();
  for (const streamId of Object.values(streams)) revisions.set(streamId, (await store.streamHead(streamId))?.revision ?? -1);
  for (let n = 0; ; n++) {
    const appendId = `${round}-${k}-${n}`;
    const requests: AppendRequest[] =
      random() < MANY_SHARE
        ? [streams.a, streams.b].map((streamId) => ({ streamId, events: events(k, appendId, batchSize()), expectedRevision: expected(revisions.get(streamId)!) }))
        : [{ streamId: streams.single, events: events(k, appendId, batchSize()), expectedRevision: expected(revisions.get(streams.single)!) }];
    const results =
      requests.length === 1
        ? [await store.appendToStream(requests[0]!.streamId, requests[0]!.events, { expectedRevision: requests[0]!.expectedRevision! })]
        : await store.appendMany(requests);
    const line: AckLine = {
      appendId,
      results: results.map((r, i) => ({ streamId: requests[i]!.streamId, nextExpectedRevision: r.nextExpectedRevision, position: r.position })),
      ids: requests.flatMap((r) => r.events.map((e) => e.id!)),
    };
    process.stdout.write(JSON.stringify(line) + '\n');
    results.forEach((r, i) => revisions.set(requests[i]!.streamId, r.nextExpectedRevision));
  }
}

for (let k = 0; k < WRITERS; k++) writer(k).catch((err: unknown) => fail(`writer ${k}`, err));
