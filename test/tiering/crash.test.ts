/**
 * Crash at each step of tiering's work: a child process (test/helpers/tiering-crash-child.ts)
 * appends to a store tiered to a directory (FsObjectStore) and SIGKILLs itself at one chosen
 * step: before, during (a torn object, as servers that keep an interrupted PUT leave it) or
 * after a segment's data objects, its commit object or the writer's epoch claim; or in the
 * middle of an eviction. Then this process reopens the store on the same objects and checks:
 *
 * - every acknowledged event is there, at its position, and positions are dense;
 * - tiering finishes what was cut short (drain), and leaves no sealed data locally;
 * - a scrub deletes exactly the objects the crash orphaned (none when nothing was orphaned) and
 *   finds no committed segment damaged; afterwards every object left is one a commit names;
 * - the whole log read back cold (cache emptied) equals what was read before;
 * - the store goes on appending and tiering.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FsObjectStore } from '../../adapters/fs/index.js';
import { EventStore, type RecordedEvent } from '../../lib/index.js';
import { COMMITS_PREFIX, SEGMENTS_PREFIX, decodeCommit, parseCommitKey, segmentFiles, segmentObjectKey } from '../../lib/tiering/layout.js';
import { listAll } from '../../lib/tiering/object-store.js';
import type { CrashAck, CrashStep } from '../helpers/tiering-crash-child.js';
import { onLines } from '../helpers/lines.js';
import { collect, segmentFiles as localFiles } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp-dir.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../helpers/tiering-crash-child.ts', import.meta.url));
const CHILD_TIMEOUT_MS = 30_000;
const CRASH_STREAMS = 5;

interface Scenario {
  readonly name: string;
  readonly step: CrashStep;
  /** Whether the crash leaves objects that no commit will ever name, for the scrub to delete. */
  readonly orphans: boolean;
  /** The writer epoch after the restart (1 unless the crash lost the first claim's local record). */
  readonly epoch?: number;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'before the first data object of a segment', step: { op: 'put', key: SEGMENTS_PREFIX, nth: 1, when: 'before' }, orphans: false },
  { name: 'in the middle of a data object (torn)', step: { op: 'put', key: SEGMENTS_PREFIX, nth: 1, when: 'torn' }, orphans: true },
  { name: 'after some of a segment’s objects', step: { op: 'put', key: SEGMENTS_PREFIX, nth: 2, when: 'after' }, orphans: true },
  { name: 'after every object, before the commit', step: { op: 'put', key: COMMITS_PREFIX, nth: 1, when: 'before' }, orphans: true },
  { name: 'in the middle of the commit object (torn)', step: { op: 'put', key: COMMITS_PREFIX, nth: 1, when: 'torn' }, orphans: true },
  { name: 'after the commit, before the local record', step: { op: 'put', key: COMMITS_PREFIX, nth: 1, when: 'after' }, orphans: false },
  { name: 'after the second segment’s commit', step: { op: 'put', key: COMMITS_PREFIX, nth: 2, when: 'after' }, orphans: false },
  { name: 'after the epoch claim, before it is recorded locally', step: { op: 'put', key: 'writers/', nth: 1, when: 'after' }, orphans: false, epoch: 2 },
  { name: 'in the middle of an eviction', step: { op: 'evict', nth: 1 }, orphans: false },
  { name: 'in the middle of the third eviction', step: { op: 'evict', nth: 3 }, orphans: false },
];

/** Runs the child until it kills itself; returns its acknowledgements. */
function runChild(storeDir: string, objectsDir: string, step: CrashStep, timeoutMs = CHILD_TIMEOUT_MS): Promise<CrashAck[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, storeDir, objectsDir, JSON.stringify(step), String(CRASH_STREAMS)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: CrashAck[] = [];
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    onLines(child.stdout, (line) => acks.push(JSON.parse(line) as CrashAck));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`the child did not reach its crash step (exit code ${code}, signal ${signal}, ${acks.length} acks); stderr:\n${stderr}`));
    });
  });
}

