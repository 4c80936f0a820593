/**
 * Crash recovery end to end: a child process (test/helpers/crash-child.ts) appends from 32
 * concurrent writers with `fsync` durability and is SIGKILLed at a random moment, over and over,
 * on the same directory. After every kill the store is opened here and checked:
 *
 * - every acknowledged append of every round so far is there: each event id at the stream,
 *   revision and position the append was acknowledged with, with its data;
 * - no append is partly there, acknowledged or not: grouped by `data.appendId`, each stream has
 *   exactly `data.count` events of the append (indexes 0…count−1 at consecutive revisions), the
 *   whole append sits at consecutive positions, and a two-stream append has both streams;
 * - `readAll` positions are dense 0…n−1 (n = commitPosition), event ids are unique;
 * - each stream's revisions are dense 0…head, `readStream` agrees with `readAll` (whole every
 *   few rounds and at the end, otherwise from where the previous check stopped), and
 *   `streamHead` agrees with `readStream` backwards with maxCount 1;
 * - appends go on after recovery (one from this process per round, checked in later rounds).
 *
 * The kill delays and the child's batch sizes come from a seeded PRNG; the seed is printed.
 * Rerun with CRASH_SEED=<seed> (and CRASH_ROUNDS=<n>) to replay them. Thread timing is not
 * replayable, so a seed makes a failure likely, not certain, to come back. A failing run keeps
 * its store directory and prints where it is. CRASH_VERBOSE=1 prints a line per round.
 *
 *   npx mocha test/store/crash.test.ts      (about 40–60 s)
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventStore } from '../../lib/index.js';
import type { RecordedEvent } from '../../lib/index.js';
import type { AckLine, CrashEventData } from '../helpers/crash-child.js';
import { onLines } from '../helpers/lines.js';
import { seededRandom } from '../helpers/random.js';

const rng = (seed: number): (() => number) => seededRandom(seed).next;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../helpers/crash-child.ts', import.meta.url));
// A small memtable, so that kills land in the middle of index flushes as well as appends and seals.
const OPTIONS = { durability: 'fsync', segmentBytes: 16 * 1024, indexIntervalBytes: 256, indexCheckpointEvents: 200 } as const;
const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 25);
const MIN_KILL_MS = 50;
const MAX_KILL_MS = 400;
const READY_TIMEOUT_MS = 20_000;
/** The writer number in the data of the events this process appends. */
const TEST_WRITER = -1;
/** Each stream is compared whole with readStream every this many rounds, and at the end. */
const FULL_READ_EVERY = 5;


/** An acknowledged append, as the child (or this process) reported it. */
interface Ack extends AckLine {
  readonly round: number;
  readonly writer: number;
}

interface ChildRun {
  readonly acks: Ack[];
  /** Bytes after the last newline when the child died (a line cut by the kill; not counted). */
  readonly tornLine: string;
}

/** Runs the child for one round: waits for `ready`, then `killAfterMs`, SIGKILLs it and waits for it to be gone. */
function runChild(dir: string, round: number, seed: number, killAfterMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(round), String(seed)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: Ack[] = [];
    let stderr = '';
    let ready = false;
    let killed = false;
    let badLine: string | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      killed = true;
      child.kill('SIGKILL');
    };
    const readyTimer = setTimeout(kill, READY_TIMEOUT_MS);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    const tornLine = onLines(child.stdout, (line) => {
      if (line === 'ready') {
        ready = true;
        clearTimeout(readyTimer);
        killTimer = setTimeout(kill, killAfterMs);
        return;
      }
      try {
        const ack = JSON.parse(line) as AckLine;
        acks.push({ ...ack, round, writer: Number(ack.appendId.split('-')[1]) });
      } catch {
        badLine ??= line;
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(readyTimer);
      clearTimeout(killTimer);
      const why = `round ${round} (seed ${seed})`;
      if (!ready) reject(new Error(`${why}: the child never printed ready (exit code ${code}, signal ${signal}); stderr:\n${stderr}`));
      else if (!killed || signal !== 'SIGKILL') reject(new Error(`${why}: the child ended by itself (exit code ${code}, signal ${signal}); stderr:\n${stderr}`));
      else if (badLine !== undefined) reject(new Error(`${why}: unparsable line from the child: ${badLine}`));
      else resolve({ acks, tornLine: tornLine() });
    });
  });
}

