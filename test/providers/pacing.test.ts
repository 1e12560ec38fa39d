import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createPacer } from '../../src/providers/pacing.ts';

/** A virtual clock whose sleep moves time forward instead of waiting. */
function virtualTime() {
  let now = 0;
  const sleeps: number[] = [];
  return {
    clock: { now: () => now },
    sleeps,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now = Math.max(now, now + ms);
    },
    advance: (ms: number) => {
      now += ms;
    },
    get now() {
      return now;
    },
  };
}

describe('request pacer', () => {
  test('10 sequential calls at 5 per second start 200 ms apart', async () => {
    const time = virtualTime();
    const pacer = createPacer({ requestsPerSecond: 5, clock: time.clock, sleep: time.sleep });
    const starts: number[] = [];
    for (let i = 0; i < 10; i += 1) await pacer.schedule(async () => starts.push(time.now));
    assert.deepEqual(starts, [0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800]);
  });

  test('10 concurrent calls at 5 per second each wait for their own slot', async () => {
    const time = virtualTime();
    const requested: number[] = [];
    const pacer = createPacer({
      requestsPerSecond: 5,
      clock: time.clock,
      // Sleeps that resolve without moving the clock: what matters is how long each call was told to wait.
      sleep: async (ms) => void requested.push(ms),
    });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => pacer.schedule(async () => i)));
    assert.deepEqual(results, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(requested, [200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800]);
  });

  test('after an idle period the next call starts at once', async () => {
    const time = virtualTime();
    const pacer = createPacer({ requestsPerSecond: 5, clock: time.clock, sleep: time.sleep });
    await pacer.schedule(async () => undefined);
    await pacer.schedule(async () => undefined);
    time.advance(5000);
    await pacer.schedule(async () => undefined);
    assert.deepEqual(time.sleeps, [200]);
  });

  test('0 and Infinity mean unpaced', async () => {
    for (const requestsPerSecond of [0, Number.POSITIVE_INFINITY, undefined]) {
      const time = virtualTime();
      const pacer = createPacer({ requestsPerSecond, clock: time.clock, sleep: time.sleep });
      await Promise.all(Array.from({ length: 5 }, () => pacer.schedule(async () => undefined)));
      assert.deepEqual(time.sleeps, []);
    }
  });

  test('a failing call still uses its slot and the error reaches the caller', async () => {
    const time = virtualTime();
    const pacer = createPacer({ requestsPerSecond: 2, clock: time.clock, sleep: time.sleep });
    await assert.rejects(pacer.schedule(async () => Promise.reject(new Error('boom'))), /boom/);
    await pacer.schedule(async () => undefined);
    assert.deepEqual(time.sleeps, [500]);
  });

  test('a negative rate is a configuration error', () => {
    assert.throws(() => createPacer({ requestsPerSecond: -1 }), RangeError);
  });
});