/** The keys every commit in `objects` names. */
async function referencedKeys(objects: FsObjectStore): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const info of listAll(objects, COMMITS_PREFIX)) {
    const base = parseCommitKey(info.key)!;
    const commit = decodeCommit(info.key, await objects.get(info.key), base);
    for (const [suffix] of segmentFiles(commit.sidecar)) keys.add(segmentObjectKey(base, commit.attempt, suffix));
  }
  return keys;
}

function shape(events: RecordedEvent[]): unknown[] {
  return events.map((e) => [e.position, e.streamId, e.revision, e.data]);
}

describe('tiering: a crash at each step', function () {
  this.timeout(120_000);
  const tmp = useTempDir();

  for (const scenario of SCENARIOS) {
    it(`loses nothing, finishes the work and scrubs the leftovers: ${scenario.name}`, async () => {
      // (The epoch is claimed before the first append, so that crash comes before any ack.)
      const storeDir = path.join(tmp.path, 'store');
      const objectsDir = path.join(tmp.path, 'objects');
      const acks = await runChild(storeDir, objectsDir, scenario.step);
      if (scenario.step.op !== 'put' || scenario.step.key !== 'writers/') expect(acks.length, 'appends acknowledged before the crash').to.be.greaterThan(0);

      const objects = new FsObjectStore({ dir: objectsDir });
      const open = (): Promise<EventStore> => EventStore.open({ dir: storeDir, segmentBytes: 4096, indexIntervalBytes: 256, tiering: { objectStore: objects, localRetentionBytes: 0, retryBaseMs: 5 } });
      let store = await open();
      try {
        const all = await collect(store.readAll());
        expect(all.map((e) => e.position), 'dense positions').to.deep.equal(all.map((_, i) => i));
        for (const ack of acks) {
          const event = all[ack.position];
          expect(event?.data, `acknowledged event ${ack.n}`).to.deep.include({ n: ack.n });
          expect(event?.streamId).to.equal(`s-${ack.n % CRASH_STREAMS}`);
        }

        // Goes on appending (sealing a few more segments) and tiering.
        for (let i = 0; i < 100; i++) await store.appendToStream('after', [{ type: 'After', data: { i, pad: 'y'.repeat(100) } }]);
        await store.tiering.drain();
        expect(localFiles(storeDir, '.log').length, 'sealed data left locally').to.equal(1);
        expect(store.tiering.status().epoch).to.equal(scenario.epoch ?? 1);
        const report = await store.tiering.scrub();
        expect(report.damaged).to.deep.equal([]);
        if (scenario.orphans) expect(report.deleted.length, 'orphans deleted').to.be.greaterThan(0);
        else expect(report.deleted).to.deep.equal([]);
        const referenced = await referencedKeys(objects);
        const segmentKeys = [];
        for await (const info of listAll(objects, SEGMENTS_PREFIX)) segmentKeys.push(info.key);
        expect(segmentKeys.sort()).to.deep.equal([...referenced].sort());
        expect(store.tiering.status().remoteSegments).to.be.greaterThan(0);

        store.tiering.clearCache();
        const cold = await collect(store.readAll({ maxCount: all.length }));
        expect(shape(cold)).to.deep.equal(shape(all));
        for (let s = 0; s < CRASH_STREAMS; s++) {
          expect(shape(await collect(store.readStream(`s-${s}`)))).to.deep.equal(shape(all.filter((e) => e.streamId === `s-${s}`)));
        }

        await store.close();
        store = await open();
        expect((await collect(store.readAll())).length).to.equal(all.length + 100);
        expect(store.tiering.status().lastError).to.equal(undefined);
      } finally {
        await store.close();
      }
    });
  }

  it('the child really crashes at each step (a step never reached fails the run)', async () => {
    const error = await runChild(path.join(tmp.path, 'store'), path.join(tmp.path, 'objects'), { op: 'put', key: 'no-such-prefix/', nth: 1, when: 'before' }, 3000).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(error?.message).to.match(/did not reach its crash step/);
  });
});
