import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { CREDENTIALS_CHANNEL, CredentialCache } from '../../src/accounts/credential-cache.ts';
import { ManualClock } from '../support/clock.ts';
import { engines, testDatabaseUrl } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, Client, login, registerUser, type TestUser } from '../support/http.ts';

/**
 * Credentials are cached per API process (src/accounts/credential-cache.ts); a revoked key or
 * session, sign-out everywhere, a password change and account closure must stop working within 1 s
 * in every process. The caches' own expiry runs on the injected (frozen) clock here, so only the
 * database's signal can end a cached credential: these tests fail if the signal is missing.
 */

const BIN = fileURLToPath(new URL('../../bin/namaskah.mjs', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** The bound the issue sets: a revoked credential stops working within 1 s everywhere. */
const WITHIN_MS = 1_000;

/** Asks until the answer is 401, for at most WITHIN_MS; returns the status seen last. */
async function statusOnceRevoked(client: Client, path = '/v1/me'): Promise<number> {
  const until = Date.now() + WITHIN_MS;
  for (;;) {
    const response = await client.get(path);
    if (response.status === 401 || Date.now() >= until) return response.status;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A second API process (`namaskah serve --no-worker`) over the same PostgreSQL database. */
async function startSecondProcess(databaseUrl: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--no-worker'], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      DATABASE_URL: databaseUrl,
      HOST: '127.0.0.1',
      PORT: String(port),
      PROVIDER: 'sandbox',
      LOG_LEVEL: 'silent',
      COOKIE_SECURE: 'false',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`the second process exited:\n${output}`);
    try {
      const response = await fetch(`${url}/health`);
      await response.arrayBuffer();
      break;
    } catch {
      if (attempt > 600) {
        await stop();
        throw new Error(`the second process did not start:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { url, stop };
}

async function newApiKey(user: TestUser): Promise<{ id: string; key: string }> {
  const created = await user.client.post('/v1/api-keys', { name: 'cached' });
  assert.equal(created.status, 201, created.text);
  return { id: created.body.id, key: created.body.key };
}

for (const engine of engines) {
  describe(`credential cache: revocations reach every process [${engine}]`, () => {
    // Held still at the real time: the second process runs on the real clock and must see the same sessions as live.
    const clock = new ManualClock(Date.now());
    let app: TestApp;
    /** Where requests are checked: a second process on PostgreSQL, the same one on PGlite. */
    let other: { url: string; stop(): Promise<void> };
    before(async () => {
      app = await startTestApp({ engine, clock, worker: false });
      other = engine === 'postgres' ? await startSecondProcess(app.databaseUrl!) : { url: app.url, stop: async () => {} };
    });
    after(async () => {
      await other.stop();
      await app.close();
    });

    test('a revoked API key stops working in the other process', async () => {
      const alice = await registerUser(app.url);
      const { id, key } = await newApiKey(alice);
      const there = new Client(other.url, key);
      // Cached in both processes now.
      assert.equal((await there.get('/v1/me')).status, 200);
      assert.equal((await new Client(app.url, key).get('/v1/me')).status, 200);
      assert.equal((await there.get('/v1/me')).status, 200);
      assert.equal((await alice.client.delete(`/v1/api-keys/${id}`)).status, 204);
      assert.equal(await statusOnceRevoked(there), 401);
      assertProblem(await new Client(app.url, key).get('/v1/me'), 401, 'unauthenticated');
    });

    test('logout, sign-out everywhere and a password change end sessions in the other process', async () => {
      const bob = await registerUser(app.url);
      const second = await login(app.url, bob.email, bob.password);
      const third = await login(app.url, bob.email, bob.password);
      for (const user of [bob, second, third]) assert.equal((await new Client(other.url, user.token).get('/v1/me')).status, 200);

      assert.equal((await second.client.post('/v1/auth/logout')).status, 204);
      assert.equal(await statusOnceRevoked(new Client(other.url, second.token)), 401);

      const revokeAll = await third.client.post('/v1/sessions/revoke-all');
      assert.ok(revokeAll.status === 200 || revokeAll.status === 204, revokeAll.text);
      assert.equal(await statusOnceRevoked(new Client(other.url, bob.token)), 401, 'sign-out everywhere ends the other sessions');

      const carol = await registerUser(app.url);
      const elsewhere = await login(app.url, carol.email, carol.password);
      assert.equal((await new Client(other.url, elsewhere.token).get('/v1/me')).status, 200);
      const changed = await carol.client.post('/v1/account/password', { current_password: carol.password, new_password: `${carol.password}-new` });
      assert.equal(changed.status, 204, changed.text);
      assert.equal(await statusOnceRevoked(new Client(other.url, elsewhere.token)), 401, 'a password change ends the other sessions');
    });

    test('account closure ends its keys and sessions in the other process', async () => {
      const dave = await registerUser(app.url);
      const { key } = await newApiKey(dave);
      assert.equal((await new Client(other.url, key).get('/v1/me')).status, 200);
      assert.equal((await new Client(other.url, dave.token).get('/v1/me')).status, 200);
      const closed = await dave.client.request('DELETE', '/v1/account', { body: { password: dave.password } });
      assert.equal(closed.status, 204, closed.text);
      assert.equal(await statusOnceRevoked(new Client(other.url, key)), 401);
      assert.equal(await statusOnceRevoked(new Client(other.url, dave.token)), 401);
    });

    test('every credential change signals, whatever path makes it; touches do not', async () => {
      const erin = await registerUser(app.url);
      const { id } = await newApiKey(erin);
      const signals: string[] = [];
      const stop = await app.ctx.database.listen(CREDENTIALS_CHANNEL, (payload) => signals.push(payload));
      try {
        const db = app.ctx.database.db;
        const now = clock.now();
        const expect = async (statement: ReturnType<typeof sql>, signalled: boolean, what: string) => {
          const before = signals.length;
          await db.execute(statement);
          // A marker through the same channel: once it is heard, every earlier signal has been.
          await db.execute(sql`SELECT pg_notify(${CREDENTIALS_CHANNEL}, 'marker')`);
          const until = Date.now() + WITHIN_MS;
          while (!signals.slice(before).includes('marker') && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
          const heard = signals.slice(before).filter((s) => s !== 'marker');
          assert.equal(heard.length > 0, signalled, `${what}: ${signalled ? 'must' : 'must not'} signal (heard ${JSON.stringify(heard)})`);
        };
        await expect(sql`UPDATE api_keys SET last_used_at = ${now} WHERE id = ${id}`, false, 'an API key used');
        await expect(sql`UPDATE sessions SET last_seen_at = ${now} WHERE user_id = ${erin.id}`, false, 'a session seen');
        await expect(sql`UPDATE users SET email_verified_at = ${now} WHERE id = ${erin.id}`, false, 'an email verified');
        await expect(sql`UPDATE sessions SET revoked_at = ${now} WHERE user_id = ${erin.id}`, true, 'sessions revoked (a password reset)');
        await expect(sql`UPDATE api_keys SET revoked_at = ${now} WHERE id = ${id}`, true, 'a key revoked');
        await expect(sql`UPDATE users SET role = 'admin' WHERE id = ${erin.id}`, true, 'a role changed');
        await expect(sql`UPDATE users SET totp_secret = 'JBSWY3DPEHPK3PXP', totp_enabled_at = ${now} WHERE id = ${erin.id}`, true, 'two-factor turned on');
        await expect(sql`UPDATE users SET password_hash = 'other' WHERE id = ${erin.id}`, true, 'a password reset');
      } finally {
        await stop();
      }
    });

    test('a lookup that began before a signal is not kept; nothing is cached without a listener', async () => {
      const frank = await registerUser(app.url);
      const cache = new CredentialCache(app.ctx.database, { ttlMs: 60_000 });
      // Not started: every call looks up, so a revocation counts at once even without a signal.
      assert.ok(await cache.resolve(frank.token, clock.now()));
      await cache.start();
      try {
        const pending = cache.resolve(frank.token, clock.now());
        cache.invalidate();
        assert.ok(await pending);
        await app.ctx.database.db.execute(sql`UPDATE sessions SET revoked_at = ${clock.now()} WHERE user_id = ${frank.id}`);
        // The lookup above was not stored, so the next one sees the revocation even before any signal.
        assert.equal(await cache.resolve(frank.token, clock.now()), undefined);
      } finally {
        await cache.stop();
      }
    });
  });
}

if (!testDatabaseUrl) {
  test('credential cache across two processes on PostgreSQL', { skip: 'TEST_DATABASE_URL is not set' }, () => {});
}
