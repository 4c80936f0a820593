/**
 * Event records the store cannot read (another version, lengths out of bounds) inside batches
 * whose CRC matches: a CorruptRecordError saying what was found, never garbage events.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { CorruptRecordError, EventStore, isColdstreamError } from '../../lib/index.js';
import { crc32c } from '../../lib/log/crc.js';
import { BATCH_HEADER_BYTES, RECORD_LENGTH_BYTES } from '../../lib/log/record-batch.js';
import { checkEventRecord, RECORD_HEADER_BYTES, RECORD_VERSION, RecordEncoder } from '../../lib/store/codec.js';
import { collect, rejection } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp-dir.js';

/** One event record as the store writes it. */
function eventRecord(metadata?: string): Buffer {
  const encoder = new RecordEncoder();
  encoder.begin(4096);
  encoder.add('order-1', { id: '00000000-0000-4000-8000-000000000001', type: 'Placed', data: '{"total":42}', metadata, maxFramedBytes: 4096 }, 0);
  return Buffer.from(encoder.body().subarray(RECORD_LENGTH_BYTES));
}

describe('event record format', () => {
  it('accepts the records the encoder writes', () => {
    expect(checkEventRecord(eventRecord())).to.equal(undefined);
    expect(checkEventRecord(eventRecord('{"by":"me"}'))).to.equal(undefined);
  });

  it('says what it found in a record it cannot read', () => {
    const cases: [string, (r: Buffer) => Buffer, RegExp][] = [
      ['another version', (r) => (r.writeUInt8(RECORD_VERSION + 1, 0), r), /^unknown event record version 2 \(this version of coldstream reads version 1\)$/],
      ['version 0', (r) => (r.writeUInt8(0, 0), r), /^unknown event record version 0/],
      ['unknown flags', (r) => (r.writeUInt8(0x82, 1), r), /^unknown event record flags 0x82$/],
      ['a short record', (r) => r.subarray(0, RECORD_HEADER_BYTES - 1), /^the record holds 35 bytes, fewer than the 36 of an event record's header$/],
      ['a stream id past the end', (r) => (r.writeUInt16LE(0xffff, 2), r), /^the stream id \(65535 bytes\), type \(6 bytes\) and data \(12 bytes\) would end at byte 65589 of a 61-byte record$/],
      ['a type past the end', (r) => (r.writeUInt16LE(500, 4), r), /type \(500 bytes\)/],
      ['data past the end', (r) => (r.writeUInt32LE(0xffff_ffff, 32), r), /data \(4294967295 bytes\) would end at byte/],
      ['bytes after the data of a record without metadata', (r) => Buffer.concat([r, Buffer.from('xyz')]), /^3 bytes follow the data of a record without metadata$/],
    ];
    for (const [what, damage, found] of cases) expect(checkEventRecord(damage(eventRecord())), what).to.match(found);
  });
});

describe('EventStore over records it cannot read', () => {
  const tmp = useTempDir();

  /**
   * Writes three events, closes, then changes the first record (at byte 44 of the first
   * segment: after the batch header and the record's length) and stamps the batch's CRC again,
   * as a writer of another format would have written it.
   */
  async function writeThenRewrite(change: (record: Buffer) => void): Promise<string> {
    const store = await EventStore.open({ dir: tmp.path });
    await store.appendToStream('s', [
      { type: 'T', data: { n: 1 } },
      { type: 'T', data: { n: 2 } },
      { type: 'T', data: { n: 3 } },
    ]);
    await store.close();
    const file = path.join(tmp.path, 'log', '00000000000000000000.log');
    const bytes = fs.readFileSync(file);
    const batchLength = bytes.readUInt32LE(4);
    change(bytes.subarray(BATCH_HEADER_BYTES + RECORD_LENGTH_BYTES, batchLength));
    bytes.writeUInt32LE(crc32c(bytes.subarray(12, batchLength)), 8);
    fs.writeFileSync(file, bytes);
    return file;
  }

  async function expectUnreadable(file: string, found: RegExp): Promise<void> {
    const store = await EventStore.open({ dir: tmp.path });
    try {
      for (const [what, read] of [
        ['readAll', () => collect(store.readAll())],
        ['readAll backwards', () => collect(store.readAll({ direction: 'backwards' }))],
        ['readStream', () => collect(store.readStream('s'))],
        ['readStream backwards', () => collect(store.readStream('s', { direction: 'backwards' }))],
      ] as const) {
        const error = await rejection(read(), CorruptRecordError, what);
        expect(isColdstreamError(error, 'CORRUPT_RECORD'), what).to.equal(true);
        expect(error, what).to.include({ file, byteOffset: 0 });
        expect(error.reason, what).to.match(found);
        expect(error.reason, what).to.contain('record 0 of the batch (position 0');
      }
    } finally {
      await store.close();
    }
  }

  it('reports a record of an unknown version as CORRUPT_RECORD, not as an event', async () => {
    const file = await writeThenRewrite((record) => record.writeUInt8(2, 0));
    await expectUnreadable(file, /unknown event record version 2/);
  });

  it('reports a record whose lengths run past its end as CORRUPT_RECORD, not as garbage or a SyntaxError', async () => {
    const file = await writeThenRewrite((record) => record.writeUInt16LE(0xfff0, 2));
    await expectUnreadable(file, /the stream id \(65520 bytes\), type \(1 bytes\) and data \(\d+ bytes\) would end at byte \d+ of a \d+-byte record/);
  });

  it('refuses to rebuild the index from such a record', async () => {
    const file = await writeThenRewrite((record) => record.writeUInt8(9, 0));
    fs.rmSync(path.join(tmp.path, 'index.lmdb'));
    const error = await rejection(EventStore.open({ dir: tmp.path }), CorruptRecordError, 'open');
    expect(error).to.include({ file, byteOffset: 0 });
    expect(error.reason).to.match(/unknown event record version 9/);
  });
});
