import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent, verificationMoney } from '../support/lifecycle-invariants.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { loadVerification, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { viewOf } from '../../src/verifications/resource.ts';
import { ProviderError } from '../../src/providers/provider.ts';

/** Fails the test instead of hanging it when a tick never finishes (real time, not the domain clock). */
async function withinRealTime<T>(ms: number, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms of real time`)), ms);
  });
  try {
    return await Promise.race([work, guard]);
  } finally {
    clearTimeout(timer);
  }
}

const REFUND_WITHIN_MS = 60_000;

/** An SMS after the deadline: stored and shown as late, never charged, the upstream order cancelled. */
async function assertLateSmsFree(h: LifecycleHarness, id: string, user: string): Promise<void> {
  assert.deepEqual(await verificationMoney(h.t.database.db, id), {
    state: 'expired',
    holdOutcome: 'expired',
    charges: 0,
    chargedMinor: 0,
    upstreamStatus: 'cancelled',
    messages: 1,
    lateMessages: 1,
  });
  assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
  await assertLifecycleConsistent(h.t.database.db);
}

for (const engine of engines) {
  describe(`deadline with the sandbox [${engine}]`, () => {
    let h: LifecycleHarness;
    before(async () => {
      h = await lifecycleHarness(engine);
    });
    after(() => h.dispose());

    test('25 test_timeout verifications expiring together are all refunded by one tick', async () => {
      const user = await h.customer(2000);
      const bought: VerificationRow[] = [];
      for (let i = 0; i < 25; i++) {
        const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: `many-${i}`, service: 'test_timeout' });
        bought.push(out.row);
        h.clock.advance(100);
      }
      assert.deepEqual(await h.wallet(user), [2000, 1250, 750]);
      const first = bought[0]!;
      const last = bought[bought.length - 1]!;
      // Polls up to the first deadline change nothing.
      h.clock.set(new Date(first.expiresAt.getTime() - 1));
      await h.runtime.engine.tick();
      assert.deepEqual(await h.wallet(user), [2000, 1250, 750]);
      h.clock.set(last.expiresAt);
      const report = await h.runtime.engine.tick();
      assert.equal(report.expired, 25);
      const rows = await Promise.all(bought.map((b) => loadVerification(h.t.database.db, b.id)));
      for (const row of rows) {
        assert.equal(row?.state, 'expired');
        assert.ok(row!.resolvedAt!.getTime() <= row!.expiresAt.getTime() + REFUND_WITHIN_MS);
        assert.equal(row?.upstreamStatus, 'cancelled');
      }
      assert.deepEqual(await h.wallet(user), [2000, 0, 2000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('test_late: the SMS after the deadline is stored as late and shown, the wallet unchanged', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'late', service: 'test_late' });
      h.clock.set(out.row.expiresAt);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))?.state, 'expired');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);

      h.clock.advance(5_000);
      await h.runtime.engine.tick();
      const row = await loadVerification(h.t.database.db, out.row.id);
      assert.equal(row?.state, 'expired');
      const view = await viewOf(h.t.database.db, row!);
      assert.equal(view.messages.length, 1, 'the late SMS is stored');
      assert.equal(view.messages[0]!.late, true);
      assert.match(view.messages[0]!.code ?? '', /^\d{6}$/);
      assert.equal(view.refunded, true);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);

      // Further ticks neither store it twice nor charge.
      for (let i = 0; i < 3; i++) {
        h.clock.advance(60_000);
        await h.runtime.engine.tick();
      }
      await assertLateSmsFree(h, out.row.id, user);
    });
  });

  describe(`deadline with the provider down [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    before(async () => {
      provider = new ScriptedProvider();
      // A hanging call is cut after 100 ms of real time; five failures in a row open the breaker.
      h = await lifecycleHarness(engine, { provider, env: { PROVIDER_TIMEOUT_MS: '100', BREAKER_FAILURE_THRESHOLD: '5' } });
    });
    after(() => h.dispose());

    async function waiting(user: string, key: string): Promise<VerificationRow> {
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: key, service: 'test_timeout' });
      assert.equal(out.row.state, 'waiting');
      return out.row;
    }

    test('the upstream end time is the deadline when it is earlier than our TTL', async () => {
      const user = await h.customer(1000);
      provider.onBuy = async (request) => ({ ...provider.createOrder(request.clientRef), endsAt: new Date(h.clock.now().getTime() + 120_000) });
      try {
        const row = await waiting(user, 'ends-early');
        assert.equal(row.expiresAt.getTime(), row.createdAt.getTime() + 120_000);
        h.clock.set(new Date(row.expiresAt.getTime() - 1));
        await h.runtime.engine.tick();
        assert.equal((await loadVerification(h.t.database.db, row.id))?.state, 'waiting');
        h.clock.set(row.expiresAt);
        await h.runtime.engine.tick();
        assert.equal((await loadVerification(h.t.database.db, row.id))?.state, 'expired');
        assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      } finally {
        provider.onBuy = async (request) => provider.createOrder(request.clientRef);
      }
    });

    test('check and cancel failing (definite): refunded at the deadline, the owed cancel settled later', async () => {
      const user = await h.customer(1000);
      const row = await waiting(user, 'down-definite');
      provider.failAll('definite');
      h.clock.set(row.expiresAt);
      await h.runtime.engine.tick();
      let after = await loadVerification(h.t.database.db, row.id);
      assert.equal(after?.state, 'expired');
      assert.ok(after!.resolvedAt!.getTime() <= row.expiresAt.getTime() + REFUND_WITHIN_MS);
      assert.equal(after?.upstreamStatus, 'cancel_owed');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);

      provider.restore();
      h.clock.advance(5_000);
      await h.runtime.engine.tick();
      after = await loadVerification(h.t.database.db, row.id);
      assert.equal(after?.upstreamStatus, 'cancelled');
      assert.ok(provider.cancelledOrders.has(row.providerOrderId!));
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('check and cancel failing (ambiguous, 5xx): refunded at the deadline', async () => {
      const user = await h.customer(1000);
      const row = await waiting(user, 'down-ambiguous');
      provider.failAll('ambiguous', 'server_error');
      h.clock.set(row.expiresAt);
      await h.runtime.engine.tick();
      provider.restore();
      const after = await loadVerification(h.t.database.db, row.id);
      assert.equal(after?.state, 'expired');
      assert.equal(after?.upstreamStatus, 'cancel_owed');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      h.clock.advance(5_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, row.id))?.upstreamStatus, 'cancelled');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('a purchase whose outcome stays unknown is failed and refunded at its deadline', async () => {
      const user = await h.customer(1000);
      provider.onBuy = async () => {
        throw new ProviderError('ambiguous', 'timeout', 'no answer');
      };
      provider.onLookup = async () => ({ status: 'unknown' });
      try {
        const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'unknown', service: 'test_timeout' });
        assert.equal(out.status, 202);
        assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
        for (let t = 0; t < 5; t++) {
          h.clock.advance(60_000);
          await h.runtime.engine.tick();
          assert.equal((await loadVerification(h.t.database.db, out.row.id))?.state, 'pending');
        }
        h.clock.set(out.row.expiresAt);
        await h.runtime.engine.tick();
        const row = await loadVerification(h.t.database.db, out.row.id);
        assert.equal(row?.state, 'failed');
        assert.equal(row?.upstreamStatus, 'orphan_suspected');
        assert.ok(row!.resolvedAt!.getTime() <= row!.expiresAt.getTime() + REFUND_WITHIN_MS);
        assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
        await assertLifecycleConsistent(h.t.database.db);
      } finally {
        provider.onBuy = async (request) => provider.createOrder(request.clientRef);
        provider.onLookup = async (request) => {
          const order = provider.orders.get(request.clientRef);
          return order ? { status: 'found', order } : { status: 'absent' };
        };
      }
    });

    test('the late-SMS watch survives an upstream error: the SMS that arrives afterwards is still stored', async () => {
      const user = await h.customer(1000);
      const row = await waiting(user, 'late-after-error');
      h.clock.set(row.expiresAt);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, row.id))?.state, 'expired');

      provider.failAll('ambiguous');
      h.clock.advance(1_000);
      await h.runtime.engine.tick();
      provider.restore();
      assert.ok((await loadVerification(h.t.database.db, row.id))?.nextCheckAt, 'still watched after the failed check');

      provider.deliver(row.providerOrderId!, 'Your code is 424242', '424242', h.clock.now());
      h.clock.advance(10_000);
      await h.runtime.engine.tick();
      await assertLateSmsFree(h, row.id, user);
    });

    // Last in this block: it leaves the breaker open.
    test('check and cancel hanging forever: calls are cut, 12 verifications refunded by one tick', async () => {
      const user = await h.customer(1000);
      const rows: VerificationRow[] = [];
      for (let i = 0; i < 12; i++) rows.push(await waiting(user, `hang-${i}`));
      assert.deepEqual(await h.wallet(user), [1000, 600, 400]);
      const never = new Promise<never>(() => {});
      provider.onCheck = () => never;
      provider.onCancel = () => never;
      h.clock.set(rows[rows.length - 1]!.expiresAt);
      const started = performance.now();
      const report = await withinRealTime(10_000, h.runtime.engine.tick(), 'a tick against a hanging provider');
      const tookMs = performance.now() - started;
      assert.equal(report.expired, 12);
      assert.equal(h.runtime.breaker.state(), 'open', 'the hanging calls opened the breaker');
      // Five calls were cut (check, cancel, check, cancel, check) before the breaker opened; the rest
      // skipped the upstream.
      assert.ok(tookMs < 8_000, `took ${tookMs} ms`);
      for (const r of rows) {
        const after = await loadVerification(h.t.database.db, r.id);
        assert.equal(after?.state, 'expired');
        assert.equal(after?.upstreamStatus, 'cancel_owed');
        assert.ok(after!.resolvedAt!.getTime() <= r.expiresAt.getTime() + REFUND_WITHIN_MS);
      }
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
