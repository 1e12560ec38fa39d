import type { Clock } from '../../src/clock.ts';

/** A clock for tests and simulations (the benchmarks too): time moves only when told to. */
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
