/**
 * Output of the benchmark: one JSON object per line on stdout for every result, and human
 * progress messages on stderr only, so `npm run bench > results.jsonl` captures clean data.
 */

/** One result line. `bench` and `metric` name it; everything else is context. */
export interface Result {
  readonly bench: string;
  readonly metric: string;
  readonly value: number;
  readonly unit?: string;
  readonly [extra: string]: unknown;
}

/** Writes one result as a JSON line on stdout. */
export function emit(result: Result | (Record<string, unknown> & { bench: string })): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Human chatter, on stderr. */
export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Rounds to `digits` decimals (results stay readable without losing what matters). */
export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Nearest-rank percentile of an ascending array, p in [0, 100]. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** p50 / p99 / max of latencies in ms, rounded to µs. */
export function latencySummary(latenciesMs: number[]): { p50_ms: number; p99_ms: number; max_ms: number } {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return { p50_ms: round(percentile(sorted, 50), 3), p99_ms: round(percentile(sorted, 99), 3), max_ms: round(sorted[sorted.length - 1] ?? Number.NaN, 3) };
}

/** Events per second for `count` events in `ms` milliseconds. */
export function perSecond(count: number, ms: number): number {
  return round((count * 1000) / ms);
}
