/**
 * Patience with rate limits on reads. Catalogue calls (service lists, price lists) are idempotent
 * and some upstreams document them as rate-limited: a 429 there means "wait", not "give up", so a
 * sync backs off and continues instead of failing on the first one. Never used for calls that
 * change something upstream (a purchase is retried only through its idempotency key or lookup).
 */
import { DelegateBackoff, handleWhen, retry } from 'cockatiel';
import { isProviderError } from './provider.ts';

export interface RateLimitBackoff {
  /** Further attempts after the first 429 (0 = give up at once). */
  retries: number;
  /** First wait when the upstream names none; doubles each time (with jitter). */
  initialDelayMs: number;
  /** No wait is longer than this, whatever Retry-After says. */
  maxDelayMs: number;
}

export const DEFAULT_RATE_LIMIT_BACKOFF: RateLimitBackoff = { retries: 6, initialDelayMs: 1000, maxDelayMs: 30_000 };

const isRateLimited = (error: unknown) => isProviderError(error) && error.code === 'rate_limited';

/**
 * Runs an idempotent read, again after each 429 until the retries are spent: waiting what the
 * upstream asked (Retry-After) or, when it did not say, an exponential delay, half of it random.
 */
export function retryWhenRateLimited<T>(read: () => Promise<T>, backoff: RateLimitBackoff): Promise<T> {
  if (backoff.retries <= 0) return read();
  const policy = retry(handleWhen(isRateLimited), {
    maxAttempts: backoff.retries,
    backoff: new DelegateBackoff((context: { attempt: number; result: unknown }) => {
      const failure = context.result as { error?: unknown };
      const asked = isProviderError(failure.error) ? failure.error.retryAfterSeconds : undefined;
      if (asked !== undefined) return Math.min(backoff.maxDelayMs, asked * 1000);
      const ceiling = Math.min(backoff.maxDelayMs, backoff.initialDelayMs * 2 ** (context.attempt - 1));
      return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    }),
  });
  return policy.execute(() => read());
}
