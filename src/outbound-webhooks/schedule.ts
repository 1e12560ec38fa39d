/**
 * When a failed delivery is tried again (docs/webhooks.md, "Retries"): exponential backoff capped
 * at 8 hours, 12 attempts over about 31 h 42 min, each wait stretched by up to 20 % at random so
 * receivers that failed together are not all retried in the same second. Jitter only lengthens a
 * wait, so the schedule's promise — retries for at least 24 hours — holds for every draw.
 */
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** The wait after the 1st, 2nd, … failed attempt; the first attempt is made at once. */
export const RETRY_DELAYS_MS: readonly number[] = [
  5 * SECOND,
  30 * SECOND,
  2 * MINUTE,
  10 * MINUTE,
  30 * MINUTE,
  1 * HOUR,
  2 * HOUR,
  4 * HOUR,
  8 * HOUR,
  8 * HOUR,
  8 * HOUR,
];

/** Attempts in one schedule: the first and one per wait. */
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;

/** The most jitter adds to a wait, as a fraction of it. */
export const JITTER = 0.2;

/**
 * The wait before the next attempt after `failedAttempts` failures (1 after the first attempt
 * failed), or undefined when the schedule is used up. `random` is in [0, 1).
 */
export function retryDelayMs(failedAttempts: number, random: number): number | undefined {
  const base = RETRY_DELAYS_MS[failedAttempts - 1];
  if (base === undefined) return undefined;
  return Math.round(base * (1 + JITTER * random));
}
