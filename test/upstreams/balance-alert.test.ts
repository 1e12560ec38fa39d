import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { rows } from '../../src/db/database.ts';
import { createUser } from '../../src/accounts/users.ts';
import { SandboxProvider } from '../../src/providers/sandbox.ts';
import type { Provider } from '../../src/providers/provider.ts';
import { createVerificationRuntime, type VerificationRuntime } from '../../src/runtime.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { engines } from '../support/db.ts';
import { login, type TestUser } from '../support/http.ts';

/**
 * The low-balance alert: the engine reads our balance at each upstream; the first reading below
 * the threshold tells every admin once (an `upstream_balance_low` notification), further low
 * readings — from this engine or another one at the same moment — add nothing, a reading at or above
 * it ends the crossing, and the next fall alerts again. /metrics shows the balance and the alert.
 */
for (const engine of engines) {
  describe(`upstream balance alert [${engine}]`, () => {
    let app: TestApp;
    let runtime: VerificationRuntime;
    let admin: TestUser;
    let secondAdminId: string;
    let balance = 10_000;
    const clock = new ManualClock('2026-06-01T10:00:00Z');

    before(async () => {
      app = await startTestApp({
        engine,
        clock,
        worker: false,
        env: { UPSTREAM_BALANCE_LOW_MINOR: '5000', METRICS_TOKEN: 'metrics-secret-token-0123456789' },
        runtime: (ctx) => {
          const sandbox = new SandboxProvider({ clock, delayMs: 200, failureRate: 0, ttlSeconds: 1200 });
          // The sandbox with a balance the test sets.
          const upstream: Provider = Object.assign(Object.create(sandbox) as Provider, {
            balance: async () => ({ amountMinor: balance, currency: 'USD' }),
          });
          return (runtime = createVerificationRuntime(ctx, { provider: upstream }));
        },
      });
      admin = await login(app.url, app.admin.email, app.admin.password);
      const second = await createUser(app.ctx.database, { email: 'second-admin@example.test', password: 'a-long-enough-password-1', role: 'admin' }, {
        currency: 'USD',
        now: clock.now(),
        audit: { actorId: null, actor: 'cli' },
      });
      secondAdminId = second.id;
    });
    after(() => app?.close());

    const alerts = () =>
      rows<{ user_id: string; title: string; body: string }>(
        app.ctx.database.db,
        sql`SELECT user_id, title, body FROM notifications WHERE kind = 'upstream_balance_low' ORDER BY created_at, user_id`,
      );
    const metrics = async () => {
      const response = await fetch(new URL('/metrics', app.url), { headers: { authorization: 'Bearer metrics-secret-token-0123456789' } });
      assert.equal(response.status, 200);
      return response.text();
    };

    test('one notification per admin per crossing, whoever reads the balance', async () => {
      const check = () => runtime.engine.checkBalances();
      assert.deepEqual((await check()).map((r) => r.crossing), ['unchanged']);
      assert.deepEqual(await alerts(), []);

      balance = 4_000;
      clock.advance(60_000);
      const [fell] = await check();
      assert.equal(fell!.crossing, 'fell_below');
      assert.equal(fell!.thresholdMinor, 5000);
      const first = await alerts();
      assert.deepEqual(first.map((a) => a.user_id).sort(), [admin.id, secondAdminId].sort());
      assert.equal(first[0]!.title, 'Low balance at sandbox');
      assert.match(first[0]!.body, /is 40\.00 USD, below the alert threshold of 50\.00 USD/);

      // Still low, read again and by several engines at once: nothing new.
      balance = 3_000;
      clock.advance(60_000);
      const again = await Promise.all([check(), check(), check()]);
      assert.deepEqual(again.flat().map((r) => r.crossing), ['unchanged', 'unchanged', 'unchanged']);
      assert.equal((await alerts()).length, 2);

      const text = await metrics();
      assert.match(text, /^namaskah_upstream_balance_low\{provider="sandbox"\} 1$/m);

      // Topped up: the crossing ends; the next fall alerts again, once, even when read concurrently.
      balance = 5_000;
      clock.advance(60_000);
      assert.equal((await check())[0]!.crossing, 'recovered');
      assert.match(await metrics(), /^namaskah_upstream_balance_low\{provider="sandbox"\} 0$/m);
      balance = 100;
      clock.advance(60_000);
      const concurrent = (await Promise.all([check(), check(), check()])).flat().map((r) => r.crossing);
      assert.deepEqual(concurrent.filter((c) => c === 'fell_below'), ['fell_below']);
      assert.equal((await alerts()).length, 4);

      // The admin sees it in the in-app notifications.
      const listed = await admin.client.get('/v1/notifications');
      assert.equal(listed.body.items.filter((n: { kind: string }) => n.kind === 'upstream_balance_low').length, 2);
    });

    test('/metrics shows the balance at the upstream', async () => {
      balance = 1234;
      // The balance series is sampled in the background (at most once a minute by the clock): a scrape
      // after that minute starts a new read, and a later one shows it.
      clock.advance(61_000);
      const deadline = Date.now() + 10_000;
      let text = await metrics();
      while (!/^namaskah_upstream_balance_minor\{provider="sandbox",currency="USD"\} 1234$/m.test(text)) {
        assert.ok(Date.now() < deadline, `the balance series never showed 1234:\n${text.split('\n').filter((l) => l.includes('balance')).join('\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        text = await metrics();
      }
    });

    test('without a threshold nothing is read and nothing alerts', async () => {
      const put = await admin.client.request('PUT', '/v1/admin/upstreams/sandbox', { body: { balance_low_minor: 0 } });
      assert.equal(put.status, 200);
      // The crossing in progress ends at the next reading above 0.
      balance = 10;
      assert.equal((await runtime.engine.checkBalances())[0]!.crossing, 'recovered');
      assert.equal((await runtime.engine.checkBalances())[0]!.crossing, 'no_threshold');
      assert.equal((await alerts()).length, 4);
    });
  });
}
