import { z } from 'zod';

/** The one source of time. Domain code takes a Clock; only this module reads the wall clock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * Milliseconds of the wall clock, for the few libraries that time themselves with it (cockatiel's
 * circuit breaker): code that must agree with them reads the same source.
 */
export function libraryClockMs(): number {
  return Date.now();
}

/** How an instant is written on the wire (API answers, reports): RFC 3339, from Date.toISOString. */
export const Timestamp = z.iso.datetime({ offset: true }).describe('RFC 3339 timestamp');
