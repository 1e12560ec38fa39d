import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { signSandbox, SANDBOX_SIGNATURE_HEADER } from '../../src/payments/processors/sandbox.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { engines } from '../support/db.ts';
import { sql } from 'drizzle-orm';
import { assertProblem, call, login, registerUser, type TestUser } from '../support/http.ts';
import { auditActions, paymentEventsOf, walletLedger } from '../support/payments.ts';

const SECRET = 'sandbox-test-secret';
const DAY_MS = 86_400_000;

for (const engine of engines) {
  describe(`sandbox top-ups [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    const clock = new ManualClock(new Date());
    before(async () => {
      app = await startTestApp({
        engine,
        clock,
        env: { SANDBOX_PAYMENTS_WEBHOOK_SECRET: SECRET, TOP_UP_MIN_MINOR: '100', TOP_UP_MAX_MINOR: '100000', TOP_UP_CHECKOUT_TTL_MINUTES: '60' },
      });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    let keys = 0;
    async function startTopUp(user: TestUser, amount: number, extra: Record<string, unknown> = {}) {
      const response = await user.client.post('/v1/top-ups', { amount_minor: amount, ...extra }, { headers: { 'idempotency-key': `k-${++keys}` } });
      assert.equal(response.status, 201, response.text);
      return response.body as { id: string; status: string; checkout_url: string; amount_minor: number };
    }

    /** A sandbox event, signed (by default with the right secret, now). */
    function sandboxEvent(
      data: { top_up_id: string; amount_minor: number; currency?: string },
      options: { type?: string; id?: string; secret?: string; at?: Date } = {},
    ) {
      const body = JSON.stringify({
        id: options.id ?? `evt_sbx_${randomUUID()}`,
        type: options.type ?? 'payment.succeeded',
        created: Math.floor(clock.now().getTime() / 1000),
        data: { reference: `sbx_${data.top_up_id}`, payment_id: `sbx_pay_${randomUUID()}`, currency: 'USD', ...data },
      });
      return { body, signature: signSandbox(body, options.secret ?? SECRET, options.at ?? clock.now()) };
    }

    function deliver(body: string, signature: string) {
      return call(app.url, 'POST', '/webhooks/payments/sandbox', { rawBody: body, headers: { [SANDBOX_SIGNATURE_HEADER]: signature } });
    }

    async function wallet(user: TestUser) {
      return (await user.client.get('/v1/wallet')).body;
    }

    test('bad requests are 400 naming the field and create nothing', async () => {
      const user = await registerUser(app.url);
      assertProblem(await user.client.post('/v1/top-ups', { amount_minor: 1000 }), 400, 'idempotency_key_missing');
      const low = await user.client.post('/v1/top-ups', { amount_minor: 99 }, { headers: { 'idempotency-key': 'low' } });
      assertProblem(low, 400, 'validation_failed');
      assert.match(low.body.detail, /amount_minor/);
      const high = await user.client.post('/v1/top-ups', { amount_minor: 100_001 }, { headers: { 'idempotency-key': 'high' } });
      assertProblem(high, 400, 'validation_failed');
      assert.match(high.body.detail, /amount_minor/);
      const processor = await user.client.post('/v1/top-ups', { amount_minor: 500, processor: 'stripe' }, { headers: { 'idempotency-key': 'p' } });
      assertProblem(processor, 400, 'validation_failed');
      assert.match(processor.body.detail, /processor/);
      assertProblem(await user.client.post('/v1/top-ups', { amount_minor: 5.5 }, { headers: { 'idempotency-key': 'f' } }), 400, 'validation_failed');
      assertProblem(await user.client.post('/v1/top-ups', { amount_minor: 500, extra: 1 }, { headers: { 'idempotency-key': 'x' } }), 400, 'validation_failed');
      assert.deepEqual((await user.client.get('/v1/top-ups')).body.items, []);
    });

    test('the same Idempotency-Key returns the same top-up; another body with it is 422', async () => {
      const user = await registerUser(app.url);
      const headers = { 'idempotency-key': 'same' };
      const answers = await Promise.all(Array.from({ length: 5 }, () => user.client.post('/v1/top-ups', { amount_minor: 700 }, { headers })));
      // Concurrent first attempts: one opens the checkout; the others get it, or 409 while it is being opened.
      for (const answer of answers) {
        if (answer.status !== 201) assertProblem(answer, 409, 'idempotency_in_progress');
      }
      const ids = new Set(answers.filter((a) => a.status === 201).map((a) => a.body.id));
      assert.equal(ids.size, 1, JSON.stringify(answers.map((a) => [a.status, a.body])));
      const replay = await user.client.post('/v1/top-ups', { amount_minor: 700 }, { headers });
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assertProblem(await user.client.post('/v1/top-ups', { amount_minor: 800 }, { headers }), 422, 'idempotency_key_reused');
      assert.equal((await user.client.get('/v1/top-ups')).body.items.length, 1);
      assert.equal((await user.client.get(`/v1/top-ups/${replay.body.id}`)).body.status, 'pending');
      const other = await registerUser(app.url);
      assertProblem(await other.client.get(`/v1/top-ups/${replay.body.id}`), 404, 'not_found');
    });

    test('checkout page: Pay credits exactly once through the signed webhook; the ledger, audit and event record say so', async () => {
      const user = await registerUser(app.url);
      const topUp = await startTopUp(user, 1250);
      assert.equal(topUp.status, 'pending');
      const checkoutUrl = new URL(topUp.checkout_url);
      assert.equal(checkoutUrl.pathname, `/checkout/sandbox/${topUp.id}`);
      const page = await fetch(new URL(checkoutUrl.pathname, app.url));
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.match(html, /12\.50 USD/);
      assert.match(html, new RegExp(`action="/checkout/sandbox/${topUp.id}/pay"`));
      // Nothing is credited by showing the page or by the customer's return alone.
      assert.equal((await wallet(user)).balance_minor, 0);

      const paid = await fetch(new URL(`/checkout/sandbox/${topUp.id}/pay`, app.url), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'choice=pay',
        redirect: 'manual',
      });
      assert.equal(paid.status, 303);
      assert.equal(paid.headers.get('location'), `/#/top-ups/${topUp.id}`);

      const after = (await user.client.get(`/v1/top-ups/${topUp.id}`)).body;
      assert.equal(after.status, 'credited');
      assert.equal(after.credited_minor, 1250);
      assert.equal(after.checkout_url, null);
      assert.deepEqual(await wallet(user), { balance_minor: 1250, held_minor: 0, available_minor: 1250, currency: 'USD' });
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), [
        { kind: 'topup', amount: 1250, direction: 'in', key: `top-up:${topUp.id}`, actor: 'payments' },
      ]);
      const audits = await auditActions(app.ctx.database.db, user.id);
      assert.deepEqual(audits.map((a) => [a.action, a.detail.top_up_id, a.detail.amount_minor]), [['top_up.credit', topUp.id, 1250]]);
      const history = (await user.client.get('/v1/wallet/transactions')).body.items;
      assert.deepEqual(history.map((i: { type: string; amount_minor: number }) => [i.type, i.amount_minor]), [['topup', 1250]]);

      // Paying again on the page (a double click, a back button) sends nothing more and moves nothing.
      await fetch(new URL(`/checkout/sandbox/${topUp.id}/pay`, app.url), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '', redirect: 'manual' });
      assert.equal((await wallet(user)).balance_minor, 1250);
    });

    test('Fail closes the top-up without money; Abandon leaves it pending, and an overdue one is expired by reconcile', async () => {
      const user = await registerUser(app.url);
      const failing = await startTopUp(user, 300);
      const abandoning = await startTopUp(user, 400);
      const post = (id: string, choice: string) =>
        fetch(new URL(`/checkout/sandbox/${id}/${choice}`, app.url), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '', redirect: 'manual' });
      assert.equal((await post(failing.id, 'fail')).status, 303);
      assert.equal((await post(abandoning.id, 'abandon')).status, 303);
      assert.equal((await user.client.get(`/v1/top-ups/${failing.id}`)).body.status, 'failed');
      assert.equal((await user.client.get(`/v1/top-ups/${abandoning.id}`)).body.status, 'pending');
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), []);

      // Not yet overdue: reconcile leaves an open checkout alone.
      const early = await admin.client.post('/v1/admin/reconcile', { days: 1, execute: true, user: user.email });
      assert.deepEqual(early.body.found, []);
      clock.advance(61 * 60_000);
      const diagnosed = (await admin.client.get('/v1/admin/diagnose')).body;
      assert.ok(diagnosed.top_ups.overdue >= 1, JSON.stringify(diagnosed.top_ups));
      const reconciled = await admin.client.post('/v1/admin/reconcile', { days: 1, execute: true, user: user.email });
      assert.equal(reconciled.status, 200, reconciled.text);
      assert.deepEqual(
        reconciled.body.found.map((f: { kind: string; amount_minor: number; repaired: boolean }) => [f.kind, f.amount_minor, f.repaired]),
        [['top_up_overdue', 400, true]],
      );
      assert.match(reconciled.body.found[0].detail, /sandbox says pending; now expired/);
      assert.equal(reconciled.body.remaining, 0);
      assert.equal((await user.client.get(`/v1/top-ups/${abandoning.id}`)).body.status, 'expired');
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), []);
      // Paid after all (the customer came back to a stale tab): the payment still credits.
      const late = sandboxEvent({ top_up_id: abandoning.id, amount_minor: 400 });
      assert.equal((await deliver(late.body, late.signature)).body.status, 'credited');
      assert.equal((await wallet(user)).balance_minor, 400);
      const again = await admin.client.post('/v1/admin/reconcile', { days: 1, execute: true, user: user.email });
      assert.deepEqual(again.body.found, []);
    });

    test('diagnose proves top-ups and ledger agree; a credit the top-up lost track of is found and recorded by reconcile', async () => {
      const user = await registerUser(app.url);
      const topUp = await startTopUp(user, 650);
      const paid = sandboxEvent({ top_up_id: topUp.id, amount_minor: 650 });
      await deliver(paid.body, paid.signature);
      const healthy = (await admin.client.get('/v1/admin/diagnose')).body;
      assert.deepEqual(
        healthy.checks.filter((c: { name: string }) => c.name.startsWith('top_up') || c.name.startsWith('receivables')).map((c: { name: string; ok: boolean }) => [c.name, c.ok]),
        [
          ['top_up_credits_match_ledger', true],
          ['receivables_match_ledger', true],
        ],
      );
      // The record falls behind the money (as a bug or a restore could leave it).
      await app.ctx.database.db.execute(
        sql`UPDATE top_ups SET status = 'pending', credited_minor = NULL, credit_transfer_id = NULL, credited_at = NULL WHERE id = ${topUp.id}`,
      );
      const broken = (await admin.client.get('/v1/admin/diagnose')).body;
      assert.equal(broken.ok, false);
      const failing = broken.checks.find((c: { name: string }) => c.name === 'top_up_credits_match_ledger');
      assert.equal(failing.ok, false);
      assert.match(failing.detail, new RegExp(`credits top-up ${topUp.id} which is pending`));
      const repaired = await admin.client.post('/v1/admin/reconcile', { days: 1, execute: true, user: user.email });
      assert.deepEqual(
        repaired.body.found.map((f: { kind: string; repaired: boolean }) => [f.kind, f.repaired]),
        [['top_up_credit_unrecorded', true]],
      );
      assert.equal((await admin.client.get('/v1/admin/diagnose')).body.ok, true);
      const view = (await user.client.get(`/v1/top-ups/${topUp.id}`)).body;
      assert.deepEqual([view.status, view.credited_minor], ['credited', 650]);
      // No money moved: one credit, as before.
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), [
        { kind: 'topup', amount: 650, direction: 'in', key: `top-up:${topUp.id}`, actor: 'payments' },
      ]);
    });

    test('signatures: forged, wrong secret, stale, future and altered bodies are refused and change nothing; only the valid one credits', async () => {
      const user = await registerUser(app.url);
      const topUp = await startTopUp(user, 900);
      const good = sandboxEvent({ top_up_id: topUp.id, amount_minor: 900 });
      const attempts = [
        { name: 'no signature', body: good.body, signature: '' },
        { name: 'forged', body: good.body, signature: `t=${Math.floor(clock.now().getTime() / 1000)},v1=${'ab'.repeat(32)}` },
        { name: 'wrong secret', ...sandboxEvent({ top_up_id: topUp.id, amount_minor: 900 }, { secret: 'not-the-secret' }) },
        { name: 'stale', ...sandboxEvent({ top_up_id: topUp.id, amount_minor: 900 }, { at: new Date(clock.now().getTime() - 600_000) }) },
        { name: 'future', ...sandboxEvent({ top_up_id: topUp.id, amount_minor: 900 }, { at: new Date(clock.now().getTime() + 600_000) }) },
        { name: 'body altered', body: good.body.replace('"amount_minor":900', '"amount_minor":90000'), signature: good.signature },
      ];
      for (const attempt of attempts) {
        const response = await deliver(attempt.body, attempt.signature);
        assertProblem(response, 401, 'unauthenticated');
      }
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), []);
      assert.equal((await user.client.get(`/v1/top-ups/${topUp.id}`)).body.status, 'pending');
      const valid = await deliver(good.body, good.signature);
      assert.equal(valid.status, 200, valid.text);
      assert.equal(valid.body.status, 'credited');
      assert.deepEqual((await wallet(user)).balance_minor, 900);
    });

    test('20 concurrent deliveries of one event credit once; a replay days later credits nothing', async () => {
      const user = await registerUser(app.url);
      const topUp = await startTopUp(user, 2000);
      const event = sandboxEvent({ top_up_id: topUp.id, amount_minor: 2000 });
      const answers = await Promise.all(Array.from({ length: 20 }, () => deliver(event.body, event.signature)));
      assert.deepEqual(answers.map((a) => a.status), Array(20).fill(200));
      const outcomes = answers.map((a) => a.body.status).sort();
      assert.deepEqual(outcomes, ['credited', ...Array(19).fill('duplicate')]);
      // A second, different event confirming the same payment (the processor sends two) credits nothing either.
      const second = sandboxEvent({ top_up_id: topUp.id, amount_minor: 2000 });
      assert.equal((await deliver(second.body, second.signature)).body.status, 'already_credited');

      clock.advance(3 * DAY_MS);
      // The processor re-delivers the same event days later, freshly signed.
      const replay = await deliver(event.body, signSandbox(event.body, SECRET, clock.now()));
      assert.equal(replay.status, 200);
      assert.equal(replay.body.status, 'duplicate');
      assert.deepEqual(await wallet(user), { balance_minor: 2000, held_minor: 0, available_minor: 2000, currency: 'USD' });
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), [
        { kind: 'topup', amount: 2000, direction: 'in', key: `top-up:${topUp.id}`, actor: 'payments' },
      ]);
      assert.equal((await auditActions(app.ctx.database.db, user.id)).length, 1);
    });

    test('amount and currency mismatches are recorded for review, not credited; an unknown top-up is recorded', async () => {
      const user = await registerUser(app.url);
      const short = await startTopUp(user, 1500);
      const foreign = await startTopUp(user, 1600);
      const a = sandboxEvent({ top_up_id: short.id, amount_minor: 150 });
      assert.equal((await deliver(a.body, a.signature)).body.status, 'mismatch');
      const c = sandboxEvent({ top_up_id: foreign.id, amount_minor: 1600, currency: 'EUR' });
      assert.equal((await deliver(c.body, c.signature)).body.status, 'mismatch');
      const unknownId = randomUUID();
      const u = sandboxEvent({ top_up_id: unknownId, amount_minor: 1000 });
      const unknown = await deliver(u.body, u.signature);
      assert.equal(unknown.body.status, 'unknown_top_up');
      assert.equal(unknown.body.top_up_id, null);

      const shortNow = (await user.client.get(`/v1/top-ups/${short.id}`)).body;
      assert.equal(shortNow.status, 'review');
      assert.match(shortNow.status_reason, /paid 150, the top-up asked for 1500/);
      const foreignNow = (await user.client.get(`/v1/top-ups/${foreign.id}`)).body;
      assert.equal(foreignNow.status, 'review');
      assert.match(foreignNow.status_reason, /EUR/);
      assert.deepEqual(await walletLedger(app.ctx.database.db, user.id), []);
      const recorded = await paymentEventsOf(app.ctx.database.db, 'sandbox');
      const byId = new Map(recorded.map((r) => [r.event_id, r]));
      assert.equal(byId.get(JSON.parse(a.body).id)?.outcome, 'mismatch');
      assert.equal(byId.get(JSON.parse(c.body).id)?.outcome, 'mismatch');
      assert.equal(byId.get(JSON.parse(u.body).id)?.outcome, 'unknown_top_up');
      const metrics = await admin.client.get('/metrics');
      assert.equal(metrics.status, 200);
      assert.ok(Number(/^namaskah_payments_unmatched (\d+)$/m.exec(metrics.text)?.[1]) >= 1, metrics.text);
      assert.ok(Number(/^namaskah_top_ups\{status="review"\} (\d+)$/m.exec(metrics.text)?.[1]) >= 2);
      // A matching confirmation after the mismatch waits for an admin too.
      const late = sandboxEvent({ top_up_id: short.id, amount_minor: 1500 });
      assert.equal((await deliver(late.body, late.signature)).body.status, 'mismatch');
      assert.equal((await wallet(user)).balance_minor, 0);
    });
  });
}
