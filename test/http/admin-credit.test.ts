import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { firstRow, rows } from '../../src/db/database.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, call, login, openEventStream, registerUser, uniqueEmail, type TestUser } from '../support/http.ts';

interface Snapshot {
  wallet: { balance_minor: number; held_minor: number; available_minor: number };
  transfers: number;
  audits: number;
}

for (const engine of engines) {
  describe(`admin credit [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    let customer: TestUser;
    before(async () => {
      app = await startTestApp({ engine });
      admin = await login(app.url, app.admin.email, app.admin.password);
      customer = await registerUser(app.url, { email: uniqueEmail('customer') });
    });
    after(() => app.close());

    const creditPath = (id: string) => `/v1/admin/users/${id}/credit`;

    async function snapshot(user = customer): Promise<Snapshot> {
      const wallet = (await user.client.get('/v1/wallet')).body;
      const db = app.ctx.database.db;
      const transfers = (await firstRow<{ n: number }>(db, sql`SELECT count(*)::int AS n FROM ledger_transfers`))!.n;
      const audits = (await firstRow<{ n: number }>(db, sql`SELECT count(*)::int AS n FROM audit_log`))!.n;
      return { wallet, transfers, audits };
    }

    test('a top-up and an adjustment move exact amounts, each with one ledger row and one audit row', async () => {
      const before = await snapshot();
      const topup = await admin.client.post(creditPath(customer.id), { amount_minor: 1250, reason: 'welcome bonus' });
      assert.equal(topup.status, 201, topup.text);
      assert.equal(topup.body.replayed, false);
      assert.equal(topup.headers.get('idempotent-replayed'), null);
      assert.deepEqual(topup.body.wallet, { balance_minor: 1250, held_minor: 0, available_minor: 1250, currency: 'USD' });

      const down = await admin.client.post(creditPath(customer.id), { amount_minor: -250, reason: 'correction' });
      assert.equal(down.status, 201, down.text);
      assert.deepEqual(down.body.wallet, { balance_minor: 1000, held_minor: 0, available_minor: 1000, currency: 'USD' });

      const after = await snapshot();
      assert.deepEqual(after.wallet, { balance_minor: 1000, held_minor: 0, available_minor: 1000, currency: 'USD' });
      assert.equal(after.transfers, before.transfers + 2);
      assert.equal(after.audits, before.audits + 2);

      const ledger = await rows<{ id: string; kind: string; amount_minor: number; debit: string; credit: string; actor: string; actor_id: string; reason: string }>(
        app.ctx.database.db,
        sql`SELECT t.id, t.kind, t.amount_minor, d.code AS debit, c.code AS credit, t.actor, t.actor_id, t.reason
            FROM ledger_transfers t
            JOIN ledger_accounts d ON d.id = t.debit_account_id
            JOIN ledger_accounts c ON c.id = t.credit_account_id
            WHERE t.id IN (${topup.body.transfer_id}, ${down.body.transfer_id})
            ORDER BY t.amount_minor DESC`,
      );
      assert.deepEqual(
        ledger.map((r) => [r.id, r.kind, Number(r.amount_minor), r.debit, r.credit, r.actor, r.actor_id, r.reason]),
        [
          [topup.body.transfer_id, 'topup', 1250, 'funding', null, 'admin', admin.id, 'welcome bonus'],
          [down.body.transfer_id, 'adjustment', 250, null, 'adjustments', 'admin', admin.id, 'correction'],
        ],
      );
      const audit = await rows<{ actor_id: string; actor: string; action: string; subject_id: string; detail: { transfer_id: string; amount_minor: number } }>(
        app.ctx.database.db,
        sql`SELECT actor_id, actor, action, subject_id, detail FROM audit_log WHERE action = 'wallet.credit' AND subject_id = ${customer.id} ORDER BY id`,
      );
      assert.deepEqual(
        audit.map((a) => [a.actor_id, a.actor, a.detail.transfer_id, a.detail.amount_minor]),
        [
          [admin.id, 'admin', topup.body.transfer_id, 1250],
          [admin.id, 'admin', down.body.transfer_id, -250],
        ],
      );
      const history = await customer.client.get('/v1/wallet/transactions');
      assert.deepEqual(
        history.body.items.map((i: { type: string; amount_minor: number; reason: string }) => [i.type, i.amount_minor, i.reason]),
        [
          ['adjustment', -250, 'correction'],
          ['topup', 1250, 'welcome bonus'],
        ],
      );
    });

    test("a credit reaches the customer's open event stream as a wallet event with the new balance", { timeout: 30_000 }, async () => {
      const listener = await registerUser(app.url, { email: uniqueEmail('listener') });
      const stream = await openEventStream(app.url, listener.token);
      try {
        await stream.next('ready');
        const credited = await admin.client.post(creditPath(listener.id), { amount_minor: 730, reason: 'top-up seen live' });
        assert.equal(credited.status, 201, credited.text);
        const live = await stream.next('wallet', (w) => w.balance_minor === 730);
        assert.deepEqual(live, { balance_minor: 730, held_minor: 0, available_minor: 730, currency: 'USD' });
        const key = { headers: { 'idempotency-key': 'live-once' } };
        assert.equal((await admin.client.post(creditPath(listener.id), { amount_minor: -30, reason: 'fee' }, key)).status, 201);
        await stream.next('wallet', (w) => w.balance_minor === 700);
        // A replay moves no money, so it announces nothing. Events arrive in commit order, so once the
        // next movement's event is here, an event of the replay would have come before it.
        assert.equal((await admin.client.post(creditPath(listener.id), { amount_minor: -30, reason: 'fee' }, key)).status, 201);
        assert.equal((await admin.client.post(creditPath(listener.id), { amount_minor: 5, reason: 'marker' })).status, 201);
        await stream.next('wallet', (w) => w.balance_minor === 705);
        assert.deepEqual(
          stream.seen.filter((e) => e.event === 'wallet').map((e) => e.data.balance_minor),
          [730, 700, 705],
        );
      } finally {
        stream.close();
      }
    });

    test('an adjustment below the available balance is 402 and changes nothing', async () => {
      const before = await snapshot();
      const response = await admin.client.post(creditPath(customer.id), { amount_minor: -(before.wallet.available_minor + 1), reason: 'too much' });
      assertProblem(response, 402, 'insufficient_funds');
      assert.deepEqual(await snapshot(), before);
    });

    test('Idempotency-Key: a replay returns the same transfer once; a different body is 422', async () => {
      const key = `credit-${Date.now()}`;
      const before = await snapshot();
      const body = { amount_minor: 500, reason: 'promo' };
      // Concurrent first attempts and retries: exactly one transfer, every answer names it.
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => admin.client.post(creditPath(customer.id), body, { headers: { 'idempotency-key': key } })),
      );
      const firsts = answers.filter((a) => a.body.replayed === false);
      assert.equal(firsts.length, 1, JSON.stringify(answers.map((a) => a.body)));
      for (const answer of answers) {
        assert.equal(answer.status, 201, answer.text);
        assert.equal(answer.body.transfer_id, firsts[0]!.body.transfer_id);
        assert.equal(answer.headers.get('idempotent-replayed'), answer.body.replayed ? 'true' : null);
      }
      const replay = await admin.client.post(creditPath(customer.id), body, { headers: { 'idempotency-key': key } });
      assert.deepEqual([replay.status, replay.body.replayed, replay.body.transfer_id], [201, true, firsts[0]!.body.transfer_id]);
      const afterReplays = await snapshot();
      assert.equal(afterReplays.wallet.balance_minor, before.wallet.balance_minor + 500);
      assert.equal(afterReplays.transfers, before.transfers + 1);
      assert.equal(afterReplays.audits, before.audits + 1);

      for (const different of [
        { amount_minor: 501, reason: 'promo' },
        { amount_minor: 500, reason: 'promo 2' },
        { amount_minor: -500, reason: 'promo' },
      ]) {
        const reused = await admin.client.post(creditPath(customer.id), different, { headers: { 'idempotency-key': key } });
        assertProblem(reused, 422, 'idempotency_key_reused');
      }
      const other = await registerUser(app.url);
      const otherUser = await admin.client.post(creditPath(other.id), body, { headers: { 'idempotency-key': key } });
      assertProblem(otherUser, 422, 'idempotency_key_reused');
      assert.deepEqual(await snapshot(), afterReplays);
      assert.equal((await other.client.get('/v1/wallet')).body.balance_minor, 0);
    });

    test('idempotency keys are scoped per admin', async () => {
      const second = await admin.client.post('/v1/admin/users', { email: uniqueEmail('admin2'), password: 'second-admin', role: 'admin' });
      assert.equal(second.status, 201, second.text);
      const admin2 = await login(app.url, second.body.user.email, 'second-admin');
      const key = 'shared-key';
      const body = { amount_minor: 100, reason: 'scoped' };
      const a = await admin.client.post(creditPath(customer.id), body, { headers: { 'idempotency-key': key } });
      const b = await admin2.client.post(creditPath(customer.id), body, { headers: { 'idempotency-key': key } });
      assert.equal(a.status, 201);
      assert.equal(b.status, 201);
      assert.notEqual(a.body.transfer_id, b.body.transfer_id);
      assert.equal(b.body.replayed, false);
    });

    test('an unknown user is 404; a malformed id is 400; nothing changes', async () => {
      const before = await snapshot();
      assertProblem(await admin.client.post(creditPath('00000000-0000-4000-8000-000000000000'), { amount_minor: 100, reason: 'x' }), 404, 'not_found');
      assertProblem(await admin.client.post(creditPath('123'), { amount_minor: 100, reason: 'x' }), 400, 'validation_failed');
      assert.deepEqual(await snapshot(), before);
    });

    test('invalid bodies are 400 (413 when oversized) and change nothing', async () => {
      const before = await snapshot();
      const bad: [unknown, string][] = [
        [{ amount_minor: 0, reason: 'zero' }, '/amount_minor'],
        [{ amount_minor: 1.5, reason: 'float' }, '/amount_minor'],
        [{ amount_minor: '100', reason: 'string' }, '/amount_minor'],
        [{ amount_minor: 1e13, reason: 'huge' }, '/amount_minor'],
        [{ amount_minor: null, reason: 'null' }, '/amount_minor'],
        [{ reason: 'missing amount' }, '/amount_minor'],
        [{ amount_minor: 100 }, '/reason'],
        [{ amount_minor: 100, reason: '' }, '/reason'],
        [{ amount_minor: 100, reason: '   ' }, '/reason'],
        [{ amount_minor: 100, reason: 'r'.repeat(501) }, '/reason'],
        [{ amount_minor: 100, reason: 'extra', currency: 'EUR' }, '/'],
        [[100, 'array'], '/'],
      ];
      for (const [body, path] of bad) {
        const response = await admin.client.post(creditPath(customer.id), body);
        assertProblem(response, 400, 'validation_failed');
        assert.ok(Array.isArray(response.body.issues) && response.body.issues.length > 0, response.text);
        assert.ok(
          response.body.issues.some((i: { in: string; path: string }) => i.in === 'body' && i.path === path),
          `${JSON.stringify(body)} → ${JSON.stringify(response.body.issues)}`,
        );
      }
      const malformed = await admin.client.request('POST', creditPath(customer.id), { rawBody: '{"amount_minor": 100, "reason": ' });
      assertProblem(malformed, 400, 'validation_failed');
      const empty = await admin.client.request('POST', creditPath(customer.id), { rawBody: '' });
      assertProblem(empty, 400, 'validation_failed');
      const oversized = await admin.client.post(creditPath(customer.id), { amount_minor: 100, reason: 'x'.repeat(app.config.BODY_LIMIT_BYTES) });
      assertProblem(oversized, 413, 'payload_too_large');
      for (const key of ['', 'é', 'k'.repeat(256), 'tab\tkey']) {
        const response = await admin.client.post(creditPath(customer.id), { amount_minor: 100, reason: 'key' }, { headers: { 'idempotency-key': key } });
        assertProblem(response, 400, 'validation_failed');
        assert.equal(response.body.issues[0].in, 'headers');
      }
      const after = await snapshot();
      assert.deepEqual(after.wallet, before.wallet);
    });

    test('a forged operator token is refused', async () => {
      const forged = await call(app.url, 'GET', '/v1/admin/users', { token: 'nso_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
      assertProblem(forged, 401, 'unauthenticated');
    });
  });
}
