import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { randomUUID } from 'node:crypto';
import { SANDBOX_SIGNATURE_HEADER, signSandbox, type SandboxEventType } from '../../src/payments/processors/sandbox.ts';
import { assertProblem, call, login, registerUser, type TestUser } from '../support/http.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

const PAYMENTS_SECRET = 'sandbox-payments-secret';
const ENDPOINTS = '/v1/webhook-endpoints';

describe('webhook endpoints API, with the default (strict) address rules', () => {
  let app: TestApp;
  let alice: TestUser;
  let bob: TestUser;
  const clock = new ManualClock('2026-03-01T12:00:00Z');
  before(async () => {
    app = await startTestApp({ clock, worker: false });
    alice = await registerUser(app.url);
    bob = await registerUser(app.url);
  });
  after(() => app.close());

  test('loopback, private, link-local/metadata and http URLs are refused with a 400 naming url, and nothing is saved', async () => {
    for (const url of [
      'https://127.0.0.1/hooks',
      'https://[::1]/hooks',
      'https://169.254.169.254/latest/meta-data/',
      'https://10.0.0.1/hooks',
      'https://localhost:8443/hooks',
      'https://[::ffff:127.0.0.1]/hooks',
      'http://hooks.example.com/hooks',
    ]) {
      const response = await alice.client.post(ENDPOINTS, { url, events: ['verification.received'] });
      assertProblem(response, 400, 'validation_failed');
      assert.equal(response.body.issues[0].path, '/url', url);
    }
    const bad = await alice.client.post(ENDPOINTS, { url: 'https://hooks.example.com/x', events: ['verification.teleported'] });
    assertProblem(bad, 400, 'validation_failed');
    assertProblem(await alice.client.post(ENDPOINTS, { url: 'https://hooks.example.com/x', events: [] }), 400, 'validation_failed');
    assert.deepEqual((await alice.client.get(ENDPOINTS)).body.items, []);
  });

  test('create (secret shown once), list, read, change, rotate and delete; another customer sees nothing', async () => {
    const created = await alice.client.post(ENDPOINTS, {
      url: 'https://hooks.example.com/namaskah',
      events: ['verification.received', 'wallet.credited', 'verification.received'],
      description: 'production',
    });
    assert.equal(created.status, 201, created.text);
    assert.match(created.body.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(created.headers.get('cache-control'), 'no-store');
    const { id } = created.body;
    assert.deepEqual(
      { url: created.body.url, events: created.body.events, description: created.body.description, enabled: created.body.enabled },
      { url: 'https://hooks.example.com/namaskah', events: ['verification.received', 'wallet.credited'], description: 'production', enabled: true },
    );

    const listed = await alice.client.get(ENDPOINTS);
    assert.equal(listed.body.items.length, 1);
    assert.ok(!('secret' in listed.body.items[0]), 'the secret is never shown again');
    assert.ok(!listed.text.includes(created.body.secret));
    assert.equal((await alice.client.get(`${ENDPOINTS}/${id}`)).body.id, id);

    assertProblem(await bob.client.get(`${ENDPOINTS}/${id}`), 404, 'not_found');
    assertProblem(await bob.client.request('PATCH', `${ENDPOINTS}/${id}`, { body: { enabled: false } }), 404, 'not_found');
    assertProblem(await bob.client.delete(`${ENDPOINTS}/${id}`), 404, 'not_found');
    assertProblem(await bob.client.post(`${ENDPOINTS}/${id}/rotate-secret`, {}), 404, 'not_found');
    assert.deepEqual((await bob.client.get(ENDPOINTS)).body.items, []);

    const patched = await alice.client.request('PATCH', `${ENDPOINTS}/${id}`, { body: { events: ['verification.expired'], enabled: false, description: null } });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual([patched.body.events, patched.body.enabled, patched.body.description], [['verification.expired'], false, null]);
    assertProblem(await alice.client.request('PATCH', `${ENDPOINTS}/${id}`, { body: {} }), 400, 'validation_failed');
    assertProblem(await alice.client.request('PATCH', `${ENDPOINTS}/${id}`, { body: { url: 'https://10.0.0.1/x' } }), 400, 'validation_failed');
    assert.equal((await alice.client.get(`${ENDPOINTS}/${id}`)).body.url, 'https://hooks.example.com/namaskah', 'a refused change changes nothing');

    const rotated = await alice.client.post(`${ENDPOINTS}/${id}/rotate-secret`, {});
    assert.equal(rotated.status, 200, rotated.text);
    assert.notEqual(rotated.body.secret, created.body.secret);
    assert.equal(rotated.body.previous_secret_expires_at, new Date(clock.now().getTime() + 24 * 3_600_000).toISOString());
    const immediate = await alice.client.post(`${ENDPOINTS}/${id}/rotate-secret`, { overlap_seconds: 0 });
    assert.equal(immediate.body.previous_secret_expires_at, null);

    assert.equal((await alice.client.delete(`${ENDPOINTS}/${id}`)).status, 204);
    assertProblem(await alice.client.get(`${ENDPOINTS}/${id}`), 404, 'not_found');
  });
});

describe('webhook endpoints API, deliveries and re-send (WEBHOOK_ALLOW_PRIVATE for a local receiver)', () => {
  let app: TestApp;
  let admin: TestUser;
  let customer: TestUser;
  let receiver: WebhookReceiver;
  const clock = new ManualClock('2026-03-01T12:00:00Z');
  before(async () => {
    app = await startTestApp({
      clock,
      worker: false,
      env: { WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE: 'true', SANDBOX_PAYMENTS_WEBHOOK_SECRET: PAYMENTS_SECRET },
    });
    admin = await login(app.url, app.admin.email, app.admin.password);
    customer = await registerUser(app.url);
    receiver = await new WebhookReceiver().start();
  });
  after(async () => {
    await receiver.stop();
    await app.close();
  });

  test('a credit is delivered, its attempts listed, re-sent on request, and verified during a rotation with both secrets', async () => {
    const created = await customer.client.post(ENDPOINTS, { url: receiver.url, events: ['wallet.credited'] });
    assert.equal(created.status, 201, created.text);
    const { id, secret } = created.body;
    receiver.secrets = [secret];
    receiver.script.push(500);

    const credit = await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 700, reason: 'welcome' });
    assert.equal(credit.status, 201, credit.text);
    const engine = app.server.runtime.engine;
    assert.equal(await engine.deliverWebhooks(), 1);

    let deliveries = await customer.client.get(`${ENDPOINTS}/${id}/deliveries`);
    assert.equal(deliveries.status, 200, deliveries.text);
    const [delivery] = deliveries.body.items;
    assert.equal(delivery.event_type, 'wallet.credited');
    assert.equal(delivery.status, 'pending');
    assert.deepEqual(
      delivery.attempts.map((a: any) => [a.succeeded, a.response_status, a.response_excerpt]),
      [[false, 500, 'error 500']],
    );

    // Re-sent on request: due now, not at the schedule's next step.
    const resent = await customer.client.post(`${ENDPOINTS}/${id}/deliveries/${delivery.event_id}/resend`, {});
    assert.equal(resent.status, 202, resent.text);
    assert.equal(resent.body.next_attempt_at, clock.now().toISOString());
    assert.equal(await engine.deliverWebhooks(), 1);
    deliveries = await customer.client.get(`${ENDPOINTS}/${id}/deliveries`);
    assert.equal(deliveries.body.items[0].status, 'succeeded');
    assert.equal(deliveries.body.items[0].attempts.length, 2);
    const other = await registerUser(app.url);
    assertProblem(await other.client.get(`${ENDPOINTS}/${id}/deliveries`), 404, 'not_found');
    assertProblem(await other.client.post(`${ENDPOINTS}/${id}/deliveries/${delivery.event_id}/resend`, {}), 404, 'not_found');
    assertProblem(await customer.client.post(`${ENDPOINTS}/${id}/deliveries/evt_${'0'.repeat(32)}/resend`, {}), 404, 'not_found');

    // Rotation: during the overlap every delivery carries both signatures; a receiver still on the
    // old secret and one already on the new one both verify it.
    const rotated = await customer.client.post(`${ENDPOINTS}/${id}/rotate-secret`, { overlap_seconds: 3600 });
    await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 1, reason: 'during the overlap' });
    assert.equal(await engine.deliverWebhooks(), 1);
    const during = receiver.received.at(-1)!;
    const headers = { 'webhook-id': during.id, 'webhook-timestamp': during.timestamp, 'webhook-signature': during.signature };
    new Webhook(secret).verify(during.body, headers);
    new Webhook(rotated.body.secret).verify(during.body, headers);

    clock.advance(3600 * 1000);
    await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 2, reason: 'after the overlap' });
    assert.equal(await engine.deliverWebhooks(), 1);
    const after = receiver.received.at(-1)!;
    const afterHeaders = { 'webhook-id': after.id, 'webhook-timestamp': after.timestamp, 'webhook-signature': after.signature };
    new Webhook(rotated.body.secret).verify(after.body, afterHeaders);
    assert.throws(() => new Webhook(secret).verify(after.body, afterHeaders), /No matching signature/);
    assert.equal(JSON.parse(after.body).data.amount_minor, 2);
  });

  test('top-ups: credited and failed are each one event carrying the top-up, however often the processor says so', async () => {
    const buyer = await registerUser(app.url);
    const created = await buyer.client.post(ENDPOINTS, { url: receiver.url, events: ['top_up.credited', 'top_up.failed'] });
    assert.equal(created.status, 201, created.text);
    receiver.secrets = [created.body.secret];
    const engine = app.server.runtime.engine;
    const startTopUp = async (amount: number) => {
      const answer = await buyer.client.post('/v1/top-ups', { amount_minor: amount }, { headers: { 'idempotency-key': randomUUID() } });
      assert.equal(answer.status, 201, answer.text);
      return answer.body as { id: string };
    };
    const processorSays = async (topUpId: string, amount: number, type: SandboxEventType) => {
      const body = JSON.stringify({
        id: `evt_sbx_${randomUUID()}`,
        type,
        created: Math.floor(clock.now().getTime() / 1000),
        data: { reference: `sbx_${topUpId}`, payment_id: `sbx_pay_${topUpId}`, currency: 'USD', top_up_id: topUpId, amount_minor: amount },
      });
      const answer = await call(app.url, 'POST', '/webhooks/payments/sandbox', {
        rawBody: body,
        headers: { [SANDBOX_SIGNATURE_HEADER]: signSandbox(body, PAYMENTS_SECRET, clock.now()) },
      });
      assert.equal(answer.status, 200, answer.text);
    };

    const paid = await startTopUp(1500);
    await processorSays(paid.id, 1500, 'payment.succeeded');
    await processorSays(paid.id, 1500, 'payment.succeeded'); // a second confirmation: no second credit, no second event
    const failed = await startTopUp(900);
    await processorSays(failed.id, 900, 'payment.failed');
    assert.equal(await engine.deliverWebhooks(), 2);
    assert.equal(await engine.deliverWebhooks(), 0);

    const bodies = receiver.received.slice(-2).map((r) => JSON.parse(r.body));
    assert.deepEqual(
      bodies.map((b) => [b.type, b.data.id, b.data.status, b.data.credited_minor]).sort(),
      [
        ['top_up.credited', paid.id, 'credited', 1500],
        ['top_up.failed', failed.id, 'failed', null],
      ].sort(),
    );
    assert.equal((await buyer.client.get('/v1/wallet')).body.balance_minor, 1500);
  });
});
