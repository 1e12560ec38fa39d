/**
 * A per-provider request pacer: at most N calls start in any second, evenly spaced (one every
 * 1000/N ms). Upstreams rate-limit per API key, and a burst of polls would earn us a 429 that then
 * blocks a purchase; spacing the calls is cheaper than retrying them.
 *
 * Slots are reserved synchronously when `schedule` is called, so concurrent callers queue in call
 * order without a lock. Time comes from an injected clock and waiting from an injected sleep, so
 * tests can check the spacing without waiting for real.
 */

export interface PacerClock {
  /** Milliseconds, or a Date; only differences matter. */
  now(): number | Date;
}

export interface PacerOptions {
  /** Calls allowed to start per second; 0, Infinity or undefined means unpaced. */
  requestsPerSecond?: number;
  /** Defaults to a monotonic clock: the domain clock may be frozen in tests. */
  clock?: PacerClock;
  sleep?: (ms: number) => Promise<void>;
}

export interface Pacer {
  schedule<T>(fn: () => Promise<T>): Promise<T>;
}

const monotonicClock: PacerClock = { now: () => performance.now() };
const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createPacer(options: PacerOptions = {}): Pacer {
  const rate = options.requestsPerSecond;
  if (rate === undefined || rate === 0 || rate === Number.POSITIVE_INFINITY) {
    return { schedule: (fn) => fn() };
  }
  if (!(rate > 0) || !Number.isFinite(rate)) {
    throw new RangeError(`requestsPerSecond must be a positive number, 0 or Infinity, got ${rate}`);
  }
  const interval = 1000 / rate;
  const clock = options.clock ?? monotonicClock;
  const sleep = options.sleep ?? realSleep;
  let nextSlot = Number.NEGATIVE_INFINITY;

  return {
    async schedule<T>(fn: () => Promise<T>): Promise<T> {
      const now = Number(clock.now());
      const slot = Math.max(now, nextSlot);
      nextSlot = slot + interval;
      const wait = slot - now;
      if (wait > 0) await sleep(wait);
      return fn();
    },
  };
}
