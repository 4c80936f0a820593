import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { defaultMaxOpenSegments } from '../../lib/store/options.js';
import { useTempDir } from '../helpers/temp-dir.js';

describe('EventStore options: maxOpenSegments default', () => {
  const tmp = useTempDir();
  const limits = (soft: string): string => {
    const file = path.join(tmp.path, 'limits');
    fs.writeFileSync(file, `Limit                     Soft Limit           Hard Limit           Units\nMax cpu time              unlimited            unlimited            seconds\nMax open files            ${soft}                524288               files\n`);
    return file;
  };

  it('is a quarter of the soft open-file limit, within 64 and 4,096', () => {
    expect(defaultMaxOpenSegments(limits('1024'))).to.equal(256);
    expect(defaultMaxOpenSegments(limits('256'))).to.equal(64);
    expect(defaultMaxOpenSegments(limits('1048576'))).to.equal(4096);
    expect(defaultMaxOpenSegments(limits('unlimited'))).to.equal(4096);
  });

  it('is 64 where the limit cannot be read', () => {
    expect(defaultMaxOpenSegments(path.join(tmp.path, 'missing'))).to.equal(64);
    expect(defaultMaxOpenSegments(limits('many'))).to.equal(64);
  });
});
