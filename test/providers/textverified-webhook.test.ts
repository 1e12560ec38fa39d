import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../support/clock.ts';
import { MalformedWebhookError, type WebhookEvent } from '../../src/providers/provider.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { parseTextVerifiedWebhook, textVerifiedWebhooks, verifyTextVerifiedWebhook } from '../../src/providers/textverified/webhook.ts';
import { signWebhook as signTextVerifiedWebhook, startFakeTextVerified } from '../support/fake-textverified.ts';

const secret = 'whsec_0123456789abcdef';

/** A `v2.sms.received` delivery in the documented shape: SmsWebhookEvent has no SMS id. */
const smsEvent = {
  id: 'evt_01',
  event: 'v2.sms.received',
  occurredAt: '2026-03-01T12:00:31.000Z',
  attempt: 1,
  idempotencyKey: 'idem_01',
  data: {
    from: '32665',
    to: '2025550100',
    createdAt: '2026-03-01T12:00:30.000Z',
    smsContent: 'Your WhatsApp code is 123-456',
    parsedCode: '123456',
    encrypted: false,
    reservationId: 'lr_000001',
  },
};
const rawBody = JSON.stringify(smsEvent);

describe('TextVerified webhook signature', () => {
  test('a correctly signed body is accepted, as a string or as bytes', () => {
    const signatureHeader = signTextVerifiedWebhook(rawBody, secret);
    assert.match(signatureHeader, /^HMAC-SHA512=[A-Za-z0-9+/]{86}==$/);
    assert.equal(verifyTextVerifiedWebhook({ rawBody, signatureHeader, secret }), true);
    assert.equal(verifyTextVerifiedWebhook({ rawBody: Buffer.from(rawBody), signatureHeader, secret }), true);
  });

  test('a forged signature is rejected', () => {
    const signatureHeader = `HMAC-SHA512=${randomBytes(64).toString('base64')}`;
    assert.equal(verifyTextVerifiedWebhook({ rawBody, signatureHeader, secret }), false);
  });

  test('a signature made with another secret is rejected', () => {
    const signatureHeader = signTextVerifiedWebhook(rawBody, 'whsec_someone_else');
    assert.equal(verifyTextVerifiedWebhook({ rawBody, signatureHeader, secret }), false);
  });

  test('a truncated or padded header is rejected without throwing', () => {
    const signatureHeader = signTextVerifiedWebhook(rawBody, secret);
    for (const broken of [signatureHeader.slice(0, -4), signatureHeader.slice(0, 20), `${signatureHeader}AAAA`, 'HMAC-SHA512=']) {
      assert.equal(verifyTextVerifiedWebhook({ rawBody, signatureHeader: broken, secret }), false, broken);
    }
  });

  test('a tampered body is rejected', () => {
    const signatureHeader = signTextVerifiedWebhook(rawBody, secret);
    const tampered = rawBody.replace('123456', '999999');
    assert.equal(verifyTextVerifiedWebhook({ rawBody: tampered, signatureHeader, secret }), false);
    assert.equal(verifyTextVerifiedWebhook({ rawBody: `${rawBody} `, signatureHeader, secret }), false);
  });

  test('a missing header, another scheme or an empty secret is rejected', () => {
    const signatureHeader = signTextVerifiedWebhook(rawBody, secret);
    assert.equal(verifyTextVerifiedWebhook({ rawBody, signatureHeader: undefined, secret }), false);
    assert.equal(verifyTextVerifiedWebhook({ rawBody, signatureHeader: signatureHeader.replace('HMAC-SHA512', 'HMAC-SHA256'), secret }), false);
    assert.equal(verifyTextVerifiedWebhook({ rawBody, signatureHeader: signTextVerifiedWebhook(rawBody, ''), secret: '' }), false);
  });
});

describe('TextVerified webhook capability', () => {
  test('verify reads X-Webhook-Signature from the request headers and checks it over the raw bytes', () => {
    const webhooks = textVerifiedWebhooks(secret);
    const raw = Buffer.from(rawBody);
    assert.equal(webhooks.verify({ rawBody: raw, headers: { 'x-webhook-signature': signTextVerifiedWebhook(rawBody, secret) } }), true);
    assert.equal(webhooks.verify({ rawBody: raw, headers: { 'x-webhook-signature': signTextVerifiedWebhook(rawBody, 'whsec_other') } }), false);
    assert.equal(webhooks.verify({ rawBody: raw, headers: {} }), false);
    // A repeated header arrives as an array: not a signature we accept.
    assert.equal(webhooks.verify({ rawBody: raw, headers: { 'x-webhook-signature': [signTextVerifiedWebhook(rawBody, secret)] } }), false);
  });

  test('the adapter offers the capability only with a secret', () => {
    const base = { baseUrl: 'http://127.0.0.1:9', apiUsername: 'u', apiKey: 'k', clock: new ManualClock('2026-03-01T12:00:00Z') };
    assert.equal(new TextVerifiedProvider(base).webhooks, undefined);
    assert.equal(new TextVerifiedProvider({ ...base, webhookSecret: secret }).webhooks?.verify({
      rawBody: Buffer.from(rawBody),
      headers: { 'x-webhook-signature': signTextVerifiedWebhook(rawBody, secret) },
    }), true);
  });
});

