/**
 * Reads a file and computes its MD5 (the Content-MD5 of its upload) and SHA-256 (what S3's
 * request signing hashes the payload with) off the event loop, in a worker thread: hashing a
 * 16 MiB segment takes tens of milliseconds of CPU, which on the event loop would hold up
 * everything else the process does (appends, reads, the uploads' own I/O).
 *
 * The worker is started on first use (or by {@link FileHasher.warmUp}) and runs Node's
 * built-ins only (its code is inline, so it needs no file of its own under tsx, tsc or a
 * bundler). It does not keep the process alive while idle (it is unref'd, and ref'd only while
 * a file is being hashed), and {@link FileHasher.close} terminates it. The body comes back to
 * this thread by transfer, not by copy. Where a worker cannot be started or dies, files are read
 * and hashed on this thread instead: slower, same result.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';

export interface HashedFile {
  readonly body: Buffer;
  /** The MD5 of the body, base64 (for Content-MD5) and hex (as S3-style etags give it). */
  readonly md5Base64: string;
  readonly md5Hex: string;
  /** The SHA-256 of the body, hex (what S3's request signing hashes the payload with). */
  readonly sha256Hex: string;
}

interface Request {
  readonly file: string;
  resolve(file: HashedFile): void;
  reject(err: unknown): void;
}

type Answer = { id: number; body: ArrayBuffer; length: number; md5: string; sha256: string } | { id: number; error: { message: string; code?: string } };

/** The worker's code: CommonJS, Node built-ins only. */
const WORKER_CODE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, file }) => {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const body = Buffer.allocUnsafeSlow(size); // An ArrayBuffer of its own, to transfer.
    let length = 0;
    for (let n = -1; length < size && n !== 0; length += n) n = fs.readSync(fd, body, length, size - length, length);
    const md5 = createHash('md5').update(body.subarray(0, length)).digest('hex');
    const sha256 = createHash('sha256').update(body.subarray(0, length)).digest('hex');
    parentPort.postMessage({ id, body: body.buffer, length, md5, sha256 }, [body.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: { message: String((err && err.message) || err), code: err && err.code } });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
});
`;

export class FileHasher {
  private worker: Worker | undefined;
  /** Set once a worker could not start or died: from then on, files are hashed on this thread. */
  private inThread = false;
  private closed = false;
  private nextId = 0;
  private readonly pending = new Map<number, Request>();

  /** Whether files are hashed in the worker thread (it is started, or will be at the next read). */
  get inWorker(): boolean {
    return !this.closed && !this.inThread;
  }

  /** The file's bytes and their hashes. Rejects with the file system's error (ENOENT…) as reading it would. */
  read(file: string): Promise<HashedFile> {
    const worker = this.closed || this.inThread ? undefined : this.start();
    if (worker === undefined) return readInThread(file);
    return new Promise<HashedFile>((resolve, reject) => {
      const id = this.nextId++;
      if (this.pending.size === 0) worker.ref(); // Keep the process alive while a file is being hashed.
      this.pending.set(id, { file, resolve, reject });
      worker.postMessage({ id, file });
    });
  }

  /** Starts the worker ahead of the first file (a worker takes tens of milliseconds to boot). */
  warmUp(): void {
    if (!this.closed && !this.inThread) this.start();
  }

  /** Terminates the worker; files being hashed are finished on this thread. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return;
    this.fallBack();
    await worker.terminate();
  }

  private start(): Worker | undefined {
    if (this.worker !== undefined) return this.worker;
    try {
      // No execArgv of ours (loaders such as tsx, inspector flags): the code is plain CommonJS.
      const worker = new Worker(WORKER_CODE, { eval: true, execArgv: [] });
      worker.unref();
      worker.on('message', (answer: Answer) => this.answered(answer));
      worker.on('error', () => this.died(worker));
      worker.on('exit', () => this.died(worker));
      this.worker = worker;
      return worker;
    } catch {
      this.inThread = true;
      return undefined;
    }
  }

  private answered(answer: Answer): void {
    const request = this.pending.get(answer.id);
    if (request === undefined) return;
    this.pending.delete(answer.id);
    if (this.pending.size === 0) this.worker?.unref();
    if ('error' in answer) {
      request.reject(Object.assign(new Error(answer.error.message), answer.error.code === undefined ? {} : { code: answer.error.code }));
      return;
    }
    request.resolve({
      body: Buffer.from(answer.body, 0, answer.length),
      md5Hex: answer.md5,
      md5Base64: Buffer.from(answer.md5, 'hex').toString('base64'),
      sha256Hex: answer.sha256,
    });
  }

  /** The worker failed or exited on its own: hash on this thread from now on, the pending files too. */
  private died(worker: Worker): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.inThread = true;
    this.fallBack();
  }

  private fallBack(): void {
    const requests = [...this.pending.values()];
    this.pending.clear();
    for (const request of requests) readInThread(request.file).then(request.resolve, request.reject);
  }
}

async function readInThread(file: string): Promise<HashedFile> {
  const body = await fs.promises.readFile(file);
  const md5 = createHash('md5').update(body).digest();
  return { body, md5Hex: md5.toString('hex'), md5Base64: md5.toString('base64'), sha256Hex: createHash('sha256').update(body).digest('hex') };
}
