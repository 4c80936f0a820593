/**
 * Optional CPU profiles of single benchmark phases, through the in-process inspector:
 *
 *   BENCH_PROFILE=/tmp/prof BENCH_ONLY=W4 npm run bench
 *
 * writes one `<phase>.cpuprofile` per phase (W1, W2, W3-none, W3-fsync, W4-reopen, W4-readAll,
 * …) into that directory; summarise one with bench/profile-summary.ts. A whole-process
 * `--cpu-prof` cannot separate phases, and async stacks defeat filtering by caller. Unset, this
 * costs nothing.
 */
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { log } from './report.js';

const dir = process.env.BENCH_PROFILE === undefined || process.env.BENCH_PROFILE === '' ? undefined : path.resolve(process.env.BENCH_PROFILE);
let session: Session | undefined;

/** Runs `phase`, profiled into `<dir>/<name>.cpuprofile` when BENCH_PROFILE is set. */
export async function profiled<T>(name: string, phase: () => Promise<T>): Promise<T> {
  if (dir === undefined) return phase();
  if (session === undefined) {
    fs.mkdirSync(dir, { recursive: true });
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 }); // µs: short phases get enough samples
  }
  await session.post('Profiler.start');
  try {
    return await phase();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    const file = path.join(dir, `${name}.cpuprofile`);
    fs.writeFileSync(file, JSON.stringify(profile));
    log(`profile of ${name}: ${file}`);
  }
}
