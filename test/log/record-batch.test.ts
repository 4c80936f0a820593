import { expect } from 'chai';
import fc from 'fast-check';
import { CorruptRecordError, isColdstreamError } from '../../lib/errors.js';
import { crc32c } from '../../lib/log/crc.js';
import {
  BATCH_HEADER_BYTES,
  BATCH_MAGIC,
  batchBytes,
  checkBatch,
  decodeBatchOrThrow,
  encodeBatch,
  readBatchHeader,
} from '../../lib/log/record-batch.js';

const FILE = '/virtual/00000000000000000000.log';

/** Small records (often empty) mixed with records of a few KiB. */
const recordArb = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1024, maxLength: 4096 }) },
);
const recordsArb = fc.array(recordArb, { minLength: 1, maxLength: 12 });
const positionArb = fc.oneof(fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const timestampArb = fc.oneof(fc.constantFrom(0, Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const batchArb = fc.record({ basePosition: positionArb, timestamp: timestampArb, records: recordsArb });

function expectCorrupt(buf: Buffer): void {
  expect(checkBatch(buf, 0, buf.length).ok).to.equal(false);
  let error: unknown;
  try {
    decodeBatchOrThrow(buf, 0, buf.length, FILE, 0);
  } catch (e) {
    error = e;
  }
  expect(error).to.be.instanceOf(CorruptRecordError);
  expect(isColdstreamError(error, 'CORRUPT_RECORD')).to.equal(true);
  expect((error as CorruptRecordError).file).to.equal(FILE);
}

function flipBit(buf: Buffer, bit: number): Buffer {
  const copy = Buffer.from(buf);
  copy[bit >> 3] = copy[bit >> 3]! ^ (1 << (bit & 7));
  return copy;
}

/** Re-stamps the CRC after a header field was rewritten, so only the field check can catch it. */
function restamp(buf: Buffer): Buffer {
  buf.writeUInt32LE(crc32c(buf.subarray(12)), 8);
  return buf;
}

const fixed = encodeBatch(41, 1_700_000_000_123, [Buffer.from('alpha'), Buffer.alloc(0), Buffer.from('omega!')]);

describe('record batch', () => {
  it('computes the CRC-32C check value of "123456789"', () => {
    expect(crc32c(Buffer.from('123456789'))).to.equal(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).to.equal(0);
    expect(crc32c(Buffer.from('56789'), crc32c(Buffer.from('1234')))).to.equal(0xe3069283);
  });

  it('lays out the header as documented', () => {
    const header = readBatchHeader(fixed, 0);
    expect(header.magic).to.equal(BATCH_MAGIC);
    expect(fixed.subarray(0, 4).toString('latin1')).to.equal('CSCB');
    expect(header.batchLength).to.equal(fixed.length).and.to.equal(BATCH_HEADER_BYTES + 3 * 4 + 11);
    expect(header.crc).to.equal(crc32c(fixed.subarray(12)));
    expect(header.version).to.equal(1);
    expect(header.basePosition).to.equal(41);
    expect(header.recordCount).to.equal(3);
    expect(header.timestamp).to.equal(1_700_000_000_123);
  });

  it('round-trips base position, timestamp and records', () => {
    fc.assert(
      fc.property(batchArb, ({ basePosition, timestamp, records }) => {
        const buf = encodeBatch(basePosition, timestamp, records);
        expect(buf.length).to.equal(batchBytes(records));
        const batch = decodeBatchOrThrow(buf, 0, buf.length, FILE, 0, basePosition);
        expect(batch.basePosition).to.equal(basePosition);
        expect(batch.timestamp).to.equal(timestamp);
        expect(batch.recordCount).to.equal(records.length);
        expect(batch.batchLength).to.equal(buf.length);
        expect(batch.records.map((r) => r.toString('hex'))).to.deep.equal(records.map((r) => Buffer.from(r).toString('hex')));
      }),
      { numRuns: 200 },
    );
  });

  it('decodes a batch in the middle of a larger buffer of consecutive batches', () => {
    fc.assert(
      fc.property(fc.array(recordsArb, { minLength: 1, maxLength: 5 }), fc.uint8Array({ maxLength: 40 }), (batches, prefix) => {
        let position = 1000;
        const encoded = batches.map((records) => {
          const buf = encodeBatch(position, 7, records);
          position += records.length;
          return buf;
        });
        const all = Buffer.concat([Buffer.from(prefix), ...encoded]);
        let at = prefix.length;
        position = 1000;
        for (const records of batches) {
          const batch = decodeBatchOrThrow(all, at, all.length - at, FILE, at, position);
          expect(batch.records.map((r) => r.toString('hex'))).to.deep.equal(records.map((r) => Buffer.from(r).toString('hex')));
          at += batch.batchLength;
          position += batch.recordCount;
        }
        expect(at).to.equal(all.length);
      }),
      { numRuns: 50 },
    );
  });

  it('detects every single-bit flip in a small batch', () => {
    for (let bit = 0; bit < fixed.length * 8; bit++) expectCorrupt(flipBit(fixed, bit));
  });

  it('detects a single-bit flip anywhere in any batch', () => {
    fc.assert(
      fc.property(batchArb, fc.nat(), ({ basePosition, timestamp, records }, seed) => {
        const buf = encodeBatch(basePosition, timestamp, records);
        expectCorrupt(flipBit(buf, seed % (buf.length * 8)));
      }),
      { numRuns: 300 },
    );
  });

  it('detects every truncation of a small batch', () => {
    for (let length = 0; length < fixed.length; length++) expectCorrupt(fixed.subarray(0, length));
  });

  it('detects a truncation to any shorter length of any batch', () => {
    fc.assert(
      fc.property(batchArb, fc.nat(), ({ basePosition, timestamp, records }, seed) => {
        const buf = encodeBatch(basePosition, timestamp, records);
        expectCorrupt(Buffer.from(buf.subarray(0, seed % buf.length)));
      }),
      { numRuns: 300 },
    );
  });

  it('reports a batch that runs past the end of the file even when the buffer holds it', () => {
    const check = checkBatch(fixed, 0, fixed.length - 1);
    expect(check.ok).to.equal(false);
    expect(check.incomplete).to.equal(undefined);
    expect(check.problem).to.match(/past the end of the file/);
  });

  it('asks for more bytes when only the buffer, not the file, is short', () => {
    const head = checkBatch(fixed.subarray(0, 20), 0, fixed.length);
    expect(head).to.include({ ok: false, incomplete: true });
    const body = checkBatch(fixed.subarray(0, 40), 0, fixed.length);
    expect(body).to.include({ ok: false, incomplete: true });
    expect(body.header?.batchLength).to.equal(fixed.length);
  });

  it('rejects a batch at an unexpected base position', () => {
    expect(checkBatch(fixed, 0, fixed.length, 42).problem).to.equal('base position 41, expected 42');
    expect(() => decodeBatchOrThrow(fixed, 0, fixed.length, FILE, 128, 40))
      .to.throw(CorruptRecordError)
      .with.property('byteOffset', 128);
  });

  it('rejects impossible fields even under a matching CRC', () => {
    const cases: [string, (b: Buffer) => void, RegExp][] = [
      ['version', (b) => b.writeUInt8(2, 12), /unknown format version 2/],
      ['record count', (b) => b.writeUInt32LE(0, 24), /impossible header fields/],
      ['base position', (b) => b.writeUInt32LE(0x20_0000, 20), /impossible header fields/],
      ['timestamp', (b) => b.writeUInt32LE(0xffff_ffff, 32), /impossible header fields/],
      ['record count vs lengths', (b) => b.writeUInt32LE(2, 24), /record lengths do not match/],
      ['huge record count', (b) => b.writeUInt32LE(0xffff_ffff, 24), /record lengths do not match/],
      ['record length', (b) => b.writeUInt32LE(6, BATCH_HEADER_BYTES), /record lengths do not match/],
      ['attributes (a compressed batch, say)', (b) => b.writeUInt8(1, 13), /unknown batch attributes 0x01/],
      ['reserved field', (b) => b.writeUInt16LE(0x100, 14), /unknown batch attributes 0x00 \(reserved field 0x0100\)/],
    ];
    for (const [, damage, reason] of cases) {
      const buf = Buffer.from(fixed);
      damage(buf);
      restamp(buf);
      expect(() => decodeBatchOrThrow(buf, 0, buf.length, FILE, 0)).to.throw(CorruptRecordError, reason);
    }
  });

  it('says what it found when the record lengths of a CRC-valid batch do not add up', () => {
    // `fixed` holds 'alpha', '' and 'omega!': 23 bytes of records after the 40-byte header.
    const cases: [string, (b: Buffer) => void, string][] = [
      ['a record running past the batch', (b) => b.writeUInt32LE(1000, BATCH_HEADER_BYTES), 'record 0 of 3 at byte 44 claims 1000 bytes, but the batch ends 19 bytes later'],
      ['more records than bytes', (b) => b.writeUInt32LE(0xffff_ffff, 24), '4294967295 records cannot fit in the 23 bytes after the header'],
      ['a record count one short', (b) => b.writeUInt32LE(2, 24), 'its 2 records end at byte 53, 10 bytes before the end of the batch'],
      ['a record count one too many', (b) => b.writeUInt32LE(4, 24), 'record 3 of 4 would start at byte 63, where 0 bytes of the batch are left'],
    ];
    for (const [what, damage, found] of cases) {
      const buf = Buffer.from(fixed);
      damage(buf);
      restamp(buf);
      expect(() => decodeBatchOrThrow(buf, 0, buf.length, FILE, 0), what).to.throw(CorruptRecordError, `record lengths do not match the batch length: ${found}`);
    }
  });

  it('rejects a length field shorter than a header or beyond the batch limit', () => {
    for (const length of [0, 1, BATCH_HEADER_BYTES - 1, 0x8000_0000, 0xffff_ffff]) {
      const buf = Buffer.from(fixed);
      buf.writeUInt32LE(length, 4);
      expect(checkBatch(buf, 0, buf.length).problem).to.equal(`impossible batch length ${length}`);
    }
  });

  it('treats zeroes as no batch', () => {
    const zeros = Buffer.alloc(4096);
    expect(checkBatch(zeros, 0, zeros.length).problem).to.equal('bad magic 0x0');
  });
});
