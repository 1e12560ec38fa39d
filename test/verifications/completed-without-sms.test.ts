import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ManualClock } from '../support/clock.ts';
import { startFakeTextVerified, type FakeTextVerified } from '../support/fake-textverified.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { START } from '../support/lifecycle.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { diagnose } from '../../src/ops/diagnose.ts';
import { registerDomainMetrics } from '../../src/ops/metrics.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';

/**
 * TextVerified says a verification is completed (it bills us for its SMS) while its SMS list shows
 * us nothing: the customer is still refunded at the deadline, and the operator is told (a metric and
 * a diagnose check), because the platform pays for a code nobody could read.
 */
for (const engine of engines) {
  describe(`upstream completed without an SMS visible to us [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeTextVerified;
    const clock = new ManualClock(START);

    before(async () => {
      fake = await startFakeTextVerified({ clock });
      const provider = new TextVerifiedProvider({ baseUrl: fake.url, apiUsername: 'operator@example.com', apiKey: 'tv-test-key', requestsPerSecond: 0, timeoutMs: 2000, clock });
      h = await lifecycleHarness(engine, { provider, clock });
      await putProviderCatalogue(h.t.database.db, 'textverified');
    });
    after(async () => {
      await h?.dispose();
      await fake?.close();
    });


    test('the alarm is raised once by the poller; diagnose and the metric show it; the customer is refunded', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'completed', service: 'whatsapp' });
      assert.equal(out.row.state, 'waiting');
      clock.advance(1_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))?.upstreamAlarm, null, 'a pending order raises nothing');

      fake.state.verifications.get(out.row.providerOrderId!)!.state = 'verificationCompleted';
      clock.advance(1_000);
      await h.runtime.engine.tick();
      const raised = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([raised.state, raised.upstreamAlarm], ['waiting', 'completed_without_sms']);
      const first = raised.upstreamAlarmAt;
      clock.advance(1_000);
      await h.runtime.engine.tick();
      assert.deepEqual((await loadVerification(h.t.database.db, out.row.id))?.upstreamAlarmAt, first, 'raised once');

      const report = await diagnose({ database: h.t.database, clock: h.clock, config: h.config, breaker: h.runtime.breaker });
      const check = report.checks.find((c) => c.name === 'no_upstream_completed_without_sms')!;
      assert.deepEqual([check.ok, check.count], [false, 1]);
      assert.match(check.detail, new RegExp(out.row.id));
      const registry = new Registry();
      registerDomainMetrics(registry, { database: h.t.database, clock: h.clock, config: h.config });
      assert.match(await registry.metrics(), /namaskah_upstream_alarms_total\{alarm="completed_without_sms"\} 1/);

      clock.advance(out.row.expiresAt.getTime() - clock.now().getTime());
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))?.state, 'expired');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
