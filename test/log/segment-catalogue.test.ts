import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CorruptFileError, isColdstreamError } from '../../lib/errors.js';
import { crc32c } from '../../lib/log/crc.js';
import { CATALOGUE_HEADER_BYTES, decodeCatalogue, encodeCatalogue, encodeCatalogueRecord } from '../../lib/log/segment-catalogue.js';
import { SegmentLog } from '../../lib/log/segment-log.js';
import { decodeSidecar, encodeSidecar, type SegmentSidecar } from '../../lib/log/sidecar.js';
import { buildLog, catalogueOf, expectRecovered, fileOf, restore, rng, snapshot, uncatalogueFrom, type WrittenBatch } from '../helpers/log-fixture.js';
import { logOptions } from '../helpers/log.js';
import { useTempDir } from '../helpers/temp-dir.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MANY_SEGMENTS = fileURLToPath(new URL('../fixtures/many-segments.ts', import.meta.url));

function sidecar(basePosition: number, lastPosition: number, attachments: SegmentSidecar['attachments'] = {}): SegmentSidecar {
  return {
    formatVersion: 1,
    basePosition,
    lastPosition,
    firstTimestamp: 1_700_000_000_000 + basePosition,
    lastTimestamp: 1_700_000_000_000 + (lastPosition % 1_000_000),
    data: { bytes: 1000 + basePosition, crc32c: (0x9e37_79b9 * (basePosition + 1)) >>> 0 },
    index: { bytes: 8 * basePosition, crc32c: 0xffff_ffff },
    attachments,
  };
}

/** Three chained sidecars, with no, one and two attachments (one of them with a non-ASCII suffix). */
const SIDECARS: readonly SegmentSidecar[] = [
  sidecar(0, 9),
  sidecar(10, 10, { '.streams': { bytes: 77, crc32c: 0x1234_5678 } }),
  sidecar(11, Number.MAX_SAFE_INTEGER - 1, { '.streams': { bytes: Number.MAX_SAFE_INTEGER, crc32c: 0 }, '.zusätze': { bytes: 0, crc32c: 1 } }),
];

