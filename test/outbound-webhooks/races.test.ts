import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { prng } from '../support/ledger-invariants.ts';
import { FaultSwitch, lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider, deferred } from '../support/scripted-provider.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';
import { rows } from '../../src/db/database.ts';
import { Engine } from '../../src/engine/engine.ts';
import { systemResolver } from '../../src/outbound-webhooks/address-policy.ts';
import { createEndpoint } from '../../src/outbound-webhooks/endpoints.ts';
import { outboundEventTypes } from '../../src/outbound-webhooks/schema.ts';
import { cancelVerification, expireVerification } from '../../src/verifications/flows.ts';
import { loadVerification, recordMessages, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';

for (const engine of engines) {
  describe(`exactly one webhook event per state change, under concurrent transitions [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    let receiver: WebhookReceiver;
    let worker: Engine;
    const faults = new FaultSwitch();
    let keys = 0;
    const db = () => h.t.database.db;

    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, { provider, faults: faults.hook, env: { WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE: 'true' } });
      receiver = await new WebhookReceiver().start();
      worker = new Engine(h.runtime.engineDeps, { workerId: 'webhook-worker' });
    });
    after(async () => {
      await receiver.stop();
      await h.dispose();
    });

    /** A customer with two endpoints subscribed to everything, and a waiting verification. */
    async function waitingWithEndpoints(): Promise<VerificationRow> {
      const user = await h.customer(1000);
      for (const path of ['a', 'b']) {
        const { secret } = await createEndpoint(
          db(),
          user,
          { url: `${receiver.url}/${path}`, events: [...outboundEventTypes] },
          { rules: { allowHttp: true, allowPrivate: true }, resolve: systemResolver },
          h.clock.now(),
        );
        receiver.secrets.push(secret);
      }
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: `wh-race-${keys++}`, service: 'test_timeout' });
      assert.equal(out.row.state, 'waiting');
      return out.row;
    }
    const sms = (row: VerificationRow) =>
      recordMessages(h.deps, row.id, [provider.deliver(row.providerOrderId!, 'Your code is 424242', '424242', h.clock.now())], 'webhook');

    /** The outbox of one verification against its audit trail: one event per state change, one delivery per endpoint. */
    async function assertOneEventPerChange(id: string, where: string): Promise<string[]> {
      const final = (await loadVerification(db(), id))!;
      const changes = await rows<{ to_state: string }>(
        db(),
        sql`SELECT to_state FROM verification_events WHERE verification_id = ${id} AND from_state <> to_state ORDER BY id`,
      );
      const events = await rows<{ id: string; type: string; deliveries: number }>(
        db(),
        sql`SELECT e.id, e.type, (SELECT count(*)::int FROM outbound_webhook_deliveries d WHERE d.event_id = e.id) AS deliveries
            FROM outbound_webhook_events e WHERE e.subject_id = ${id} ORDER BY e.created_at, e.type = 'verification.waiting' DESC`,
      );
      assert.deepEqual(
        events.map((e) => e.type),
        changes.map((c) => `verification.${c.to_state}`),
        `${where}: the events are the state changes`,
      );
      assert.deepEqual(events.map((e) => e.type), ['verification.waiting', `verification.${final.state}`], where);
      assert.ok(events.every((e) => Number(e.deliveries) === 2), `${where}: one delivery per endpoint`);
      return events.map((e) => e.id);
    }

    test('cancel racing the SMS racing the deadline, many rounds: one event per change, each delivered once per endpoint', async () => {
      const seed = Number(process.env.RACE_SEED ?? Date.now() % 1_000_000);
      const random = prng(seed).next;
      const rounds = engine === 'pglite' ? 12 : 20;
      const finals: Record<string, number> = {};
      for (let round = 0; round < rounds; round++) {
        const row = await waitingWithEndpoints();
        const plan = { cancel: random() < 0.8, secondCancel: random() < 0.4, sms: random() < 0.7, expire: random() < 0.6, tick: random() < 0.4 };
        if (plan.expire || plan.tick) h.clock.set(row.expiresAt);
        const racers: Promise<unknown>[] = [];
        if (plan.cancel) racers.push(cancelVerification(h.deps, row, 'customer'));
        if (plan.sms) racers.push(sms(row));
        if (plan.expire) racers.push(expireVerification(h.deps, row));
        if (plan.tick) racers.push(h.runtime.engine.tick());
        if (plan.secondCancel) racers.push(cancelVerification(h.deps, row, 'customer'));
        await Promise.all(racers);
        if ((await loadVerification(db(), row.id))!.state === 'waiting') {
          h.clock.set(row.expiresAt);
          await h.runtime.engine.tick();
        }
        const where = `seed ${seed}, round ${round} ${JSON.stringify(plan)}`;
        const ids = await assertOneEventPerChange(row.id, where);
        const final = (await loadVerification(db(), row.id))!;
        finals[final.state] = (finals[final.state] ?? 0) + 1;

        const before = receiver.received.length;
        while ((await worker.deliverWebhooks()) > 0);
        const got = receiver.received.slice(before);
        assert.deepEqual(got.map((r) => r.id).sort(), [...ids, ...ids].sort(), `${where}: each event once per endpoint`);
        assert.ok(got.every((r) => r.verifiedWith), where);
        const terminal = got.find((r) => r.payload.type !== 'verification.waiting')!;
        const waiting = got.find((r) => r.payload.type === 'verification.waiting')!;
        assert.equal(terminal.payload.data.state, final.state, where);
        // What a receiver orders them by, whatever order they arrive in: the later one has the longer timeline.
        assert.ok(terminal.payload.data.events.length > waiting.payload.data.events.length, where);
      }
      assert.ok((finals.received ?? 0) > 0 && (finals.cancelled ?? 0) + (finals.expired ?? 0) > 0, JSON.stringify(finals));
    });

    test('a cancel held after its upstream call while the SMS captures: the cancel changes nothing and writes no event', async () => {
      const row = await waitingWithEndpoints();
      const held = deferred();
      const resume = deferred();
      faults.once('cancel.upstream_done', async () => {
        held.resolve();
        await resume.promise;
      });
      const cancelling = cancelVerification(h.deps, row, 'customer');
      await held.promise;
      const captured = await sms(row);
      assert.equal(captured?.captured, true);
      resume.resolve();
      const answer = await cancelling;
      assert.equal(answer.kind, 'invalid_state');
      await assertOneEventPerChange(row.id, 'held cancel');
      assert.equal((await loadVerification(db(), row.id))!.state, 'received');
    });
  });
}
