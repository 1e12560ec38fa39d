import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { login, type TestUser } from '../support/http.ts';
import { assertJson, assertText, protocolCustomer, walletOf } from '../support/handler-api.ts';

/** `operator` and `areas` on getNumber / getNumberV2: priced, checked, refused with the protocol's words. */
for (const engine of engines) {
  describe(`SMS-Activate protocol: operator and areas [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    const clock = new ManualClock();

    before(async () => {
      app = await startTestApp({ engine, worker: false, clock, env: { MAX_ACTIVE_VERIFICATIONS: '50', PURCHASES_PER_MINUTE: '1000' } });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    test('operator: the carrier surcharge is held; getNumberV2 names the operator asked for', async () => {
      const c = await protocolCustomer(app, admin, 1000);
      const answer = assertJson(await c.call({ action: 'getNumberV2', service: 'wa', country: '12', operator: 'tmo' }));
      assert.equal(answer.activationOperator, 'tmo');
      assert.equal(answer.activationCost, 1.4);
      assert.deepEqual(await walletOf(c.user), [1000, 140, 860]);
      const got = assertText(await c.call({ action: 'getNumber', service: 'tg', operator: 'att,vz', areas: '415' }), /^ACCESS_NUMBER:\d+:1415\d{7}$/);
      assert.ok(got);
      assert.deepEqual(await walletOf(c.user), [1000, 140 + 110 + 20 + 20, 860 - 150]);
      assert.equal(assertJson(await c.call({ action: 'getNumberV2', service: 'wa', operator: 'any' })).activationOperator, 'any');
    });

    test('refusals store nothing: an operator the upstream lacks, a malformed one, a malformed area; a mismatched number is not sold', async () => {
      const c = await protocolCustomer(app, admin, 500);
      assertText(await c.call({ action: 'getNumber', service: 'wa', operator: 'megafon' }), 'WRONG_OPERATOR');
      assertText(await c.call({ action: 'getNumber', service: 'wa', operator: 'a b' }), 'WRONG_OPERATOR');
      assertText(await c.call({ action: 'getNumber', service: 'wa', areas: '12' }), 'BAD_AREA_CODE');
      assertText(await c.call({ action: 'getNumber', service: 'wa', country: '16', areas: '212' }), 'WRONG_OPERATOR');
      assert.deepEqual(await walletOf(c.user), [500, 0, 500]);
      assert.equal((await c.user.client.get('/v1/verifications')).body.items.length, 0);

      assertText(await c.call({ action: 'getNumber', service: 'testmismatch', areas: '212' }), 'NO_NUMBERS');
      assert.deepEqual(await walletOf(c.user), [500, 0, 500]);
      const [failed] = (await c.user.client.get('/v1/verifications')).body.items;
      assert.equal(failed.state, 'failed');
      assert.equal(failed.refunded, true);
    });
  });
}
