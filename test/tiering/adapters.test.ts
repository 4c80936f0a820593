import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../../adapters/fs/index.js';
import { MemoryObjectStore } from '../../adapters/memory/index.js';
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
  });
}
