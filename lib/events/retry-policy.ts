/*
 * The retry policy of `@MoEventSubscribe`, in one place: the defaults, the bounds
 * the options are checked against, the attempt a copy's header may claim, and the
 * wait before each try. Counted by the library itself (`x-mo-amqp-attempt` on its
 * own copies), on every broker version: never by `x-delivery-count`, whose meaning
 * changed in RabbitMQ 4.3.
 */

/** How often a message whose handler throws is tried again before it is dead-lettered. */
export const DEFAULT_RETRIES = 3;
/** The wait before the first try again; it doubles after each further failure. */
export const DEFAULT_RETRY_DELAY_MS = 5_000;
/** The most `retries` may be. */
export const MAX_RETRIES = 100;
/** The largest `x-mo-amqp-attempt` a copy of ours carries: every retry allowed and the first try. */
export const MAX_ATTEMPT = MAX_RETRIES + 1;
/** The longest a failed message waits for its next try (and the most `retryDelayMs` may be). */
export const MAX_RETRY_DELAY_MS = 86_400_000;

/** What a subscription's options resolve to. */
export interface RetryPolicy {
  readonly retries: number;
  /** The first wait before a try again; 0: at once, on the queue itself. */
  readonly retryDelayMs: number;
  /** True when failed messages wait in `<queue>.retry` (it is declared then). */
  readonly usesRetryQueue: boolean;
}

/** The policy of one subscription: its options, defaults where it gives none. */
export function resolveRetryPolicy(options: { retries?: number; retryDelayMs?: number }): RetryPolicy {
  const retries = options.retries ?? DEFAULT_RETRIES;
  const retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  return { retries, retryDelayMs, usesRetryQueue: retries > 0 && retryDelayMs > 0 };
}

/** The wait before the try after failed attempt `attempt` (1 = the first delivery): doubling, capped. */
export function retryDelayOf(retryDelayMs: number, attempt: number): number {
  return Math.min(retryDelayMs * 2 ** Math.min(attempt - 1, 30), MAX_RETRY_DELAY_MS);
}
