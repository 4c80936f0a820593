/**
 * The stream index's memory does not grow with the number of streams: a child process creates
 * MEMORY_TEST_STREAMS one-event streams (default 1,000,000) and reports the V8 heap after a full
 * GC at a fifth of them and at all of them. Before the LMDB index every stream's head stayed in
 * the heap (about 1.4 GB at a million streams measured by RSS).
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { useTempDir } from '../helpers/temp-dir.js';

const STREAMS = Number(process.env.MEMORY_TEST_STREAMS ?? 1_000_000);
const CHILD = fileURLToPath(new URL('../fixtures/many-streams.ts', import.meta.url));
const MiB = 1 << 20;

describe('EventStore memory at many streams', function () {
  this.timeout(300_000);
  const tmp = useTempDir();

  it(`keeps the heap flat from ${STREAMS / 5} to ${STREAMS} streams, and small after a reopen`, () => {
    const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD, tmp.path, String(STREAMS)], { encoding: 'utf8' });
    const { atFifth, atEnd, afterReopen, head } = JSON.parse(out.trim().split('\n').at(-1)!) as { atFifth: number; atEnd: number; afterReopen: number; head: unknown };
    const report = `heap at ${STREAMS / 5} streams ${(atFifth / MiB).toFixed(1)} MiB, at ${STREAMS} ${(atEnd / MiB).toFixed(1)} MiB, after reopen ${(afterReopen / MiB).toFixed(1)} MiB`;
    console.log(`      ${report}`);
    expect(head).to.deep.equal({ revision: 0, position: STREAMS - 1 });
    // Four times the streams, and at most a memtable's worth more heap (65,536 events ≈ 8 MiB).
    expect(atEnd - atFifth, report).to.be.below(16 * MiB);
    expect(afterReopen, report).to.be.below(48 * MiB);
  });
});
