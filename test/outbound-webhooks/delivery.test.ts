import { describe, test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { and, eq } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { refusingUrl, WebhookReceiver } from '../support/webhook-receiver.ts';
import { Engine } from '../../src/engine/engine.ts';
import { creditWallet } from '../../src/ledger/ledger.ts';
import { notifications } from '../../src/notifications/schema.ts';
import { systemResolver } from '../../src/outbound-webhooks/address-policy.ts';
import { listDeliveries, resendDelivery } from '../../src/outbound-webhooks/deliveries.ts';
import { createEndpoint as create, deleteEndpoint, findEndpoint, listEndpoints, updateEndpoint } from '../../src/outbound-webhooks/endpoints.ts';
import { outboundEventTypes, type OutboundEventType } from '../../src/outbound-webhooks/schema.ts';
import { RETRY_DELAYS_MS } from '../../src/outbound-webhooks/schedule.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { viewOf } from '../../src/verifications/resource.ts';

const HOUR = 3_600_000;

for (const engine of engines) {
  describe(`customers' webhooks are delivered signed, retried and disabled when failing [${engine}]`, () => {
    let h: LifecycleHarness;
    let worker: Engine;
    let receiver: WebhookReceiver;
    let keys = 0;
    const db = () => h.t.database.db;
    const checks = { rules: { allowHttp: true, allowPrivate: true }, resolve: systemResolver };

    before(async () => {
      h = await lifecycleHarness(engine, {
        env: { WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_TIMEOUT_MS: '1500' },
      });
      // Jitter at the middle of its range, so every wait is exactly 1.1 × the schedule's.
      worker = new Engine(h.runtime.engineDeps, { workerId: 'webhook-worker', webhooks: { random: () => 0.5 } });
    });
    after(() => h.dispose());
    beforeEach(async () => {
      receiver = await new WebhookReceiver().start();
    });
    // Each test's endpoints go with it, so no test sees another's due deliveries.
    const created: { user: string; id: string }[] = [];
    const createEndpoint: typeof create = async (...args) => {
      const out = await create(...args);
      created.push({ user: out.endpoint.userId, id: out.endpoint.id });
      return out;
    };
    afterEach(async () => {
      await receiver.stop();
      for (const e of created.splice(0)) await deleteEndpoint(db(), e.user, e.id);
    });

    async function subscriber(url = receiver.url, events: OutboundEventType[] = [...outboundEventTypes]) {
      const user = await h.customer(1000);
      const { endpoint, secret } = await createEndpoint(db(), user, { url, events }, checks, h.clock.now());
      receiver.secrets.push(secret);
      return { user, endpoint, secret };
    }
    const buy = (user: string, service = 'test_timeout') =>
      purchaseVerification(h.deps, { userId: user, idempotencyKey: `wh-${keys++}`, service });

    test('every state change reaches the receiver once, verified with standardwebhooks, carrying the API JSON', async () => {
      const { user, endpoint } = await subscriber();
      const onlyReceived = await createEndpoint(db(), user, { url: `${receiver.url}?only=received`, events: ['verification.received'] }, checks, h.clock.now());
      receiver.secrets.push(onlyReceived.secret);

      const bought = await buy(user, 'test_success');
      assert.equal(bought.row.state, 'waiting');
      const viewAfterPurchase = await viewOf(db(), bought.row);
      assert.equal(await worker.deliverWebhooks(), 1);
      assert.equal(await worker.deliverWebhooks(), 0, 'a delivered event is not sent again');

      h.clock.advance(6000);
      await h.runtime.engine.tick();
      const received = (await loadVerification(db(), bought.row.id))!;
      assert.equal(received.state, 'received');
      const both = await worker.deliverWebhooks();
      assert.equal(both, 2, `both endpoints subscribe to verification.received: ${JSON.stringify(receiver.received.map((r) => [r.payload.type, r.payload.data.state]))}`);

      h.clock.advance(1000);
      await creditWallet(db(), { userId: user, amountMinor: 500, kind: 'topup', actor: 'admin', reason: 'top-up', now: h.clock.now() });
      assert.equal(await worker.deliverWebhooks(), 1);

      assert.equal(receiver.received.length, 4);
      for (const hook of receiver.received) {
        assert.ok(hook.verifiedWith, `delivery ${hook.id} verifies with the endpoint's secret`);
        assert.equal(hook.payload.id, hook.id, 'the body carries the webhook-id');
        assert.match(hook.id, /^evt_[0-9a-f]{32}$/);
        assert.deepEqual(Object.keys(hook.payload), ['id', 'type', 'created_at', 'data']);
      }
      const [waiting, r1, r2, credited] = receiver.received;
      assert.equal(waiting!.payload.type, 'verification.waiting');
      assert.deepEqual(waiting!.payload.data, viewAfterPurchase, 'data is the verification as the API returned it then');
      assert.deepEqual([r1!.payload.type, r2!.payload.type], ['verification.received', 'verification.received']);
      assert.equal(r1!.id, r2!.id, 'one event id for one state change, whatever the number of endpoints');
      assert.deepEqual(r1!.payload.data, await viewOf(db(), received));
      assert.equal(r1!.payload.data.code, received.code);
      assert.equal(credited!.payload.type, 'wallet.credited');
      assert.deepEqual(
        { type: credited!.payload.data.type, amount: credited!.payload.data.amount_minor, reason: credited!.payload.data.reason },
        { type: 'topup', amount: 500, reason: 'top-up' },
      );

      const deliveries = await listDeliveries(db(), user, endpoint.id, 50);
      assert.deepEqual(
        deliveries.map((d) => [d.type, d.delivery.status, d.attempts.map((a) => [a.succeeded, a.responseStatus, a.responseExcerpt])]),
        [
          ['wallet.credited', 'succeeded', [[true, 200, 'ok']]],
          ['verification.received', 'succeeded', [[true, 200, 'ok']]],
          ['verification.waiting', 'succeeded', [[true, 200, 'ok']]],
        ],
      );
    });

    test('saving: a name that resolves to a private address is refused, and so are the private literals', async () => {
      const user = await h.customer(0);
      const strict = { allowHttp: false, allowPrivate: false };
      const resolve = async (host: string) => (host === 'hooks.customer.example' ? ['10.0.0.1'] : ['93.184.216.34']);
      for (const url of ['https://hooks.customer.example/x', 'https://127.0.0.1/x', 'https://[::1]/x', 'https://169.254.169.254/x', 'https://10.0.0.1/x']) {
        await assert.rejects(createEndpoint(db(), user, { url, events: ['wallet.credited'] }, { rules: strict, resolve }, h.clock.now()), (error: any) => {
          assert.equal(error.code, 'validation_failed', url);
          assert.match(error.message, /^body\/url: points to a refused address/, url);
          return true;
        });
      }
      assert.deepEqual(await listEndpoints(db(), user), [], 'nothing saved');
      const saved = await createEndpoint(db(), user, { url: 'https://public.customer.example/x', events: ['wallet.credited'] }, { rules: strict, resolve }, h.clock.now());
      assert.equal(saved.endpoint.url, 'https://public.customer.example/x');
    });

    test('a customer without a subscribed endpoint gets no event rows', async () => {
      const { user } = await subscriber(receiver.url, ['wallet.credited']);
      await buy(user);
      assert.equal(await worker.deliverWebhooks(), 0);
      assert.equal(receiver.received.length, 0);
    });

    test('a 500 is retried on the schedule, with jitter, until it succeeds; every attempt is kept', async () => {
      const { user, endpoint } = await subscriber();
      receiver.script.push({ status: 500, body: 'x'.repeat(5000) }, 503);
      const start = h.clock.now().getTime();
      await buy(user);
      assert.equal(await worker.deliverWebhooks(), 1);
      let [delivery] = await listDeliveries(db(), user, endpoint.id, 10);
      assert.equal(delivery!.delivery.status, 'pending');
      assert.equal(delivery!.delivery.nextAttemptAt!.getTime(), start + RETRY_DELAYS_MS[0]! * 1.1);

      h.clock.advance(RETRY_DELAYS_MS[0]! * 1.1 - 1);
      assert.equal(await worker.deliverWebhooks(), 0, 'not before its time');
      h.clock.advance(1);
      assert.equal(await worker.deliverWebhooks(), 1);
      h.clock.advance(RETRY_DELAYS_MS[1]! * 1.1);
      assert.equal(await worker.deliverWebhooks(), 1);

      [delivery] = await listDeliveries(db(), user, endpoint.id, 10);
      assert.equal(delivery!.delivery.status, 'succeeded');
      assert.deepEqual(
        delivery!.attempts.map((a) => [a.succeeded, a.responseStatus, a.responseExcerpt?.length]),
        [
          [false, 500, 1024],
          [false, 503, 9],
          [true, 200, 2],
        ],
        'the answer is read up to WEBHOOK_RESPONSE_MAX_BYTES',
      );
      assert.equal(new Set(receiver.received.map((r) => r.id)).size, 1, 'the same event id on every attempt');
      assert.ok(receiver.received.every((r) => r.verifiedWith));
      assert.equal((await findEndpoint(db(), user, endpoint.id)).failingSince, null, 'a success ends the failure streak');
    });

    test('a receiver that never answers times out; a refused connection and a redirect are failed attempts', async () => {
      const { user, endpoint } = await subscriber();
      const refused = await createEndpoint(db(), user, { url: await refusingUrl(), events: ['verification.waiting'] }, checks, h.clock.now());
      receiver.script.push('hang', { status: 302, headers: { location: 'http://169.254.169.254/' } });
      await buy(user);
      assert.equal(await worker.deliverWebhooks(), 2);
      h.clock.advance(RETRY_DELAYS_MS[0]! * 1.1);
      assert.equal(await worker.deliverWebhooks(), 2);

      const [hung] = await listDeliveries(db(), user, endpoint.id, 10);
      assert.equal(hung!.attempts[0]!.responseStatus, null);
      assert.match(hung!.attempts[0]!.error ?? '', /timed out after 1500 ms/);
      assert.equal(hung!.attempts[1]!.responseStatus, 302);
      assert.match(hung!.attempts[1]!.error ?? '', /redirects are not followed/);
      assert.equal(receiver.received.length, 2, 'the redirect was not followed');
      const [refusedDelivery] = await listDeliveries(db(), user, refused.endpoint.id, 10);
      assert.deepEqual(refusedDelivery!.attempts.map((a) => /ECONNREFUSED/.test(a.error ?? '')), [true, true]);
      assert.equal(refusedDelivery!.delivery.status, 'pending', 'still retried');
    });

    test('never in the way: the lifecycle ticks past a hanging receiver without attempting anything', async () => {
      const { user } = await subscriber();
      receiver.fallback = 'hang';
      const bought = await buy(user);
      h.clock.set(bought.row.expiresAt);
      const report = await h.runtime.engine.tick();
      assert.ok(report.expired >= 1, 'the expiry and its refund happen in the lifecycle tick');
      assert.equal((await loadVerification(db(), bought.row.id))!.state, 'expired');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.equal(receiver.received.length, 0, 'deliveries run in their own loop, never in the tick');
      // The receiver hangs both attempts; the verification and its money stay as they are.
      assert.equal(await worker.deliverWebhooks(), 2);
      assert.equal((await loadVerification(db(), bought.row.id))!.state, 'expired');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    test('a worker that stalls past its lease: another makes the attempt; the stalled one is kept and changes nothing', async () => {
      const { user, endpoint } = await subscriber();
      await buy(user);
      const stalled = new Engine(h.runtime.engineDeps, { workerId: 'stalled-worker', webhooks: { random: () => 0.5 } });
      const [claimed] = await stalled.webhooks.claim(10);
      assert.ok(claimed);
      assert.equal(await worker.deliverWebhooks(), 0, 'leased: no one else takes it');
      h.clock.advance((h.config.LEASE_SECONDS * 1000 + h.config.WEBHOOK_TIMEOUT_MS) + 1);
      assert.equal(await worker.deliverWebhooks(), 1, 'the lapsed lease is taken over');
      const late = await stalled.webhooks.deliver(claimed);
      assert.deepEqual(late, { recorded: false });
      const [delivery] = await listDeliveries(db(), user, endpoint.id, 1);
      assert.equal(delivery!.delivery.status, 'succeeded');
      assert.equal(delivery!.delivery.attempts, 1, 'the schedule counts the attempt that held the claim');
      assert.deepEqual(delivery!.attempts.map((a) => a.worker).sort(), ['stalled-worker', 'webhook-worker'], 'both attempts reached the receiver, both are kept');
      assert.equal(receiver.received.length, 2);
    });

    test('an endpoint failing for WEBHOOK_DISABLE_AFTER_HOURS is disabled and its owner told; re-enabled, an event is re-sent on request', async () => {
      const { user, endpoint } = await subscriber();
      receiver.fallback = 500;
      const bought = await buy(user);
      const first = h.clock.now().getTime();
      let attempts = 0;
      for (;;) {
        assert.equal(await worker.deliverWebhooks(), 1);
        attempts++;
        const current = await findEndpoint(db(), user, endpoint.id);
        const failingFor = h.clock.now().getTime() - first;
        if (!current.enabled) {
          assert.ok(failingFor >= 24 * HOUR, `disabled after ${failingFor} ms`);
          assert.match(current.disabledReason ?? '', /every attempt failed for \d+ h \(last: HTTP 500\)/);
          break;
        }
        assert.ok(failingFor < 24 * HOUR, 'not disabled before the limit');
        const [delivery] = await listDeliveries(db(), user, endpoint.id, 1);
        assert.equal(delivery!.delivery.status, 'pending');
        h.clock.set(delivery!.delivery.nextAttemptAt!);
      }
      assert.equal(attempts, 11, 'the 11th attempt comes after 24 h of failures');
      const told = await db().select().from(notifications).where(and(eq(notifications.userId, user), eq(notifications.kind, 'webhook_endpoint_disabled')));
      assert.equal(told.length, 1);
      assert.match(told[0]!.body, /was disabled/);

      // Disabled: nothing more is attempted, and new events are not queued for it.
      h.clock.advance(24 * HOUR);
      assert.equal(await worker.deliverWebhooks(), 0);
      await creditWallet(db(), { userId: user, amountMinor: 1, kind: 'topup', actor: 'admin', reason: 'while disabled', now: h.clock.now() });
      assert.equal((await listDeliveries(db(), user, endpoint.id, 50)).length, 1);
      await assert.rejects(resendDelivery(db(), user, endpoint.id, receiver.received[0]!.id, h.clock.now()), /enable it/);

      // The owner fixes the receiver, enables the endpoint and asks for the event again.
      receiver.fallback = 200;
      const enabled = await updateEndpoint(db(), user, endpoint.id, { enabled: true }, checks, h.clock.now());
      assert.deepEqual([enabled.enabled, enabled.failingSince, enabled.disabledReason], [true, null, null]);
      const eventId = receiver.received[0]!.id;
      const resent = await resendDelivery(db(), user, endpoint.id, eventId, h.clock.now());
      assert.equal(resent.status, 'pending');
      assert.equal(await worker.deliverWebhooks(), 1);
      const [delivery] = await listDeliveries(db(), user, endpoint.id, 1);
      assert.equal(delivery!.delivery.status, 'succeeded');
      assert.equal(delivery!.attempts.length, attempts + 1, 'every attempt is kept, the re-sent one too');
      assert.equal(receiver.received.at(-1)!.id, eventId);
      assert.equal(receiver.received.at(-1)!.payload.data.id, bought.row.id);
      // Re-sending a delivered event sends it once more.
      await resendDelivery(db(), user, endpoint.id, eventId, h.clock.now());
      assert.equal(await worker.deliverWebhooks(), 1);
      assert.equal(receiver.received.filter((r) => r.id === eventId).length, attempts + 2);
    });
  });
}
