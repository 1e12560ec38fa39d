import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, login, registerUser, type TestUser } from '../support/http.ts';
import { ManualClock } from '../support/clock.ts';
import { startFakeSmsActivate, type FakeSmsActivate } from '../support/fake-sms-activate.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';
import { rows } from '../../src/db/database.ts';
import { reconcile } from '../../src/ops/reconcile.ts';
import { ProviderError } from '../../src/providers/provider.ts';
import { assignNumber, loadVerification } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';

/**
 * A seller that gives a purchase an order id it had already given another: no 500, the customer
 * not charged, the collision shown to the operators, and nothing left that reconcile cannot settle.
 */
for (const engine of engines) {
  describe(`an upstream order id seen twice [${engine}]`, () => {
    let app: TestApp;
    let fake: FakeSmsActivate;
    let admin: TestUser;
    const clock = new ManualClock();

    before(async () => {
      fake = await startFakeSmsActivate({ clock, balance: 1000 });
      app = await startTestApp({
        engine,
        worker: false,
        clock,
        env: { PROVIDER: 'sms-activate', SMS_ACTIVATE_BASE_URL: fake.url, SMS_ACTIVATE_API_KEY: 'sa-test-key', PROVIDER_REQUESTS_PER_SECOND: '0' },
      });
      await putProviderCatalogue(app.ctx.database.db, 'sms-activate');
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(async () => {
      await app?.close();
      await fake?.close();
    });

    async function customer(): Promise<TestUser> {
      const user = await registerUser(app.url);
      assert.equal((await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: 1000, reason: 'test funds' })).status, 201);
      clock.advance(1000);
      return user;
    }
    const wallet = async (user: TestUser) => {
      const w = (await user.client.get('/v1/wallet')).body;
      return [w.balance_minor, w.held_minor, w.available_minor];
    };

    test('the second purchase fails with a clear answer, not charged; the first is untouched; operators see it', async () => {
      const first = await customer();
      const second = await customer();
      const bought = await first.client.post('/v1/verifications', { service: 'whatsapp' }, { headers: { 'idempotency-key': randomUUID() } });
      assert.equal(bought.status, 201);
      const reusedId = [...fake.state.activations.keys()].at(-1)!;

      fake.controls.reuseIdOnNextPurchase(reusedId);
      const key = randomUUID();
      const collided = await second.client.post('/v1/verifications', { service: 'whatsapp' }, { headers: { 'idempotency-key': key } });
      assertProblem(collided, 503, 'provider_unavailable');
      assert.match(collided.body.detail, /order id it had already given another one; you were not charged/);
      assert.doesNotMatch(collided.text, new RegExp(bought.body.id), "another customer's verification is never named");
      const failedId = collided.body.verification_id;
      assert.ok(failedId);
      assert.equal(fake.state.purchases, 2, 'the seller did sell a second number');

      // The replay gives the same answer; the verification shows failed and refunded.
      const replay = await second.client.post('/v1/verifications', { service: 'whatsapp' }, { headers: { 'idempotency-key': key } });
      assertProblem(replay, 503, 'provider_unavailable');
      assert.equal(replay.body.verification_id, failedId);
      const view = (await second.client.get(`/v1/verifications/${failedId}`)).body;
      assert.deepEqual([view.state, view.refunded, view.phone_number], ['failed', true, null]);
      assert.deepEqual(await wallet(second), [1000, 0, 1000]);

      // The first customer's verification keeps its order; nothing was cancelled under the shared id.
      const firstView = (await first.client.get(`/v1/verifications/${bought.body.id}`)).body;
      assert.equal(firstView.state, 'waiting');
      assert.deepEqual(await wallet(first), [1000, 80, 920]);
      assert.ok(!fake.state.requests.some((r) => r.query.get('action') === 'setStatus' && r.query.get('id') === reusedId), 'no setStatus on the shared id');

      // Operators: diagnose names it, the metric counts it, the audit log says which two collided.
      const diagnosed = await admin.client.get('/v1/admin/diagnose');
      const check = diagnosed.body.checks.find((c: { name: string }) => c.name === 'no_upstream_order_id_reused');
      assert.deepEqual([check.ok, check.count], [false, 1]);
      assert.match(check.detail, new RegExp(failedId));
      const metrics = await admin.client.get('/metrics');
      assert.match(metrics.text, /namaskah_upstream_alarms_total\{alarm="order_id_reused"\} 1/);
      const audit = await rows<{ detail: Record<string, string> }>(app.ctx.database.db, sql`SELECT detail FROM audit_log WHERE action = 'upstream.order_id_reused'`);
      assert.deepEqual(audit.map((a) => [a.detail.verification_id, a.detail.holder_verification_id, a.detail.provider_order_id]), [[failedId, bought.body.id, reusedId]]);

      // Reconcile finds nothing to repair for it (no suspected orphan that could never settle).
      const reconciled = await admin.client.post('/v1/admin/reconcile', { days: 1, execute: false });
      assert.equal(reconciled.status, 200);
      assert.ok(!reconciled.body.found.some((f: { verification_id: string | null }) => f.verification_id === failedId), JSON.stringify(reconciled.body.found));

      // A day later the alarm check passes again; the metric keeps counting.
      clock.advance(25 * 3_600_000);
      const later = await admin.client.get('/v1/admin/diagnose');
      assert.equal(later.body.checks.find((c: { name: string }) => c.name === 'no_upstream_order_id_reused').ok, true);
      await assertLifecycleConsistent(app.ctx.database.db);
    });
  });
}

