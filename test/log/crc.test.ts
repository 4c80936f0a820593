import { expect } from 'chai';
import { crc32c, crc32cOfRange } from '../../lib/log/crc.js';
import { rng } from '../helpers/log-fixture.js';

describe('crc32c', () => {
  it('computes the CRC-32C check value of "123456789"', () => {
    expect(crc32c(Buffer.from('123456789'))).to.equal(0xe306_9283);
    expect(crc32cOfRange(Buffer.from('..123456789..'), 2, 11)).to.equal(0xe306_9283);
  });

  it('gives the same value over a range of a buffer as the native call over that range as a buffer of its own', () => {
    const random = rng(11);
    const bytes = Buffer.from(Array.from({ length: 4096 }, () => random.int(256)));
    for (let trial = 0; trial < 300; trial++) {
      const start = random.int(bytes.length);
      const end = start + random.int(bytes.length - start + 1);
      expect(crc32cOfRange(bytes, start, end), `[${start}, ${end})`).to.equal(crc32c(bytes.subarray(start, end)));
    }
  });
});
