import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, call, login, openEventStream, registerUser, type TestUser } from '../support/http.ts';
import { rows } from '../../src/db/database.ts';
import { ManualClock } from '../support/clock.ts';

/** Purchase, read, cancel and live events over HTTP: happy paths, errors, security. */
for (const engine of engines) {
  describe(`verification routes [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    // Time moves only when a test says so: deliveries and deadlines are driven, never waited for.
    const clock = new ManualClock();

    before(async () => {
      // The engine is driven by hand (tick) so every assertion sees a settled state.
      app = await startTestApp({ engine, worker: false, clock, env: { MAX_ACTIVE_VERIFICATIONS: '5', PURCHASES_PER_MINUTE: '1000' } });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    async function customer(funds: number): Promise<TestUser> {
      const user = await registerUser(app.url);
      if (funds > 0) {
        const credit = await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: funds, reason: 'test funds' });
        assert.equal(credit.status, 201);
      }
      // The history orders entries by time: let the top-up be earlier than what follows.
      clock.advance(1000);
      return user;
    }

    /** key null: no Idempotency-Key header at all. */
    const buy = (user: TestUser, body: unknown, key: string | null = randomUUID()) =>
      user.client.post('/v1/verifications', body, { headers: key === null ? {} : { 'idempotency-key': key } });

    const wallet = async (user: TestUser) => {
      const w = (await user.client.get('/v1/wallet')).body;
      return [w.balance_minor, w.held_minor, w.available_minor];
    };

    test('happy: buy test_success, the code arrives, the charge is exact and shown in the history', async () => {
      const user = await customer(1000);
      const bought = await buy(user, { service: 'test_success', country: 'US' }, 'buy-1');
      assert.equal(bought.status, 201);
      assert.equal(bought.headers.get('location'), `/v1/verifications/${bought.body.id}`);
      assert.equal(bought.body.state, 'waiting');
      assert.equal(bought.body.price_minor, 50);
      assert.equal(bought.body.can_cancel, true);
      assert.deepEqual(await wallet(user), [1000, 50, 950]);

      const replay = await buy(user, { service: 'test_success', country: 'US' }, 'buy-1');
      assert.equal(replay.status, 201);
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(replay.body.id, bought.body.id);

      // The sandbox delivers test_success 800 ms after the purchase.
      await app.server.runtime.engine.tick();
      assert.equal((await user.client.get(`/v1/verifications/${bought.body.id}`)).body.state, 'waiting');
      clock.advance(800);
      await app.server.runtime.engine.tick();
      const read = await user.client.get(`/v1/verifications/${bought.body.id}`);
      assert.equal(read.status, 200);
      assert.equal(read.body.state, 'received');
      assert.match(read.body.code, /^\d{6}$/);
      assert.equal(read.body.messages.length, 1);
      assert.equal(read.body.refunded, false);
      assert.equal(read.body.can_cancel, false);
      assert.deepEqual(
        read.body.events.map((e: { to: string }) => e.to),
        ['pending', 'waiting', 'received'],
      );
      assert.deepEqual(await wallet(user), [950, 0, 950]);

      const history = await user.client.get('/v1/wallet/transactions');
      assert.deepEqual(
        history.body.items.map((i: { type: string; amount_minor: number }) => [i.type, i.amount_minor]),
        [
          ['verification_charge', 0],
          ['verification_hold', -50],
          ['topup', 1000],
        ],
      );
      const notes = await user.client.get('/v1/notifications');
      assert.equal(notes.body.unread, 1);
      assert.equal(notes.body.items[0].kind, 'code_received');
      const read1 = await user.client.post(`/v1/notifications/${notes.body.items[0].id}/read`);
      assert.equal(read1.status, 200);
      assert.ok(read1.body.read_at);
      assert.equal((await user.client.get('/v1/notifications')).body.unread, 0);

      const list = await user.client.get('/v1/verifications?state=received');
      assert.deepEqual(
        list.body.items.map((v: { id: string }) => v.id),
        [bought.body.id],
      );
    });

    test('happy: cancel refunds exactly once; cancelling again answers the same verification', async () => {
      const user = await customer(200);
      const bought = await buy(user, { service: 'test_timeout' });
      assert.equal(bought.status, 201);
      const cancelled = await user.client.post(`/v1/verifications/${bought.body.id}/cancel`);
      assert.equal(cancelled.status, 200);
      assert.equal(cancelled.body.state, 'cancelled');
      assert.equal(cancelled.body.refunded, true);
      const again = await user.client.post(`/v1/verifications/${bought.body.id}/cancel`);
      assert.equal(again.status, 200);
      assert.equal(again.body.state, 'cancelled');
      assert.deepEqual(await wallet(user), [200, 0, 200]);
    });

    test('happy: a manual sandbox SMS is captured; cancelling the received verification is refused with the code', async () => {
      const user = await customer(200);
      const bought = await buy(user, { service: 'test_timeout' });
      const sms = await user.client.post('/v1/sandbox/sms', { phone_number: bought.body.phone_number, text: 'Your code is 424242' });
      assert.equal(sms.status, 200);
      assert.equal(sms.body.state, 'received');
      assert.equal(sms.body.code, '424242');
      const refused = await user.client.post(`/v1/verifications/${bought.body.id}/cancel`);
      assertProblem(refused, 409, 'invalid_state');
      assert.equal(refused.body.verification.code, '424242');
      assert.match(refused.body.detail, /424242/);
      assert.deepEqual(await wallet(user), [150, 0, 150]);
    });

    test('happy: the event stream delivers the code without polling', { timeout: 30_000 }, async () => {
      const user = await customer(200);
      const bought = await buy(user, { service: 'test_timeout' });
      const stream = await openEventStream(app.url, user.token);
      const next = stream.next;
      await next('ready', () => true);
      await user.client.post('/v1/sandbox/sms', { verification_id: bought.body.id, text: 'code 777888' });
      const update = await next('verification', (v) => v.id === bought.body.id && v.state === 'received');
      assert.equal(update.code, '777888');
      const note = await next('notification', (n) => n.kind === 'code_received');
      assert.equal(note.verification_id, bought.body.id);
      stream.close();
    });

    test('errors: no key 400, bad key 400, reused key 422, unknown service 422, price cap 422, no funds 402 — nothing stored', async () => {
      const user = await customer(40);
      assertProblem(await buy(user, { service: 'test_success' }, null), 400, 'idempotency_key_missing');
      assertProblem(await buy(user, { service: 'test_success' }, 'has space'), 400, 'validation_failed');
      assertProblem(await buy(user, { service: 'test_success' }, 'x'.repeat(256)), 400, 'validation_failed');
      assertProblem(await buy(user, { service: 'no_such_service' }), 422, 'unknown_service');
      assertProblem(await buy(user, { service: 'test_success', max_price_minor: 49 }), 422, 'price_exceeds_max');
      assertProblem(await buy(user, { service: 'test_success', extra: 1 }), 400, 'validation_failed');
      assertProblem(await buy(user, { service: 'test_success', max_price_minor: 1.5 }), 400, 'validation_failed');
      assertProblem(await buy(user, { service: 'test_success', country: 'usa' }), 400, 'validation_failed');
      const poor = await buy(user, { service: 'test_success' }, 'poor');
      assertProblem(poor, 402, 'insufficient_funds');
      const stored = await rows<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE user_id = ${user.id}`);
      assert.equal(stored[0]!.n, 0);
      assert.deepEqual(await wallet(user), [40, 0, 40]);

      // Same key, other request, once something is stored: 422 and nothing changes.
      await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: 100, reason: 'more' });
      assert.equal((await buy(user, { service: 'test_timeout' }, 'k')).status, 201);
      assertProblem(await buy(user, { service: 'test_success' }, 'k'), 422, 'idempotency_key_reused');
      assert.deepEqual(await wallet(user), [140, 50, 90]);
    });

    test('errors: a failed purchase says the customer was not charged, and replays the same way', async () => {
      const user = await customer(100);
      const failed = await buy(user, { service: 'test_no_numbers' }, 'nn');
      assertProblem(failed, 503, 'no_numbers');
      assert.match(failed.body.detail, /not charged/);
      const again = await buy(user, { service: 'test_no_numbers' }, 'nn');
      assertProblem(again, 503, 'no_numbers');
      assert.equal(again.body.verification_id, failed.body.verification_id);
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await wallet(user), [100, 0, 100]);
    });

    test('errors: at most MAX_ACTIVE_VERIFICATIONS at once (429 too_many_active)', async () => {
      const user = await customer(1000);
      for (let i = 0; i < 5; i++) assert.equal((await buy(user, { service: 'test_timeout' })).status, 201);
      const refused = await buy(user, { service: 'test_timeout' });
      assertProblem(refused, 429, 'too_many_active');
      assert.deepEqual(await wallet(user), [1000, 250, 750]);
      // Retry-After: until the soonest active verification's deadline, when a place frees up.
      const deadlines = (await user.client.get('/v1/verifications')).body.items.map((v: { expires_at: string }) => Date.parse(v.expires_at));
      const expected = Math.ceil((Math.min(...deadlines) - clock.now().getTime()) / 1000);
      assert.ok(expected > 1);
      assert.equal(refused.headers.get('retry-after'), String(expected));
      assert.equal(refused.body.retry_after_seconds, expected);
      clock.advance(30_000);
      assert.equal((await buy(user, { service: 'test_timeout' })).headers.get('retry-after'), String(expected - 30));
    });

    test("security: another customer's verification is 404 for read, cancel and sandbox SMS; no auth is 401", async () => {
      const owner = await customer(100);
      const other = await customer(100);
      const bought = await buy(owner, { service: 'test_timeout' });
      assertProblem(await other.client.get(`/v1/verifications/${bought.body.id}`), 404, 'not_found');
      assertProblem(await other.client.post(`/v1/verifications/${bought.body.id}/cancel`), 404, 'not_found');
      assertProblem(await other.client.post('/v1/sandbox/sms', { verification_id: bought.body.id, text: 'code 1234' }), 404, 'not_found');
      assert.deepEqual((await other.client.get('/v1/verifications')).body.items, []);
      assertProblem(await call(app.url, 'GET', `/v1/verifications/${bought.body.id}`), 401, 'unauthenticated');
      assertProblem(await call(app.url, 'POST', '/v1/verifications', { body: { service: 'test_success' }, headers: { 'idempotency-key': 'z' } }), 401, 'unauthenticated');
      assertProblem(await call(app.url, 'GET', '/v1/events'), 401, 'unauthenticated');
      assertProblem(await other.client.get('/v1/admin/verifications'), 403, 'forbidden');
      const read = await owner.client.get(`/v1/verifications/${bought.body.id}`);
      assert.equal(read.body.state, 'waiting');
      assert.deepEqual(await wallet(owner), [100, 50, 50]);
      assert.deepEqual(await wallet(other), [100, 0, 100]);
      const search = await admin.client.get(`/v1/admin/verifications?email=${encodeURIComponent(owner.email)}`);
      assert.equal(search.status, 200);
      assert.deepEqual(
        search.body.items.map((v: { id: string; user_email: string }) => [v.id, v.user_email]),
        [[bought.body.id, owner.email]],
      );
    });

    test('security: the sandbox route and the webhook receiver exist only for their provider', async () => {
      const user = await customer(0);
      const hook = await call(app.url, 'POST', '/webhooks/providers/textverified', { body: { id: 'x' } });
      assertProblem(hook, 404, 'not_found');
      assertProblem(await user.client.get('/v1/services?country=usa'), 400, 'validation_failed');
      const services = await user.client.get('/v1/services?country=US');
      assert.equal(services.status, 200);
      assert.ok(services.body.services.some((s: { service: string; price_minor: number }) => s.service === 'test_success' && s.price_minor === 50));
      assert.ok(services.body.services.every((s: { country: string }) => s.country === 'US'));
    });
  });
}
