import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { Registry } from 'prom-client';
import { breakerHealth, engineHealth, registerDomainMetrics } from '../../src/ops/metrics.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { recordMessages } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { engines } from '../support/db.ts';
import { lifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

for (const engine of engines) {
  describe(`domain metrics and engine health [${engine}]`, () => {
    test('series are read from the database on scrape; health reports lag, workers and breakers', async () => {
      const h = await lifecycleHarness(engine, { provider: new ScriptedProvider() });
      try {
        const registry = new Registry();
        registerDomainMetrics(registry, { database: h.t.database, clock: h.clock, config: h.config, breakers: [h.runtime.breaker] });
        const empty = await registry.metrics();
        assert.equal(value(empty, 'namaskah_purchases_total{outcome="received"}'), 0);
        assert.equal(value(empty, 'namaskah_stuck_holds'), 0);
        assert.equal(value(empty, 'namaskah_engine_lag_seconds'), 0);
        assert.equal(value(empty, 'namaskah_breaker_state{provider="sandbox"}'), 0);
        assert.match(empty, /# TYPE namaskah_purchases_total counter/);
        assert.match(empty, /# TYPE namaskah_stuck_holds gauge/);

        const user = await h.customer(1000);
        const buy = async () => (await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' })).row;
        const delivered = await buy();
        await recordMessages(h.deps, delivered.id, [{ providerMessageId: 'm', text: 'code 123456', code: '123456', receivedAt: h.clock.now() }], 'poller');
        await cancelVerification(h.deps, await buy(), 'customer');
        const stuck = await buy();
        await h.t.database.db.execute(sql`UPDATE verifications SET expires_at = ${new Date(h.clock.now().getTime() - 120_000)}, next_check_at = ${new Date(h.clock.now().getTime() - 90_000)} WHERE id = ${stuck.id}`);

        h.clock.advance(5_000);
        const text = await registry.metrics();
        assert.equal(value(text, 'namaskah_purchases_total{outcome="received"}'), 1);
        assert.equal(value(text, 'namaskah_purchases_total{outcome="cancelled"}'), 1);
        assert.equal(value(text, 'namaskah_captures_total'), 1);
        assert.equal(value(text, 'namaskah_refunds_total{reason="cancelled"}'), 1);
        assert.equal(value(text, 'namaskah_refunds_total{reason="expired"}'), 0);
        assert.equal(value(text, 'namaskah_verifications_active{state="waiting"}'), 1);
        assert.equal(value(text, 'namaskah_stuck_holds'), 1);
        assert.equal(value(text, 'namaskah_engine_lag_seconds'), 95);
        assert.equal(value(text, 'namaskah_upstream_cancels_owed'), 0);

        const lagging = await engineHealth({ database: h.t.database, clock: h.clock, config: h.config });
        assert.deepEqual(lagging, { ok: false, lag_seconds: 95, workers: [] });

        await h.runtime.engine.tick();
        const healthy = await engineHealth({ database: h.t.database, clock: h.clock, config: h.config });
        assert.equal(healthy.ok, true);
        assert.equal(healthy.lag_seconds, 0);
        assert.deepEqual(
          healthy.workers.map((w) => [w.id, w.alive]),
          [['test-worker', true]],
        );
        const after = await registry.metrics();
        assert.equal(value(after, 'namaskah_stuck_holds'), 0);
        assert.equal(value(after, 'namaskah_refunds_total{reason="expired"}'), 1);

        assert.deepEqual(breakerHealth([h.runtime.breaker]), { sandbox: { state: 'closed' }, ok: true });
      } finally {
        await h.dispose();
      }
    });
  });
}
