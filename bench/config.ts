/**
 * Benchmark configuration from the environment:
 *   BENCH_ONLY=W1,W3   run only these workloads (W1–W5); the raw baselines run with W1 / W2
 *   BENCH_SCALE=0.1    multiply the event counts (a quick run); streams keep 1,000 events each
 */
export const WORKLOADS = ['W1', 'W2', 'W3', 'W4', 'W5'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface BenchConfig {
  readonly only: ReadonlySet<Workload>;
  readonly scale: number;
  /** W1 and raw baseline (a): sequential durable appends. */
  readonly w1Appends: number;
  /** W1 and W2 run interleaved with their raw baselines in this many rounds (fdatasync latency drifts). */
  readonly rounds: number;
  /** W2 and raw baseline (b): concurrent writers and total events. */
  readonly w2Writers: number;
  readonly w2Events: number;
  /** W3 dataset: streams × eventsPerStream events in appends of eventsPerAppend. */
  readonly w3Streams: number;
  readonly w3EventsPerStream: number;
  readonly w3EventsPerAppend: number;
  /** Raw baseline (a′) of W3: this many write + fdatasync of w3EventsPerAppend records. */
  readonly w3RawBatches: number;
  readonly w3Rounds: number;
  /** W5: warm reads of one stream after the first one. */
  readonly w5WarmReads: number;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const scale = env.BENCH_SCALE === undefined || env.BENCH_SCALE === '' ? 1 : Number(env.BENCH_SCALE);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 10) throw new Error(`BENCH_SCALE must be a number in (0, 10], got '${env.BENCH_SCALE}'`);
  let only: Set<Workload>;
  if (env.BENCH_ONLY === undefined || env.BENCH_ONLY.trim() === '') {
    only = new Set(WORKLOADS);
  } else {
    const names = env.BENCH_ONLY.split(',').map((s) => s.trim().toUpperCase()).filter((s) => s !== '');
    const unknown = names.filter((n) => !(WORKLOADS as readonly string[]).includes(n));
    if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown workload(s) ${unknown.join(', ')}; known: ${WORKLOADS.join(', ')}`);
    only = new Set(names as Workload[]);
  }
  const scaled = (n: number, min = 1): number => Math.max(min, Math.round(n * scale));
  return {
    only,
    scale,
    w1Appends: scaled(3_000, 50),
    rounds: 20,
    w2Writers: 64,
    w2Events: scaled(30_000, 640),
    w3Streams: scaled(1_000, 2),
    w3EventsPerStream: 1_000,
    w3EventsPerAppend: 100,
    w3RawBatches: scaled(2_000, 20),
    w3Rounds: 10,
    w5WarmReads: 20,
  };
}
