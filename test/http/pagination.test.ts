import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ManualClock } from '../support/clock.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, login, registerUser, type ApiResponse, type TestUser } from '../support/http.ts';

/**
 * Every list route pages the same way: newest first, `cursor` = the previous page's next_cursor.
 * Walking a list one row at a time yields every row once, in order, even when rows share their
 * timestamp; a cursor this API did not give out is a 400 naming `cursor`, never a failed query.
 */
const cursorOf = (text: string) => Buffer.from(text).toString('base64url');

const BAD_CURSORS = {
  'id part not a UUID': cursorOf('2026-01-01T00:00:00.000Z|not-a-uuid'),
  'date beyond the timestamptz range': cursorOf(`+275760-09-13T00:00:00.000Z|${randomUUID()}`),
  'date before the timestamptz range': cursorOf(`-271821-04-20T00:00:00.000Z|${randomUUID()}`),
  'no date': cursorOf(`|${randomUUID()}`),
  'not a cursor at all': 'bogus!',
};

for (const engine of engines) {
  describe(`pagination of every list route [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    let customer: TestUser;
    // Never advanced: every row below shares one timestamp, so only the id orders them.
    const clock = new ManualClock('2026-05-01T09:00:00Z');

    before(async () => {
      app = await startTestApp({ engine, worker: false, clock, env: { MAX_ACTIVE_VERIFICATIONS: '50', PURCHASES_PER_MINUTE: '1000' } });
      admin = await login(app.url, app.admin.email, app.admin.password);
      customer = await registerUser(app.url);
      for (let i = 0; i < 3; i++) await registerUser(app.url);
      assert.equal((await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 1000, reason: 'funds' })).status, 201);
      for (let i = 0; i < 4; i++) {
        const bought = await customer.client.post('/v1/verifications', { service: 'test_timeout' }, { headers: { 'idempotency-key': `page-${i}` } });
        assert.equal(bought.status, 201, bought.text);
        // Cancelled ones leave a refund notice and a release in the wallet history.
        if (i % 2 === 0) assert.equal((await customer.client.post(`/v1/verifications/${bought.body.id}/cancel`)).status, 200);
      }
    });
    after(() => app.close());

    const routes: { path: string; as: () => TestUser; limit: number; minimum: number }[] = [
      { path: '/v1/verifications', as: () => customer, limit: 100, minimum: 4 },
      { path: '/v1/wallet/transactions', as: () => customer, limit: 100, minimum: 7 },
      { path: '/v1/notifications', as: () => customer, limit: 100, minimum: 2 },
      { path: '/v1/admin/users', as: () => admin, limit: 200, minimum: 5 },
      { path: '/v1/admin/verifications', as: () => admin, limit: 100, minimum: 4 },
    ];

    for (const route of routes) {
      test(`${route.path}: one row at a time yields every row once, in the order of the whole list`, async () => {
        const client = route.as().client;
        const whole = await client.get(`${route.path}?limit=${route.limit}`);
        assert.equal(whole.status, 200, whole.text);
        assert.equal(whole.body.next_cursor, null);
        const expected = whole.body.items.map((item: { id: string }) => item.id);
        assert.ok(expected.length >= route.minimum, `${expected.length} rows`);
        const walked: string[] = [];
        let cursor: string | null = null;
        do {
          const page: ApiResponse = await client.get(`${route.path}?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
          assert.equal(page.status, 200, page.text);
          assert.ok(page.body.items.length <= 1);
          walked.push(...page.body.items.map((item: { id: string }) => item.id));
          cursor = page.body.next_cursor;
        } while (cursor && walked.length <= expected.length);
        assert.deepEqual(walked, expected);
      });

      test(`${route.path}: a cursor it did not give out is 400 validation_failed naming cursor`, async () => {
        const client = route.as().client;
        for (const [what, cursor] of Object.entries(BAD_CURSORS)) {
          const response = await client.get(`${route.path}?cursor=${encodeURIComponent(cursor)}`);
          assertProblem(response, 400, 'validation_failed');
          assert.deepEqual(
            response.body.issues.map((i: { in: string; path: string }) => `${i.in} ${i.path}`),
            ['querystring /cursor'],
            `${what}: ${response.text}`,
          );
          assert.match(response.body.detail, /cursor/, what);
        }
      });
    }
  });
}
