import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';
import { spawnWebhookWorker, type WebhookWorkerHandle } from '../support/webhook-worker.ts';
import { rows } from '../../src/db/database.ts';
import { creditWallet } from '../../src/ledger/ledger.ts';
import { systemResolver } from '../../src/outbound-webhooks/address-policy.ts';
import { createEndpoint } from '../../src/outbound-webhooks/endpoints.ts';

const ENV = { WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE: 'true', ENGINE_CONCURRENCY: '4' };

if (engines.includes('postgres')) {
  describe('two worker processes on PostgreSQL share the webhook deliveries', () => {
    let h: LifecycleHarness;
    let receiver: WebhookReceiver;
    const workers: WebhookWorkerHandle[] = [];
    before(async () => {
      h = await lifecycleHarness('postgres', { env: ENV });
      receiver = await new WebhookReceiver().start();
    });
    after(async () => {
      for (const w of workers) w.child.kill('SIGKILL');
      await receiver.stop();
      await h.dispose();
    });

    test('each attempt is made once: every event reaches the receiver exactly twice (a 500, then a 200)', async () => {
      const user = await h.customer(0);
      const { secret } = await createEndpoint(
        h.t.database.db,
        user,
        { url: receiver.url, events: ['wallet.credited'] },
        { rules: { allowHttp: true, allowPrivate: true }, resolve: systemResolver },
        h.clock.now(),
      );
      receiver.secrets = [secret];
      receiver.delayMs = 3;
      receiver.decide = (_hook, earlier) => (earlier === 0 ? 500 : 200);
      const EVENTS = 60;
      for (let i = 0; i < EVENTS; i++) {
        await creditWallet(h.t.database.db, { userId: user, amountMinor: 1, kind: 'topup', actor: 'admin', reason: `credit ${i}`, now: h.clock.now() });
      }

      // Each worker's clock moves on its own; kept within a lease (LEASE_SECONDS + WEBHOOK_TIMEOUT_MS)
      // of each other, as real clocks are, so neither sees the other's live lease as lapsed.
      const common = { databaseUrl: h.t.databaseUrl!, now: h.clock.now().toISOString(), passes: 16, advanceMs: 2_000, batchSize: 10, env: ENV };
      workers.push(spawnWebhookWorker({ ...common, workerId: 'hooks-a' }), spawnWebhookWorker({ ...common, workerId: 'hooks-b' }));
      await Promise.all(workers.map((w) => w.ready));
      for (const w of workers) w.child.stdin!.write('go\n');
      const made = await Promise.all(workers.map((w) => w.done));

      // Whatever the two left (a retry not yet due on their clocks) is finished here.
      h.clock.advance(60_000);
      const drain = h.engine('hooks-drain');
      let drained = 0;
      for (let n = await drain.deliverWebhooks(); n > 0; n = await drain.deliverWebhooks()) drained += n;

      const perEvent = new Map<string, number>();
      for (const r of receiver.received) perEvent.set(r.id, (perEvent.get(r.id) ?? 0) + 1);
      assert.equal(perEvent.size, EVENTS);
      assert.deepEqual([...new Set(perEvent.values())], [2], 'no attempt was made twice');
      assert.ok(receiver.received.every((r) => r.verifiedWith));

      const recorded = await rows<{ worker: string; n: number }>(
        h.t.database.db,
        sql`SELECT worker, count(*)::int AS n FROM outbound_webhook_attempts GROUP BY worker ORDER BY worker`,
      );
      const byWorker = Object.fromEntries(recorded.map((r) => [r.worker, Number(r.n)]));
      assert.equal((byWorker['hooks-a'] ?? 0) + (byWorker['hooks-b'] ?? 0) + (byWorker['hooks-drain'] ?? 0), 2 * EVENTS, 'every attempt recorded once');
      assert.deepEqual([byWorker['hooks-a'], byWorker['hooks-b']], made, 'each worker recorded what it made');
      assert.ok(made.every((n) => n > 0), `both workers delivered: ${JSON.stringify(byWorker)}`);
      assert.equal(made[0]! + made[1]! + drained, 2 * EVENTS);
      const [open] = await rows<{ n: number }>(h.t.database.db, sql`SELECT count(*)::int AS n FROM outbound_webhook_deliveries WHERE status <> 'succeeded'`);
      assert.equal(Number(open!.n), 0);
    });
  });
}
