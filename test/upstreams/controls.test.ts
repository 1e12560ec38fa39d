import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { rows } from '../../src/db/database.ts';
import { creditWallet } from '../../src/ledger/ledger.ts';
import { balanceCrossing, LiveProviderControls, setProviderMode } from '../../src/providers/controls.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { engines } from '../support/db.ts';
import { call, login, registerUser, type TestUser } from '../support/http.ts';

/**
 * The operator's controls per upstream over the admin API: the kill switch and drain stop new
 * purchases at once (no hold, nothing stored) while the orders already sold settle; enabling sells
 * again; every change is audited; bad input is a 400 that changes nothing; only admins may act.
 */
const put = (user: TestUser, provider: string, body: unknown) => user.client.request('PUT', `/v1/admin/upstreams/${encodeURIComponent(provider)}`, { body });
const buy = (user: TestUser, service: string) => user.client.post('/v1/verifications', { service }, { headers: { 'idempotency-key': randomUUID() } });

async function until<T>(what: string, probe: () => Promise<T | undefined>, deadlineMs = 15_000): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a balance reading is a crossing once on the way down and once on the way up', () => {
  assert.equal(balanceCrossing(false, 4999, 5000), 'fell_below');
  assert.equal(balanceCrossing(true, 4999, 5000), 'unchanged');
  assert.equal(balanceCrossing(true, 5000, 5000), 'recovered');
  assert.equal(balanceCrossing(false, 5000, 5000), 'unchanged');
  assert.equal(balanceCrossing(false, 0, 0), 'unchanged', 'a threshold of 0 never alerts');
  assert.equal(balanceCrossing(false, null, 5000), 'unchanged', 'an unstated balance never alerts');
  assert.equal(balanceCrossing(true, null, 5000), 'unchanged');
});

