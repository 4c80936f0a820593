import { expect } from 'chai';
import fc from 'fast-check';
import { INDEX_ENTRY_BYTES, OffsetIndex } from '../../lib/log/offset-index.js';

/** Strictly increasing entries, as the log writes them. */
const entriesArb = fc
  .array(fc.record({ dp: fc.integer({ min: 1, max: 50 }), db: fc.integer({ min: 36, max: 5000 }) }), { maxLength: 40 })
  .map((steps) => {
    let relativePosition = 0;
    let byteOffset = 0;
    return steps.map(({ dp, db }) => ({ relativePosition: (relativePosition += dp), byteOffset: (byteOffset += db) }));
  });

function indexOf(entries: readonly { relativePosition: number; byteOffset: number }[]): OffsetIndex {
  const index = new OffsetIndex();
  for (const e of entries) index.add(e.relativePosition, e.byteOffset);
  return index;
}

function entriesOf(index: OffsetIndex): { relativePosition: number; byteOffset: number }[] {
  return Array.from({ length: index.length }, (_, i) => index.at(i));
}

describe('OffsetIndex', () => {
  it('round-trips its entries through encode and decode', () => {
    fc.assert(
      fc.property(entriesArb, (entries) => {
        const buf = indexOf(entries).encode();
        expect(buf.length).to.equal(entries.length * INDEX_ENTRY_BYTES);
        const { index, intact } = OffsetIndex.decode(buf, Number.MAX_SAFE_INTEGER);
        expect(intact).to.equal(true);
        expect(entriesOf(index)).to.deep.equal(entries);
        expect(index.persistedCount).to.equal(entries.length);
      }),
    );
  });

  it('keeps the longest prefix of whole entries that increase and point inside the data', () => {
    fc.assert(
      fc.property(entriesArb, fc.nat(), fc.nat({ max: 7 }), (entries, dataSeed, tornBytes) => {
        const dataBytes = 1 + (dataSeed % (entries.length * 5000 + 1));
        const buf = Buffer.concat([indexOf(entries).encode(), Buffer.alloc(tornBytes, 0xab)]);
        const { index, intact } = OffsetIndex.decode(buf, dataBytes);
        const kept = entries.filter((e) => e.byteOffset < dataBytes);
        expect(entriesOf(index)).to.deep.equal(kept);
        expect(intact).to.equal(kept.length === entries.length && tornBytes === 0);
      }),
    );
  });

  it('stops at the first entry that does not increase in both fields', () => {
    const good = indexOf([
      { relativePosition: 3, byteOffset: 100 },
      { relativePosition: 7, byteOffset: 300 },
    ]).encode();
    for (const [relativePosition, byteOffset] of [[7, 400], [8, 300], [2, 500], [0, 0]] as const) {
      const bad = indexOf([{ relativePosition, byteOffset }, { relativePosition: 99, byteOffset: 900 }]).encode();
      const { index, intact } = OffsetIndex.decode(Buffer.concat([good, bad]), 10_000);
      expect(entriesOf(index)).to.deep.equal([{ relativePosition: 3, byteOffset: 100 }, { relativePosition: 7, byteOffset: 300 }]);
      expect(intact).to.equal(false);
    }
  });

  it('finds the last entry at or before any position, with (0, 0) before the first', () => {
    fc.assert(
      fc.property(entriesArb, fc.nat({ max: 3000 }), (entries, position) => {
        const index = indexOf(entries);
        const expected = [...entries].reverse().find((e) => e.relativePosition <= position) ?? { relativePosition: 0, byteOffset: 0 };
        expect(index.floor(position)).to.deep.equal(expected);
        expect(index.floorIndex(position)).to.equal(entries.indexOf(expected as (typeof entries)[number]));
      }),
    );
  });

  it('truncates entries and what it counts as persisted', () => {
    const index = indexOf([
      { relativePosition: 1, byteOffset: 40 },
      { relativePosition: 2, byteOffset: 80 },
      { relativePosition: 3, byteOffset: 120 },
    ]);
    index.persistedCount = 3;
    expect(index.encode(1).length).to.equal(2 * INDEX_ENTRY_BYTES);
    expect(OffsetIndex.decode(index.encode(2), 1000).index.at(0)).to.deep.equal({ relativePosition: 3, byteOffset: 120 });
    index.truncate(1);
    expect(index.length).to.equal(1);
    expect(index.persistedCount).to.equal(1);
    expect(index.lastByteOffset).to.equal(40);
    index.truncate(0);
    expect(index.lastByteOffset).to.equal(0);
    expect(index.floor(5)).to.deep.equal({ relativePosition: 0, byteOffset: 0 });
  });
});
