import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { FaultSwitch, SimulatedCrash, lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent, verificationMoney } from '../support/lifecycle-invariants.ts';
import { assertLedgerConsistent } from '../support/ledger-invariants.ts';
import { firstRow } from '../../src/db/database.ts';
import { isDomainError } from '../../src/errors.ts';
import { ProviderError, type PurchaseRequest as UpstreamPurchase } from '../../src/providers/provider.ts';
import { loadVerification, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { reportNumber } from '../../src/verifications/reports.ts';
import { REPORTED_NUMBER_ANSWER } from '../../src/verifications/reported-numbers.ts';

/**
 * A purchase whose answer was lost is resolved by the engine's recovery (provider.lookup finds the
 * order). The order found is checked exactly as the purchase's own answer would have been: a number
 * the customer reported for that service, or one outside the area code asked, is a definite failure
 * at that provider — cancelled upstream (or owed), failed, the hold released once, no charge.
 * Driven through the engine's ticks with the injected clock; exact wallet amounts and the ledger
 * after each. test_timeout costs 50; test_mismatch 50 + 20 + 20 for an area code and a carrier.
 */
const REPORTED = '12025550777';

for (const engine of engines) {
  describe(`recovery applies the purchase's checks, scripted upstream [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    const faults = new FaultSwitch();

    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, { provider, faults: faults.hook });
    });
    after(() => h.dispose());
    beforeEach(() => {
      provider.resetBehaviour();
      faults.reset();
    });

    const db = () => h.t.database.db;

    /** The upstream sells `phoneNumber` for the next purchases. */
    function sells(phoneNumber: string, answer: 'answered' | 'lost'): void {
      provider.onBuy = async (request: UpstreamPurchase) => {
        const order = { ...provider.createOrder(request.clientRef), phoneNumber };
        provider.orders.set(request.clientRef, order);
        if (answer === 'lost') throw new ProviderError('ambiguous', 'connection_lost', 'the order was created but the answer was lost');
        return order;
      };
    }

    /** A customer who bought REPORTED for test_timeout and reported it (released: the wallet is whole again). */
    async function customerWhoReported(): Promise<string> {
      const user = await h.customer(1000);
      sells(REPORTED, 'answered');
      const first = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      assert.equal(first.row.phoneNumber, REPORTED);
      await reportNumber(h.deps, { userId: user, verificationId: first.row.id, reason: 'number_rejected' });
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      h.clock.advance(1_000);
      return user;
    }

    async function lastOf(userId: string): Promise<VerificationRow> {
      const found = await firstRow<{ id: string }>(db(), sql`SELECT id FROM verifications WHERE user_id = ${userId} ORDER BY created_at DESC LIMIT 1`);
      return (await loadVerification(db(), found!.id))!;
    }

    /** Time passes (past the purchase window and any backoff) and the engine runs until the row leaves pending. */
    async function engineResolves(id: string): Promise<VerificationRow> {
      let row = (await loadVerification(db(), id))!;
      for (let i = 0; i < 10 && row.state === 'pending'; i++) {
        h.clock.advance(31_000);
        await h.runtime.engine.tick();
        row = (await loadVerification(db(), id))!;
      }
      return row;
    }

    test('answer lost, the order found holds a number the customer reported: cancelled upstream, failed, released once, not charged', async () => {
      const user = await customerWhoReported();
      sells(REPORTED, 'lost');
      const key = randomUUID();
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: key, service: 'test_timeout' });
      assert.equal(out.status, 202);
      assert.deepEqual(await h.wallet(user), [1000, 50, 950], 'held while the outcome is unknown');

      const lookups = provider.calls.lookup;
      const row = await engineResolves(out.row.id);
      assert.ok(provider.calls.lookup > lookups, 'recovery asked the upstream');
      assert.equal(row.state, 'failed');
      assert.equal(row.failureReason, REPORTED_NUMBER_ANSWER);
      assert.equal(row.upstreamStatus, 'cancelled');
      assert.equal(row.phoneNumber, REPORTED);
      assert.ok(provider.cancelledOrders.has(row.providerOrderId!), 'the order was cancelled at the upstream');
      assert.equal(provider.calls.buy, 2, 'recovery never buys again');
      const money = await verificationMoney(db(), row.id);
      assert.deepEqual([money.holdOutcome, money.charges, money.chargedMinor], ['voided', 0, 0]);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);

      // The engine running on changes nothing more; the replay of the key says what happened.
      h.clock.advance(301_000);
      await h.runtime.engine.tick();
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assert.rejects(
        purchaseVerification(h.deps, { userId: user, idempotencyKey: key, service: 'test_timeout' }),
        (e) => isDomainError(e) && e.code === 'no_numbers' && e.message === REPORTED_NUMBER_ANSWER,
      );
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(db());
      await assertLedgerConsistent(db());
    });

    test('a crash after the buy, and the upstream cannot be reached to cancel: released at once, the cancel owed and settled later', async () => {
      const user = await customerWhoReported();
      sells(REPORTED, 'answered');
      faults.crashOnce('purchase.bought');
      await assert.rejects(purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' }), SimulatedCrash);
      const pending = await lastOf(user);
      assert.equal(pending.state, 'pending');
      assert.deepEqual(await h.wallet(user), [1000, 50, 950]);

      provider.onCancel = async () => {
        throw new ProviderError('ambiguous', 'timeout', 'no answer');
      };
      const row = await engineResolves(pending.id);
      assert.deepEqual([row.state, row.upstreamStatus, row.failureReason], ['failed', 'cancel_owed', REPORTED_NUMBER_ANSWER]);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000], 'the customer does not wait for the upstream');

      provider.resetBehaviour();
      for (let i = 0; i < 3; i++) {
        h.clock.advance(301_000);
        await h.runtime.engine.tick();
      }
      const settled = (await loadVerification(db(), pending.id))!;
      assert.equal(settled.upstreamStatus, 'cancelled');
      assert.ok(provider.cancelledOrders.has(settled.providerOrderId!));
      const money = await verificationMoney(db(), pending.id);
      assert.deepEqual([money.holdOutcome, money.charges], ['voided', 0]);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(db());
      await assertLedgerConsistent(db());
    });

    test('another number found at recovery is assigned as before, and its code charged once', async () => {
      const user = await customerWhoReported();
      sells('12025550888', 'lost');
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      assert.equal(out.status, 202);
      const row = await engineResolves(out.row.id);
      assert.deepEqual([row.state, row.phoneNumber], ['waiting', '12025550888']);
      provider.deliver(row.providerOrderId!, 'Your code is 424242', '424242', h.clock.now());
      h.clock.advance(1_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(db(), row.id))!.state, 'received');
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
      await assertLifecycleConsistent(db());
      await assertLedgerConsistent(db());
    });

    test('another customer recovering the same number gets it: the check is per customer', async () => {
      await customerWhoReported();
      const other = await h.customer(1000);
      sells(REPORTED, 'lost');
      const out = await purchaseVerification(h.deps, { userId: other, idempotencyKey: randomUUID(), service: 'test_timeout' });
      const row = await engineResolves(out.row.id);
      assert.deepEqual([row.state, row.phoneNumber], ['waiting', REPORTED]);
      assert.deepEqual(await h.wallet(other), [1000, 50, 950]);
    });
  });

  describe(`recovery checks the number against the options, sandbox [${engine}]`, () => {
    let h: LifecycleHarness;
    const faults = new FaultSwitch();
    const cancels: string[] = [];

    before(async () => {
      h = await lifecycleHarness(engine, { faults: faults.hook });
      const cancel = h.upstream.cancel.bind(h.upstream);
      h.upstream.cancel = (id) => {
        cancels.push(id);
        return cancel(id);
      };
    });
    after(() => h.dispose());

    test('a crash after the buy: the engine finds an order outside the area code asked, cancels it, and releases the hold in full', async () => {
      const user = await h.customer(500);
      faults.crashOnce('purchase.bought');
      const request = { userId: user, idempotencyKey: randomUUID(), service: 'test_mismatch', country: 'US', options: { areaCodes: ['617'], carriers: ['vz'] } };
      await assert.rejects(purchaseVerification(h.deps, request), SimulatedCrash);
      assert.deepEqual(await h.wallet(user), [500, 90, 410]);
      const found = await firstRow<{ id: string }>(h.t.database.db, sql`SELECT id FROM verifications WHERE user_id = ${user}`);

      let row = (await loadVerification(h.t.database.db, found!.id))!;
      for (let i = 0; i < 10 && row.state === 'pending'; i++) {
        h.clock.advance(31_000);
        await h.runtime.engine.tick();
        row = (await loadVerification(h.t.database.db, found!.id))!;
      }
      assert.deepEqual([row.state, row.upstreamStatus], ['failed', 'cancelled']);
      assert.deepEqual(cancels, [row.providerOrderId]);
      assert.match(row.failureReason!, /area code 201 is not one of 617.*not charged/);
      const money = await verificationMoney(h.t.database.db, row.id);
      assert.deepEqual([money.holdOutcome, money.charges], ['voided', 0]);
      assert.deepEqual(await h.wallet(user), [500, 0, 500]);
      await assert.rejects(purchaseVerification(h.deps, request), (e) => isDomainError(e) && e.code === 'no_numbers');
      await assertLifecycleConsistent(h.t.database.db);
      await assertLedgerConsistent(h.t.database.db);
    });
  });
}
