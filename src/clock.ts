import { z } from 'zod';

/** The one source of time. Domain code takes a Clock; only this module reads the wall clock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock for tests and simulations: time moves only when told to. */
export class ManualClock implements Clock {
  private current: number;
  constructor(start: Date | string | number = '2026-01-01T00:00:00Z') {
    this.current = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): Date {
    this.current += ms;
    return this.now();
  }
  set(at: Date | string | number): void {
    this.current = new Date(at).getTime();
  }
}

/**
 * Milliseconds of the wall clock, for the few libraries that time themselves with it (cockatiel's
 * circuit breaker): code that must agree with them reads the same source.
 */
export function libraryClockMs(): number {
  return Date.now();
}

/** How an instant is written on the wire (API answers, reports): RFC 3339, from Date.toISOString. */
export const Timestamp = z.iso.datetime({ offset: true }).describe('RFC 3339 timestamp');
