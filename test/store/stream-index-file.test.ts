import { expect } from 'chai';
import fc from 'fast-check';
import { RecordEncoder } from '../../lib/store/codec.js';
import { StreamIndexBuilder, StreamIndexFile } from '../../lib/store/stream-index-file.js';
import { isColdstreamError } from '../../lib/index.js';
import { randomUUID } from 'node:crypto';

/** One encoded event record (without its length prefix) of `streamId` at `revision`. */
function recordOf(streamId: string, revision: number, id: string = randomUUID()): Buffer {
  const encoder = new RecordEncoder();
  encoder.begin(1024);
  encoder.add(streamId, { id, type: 'T', data: '{}', metadata: undefined, maxFramedBytes: 1024 }, revision);
  return Buffer.from(encoder.body().subarray(4));
}

describe('StreamIndexBuilder and StreamIndexFile', () => {
  it('encodes every stream of a segment with its positions, batch offsets and last event id', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 4 })), { minLength: 1, maxLength: 200 }), fc.integer({ min: 0, max: 1e6 }), (appends, base) => {
        const builder = new StreamIndexBuilder(base, 4); // Small, so that it grows.
        const model = new Map<string, { first: number; positions: number[]; offsets: number[]; lastId: string }>();
        let position = base;
        let offset = 0;
        for (const [stream, count] of appends) {
          const streamId = `s-${stream}${'é'.repeat(stream % 3)}`;
          const entry = model.get(streamId) ?? { first: stream * 10, positions: [], offsets: [], lastId: '' };
          model.set(streamId, entry);
          for (let k = 0; k < count; k++) {
            entry.lastId = randomUUID();
            builder.add(recordOf(streamId, entry.first + entry.positions.length, entry.lastId), position, offset);
            entry.positions.push(position++);
            entry.offsets.push(offset);
          }
          offset += 100;
        }
        const file = StreamIndexFile.decode('x.streams', builder.encode('x.streams'), base);
        expect(file.streamCount).to.equal(model.size);
        for (const [streamId, entry] of model) {
          const part = file.find(streamId)!;
          expect(part, streamId).to.not.equal(undefined);
          expect(part.firstRevision).to.equal(entry.first);
          expect(part.lastEventId).to.equal(entry.lastId);
          expect(Array.from({ length: part.count }, (_, i) => part.positionAt(i))).to.deep.equal(entry.positions);
          expect(Array.from({ length: part.count }, (_, i) => part.batchOffsetAt(i))).to.deep.equal(entry.offsets);
        }
        expect(file.find('missing')).to.equal(undefined);
        expect(new Map([...file.streams()].map(([id, p]) => [id, p.count]))).to.deep.equal(new Map([...model].map(([id, e]) => [id, e.positions.length])));
      }),
      { numRuns: 200 },
    );
  });

  it('refuses records whose revisions skip within a stream', () => {
    const builder = new StreamIndexBuilder(0);
    builder.add(recordOf('a', 0), 0, 0);
    builder.add(recordOf('a', 2), 1, 0);
    let error: unknown;
    try {
      builder.encode('x.streams');
    } catch (e) {
      error = e;
    }
    expect(isColdstreamError(error, 'CORRUPT_FILE'), String(error)).to.equal(true);
  });

  it('refuses a damaged file', () => {
    const builder = new StreamIndexBuilder(0);
    builder.add(recordOf('a', 0), 0, 0);
    const bytes = builder.encode('x.streams');
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    expect(() => StreamIndexFile.decode('x.streams', bytes, 0)).to.throw(/CRC/);
  });
});
