import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, login, registerUser, type TestUser } from '../support/http.ts';
import { ManualClock } from '../support/clock.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';

/**
 * Area code, carrier and voice over HTTP on the sandbox: the surcharge is part of the hold and of the
 * charge; a number outside the request fails the purchase, refunded in full; refused options store
 * nothing. Sandbox prices: test_success 50 (cost 25), whatsapp 120 (cost 60); upstream surcharges
 * area code 10, carrier 10, voice 20, sold with the offer's own margin (×2).
 */
for (const engine of engines) {
  describe(`number options [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    const clock = new ManualClock();

    before(async () => {
      app = await startTestApp({ engine, worker: false, clock, env: { MAX_ACTIVE_VERIFICATIONS: '50', PURCHASES_PER_MINUTE: '1000' } });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    async function customer(funds: number): Promise<TestUser> {
      const user = await registerUser(app.url);
      const credit = await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: funds, reason: 'test funds' });
      assert.equal(credit.status, 201);
      clock.advance(1000);
      return user;
    }
    const buy = (user: TestUser, body: unknown, key: string = randomUUID()) => user.client.post('/v1/verifications', body, { headers: { 'idempotency-key': key } });
    const wallet = async (user: TestUser) => {
      const w = (await user.client.get('/v1/wallet')).body;
      return [w.balance_minor, w.held_minor, w.available_minor];
    };
    async function deliver(user: TestUser, id: string) {
      clock.advance(1000);
      await app.server.runtime.engine.tick();
      return (await user.client.get(`/v1/verifications/${id}`)).body;
    }

    test('area code and carrier: the number is in the area code asked for; the surcharge is held, then captured', async () => {
      const user = await customer(1000);
      const bought = await buy(user, { service: 'test_success', country: 'US', area_codes: ['415', '212'], carriers: ['TMO'] }, 'ac-1');
      assert.equal(bought.status, 201);
      assert.equal(bought.body.price_minor, 50 + 20 + 20);
      assert.deepEqual(bought.body.options, { area_codes: ['212', '415'], carriers: ['tmo'], capability: 'sms' });
      assert.match(bought.body.phone_number, /^1212\d{7}$/);
      assert.deepEqual(await wallet(user), [1000, 90, 910]);

      // The same request in another order is the same request; another area code under the key is not.
      const replay = await buy(user, { service: 'test_success', country: 'US', area_codes: ['212', '415', '212'], carriers: ['tmo'] }, 'ac-1');
      assert.equal(replay.status, 201);
      assert.equal(replay.body.id, bought.body.id);
      assertProblem(await buy(user, { service: 'test_success', country: 'US', area_codes: ['305'], carriers: ['tmo'] }, 'ac-1'), 422, 'idempotency_key_reused');

      const received = await deliver(user, bought.body.id);
      assert.equal(received.state, 'received');
      assert.deepEqual(await wallet(user), [910, 0, 910]);
    });

    test('voice: the code of a call is captured like an SMS code, with the voice surcharge', async () => {
      const user = await customer(500);
      const bought = await buy(user, { service: 'test_success', capability: 'voice' });
      assert.equal(bought.status, 201);
      assert.equal(bought.body.price_minor, 50 + 40);
      assert.equal(bought.body.options.capability, 'voice');
      assert.deepEqual(await wallet(user), [500, 90, 410]);
      const received = await deliver(user, bought.body.id);
      assert.equal(received.state, 'received');
      assert.match(received.messages[0].text, /^Voice call transcript: .* (\d{6})$/);
      assert.equal(received.code, /(\d{6})$/.exec(received.messages[0].text)![1]);
      assert.deepEqual(await wallet(user), [410, 0, 410]);
    });

    test('a mismatched number is a definite failure: cancelled upstream, the hold released in full, nothing charged', async () => {
      const user = await customer(300);
      const bought = await buy(user, { service: 'test_mismatch', area_codes: ['617'] });
      assertProblem(bought, 503, 'no_numbers');
      assert.match(bought.body.detail, /area code 201 is not one of 617.*not charged/);
      const id = bought.body.verification_id;
      const row = (await user.client.get(`/v1/verifications/${id}`)).body;
      assert.equal(row.state, 'failed');
      assert.equal(row.refunded, true);
      assert.deepEqual(await wallet(user), [300, 0, 300]);
      const stored = (await loadVerification(app.ctx.database.db, id))!;
      assert.equal(stored.upstreamStatus, 'cancelled');
      assert.match(stored.providerOrderId!, /^sbx-test_mismatch:/);
    });

    test('no numbers in the area code: not charged; options the provider cannot honour: refused, nothing stored', async () => {
      const user = await customer(300);
      assertProblem(await buy(user, { service: 'whatsapp', area_codes: ['999'] }), 503, 'no_numbers');
      assert.deepEqual(await wallet(user), [300, 0, 300]);

      assertProblem(await buy(user, { service: 'whatsapp', country: 'GB', area_codes: ['212'] }), 422, 'option_not_offered');
      assertProblem(await buy(user, { service: 'whatsapp', carriers: ['verizon-nope'] }), 422, 'option_not_offered');
      assertProblem(await buy(user, { service: 'whatsapp', country: 'GB', capability: 'voice' }), 422, 'option_not_offered');
      assertProblem(await buy(user, { service: 'whatsapp', area_codes: ['112'] }), 400, 'validation_failed');
      assertProblem(await buy(user, { service: 'whatsapp', area_codes: Array.from({ length: 11 }, (_, i) => String(200 + i)) }), 400, 'validation_failed');
      assert.equal((await user.client.get('/v1/verifications')).body.items.length, 1, 'only the no-numbers purchase was stored');
      assert.deepEqual(await wallet(user), [300, 0, 300]);

      // The price with options is what max_price_minor is compared with.
      assertProblem(await buy(user, { service: 'whatsapp', area_codes: ['212'], max_price_minor: 139 }), 422, 'price_exceeds_max');
      const ok = await buy(user, { service: 'whatsapp', area_codes: ['212'], max_price_minor: 140 });
      assert.equal(ok.status, 201);
      assert.deepEqual(await wallet(user), [300, 140, 160]);
    });

    test('GET /v1/area-codes lists area codes, carriers, voice and the surcharges of a service', async () => {
      const user = await customer(0 + 1);
      const listed = await user.client.get('/v1/area-codes?service=whatsapp&country=US');
      assert.equal(listed.status, 200);
      assert.equal(listed.body.can_choose_area_code, true);
      assert.ok(listed.body.area_codes.some((a: { area_code: string; region: string }) => a.area_code === '212' && a.region === 'NY'));
      assert.deepEqual(listed.body.carriers, ['att', 'tmo', 'vz']);
      assert.equal(listed.body.voice, true);
      assert.deepEqual(listed.body.surcharge_minor, { area_code: 20, carrier: 20, voice: 40 });

      const gb = await user.client.get('/v1/area-codes?country=GB');
      assert.equal(gb.status, 200);
      assert.equal(gb.body.can_choose_area_code, false);
      assert.deepEqual(gb.body.area_codes, []);
      assert.deepEqual(gb.body.surcharge_minor, { area_code: null, carrier: null, voice: null });
      assertProblem(await user.client.get('/v1/area-codes?service=nope'), 422, 'unknown_service');

      const services = await user.client.get('/v1/services?country=US');
      assert.ok(services.body.services.every((s: { voice: boolean }) => s.voice === true));
      const gbServices = await user.client.get('/v1/services?country=GB');
      assert.ok(gbServices.body.services.every((s: { voice: boolean }) => s.voice === false));
    });
  });
}
