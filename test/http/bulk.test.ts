import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, login, registerUser, type TestUser } from '../support/http.ts';
import { ManualClock } from '../support/clock.ts';
import { rows } from '../../src/db/database.ts';

/**
 * POST /v1/verifications/bulk: the whole set held in one step, each number its own verification,
 * failed ones released at once, retries give the same set; exact wallet amounts after each step.
 */
for (const engine of engines) {
  describe(`bulk purchase [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    const clock = new ManualClock();

    before(async () => {
      app = await startTestApp({ engine, worker: false, clock, env: { MAX_ACTIVE_VERIFICATIONS: '200', PURCHASES_PER_MINUTE: '10000' } });
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
    const bulk = (user: TestUser, body: unknown, key: string | null = randomUUID()) =>
      user.client.post('/v1/verifications/bulk', body, { headers: key === null ? {} : { 'idempotency-key': key } });
    const wallet = async (user: TestUser) => {
      const w = (await user.client.get('/v1/wallet')).body;
      return [w.balance_minor, w.held_minor, w.available_minor];
    };
    const countOf = async (user: TestUser) =>
      Number((await rows<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE user_id = ${user.id}`))[0]!.n);

    test('happy: every number held and bought; a retry returns the same set; captures are exact', async () => {
      const user = await customer(1000);
      const first = await bulk(user, { service: 'test_success', country: 'US', quantity: 3, area_codes: ['305'] }, 'bulk-1');
      assert.equal(first.status, 200);
      assert.equal(first.headers.get('idempotent-replayed'), null);
      assert.deepEqual(first.body.items.map((i: { index: number; status: number }) => [i.index, i.status]), [[0, 201], [1, 201], [2, 201]]);
      for (const item of first.body.items) {
        assert.equal(item.error, null);
        assert.equal(item.verification.state, 'waiting');
        assert.equal(item.verification.price_minor, 70);
        assert.match(item.verification.phone_number, /^1305/);
      }
      assert.equal(new Set(first.body.items.map((i: { verification: { id: string } }) => i.verification.id)).size, 3);
      assert.deepEqual(await wallet(user), [1000, 210, 790]);

      const again = await bulk(user, { service: 'test_success', country: 'US', quantity: 3, area_codes: ['305'] }, 'bulk-1');
      assert.equal(again.status, 200);
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(
        again.body.items.map((i: { verification: { id: string } }) => i.verification.id),
        first.body.items.map((i: { verification: { id: string } }) => i.verification.id),
      );
      assert.equal(await countOf(user), 3);
      assert.deepEqual(await wallet(user), [1000, 210, 790]);

      // Another body under the same key (another quantity too) changes nothing.
      assertProblem(await bulk(user, { service: 'test_success', country: 'US', quantity: 4, area_codes: ['305'] }, 'bulk-1'), 422, 'idempotency_key_reused');
      assertProblem(await bulk(user, { service: 'test_success', country: 'US', quantity: 3 }, 'bulk-1'), 422, 'idempotency_key_reused');
      assert.equal(await countOf(user), 3);

      clock.advance(1000);
      await app.server.runtime.engine.tick();
      assert.deepEqual(await wallet(user), [790, 0, 790]);
    });

    test('failed numbers are released at once; the others stay held; the replay answers the same outcomes', async () => {
      const user = await customer(500);
      const first = await bulk(user, { service: 'test_alternate', quantity: 3 }, 'bulk-alt');
      assert.equal(first.status, 200);
      const statuses = first.body.items.map((i: { status: number }) => i.status).sort();
      assert.deepEqual(statuses, [201, 201, 503]);
      const failed = first.body.items.find((i: { status: number }) => i.status === 503);
      assert.equal(failed.error.code, 'no_numbers');
      assert.equal(failed.verification.state, 'failed');
      assert.equal(failed.verification.refunded, true);
      assert.deepEqual(await wallet(user), [500, 100, 400]);

      const again = await bulk(user, { service: 'test_alternate', quantity: 3 }, 'bulk-alt');
      assert.deepEqual(
        again.body.items.map((i: { status: number; verification: { id: string } }) => [i.status, i.verification.id]),
        first.body.items.map((i: { status: number; verification: { id: string } }) => [i.status, i.verification.id]),
      );
      assert.deepEqual(await wallet(user), [500, 100, 400]);
    });

    test('the whole set or nothing: too little for the total is 402 and stores nothing; quantity and key are checked', async () => {
      const user = await customer(149);
      assertProblem(await bulk(user, { service: 'test_success', quantity: 3 }), 402, 'insufficient_funds');
      assert.equal(await countOf(user), 0);
      assert.deepEqual(await wallet(user), [149, 0, 149]);
      assertProblem(await bulk(user, { service: 'test_success', quantity: 0 }), 400, 'validation_failed');
      assertProblem(await bulk(user, { service: 'test_success', quantity: 51 }), 400, 'validation_failed');
      assertProblem(await bulk(user, { service: 'test_success', quantity: 1 }, null), 400, 'idempotency_key_missing');
      assertProblem(await bulk(user, { service: 'test_success', quantity: 1, carriers: ['nope'] }), 422, 'option_not_offered');
      assert.equal(await countOf(user), 0);
      assert.deepEqual(await wallet(user), [149, 0, 149]);
    });

    test('two identical bulk requests at once make one set', async () => {
      const user = await customer(2000);
      const body = { service: 'test_success', quantity: 5 };
      const answers = await Promise.all([bulk(user, body, 'bulk-race'), bulk(user, body, 'bulk-race')]);
      for (const a of answers) assert.ok(a.status === 200 || (a.status === 409 && a.body.code === 'idempotency_in_progress'), `${a.status}`);
      assert.ok(answers.some((a) => a.status === 200));
      assert.equal(await countOf(user), 5);
      assert.deepEqual(await wallet(user), [2000, 250, 1750]);
      const settled = await bulk(user, body, 'bulk-race');
      assert.equal(settled.status, 200);
      const ids = settled.body.items.map((i: { verification: { id: string } }) => i.verification.id);
      for (const a of answers.filter((x) => x.status === 200)) {
        assert.deepEqual(a.body.items.map((i: { verification: { id: string } }) => i.verification.id), ids);
      }
    });
  });
}
