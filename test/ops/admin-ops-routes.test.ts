import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { seedSandboxCatalogue } from '../../src/catalogue/catalogue.ts';
import { rows } from '../../src/db/database.ts';
import { creditWallet } from '../../src/ledger/ledger.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { createVerificationRuntime, type VerificationRuntime } from '../../src/runtime.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { engines } from '../support/db.ts';
import { call, login, registerUser, type TestUser } from '../support/http.ts';
import { runNamaskah } from '../support/cli.ts';

/** GET /v1/admin/diagnose and POST /v1/admin/reconcile, and the CLI reaching a running embedded server through them. */
const namaskah = (args: string[], env: Record<string, string>) => runNamaskah(args, { NODE_ENV: 'test', LOG_LEVEL: 'warn', ...env });

for (const engine of engines) {
  describe(`admin ops routes [${engine}]`, () => {
    let app: TestApp;
    let runtime: VerificationRuntime;
    let admin: TestUser;
    let customer: TestUser;

    before(async () => {
      app = await startTestApp({
        engine,
        worker: false,
        runtime: (ctx) => (runtime = createVerificationRuntime(ctx, { workerId: 'ops-routes' })),
      });
      admin = await login(app.url, app.admin.email, app.admin.password);
      customer = await registerUser(app.url);
    });
    after(() => app?.close());

    test('admin only: 401 without credentials, 403 for a customer', async () => {
      assert.equal((await call(app.url, 'GET', '/v1/admin/diagnose')).status, 401);
      const forbidden = await customer.client.get('/v1/admin/diagnose');
      assert.equal(forbidden.status, 403);
      assert.equal(forbidden.body.code, 'forbidden');
      assert.equal((await customer.client.post('/v1/admin/reconcile', { days: 7, execute: true })).status, 403);
    });

    test('the body is strict and bounded', async () => {
      for (const body of [{ days: 7, execute: false, extra: 1 }, { days: 0, execute: false }, { days: 7 }, { days: 1.5, execute: true }, { days: '7', execute: false }]) {
        const response = await admin.client.post('/v1/admin/reconcile', body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.equal(response.body.code, 'validation_failed');
      }
    });

    test('diagnose and reconcile on a healthy database', async () => {
      const diagnosed = await admin.client.get('/v1/admin/diagnose');
      assert.equal(diagnosed.status, 200);
      assert.equal(diagnosed.body.ok, true);
      assert.ok(diagnosed.body.checks.length >= 13);
      assert.deepEqual(diagnosed.body.breakers, { sandbox: 'closed' });
      const dry = await admin.client.post('/v1/admin/reconcile', { days: 7, execute: false });
      assert.equal(dry.status, 200);
      assert.deepEqual(dry.body.found, []);
      assert.equal(dry.body.remaining, 0);
    });

    test(`a stuck hold is named, then repaired ${engine === 'pglite' ? 'by the CLI through the running server' : 'over HTTP'}`, { timeout: 120_000 }, async () => {
      const { database, clock } = app.ctx;
      await seedSandboxCatalogue(database.db);
      await creditWallet(database.db, { userId: customer.id, amountMinor: 500, kind: 'topup', actor: 'admin', reason: 'test', now: clock.now() });
      const { row } = await purchaseVerification(runtime.deps, { userId: customer.id, idempotencyKey: randomUUID(), service: 'test_timeout' });
      await database.db.execute(sql`UPDATE verifications SET expires_at = ${new Date(clock.now().getTime() - 300_000)} WHERE id = ${row.id}`);

      const broken = await admin.client.get('/v1/admin/diagnose');
      assert.equal(broken.body.ok, false);
      assert.deepEqual(
        broken.body.checks.filter((c: { ok: boolean }) => !c.ok).map((c: { name: string }) => c.name),
        ['no_hold_past_deadline'],
      );

      if (engine === 'pglite') {
        // The server holds the data directory: the CLI finds it through the lock file and its ops token.
        const env = { DATA_DIR: app.dataDir! };
        const diagnosed = await namaskah(['diagnose', '--json'], env);
        assert.equal(diagnosed.code, 1, diagnosed.stderr);
        assert.equal(JSON.parse(diagnosed.stdout).ok, false);
        const executed = await namaskah(['reconcile', '--days', '7', '--execute', '--json'], env);
        assert.equal(executed.code, 0, executed.stderr);
        const report = JSON.parse(executed.stdout);
        assert.deepEqual(report.summary, { hold_past_deadline: 1 });
        assert.equal(report.found[0].verification_id, row.id);
        assert.equal(report.found[0].user_email, customer.email);
        assert.equal(report.remaining, 0);
      } else {
        const executed = await admin.client.post('/v1/admin/reconcile', { days: 7, execute: true, user: customer.email.toUpperCase() });
        assert.equal(executed.status, 200);
        assert.equal(executed.body.repaired, 1);
        assert.equal(executed.body.remaining, 0);
      }

      const healthy = await admin.client.get('/v1/admin/diagnose');
      assert.equal(healthy.body.ok, true);
      const audit = await rows<{ actor: string; actor_id: string | null }>(
        database.db,
        sql`SELECT actor, actor_id FROM audit_log WHERE action = 'reconcile.execute'`,
      );
      assert.deepEqual(audit, [engine === 'pglite' ? { actor: 'cli', actor_id: null } : { actor: 'admin', actor_id: admin.id }]);
      const events = await rows<{ actor: string; to_state: string }>(
        database.db,
        sql`SELECT actor, to_state FROM verification_events WHERE verification_id = ${row.id} ORDER BY id DESC LIMIT 1`,
      );
      assert.deepEqual(events, [{ actor: 'reconciler', to_state: 'expired' }]);
    });
  });
}
