import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { FaultSwitch, SimulatedCrash, lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { rows } from '../../src/db/database.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { recoverPurchase } from '../../src/verifications/flows.ts';
import { loadVerification, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { ProviderError, type CancelOutcome } from '../../src/providers/provider.ts';
import { isDomainError } from '../../src/errors.ts';

/**
 * A number outside the request is never sold, on every path that assigns one: the purchase's own
 * answer (the upstream cancel done, or owed when it fails) and recovery after a crash between the
 * buy and the outcome. Exact wallet amounts after each. Sandbox: test_mismatch costs 50, area code
 * and carrier add 20 each.
 */
for (const engine of engines) {
  describe(`mismatched numbers [${engine}]`, () => {
    let h: LifecycleHarness;
    const faults = new FaultSwitch();
    let cancelAnswer: (() => Promise<CancelOutcome>) | null = null;
    const cancels: string[] = [];

    before(async () => {
      h = await lifecycleHarness(engine, { faults: faults.hook });
      const cancel = h.upstream.cancel.bind(h.upstream);
      h.upstream.cancel = (id) => {
        cancels.push(id);
        return cancelAnswer ? cancelAnswer() : cancel(id);
      };
    });
    after(() => h.dispose());

    const request = (userId: string, key: string) => ({
      userId,
      idempotencyKey: key,
      service: 'test_mismatch',
      country: 'US',
      options: { areaCodes: ['617'], carriers: ['vz'] },
    });
    async function only(userId: string): Promise<VerificationRow> {
      const [found] = await rows<{ id: string }>(h.t.database.db, sql`SELECT id FROM verifications WHERE user_id = ${userId}`);
      return (await loadVerification(h.t.database.db, found!.id))!;
    }

    test('the upstream cannot be reached to cancel: the customer is refunded at once, the cancel is owed', async () => {
      const user = await h.customer(500);
      cancelAnswer = async () => {
        throw new ProviderError('ambiguous', 'timeout', 'no answer');
      };
      try {
        await assert.rejects(purchaseVerification(h.deps, request(user, 'mm-owed')), (e) => isDomainError(e) && e.code === 'no_numbers');
      } finally {
        cancelAnswer = null;
      }
      assert.deepEqual(await h.wallet(user), [500, 0, 500]);
      const row = await only(user);
      assert.equal(row.state, 'failed');
      assert.equal(row.upstreamStatus, 'cancel_owed');
      assert.ok(row.upstreamNextAt && row.upstreamNextAt > h.clock.now(), 'retried later, not in a busy loop');
      assert.match(row.providerOrderId!, /^sbx-test_mismatch:/);
      assert.match(row.phoneNumber!, /^1201/);

      // The engine settles what is owed when its time comes; the customer's money does not move again.
      h.clock.advance(60_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, row.id))!.upstreamStatus, 'cancelled');
      assert.deepEqual(await h.wallet(user), [500, 0, 500]);
    });

    test('a crash after the buy: recovery finds the order, sees the mismatch, cancels it, and the hold is released in full', async () => {
      const user = await h.customer(500);
      faults.crashOnce('purchase.bought');
      await assert.rejects(purchaseVerification(h.deps, request(user, 'mm-crash')), SimulatedCrash);
      assert.deepEqual(await h.wallet(user), [500, 90, 410], 'held while the outcome is unknown');
      const pending = await only(user);
      assert.equal(pending.state, 'pending');

      cancels.length = 0;
      const recovered = await recoverPurchase(h.deps, pending);
      assert.equal(recovered?.state, 'failed');
      assert.equal(recovered?.upstreamStatus, 'cancelled');
      assert.equal(recovered?.phoneNumber?.slice(0, 4), '1201');
      assert.deepEqual(cancels, [recovered!.providerOrderId]);
      assert.match(recovered!.failureReason!, /area code 201 is not one of 617.*not charged/);
      assert.deepEqual(await h.wallet(user), [500, 0, 500]);

      // The replay of the key says the same.
      await assert.rejects(purchaseVerification(h.deps, request(user, 'mm-crash')), (e) => isDomainError(e) && e.code === 'no_numbers');
      assert.deepEqual(await h.wallet(user), [500, 0, 500]);
    });

    test('a number in the area code asked for is sold and its whole price captured', async () => {
      const user = await h.customer(500);
      const bought = await purchaseVerification(h.deps, { ...request(user, 'mm-ok'), service: 'test_success' });
      assert.equal(bought.status, 201);
      assert.match(bought.row.phoneNumber!, /^1617/);
      assert.deepEqual(await h.wallet(user), [500, 90, 410]);
      h.clock.advance(1000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, bought.row.id))!.state, 'received');
      assert.deepEqual(await h.wallet(user), [410, 0, 410]);
    });
  });
}
