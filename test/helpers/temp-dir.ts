import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh temporary directory per test, removed afterwards. Call in a `describe` body. */
export function useTempDir(prefix = 'coldstream-test-'): { readonly path: string } {
  const holder = { path: '' };
  beforeEach(() => {
    holder.path = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterEach(() => {
    fs.rmSync(holder.path, { recursive: true, force: true });
  });
  return holder;
}

/** A clock the test moves by hand. */
export class ManualClock {
  constructor(public nowMs = 1_700_000_000_000) {}
  now(): number {
    return this.nowMs;
  }
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

/**
 * A fresh temporary directory and an EventStore open on it for each test, closed before the
 * directory is removed (the store's hooks run in a nested suite, after the directory's).
 * Call in a `describe` body; declare the tests inside `body`.
 */
export function withOpenStore<S extends { close(): Promise<void> }>(open: (dir: string) => Promise<S>, body: (holder: { readonly store: S; readonly dir: string }) => void): void {
  const tmp = useTempDir();
  const holder = {
    store: undefined as unknown as S,
    get dir(): string {
      return tmp.path;
    },
  };
  describe('on an open store', () => {
    beforeEach(async () => {
      holder.store = await open(tmp.path);
    });
    afterEach(async () => {
      await holder.store.close();
    });
    body(holder);
  });
}
