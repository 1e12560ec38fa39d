import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, login, registerUser, type TestUser } from '../support/http.ts';
import { rows } from '../../src/db/database.ts';
import { ManualClock } from '../support/clock.ts';

/**
 * Number care over HTTP: another code on the same number, reporting a bad number, presets, the
 * low-balance threshold and its notice. Happy paths, errors, another customer's resources (404).
 */
for (const engine of engines) {
  describe(`number care routes [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    const clock = new ManualClock();

    before(async () => {
      app = await startTestApp({ engine, worker: false, clock, env: { PURCHASES_PER_MINUTE: '1000', REPORTS_PER_DAY: '2' } });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    async function customer(funds: number): Promise<TestUser> {
      const user = await registerUser(app.url);
      if (funds > 0) assert.equal((await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: funds, reason: 'test funds' })).status, 201);
      clock.advance(1000);
      return user;
    }
    const wallet = async (user: TestUser) => {
      const w = (await user.client.get('/v1/wallet')).body;
      return [w.balance_minor, w.held_minor, w.available_minor];
    };
    const tick = () => app.server.runtime.engine.tick();
    const buy = (user: TestUser, service: string) => user.client.post('/v1/verifications', { service, country: 'US' }, { headers: { 'idempotency-key': randomUUID() } });

    test('another code: 201 with a free child on the same number; replay; refused before a code; 404 for others', async () => {
      const user = await customer(1000);
      const bought = await buy(user, 'test_success');
      assert.equal(bought.status, 201);
      const early = await user.client.post(`/v1/verifications/${bought.body.id}/another-code`, undefined, { headers: { 'idempotency-key': randomUUID() } });
      assertProblem(early, 409, 'invalid_state');
      const missingKey = await user.client.post(`/v1/verifications/${bought.body.id}/another-code`);
      assertProblem(missingKey, 400, 'idempotency_key_missing');

      clock.advance(2_000);
      await tick();
      const key = randomUUID();
      const child = await user.client.post(`/v1/verifications/${bought.body.id}/another-code`, undefined, { headers: { 'idempotency-key': key } });
      assert.equal(child.status, 201);
      assert.deepEqual([child.body.parent_id, child.body.phone_number, child.body.price_minor, child.body.state], [bought.body.id, bought.body.phone_number, 0, 'waiting']);
      assert.equal(child.headers.get('location'), `/v1/verifications/${child.body.id}`);
      const replay = await user.client.post(`/v1/verifications/${bought.body.id}/another-code`, undefined, { headers: { 'idempotency-key': key } });
      assert.deepEqual([replay.status, replay.body.id, replay.headers.get('idempotent-replayed')], [201, child.body.id, 'true']);

      clock.advance(2_000);
      await tick();
      const got = await user.client.get(`/v1/verifications/${child.body.id}`);
      assert.equal(got.body.state, 'received');
      assert.ok(got.body.code);
      assert.deepEqual(await wallet(user), [950, 0, 950]);

      const stranger = await customer(0);
      const theirs = await stranger.client.post(`/v1/verifications/${bought.body.id}/another-code`, undefined, { headers: { 'idempotency-key': randomUUID() } });
      assertProblem(theirs, 404, 'not_found');
    });

    test('report: 201 then 200 for the same verification; 404 for others; 429 with Retry-After beyond the daily limit', async () => {
      const user = await customer(1000);
      const a = await buy(user, 'test_timeout');
      const first = await user.client.post(`/v1/verifications/${a.body.id}/report`, { reason: 'code_not_received' });
      assert.equal(first.status, 201);
      assert.deepEqual([first.body.upstream, first.body.refund, first.body.verification_id], ['cancelled', 'none', a.body.id]);
      assert.deepEqual(await wallet(user), [1000, 0, 1000]);
      const again = await user.client.post(`/v1/verifications/${a.body.id}/report`, { reason: 'code_not_received' });
      assert.equal(again.status, 200);
      assertProblem(await user.client.post(`/v1/verifications/${a.body.id}/report`, { reason: 'nonsense' }), 400, 'validation_failed');
      const stranger = await customer(0);
      assertProblem(await stranger.client.post(`/v1/verifications/${a.body.id}/report`, { reason: 'code_not_received' }), 404, 'not_found');

      const b = await buy(user, 'test_timeout');
      assert.equal((await user.client.post(`/v1/verifications/${b.body.id}/report`, { reason: 'number_rejected' })).status, 201);
      const c = await buy(user, 'test_timeout');
      const over = await user.client.post(`/v1/verifications/${c.body.id}/report`, { reason: 'number_rejected' });
      assertProblem(over, 429, 'rate_limited');
      assert.ok(Number(over.headers.get('retry-after')) > 0);
      const still = await user.client.get(`/v1/verifications/${c.body.id}`);
      assert.equal(still.body.state, 'waiting', 'a refused report changes nothing');
    });

    test('presets: create, list favourites first, update, delete; names unique per customer; others see 404', async () => {
      const user = await customer(0);
      const wa = await user.client.post('/v1/presets', { name: 'WhatsApp NY', service: 'whatsapp', country: 'US', area_code: '212', carrier: 'tmo' });
      assert.equal(wa.status, 201);
      assert.deepEqual([wa.body.area_code, wa.body.carrier, wa.body.favourite], ['212', 'tmo', false]);
      const tg = await user.client.post('/v1/presets', { name: 'Telegram', service: 'telegram', country: 'GB', favourite: true });
      assert.equal(tg.status, 201);
      assertProblem(await user.client.post('/v1/presets', { name: 'Telegram', service: 'telegram', country: 'GB' }), 400, 'validation_failed');
      assertProblem(await user.client.post('/v1/presets', { name: 'x', service: 'telegram', country: 'gb' }), 400, 'validation_failed');

      let list = await user.client.get('/v1/presets');
      assert.deepEqual(list.body.items.map((p: { name: string }) => p.name), ['Telegram', 'WhatsApp NY']);
      const fav = await user.client.request('PATCH', `/v1/presets/${wa.body.id}`, { body: { favourite: true, area_code: null } });
      assert.deepEqual([fav.status, fav.body.favourite, fav.body.area_code], [200, true, null]);

      const stranger = await customer(0);
      assertProblem(await stranger.client.request('PATCH', `/v1/presets/${wa.body.id}`, { body: { favourite: false } }), 404, 'not_found');
      assertProblem(await stranger.client.delete(`/v1/presets/${wa.body.id}`), 404, 'not_found');
      assert.deepEqual((await stranger.client.get('/v1/presets')).body.items, []);

      assert.equal((await user.client.delete(`/v1/presets/${tg.body.id}`)).status, 204);
      list = await user.client.get('/v1/presets');
      assert.deepEqual(list.body.items.map((p: { name: string }) => p.name), ['WhatsApp NY']);
      const exported = await user.client.get('/v1/account/export');
      assert.deepEqual([exported.body.presets.map((p: { name: string }) => p.name), exported.body.number_reports, exported.body.low_balance_threshold_minor], [['WhatsApp NY'], [], null]);
    });

    test('low balance: one notice per crossing below the threshold, re-armed when the balance comes back', async () => {
      const user = await customer(200);
      assert.deepEqual((await user.client.get('/v1/account/low-balance')).body, { threshold_minor: null });
      assertProblem(await user.client.request('PUT', '/v1/account/low-balance', { body: { threshold_minor: -5 } }), 400, 'validation_failed');
      assert.deepEqual((await user.client.request('PUT', '/v1/account/low-balance', { body: { threshold_minor: 120 } })).body, { threshold_minor: 120 });
      const notices = async () =>
        (await rows<{ body: string }>(app.ctx.database.db, sql`SELECT body FROM notifications WHERE user_id = ${user.id} AND kind = 'low_balance' ORDER BY created_at`)).map((n) => n.body);

      await tick();
      assert.deepEqual(await notices(), [], 'available 200 is above 120');
      // Two purchases of 50: 150, then 100 available — below 120 once.
      await buy(user, 'test_timeout');
      await tick();
      await buy(user, 'test_timeout');
      await tick();
      await tick();
      assert.deepEqual(await notices(), ['Your available balance is 1.00 USD, below the 1.20 USD you set.']);
      // The holds are released at the deadline: back to 200, re-armed; a new crossing raises a second notice.
      clock.advance(1_300_000);
      await tick();
      await tick();
      assert.deepEqual(await wallet(user), [200, 0, 200]);
      await buy(user, 'test_timeout');
      await buy(user, 'test_timeout');
      await tick();
      assert.equal((await notices()).length, 2);
      const listed = await user.client.get('/v1/notifications');
      assert.ok(listed.body.items.some((n: { kind: string }) => n.kind === 'low_balance'));

      assert.deepEqual((await user.client.request('PUT', '/v1/account/low-balance', { body: { threshold_minor: null } })).body, { threshold_minor: null });
    });
  });
}
