import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { sql } from 'drizzle-orm';
import { scryptHasher, type PasswordHasher } from '../../src/accounts/passwords.ts';
import { ManualClock } from '../support/clock.ts';
import { firstRow } from '../../src/db/database.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { engines, testDatabaseUrl } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, call, Client, login, registerUser, uniqueEmail, type ApiResponse } from '../support/http.ts';

/** The real scrypt, counting how often each half runs: the proof that a refused attempt costs no hashing. */
class CountingHasher implements PasswordHasher {
  hashes = 0;
  verifies = 0;
  hash(password: string): Promise<string> {
    this.hashes++;
    return scryptHasher.hash(password);
  }
  verify(password: string, stored: string): Promise<boolean> {
    this.verifies++;
    return scryptHasher.verify(password, stored);
  }
  reset(): void {
    this.hashes = 0;
    this.verifies = 0;
  }
}

/** With TRUST_PROXY on, X-Forwarded-For says which client address a request comes from. */
const from = (address: string) => ({ 'x-forwarded-for': address });

function countStatuses(responses: ApiResponse[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const r of responses) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
}

function assertLimited(response: ApiResponse, maxSeconds: number): number {
  assertProblem(response, 429, 'rate_limited');
  const retryAfter = Number(response.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= maxSeconds, `Retry-After ${retryAfter}`);
  assert.equal(response.body.retry_after_seconds, retryAfter);
  return retryAfter;
}

async function userCount(app: TestApp): Promise<number> {
  return (await firstRow<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM users`))!.n;
}

for (const engine of engines) {
  describe(`credential limits, counted before any hashing [${engine}]`, () => {
    const clock = new ManualClock('2026-03-01T12:00:05Z');
    const hasher = new CountingHasher();
    let app: TestApp;
    before(async () => {
      app = await startTestApp({
        engine,
        clock,
        worker: false,
        passwords: hasher,
        env: {
          TRUST_PROXY: 'true',
          LOGIN_ATTEMPTS_PER_MINUTE: '3',
          LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE: '5',
          REGISTRATIONS_PER_ADDRESS_PER_HOUR: '4',
          API_KEYS_CREATED_PER_HOUR: '3',
          API_KEYS_CREATED_PER_ADDRESS_PER_HOUR: '5',
        },
      });
    });
    after(() => app.close());

    test('a spray of many emails from one address: 429 after the address limit, and no scrypt run for the refused', async () => {
      const victim = await registerUser(app.url, { email: uniqueEmail('victim') });
      hasher.reset();
      const spray = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          call(app.url, 'POST', '/v1/auth/login', {
            body: { email: uniqueEmail(`spray${i}`), password: 'guess-number-1' },
            headers: from('203.0.113.7'),
          }),
        ),
      );
      assert.deepEqual(countStatuses(spray), { 401: 5, 429: 25 });
      for (const refused of spray.filter((r) => r.status === 429)) assertLimited(refused, 55);
      assert.equal(hasher.verifies, 5, 'only the 5 admitted attempts ran scrypt');
      assert.equal(hasher.hashes, 0);

      // The account holder, from elsewhere, is not locked out by the spray.
      const real = await call(app.url, 'POST', '/v1/auth/login', { body: { email: victim.email, password: victim.password }, headers: from('198.51.100.20') });
      assert.equal(real.status, 200, real.text);
      // The sprayer may try again when the window is over (injected clock).
      clock.advance(60_000);
      const later = await call(app.url, 'POST', '/v1/auth/login', { body: { email: uniqueEmail('late'), password: 'guess-number-1' }, headers: from('203.0.113.7') });
      assert.equal(later.status, 401);
    });

    test('guesses at one account from many addresses: 429 after LOGIN_ATTEMPTS_PER_MINUTE, even with the right password', async () => {
      const target = await registerUser(app.url, { email: uniqueEmail('target') });
      hasher.reset();
      for (let i = 0; i < 3; i++) {
        const guess = await call(app.url, 'POST', '/v1/auth/login', { body: { email: target.email, password: `guess-${i}-wrong` }, headers: from(`192.0.2.${i + 1}`) });
        assert.equal(guess.status, 401);
      }
      const right = await call(app.url, 'POST', '/v1/auth/login', {
        body: { email: target.email.toUpperCase(), password: target.password },
        headers: from('192.0.2.99'),
      });
      assertLimited(right, 60);
      assert.equal(hasher.verifies, 3);
      clock.advance(60_000);
      assert.equal((await call(app.url, 'POST', '/v1/auth/login', { body: { email: target.email, password: target.password }, headers: from('192.0.2.99') })).status, 200);
    });

    test('registrations from one address: 429 after REGISTRATIONS_PER_ADDRESS_PER_HOUR, nothing hashed or stored beyond', async () => {
      const users = await userCount(app);
      hasher.reset();
      const spray = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          call(app.url, 'POST', '/v1/auth/register', { body: { email: uniqueEmail(`bulk${i}`), password: `pw-${i}-long-enough` }, headers: from('203.0.113.50') }),
        ),
      );
      assert.deepEqual(countStatuses(spray), { 201: 4, 429: 8 });
      for (const refused of spray.filter((r) => r.status === 429)) assertLimited(refused, 3600);
      assert.equal(hasher.hashes, 4);
      assert.equal(await userCount(app), users + 4);
      const elsewhere = await call(app.url, 'POST', '/v1/auth/register', { body: { email: uniqueEmail('other'), password: 'pw-other-place' }, headers: from('203.0.113.51') });
      assert.equal(elsewhere.status, 201);
    });

    test('one email registered over and over, from many addresses: 429 after 5 an hour', async () => {
      const email = uniqueEmail('taken');
      hasher.reset();
      const answers: number[] = [];
      for (let i = 0; i < 7; i++) {
        const response = await call(app.url, 'POST', '/v1/auth/register', { body: { email, password: `pw-${i}-long-enough` }, headers: from(`198.18.0.${i + 1}`) });
        answers.push(response.status);
      }
      assert.deepEqual(answers, [201, 409, 409, 409, 409, 429, 429]);
      assert.equal(hasher.hashes, 5);
    });

    test('new API keys: limited per account and per address', async () => {
      const owner = await registerUser(app.url, { email: uniqueEmail('keys') });
      const other = await registerUser(app.url, { email: uniqueEmail('keys2') });
      const create = (token: string, address: string) =>
        call(app.url, 'POST', '/v1/api-keys', { token, body: { name: 'script' }, headers: from(address) });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await create(owner.token, '100.64.0.1')).status);
      statuses.push((await create(owner.token, '100.64.0.2')).status);
      assert.deepEqual(statuses, [201, 201, 201, 429], 'the account limit holds whatever the address');
      // Another account has its own budget, but shares the address's: 3 + 2 = 5 from 100.64.0.1.
      assert.equal((await create(other.token, '100.64.0.1')).status, 201);
      assert.equal((await create(other.token, '100.64.0.1')).status, 201);
      assertLimited(await create(other.token, '100.64.0.1'), 3600);
      // Refused attempts count as well: hammering a limit never buys anything.
      assertLimited(await create(other.token, '100.64.0.3'), 3600);
      const keys = await firstRow<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM api_keys WHERE user_id IN (${owner.id}, ${other.id})`);
      assert.equal(keys!.n, 5);
    });

    test('passwords: common ones, ones holding the email, whitespace only are refused, saying why, before hashing', async () => {
      hasher.reset();
      let addresses = 0;
      const register = (email: string, password: string) =>
        call(app.url, 'POST', '/v1/auth/register', { body: { email, password }, headers: from(`198.51.100.${++addresses}`) });
      const cases: [string, string, RegExp][] = [
        ['common@example.test', 'password123', /most commonly used passwords/],
        ['common2@example.test', 'Iloveyou1', /most commonly used passwords/],
        ['whitespace@example.test', ' '.repeat(12), /only whitespace/],
        ['same@example.test', 'SAME@example.test', /contain your email address/],
        ['margaret@example.test', 'Margaret-1987', /part of your email address before the @/],
      ];
      for (const [email, password, why] of cases) {
        const refused = await register(email, password);
        assertProblem(refused, 400, 'validation_failed');
        assert.match(refused.body.detail, why);
      }
      assert.equal(hasher.hashes, 0);
      assert.equal((await register('margaret@example.test', 'tea-at-the-ritz-42')).status, 201);
    });

    test('answers that carry a session token or an API key are never cached', async () => {
      const registered = await call(app.url, 'POST', '/v1/auth/register', { body: { email: uniqueEmail('cache'), password: 'cache-me-not-9' }, headers: from('198.51.100.88') });
      assert.equal(registered.status, 201);
      assert.equal(registered.headers.get('cache-control'), 'no-store');
      const logged = await call(app.url, 'POST', '/v1/auth/login', { body: { email: registered.body.user.email, password: 'cache-me-not-9' }, headers: from('198.51.100.88') });
      assert.equal(logged.status, 200);
      assert.equal(logged.headers.get('cache-control'), 'no-store');
      const key = await new Client(app.url, logged.body.token).post('/v1/api-keys', { name: 'cached?' }, { headers: from('198.51.100.88') });
      assert.equal(key.status, 201);
      assert.equal(key.headers.get('cache-control'), 'no-store');
    });
  });
}

