import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { CorruptRecordError, isColdstreamError } from '../../lib/errors.js';
import { encodeBatch } from '../../lib/log/record-batch.js';
import { SegmentLog } from '../../lib/log/segment-log.js';
import { buildLog, catalogueOf, end, expectRecovered, fileOf, restore, rng, snapshot, uncatalogueFrom, type Snapshot, type WrittenBatch } from '../helpers/log-fixture.js';
import { logOptions } from '../helpers/log.js';
import { useTempDir } from '../helpers/temp-dir.js';

function segmentBases(written: readonly WrittenBatch[]): number[] {
  return [...new Set(written.map((b) => b.segmentBase))];
}

/** The record at `position`, as the log returns it forwards and backwards, equals the written one. */
async function expectReadableEverywhere(log: SegmentLog, written: readonly WrittenBatch[]): Promise<void> {
  const all = written.flatMap((b) => b.records.map((r, i) => ({ position: b.basePosition + i, hex: r.toString('hex') })));
  for (const { position, hex } of all) {
    const forward = (await log.readForward(position, 64))[0]!;
    expect(forward.records[position - forward.basePosition]!.toString('hex'), `forward ${position}`).to.equal(hex);
    const backward = (await log.readBackward(position, 64)).at(-1)!;
    expect(backward.basePosition, `backward ${position}`).to.be.at.most(position);
    expect(backward.records[position - backward.basePosition]!.toString('hex'), `backward ${position}`).to.equal(hex);
  }
}

