import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FileHasher } from '../../lib/tiering/file-hasher.js';
import { useTempDir } from '../helpers/temp-dir.js';

describe('file hasher', () => {
  const tmp = useTempDir();

  it('reads files with their MD5 and SHA-256 in a worker thread, and on this thread once closed', async () => {
    const contents = [randomBytes(3 * 1024 * 1024 + 5), Buffer.alloc(0), randomBytes(100)];
    const files = contents.map((body, i) => {
      const file = path.join(tmp.path, `f${i}`);
      fs.writeFileSync(file, body);
      return file;
    });
    const hasher = new FileHasher();
    const check = async (): Promise<void> => {
      const hashed = await Promise.all(files.map((file) => hasher.read(file)));
      hashed.forEach(({ body, md5Hex, md5Base64, sha256Hex }, i) => {
        const md5 = createHash('md5').update(contents[i]!).digest();
        expect(body.equals(contents[i]!), `body ${i}`).to.equal(true);
        expect(md5Hex).to.equal(md5.toString('hex'));
        expect(md5Base64).to.equal(md5.toString('base64'));
        expect(sha256Hex).to.equal(createHash('sha256').update(contents[i]!).digest('hex'));
      });
      const missing = await hasher.read(path.join(tmp.path, 'missing')).then(
        () => undefined,
        (err: unknown) => err as NodeJS.ErrnoException,
      );
      expect(missing?.code).to.equal('ENOENT');
    };
    try {
      await check();
      expect(hasher.inWorker, 'the worker thread answered').to.equal(true);
    } finally {
      await hasher.close();
    }
    expect(hasher.inWorker).to.equal(false);
    await check(); // Closed: the same answers, from this thread.
  });
});