for (const engine of engines) {
  describe(`provider controls over the admin API [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    let customer: TestUser;

    before(async () => {
      app = await startTestApp({ engine, env: { SANDBOX_DELAY_MS: '300' } });
      admin = await login(app.url, app.admin.email, app.admin.password);
      customer = await registerUser(app.url);
      await creditWallet(app.ctx.database.db, { userId: customer.id, amountMinor: 10_000, kind: 'topup', actor: 'admin', reason: 'test', now: app.ctx.clock.now() });
    });
    after(() => app?.close());

    const holdCount = async () =>
      Number(
        (await rows<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM ledger_holds h JOIN ledger_accounts a ON a.id = h.account_id WHERE a.user_id = ${customer.id}`))[0]!.n,
      );
    const verificationCount = async () =>
      Number((await rows<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE user_id = ${customer.id}`))[0]!.n);
    const controlRows = () => rows<{ provider: string; mode: string; balance_low_minor: number | null }>(app.ctx.database.db, sql`SELECT provider, mode, balance_low_minor FROM provider_controls ORDER BY provider`);
    const audits = () =>
      rows<{ action: string; actor: string; actor_id: string | null; detail: Record<string, unknown> }>(
        app.ctx.database.db,
        sql`SELECT action, actor, actor_id, detail FROM audit_log WHERE action LIKE 'provider.%' ORDER BY id`,
      );

    test('admin only: 401 without credentials, 403 for a customer, and nothing changes', async () => {
      assert.equal((await call(app.url, 'GET', '/v1/admin/upstreams')).status, 401);
      assert.equal((await call(app.url, 'PUT', '/v1/admin/upstreams/sandbox', { body: { mode: 'disabled' } })).status, 401);
      const listed = await customer.client.get('/v1/admin/upstreams');
      assert.equal(listed.status, 403);
      assert.equal(listed.body.code, 'forbidden');
      const changed = await put(customer, 'sandbox', { mode: 'disabled' });
      assert.equal(changed.status, 403);
      assert.deepEqual(await controlRows(), []);
      assert.deepEqual(await audits(), []);
    });

    test('bad input is a 400 that changes nothing: unknown provider, unknown mode, empty or extra fields, a negative threshold', async () => {
      const unknown = await put(admin, 'nope', { mode: 'disabled' });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.code, 'validation_failed');
      assert.match(unknown.body.detail, /no provider "nope"; known: sandbox/);
      for (const body of [{ mode: 'off' }, {}, { mode: 'disabled', extra: 1 }, { balance_low_minor: -1 }, { balance_low_minor: 1.5 }, { mode: 'DISABLED' }]) {
        const response = await put(admin, 'sandbox', body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.equal(response.body.code, 'validation_failed');
      }
      assert.deepEqual(await controlRows(), []);
      assert.deepEqual(await audits(), []);
      assert.equal((await buy(customer, 'test_success')).status, 201, 'still selling');
    });

    test('the kill switch refuses new purchases (no hold, nothing stored), an open order still settles, drain refuses too, enable sells again', { timeout: 60_000 }, async () => {
      // Bought before the switch: its SMS comes after it.
      const open = await buy(customer, 'test_delayed');
      assert.equal(open.status, 201);
      const holds = await holdCount();
      const count = await verificationCount();

      const disabled = await put(admin, 'sandbox', { mode: 'disabled' });
      assert.equal(disabled.status, 200);
      assert.equal(disabled.body.upstream.mode, 'disabled');
      assert.equal(disabled.body.upstream.changed_by, admin.id);

      const refused = await buy(customer, 'test_success');
      assert.equal(refused.status, 503);
      assert.equal(refused.body.code, 'provider_unavailable');
      assert.equal(await holdCount(), holds, 'no hold was placed');
      assert.equal(await verificationCount(), count, 'nothing was stored');

      // The order sold before the switch is captured by the engine as usual.
      const settled = await until('the open order to receive its SMS', async () => {
        const v = await customer.client.get(`/v1/verifications/${open.body.id}`);
        return v.body.state === 'received' ? v.body : undefined;
      });
      assert.ok(settled.code);

      const draining = await put(admin, 'sandbox', { mode: 'draining' });
      assert.equal(draining.body.upstream.mode, 'draining');
      assert.equal((await buy(customer, 'test_success')).body.code, 'provider_unavailable');
      const listed = await admin.client.get('/v1/admin/upstreams');
      assert.equal(listed.body.upstreams.find((u: { provider: string }) => u.provider === 'sandbox').mode, 'draining');

      assert.equal((await put(admin, 'sandbox', { mode: 'enabled' })).body.upstream.mode, 'enabled');
      assert.equal((await buy(customer, 'test_success')).status, 201);

      assert.deepEqual(
        (await audits()).map((a) => [a.action, a.actor, a.actor_id, a.detail]),
        [
          ['provider.mode', 'admin', admin.id, { provider: 'sandbox', from: 'enabled', to: 'disabled' }],
          ['provider.mode', 'admin', admin.id, { provider: 'sandbox', from: 'disabled', to: 'draining' }],
          ['provider.mode', 'admin', admin.id, { provider: 'sandbox', from: 'draining', to: 'enabled' }],
        ],
      );
    });

    test('another copy of the controls (as another process keeps) hears of a change within a second, without being asked', async () => {
      const elsewhere = new LiveProviderControls(app.ctx.database, { refreshMs: 60_000 });
      await elsewhere.start();
      try {
        assert.equal(elsewhere.isDisabled('sandbox'), false);
        // Announced in the transaction that makes it; the long refresh period leaves the announcement as the only way.
        await app.ctx.database.transaction((tx) => setProviderMode(tx, { provider: 'sandbox', mode: 'draining', changedBy: null, now: app.ctx.clock.now() }));
        const deadline = Date.now() + 1000;
        while (!elsewhere.isDisabled('sandbox') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.equal(elsewhere.isDisabled('sandbox'), true, 'draining stops purchases');
        assert.equal(elsewhere.modeOf('sandbox'), 'draining');
        await app.ctx.database.transaction((tx) => setProviderMode(tx, { provider: 'sandbox', mode: 'enabled', changedBy: null, now: app.ctx.clock.now() }));
        const back = Date.now() + 1000;
        while (elsewhere.isDisabled('sandbox') && Date.now() < back) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.equal(elsewhere.isDisabled('sandbox'), false);
        assert.equal(elsewhere.isDisabled('some-other-upstream'), false, 'an upstream without a row sells');
      } finally {
        await elsewhere.stop();
      }
    });

    test('a change whose announcement was lost is still seen at the next periodic re-read', async () => {
      const elsewhere = new LiveProviderControls(app.ctx.database, { refreshMs: 100 });
      await elsewhere.start();
      try {
        // Written without NOTIFY, as if the announcement never reached this process.
        await app.ctx.database.db.execute(sql`UPDATE provider_controls SET mode = 'disabled' WHERE provider = 'sandbox'`);
        const deadline = Date.now() + 1000;
        while (!elsewhere.isDisabled('sandbox') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.equal(elsewhere.modeOf('sandbox'), 'disabled');
      } finally {
        await elsewhere.stop();
        await app.ctx.database.db.execute(sql`UPDATE provider_controls SET mode = 'enabled' WHERE provider = 'sandbox'`);
        await app.server.runtime.controls.refresh();
      }
    });

    test('the Upstreams report: breaker, balance, threshold, owed cancels with their value, margin per offer', async () => {
      assert.equal((await put(admin, 'sandbox', { balance_low_minor: 2_000_000 })).status, 200);
      // One order refunded to the customer whose upstream cancel is still owed (as a dead upstream leaves it).
      const owed = await buy(customer, 'test_timeout');
      assert.equal(owed.status, 201, JSON.stringify(owed.body));
      await customer.client.post(`/v1/verifications/${owed.body.id}/cancel`);
      await app.ctx.database.db.execute(sql`UPDATE verifications SET upstream_status = 'cancel_owed', upstream_next_at = ${app.ctx.clock.now()} WHERE id = ${owed.body.id}`);

      const report = await admin.client.get('/v1/admin/upstreams');
      assert.equal(report.status, 200);
      const sandbox = report.body.upstreams.find((u: { provider: string }) => u.provider === 'sandbox');
      assert.equal(sandbox.configured, true);
      assert.equal(sandbox.mode, 'enabled');
      assert.equal(sandbox.breaker, 'closed');
      assert.deepEqual({ ...sandbox.balance, read_at: undefined }, { amount_minor: 1_000_000, currency: 'USD', live: true, read_at: undefined });
      assert.equal(sandbox.balance_low_minor, 2_000_000);
      assert.equal(sandbox.balance_low, true);
      assert.deepEqual(sandbox.cancels_owed, { count: 1, value_minor: 25 });
      const whatsapp = sandbox.offers.find((o: { service: string; country: string }) => o.service === 'whatsapp' && o.country === 'US');
      assert.deepEqual({ ...whatsapp, last_24h: undefined }, {
        service: 'whatsapp',
        country: 'US',
        enabled: true,
        price_minor: 120,
        cost_minor: 60,
        margin_minor: 60,
        last_24h: undefined,
      });
      assert.deepEqual(whatsapp.last_24h, { sample_size: 0, success_rate: null, median_seconds_to_code: null });

      // null returns the provider to the configured threshold (0: no alert).
      const cleared = await put(admin, 'sandbox', { balance_low_minor: null });
      assert.equal(cleared.body.upstream.balance_low_minor, 0);
      assert.equal(cleared.body.upstream.balance_low, false);
    });
  });
}
