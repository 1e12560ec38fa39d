import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../support/clock.ts';
import { ProviderError, type OrderRef, type PurchaseRequest } from '../../src/providers/provider.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { startFakeTextVerified, type FakeTextVerified, type FakeTextVerifiedOptions } from '../support/fake-textverified.ts';

/**
 * Voice verifications on TextVerified: the call comes through the verification's `calls` link
 * (`GET /calls`, the document's `Call`: id, from, to, createdAt, recordingUri), read only for orders
 * bought with capability voice.
 */
const T0 = '2026-03-01T12:00:00.000Z';

async function setup(t: TestContext, fakeOptions: FakeTextVerifiedOptions = {}) {
  const clock = new ManualClock(T0);
  const fake = await startFakeTextVerified({ clock, voiceServices: ['whatsapp'], ...fakeOptions });
  t.after(() => fake.close());
  const provider = new TextVerifiedProvider({
    baseUrl: fake.url,
    apiUsername: 'operator@example.com',
    apiKey: 'tv-test-key',
    requestsPerSecond: 0,
    timeoutMs: 2000,
    clock,
  });
  return { clock, fake, provider };
}

const purchase = (o: Partial<PurchaseRequest> = {}): PurchaseRequest => ({
  service: 'whatsapp',
  country: 'US',
  maxCostMinor: 200,
  clientRef: 'ver_0001',
  options: { capability: 'voice' },
  ...o,
});

const callReads = (fake: FakeTextVerified) => fake.state.requests.filter((r) => r.path === '/api/pub/v2/calls');

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

describe('TextVerified voice: the call list', () => {
  test('a call to a voice order is a message naming its recording, with no code invented; polled again it is the same message', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    const ref: OrderRef = { ...order, since: new Date(T0), capability: 'voice' };
    assert.deepEqual(await provider.check(ref), { state: 'waiting', messages: [] });

    clock.advance(40_000);
    const call = fake.controls.deliverCall(order.providerOrderId, { from: '8005550199', recordingUri: 'https://recordings.example.test/rec_1.mp3' });
    const check = await provider.check(ref);
    assert.equal(check.state, 'received');
    assert.deepEqual(check.messages, [
      {
        providerMessageId: `tv-call-${call.id}`,
        text: 'Voice call from 8005550199; the code is spoken in the recording: https://recordings.example.test/rec_1.mp3',
        code: null,
        receivedAt: new Date('2026-03-01T12:00:40.000Z'),
      },
    ]);
    assert.deepEqual((await provider.check(ref)).messages, check.messages, 'one call, one identity');
    for (const read of callReads(fake)) {
      assert.deepEqual(Object.fromEntries(read.query), { reservationId: order.providerOrderId, reservationType: 'verification' }, 'the calls link, as given');
    }
  });

  test('an SMS order never reads the call list; a voice order reads it only while no SMS came', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const sms = await provider.buy(purchase({ options: {} }));
    clock.advance(1_000);
    await provider.check({ ...sms, since: new Date(T0) });
    fake.controls.deliverCall(sms.providerOrderId);
    assert.deepEqual((await provider.check({ ...sms, since: new Date(T0) })).messages, [], 'a call to an SMS order is not read');
    assert.equal(callReads(fake).length, 0);

    const voice = await provider.buy(purchase({ clientRef: 'ver_0002' }));
    const ref: OrderRef = { ...voice, since: clock.now(), capability: 'voice' };
    await provider.check(ref);
    assert.equal(callReads(fake).length, 1);
    clock.advance(1_000);
    fake.controls.deliverSms(voice.providerOrderId, { text: 'Your WhatsApp code is 482913', code: '482913' });
    const check = await provider.check(ref);
    assert.deepEqual(
      check.messages.map((m) => m.code),
      ['482913'],
    );
    assert.equal(callReads(fake).length, 1, 'an SMS with the code: the call list is not read again');
  });

  test('calls before the purchase (a previous holder of the number) and calls without a recording are no messages', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    clock.advance(60_000);
    const since = clock.now();
    fake.controls.deliverCall(order.providerOrderId, { at: new Date(T0) });
    clock.advance(1_000);
    fake.controls.deliverCall(order.providerOrderId, { recordingUri: null });
    const check = await provider.check({ ...order, since, capability: 'voice' });
    assert.deepEqual(check.messages, []);
    // TextVerified calls it completed (it bills the call), and nothing reached us to hand over.
    assert.equal(check.state, 'completed');
  });

  test('the call list is read over every page (links.next)', async (t) => {
    const { clock, fake, provider } = await setup(t, { pageSize: 1 });
    const order = await provider.buy(purchase());
    for (let i = 0; i < 3; i += 1) {
      clock.advance(1_000);
      fake.controls.deliverCall(order.providerOrderId);
    }
    const check = await provider.check({ ...order, since: new Date(T0), capability: 'voice' });
    assert.equal(check.messages.length, 3);
    assert.equal(new Set(check.messages.map((m) => m.providerMessageId)).size, 3);
    assert.equal(callReads(fake).length, 3);
    assert.deepEqual(
      callReads(fake).map((r) => r.query.get('page')),
      [null, '2', '3'],
    );
  });

  test('the scenario: the service calls a voice order after the configured time', async (t) => {
    const { clock, provider } = await setup(t, { voiceCall: { afterSeconds: 30 } });
    const order = await provider.buy(purchase());
    const ref: OrderRef = { ...order, since: new Date(T0), capability: 'voice' };
    clock.advance(29_000);
    assert.deepEqual((await provider.check(ref)).messages, []);
    clock.advance(31_000);
    const check = await provider.check(ref);
    assert.equal(check.state, 'received');
    assert.deepEqual(
      check.messages.map((m) => m.receivedAt),
      [new Date('2026-03-01T12:00:30.000Z')],
    );
  });

  test('a refused cancel after the call came is already_received', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    clock.advance(5_000);
    fake.controls.deliverCall(order.providerOrderId);
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'already_received' });
    assert.equal(fake.state.verifications.get(order.providerOrderId)!.state, 'verificationCompleted');
  });

  test('a voice order whose details lack the calls link (required by the document) is malformed, not read as "no call"; an SMS order does not need it', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    const withoutCalls = () => {
      const details = {
        id: order.providerOrderId,
        number: '2025550100',
        createdAt: T0,
        endsAt: '2026-03-01T12:15:00.000Z',
        state: 'verificationPending',
        totalCost: 1.25,
        serviceName: 'whatsapp',
        cancel: { canCancel: true },
        sms: { method: 'GET', href: `${fake.url}/api/pub/v2/sms?reservationId=${order.providerOrderId}&reservationType=verification` },
      };
      fake.controls.failNext('details', { type: 'status', status: 200, body: JSON.stringify(details), contentType: 'application/json' });
    };
    withoutCalls();
    const error = await failure(provider.check({ ...order, since: new Date(T0), capability: 'voice' }));
    assert.equal(error.code, 'malformed_response');
    withoutCalls();
    assert.deepEqual(await provider.check({ ...order, since: new Date(T0) }), { state: 'waiting', messages: [] });
  });

  test('a call list answer that breaks the document is malformed_response, never a message', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    clock.advance(5_000);
    fake.controls.failNext('calls', { type: 'status', status: 200, body: '{"data":[{"id":"c1","to":"2025550100"}]}' });
    const error = await failure(provider.check({ ...order, since: new Date(T0), capability: 'voice' }));
    assert.equal(error.code, 'malformed_response');
  });
});
