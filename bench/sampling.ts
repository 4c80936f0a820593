/**
 * Timing helpers for the durable-append comparisons.
 *
 * fdatasync latency on a shared virtual disk varies by orders of magnitude from one second to
 * the next (stalls of 100+ ms next to 0.2 ms calls), so a coldstream workload and its raw
 * baseline are not measured one after the other but interleaved: `rounds` rounds, each running
 * a slice of both, in ABBA order so that drift hits both alike. Rates are totals over all rounds;
 * the per-round ratios show the spread.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { latencySummary, median, perSecond, round } from './report.js';

export interface Sample {
  readonly events: number;
  readonly ms: number;
  readonly latencies: number[];
  /** fdatasync calls made during the sample, when counted ({@link countSyncs}). */
  readonly syncs?: number;
}

/** `count` sequential calls of `appendOne` (each writing `eventsPerCall` events), each timed. */
export async function sequential(count: number, appendOne: (i: number) => Promise<unknown>, eventsPerCall = 1): Promise<Sample> {
  const latencies: number[] = new Array(count);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await appendOne(i);
    latencies[i] = performance.now() - t0;
  }
  return { events: count * eventsPerCall, ms: performance.now() - start, latencies };
}

/** `writers` concurrent loops of `perWriter` sequential calls of `appendOne(writer, i)`. */
export async function concurrent(writers: number, perWriter: number, appendOne: (writer: number, i: number) => Promise<unknown>): Promise<Sample> {
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < perWriter; i++) {
        const t0 = performance.now();
        await appendOne(w, i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { events: writers * perWriter, ms: performance.now() - start, latencies };
}

export interface Aggregate {
  readonly events: number;
  readonly ms: number;
  readonly eventsPerSec: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  /** Events per second of each round. */
  readonly rounds: number[];
  readonly syncs?: number;
  readonly eventsPerSync?: number;
}

export function aggregate(samples: readonly Sample[]): Aggregate {
  const events = samples.reduce((n, s) => n + s.events, 0);
  const ms = samples.reduce((n, s) => n + s.ms, 0);
  const counted = samples.every((s) => s.syncs !== undefined);
  const syncs = counted ? samples.reduce((n, s) => n + s.syncs!, 0) : undefined;
  return {
    events,
    ms: round(ms, 1),
    eventsPerSec: perSecond(events, ms),
    ...latencySummary(samples.flatMap((s) => s.latencies)),
    rounds: samples.map((s) => perSecond(s.events, s.ms)),
    ...(syncs === undefined ? {} : { syncs, eventsPerSync: round(events / syncs, 1) }),
  };
}

export interface Comparison {
  readonly subject: Aggregate;
  readonly baseline: Aggregate;
  /** subject events/s ÷ baseline events/s, over all rounds. */
  readonly ratio: number;
  readonly ratioMedianOfRounds: number;
  readonly ratioMinOfRounds: number;
  readonly ratioMaxOfRounds: number;
}

/**
 * Runs `rounds` rounds of `a(round)` and `b(round)` in ABBA order (a first on even rounds), so
 * that drift in the machine weighs on both alike; returns their results in round order.
 */
export async function alternate<A, B>(rounds: number, a: (round: number) => Promise<A>, b: (round: number) => Promise<B>): Promise<[A[], B[]]> {
  const as: A[] = [];
  const bs: B[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      as.push(await a(r));
      bs.push(await b(r));
    } else {
      bs.push(await b(r));
      as.push(await a(r));
    }
  }
  return [as, bs];
}

/**
 * Runs `rounds` rounds of every runner, in an order that turns and reverses from round to round
 * (for three: ABC, CBA, BCA, ACB, CAB, BAC), so that over a multiple of 2·runners rounds each
 * runner has each place equally often; returns each runner's results in round order.
 */
export async function rotate<T>(rounds: number, runners: readonly ((round: number) => Promise<T>)[]): Promise<T[][]> {
  const results: T[][] = runners.map(() => []);
  const k = runners.length;
  for (let r = 0; r < rounds; r++) {
    const order = Array.from({ length: k }, (_, i) => (i + (r >> 1)) % k);
    if (r % 2 === 1) order.reverse();
    for (const i of order) results[i]!.push(await runners[i]!(r));
  }
  return results;
}

/** Runs `rounds` rounds of `subject(round)` and `baseline(round)` in ABBA order. */
export async function interleaved(rounds: number, subject: (round: number) => Promise<Sample>, baseline: (round: number) => Promise<Sample>): Promise<Comparison> {
  const [b, s] = await alternate(rounds, baseline, subject);
  return compare(s, b);
}

/** Rates of `s` against `b` (samples of the same rounds): over all rounds, and the spread of the per-round ratios. */
export function compare(s: readonly Sample[], b: readonly Sample[]): Comparison {
  const subjectAgg = aggregate(s);
  const baselineAgg = aggregate(b);
  const perRound = s.map((x, r) => (x.events / x.ms) / (b[r]!.events / b[r]!.ms));
  return {
    subject: subjectAgg,
    baseline: baselineAgg,
    ratio: round(subjectAgg.eventsPerSec / baselineAgg.eventsPerSec, 3),
    ratioMedianOfRounds: round(median(perRound), 3),
    ratioMinOfRounds: round(Math.min(...perRound), 3),
    ratioMaxOfRounds: round(Math.max(...perRound), 3),
  };
}

/** Flushes the system's dirty pages (`sync`) so that earlier workloads' writeback does not land in the next measurement. */
export function settleDisk(): void {
  try {
    execFileSync('sync', { stdio: 'ignore', timeout: 60_000 });
  } catch {
    // Not available: measure anyway.
  }
}

/**
 * Counts calls of `fs[name]` (the callback API, which the log and the raw baselines use) while
 * `run` runs. Instrumentation of the harness only: every call goes through unchanged.
 */
export async function countFsCalls<T>(name: 'fdatasync' | 'read', run: () => Promise<T>): Promise<{ result: T; calls: number }> {
  const target = fs as unknown as Record<string, (...args: unknown[]) => unknown>;
  const original = target[name]!;
  let calls = 0;
  target[name] = (...args: unknown[]) => {
    calls++;
    return original(...args);
  };
  try {
    return { result: await run(), calls };
  } finally {
    target[name] = original;
  }
}

/** `sample` with the fdatasync calls it made. */
export async function countSyncs(sample: () => Promise<Sample>): Promise<Sample> {
  const { result, calls } = await countFsCalls('fdatasync', sample);
  return { ...result, syncs: calls };
}
