import { setTimeout as delay } from 'node:timers/promises';

/** How long the library waits for a broker's answer (cancel-ok, close-ok) before going on without it. */
export const BROKER_ANSWER_WAIT_MS = 2_000;

/**
 * Resolves `true` once `work` settles (fulfilled or rejected), or `false` when
 * `ms` pass first; the work goes on either way. The timer does not keep the
 * process alive.
 */
export function settlesWithin(work: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  return Promise.race([
    (work ?? Promise.resolve()).then(
      () => true,
      () => true,
    ),
    delay(ms, false, { ref: false }),
  ]);
}
