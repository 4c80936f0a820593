/**
 * When a consumer writes its checkpoint: an RxJS operator from the stream of committed
 * positions to the positions to checkpoint, emitted after `everyEvents` commits, or `everyMs`
 * after the first commit not yet checkpointed, whichever comes first; and the last one when the
 * source completes. Pure and scheduler-driven, so it is tested with marbles.
 */
import { Observable, asyncScheduler, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';

export function checkpointPolicy(everyEvents: number, everyMs: number, scheduler: SchedulerLike = asyncScheduler): OperatorFunction<number, number> {
  return (commits) =>
    new Observable<number>((subscriber) => {
      let pending: number | undefined;
      let count = 0;
      let timer: Subscription | undefined;
      const flush = (): void => {
        timer?.unsubscribe();
        timer = undefined;
        if (pending === undefined) return;
        const position = pending;
        pending = undefined;
        count = 0;
        subscriber.next(position);
      };
      const source = commits.subscribe({
        next: (position) => {
          pending = position;
          if (++count >= everyEvents) flush();
          else timer ??= scheduler.schedule(flush, everyMs);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          flush();
          subscriber.complete();
        },
      });
      return () => {
        timer?.unsubscribe();
        source.unsubscribe();
      };
    });
}
