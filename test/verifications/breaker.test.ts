import { describe, test, before, after, beforeEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from '../support/db.ts';
import { START, lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider, deferred } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent, storedFor } from '../support/lifecycle-invariants.ts';
import { purchaseVerification, type PurchaseOutcome } from '../../src/verifications/purchase.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { ProviderError } from '../../src/providers/provider.ts';
import { isDomainError, type DomainError } from '../../src/errors.ts';

/**
 * The provider's circuit breaker (threshold 3, half-open after 10 s in the harness). cockatiel times
 * the half-open delay with Date.now(), so the wall clock is mocked here (node:test mock timers) next
 * to the domain's ManualClock; nothing waits for real time.
 */
const THRESHOLD = 3;
const HALF_OPEN_MS = 10_000;

async function outcome(request: Promise<PurchaseOutcome>): Promise<PurchaseOutcome | DomainError> {
  try {
    return await request;
  } catch (error) {
    if (isDomainError(error)) return error;
    throw error;
  }
}

for (const engine of engines) {
  describe(`provider circuit breaker [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    let keys = 0;

    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, {
        provider,
        env: { BREAKER_FAILURE_THRESHOLD: String(THRESHOLD), BREAKER_HALF_OPEN_AFTER_MS: String(HALF_OPEN_MS) },
      });
      mock.timers.enable({ apis: ['Date'], now: new Date(START).getTime() });
    });
    after(async () => {
      mock.timers.reset();
      await h.dispose();
    });
    beforeEach(async () => {
      provider.resetBehaviour();
      // Every test starts with a closed breaker: let a half-open trial succeed if it is open.
      if (h.runtime.breaker.state() !== 'closed') {
        mock.timers.tick(HALF_OPEN_MS);
        await h.deps.provider.balance();
      }
      assert.equal(h.runtime.breaker.state(), 'closed');
    });

    const buy = (userId: string, service = 'test_timeout') =>
      outcome(purchaseVerification(h.deps, { userId, idempotencyKey: `brk-${keys++}`, service }));

    /** Opens the breaker with THRESHOLD definite `unavailable` purchases (each failed and refunded). */
    async function openBreaker(): Promise<void> {
      const user = await h.customer(1000);
      provider.failAll('definite', 'unavailable');
      for (let i = 0; i < THRESHOLD; i++) {
        const out = await buy(user);
        assert.ok(isDomainError(out) && out.code === 'provider_unavailable' && typeof out.extra.verification_id === 'string');
      }
      provider.restore();
      assert.equal(h.runtime.breaker.state(), 'open');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    }

    test('upstream trouble opens it after the threshold; purchases then fail fast: no verification, no hold, no call', async () => {
      const user = await h.customer(1000);
      provider.failAll('definite', 'unavailable');
      for (let i = 0; i < THRESHOLD; i++) {
        assert.equal(h.runtime.breaker.state(), 'closed', `still closed after ${i} failures`);
        const out = await buy(user);
        assert.ok(isDomainError(out));
        assert.deepEqual([out.code, out.status], ['provider_unavailable', 503]);
        assert.equal(typeof out.extra.verification_id, 'string', 'a purchase that reached the provider is stored as failed');
      }
      assert.equal(h.runtime.breaker.state(), 'open');
      assert.equal(h.runtime.breaker.isOpen(), true);
      const calls = provider.calls.buy;
      const stored = await storedFor(h.t.database.db, user);
      for (let i = 0; i < 5; i++) {
        const out = await buy(user);
        assert.ok(isDomainError(out));
        assert.deepEqual([out.code, out.status, out.headers['Retry-After']], ['provider_unavailable', 503, String(HALF_OPEN_MS / 1000)]);
        assert.equal(out.extra.verification_id, undefined, 'nothing was stored');
      }
      assert.equal(provider.calls.buy, calls, 'no upstream call while open');
      assert.deepEqual(await storedFor(h.t.database.db, user), stored);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('ambiguous failures (timeouts) count too; the pending purchases are refunded by recovery once it is back', async () => {
      const user = await h.customer(1000);
      provider.failAll('ambiguous', 'timeout');
      const pending: string[] = [];
      for (let i = 0; i < THRESHOLD; i++) {
        const out = await buy(user);
        assert.ok(!isDomainError(out) && out.status === 202);
        pending.push(out.row.id);
      }
      assert.equal(h.runtime.breaker.state(), 'open');
      assert.deepEqual(await h.wallet(user), [1000, 150, 850]);
      const out = await buy(user);
      assert.ok(isDomainError(out) && out.code === 'provider_unavailable');
      // Recovery while open cannot ask the upstream; it waits, without buying.
      const lookups = provider.calls.lookup;
      await h.runtime.engine.tick();
      assert.equal(provider.calls.lookup, lookups);
      provider.restore();
      mock.timers.tick(HALF_OPEN_MS);
      for (let i = 0; i < 4; i++) {
        h.clock.advance(31_000);
        await h.runtime.engine.tick();
      }
      for (const id of pending) assert.equal((await loadVerification(h.t.database.db, id))?.state, 'failed');
      assert.equal(h.runtime.breaker.state(), 'closed');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('after the half-open delay one trial call goes through; its success closes the breaker', async () => {
      await openBreaker();
      const user = await h.customer(1000);
      mock.timers.tick(HALF_OPEN_MS - 1);
      const early = await buy(user);
      assert.ok(isDomainError(early) && early.code === 'provider_unavailable', 'still open 1 ms before');
      const calls = provider.calls.buy;
      mock.timers.tick(1);
      assert.equal(h.runtime.breaker.isOpen(), false, 'a trial is allowed now');
      const trial = await buy(user);
      assert.ok(!isDomainError(trial));
      assert.deepEqual([trial.status, trial.row.state], [201, 'waiting']);
      assert.equal(provider.calls.buy, calls + 1);
      assert.equal(h.runtime.breaker.state(), 'closed');
      const next = await buy(user);
      assert.ok(!isDomainError(next) && next.status === 201);
      assert.deepEqual(await h.wallet(user), [1000, 100, 900]);
    });

    test('a failing trial re-opens it at once', async () => {
      await openBreaker();
      const user = await h.customer(1000);
      mock.timers.tick(HALF_OPEN_MS);
      provider.failAll('ambiguous', 'server_error');
      const calls = provider.calls.buy;
      const trial = await buy(user);
      assert.ok(!isDomainError(trial) && trial.status === 202, 'the trial purchase is ambiguous: left for recovery');
      assert.equal(provider.calls.buy, calls + 1);
      assert.equal(h.runtime.breaker.state(), 'open');
      const after = await buy(user);
      assert.ok(isDomainError(after) && after.code === 'provider_unavailable' && after.extra.verification_id === undefined);
      assert.equal(provider.calls.buy, calls + 1);
      provider.restore();
      mock.timers.tick(HALF_OPEN_MS);
      h.clock.advance(31_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, trial.row.id))?.state, 'failed', 'recovery: provably absent');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('while half-open only the trial reaches the upstream; the purchases queued behind a failed trial keep no hold', async () => {
      await openBreaker();
      const user = await h.customer(1000);
      mock.timers.tick(HALF_OPEN_MS);
      const release = deferred();
      const entered = deferred();
      provider.onBuy = async () => {
        entered.resolve();
        await release.promise;
        throw new ProviderError('definite', 'unavailable', 'still down');
      };
      const calls = provider.calls.buy;
      const trial = buy(user);
      await entered.promise;
      const queued = [buy(user), buy(user), buy(user)];
      // Let the queued purchases reach the breaker, then fail the trial.
      while ((await storedFor(h.t.database.db, user)).verifications < 4) await new Promise((r) => setImmediate(r));
      release.resolve();
      const results = await Promise.all([trial, ...queued]);
      for (const r of results) assert.ok(isDomainError(r) && r.code === 'provider_unavailable', String(r));
      assert.equal(provider.calls.buy, calls + 1, 'one trial call');
      assert.equal(h.runtime.breaker.state(), 'open');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('business answers (no numbers, price above the cap) do not open it', async () => {
      const user = await h.customer(1000);
      for (let i = 0; i < THRESHOLD * 3; i++) {
        provider.onBuy = async () => {
          throw new ProviderError('definite', i % 2 === 0 ? 'no_numbers' : 'price_exceeds_max', 'business answer');
        };
        const out = await buy(user);
        assert.ok(isDomainError(out));
        assert.equal(out.code, i % 2 === 0 ? 'no_numbers' : 'price_exceeds_max');
      }
      assert.equal(h.runtime.breaker.state(), 'closed');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    test('polling with an open breaker skips the upstream and counts no failure; the next poll after it closes captures', async () => {
      const user = await h.customer(1000);
      const out = await buy(user);
      assert.ok(!isDomainError(out));
      await openBreaker();
      const checks = provider.calls.check;
      provider.deliver(out.row.providerOrderId!, 'Your code is 555000', '555000', h.clock.now());
      for (let i = 0; i < 5; i++) {
        h.clock.advance(1_000);
        const report = await h.runtime.engine.tick();
        assert.ok(report.polled >= 1);
        assert.equal(report.captured, 0);
      }
      assert.equal(provider.calls.check, checks, 'no upstream check while open');
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([row.state, row.checkFailures], ['waiting', 0]);
      assert.ok(row.nextCheckAt! > h.clock.now(), 'rescheduled as an ordinary poll');
      mock.timers.tick(HALF_OPEN_MS);
      h.clock.advance(1_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))?.state, 'received');
      assert.equal(h.runtime.breaker.state(), 'closed');
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
    });

    test('the deadline still refunds with the provider down; the owed cancel is settled when it is back', async () => {
      const user = await h.customer(1000);
      const out = await buy(user);
      assert.ok(!isDomainError(out));
      await openBreaker();
      provider.failAll('definite', 'unavailable');
      const calls = { ...provider.calls };
      h.clock.set(out.row.expiresAt);
      const report = await h.runtime.engine.tick();
      assert.ok(report.expired >= 1);
      let row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([row.state, row.upstreamStatus], ['expired', 'cancel_owed']);
      assert.ok(row.resolvedAt!.getTime() <= row.expiresAt.getTime() + 60_000);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.deepEqual(provider.calls, calls, 'nothing was sent upstream while open');

      // Still open: the settlement waits with backoff, nothing sent.
      h.clock.advance(301_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))?.upstreamStatus, 'cancel_owed');
      assert.deepEqual(provider.calls, calls);

      provider.restore();
      mock.timers.tick(HALF_OPEN_MS);
      h.clock.advance(301_000);
      await h.runtime.engine.tick();
      row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(row.upstreamStatus, 'cancelled');
      assert.ok(provider.cancelledOrders.has(row.providerOrderId!));
      assert.equal(h.runtime.breaker.state(), 'closed');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
