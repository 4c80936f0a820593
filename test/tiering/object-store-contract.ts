/**
 * The contract every ObjectStore adapter keeps, as one mocha suite to run against each of them
 * (memory, fs, s3 and minio over HTTP to the test servers, and real MinIO/S3 when configured).
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { isColdstreamError } from '../../lib/errors.js';
import { listAll, type ObjectStore } from '../../lib/tiering/object-store.js';

export interface ContractTarget {
  readonly store: ObjectStore;
  /** Objects per list page the adapter was configured with (to test pagination cheaply). */
  readonly pageSize: number;
  /** False for a server that stores a body whatever its Content-MD5 says (s3rver). */
  readonly checksContentMd5?: boolean;
}

/** Declares the contract suite; `open` makes a store on a fresh, empty prefix for each test. */
export function objectStoreContract(name: string, open: () => Promise<ContractTarget>): void {
  describe(`ObjectStore contract: ${name}`, function () {
    this.timeout(60_000);
    let target: ContractTarget;
    let store: ObjectStore;
    beforeEach(async () => {
      target = await open();
      store = target.store;
    });

    it('gives back what was put, whole, with its size and an MD5 etag where it gives one', async () => {
      const body = randomBytes(100_000);
      const put = await store.put('a/one', body);
      expect(put.size).to.equal(body.length);
      if (put.etag !== undefined) expect(put.etag).to.equal(createHash('md5').update(body).digest('hex'));
      expect((await store.get('a/one')).equals(body)).to.equal(true);
      const head = await store.head('a/one');
      expect(head?.size).to.equal(body.length);
      if (head?.etag !== undefined) expect(head.etag).to.equal(put.etag);
    });

    it('stores an empty object', async () => {
      await store.put('empty', Buffer.alloc(0));
      expect((await store.get('empty')).length).to.equal(0);
      expect((await store.head('empty'))?.size).to.equal(0);
    });

    it('replaces an object on a plain put', async () => {
      await store.put('k', Buffer.from('first'));
      await store.put('k', Buffer.from('second, longer'));
      expect((await store.get('k')).toString()).to.equal('second, longer');
    });

    it('reads byte ranges exactly: the first byte, the middle, the last byte, and past the end cut at the end', async () => {
      const body = randomBytes(10_000);
      await store.put('ranged', body);
      const cases: [number, number][] = [
        [0, 1],
        [0, 10_000],
        [1234, 4321],
        [9_999, 1],
        [9_000, 5_000],
      ];
      for (const [offset, length] of cases) {
        const got = await store.get('ranged', { range: { offset, length } });
        expect(got.equals(body.subarray(offset, offset + length)), `bytes [${offset}, +${length})`).to.equal(true);
      }
    });

    it('throws OBJECT_NOT_FOUND for a missing key on get, and answers undefined on head', async () => {
      const err = await store.get('missing').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isColdstreamError(err, 'OBJECT_NOT_FOUND'), String(err)).to.equal(true);
      expect(await store.head('missing')).to.equal(undefined);
    });

    it('deletes, and deleting a missing key succeeds', async () => {
      await store.put('d', Buffer.from('x'));
      await store.delete('d');
      expect(await store.head('d')).to.equal(undefined);
      await store.delete('d');
      await store.delete('never-there');
    });

    it('lists by prefix, in key order, page after page', async () => {
      const count = target.pageSize * 2 + 3;
      const keys = Array.from({ length: count }, (_, i) => `list/${String(i).padStart(4, '0')}`);
      for (const key of keys) await store.put(key, Buffer.from(key));
      await store.put('listing-not/x', Buffer.from('x'));
      await store.put('lis', Buffer.from('x'));
      const first = await store.list('list/');
      expect(first.objects.length).to.be.at.most(target.pageSize);
      expect(first.next).to.not.equal(undefined);
      const listed: string[] = [];
      for await (const info of listAll(store, 'list/')) {
        listed.push(info.key);
        expect(info.size).to.equal(info.key.length);
      }
      expect(listed).to.deep.equal(keys);
      expect((await store.list('nothing-here/')).objects).to.deep.equal([]);
    });

    it('refuses a conditional put on an existing key with PRECONDITION_FAILED, and keeps the first body', async function () {
      if (!store.conditionalWrites) this.skip();
      await store.put('once', Buffer.from('first'), { ifNoneMatch: true });
      const err = await store.put('once', Buffer.from('second'), { ifNoneMatch: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isColdstreamError(err, 'PRECONDITION_FAILED'), String(err)).to.equal(true);
      expect((await store.get('once')).toString()).to.equal('first');
    });

    it('refuses a body that does not match its Content-MD5, storing nothing', async function () {
      if (target.checksContentMd5 === false) this.skip(); // Tiering verifies the etag (the MD5 the server computed) all the same.
      const body = Buffer.from('the body');
      const wrong = createHash('md5').update('another body').digest('base64');
      const err = await store.put('md5', body, { md5: wrong }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isColdstreamError(err, 'OBJECT_STORE'), String(err)).to.equal(true);
      expect(await store.head('md5')).to.equal(undefined);
      await store.put('md5', body, { md5: createHash('md5').update(body).digest('base64') });
      expect((await store.get('md5')).equals(body)).to.equal(true);
    });

    it('takes a put with the body\'s SHA-256 given (as tiering computes it off the event loop)', async () => {
      const body = Buffer.from('a body whose SHA-256 the caller computed');
      const md5 = createHash('md5').update(body);
      await store.put('sha', body, { md5: md5.digest('base64'), sha256: createHash('sha256').update(body).digest('hex') });
      expect((await store.get('sha')).equals(body)).to.equal(true);
    });

    it('rejects a call aborted by its caller with OBJECT_STORE', async () => {
      const controller = new AbortController();
      controller.abort();
      const err = await store.get('whatever', { signal: controller.signal }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isColdstreamError(err, 'OBJECT_STORE'), String(err)).to.equal(true);
    });
  });
}
