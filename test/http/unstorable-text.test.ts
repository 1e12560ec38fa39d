import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { firstRow } from '../../src/db/database.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, call, login, registerUser, type ApiResponse, type TestUser } from '../support/http.ts';

/**
 * PostgreSQL text cannot hold U+0000, and jsonb refuses an unpaired surrogate. Wherever a client
 * puts one — a body field or key, a query parameter, a path parameter, a cookie — the answer is 400
 * validation_failed naming that field, never a 500, and nothing is written.
 */
const NUL = '\u0000';
const NUL_MESSAGE = 'must not contain a NUL character (U+0000)';
const SURROGATE_MESSAGE = 'must be valid Unicode: it contains an unpaired surrogate (U+D800-U+DFFF)';

interface Snapshot {
  transfers: number;
  users: number;
  keys: number;
  verifications: number;
  messages: number;
}

async function snapshot(app: TestApp): Promise<Snapshot> {
  const row = await firstRow<Snapshot>(
    app.ctx.database.db,
    sql`SELECT (SELECT count(*)::int FROM ledger_transfers) AS transfers, (SELECT count(*)::int FROM users) AS users,
               (SELECT count(*)::int FROM api_keys) AS keys, (SELECT count(*)::int FROM verifications) AS verifications,
               (SELECT count(*)::int FROM verification_messages) AS messages`,
  );
  return row!;
}

function assertNamesField(response: ApiResponse, where: string, path: string, message = NUL_MESSAGE): void {
  assertProblem(response, 400, 'validation_failed');
  assert.deepEqual(response.body.issues, [{ in: where, path, message }], response.text);
  assert.ok(response.body.detail.startsWith(`${where}${path === '/' ? '' : path}:`), response.body.detail);
}

for (const engine of engines) {
  describe(`a NUL byte in any field is 400 validation_failed naming it [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    let customer: TestUser;
    let verificationId: string;
    before(async () => {
      app = await startTestApp({ engine, env: { SANDBOX_DELAY_MS: '3600000' } });
      admin = await login(app.url, app.admin.email, app.admin.password);
      customer = await registerUser(app.url);
      const credited = await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 1000, reason: 'float' });
      assert.equal(credited.status, 201, credited.text);
      const bought = await customer.client.post('/v1/verifications', { service: 'whatsapp' }, { headers: { 'idempotency-key': 'nul-1' } });
      assert.equal(bought.status, 201, bought.text);
      verificationId = bought.body.id;
    });
    after(() => app.close());

    test('bodies: login email, register password, API-key name, credit reason, purchase service, sandbox SMS text, reconcile user', async () => {
      const before = await snapshot(app);
      const wallet = (await customer.client.get('/v1/wallet')).body;
      assertNamesField(await call(app.url, 'POST', '/v1/auth/login', { body: { email: `a${NUL}@example.test`, password: 'whatever-pw' } }), 'body', '/email');
      assertNamesField(
        await call(app.url, 'POST', '/v1/auth/register', { body: { email: 'nul-register@example.test', password: `long-enough${NUL}` } }),
        'body',
        '/password',
      );
      assertNamesField(await customer.client.post('/v1/api-keys', { name: `script${NUL}` }), 'body', '/name');
      assertNamesField(await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 5, reason: `typo${NUL}` }), 'body', '/reason');
      assertNamesField(
        await customer.client.post('/v1/verifications', { service: `whats${NUL}app` }, { headers: { 'idempotency-key': 'nul-2' } }),
        'body',
        '/service',
      );
      assertNamesField(await customer.client.post('/v1/sandbox/sms', { verification_id: verificationId, text: `code 123${NUL}456` }), 'body', '/text');
      assertNamesField(await admin.client.post('/v1/admin/reconcile', { days: 1, execute: true, user: `x${NUL}@example.test` }), 'body', '/user');
      // Keys too, at any depth, with the pointer escaped so the answer stays readable.
      assertNamesField(await admin.client.post('/v1/admin/reconcile', { days: 1, execute: false, [`us${NUL}er`]: 'x' }), 'body', '/us\\u0000er');
      assert.deepEqual(await snapshot(app), before);
      assert.deepEqual((await customer.client.get('/v1/wallet')).body, wallet);
    });

    test('an unpaired surrogate, which jsonb refuses: the reconcile filter (written to the audit log), a key, a name', async () => {
      const before = await snapshot(app);
      const audits = async () =>
        (await firstRow<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM audit_log`))!.n;
      const auditRows = await audits();
      // JSON.stringify keeps a lone surrogate as the escape \ud800, exactly what a client sends.
      assertNamesField(await admin.client.post('/v1/admin/reconcile', { days: 1, execute: true, user: 'x\ud800@example.test' }), 'body', '/user', SURROGATE_MESSAGE);
      assertNamesField(await customer.client.post('/v1/api-keys', { name: 'tail\udfff' }), 'body', '/name', SURROGATE_MESSAGE);
      assertNamesField(await admin.client.post('/v1/admin/reconcile', { days: 1, execute: false, ['k\ud800']: 1 }), 'body', '/k\\ud800', SURROGATE_MESSAGE);
      // A well-formed pair (an emoji) is fine.
      const emoji = await customer.client.post('/v1/api-keys', { name: 'script \ud83d\ude80' });
      assert.equal(emoji.status, 201, emoji.text);
      assert.equal(emoji.body.name, 'script 🚀');
      assert.equal(await audits(), auditRows + 1, 'only the key that was created is audited');
      assert.deepEqual({ ...(await snapshot(app)), keys: before.keys }, before);
    });

    test('query strings: the admin list filters and the customer lists', async () => {
      const encoded = encodeURIComponent(`a${NUL}b`);
      assertNamesField(await admin.client.get(`/v1/admin/users?query=${encoded}`), 'querystring', '/query');
      assertNamesField(await admin.client.get(`/v1/admin/verifications?email=${encoded}`), 'querystring', '/email');
      assertNamesField(await admin.client.get(`/v1/admin/verifications?service=${encoded}`), 'querystring', '/service');
      assertNamesField(await customer.client.get(`/v1/verifications?cursor=${encoded}`), 'querystring', '/cursor');
      assertNamesField(await customer.client.get(`/v1/wallet/transactions?cursor=${encoded}`), 'querystring', '/cursor');
    });

    test('path parameters, cookies and the whole body', async () => {
      assertNamesField(await customer.client.get(`/v1/verifications/${encodeURIComponent(`${verificationId}${NUL}`)}`), 'params', '/id');
      assertNamesField(await customer.client.post(`/v1/verifications/%00/cancel`), 'params', '/id');
      assertNamesField(await customer.client.delete('/v1/api-keys/%00'), 'params', '/id');
      assertNamesField(
        await call(app.url, 'GET', '/v1/me', { headers: { cookie: `namaskah_session=nss_${encodeURIComponent(NUL)}` } }),
        'cookies',
        '/namaskah_session',
      );
      assertNamesField(await call(app.url, 'POST', '/v1/auth/login', { rawBody: JSON.stringify(`just${NUL}a string`) }), 'body', '/');
      const state = (await customer.client.get(`/v1/verifications/${verificationId}`)).body.state;
      assert.equal(state, 'waiting', 'the verification was not touched');
    });
  });
}
