import type { Readable } from 'node:stream';

/**
 * Calls `onLine` with each complete line `stream` (a child's stdout) yields, as it arrives.
 * Returns a function giving what follows the last newline so far: a line a kill cut short.
 */
export function onLines(stream: Readable, onLine: (line: string) => void): () => string {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      onLine(line);
    }
  });
  return () => buffered;
}