interface Verified {
  readonly events: number;
  readonly streams: number;
  /** Events per stream. */
  readonly streamLengths: ReadonlyMap<string, number>;
  /** Appends found on disk that were never acknowledged (the kill came between write and ack line). */
  readonly unacknowledged: readonly string[];
}

/**
 * Checks everything the module comment lists; throws listing the first problems found.
 * `readStreamFrom` (stream → revision) limits the readStream comparison to each stream's events
 * from that revision on (still walking the stream's index chain back to it): the events that
 * an earlier check did not cover. Without it every stream is read whole.
 */
async function verify(store: EventStore, acks: readonly Ack[], label: string, readStreamFrom?: ReadonlyMap<string, number>): Promise<Verified> {
  const problems: string[] = [];
  const problem = (message: string): void => void (problems.length < 40 && problems.push(message));

  // readAll: dense positions, unique ids, and every stream's events in position order.
  const all: RecordedEvent<CrashEventData>[] = [];
  for await (const event of store.readAll()) all.push(event as RecordedEvent<CrashEventData>);
  if (store.commitPosition !== all.length) problem(`readAll yields ${all.length} events but commitPosition is ${store.commitPosition}`);
  if (store.nextPosition !== store.commitPosition) problem(`nextPosition ${store.nextPosition} != commitPosition ${store.commitPosition} right after open`);
  const ids = new Set<string>();
  const streams = new Map<string, RecordedEvent<CrashEventData>[]>();
  all.forEach((event, i) => {
    if (event.position !== i) problem(`readAll event #${i} has position ${event.position}`);
    if (ids.has(event.id)) problem(`event id ${event.id} appears twice (position ${event.position})`);
    ids.add(event.id);
    let list = streams.get(event.streamId);
    if (list === undefined) streams.set(event.streamId, (list = []));
    if (event.revision !== list.length) problem(`stream ${event.streamId}: event at position ${event.position} has revision ${event.revision}, expected ${list.length} (revisions must be dense, without duplicates)`);
    list.push(event);
  });

  // Each stream: readStream agrees with readAll; streamHead agrees with the last event.
  const key = (e: RecordedEvent): string => `${e.revision}@${e.position}:${e.id}`;
  for (const [streamId, list] of streams) {
    const from = Math.min(readStreamFrom?.get(streamId) ?? 0, list.length - 1);
    const read: RecordedEvent[] = [];
    for await (const event of store.readStream(streamId, { fromRevision: from })) read.push(event);
    const expected = list.slice(from);
    if (read.length !== expected.length || read.some((e, i) => key(e) !== key(expected[i]!))) {
      const at = read.findIndex((e, i) => expected[i] === undefined || key(e) !== key(expected[i]!));
      problem(`stream ${streamId}: readStream from revision ${from} (${read.length} events) differs from readAll (${expected.length}) at index ${at}: ${read[at] && key(read[at])} vs ${expected[at] && key(expected[at])}`);
    }
    const head = await store.streamHead(streamId);
    const last: RecordedEvent[] = [];
    for await (const event of store.readStream(streamId, { direction: 'backwards', maxCount: 1 })) last.push(event);
    const lastAll = list[list.length - 1]!;
    if (head === undefined || head.revision !== lastAll.revision || head.position !== lastAll.position) {
      problem(`stream ${streamId}: streamHead ${JSON.stringify(head)} but its last event is revision ${lastAll.revision} at ${lastAll.position}`);
    }
    if (last.length !== 1 || head === undefined || last[0]!.revision !== head.revision || last[0]!.position !== head.position || last[0]!.id !== lastAll.id) {
      problem(`stream ${streamId}: readStream backwards maxCount 1 gives ${last.map(key).join(',') || 'nothing'}, streamHead ${JSON.stringify(head)}`);
    }
  }

  // All or nothing: every append on disk, acknowledged or not, is there whole.
  const groups = new Map<string, RecordedEvent<CrashEventData>[]>();
  for (const event of all) {
    const appendId = event.data.appendId;
    let group = groups.get(appendId);
    if (group === undefined) groups.set(appendId, (group = []));
    group.push(event);
  }
  for (const [appendId, group] of groups) {
    const first = group[0]!;
    const last = group[group.length - 1]!;
    if (last.position - first.position + 1 !== group.length) problem(`append ${appendId}: its ${group.length} events are not at consecutive positions (${first.position}…${last.position})`);
    const byStream = new Map<string, RecordedEvent<CrashEventData>[]>();
    for (const event of group) {
      let part = byStream.get(event.streamId);
      if (part === undefined) byStream.set(event.streamId, (part = []));
      part.push(event);
    }
    for (const [streamId, part] of byStream) {
      part.forEach((event, i) => {
        const { count, index, writer } = event.data;
        if (part.length !== count) problem(`append ${appendId}: stream ${streamId} has ${part.length} of its events, data.count says ${count} (partial batch)`);
        if (index !== i || event.revision !== part[0]!.revision + i) problem(`append ${appendId}: stream ${streamId}: event ${event.id} has index ${index} at revision ${event.revision}, expected index ${i} at ${part[0]!.revision + i}`);
        if (writer !== first.data.writer) problem(`append ${appendId}: events of writers ${first.data.writer} and ${writer}`);
      });
    }
    const k = first.data.writer;
    const streamIds = [...byStream.keys()].sort().join(',');
    const expectedStreams = k === TEST_WRITER ? streamIds : first.streamId.startsWith('m') ? `m${k}a,m${k}b` : `w${k}`;
    if (streamIds !== expectedStreams) problem(`append ${appendId} (writer ${k}) is in streams ${streamIds}, expected ${expectedStreams} (a multi-stream append must be whole)`);
  }

  // Every acknowledged append: each event where the acknowledgement said, with its data.
  const acknowledged = new Set<string>();
  for (const ack of acks) {
    acknowledged.add(ack.appendId);
    // The events of one append are at consecutive positions: the parts' sizes follow from the positions.
    const counts = ack.results.map((r, i) => (i === 0 ? 0 : r.position - ack.results[i - 1]!.position));
    counts[0] = ack.ids.length - counts.slice(1).reduce((a, b) => a + b, 0);
    let idAt = 0;
    ack.results.forEach((result, i) => {
      const count = counts[i]!;
      if (count < 1 || count > 5) problem(`acknowledged append ${ack.appendId} (round ${ack.round}): acknowledged positions ${ack.results.map((r) => r.position).join(',')} for ${ack.ids.length} events do not fit batches of 1–5`);
      for (let j = 0; j < count; j++, idAt++) {
        const id = ack.ids[idAt];
        const position = result.position - count + 1 + j;
        const revision = result.nextExpectedRevision - count + 1 + j;
        const event = all[position];
        const where = `acknowledged append ${ack.appendId} (round ${ack.round}): event ${id} (${result.streamId} revision ${revision} at position ${position})`;
        if (event === undefined) {
          problem(`${where} is missing: the log ends at ${all.length}`);
          continue;
        }
        if (event.id !== id || event.streamId !== result.streamId || event.revision !== revision) {
          problem(`${where} is missing: position ${position} holds ${event.id} of ${event.streamId} revision ${event.revision} (appendId ${event.data.appendId})`);
          continue;
        }
        const data = event.data;
        if (data.writer !== ack.writer || data.appendId !== ack.appendId || data.index !== j || data.count !== count || Object.keys(data).length !== 4) {
          problem(`${where} has data ${JSON.stringify(data)}, expected ${JSON.stringify({ writer: ack.writer, appendId: ack.appendId, index: j, count })}`);
        }
      }
    });
  }

  if (problems.length > 0) expect.fail(`${label}: ${problems.length >= 40 ? 'at least ' : ''}${problems.length} problems:\n  ${problems.join('\n  ')}`);
  const unacknowledged = [...groups.keys()].filter((appendId) => !acknowledged.has(appendId));
  return { events: all.length, streams: streams.size, streamLengths: new Map([...streams].map(([id, list]) => [id, list.length])), unacknowledged };
}

