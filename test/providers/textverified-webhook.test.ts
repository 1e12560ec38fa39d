import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../support/clock.ts';
import {
  isSmsReceivedEvent,
  MalformedWebhookError,
  parseTextVerifiedWebhook,
  signTextVerifiedWebhook,
  verifyTextVerifiedWebhook,
  type TextVerifiedWebhookEvent,
} from '../../src/providers/textverified/webhook.ts';
import { startFakeTextVerified } from '../support/fake-textverified.ts';

const secret = 'whsec_0123456789abcdef';

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

describe('TextVerified webhook body', () => {
  test('v2.sms.received gives a typed SMS with the reservation id', () => {
    const event = parseTextVerifiedWebhook(rawBody);
    assert.ok(isSmsReceivedEvent(event));
    assert.deepEqual(event, {
      id: 'evt_01',
      event: 'v2.sms.received',
      occurredAt: new Date('2026-03-01T12:00:31.000Z'),
      attempt: 1,
      idempotencyKey: 'idem_01',
      data: {
        id: null,
        from: '32665',
        to: '2025550100',
        createdAt: new Date('2026-03-01T12:00:30.000Z'),
        smsContent: 'Your WhatsApp code is 123-456',
        parsedCode: '123456',
        reservationId: 'lr_000001',
      },
    });
  });

  test('other events parse with their data untouched, so they can be acknowledged', () => {
    const event = parseTextVerifiedWebhook(
      JSON.stringify({ id: 'evt_02', event: 'v2.reservation.created', occurredAt: '2026-03-01T12:00:00Z', attempt: 2, idempotencyKey: 'k', data: { id: 'lr_1', type: 'verification' } }),
    );
    assert.equal(isSmsReceivedEvent(event), false);
    assert.deepEqual(event.data, { id: 'lr_1', type: 'verification' });
    assert.equal(event.attempt, 2);
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
    const received: { valid: boolean; event: TextVerifiedWebhookEvent | null }[] = [];
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
    assert.equal(received[0]!.event?.id, 'evt_9');
    assert.equal(received[0]!.event?.occurredAt.toISOString(), '2026-03-01T12:00:00.000Z');
    assert.equal(received[1]!.valid, false);
  });
});
