import {
  DEFAULT_RETRIES,
  DEFAULT_RETRY_DELAY_MS,
  MAX_ATTEMPT,
  MAX_RETRIES,
  resolveRetryPolicy,
} from '../../lib/events/retry-policy';
import { subscribeOptionsProblem } from '../../lib/subscribing/mo-event-subscribe.schema';

describe('the retry policy', () => {
  it('fills in the defaults: 3 retries, 5 s first wait, in the retry queue', () => {
    expect(resolveRetryPolicy({})).toEqual({ retries: 3, retryDelayMs: 5_000, usesRetryQueue: true });
    expect([DEFAULT_RETRIES, DEFAULT_RETRY_DELAY_MS]).toEqual([3, 5_000]);
  });

  it('keeps what the options give, 0 included, and uses no retry queue without a wait or a retry', () => {
    expect(resolveRetryPolicy({ retries: 0 })).toEqual({ retries: 0, retryDelayMs: 5_000, usesRetryQueue: false });
    expect(resolveRetryPolicy({ retryDelayMs: 0 })).toEqual({ retries: 3, retryDelayMs: 0, usesRetryQueue: false });
    expect(resolveRetryPolicy({ retries: 7, retryDelayMs: 10 })).toEqual({
      retries: 7,
      retryDelayMs: 10,
      usesRetryQueue: true,
    });
  });

  it('lets the options ask for as many retries as an attempt header can count, and no more', () => {
    expect(MAX_ATTEMPT).toBe(MAX_RETRIES + 1);
    expect(subscribeOptionsProblem({ queue: 'q', retries: MAX_RETRIES })).toBeUndefined();
    expect(subscribeOptionsProblem({ queue: 'q', retries: MAX_RETRIES + 1 })).toContain('retries');
  });
});
