import { expect } from 'chai';
import { PageIterator } from '../../lib/store/page-iterator.js';

function pages<T>(...all: (T[] | undefined)[]): { fetches: number; next: () => Promise<T[] | undefined> } {
  const state = { fetches: 0, next: async () => all[state.fetches++] };
  return state;
}

async function collect<T>(iterator: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterator) out.push(item);
  return out;
}

describe('PageIterator', () => {
  it('yields every item of every page in order, skipping empty pages', async () => {
    const source = pages([1, 2], [], [3], undefined);
    expect(await collect(new PageIterator(source.next))).to.deep.equal([1, 2, 3]);
    expect(source.fetches).to.equal(4);
  });

  it('gives concurrent next() calls distinct items in call order', async () => {
    const iterator = new PageIterator(pages([1, 2, 3], [4], undefined).next);
    const results = await Promise.all(Array.from({ length: 6 }, () => iterator.next()));
    expect(results.map((r) => r.value)).to.deep.equal([1, 2, 3, 4, undefined, undefined]);
    expect(results.map((r) => r.done)).to.deep.equal([false, false, false, false, true, true]);
  });

  it('reads no further page after return() (a break out of for await)', async () => {
    const source = pages([1, 2], [3], undefined);
    const iterator = new PageIterator(source.next);
    for await (const item of iterator) if (item === 1) break;
    expect(source.fetches).to.equal(1);
    expect((await iterator.next()).done).to.equal(true);
  });

  it('rejects next() with the page error and keeps order for the calls after it', async () => {
    let calls = 0;
    const iterator = new PageIterator<number>(async () => {
      calls++;
      if (calls === 1) throw new Error('disk on fire');
      return calls === 2 ? [7] : undefined;
    });
    const [first, second] = await Promise.allSettled([iterator.next(), iterator.next()]);
    expect(first.status).to.equal('rejected');
    expect(second).to.deep.equal({ status: 'fulfilled', value: { value: 7, done: false } });
  });
});