describe('a second API process on PostgreSQL shares the limits', { skip: !testDatabaseUrl }, () => {
  const clock = new ManualClock('2026-03-01T12:00:05Z');
  let app: TestApp;
  let second: RunningServer;
  before(async () => {
    app = await startTestApp({
      engine: 'postgres',
      clock,
      worker: false,
      env: { LOGIN_ATTEMPTS_PER_MINUTE: '3', LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE: '6' },
    });
    second = await startServer(app.config, { clock, worker: false, logger: pino({ level: 'silent' }), print: () => {} });
  });
  after(async () => {
    await second?.close();
    await app.close();
  });

  test('guesses limited by the first process are refused by the second', async () => {
    const user = await registerUser(app.url, { email: uniqueEmail('shared') });
    for (let i = 0; i < 3; i++) {
      assert.equal((await call(app.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: `wrong-guess-${i}` } })).status, 401);
    }
    const onSecond = await call(second.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: user.password } });
    assertLimited(onSecond, 55);
    clock.advance(60_000);
    assert.equal((await login(second.url, user.email, user.password)).id, user.id);
  });

  test('a spray split over both processes gets the address limit once, not once per process', async () => {
    clock.advance(60_000);
    const spray = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call(i % 2 === 0 ? app.url : second.url, 'POST', '/v1/auth/login', { body: { email: uniqueEmail(`split${i}`), password: 'guess-number-2' } }),
      ),
    );
    assert.deepEqual(countStatuses(spray), { 401: 6, 429: 14 });
  });
});
