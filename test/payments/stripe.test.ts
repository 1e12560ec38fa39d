import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import type Stripe from 'stripe';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { engines } from '../support/db.ts';
import { startFakeStripe, type FakeStripe } from '../support/fake-stripe.ts';
import { assertProblem, call, login, registerUser, type TestUser } from '../support/http.ts';
import { paymentEventsOf, walletLedger } from '../support/payments.ts';

const SECRET_KEY = 'sk_test_namaskah';
const WEBHOOK_SECRET = 'whsec_test_namaskah';
const DAY_MS = 86_400_000;

for (const engine of engines) {
  describe(`Stripe top-ups against a local Stripe [${engine}]`, () => {
    let app: TestApp;
    let stripe: FakeStripe;
    let admin: TestUser;
    const clock = new ManualClock(new Date());
    before(async () => {
      stripe = await startFakeStripe({ secretKey: SECRET_KEY, now: () => clock.now() });
      app = await startTestApp({
        engine,
        clock,
        env: {
          PAYMENT_PROCESSORS: 'stripe',
          STRIPE_SECRET_KEY: SECRET_KEY,
          STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
          STRIPE_API_BASE_URL: stripe.url,
          TOP_UP_MIN_MINOR: '100',
          PUBLIC_URL: 'https://namaskah.example',
        },
      });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(async () => {
      await app.close();
      await stripe.close();
    });

    let keys = 0;
    async function startTopUp(user: TestUser, amount: number) {
      const response = await user.client.post('/v1/top-ups', { amount_minor: amount }, { headers: { 'idempotency-key': `s-${++keys}` } });
      assert.equal(response.status, 201, response.text);
      const session = [...stripe.sessions.values()].find((s) => s.client_reference_id === response.body.id)!;
      return { topUp: response.body as { id: string; status: string; checkout_url: string }, sessionId: session.id };
    }

    function deliver(event: Stripe.Event, options: { secret?: string; atSeconds?: number; alter?: (body: string) => string } = {}) {
      const signed = stripe.sign(event, options.secret ?? WEBHOOK_SECRET, options.atSeconds ?? Math.floor(clock.now().getTime() / 1000));
      const body = options.alter ? options.alter(signed.body) : signed.body;
      return call(app.url, 'POST', '/webhooks/payments/stripe', { rawBody: body, headers: { 'stripe-signature': signed.signature } });
    }

    async function wallet(user: TestUser) {
      return (await user.client.get('/v1/wallet')).body;
    }

    test('a top-up opens a Checkout Session with the amount, currency, our id and an idempotency key', async () => {
      const user = await registerUser(app.url);
      const { topUp, sessionId } = await startTopUp(user, 2500);
      assert.equal(topUp.status, 'pending');
      assert.equal(topUp.checkout_url, `https://checkout.stripe.com/c/pay/${sessionId}`);
      const create = stripe.requests.filter((r) => r.method === 'POST' && r.path === '/v1/checkout/sessions').at(-1)!;
      const form = new URLSearchParams(create.body);
      assert.equal(form.get('mode'), 'payment');
      assert.equal(form.get('line_items[0][price_data][unit_amount]'), '2500');
      assert.equal(form.get('line_items[0][price_data][currency]'), 'usd');
      assert.equal(form.get('client_reference_id'), topUp.id);
      assert.equal(form.get('metadata[top_up_id]'), topUp.id);
      assert.equal(form.get('payment_intent_data[metadata][top_up_id]'), topUp.id);
      assert.equal(form.get('customer_email'), user.email);
      assert.equal(form.get('success_url'), `https://namaskah.example/#/top-ups/${topUp.id}`);
      assert.equal(create.headers['idempotency-key'], `top-up-checkout:${topUp.id}`);
      assert.equal(create.headers.authorization, `Bearer ${SECRET_KEY}`);
      assert.equal((await wallet(user)).balance_minor, 0);
    });

    test('completed and paid credits; completed unpaid waits for async_payment_succeeded; async failure and expiry close without money', async () => {
      const user = await registerUser(app.url);
      const paid = await startTopUp(user, 1000);
      assert.equal((await deliver(stripe.complete(paid.sessionId))).body.status, 'credited');

      clock.advance(1000);
      const slow = await startTopUp(user, 1100);
      assert.equal((await deliver(stripe.complete(slow.sessionId, { paymentStatus: 'unpaid' }))).body.status, 'ignored');
      assert.equal((await user.client.get(`/v1/top-ups/${slow.topUp.id}`)).body.status, 'pending');
      assert.equal((await deliver(stripe.asyncSucceeded(slow.sessionId))).body.status, 'credited');

      const declined = await startTopUp(user, 1200);
      await deliver(stripe.complete(declined.sessionId, { paymentStatus: 'unpaid' }));
      assert.equal((await deliver(stripe.asyncFailed(declined.sessionId))).body.status, 'failed');
      const expired = await startTopUp(user, 1300);
      assert.equal((await deliver(stripe.expire(expired.sessionId))).body.status, 'expired');

      const statuses = Object.fromEntries(
        ((await user.client.get('/v1/top-ups')).body.items as { id: string; status: string }[]).map((t) => [t.id, t.status]),
      );
      assert.deepEqual(statuses, { [paid.topUp.id]: 'credited', [slow.topUp.id]: 'credited', [declined.topUp.id]: 'failed', [expired.topUp.id]: 'expired' });
      assert.deepEqual(await wallet(user), { balance_minor: 2100, held_minor: 0, available_minor: 2100, currency: 'USD' });
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), [
        { kind: 'topup', amount: 1000, direction: 'in', key: `top-up:${paid.topUp.id}`, actor: 'payments' },
        { kind: 'topup', amount: 1100, direction: 'in', key: `top-up:${slow.topUp.id}`, actor: 'payments' },
      ]);
    });

    test('signatures checked by the SDK: forged, wrong secret, stale, altered body are 401 and change nothing', async () => {
      const user = await registerUser(app.url);
      const { topUp, sessionId } = await startTopUp(user, 1500);
      const event = stripe.complete(sessionId);
      const now = Math.floor(clock.now().getTime() / 1000);
      const forged = await call(app.url, 'POST', '/webhooks/payments/stripe', {
        rawBody: JSON.stringify(event),
        headers: { 'stripe-signature': `t=${now},v1=${'0'.repeat(64)}` },
      });
      assertProblem(forged, 401, 'unauthenticated');
      assertProblem(await call(app.url, 'POST', '/webhooks/payments/stripe', { rawBody: JSON.stringify(event) }), 401, 'unauthenticated');
      assertProblem(await deliver(event, { secret: 'whsec_someone_else' }), 401, 'unauthenticated');
      assertProblem(await deliver(event, { atSeconds: now - 301 }), 401, 'unauthenticated');
      assertProblem(await deliver(event, { alter: (body) => body.replace('"amount_total": 1500', '"amount_total": 150000') }), 401, 'unauthenticated');
      assert.equal((await user.client.get(`/v1/top-ups/${topUp.id}`)).body.status, 'pending');
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), []);
      const valid = await deliver(event);
      assert.equal(valid.status, 200, valid.text);
      assert.equal(valid.body.status, 'credited');
      assert.equal((await wallet(user)).balance_minor, 1500);
    });

    test('20 concurrent deliveries credit once; a re-delivery days later credits nothing', async () => {
      const user = await registerUser(app.url);
      const { topUp, sessionId } = await startTopUp(user, 3000);
      const event = stripe.complete(sessionId);
      const answers = await Promise.all(Array.from({ length: 20 }, () => deliver(event)));
      assert.deepEqual(answers.map((a) => a.status), Array(20).fill(200));
      assert.deepEqual(answers.map((a) => a.body.status).sort(), ['credited', ...Array(19).fill('duplicate')]);
      clock.advance(4 * DAY_MS);
      assert.equal((await deliver(event)).body.status, 'duplicate');
      // The same payment confirmed again by another event (async_payment_succeeded) is no second credit.
      assert.equal((await deliver(stripe.asyncSucceeded(sessionId))).body.status, 'already_credited');
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), [
        { kind: 'topup', amount: 3000, direction: 'in', key: `top-up:${topUp.id}`, actor: 'payments' },
      ]);
      assert.equal((await wallet(user)).balance_minor, 3000);
    });

    test('out of order: a refund before the completion event is held against the top-up and taken back when it credits', async () => {
      const user = await registerUser(app.url);
      const { topUp, sessionId } = await startTopUp(user, 1000);
      const completed = stripe.complete(sessionId);
      const refunded = stripe.refund(sessionId, 1000);
      assert.equal((await deliver(refunded)).body.status, 'reversed');
      assert.equal((await user.client.get(`/v1/top-ups/${topUp.id}`)).body.status, 'pending');
      assert.equal((await wallet(user)).balance_minor, 0);
      assert.equal((await user.client.get('/v1/top-ups')).body.receivable_minor, 0);
      assert.equal((await deliver(completed)).body.status, 'credited');
      const view = (await user.client.get(`/v1/top-ups/${topUp.id}`)).body;
      assert.deepEqual([view.status, view.credited_minor, view.reversed_minor], ['credited', 1000, 1000]);
      assert.deepEqual(await wallet(user), { balance_minor: 0, held_minor: 0, available_minor: 0, currency: 'USD' });
      const ledger = await walletLedger(app.ctx.database.db, user.id);
      assert.deepEqual(
        ledger.map((l) => [l.kind, l.amount, l.direction]),
        [
          ['topup', 1000, 'in'],
          ['adjustment', 1000, 'out'],
        ],
      );
      assert.match(ledger[1]!.key!, /^top-up-reversal:/);
    });

    test('a refund of money already spent leaves a receivable that the next top-ups settle first, never below zero', async () => {
      const user = await registerUser(app.url);
      const first = await startTopUp(user, 1000);
      await deliver(stripe.complete(first.sessionId));
      // The customer spends 700 of it.
      clock.advance(1000);
      const spent = await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: -700, reason: 'spent' });
      assert.equal(spent.status, 201, spent.text);
      clock.advance(1000);
      assert.equal((await deliver(stripe.refund(first.sessionId, 1000))).body.status, 'reversed');
      assert.deepEqual(await wallet(user), { balance_minor: 0, held_minor: 0, available_minor: 0, currency: 'USD' });
      assert.equal((await user.client.get('/v1/top-ups')).body.receivable_minor, 700);

      clock.advance(1000);
      const second = await startTopUp(user, 500);
      await deliver(stripe.complete(second.sessionId));
      assert.equal((await wallet(user)).balance_minor, 0);
      assert.equal((await user.client.get('/v1/top-ups')).body.receivable_minor, 200);

      clock.advance(1000);
      const third = await startTopUp(user, 1000);
      await deliver(stripe.complete(third.sessionId));
      assert.deepEqual(await wallet(user), { balance_minor: 800, held_minor: 0, available_minor: 800, currency: 'USD' });
      assert.equal((await user.client.get('/v1/top-ups')).body.receivable_minor, 0);
      assert.deepEqual(
        (await walletLedger(app.ctx.database.db, user.id)).map((l) => [l.kind, l.amount, l.direction]),
        [
          ['topup', 1000, 'in'],
          ['adjustment', 700, 'out'], // spent (the admin adjustment standing in for purchases)
          ['adjustment', 300, 'out'], // the refund takes what is available
          ['topup', 500, 'in'],
          ['adjustment', 500, 'out'],
          ['topup', 1000, 'in'],
          ['adjustment', 200, 'out'],
        ],
      );
    });

    test('a refund never takes held money: a number being bought keeps its hold, the rest is owed', async () => {
      const user = await registerUser(app.url);
      const { sessionId } = await startTopUp(user, 1000);
      await deliver(stripe.complete(sessionId));
      clock.advance(1000);
      const bought = await user.client.post('/v1/verifications', { service: 'test_timeout' }, { headers: { 'idempotency-key': 'hold' } });
      assert.ok([201, 202].includes(bought.status), bought.text);
      const price = bought.body.price_minor as number;
      assert.deepEqual(await wallet(user), { balance_minor: 1000, held_minor: price, available_minor: 1000 - price, currency: 'USD' });
      clock.advance(1000);
      assert.equal((await deliver(stripe.refund(sessionId, 1000))).body.status, 'reversed');
      assert.deepEqual(await wallet(user), { balance_minor: price, held_minor: price, available_minor: 0, currency: 'USD' });
      assert.equal((await user.client.get('/v1/top-ups')).body.receivable_minor, price);
      // The hold still ends as its verification says (here: cancelled, so released); the next
      // top-up settles the debt first.
      const cancelled = await user.client.post(`/v1/verifications/${bought.body.id}/cancel`);
      assert.equal(cancelled.status, 200, cancelled.text);
      assert.deepEqual(await wallet(user), { balance_minor: price, held_minor: 0, available_minor: price, currency: 'USD' });
      const next = await startTopUp(user, 500);
      await deliver(stripe.complete(next.sessionId));
      assert.equal((await user.client.get('/v1/top-ups')).body.receivable_minor, 0);
      // price (released) + 500 (credited) − price (the receivable collected).
      assert.deepEqual(await wallet(user), { balance_minor: 500, held_minor: 0, available_minor: 500, currency: 'USD' });
    });

    test('20 different events confirming one payment at once (completed, async succeeded, re-sent) credit once', async () => {
      const user = await registerUser(app.url);
      const { topUp, sessionId } = await startTopUp(user, 1900);
      const events = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? stripe.complete(sessionId) : stripe.asyncSucceeded(sessionId)));
      const answers = await Promise.all(events.map((e) => deliver(e)));
      assert.deepEqual(answers.map((a) => a.body.status).sort(), [...Array(19).fill('already_credited'), 'credited']);
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), [
        { kind: 'topup', amount: 1900, direction: 'in', key: `top-up:${topUp.id}`, actor: 'payments' },
      ]);
    });

    test('a full refund racing its completion, in either order, always nets to zero with nothing owed', async () => {
      const user = await registerUser(app.url);
      const started = [];
      for (let i = 0; i < 8; i += 1) started.push(await startTopUp(user, 1000 + i));
      await Promise.all(
        started.flatMap(({ sessionId }, i) => {
          const completed = stripe.complete(sessionId);
          const refunded = stripe.refund(sessionId, 1000 + i);
          return i % 2 === 0 ? [deliver(completed), deliver(refunded)] : [deliver(refunded), deliver(completed)];
        }),
      );
      assert.deepEqual(await wallet(user), { balance_minor: 0, held_minor: 0, available_minor: 0, currency: 'USD' });
      assert.equal((await user.client.get('/v1/top-ups')).body.receivable_minor, 0);
      const ledger = await walletLedger(app.ctx.database.db, user.id);
      const total = (kind: string) => ledger.filter((l) => l.kind === kind).reduce((sum, l) => sum + l.amount, 0);
      assert.equal(total('topup'), 8 * 1000 + 28);
      assert.equal(total('adjustment'), 8 * 1000 + 28);
      assert.equal(ledger.filter((l) => l.kind === 'topup').length, 8);
      assert.equal((await admin.client.get('/v1/admin/diagnose')).body.checks.filter((c: { ok: boolean }) => !c.ok).length, 0);
      // A reversal whose record disagrees with the ledger is named by diagnose.
      const db = app.ctx.database.db;
      await db.execute(sql`UPDATE top_up_reversals SET collected_minor = collected_minor - 1 WHERE user_id = ${user.id} AND amount_minor = 1000`);
      const check = (await admin.client.get('/v1/admin/diagnose')).body.checks.find((c: { name: string }) => c.name === 'receivables_match_ledger');
      assert.equal(check.ok, false);
      assert.match(check.detail, /collected 999 ledger 1000/);
      await db.execute(sql`UPDATE top_up_reversals SET collected_minor = collected_minor + 1 WHERE user_id = ${user.id} AND amount_minor = 1000`);
    });

    test('partial refunds count cumulatively; a lost dispute takes money back, an opened one does not', async () => {
      const user = await registerUser(app.url);
      const refunded = await startTopUp(user, 1000);
      await deliver(stripe.complete(refunded.sessionId));
      await deliver(stripe.refund(refunded.sessionId, 300));
      const again = stripe.refund(refunded.sessionId, 200);
      await deliver(again);
      await deliver(again);
      assert.equal((await user.client.get(`/v1/top-ups/${refunded.topUp.id}`)).body.reversed_minor, 500);
      assert.equal((await wallet(user)).balance_minor, 500);

      const disputed = await startTopUp(user, 2000);
      await deliver(stripe.complete(disputed.sessionId));
      assert.equal((await deliver(stripe.dispute(disputed.sessionId, 'needs_response'))).body.status, 'ignored');
      assert.equal((await wallet(user)).balance_minor, 2500);
      assert.equal((await deliver(stripe.dispute(disputed.sessionId, 'lost'))).body.status, 'reversed');
      assert.equal((await wallet(user)).balance_minor, 500);
      assert.equal((await user.client.get(`/v1/top-ups/${disputed.topUp.id}`)).body.reversed_minor, 2000);
    });

    test('mismatched amount or currency is recorded for review; an event for an unknown session is recorded', async () => {
      const user = await registerUser(app.url);
      const short = await startTopUp(user, 1000);
      assert.equal((await deliver(stripe.complete(short.sessionId, { amountTotal: 10 }))).body.status, 'mismatch');
      const euro = await startTopUp(user, 1000);
      assert.equal((await deliver(stripe.complete(euro.sessionId, { currency: 'eur' }))).body.status, 'mismatch');
      const strangerEvent = stripe.complete(euro.sessionId);
      const stranger = JSON.parse(JSON.stringify(strangerEvent));
      stranger.id = 'evt_test_stranger';
      stranger.data.object.id = 'cs_test_not_ours';
      stranger.data.object.client_reference_id = null;
      stranger.data.object.metadata = {};
      stranger.data.object.payment_intent = 'pi_test_not_ours';
      assert.equal((await deliver(stranger)).body.status, 'unknown_top_up');
      assert.equal((await wallet(user)).balance_minor, 0);
      const recorded = await paymentEventsOf(app.ctx.database.db, 'stripe');
      assert.equal(recorded.find((r) => r.event_id === 'evt_test_stranger')?.outcome, 'unknown_top_up');
    });

    test('an outage while opening the checkout is 503 with nothing charged; the retry with the same key opens it', async () => {
      const user = await registerUser(app.url);
      stripe.failNextCreates(3);
      const headers = { 'idempotency-key': 'outage' };
      const failed = await user.client.post('/v1/top-ups', { amount_minor: 900 }, { headers });
      assertProblem(failed, 503, 'processor_unavailable');
      const topUpId = failed.body.top_up_id;
      clock.advance(60_000);
      const retried = await user.client.post('/v1/top-ups', { amount_minor: 900 }, { headers });
      assert.equal(retried.status, 201, retried.text);
      assert.equal(retried.body.id, topUpId);
      assert.match(retried.body.checkout_url, /^https:\/\/checkout\.stripe\.com\//);
    });

    test('an admin re-check credits a paid session whose webhook never came, once', async () => {
      const user = await registerUser(app.url);
      const { topUp, sessionId } = await startTopUp(user, 1700);
      assertProblem(await user.client.post(`/v1/admin/top-ups/${topUp.id}/recheck`), 403, 'forbidden');
      const open = await admin.client.post(`/v1/admin/top-ups/${topUp.id}/recheck`);
      assert.equal(open.status, 200, open.text);
      assert.deepEqual([open.body.processor_state, open.body.top_up.status], ['pending', 'pending']);
      stripe.complete(sessionId); // paid at Stripe; the webhook is lost
      const first = await admin.client.post(`/v1/admin/top-ups/${topUp.id}/recheck`);
      assert.deepEqual([first.body.processor_state, first.body.outcome, first.body.top_up.status], ['paid', 'credited', 'credited']);
      const second = await admin.client.post(`/v1/admin/top-ups/${topUp.id}/recheck`);
      assert.ok(['duplicate', 'already_credited'].includes(second.body.outcome), second.text);
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), [
        { kind: 'topup', amount: 1700, direction: 'in', key: `top-up:${topUp.id}`, actor: 'payments' },
      ]);
    });
  });
}