// Open trusts the segment catalogue for the segments it lists and reads none of their files, so
// each test damages the sidecars of segments the catalogue does not (yet) list: cut back as a
// crash between a sidecar and its catalogue record leaves it, or missing as in a log written
// before the catalogue existed. segment-catalogue.test.ts covers damage to the catalogue itself.
describe('recovery of an interrupted seal', () => {
  const tmp = useTempDir();

  interface Built {
    readonly written: WrittenBatch[];
    readonly snap: Snapshot;
  }

  async function build(seed: number, minSegments: number): Promise<Built> {
    const written = await buildLog(tmp.path, seed, minSegments);
    return { written, snap: snapshot(tmp.path) };
  }

  /** Restores the built log, damages one (uncatalogued) segment's seal, and checks that open seals it again identically. */
  async function expectResealed(built: Built, base: number, damage: (sealedFile: string) => void, what: string): Promise<void> {
    restore(tmp.path, built.snap);
    uncatalogueFrom(tmp.path, base);
    const sealedFile = fileOf(tmp.path, base, '.sealed');
    const indexFile = fileOf(tmp.path, base, '.index');
    const sidecar = fs.readFileSync(sealedFile, 'utf8');
    const index = fs.readFileSync(indexFile);
    damage(sealedFile);
    await expectRecovered(tmp.path, built.written, what, () => {
      expect(fs.readFileSync(sealedFile, 'utf8'), `sidecar after ${what}`).to.equal(sidecar);
      expect(fs.readFileSync(indexFile).equals(index), `index after ${what}`).to.equal(true);
      expect(fs.existsSync(`${sealedFile}.tmp`)).to.equal(false);
    });
  }

  it('reseals a segment whose sidecar is missing, with identical data', async () => {
    const built = await build(101, 4);
    for (const base of segmentBases(built.written).slice(0, -1)) {
      await expectResealed(built, base, (file) => fs.rmSync(file), `sidecar of ${base} removed`);
    }
  });

  it('rebuilds on open, byte for byte, the missing sidecar of a segment followed by sealed ones', async () => {
    const built = await build(107, 3);
    const base = segmentBases(built.written)[0]!;
    const sealedFile = fileOf(tmp.path, base, '.sealed');
    const sidecar = fs.readFileSync(sealedFile, 'utf8');
    fs.rmSync(sealedFile);
    fs.rmSync(catalogueOf(tmp.path));
    // Sealing happens in order, so this is damage, not an interrupted seal: the sidecar is
    // rebuilt from the segment's files at once (no seal hook, nothing else rewritten).
    const log = await SegmentLog.open(logOptions(tmp.path));
    try {
      expect(fs.readFileSync(sealedFile, 'utf8')).to.equal(sidecar);
      expect(log.segmentInfos()[0]).to.include({ basePosition: base, sealed: true });
      await expectReadableEverywhere(log, built.written);
    } finally {
      await log.close();
    }
  });

  it('reseals a segment whose sidecar is damaged', async () => {
    const built = await build(102, 4);
    const [first, second, third] = segmentBases(built.written) as [number, number, number];
    const random = rng(7);
    const cases: [string, (file: string) => void][] = [
      ['flipped byte', (file) => fs.writeFileSync(file, flip(fs.readFileSync(file), random.int(fs.statSync(file).size - 1)))],
      ['cut in half', (file) => fs.truncateSync(file, fs.statSync(file).size >> 1)],
      ['not JSON', (file) => fs.writeFileSync(file, 'garbage\n')],
      ['empty', (file) => fs.writeFileSync(file, '')],
      ['another segment\u2019s sidecar', (file) => fs.copyFileSync(fileOf(tmp.path, first, '.sealed'), file)],
    ];
    for (const [what, damage] of cases) await expectResealed(built, second, damage, what);
    await expectResealed(built, third, (file) => fs.renameSync(file, `${file}.tmp`), 'sidecar left as a .tmp');
  });

  it('reseals a segment whose sidecar and index are both missing', async () => {
    const built = await build(103, 4);
    const base = segmentBases(built.written)[1]!;
    await expectResealed(built, base, (file) => {
      fs.rmSync(file);
      fs.rmSync(fileOf(tmp.path, base, '.index'));
    }, 'sidecar and index removed');
  });

  it('reseals several consecutive unsealed segments in order', async () => {
    const written = await buildLog(tmp.path, 104, 5);
    const bases = segmentBases(written).slice(1, -1);
    const sidecars = bases.map((base) => fs.readFileSync(fileOf(tmp.path, base, '.sealed'), 'utf8'));
    uncatalogueFrom(tmp.path, bases[0]!);
    for (const base of bases) fs.rmSync(fileOf(tmp.path, base, '.sealed'));
    await expectRecovered(tmp.path, written, 'three unsealed segments', () =>
      expect(bases.map((base) => fs.readFileSync(fileOf(tmp.path, base, '.sealed'), 'utf8'))).to.deep.equal(sidecars),
    );
  });

  /**
   * A log whose third segment from the end has an interrupted seal (no sidecar, not catalogued)
   * and is followed by two more segments, the last one active. Returns the bases and batches.
   */
  async function interruptedBeforeTwo(seed: number): Promise<{ written: WrittenBatch[]; torn: number; later: number[]; inTorn: WrittenBatch[] }> {
    const written = await buildLog(tmp.path, seed, 4);
    const bases = segmentBases(written);
    const torn = bases[bases.length - 3]!;
    uncatalogueFrom(tmp.path, torn);
    for (const base of bases.slice(-3, -1)) fs.rmSync(fileOf(tmp.path, base, '.sealed'));
    return { written, torn, later: bases.slice(-2), inTorn: written.filter((b) => b.segmentBase === torn) };
  }

  /**
   * Rewrites the segments at `bases` as a crash right after their unsynced writes leaves them:
   * every batch's header says nothing was synced yet, and no index entry was persisted.
   */
  function asNeverSynced(written: readonly WrittenBatch[], bases: readonly number[], keepIndexOf?: number): void {
    for (const base of bases) {
      const batches = written.filter((b) => b.segmentBase === base);
      fs.writeFileSync(fileOf(tmp.path, base, '.log'), Buffer.concat(batches.map((b) => encodeBatch(b.basePosition, 1, b.records, 0))));
      if (base !== keepIndexOf) fs.rmSync(fileOf(tmp.path, base, '.index'), { force: true });
    }
  }

  /** Every file of the directory (and below it), by relative path. */
  function tree(dir: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) out.set(path.relative(dir, path.join(entry.parentPath, entry.name)), fs.readFileSync(path.join(entry.parentPath, entry.name)).toString('hex'));
    }
    return out;
  }

  it('sets aside (never deletes) the segments after an unsealed segment with a torn tail when nothing in them proves it synced', async () => {
    const { written, torn, later, inTorn } = await interruptedBeforeTwo(105);
    asNeverSynced(written, later);
    const tornLog = fileOf(tmp.path, torn, '.log');
    const cut = inTorn[inTorn.length - 1]!.byteOffset + 9;
    fs.truncateSync(tornLog, cut);
    const cutBytes = fs.readFileSync(tornLog).subarray(cut - 9);
    const laterFiles = new Map([...tree(tmp.path)].filter(([name]) => later.some((base) => name.startsWith(`${String(base).padStart(20, '0')}.`))));
    expect(laterFiles.size).to.be.at.least(2);
    const survivors = written.filter((b) => b.segmentBase < torn || (b.segmentBase === torn && end(b) <= cut));
    await expectRecovered(tmp.path, survivors, 'torn unsealed segment', () => {
      for (const base of later) expect(fs.readdirSync(tmp.path).filter((n) => n.startsWith(String(base).padStart(20, '0')))).to.deep.equal([]);
      expect(fs.existsSync(fileOf(tmp.path, torn, '.sealed'))).to.equal(false);
      expect(fs.statSync(tornLog).size).to.equal(cut - 9);
      const entries = fs.readdirSync(path.join(tmp.path, 'quarantine'));
      expect(entries).to.have.length(1);
      const entry = path.join(tmp.path, 'quarantine', entries[0]!);
      // Every file of the later segments, byte for byte, and the bytes cut off the torn one.
      const kept = tree(entry);
      for (const [name, hex] of laterFiles) expect(kept.get(name), name).to.equal(hex);
      let last = cutBytes.length;
      while (last > 0 && cutBytes[last - 1] === 0) last--;
      expect(kept.get(`${path.basename(tornLog)}.from-byte-${cut - 9}`)).to.equal(cutBytes.subarray(0, last).toString('hex'));
      const note = fs.readFileSync(path.join(entry, 'NOTE.txt'), 'utf8');
      expect(note).to.contain(path.basename(tornLog)).and.to.contain('truncated header').and.to.contain(`goes on from position ${inTorn[inTorn.length - 1]!.basePosition}`);
      for (const name of laterFiles.keys()) expect(note).to.contain(name);
    });
  });

  it("refuses, changing nothing, to cut an unsealed segment's damaged last batch when a later segment's batches prove it synced", async () => {
    const { torn, later, inTorn } = await interruptedBeforeTwo(108);
    const tornLog = fileOf(tmp.path, torn, '.log');
    const last = inTorn[inTorn.length - 1]!;
    const pristine = snapshot(tmp.path);
    const damages: [string, () => void][] = [
      ['cut short', () => fs.truncateSync(tornLog, last.byteOffset + 9)],
      ['a flipped byte', () => fs.writeFileSync(tornLog, flip(fs.readFileSync(tornLog), last.byteOffset + 30))],
      ['zeroed', () => fs.writeFileSync(tornLog, Buffer.concat([fs.readFileSync(tornLog).subarray(0, last.byteOffset), Buffer.alloc(last.length)]))],
    ];
    for (const [what, damage] of damages) {
      restore(tmp.path, pristine);
      damage();
      const before = tree(tmp.path);
      const error = await SegmentLog.open(logOptions(tmp.path)).then(
        async (log) => {
          await log.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(error, what).to.be.instanceOf(CorruptRecordError);
      expect(error, what).to.include({ code: 'CORRUPT_RECORD', file: tornLog, byteOffset: last.byteOffset, position: last.basePosition });
      expect((error as Error).message, what).to.contain(fileOf(tmp.path, later[0]!, '.')).and.to.contain('not a torn write');
      expect([...tree(tmp.path)], `${what}: nothing changed`).to.deep.equal([...before]);
    }
  });

  it("refuses when only a later segment's index proves the torn segment synced", async () => {
    const { written, torn, later, inTorn } = await interruptedBeforeTwo(109);
    asNeverSynced(written, later, later[0]);
    expect(fs.statSync(fileOf(tmp.path, later[0]!, '.index')).size).to.be.greaterThan(0);
    const last = inTorn[inTorn.length - 1]!;
    fs.truncateSync(fileOf(tmp.path, torn, '.log'), last.byteOffset + 9);
    const error = await SegmentLog.open(logOptions(tmp.path)).then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(CorruptRecordError);
    expect((error as Error).message).to.contain(fileOf(tmp.path, later[0]!, '.index'));
    expect(fs.existsSync(path.join(tmp.path, 'quarantine'))).to.equal(false);
  });

  it('sets aside an unsealed segment left over from an earlier life of the log, one that starts inside the segment before it', async () => {
    const written = await buildLog(tmp.path, 110, 4);
    const bases = segmentBases(written);
    const active = bases[bases.length - 1]!;
    const sealed = bases[1]!;
    // Without the catalogue the directory is listed. A crash once cut these segments back below
    // the leftovers' first positions, and the log went on past them with other appends.
    fs.rmSync(catalogueOf(tmp.path));
    const leftovers = [sealed + 1, active + 2];
    for (const base of leftovers) {
      fs.writeFileSync(fileOf(tmp.path, base, '.log'), Buffer.concat([encodeBatch(base, 1, [Buffer.from('stale-a')], 0), encodeBatch(base + 1, 1, [Buffer.from('stale-b')], 0)]));
      fs.writeFileSync(fileOf(tmp.path, base, '.index'), Buffer.alloc(0));
    }
    const files = new Map([...tree(tmp.path)].filter(([name]) => leftovers.some((base) => name.startsWith(`${String(base).padStart(20, '0')}.`))));
    expect(files.size).to.equal(4);
    await expectRecovered(tmp.path, written, 'leftover segments', () => {
      for (const name of files.keys()) expect(fs.existsSync(path.join(tmp.path, name)), name).to.equal(false);
      const entries = fs.readdirSync(path.join(tmp.path, 'quarantine'));
      expect(entries).to.have.length(2);
      const kept = new Map(entries.flatMap((entry) => [...tree(path.join(tmp.path, 'quarantine', entry))]));
      for (const [name, hex] of files) expect(kept.get(name), name).to.equal(hex);
      const notes = entries.map((entry) => fs.readFileSync(path.join(tmp.path, 'quarantine', entry, 'NOTE.txt'), 'utf8')).join('\n');
      expect(notes).to.contain('left over from an earlier life of the log').and.to.contain('Nothing in them proves that they were ever synced');
    });
  });

  it('refuses to open when a sealed segment does not follow on from the one before it', async () => {
    const written = await buildLog(tmp.path, 106, 4);
    const [, second] = segmentBases(written) as [number, number];
    const inSecond = written.filter((b) => b.segmentBase === second);
    fs.rmSync(catalogueOf(tmp.path));
    fs.rmSync(fileOf(tmp.path, second, '.sealed'));
    fs.truncateSync(fileOf(tmp.path, second, '.log'), inSecond[inSecond.length - 1]!.byteOffset + 1);
    const error = await SegmentLog.open(logOptions(tmp.path)).then(() => undefined, (e: unknown) => e);
    expect(isColdstreamError(error, 'CORRUPT_FILE'), String(error)).to.equal(true);
  });
});

