import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { isDomainError } from '../../src/errors.ts';
import { SandboxProvider } from '../../src/providers/sandbox.ts';

for (const engine of engines) {
  describe(`verification lifecycle with the sandbox [${engine}]`, () => {
    let h: LifecycleHarness;
    before(async () => {
      h = await lifecycleHarness(engine);
    });
    after(() => h.dispose());

    test('test_success: held at purchase, captured when the SMS arrives', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'k1', service: 'test_success' });
      assert.equal(out.status, 201);
      assert.equal(out.row.state, 'waiting');
      assert.match(out.row.phoneNumber ?? '', /^1\d{10}$/);
      assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
      h.clock.advance(1000);
      const report = await h.runtime.engine.tick();
      assert.equal(report.captured, 1);
      const row = await loadVerification(h.t.database.db, out.row.id);
      assert.equal(row?.state, 'received');
      assert.match(row?.code ?? '', /^\d{6}$/);
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
    });

    test('test_timeout: refunded at the deadline', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'k1', service: 'test_timeout' });
      h.clock.advance(300_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))?.state, 'waiting');
      h.clock.set(out.row.expiresAt);
      const report = await h.runtime.engine.tick();
      assert.equal(report.expired, 1);
      assert.equal((await loadVerification(h.t.database.db, out.row.id))?.state, 'expired');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    test('test_no_numbers: 503 no_numbers, not charged, verification failed', async () => {
      const user = await h.customer(1000);
      await assert.rejects(purchaseVerification(h.deps, { userId: user, idempotencyKey: 'k1', service: 'test_no_numbers' }), (e) => {
        assert.ok(isDomainError(e));
        assert.equal(e.code, 'no_numbers');
        assert.equal(e.status, 503);
        assert.ok(typeof e.extra.verification_id === 'string');
        return true;
      });
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    test('test_ambiguous: 202, recovered by lookup without a second purchase', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'k1', service: 'test_ambiguous' });
      assert.equal(out.status, 202);
      assert.equal(out.row.state, 'pending');
      assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
      await h.runtime.engine.tick();
      const row = await loadVerification(h.t.database.db, out.row.id);
      assert.equal(row?.state, 'waiting');
      assert.equal((h.upstream as SandboxProvider).purchases.get(out.row.id), 1);
      h.clock.advance(2000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))?.state, 'received');
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
    });

    test('cancel refunds once; cancelling again changes nothing', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'k1', service: 'test_timeout' });
      const first = await cancelVerification(h.deps, out.row, 'customer');
      assert.equal(first.kind, 'cancelled');
      const second = await cancelVerification(h.deps, first.row, 'customer');
      assert.equal(second.kind, 'cancelled');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });
  });
}
