import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from '../support/app.ts';
import { engines } from '../support/db.ts';
import { startFakePaystack, type FakePaystack } from '../support/fake-paystack.ts';
import { assertProblem, call, login, registerUser, type TestUser } from '../support/http.ts';
import { walletLedger } from '../support/payments.ts';

const SECRET_KEY = 'sk_test_paystack_namaskah';

for (const engine of engines) {
  describe(`Paystack top-ups against a local Paystack [${engine}]`, () => {
    let app: TestApp;
    let paystack: FakePaystack;
    let admin: TestUser;
    before(async () => {
      paystack = await startFakePaystack({ secretKey: SECRET_KEY });
      app = await startTestApp({
        engine,
        env: {
          CURRENCY: 'NGN',
          PAYMENT_PROCESSORS: 'paystack,sandbox',
          PAYSTACK_SECRET_KEY: SECRET_KEY,
          PAYSTACK_BASE_URL: paystack.url,
          TOP_UP_MIN_MINOR: '10000',
          TOP_UP_MAX_MINOR: '10000000',
        },
      });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(async () => {
      await app.close();
      await paystack.close();
    });

    let keys = 0;
    async function startTopUp(user: TestUser, amount: number) {
      const response = await user.client.post('/v1/top-ups', { amount_minor: amount }, { headers: { 'idempotency-key': `p-${++keys}` } });
      assert.equal(response.status, 201, response.text);
      return response.body as { id: string; status: string; checkout_url: string; processor: string };
    }

    function deliver(payload: unknown, options: { secret?: string; alter?: (body: string) => string } = {}) {
      const body = JSON.stringify(payload);
      const signature = paystack.sign(body, options.secret);
      return call(app.url, 'POST', '/webhooks/payments/paystack', {
        rawBody: options.alter ? options.alter(body) : body,
        headers: { 'x-paystack-signature': signature },
      });
    }

    test('initialize: the amount in kobo, our id as the reference; charge.success credits once, however often it comes', async () => {
      const user = await registerUser(app.url);
      const topUp = await startTopUp(user, 500_000);
      assert.equal(topUp.processor, 'paystack');
      const initialize = paystack.requests.find((r) => r.path === '/transaction/initialize')!;
      assert.deepEqual(JSON.parse(initialize.body), {
        email: user.email,
        amount: '500000',
        currency: 'NGN',
        reference: topUp.id,
        callback_url: `${app.url}/#/top-ups/${topUp.id}`,
        metadata: { top_up_id: topUp.id },
      });
      assert.equal(topUp.checkout_url, `https://checkout.paystack.com/acc_${topUp.id.slice(0, 8)}`);

      const paid = paystack.pay(topUp.id);
      const answers = await Promise.all(Array.from({ length: 20 }, () => deliver(paid)));
      assert.deepEqual(answers.map((a) => a.body.status).sort(), ['credited', ...Array(19).fill('duplicate')]);
      assert.deepEqual((await user.client.get('/v1/wallet')).body, { balance_minor: 500_000, held_minor: 0, available_minor: 500_000, currency: 'NGN' });
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), [
        { kind: 'topup', amount: 500_000, direction: 'in', key: `top-up:${topUp.id}`, actor: 'payments' },
      ]);
    });

    test('x-paystack-signature: forged, wrong secret and altered body are 401 and change nothing', async () => {
      const user = await registerUser(app.url);
      const topUp = await startTopUp(user, 20_000);
      const paid = paystack.pay(topUp.id);
      assertProblem(await call(app.url, 'POST', '/webhooks/payments/paystack', { rawBody: JSON.stringify(paid) }), 401, 'unauthenticated');
      assertProblem(
        await call(app.url, 'POST', '/webhooks/payments/paystack', { rawBody: JSON.stringify(paid), headers: { 'x-paystack-signature': 'f'.repeat(128) } }),
        401,
        'unauthenticated',
      );
      assertProblem(await deliver(paid, { secret: 'sk_test_someone_else' }), 401, 'unauthenticated');
      assertProblem(await deliver(paid, { alter: (b) => b.replace('"amount":20000', '"amount":2000000') }), 401, 'unauthenticated');
      assert.equal((await user.client.get('/v1/wallet')).body.balance_minor, 0);
      assert.equal((await deliver(paid)).body.status, 'credited');
      assert.equal((await user.client.get('/v1/wallet')).body.balance_minor, 20_000);
    });

    test('a mismatched amount is held for review; a refund takes money back; verify answers a re-check', async () => {
      const user = await registerUser(app.url);
      const short = await startTopUp(user, 30_000);
      assert.equal((await deliver(paystack.pay(short.id, { amount: 3_000 }))).body.status, 'mismatch');
      assert.equal((await user.client.get(`/v1/top-ups/${short.id}`)).body.status, 'review');

      const refunded = await startTopUp(user, 40_000);
      assert.equal((await deliver(paystack.pay(refunded.id))).body.status, 'credited');
      assert.equal((await deliver(paystack.refund(refunded.id, 15_000))).body.status, 'reversed');
      assert.equal((await user.client.get('/v1/wallet')).body.balance_minor, 25_000);

      const silent = await startTopUp(user, 50_000);
      paystack.pay(silent.id); // paid at Paystack; the webhook is lost
      const recheck = await admin.client.post(`/v1/admin/top-ups/${silent.id}/recheck`);
      assert.equal(recheck.status, 200, recheck.text);
      assert.deepEqual([recheck.body.processor_state, recheck.body.top_up.status], ['paid', 'credited']);
      assert.ok(paystack.requests.some((r) => r.path === `/transaction/verify/${silent.id}`));
      assert.equal((await user.client.get('/v1/wallet')).body.balance_minor, 75_000);
    });

    test('both enabled processors can be chosen; the sandbox still works beside Paystack', async () => {
      const user = await registerUser(app.url);
      const list = (await user.client.get('/v1/top-ups')).body;
      assert.deepEqual(list.processors, ['paystack', 'sandbox']);
      const sandbox = await user.client.post('/v1/top-ups', { amount_minor: 10_000, processor: 'sandbox' }, { headers: { 'idempotency-key': 'sbx' } });
      assert.equal(sandbox.status, 201, sandbox.text);
      assert.equal(sandbox.body.processor, 'sandbox');
    });
  });
}