describe('segment catalogue records', () => {
  const whole = encodeCatalogue(SIDECARS);
  const ends = SIDECARS.map((_, i) => CATALOGUE_HEADER_BYTES + SIDECARS.slice(0, i + 1).reduce((bytes, s) => bytes + encodeCatalogueRecord(s).length, 0));

  it('decodes the sidecars it encoded, so that they encode to the same sidecar files', () => {
    const { records, validBytes, damage } = decodeCatalogue(whole);
    expect(damage).to.equal(undefined);
    expect(validBytes).to.equal(whole.length);
    expect(records.sidecars()).to.deep.equal(SIDECARS);
    expect(records.sidecars().map(encodeSidecar)).to.deep.equal(SIDECARS.map(encodeSidecar));
    expect([0, 1, 2].map((i) => [records.basePositionAt(i), records.nextPositionAt(i), records.dataBytesAt(i)])).to.deep.equal(
      SIDECARS.map((s) => [s.basePosition, s.lastPosition + 1, s.data.bytes]),
    );
    expect([0, 9, 10, 11, 12, 2 ** 40].map((position) => records.indexOf(position))).to.deep.equal([0, 0, 1, 2, 2, 2]);
    expect(decodeCatalogue(encodeCatalogue([])).records.count).to.equal(0);
  });

  it('cuts a torn last record, wherever the tear, and zeros where the file grew without its data', () => {
    for (let cut = ends[1]!; cut < whole.length; cut++) {
      const { records, validBytes, damage } = decodeCatalogue(whole.subarray(0, cut));
      expect({ count: records.count, validBytes, damage }, `cut at ${cut}`).to.deep.equal({ count: 2, validBytes: ends[1], damage: undefined });
    }
    for (const zeros of [1, 8, 64, 4096]) {
      const torn = Buffer.concat([whole.subarray(0, ends[1]), Buffer.alloc(zeros)]);
      expect(decodeCatalogue(torn).validBytes, `${zeros} zeros`).to.equal(ends[1]);
    }
    const lastFlipped = Buffer.from(whole);
    lastFlipped[ends[1]! + 20] = lastFlipped[ends[1]! + 20]! ^ 0x10; // Damage to the last record cannot be told from a tear.
    const { validBytes, damage } = decodeCatalogue(lastFlipped);
    expect({ validBytes, damage }).to.deep.equal({ validBytes: ends[1], damage: undefined });
  });

  it('reports damage before the last record, at any byte, instead of cutting there', () => {
    for (let at = CATALOGUE_HEADER_BYTES; at < ends[1]!; at++) {
      const damaged = Buffer.from(whole);
      damaged[at] = damaged[at]! ^ (1 << (at % 8));
      const { records, damage } = decodeCatalogue(damaged);
      expect(damage, `byte ${at} flipped`).to.be.a('string');
      expect(records.count).to.equal(0);
    }
  });

  it('reports a gap in the chain of positions, and a bad header, as damage', () => {
    const gap = encodeCatalogue([SIDECARS[0]!, SIDECARS[2]!]);
    expect(decodeCatalogue(gap).damage).to.match(/11\.\.\d+, where 10 comes next/);
    // A record ending before it starts, with a CRC that holds (the encoder refuses to write one).
    const backwards = encodeCatalogue([sidecar(0, 9), sidecar(10, 12)]);
    const last = CATALOGUE_HEADER_BYTES + encodeCatalogueRecord(sidecar(0, 9)).length;
    backwards.writeUInt32LE(9, last + 16);
    backwards.writeUInt32LE(crc32c(backwards.subarray(last + 8)), last + 4);
    expect(decodeCatalogue(backwards).damage).to.match(/10\.\.9/);
    for (const header of [0, 4]) {
      const damaged = Buffer.from(whole);
      damaged[header] = damaged[header]! ^ 0x01;
      expect(decodeCatalogue(damaged).damage, `header byte ${header}`).to.be.a('string');
    }
    expect(decodeCatalogue(Buffer.from('CSC')).damage).to.equal('bad header');
  });
});

