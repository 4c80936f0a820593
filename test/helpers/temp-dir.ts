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