describe('crash recovery', function () {
  it('keeps every acknowledged append through 25 SIGKILLs', async function () {
    this.timeout(Math.max(180_000, ROUNDS * 6_000));
    const seed = process.env.CRASH_SEED === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(process.env.CRASH_SEED);
    const random = rng(seed);
    console.log(`      crash test seed ${seed}: rerun with CRASH_SEED=${seed} CRASH_ROUNDS=${ROUNDS}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-crash-'));
    const acks: Ack[] = [];
    const started = Date.now();
    let childAcks = 0;
    const unacknowledgedOnDisk = new Set<string>();
    let tornLines = 0;
    let round = 0;
    let checkedLengths: ReadonlyMap<string, number> = new Map();
    let passed = false;
    try {
      for (round = 0; round < ROUNDS; round++) {
        const killAfterMs = MIN_KILL_MS + Math.floor(random() * (MAX_KILL_MS - MIN_KILL_MS + 1));
        const t0 = Date.now();
        const run = await runChild(dir, round, seed, killAfterMs);
        const t1 = Date.now();
        acks.push(...run.acks);
        childAcks += run.acks.length;
        if (run.tornLine !== '') tornLines++;

        const store = await EventStore.open({ dir, ...OPTIONS });
        try {
          // Every stream is read whole every few rounds; in between, only what the last check did not cover.
          const full = round % FULL_READ_EVERY === FULL_READ_EVERY - 1;
          const label = `after the kill of round ${round} (seed ${seed}, killed ${killAfterMs} ms after ready, ${run.acks.length} acks this round)`;
          const verified = await verify(store, acks, label, full ? undefined : checkedLengths);
          checkedLengths = verified.streamLengths;
          for (const appendId of verified.unacknowledged) unacknowledgedOnDisk.add(appendId);
          // Appends go on after recovery: one more event, to a writer's stream the next child continues.
          const streamId = `w${round % 32}`;
          const head = await store.streamHead(streamId);
          const appendId = `t-${round}`;
          const id = randomUUID();
          const data: CrashEventData = { writer: TEST_WRITER, appendId, index: 0, count: 1 };
          const result = await store.appendToStream(streamId, [{ type: 'CrashTested', id, data }], { expectedRevision: head === undefined ? 'no_stream' : head.revision });
          expect(result.nextExpectedRevision).to.equal((head?.revision ?? -1) + 1);
          acks.push({ appendId, round, writer: TEST_WRITER, ids: [id], results: [{ streamId, ...result }] });
        } finally {
          await store.close();
        }
        if (process.env.CRASH_VERBOSE !== undefined) console.log(`      round ${round}: child ${t1 - t0} ms (kill after ${killAfterMs} ms), ${run.acks.length} acks, check ${Date.now() - t1} ms`);
      }

      // The clean reopen path: after a close (heads checkpoint with the active part) everything is still there.
      const store = await EventStore.open({ dir, ...OPTIONS });
      let final: Verified;
      try {
        final = await verify(store, acks, `after a clean reopen following round ${ROUNDS - 1} (seed ${seed})`);
      } finally {
        await store.close();
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.log(
        `      ${ROUNDS} rounds in ${seconds} s: ${childAcks} acknowledged appends checked (+${ROUNDS} from the test), ` +
          `${final.events} events in ${final.streams} streams, ${unacknowledgedOnDisk.size} unacknowledged appends found whole on disk, ${tornLines} ack lines cut by the kill`,
      );
      expect(childAcks, 'acknowledged appends across rounds').to.be.greaterThan(25 * 5);
      passed = true;
    } finally {
      if (passed) fs.rmSync(dir, { recursive: true, force: true });
      else console.log(`      crash test failed in round ${round} with seed ${seed}; store kept in ${dir}`);
    }
  });
});
