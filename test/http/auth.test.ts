import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { ManualClock } from '../support/clock.ts';
import { firstRow } from '../../src/db/database.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, call, Client, cookieHeader, login, registerUser, uniqueEmail, type TestUser } from '../support/http.ts';

async function count(app: TestApp, query: string): Promise<number> {
  return (await firstRow<{ n: number }>(app.ctx.database.db, sql.raw(`SELECT count(*)::int AS n FROM ${query}`)))!.n;
}

for (const engine of engines) {
  describe(`authentication [${engine}]`, () => {
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    let app: TestApp;
    let alice: TestUser;
    let bob: TestUser;
    before(async () => {
      app = await startTestApp({ engine, clock, env: { SESSION_TTL_HOURS: '2' } });
      alice = await registerUser(app.url, { email: uniqueEmail('alice') });
      bob = await registerUser(app.url, { email: uniqueEmail('bob') });
    });
    after(() => app.close());

    test('register answers 201 with the user and a working token, and sets the cookies', async () => {
      const email = uniqueEmail('Carol').toUpperCase();
      const response = await call(app.url, 'POST', '/v1/auth/register', { body: { email, password: 'carol-password' } });
      assert.equal(response.status, 201, response.text);
      assert.equal(response.body.user.email, email.toLowerCase());
      assert.equal(response.body.user.role, 'customer');
      assert.match(response.body.token, /^nss_/);
      const cookies = response.headers.getSetCookie();
      const session = cookies.find((c) => c.startsWith('namaskah_session='))!;
      const csrf = cookies.find((c) => c.startsWith('namaskah_csrf='))!;
      assert.match(session, /HttpOnly/i);
      assert.match(session, /SameSite=Lax/i);
      assert.doesNotMatch(session, /Secure/i, 'COOKIE_SECURE=false in tests');
      assert.doesNotMatch(csrf, /HttpOnly/i, 'the dashboard reads the CSRF cookie');
      const me = await new Client(app.url, response.body.token).get('/v1/me');
      assert.equal(me.status, 200);
      assert.deepEqual(me.body.wallet, { balance_minor: 0, held_minor: 0, available_minor: 0, currency: 'USD' });
      const again = await call(app.url, 'POST', '/v1/auth/register', { body: { email, password: 'other-password' } });
      assertProblem(again, 409, 'email_taken');
    });

    test('wrong password: 401 unauthenticated and no session created; unknown user gets the same answer', async () => {
      const sessions = await count(app, 'sessions');
      const wrong = await call(app.url, 'POST', '/v1/auth/login', { body: { email: alice.email, password: 'wrong-password' } });
      const unknown = await call(app.url, 'POST', '/v1/auth/login', { body: { email: uniqueEmail('ghost'), password: 'wrong-password' } });
      assertProblem(wrong, 401, 'unauthenticated');
      assertProblem(unknown, 401, 'unauthenticated');
      assert.deepEqual({ ...wrong.body, request_id: undefined }, { ...unknown.body, request_id: undefined });
      assert.equal(wrong.headers.getSetCookie().length, 0);
      assert.equal(await count(app, 'sessions'), sessions);
    });

    test('login is case-insensitive on the email and gives a fresh session', async () => {
      const again = await login(app.url, alice.email.toUpperCase(), alice.password);
      assert.equal(again.id, alice.id);
      assert.notEqual(again.token, alice.token);
    });

    test('no credential, a garbage token, or a bearer of the wrong kind: 401', async () => {
      assertProblem(await call(app.url, 'GET', '/v1/me'), 401, 'unauthenticated');
      assertProblem(await new Client(app.url, 'nss_not-a-real-token').get('/v1/me'), 401, 'unauthenticated');
      assertProblem(await new Client(app.url, 'nso_forged-operator-token-1234567890').get('/v1/admin/users'), 401, 'unauthenticated');
      assertProblem(await call(app.url, 'GET', '/v1/me', { headers: { authorization: 'Basic abc' } }), 401, 'unauthenticated');
    });

    test('logout revokes the token and clears the cookies', async () => {
      const session = await login(app.url, bob.email, bob.password);
      assert.equal((await session.client.get('/v1/me')).status, 200);
      const out = await session.client.post('/v1/auth/logout');
      assert.equal(out.status, 204);
      assert.ok(out.headers.getSetCookie().some((c) => c.startsWith('namaskah_session=;')));
      assertProblem(await session.client.get('/v1/me'), 401, 'unauthenticated');
      assert.equal((await bob.client.get('/v1/me')).status, 200, 'other sessions of the same user live on');
      assert.equal((await session.client.post('/v1/auth/logout')).status, 204, 'logging out twice is harmless');
    });

    test('sessions expire after SESSION_TTL_HOURS (injected clock)', async () => {
      const session = await login(app.url, alice.email, alice.password);
      clock.advance(2 * 3_600_000 - 1000);
      assert.equal((await session.client.get('/v1/me')).status, 200);
      clock.advance(1000);
      assertProblem(await session.client.get('/v1/me'), 401, 'unauthenticated');
      alice = await login(app.url, alice.email, alice.password);
      bob = await login(app.url, bob.email, bob.password);
    });

    test('API keys: created (shown once), listed without the key, usable, revocable', async () => {
      const created = await alice.client.post('/v1/api-keys', { name: 'my script' });
      assert.equal(created.status, 201, created.text);
      const { id, key, prefix, name } = created.body;
      assert.match(key, /^nsk_/);
      assert.equal(key.slice(0, prefix.length), prefix);
      assert.equal(name, 'my script');
      const viaKey = new Client(app.url, key);
      const me = await viaKey.get('/v1/me');
      assert.equal(me.body.user.id, alice.id);
      const listed = await alice.client.get('/v1/api-keys');
      const entry = listed.body.items.find((k: { id: string }) => k.id === id);
      assert.ok(entry.last_used_at, 'last use recorded');
      assert.equal(entry.revoked_at, null);
      assert.ok(!listed.text.includes(key), 'the key is never shown again');

      assert.equal((await viaKey.delete(`/v1/api-keys/${id}`)).status, 204);
      assertProblem(await viaKey.get('/v1/me'), 401, 'unauthenticated');
      const after = await alice.client.get('/v1/api-keys');
      assert.ok(after.body.items.find((k: { id: string }) => k.id === id).revoked_at);
    });

    test("another user's API key is 404, and stays valid", async () => {
      const created = await alice.client.post('/v1/api-keys', { name: 'mine' });
      const attempt = await bob.client.delete(`/v1/api-keys/${created.body.id}`);
      assertProblem(attempt, 404, 'not_found');
      assert.equal((await new Client(app.url, created.body.key).get('/v1/me')).status, 200);
      assert.ok(!(await bob.client.get('/v1/api-keys')).body.items.some((k: { id: string }) => k.id === created.body.id));
      assertProblem(await bob.client.delete('/v1/api-keys/not-a-uuid'), 400, 'validation_failed');
    });

    test('CSRF: a cookie-authenticated write needs X-CSRF-Token; bearer writes do not', async () => {
      const session = await login(app.url, alice.email, alice.password);
      const cookie = cookieHeader(session.cookies);
      const keys = await count(app, 'api_keys');

      const read = await call(app.url, 'GET', '/v1/me', { headers: { cookie } });
      assert.equal(read.status, 200, 'reads need no CSRF token');

      const noToken = await call(app.url, 'POST', '/v1/api-keys', { headers: { cookie }, body: { name: 'csrf' } });
      assertProblem(noToken, 403, 'csrf_failed');
      const wrongToken = await call(app.url, 'POST', '/v1/api-keys', {
        headers: { cookie, 'x-csrf-token': 'x'.repeat(43) },
        body: { name: 'csrf' },
      });
      assertProblem(wrongToken, 403, 'csrf_failed');
      const otherSession = await call(app.url, 'POST', '/v1/api-keys', {
        headers: { cookie, 'x-csrf-token': bob.cookies.namaskah_csrf! },
        body: { name: 'csrf' },
      });
      assertProblem(otherSession, 403, 'csrf_failed');
      assert.equal(await count(app, 'api_keys'), keys, 'nothing created');

      const withToken = await call(app.url, 'POST', '/v1/api-keys', {
        headers: { cookie, 'x-csrf-token': session.cookies.namaskah_csrf! },
        body: { name: 'csrf' },
      });
      assert.equal(withToken.status, 201, withToken.text);
      const bearer = await session.client.post('/v1/api-keys', { name: 'bearer' });
      assert.equal(bearer.status, 201);

      const logoutNoToken = await call(app.url, 'POST', '/v1/auth/logout', { headers: { cookie } });
      assertProblem(logoutNoToken, 403, 'csrf_failed');
      assert.equal((await session.client.get('/v1/me')).status, 200, 'a forged logout does not end the session');
    });

    test('an API key is not accepted as a session cookie', async () => {
      const created = await alice.client.post('/v1/api-keys', { name: 'cookie' });
      const response = await call(app.url, 'GET', '/v1/me', { headers: { cookie: `namaskah_session=${created.body.key}` } });
      assertProblem(response, 401, 'unauthenticated');
    });

    test('a customer on admin routes: 403 forbidden, nothing changes', async () => {
      const before = (await bob.client.get('/v1/wallet')).body;
      const transfers = await count(app, 'ledger_transfers');
      const credit = await alice.client.post(`/v1/admin/users/${bob.id}/credit`, { amount_minor: 500, reason: 'self-service' });
      assertProblem(credit, 403, 'forbidden');
      const selfCredit = await alice.client.post(`/v1/admin/users/${alice.id}/credit`, { amount_minor: 500, reason: 'me' });
      assertProblem(selfCredit, 403, 'forbidden');
      assertProblem(await alice.client.get('/v1/admin/users'), 403, 'forbidden');
      const create = await alice.client.post('/v1/admin/users', { email: uniqueEmail('x'), password: 'password-1', role: 'admin' });
      assertProblem(create, 403, 'forbidden');
      assertProblem(await call(app.url, 'POST', `/v1/admin/users/${bob.id}/credit`, { body: { amount_minor: 1, reason: 'x' } }), 401, 'unauthenticated');
      assert.deepEqual((await bob.client.get('/v1/wallet')).body, before);
      assert.equal(await count(app, 'ledger_transfers'), transfers);
    });

    test('an admin session works on admin routes', async () => {
      const admin = await login(app.url, app.admin.email, app.admin.password);
      assert.equal(admin.role, 'admin');
      const list = await admin.client.get(`/v1/admin/users?query=${encodeURIComponent(alice.email)}`);
      assert.equal(list.status, 200);
      assert.deepEqual(
        list.body.items.map((u: { id: string; available_minor: number }) => [u.id, u.available_minor]),
        [[alice.id, 0]],
      );
    });
  });
}

describe('login rate limit', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp({ env: { LOGIN_ATTEMPTS_PER_MINUTE: '3' } });
  });
  after(() => app.close());

  test('per account: 429 rate_limited with Retry-After after LOGIN_ATTEMPTS_PER_MINUTE', async () => {
    const user = await registerUser(app.url);
    for (let i = 0; i < 3; i++) {
      const attempt = await call(app.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: 'wrong-password' } });
      assert.equal(attempt.status, 401);
    }
    const limited = await call(app.url, 'POST', '/v1/auth/login', { body: { email: user.email.toUpperCase(), password: user.password } });
    assertProblem(limited, 429, 'rate_limited');
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    assert.equal(limited.body.retry_after_seconds, retryAfter);
    const other = await call(app.url, 'POST', '/v1/auth/login', { body: { email: uniqueEmail('other'), password: 'wrong-password' } });
    assert.equal(other.status, 401, 'another account is not locked out');
  });
});
