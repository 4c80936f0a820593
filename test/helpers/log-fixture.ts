/**
 * A small multi-segment log built from seeded random records, a snapshot of its files to
 * restore between damage trials, and checks that a reopened log holds exactly the expected
 * batches, byte for byte.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { batchBytes } from '../../lib/log/record-batch.js';
import { CATALOGUE_FILE, CATALOGUE_HEADER_BYTES, decodeCatalogue, encodeCatalogueRecord } from '../../lib/log/segment-catalogue.js';
import { SegmentLog, type SegmentLogOptions } from '../../lib/log/segment-log.js';
import { segmentFile } from '../../lib/log/segment-files.js';
import { logOptions } from './log.js';
import { seededRandom } from './random.js';

/** Seeded PRNG: `next()` in [0, 1), `int(n)` in [0, n). */
export const rng = seededRandom;


/** One appended batch and where it went. */
export interface WrittenBatch {
  readonly basePosition: number;
  readonly segmentBase: number;
  readonly byteOffset: number;
  readonly length: number;
  readonly records: Buffer[];
}

export const end = (b: WrittenBatch): number => b.byteOffset + b.length;

export function randomRecords(random: ReturnType<typeof rng>, maxRecords = 4, maxBytes = 24): Buffer[] {
  return Array.from({ length: 1 + random.int(maxRecords) }, () => {
    const record = Buffer.alloc(random.int(maxBytes + 1));
    for (let i = 0; i < record.length; i++) record[i] = random.int(256);
    return record;
  });
}

export async function appendBatch(log: SegmentLog, records: Buffer[]): Promise<WrittenBatch> {
  const receipt = log.append(records);
  await receipt.committed;
  const { basePosition, segmentBase, byteOffset } = receipt;
  return { basePosition, segmentBase, byteOffset, length: batchBytes(records), records };
}

/**
 * Appends batches of 1–4 records until there are `minSegments` segments and the active one
 * holds `minActiveBatches` batches; closes the log.
 */
export async function buildLog(dir: string, seed: number, minSegments = 3, minActiveBatches = 6): Promise<WrittenBatch[]> {
  const random = rng(seed);
  const log = await SegmentLog.open(logOptions(dir));
  const written: WrittenBatch[] = [];
  for (;;) {
    const batch = await appendBatch(log, randomRecords(random));
    written.push(batch);
    const active = written.filter((b) => b.segmentBase === batch.segmentBase);
    if (new Set(written.map((b) => b.segmentBase)).size >= minSegments && active.length >= minActiveBatches) break;
  }
  await log.close();
  return written;
}

export function activeBase(written: readonly WrittenBatch[]): number {
  return written[written.length - 1]!.segmentBase;
}

export function fileOf(dir: string, base: number, suffix: string): string {
  return segmentFile(dir, base, suffix);
}

export function catalogueOf(dir: string): string {
  return path.join(dir, CATALOGUE_FILE);
}

/**
 * Cuts the segment catalogue back to the records of the segments before `base`, as a crash
 * before their records were appended would leave it, so that open finds those segments (and
 * any damage done to their sidecars) from their own files.
 */
export function uncatalogueFrom(dir: string, base: number): void {
  const file = catalogueOf(dir);
  const kept = decodeCatalogue(fs.readFileSync(file)).records.sidecars().filter((s) => s.basePosition < base);
  fs.truncateSync(file, CATALOGUE_HEADER_BYTES + kept.reduce((bytes, s) => bytes + encodeCatalogueRecord(s).length, 0));
}

export type Snapshot = ReadonlyMap<string, Buffer>;

export function snapshot(dir: string): Snapshot {
  return new Map(fs.readdirSync(dir).map((name) => [name, fs.readFileSync(path.join(dir, name))]));
}

/** Puts the directory back to `snap` exactly (removing files created since). */
export function restore(dir: string, snap: Snapshot): void {
  for (const name of fs.readdirSync(dir)) if (!snap.has(name)) fs.rmSync(path.join(dir, name), { recursive: true });
  for (const [name, bytes] of snap) fs.writeFileSync(path.join(dir, name), bytes);
}

/** Every committed batch, walking forwards from the start of the log. */
export async function readAllBatches(log: SegmentLog): Promise<{ basePosition: number; segmentBase: number; byteOffset: number; records: Buffer[] }[]> {
  const out = [];
  let position = log.startPosition;
  for (;;) {
    const batches = await log.readForward(position, 512);
    if (batches.length === 0) return out;
    for (const b of batches) out.push({ basePosition: b.basePosition, segmentBase: b.segmentBase, byteOffset: b.byteOffset, records: b.records.map((r) => Buffer.from(r)) });
    const last = batches[batches.length - 1]!;
    position = last.basePosition + last.recordCount;
  }
}

const describeBatch = (b: { basePosition: number; segmentBase: number; byteOffset: number; records: Buffer[] }): string =>
  `${b.segmentBase}@${b.byteOffset}:${b.basePosition}[${b.records.map((r) => r.toString('hex')).join(',')}]`;

/** The log holds exactly `expected`, whole batches at their original places, and goes on at their end. */
export async function expectExactly(log: SegmentLog, expected: readonly WrittenBatch[], context: string): Promise<void> {
  const actual = await readAllBatches(log);
  expect(actual.map(describeBatch), context).to.deep.equal(expected.map(describeBatch));
  const last = expected[expected.length - 1];
  const next = last === undefined ? 0 : last.basePosition + last.records.length;
  expect(log.nextPosition, context).to.equal(next);
  expect(log.commitEnd, context).to.equal(next);
}

/**
 * Opens the damaged log and seals what a crash left unsealed, checks it holds exactly
 * `survivors`, appends one more batch, reopens and checks again.
 */
export async function expectRecovered(
  dir: string,
  survivors: readonly WrittenBatch[],
  context: string,
  afterOpen?: () => void,
  overrides: Partial<SegmentLogOptions> = {},
): Promise<void> {
  let log = await SegmentLog.open(logOptions(dir, overrides));
  let extra: WrittenBatch;
  try {
    await log.sealInterrupted();
    afterOpen?.();
    await expectExactly(log, survivors, context);
    extra = await appendBatch(log, [Buffer.from(`after ${context}`), Buffer.from([0, 255])]);
  } finally {
    await log.close();
  }
  log = await SegmentLog.open(logOptions(dir, overrides));
  try {
    await expectExactly(log, [...survivors, extra], `${context}, after an append and a reopen`);
  } finally {
    await log.close();
  }
}