describe('TextVerified webhook body', () => {
  test('v2.sms.received becomes a vendor-neutral event: ids, the order, the number, the message', () => {
    const event = parseTextVerifiedWebhook(rawBody);
    assert.equal(event.eventId, 'evt_01');
    assert.equal(event.dedupeKey, 'idem_01');
    assert.deepEqual(event.occurredAt, new Date('2026-03-01T12:00:31.000Z'));
    assert.equal(event.sms?.providerOrderId, 'lr_000001');
    assert.equal(event.sms?.phoneNumber, '12025550100');
    const message = event.sms!.message;
    assert.deepEqual(
      { text: message.text, code: message.code, receivedAt: message.receivedAt },
      { text: 'Your WhatsApp code is 123-456', code: '123456', receivedAt: new Date('2026-03-01T12:00:30.000Z') },
    );
    assert.match(message.providerMessageId, /^tv-[0-9a-f]{32}$/);
  });

  test('the identity of a message is what both paths carry: an id the document does not define changes nothing', () => {
    const plain = parseTextVerifiedWebhook(rawBody).sms!.message.providerMessageId;
    const withId = parseTextVerifiedWebhook(JSON.stringify({ ...smsEvent, data: { ...smsEvent.data, id: 'sms_77' } })).sms!.message.providerMessageId;
    const plusOne = parseTextVerifiedWebhook(JSON.stringify({ ...smsEvent, data: { ...smsEvent.data, to: '+12025550100' } })).sms!.message.providerMessageId;
    const other = parseTextVerifiedWebhook(JSON.stringify({ ...smsEvent, data: { ...smsEvent.data, smsContent: 'Your WhatsApp code is 654-321' } }))
      .sms!.message.providerMessageId;
    assert.equal(withId, plain);
    assert.equal(plusOne, plain, 'the number written with or without +1 is the same number');
    assert.notEqual(other, plain);
  });

  test('the webhook and the SMS list give the same SMS the same message id', async (t) => {
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    const fake = await startFakeTextVerified({ clock, webhookSecret: secret });
    t.after(() => fake.close());
    const provider = new TextVerifiedProvider({ baseUrl: fake.url, apiUsername: 'operator@example.com', apiKey: 'tv-test-key', requestsPerSecond: 0, clock });
    const since = clock.now();
    const order = await provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 200, clientRef: 'ver_1' });
    clock.advance(12_345);
    const sms = fake.controls.deliverSms(order.providerOrderId, { text: 'Your code is 424242', code: '424242' });
    const polled = await provider.check({ ...order, since });
    const pushed = parseTextVerifiedWebhook(
      JSON.stringify({ id: 'evt_1', event: 'v2.sms.received', occurredAt: clock.now().toISOString(), attempt: 1, idempotencyKey: 'k1', data: fake.controls.smsWebhookData(sms) }),
    );
    assert.equal(polled.messages.length, 1);
    assert.equal(pushed.sms?.message.providerMessageId, polled.messages[0]!.providerMessageId);
  });

  test('other events parse without an SMS, so they can be acknowledged', () => {
    const event = parseTextVerifiedWebhook(
      JSON.stringify({ id: 'evt_02', event: 'v2.reservation.created', occurredAt: '2026-03-01T12:00:00Z', attempt: 2, idempotencyKey: 'k', data: { id: 'lr_1', type: 'verification' } }),
    );
    assert.deepEqual(event, { eventId: 'evt_02', dedupeKey: 'k', occurredAt: new Date('2026-03-01T12:00:00Z'), sms: null });
  });

  test('malformed bodies throw', () => {
    const bad = [
      'not json',
      JSON.stringify({ ...smsEvent, id: undefined }),
      JSON.stringify({ ...smsEvent, occurredAt: 'yesterday' }),
      JSON.stringify({ ...smsEvent, attempt: 'one' }),
      JSON.stringify({ ...smsEvent, data: { ...smsEvent.data, to: undefined } }),
      JSON.stringify({ ...smsEvent, data: { ...smsEvent.data, createdAt: 12 } }),
    ];
    for (const body of bad) assert.throws(() => parseTextVerifiedWebhook(body), MalformedWebhookError, body);
  });

  test('end to end: the fake upstream signs a delivery and a receiver verifies and parses it', async (t) => {
    const received: { valid: boolean; event: WebhookEvent | null }[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const header = req.headers['x-webhook-signature'];
        const valid = verifyTextVerifiedWebhook({ rawBody: body, signatureHeader: typeof header === 'string' ? header : undefined, secret });
        received.push({ valid, event: valid ? parseTextVerifiedWebhook(body) : null });
        res.writeHead(valid ? 200 : 401).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
    const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/textverified`;

    const fake = await startFakeTextVerified({ clock: new ManualClock('2026-03-01T12:00:00Z'), webhookSecret: secret });
    t.after(() => fake.close());

    const good = await fake.controls.sendWebhook(target, { event: 'v2.sms.received', id: 'evt_9', data: smsEvent.data });
    const forged = await fake.controls.sendWebhook(target, { event: 'v2.sms.received', data: smsEvent.data }, { secret: 'whsec_attacker' });
    assert.deepEqual([good.status, forged.status], [200, 401]);
    assert.equal(received.length, 2);
    assert.equal(received[0]!.valid, true);
    assert.equal(received[0]!.event?.eventId, 'evt_9');
    assert.equal(received[0]!.event?.occurredAt.toISOString(), '2026-03-01T12:00:00.000Z');
    assert.equal(received[1]!.valid, false);
  });
});
