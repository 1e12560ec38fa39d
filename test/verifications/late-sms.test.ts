import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { login, registerUser, type TestUser } from '../support/http.ts';
import { ManualClock } from '../support/clock.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ListingScriptedProvider, ScriptedProvider } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent, verificationMoney } from '../support/lifecycle-invariants.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { loadVerification, recordMessages, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { ProviderError } from '../../src/providers/provider.ts';

/**
 * The money rule "only an SMS that arrived by the deadline is charged", on every path that can
 * bring a message to a verification still waiting after its deadline: the engine's last check when
 * it runs late, the sandbox's manual SMS, a webhook, the poller, recovery.
 */
for (const engine of engines) {
  describe(`late SMS over HTTP, engine down at the deadline [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    const clock = new ManualClock();

    before(async () => {
      // The engine is not running: it is ticked by hand once the SMS came after the deadline.
      app = await startTestApp({ engine, worker: false, clock, verificationTtlSeconds: 10 });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    test('test_late and test_timeout with an SMS after the 10 s deadline: both expire, the wallet is unchanged', async () => {
      const user = await registerUser(app.url);
      assert.equal((await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: 1000, reason: 'test funds' })).status, 201);
      clock.advance(1000);
      const buy = (service: string) => user.client.post('/v1/verifications', { service }, { headers: { 'idempotency-key': randomUUID() } });
      const late = await buy('test_late');
      const timeout = await buy('test_timeout');
      assert.deepEqual([late.status, timeout.status], [201, 201]);
      const wallet = async () => {
        const w = (await user.client.get('/v1/wallet')).body;
        return [w.balance_minor, w.held_minor, w.available_minor];
      };
      assert.deepEqual(await wallet(), [1000, 100, 900]);

      // 16 s later: past both deadlines, and the sandbox's test_late SMS (deadline + 5 s) has come.
      clock.advance(16_000);
      const manual = await user.client.post('/v1/sandbox/sms', { verification_id: timeout.body.id, text: 'Your code is 771188' });
      assert.equal(manual.status, 200);
      assert.equal(manual.body.state, 'expired');
      assert.equal(manual.body.refunded, true);
      assert.equal(manual.body.code, null);
      assert.deepEqual(
        manual.body.messages.map((m: { code: string; late: boolean }) => [m.code, m.late]),
        [['771188', true]],
      );

      // The engine starts: its last check finds test_late's SMS, which came after the deadline.
      await app.server.runtime.engine.tick();
      const lateView = (await user.client.get(`/v1/verifications/${late.body.id}`)).body;
      assert.equal(lateView.state, 'expired');
      assert.equal(lateView.refunded, true);
      assert.equal(lateView.messages.length, 1, 'the late SMS is shown');
      assert.equal(lateView.messages[0].late, true);
      assert.deepEqual(await wallet(), [1000, 0, 1000]);

      const diagnosed = await admin.client.get('/v1/admin/diagnose');
      assert.equal(diagnosed.body.ok, true, JSON.stringify(diagnosed.body.checks.filter((c: { ok: boolean }) => !c.ok)));
      await assertLifecycleConsistent(app.ctx.database.db);
    });
  });

  describe(`late SMS with an upstream that lists its active orders [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ListingScriptedProvider;
    before(async () => {
      provider = new ListingScriptedProvider();
      h = await lifecycleHarness(engine, { provider });
    });
    after(() => h.dispose());

    test('an SMS the upstream stamped before the deadline is captured by the batch\'s last look, even when read after it', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      const row = out.row;
      provider.deliver(row.providerOrderId!, 'Your code is 654321', '654321', row.expiresAt);
      h.clock.set(new Date(row.expiresAt.getTime() + 30_000));
      const report = await h.runtime.engine.tick();
      assert.deepEqual([report.captured, report.expired], [1, 0]);
      assert.equal(provider.listCalls, 1);
      const money = await verificationMoney(h.t.database.db, row.id);
      assert.deepEqual([money.state, money.chargedMinor, money.lateMessages], ['received', 50, 0]);
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });

  describe(`late SMS on every path of the lifecycle [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, { provider });
    });
    after(() => h.dispose());

    async function waiting(user: string): Promise<VerificationRow> {
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      assert.equal(out.row.state, 'waiting');
      return out.row;
    }

    async function assertExpiredFree(id: string, user: string): Promise<void> {
      const money = await verificationMoney(h.t.database.db, id);
      assert.deepEqual([money.state, money.holdOutcome, money.charges, money.messages, money.lateMessages], ['expired', 'expired', 0, 1, 1]);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    }

    test('the poller reaching a waiting row after its deadline: an SMS stamped after it expires the row, uncharged', async () => {
      const user = await h.customer(1000);
      const row = await waiting(user);
      provider.deliver(row.providerOrderId!, 'Your code is 123456', '123456', new Date(row.expiresAt.getTime() + 1));
      h.clock.set(new Date(row.expiresAt.getTime() + 30_000));
      const report = await h.runtime.engine.tick();
      assert.deepEqual([report.captured, report.expired], [0, 1]);
      await assertExpiredFree(row.id, user);
      // The cancel owed upstream is settled by the engine (the upstream answers that the SMS came).
      h.clock.advance(1_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, row.id))?.upstreamStatus, 'completed');
    });

    test('an SMS stamped before the deadline that the deadline batch did not look for (no list call): shown, never charged', async () => {
      const user = await h.customer(1000);
      const row = await waiting(user);
      provider.deliver(row.providerOrderId!, 'Your code is 654321', '654321', row.expiresAt);
      h.clock.set(new Date(row.expiresAt.getTime() + 30_000));
      const report = await h.runtime.engine.tick();
      // The refund does not wait for a look upstream; the late watch finds the SMS in the same tick.
      assert.deepEqual([report.captured, report.expired], [0, 1]);
      await assertExpiredFree(row.id, user);
    });

    test('a webhook after the deadline with an SMS stamped after it: stored late, the row expires at once', async () => {
      const user = await h.customer(1000);
      const row = await waiting(user);
      h.clock.set(new Date(row.expiresAt.getTime() + 2_000));
      const message = { providerMessageId: `wh-${row.id}`, text: 'Your code is 222333', code: '222333', receivedAt: new Date(row.expiresAt.getTime() + 1_000) };
      const result = await recordMessages(h.deps, row.id, [message], 'webhook');
      assert.deepEqual([result?.captured, result?.stored, result?.row.state], [false, 1, 'expired']);
      assert.equal(result?.row.upstreamStatus, 'cancel_owed');
      // The same SMS again (the poller, a replayed webhook) changes nothing.
      const again = await recordMessages(h.deps, row.id, [message], 'poller');
      assert.deepEqual([again?.captured, again?.stored], [false, 0]);
      await assertExpiredFree(row.id, user);
    });

    test('an upstream timestamp ahead of our clock counts as when we saw it: captured before the deadline', async () => {
      const user = await h.customer(1000);
      const row = await waiting(user);
      h.clock.set(new Date(row.expiresAt.getTime() - 1_000));
      const message = { providerMessageId: `skew-${row.id}`, text: 'Your code is 999000', code: '999000', receivedAt: new Date(row.expiresAt.getTime() + 60_000) };
      const result = await recordMessages(h.deps, row.id, [message], 'webhook');
      assert.equal(result?.captured, true);
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
    });

    test('recovery finding a purchase after its deadline, its SMS late: expired, never charged', async () => {
      const user = await h.customer(1000);
      provider.onBuy = async (request) => {
        provider.createOrder(request.clientRef);
        throw new ProviderError('ambiguous', 'timeout', 'no answer');
      };
      try {
        const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
        assert.equal(out.status, 202);
        const order = provider.orderOf(out.row.id)!;
        provider.deliver(order.providerOrderId, 'Your code is 565656', '565656', new Date(out.row.expiresAt.getTime() + 5_000));
        h.clock.set(new Date(out.row.expiresAt.getTime() + 10_000));
        // Recovery assigns the number (waiting), the next look finds only the late SMS.
        for (let i = 0; i < 3; i++) {
          await h.runtime.engine.tick();
          h.clock.advance(1_000);
        }
        assert.equal((await loadVerification(h.t.database.db, out.row.id))?.state, 'expired');
        await assertExpiredFree(out.row.id, user);
      } finally {
        provider.resetBehaviour();
      }
    });
  });
}