describe('SegmentLog with its segment catalogue', () => {
  const tmp = useTempDir();

  const bases = (written: readonly WrittenBatch[]): number[] => [...new Set(written.map((b) => b.segmentBase))];
  const sealedBases = (written: readonly WrittenBatch[]): number[] => bases(written).slice(0, -1);
  const catalogue = (): Buffer => fs.readFileSync(catalogueOf(tmp.path));
  const sidecarFile = (base: number): string => fileOf(tmp.path, base, '.sealed');

  it('holds every sealed segment, in order, exactly as its sidecar', async () => {
    const written = await buildLog(tmp.path, 301, 6);
    const fromSidecars = sealedBases(written).map((base) => decodeSidecar(sidecarFile(base), fs.readFileSync(sidecarFile(base))));
    expect(decodeCatalogue(catalogue()).records.sidecars()).to.deep.equal(fromSidecars);
  });

  it('opens from the catalogue alone, reading no sidecar, and goes on appending to it', async () => {
    const written = await buildLog(tmp.path, 302, 6);
    for (const base of sealedBases(written)) fs.writeFileSync(sidecarFile(base), 'not read');
    await expectRecovered(tmp.path, written, 'sidecars of garbage', () => {
      for (const base of sealedBases(written)) expect(fs.readFileSync(sidecarFile(base), 'utf8'), `sidecar of ${base}`).to.equal('not read');
    });
    const log = await SegmentLog.open(logOptions(tmp.path));
    try {
      for (let i = 0; i < 40; i++) await log.append([Buffer.alloc(100, i)]).committed;
      await log.flush();
      const sealed = log.segmentInfos().filter((s) => s.sealed);
      expect(sealed.length).to.be.greaterThan(sealedBases(written).length + 2);
      const records = decodeCatalogue(catalogue()).records;
      expect(records.sidecars().map((s) => [s.basePosition, s.lastPosition + 1, s.data.bytes])).to.deep.equal(sealed.map((s) => [s.basePosition, s.nextPosition, s.bytes]));
    } finally {
      await log.close();
    }
  });

  it('cuts a torn last record and catalogues its segment again from its sidecar, reading no other', async () => {
    const written = await buildLog(tmp.path, 303, 6);
    const [first] = sealedBases(written) as [number];
    const snap = snapshot(tmp.path);
    const pristine = catalogue();
    const lastRecordAt = pristine.length - encodeCatalogueRecord(decodeCatalogue(pristine).records.sidecars().at(-1)!).length;
    const tears: [string, () => void][] = [
      ['cut after its length', () => fs.truncateSync(catalogueOf(tmp.path), lastRecordAt + 4)],
      ['cut in its middle', () => fs.truncateSync(catalogueOf(tmp.path), lastRecordAt + 40)],
      ['cut before its last byte', () => fs.truncateSync(catalogueOf(tmp.path), pristine.length - 1)],
      ['zeros in its place', () => fs.writeFileSync(catalogueOf(tmp.path), Buffer.concat([pristine.subarray(0, lastRecordAt), Buffer.alloc(70)]))],
      ['zeros after it', () => fs.appendFileSync(catalogueOf(tmp.path), Buffer.alloc(100))],
    ];
    for (const [what, tear] of tears) {
      restore(tmp.path, snap);
      tear();
      fs.writeFileSync(sidecarFile(first), 'not read'); // Read (and rebuilt) only if the whole catalogue were rebuilt.
      await expectRecovered(tmp.path, written, what, () => {
        expect(catalogue().equals(pristine), `catalogue after ${what}`).to.equal(true);
        expect(fs.readFileSync(sidecarFile(first), 'utf8')).to.equal('not read');
      });
    }
  });

  it('rebuilds from the sidecars a catalogue damaged before its last record', async () => {
    const written = await buildLog(tmp.path, 304, 6);
    const [first, second] = sealedBases(written) as [number, number];
    const snap = snapshot(tmp.path);
    const pristine = catalogue();
    const sidecars = decodeCatalogue(pristine).records.sidecars();
    const firstSidecar = fs.readFileSync(sidecarFile(first), 'utf8');
    const random = rng(5);
    const damages: [string, () => void][] = [
      ['a byte flipped in the first record', () => fs.writeFileSync(catalogueOf(tmp.path), flip(pristine, CATALOGUE_HEADER_BYTES + random.int(60)))],
      ['a byte flipped in a middle record', () => fs.writeFileSync(catalogueOf(tmp.path), flip(pristine, CATALOGUE_HEADER_BYTES + encodeCatalogueRecord(sidecars[0]!).length + 30))],
      ['a record missing from the chain', () => fs.writeFileSync(catalogueOf(tmp.path), encodeCatalogue(sidecars.filter((s) => s.basePosition !== second)))],
      ['a bad header', () => fs.writeFileSync(catalogueOf(tmp.path), flip(pristine, 1))],
      ['garbage', () => fs.writeFileSync(catalogueOf(tmp.path), 'garbage, and more garbage than a header')],
    ];
    for (const [what, damage] of damages) {
      restore(tmp.path, snap);
      damage();
      // A rebuild reads every sidecar; one missing before sealed segments is rebuilt from the data.
      fs.rmSync(sidecarFile(first));
      await expectRecovered(tmp.path, written, what, () => {
        expect(catalogue().equals(pristine), `catalogue after ${what}`).to.equal(true);
        expect(fs.readFileSync(sidecarFile(first), 'utf8'), `sidecar after ${what}`).to.equal(firstSidecar);
      });
    }
  });

  it('builds the catalogue of a log written before it existed from its sidecars', async () => {
    const written = await buildLog(tmp.path, 305, 6);
    const pristine = catalogue();
    fs.rmSync(catalogueOf(tmp.path));
    await expectRecovered(tmp.path, written, 'no catalogue', () => expect(catalogue().equals(pristine)).to.equal(true));
  });

  it('catalogues on open the segments sealed just before a crash whose records were never appended', async () => {
    const written = await buildLog(tmp.path, 306, 6);
    const snap = snapshot(tmp.path);
    const pristine = catalogue();
    const sealed = sealedBases(written);
    for (const missing of [1, 3, sealed.length]) {
      restore(tmp.path, snap);
      uncatalogueFrom(tmp.path, sealed[sealed.length - missing]!);
      expect(catalogue().length).to.be.lessThan(pristine.length);
      await expectRecovered(tmp.path, written, `${missing} records missing`, () => expect(catalogue().equals(pristine)).to.equal(true));
    }
  });

  it('opens a catalogued segment whose data file is gone, and fails only reading it, with CorruptFileError', async () => {
    const written = await buildLog(tmp.path, 307, 6);
    const [, gone] = sealedBases(written) as [number, number];
    for (const suffix of ['.log', '.index', '.sealed']) fs.rmSync(fileOf(tmp.path, gone, suffix));
    for (let round = 0; round < 2; round++) {
      const log = await SegmentLog.open(logOptions(tmp.path));
      try {
        expect(log.segmentInfos().find((s) => s.basePosition === gone)).to.include({ sealed: true, logFile: fileOf(tmp.path, gone, '.log') });
        const inGone = written.filter((b) => b.segmentBase === gone);
        const error = await log.readForward(inGone[0]!.basePosition).then(() => undefined, (e: unknown) => e);
        expect(error).to.be.instanceOf(CorruptFileError);
        expect(isColdstreamError(error, 'CORRUPT_FILE')).to.equal(true);
        // Every other segment reads as written.
        for (const batch of written.filter((b) => b.segmentBase !== gone)) {
          const [read] = await log.readForward(batch.basePosition, 1);
          expect(read!.records.map((r) => r.toString('hex')), `batch at ${batch.basePosition}`).to.deep.equal(batch.records.map((r) => r.toString('hex')));
        }
        await log.append([Buffer.from('after')]).committed;
      } finally {
        await log.close();
      }
    }
  });

  it('opens more than 2,000 sealed segments under a limit of 256 open files, and rebuilds their catalogue under it', async function () {
    this.timeout(120_000);
    const segments = 2_100;
    const run = async (...args: string[]) => {
      const command = `ulimit -n 256 && exec "${process.execPath}" --import tsx "${MANY_SEGMENTS}" ${args.map((a) => `"${a}"`).join(' ')}`;
      const { stdout } = await promisify(execFile)('bash', ['-c', command], { cwd: ROOT });
      return stdout;
    };
    await run('build', tmp.path, String(segments));
    const opened = [JSON.parse(await run('open', tmp.path, '3'))];
    fs.rmSync(catalogueOf(tmp.path));
    opened.push(JSON.parse(await run('open', tmp.path)), JSON.parse(await run('open', tmp.path)));
    for (const [i, result] of opened.entries()) {
      expect(result, `open ${i}`).to.include({ segments: segments + 1, sealed: segments });
      if (result.fdsOpen !== null) expect(result.fdsOpen - result.fdsBefore, `files held open by the log, open ${i}`).to.be.at.most(3);
    }
    console.log(
      `      open of ${segments} sealed segments: ${opened[0].openMs.join(', ')} ms (cold, then warm); ` +
        `rebuilding the catalogue from the sidecars: ${opened[1].openMs[0]} ms, then ${opened[2].openMs[0]} ms`,
    );
  });
});

function flip(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[at] = copy[at]! ^ 0x04;
  return copy;
}