for (const engine of engines) {
  describe(`an upstream order id seen twice, in the lifecycle [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, { provider });
    });
    after(() => h.dispose());

    test('two purchases given the same id at the same moment: one gets it, the other fails uncharged', async () => {
      const user = await h.customer(1000);
      provider.onBuy = async () => {
        throw new ProviderError('ambiguous', 'timeout', 'no answer');
      };
      const [a, b] = await Promise.all(
        ['race-a', 'race-b'].map(async (key) => (await purchaseVerification(h.deps, { userId: user, idempotencyKey: key, service: 'test_timeout' })).row),
      );
      provider.resetBehaviour();
      const order = { providerOrderId: 'ord-shared', phoneNumber: '15550001111', endsAt: null, costMinor: null };
      const results = await Promise.all([a!, b!].map((row) => assignNumber(h.deps, row.id, order, { actor: 'recovery', reason: 'purchase found upstream' })));
      assert.deepEqual(results.map((r) => r.row.state).sort(), ['failed', 'waiting']);
      assert.deepEqual(results.map((r) => Boolean(r.reused)).sort(), [false, true]);
      const failed = results.find((r) => r.reused)!.row;
      assert.equal(failed.upstreamAlarm, 'order_id_reused');
      assert.equal(failed.providerOrderId, null);
      assert.deepEqual(await h.wallet(user), [1000, 50, 950], 'only the verification holding the order keeps its hold');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('recovery finding an order id another verification holds: failed, released, not a suspected orphan', async () => {
      const user = await h.customer(1000);
      const holder = (await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'holder', service: 'test_timeout' })).row;
      provider.onBuy = async () => {
        throw new ProviderError('ambiguous', 'timeout', 'no answer');
      };
      provider.onLookup = async () => ({ status: 'found', order: { ...provider.orderOf(holder.id)!, phoneNumber: '15550002222' } });
      try {
        const pending = (await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'lost', service: 'test_timeout' })).row;
        h.clock.advance(60_000);
        await h.runtime.engine.tick();
        const after = (await loadVerification(h.t.database.db, pending.id))!;
        assert.deepEqual([after.state, after.upstreamStatus, after.upstreamAlarm], ['failed', 'none', 'order_id_reused']);
        assert.equal((await loadVerification(h.t.database.db, holder.id))?.state, 'waiting');
        assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
        const run = await reconcile(h.deps, { days: 1, execute: true });
        assert.deepEqual(run.found.filter((f) => f.verification_id === pending.id), []);
        await assertLifecycleConsistent(h.t.database.db);
      } finally {
        provider.resetBehaviour();
      }
    });
  });
}
