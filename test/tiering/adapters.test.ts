import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../../adapters/fs/index.js';
import { MemoryObjectStore } from '../../adapters/memory/index.js';
import { InvalidOptionsError, isColdstreamError } from '../../lib/errors.js';
import { MinioObjectStore } from '../../adapters/minio/index.js';
import { endpointFromEnvironment, minioStoreFor, s3StoreFor, startS3rver, type S3Endpoint } from '../helpers/s3-servers.js';
import { objectStoreContract } from './object-store-contract.js';

objectStoreContract('memory', async () => ({ store: new MemoryObjectStore({ pageSize: 10 }), pageSize: 10 }));

describe('fs adapter', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  objectStoreContract('fs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-objects-'));
    dirs.push(dir);
    return { store: new FsObjectStore({ dir, prefix: 'p/', pageSize: 10 }), pageSize: 10 };
  });
});

/** The s3 and minio adapters over HTTP: to s3rver always, and to the endpoint in the environment when one is given. */
for (const start of [startS3rver, async () => endpointFromEnvironment()]) {
  describe(`s3 and minio adapters (${start === startS3rver ? 's3rver' : 'environment'})`, function () {
    let endpoint: S3Endpoint | undefined;
    before(async function () {
      endpoint = await start();
      if (endpoint === undefined) this.skip();
    });
    after(async () => endpoint?.stop());
    objectStoreContract('s3', async () => ({ store: s3StoreFor(endpoint!, { pageSize: 10 }), pageSize: 10, checksContentMd5: endpoint!.checksContentMd5 }));
    objectStoreContract('minio', async () => ({ store: minioStoreFor(endpoint!, { pageSize: 10 }), pageSize: 10 }));

    it('puts a body above the threshold in parts through the s3 adapter, and gives it back whole', async function () {
      this.timeout(60_000);
      const MiB = 1024 * 1024;
      const store = s3StoreFor(endpoint!, { multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB }); // 5 MiB: S3's smallest part.
      const body = randomBytes(11 * MiB);
      const put = await store.put('big', body);
      expect(put.size).to.equal(body.length);
      // Its etag, if any, need not be the body's MD5 (S3 and MinIO: "<MD5 of the parts' MD5s>-3";
      // RADOS Gateway answers CompleteMultipartUpload with none): tiering then verifies by reading back.
      expect((await store.head('big'))?.size).to.equal(body.length);
      expect((await store.get('big')).equals(body)).to.equal(true);
      expect((await store.get('big', { range: { offset: 5 * MiB - 3, length: 6 } })).equals(body.subarray(5 * MiB - 3, 5 * MiB + 3))).to.equal(true);
      const refused = await store.put('big-once', body, { ifNoneMatch: true }).then(() => undefined, (e: unknown) => e);
      expect(isColdstreamError(refused, 'OBJECT_STORE'), 'a conditional put is one PUT').to.equal(true);
      await store.delete('big');
    });
  });
}

describe('minio adapter options', () => {
  it('refuses a bucket name the minio client would refuse at every call (tiering would retry it for ever)', () => {
    for (const bucket of ['ex', 'Upper', 'a..b', '-dash', '192.168.1.1', 'x'.repeat(64)]) {
      const error = (() => {
        try {
          new MinioObjectStore({ endPoint: '127.0.0.1', port: 9000, useSSL: false, accessKey: 'a', secretKey: 'b', bucket });
          return undefined;
        } catch (err) {
          return err as InvalidOptionsError;
        }
      })();
      expect(error, bucket).to.be.instanceOf(InvalidOptionsError);
      expect(error!.code).to.equal('INVALID_OPTIONS');
      expect(error!.message).to.contain('bucket');
    }
    expect(new MinioObjectStore({ endPoint: '127.0.0.1', port: 9000, useSSL: false, accessKey: 'a', secretKey: 'b', bucket: 'coldstream-test.1' }).description).to.contain('coldstream-test.1');
  });
});
