import { expect } from 'chai';
import { TestScheduler } from 'rxjs/testing';
import { checkpointPolicy } from '../../lib/subscriptions/checkpoint-policy.js';

describe('checkpointPolicy', () => {
  const scheduler = (): TestScheduler =>
    new TestScheduler((actual, expected) => {
      expect(actual).to.deep.equal(expected);
    });

  it('checkpoints after N commits, or T ms after the first pending one', () => {
    scheduler().run(({ hot, expectObservable }) => {
      const commits = hot('-a-b-c----d------|', { a: 1, b: 2, c: 3, d: 4 });
      expectObservable(commits.pipe(checkpointPolicy(3, 5))).toBe('-----c---------d-|', { c: 3, d: 4 });
    });
  });

  it('checkpoints the newest position only, once per window', () => {
    scheduler().run(({ hot, expectObservable }) => {
      const commits = hot('-a-b-c-d---------|', { a: 10, b: 20, c: 30, d: 40 });
      expectObservable(commits.pipe(checkpointPolicy(100, 8))).toBe('---------d-------|', { d: 40 });
    });
  });

  it('writes what is pending when the source completes, and nothing when nothing is', () => {
    scheduler().run(({ hot, expectObservable }) => {
      expectObservable(hot('-a-|', { a: 7 }).pipe(checkpointPolicy(100, 50))).toBe('---(a|)', { a: 7 });
      expectObservable(hot<number>('---|').pipe(checkpointPolicy(100, 50))).toBe('---|');
    });
  });
});
