/**
 * S3 endpoints for the tiering tests: s3rver in this process on 127.0.0.1 and a random port,
 * with its own temporary directory; or the endpoint given in the environment (a real MinIO or
 * AWS S3, or the RADOS Gateway that `.ci/rgw` starts):
 *
 * - `COLDSTREAM_S3_ENDPOINT` (e.g. `http://127.0.0.1:9000`; empty for AWS), `COLDSTREAM_S3_BUCKET`,
 *   `COLDSTREAM_S3_REGION` (default us-east-1), `COLDSTREAM_S3_ACCESS_KEY`, `COLDSTREAM_S3_SECRET_KEY`.
 *
 * Each test gets its own key prefix, so suites never see each other's objects.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MinioObjectStore } from '../../adapters/minio/index.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from '../../adapters/s3/index.js';

export interface S3Endpoint {
  readonly name: string;
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Whether the server honours `If-None-Match: *` (s3rver does not). */
  readonly conditionalWrites: boolean;
  /** Whether the server refuses a body that does not match its Content-MD5 (s3rver does not check). */
  readonly checksContentMd5: boolean;
  stop(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1 with a random port and a bucket named `test`. */
export async function startS3rver(): Promise<S3Endpoint> {
  // ListObjectsV2 pagination in s3rver encrypts its tokens with DES, which Node 17+ has only with
  // --openssl-legacy-provider (.mocharc.json passes it); without it, a truncated list answers 500.
  const { default: S3rver } = await import('s3rver');
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: 'test' }] });
  const { port } = await server.run();
  return {
    name: 's3rver',
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    bucket: 'test',
    accessKeyId: 'S3RVER', // The only access key s3rver accepts.
    secretAccessKey: 'S3RVER',
    conditionalWrites: false,
    checksContentMd5: false,
    async stop() {
      await server.close();
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** The endpoint named by the environment, or undefined. */
export function endpointFromEnvironment(): S3Endpoint | undefined {
  const bucket = process.env['COLDSTREAM_S3_BUCKET'];
  if (bucket === undefined || bucket === '') return undefined;
  const endpoint = process.env['COLDSTREAM_S3_ENDPOINT'];
  return {
    name: process.env['COLDSTREAM_S3_NAME'] ?? (endpoint === undefined || endpoint === '' ? 'aws' : endpoint),
    endpoint: endpoint === '' ? undefined : endpoint,
    region: process.env['COLDSTREAM_S3_REGION'] ?? 'us-east-1',
    bucket,
    accessKeyId: process.env['COLDSTREAM_S3_ACCESS_KEY'] ?? '',
    secretAccessKey: process.env['COLDSTREAM_S3_SECRET_KEY'] ?? '',
    conditionalWrites: true,
    checksContentMd5: true,
    async stop() {},
  };
}

/** A key prefix of its own for one test. */
export function freshPrefix(): string {
  return `t-${randomBytes(6).toString('hex')}/`;
}

/** The s3 adapter on `e`, under a fresh prefix (or `options.prefix`). */
export function s3StoreFor(e: S3Endpoint, options: Partial<S3ObjectStoreOptions> = {}): S3ObjectStore {
  return new S3ObjectStore({
    bucket: e.bucket,
    prefix: freshPrefix(),
    endpoint: e.endpoint,
    region: e.region,
    credentials: { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey },
    forcePathStyle: true,
    conditionalWrites: e.conditionalWrites,
    ...options,
  });
}

/** The minio adapter on `e`, under a fresh prefix (or `options.prefix`). */
export function minioStoreFor(e: S3Endpoint, options: { pageSize?: number; prefix?: string } = {}): MinioObjectStore {
  const url = new URL(e.endpoint ?? `https://s3.${e.region}.amazonaws.com`);
  return new MinioObjectStore({
    endPoint: url.hostname,
    port: url.port === '' ? undefined : Number(url.port),
    useSSL: url.protocol === 'https:',
    region: e.region,
    accessKey: e.accessKeyId,
    secretKey: e.secretAccessKey,
    pathStyle: true,
    bucket: e.bucket,
    prefix: freshPrefix(),
    conditionalWrites: e.conditionalWrites,
    ...options,
  });
}