describe('a sealed segment with a damaged index', () => {
  const tmp = useTempDir();

  it('rebuilds an index of garbage, or a missing one, and reads every position both ways', async () => {
    const written = await buildLog(tmp.path, 201, 4);
    const base = segmentBases(written)[1]!;
    const indexFile = fileOf(tmp.path, base, '.index');
    const pristine = fs.readFileSync(indexFile);
    expect(pristine.length).to.be.greaterThan(0);
    const random = rng(2);
    const damages: [string, () => void][] = [
      ['random bytes of the same length', () => fs.writeFileSync(indexFile, Buffer.from(Array.from(pristine, () => random.int(256))))],
      ['an entry pointing mid-batch', () => fs.writeFileSync(indexFile, Buffer.concat([pristine.subarray(0, 4), Buffer.from([(pristine[4]! + 1) & 0xff]), pristine.subarray(5)]))],
      ['missing', () => fs.rmSync(indexFile)],
    ];
    for (const [what, damage] of damages) {
      fs.writeFileSync(indexFile, pristine);
      damage();
      const log = await SegmentLog.open(logOptions(tmp.path));
      try {
        await expectReadableEverywhere(log, written);
      } catch (err) {
        throw new Error(`sealed index ${what}: ${String(err)}`, { cause: err });
      } finally {
        await log.close();
      }
    }
  });
});

function flip(bytes: Buffer, at: number): Buffer {
  bytes[at] = bytes[at]! ^ 0x04;
  return bytes;
}
