/**
 * Deadlines for object-store calls. Every adapter runs each request under {@link withDeadline}:
 * the request gets an AbortSignal that fires at the deadline or when the caller's own signal
 * does, and the call rejects at that moment with an {@link ObjectStoreError} (`timedOut` for the
 * deadline) even if the SDK underneath ignores the signal and goes on waiting.
 */
import { ColdstreamError, ObjectStoreError } from '../errors.js';

/** Default deadline of one object-store request. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * Runs `request` with a signal that aborts after `timeoutMs` or when `signal` aborts. Errors
 * that are not ColdstreamErrors become ObjectStoreErrors through `translate`.
 */
export async function withDeadline<T>(
  operation: string,
  key: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  request: (signal: AbortSignal) => Promise<T>,
  translate: (err: unknown) => ColdstreamError = (err) => new ObjectStoreError(operation, key, describe(err), { cause: err }),
): Promise<T> {
  if (signal?.aborted === true) throw new ObjectStoreError(operation, key, 'aborted by the caller', { cause: signal.reason });
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`deadline of ${timeoutMs} ms passed`));
      reject(new ObjectStoreError(operation, key, `no answer within the deadline of ${timeoutMs} ms`, { timedOut: true }));
    }, timeoutMs);
    onAbort = () => {
      controller.abort(signal!.reason);
      reject(new ObjectStoreError(operation, key, 'aborted by the caller', { cause: signal!.reason }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  stopped.catch(() => {}); // Only observed through the race below.
  try {
    return await Promise.race([
      request(controller.signal).catch((err: unknown) => {
        if (controller.signal.aborted) return stopped; // The deadline's or the caller's error, not the SDK's "aborted".
        throw err instanceof ColdstreamError ? err : translate(err);
      }),
      stopped,
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}

/** A short description of an SDK or system error for a message. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as { Code?: string }).Code ?? err.name;
    return err.message === '' || err.message === code ? String(code) : `${code}: ${err.message}`;
  }
  return String(err);
}
