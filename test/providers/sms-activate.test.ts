import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '../support/clock.ts';
import { ProviderError, type LookupRequest, type PurchaseRequest } from '../../src/providers/provider.ts';
import { SmsActivateProvider, type SmsActivateOptions } from '../../src/providers/sms-activate/adapter.ts';
import { startFakeSmsActivate, type FakeSmsActivateOptions } from '../support/fake-sms-activate.ts';

const T0 = '2026-03-01T12:00:00.000Z';

async function setup(t: TestContext, options: { fake?: FakeSmsActivateOptions; adapter?: Partial<SmsActivateOptions> } = {}) {
  const clock = new ManualClock(T0);
  const fake = await startFakeSmsActivate({ clock, ...options.fake });
  t.after(() => fake.close());
  const provider = new SmsActivateProvider({
    baseUrl: fake.url,
    apiKey: 'sa-test-key',
    requestsPerSecond: 0,
    timeoutMs: 2000,
    clock,
    ...options.adapter,
  });
  return { clock, fake, provider };
}

function purchase(overrides: Partial<PurchaseRequest> = {}): PurchaseRequest {
  return { service: 'whatsapp', country: 'US', maxCostMinor: 60, clientRef: 'ver_0001', ...overrides };
}

function lookupOf(requestedAt: Date, overrides: Partial<LookupRequest> = {}): LookupRequest {
  return { ...purchase(), requestedAt, claimedOrderIds: new Set(), ...overrides };
}

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

const actions = (fake: { state: { requests: { query: URLSearchParams }[] } }) => fake.state.requests.map((r) => r.query.get('action'));

describe('SMS-Activate adapter: purchase', () => {
  test('getNumberV2 gives the number, the stated end time (Moscow time on the wire) and the cost', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    assert.deepEqual(order, {
      providerOrderId: '700000001',
      phoneNumber: '12025551000',
      endsAt: new Date('2026-03-01T12:20:00.000Z'),
      costMinor: 50,
    });
    const sent = fake.state.requests[0]!.query;
    assert.deepEqual(
      [sent.get('action'), sent.get('service'), sent.get('country'), sent.get('maxPrice'), sent.get('api_key')],
      ['getNumberV2', 'wa', '187', '0.60', 'sa-test-key'],
    );
    assert.equal(fake.state.purchases, 1);
  });

  test('a seller without getNumberV2 (BAD_ACTION) is asked with getNumber, and remembered', async (t) => {
    const { fake, provider } = await setup(t, { fake: { supportsNumberV2: false } });
    const first = await provider.buy(purchase());
    assert.deepEqual(first, { providerOrderId: '700000001', phoneNumber: '12025551000', endsAt: new Date('2026-03-01T12:20:00.000Z'), costMinor: null });
    await provider.buy(purchase({ clientRef: 'ver_0002' }));
    assert.deepEqual(actions(fake), ['getNumberV2', 'getNumber', 'getNumber']);
    assert.equal(fake.state.purchases, 2);
  });

  test('without a stated end time, endsAt is activationTime plus the configured lifetime', async (t) => {
    const { provider } = await setup(t, { fake: { statesEndTime: false }, adapter: { activationLifetimeSeconds: 900 } });
    const order = await provider.buy(purchase());
    assert.deepEqual(order.endsAt, new Date('2026-03-01T12:15:00.000Z'));
  });

  test('definite refusals: no numbers, price above the cap, bad key, no balance, unmapped service', async (t) => {
    const { fake, provider } = await setup(t);
    const noNumbers = await failure(provider.buy(purchase({ service: 'google' })));
    assert.deepEqual([noNumbers.kind, noNumbers.code], ['definite', 'no_numbers']);

    const tooExpensive = await failure(provider.buy(purchase({ maxCostMinor: 40 })));
    assert.deepEqual([tooExpensive.kind, tooExpensive.code], ['definite', 'price_exceeds_max']);
    assert.match(tooExpensive.message, /WRONG_MAX_PRICE:0\.5/);

    const unmapped = await failure(provider.buy(purchase({ service: 'myspace' })));
    assert.deepEqual([unmapped.kind, unmapped.code], ['definite', 'rejected']);
    assert.equal(fake.state.purchases, 0);

    const badKey = new SmsActivateProvider({ baseUrl: fake.url, apiKey: 'wrong', requestsPerSecond: 0, clock: new ManualClock(T0) });
    const refused = await failure(badKey.buy(purchase()));
    assert.deepEqual([refused.kind, refused.code], ['definite', 'bad_credentials']);
  });

  test('an empty upstream float is definite upstream_balance', async (t) => {
    const { fake, provider } = await setup(t, { fake: { balance: 0.1 } });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['definite', 'upstream_balance']);
    assert.equal(fake.state.purchases, 0);
  });

  test('429 is definite rate_limited with Retry-After', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('getNumberV2', { type: 'rateLimit', retryAfter: '5' });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code, error.retryAfterSeconds], ['definite', 'rate_limited', 5]);
  });

  test('5xx and ERROR_SQL are ambiguous on a purchase and definite on a read', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('getNumberV2', { type: 'status', status: 500, body: 'Internal Server Error', contentType: 'text/plain' });
    const buy500 = await failure(provider.buy(purchase()));
    assert.deepEqual([buy500.kind, buy500.code], ['ambiguous', 'server_error']);

    fake.controls.failNext('getNumberV2', { type: 'status', status: 200, body: 'ERROR_SQL', contentType: 'text/html' });
    const buySql = await failure(provider.buy(purchase()));
    assert.deepEqual([buySql.kind, buySql.code], ['ambiguous', 'server_error']);

    fake.controls.failNext('getBalance', { type: 'status', status: 200, body: 'ERROR_SQL', contentType: 'text/html' });
    const readSql = await failure(provider.balance());
    assert.deepEqual([readSql.kind, readSql.code], ['definite', 'server_error']);
  });

  test('an HTML page is never read as a number: 200 → malformed_response, 502 → server_error, both ambiguous', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('getNumberV2', { type: 'html', status: 200 });
    const portal = await failure(provider.buy(purchase()));
    assert.deepEqual([portal.kind, portal.code], ['ambiguous', 'malformed_response']);

    fake.controls.failNext('getNumberV2', { type: 'html', status: 502 });
    const gateway = await failure(provider.buy(purchase()));
    assert.deepEqual([gateway.kind, gateway.code, gateway.status], ['ambiguous', 'server_error', 502]);

    // A 4xx page is a refusal whatever its body: nothing was processed.
    fake.controls.failNext('getNumberV2', { type: 'html', status: 404 });
    const notFound = await failure(provider.buy(purchase()));
    assert.deepEqual([notFound.kind, notFound.code, notFound.status], ['definite', 'rejected', 404]);
    assert.equal(fake.state.purchases, 0);
  });

  test('a malformed phone number or an unknown answer is ambiguous malformed_response', async (t) => {
    const { fake, provider } = await setup(t);
    const body = JSON.stringify({ activationId: 1, phoneNumber: '12-34', activationCost: '0.50' });
    fake.controls.failNext('getNumberV2', { type: 'status', status: 200, body, contentType: 'application/json' });
    const badPhone = await failure(provider.buy(purchase()));
    assert.deepEqual([badPhone.kind, badPhone.code], ['ambiguous', 'malformed_response']);

    fake.controls.failNext('getNumberV2', { type: 'status', status: 200, body: 'SOMETHING_NEW', contentType: 'text/html' });
    const unknown = await failure(provider.buy(purchase()));
    assert.deepEqual([unknown.kind, unknown.code], ['ambiguous', 'malformed_response']);

    fake.controls.failNext('getNumber', { type: 'status', status: 200, body: 'ACCESS_NUMBER:123:not-a-phone', contentType: 'text/html' });
    fake.controls.failNext('getNumberV2', { type: 'status', status: 200, body: 'BAD_ACTION', contentType: 'text/html' });
    const badText = await failure(provider.buy(purchase()));
    assert.deepEqual([badText.kind, badText.code], ['ambiguous', 'malformed_response']);
  });

  test('a refused connection is definite unavailable', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const provider = new SmsActivateProvider({
      baseUrl: `http://127.0.0.1:${port}/stubs/handler_api.php`,
      apiKey: 'k',
      requestsPerSecond: 0,
      clock: new ManualClock(T0),
    });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['definite', 'unavailable']);
  });
});

describe('SMS-Activate adapter: resolving an unclear purchase', () => {
  test('connection dropped after the order was created: buy is ambiguous, lookup finds it, one purchase', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const requestedAt = clock.now();
    fake.controls.failNext('getNumberV2', { type: 'dropAfterEffect' });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'connection_lost']);
    assert.equal(fake.state.purchases, 1);

    clock.advance(3000);
    const result = await provider.lookup(lookupOf(requestedAt));
    assert.deepEqual(result, {
      status: 'found',
      order: { providerOrderId: '700000001', phoneNumber: '12025551000', endsAt: new Date('2026-03-01T12:20:00.000Z'), costMinor: 50 },
    });
    assert.equal(fake.state.purchases, 1);
    assert.equal(actions(fake).filter((a) => a === 'getNumberV2' || a === 'getNumber').length, 1);
  });

  test('an answer that never comes is ambiguous timeout; lookup finds the order', async (t) => {
    const { clock, fake, provider } = await setup(t, { adapter: { timeoutMs: 200 } });
    const requestedAt = clock.now();
    fake.controls.failNext('getNumberV2', { type: 'hangAfterEffect' });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'timeout']);
    const result = await provider.lookup(lookupOf(requestedAt));
    assert.equal(result.status === 'found' && result.order.providerOrderId, '700000001');
    assert.equal(fake.state.purchases, 1);
  });

  test('nothing in the list: unknown during the settle window, absent after it', async (t) => {
    const { clock, provider } = await setup(t, { adapter: { lookupSettleSeconds: 90 } });
    const requestedAt = clock.now();
    clock.advance(30_000);
    assert.deepEqual(await provider.lookup(lookupOf(requestedAt)), { status: 'unknown' });
    clock.advance(60_000);
    assert.deepEqual(await provider.lookup(lookupOf(requestedAt)), { status: 'absent' });
  });

  test('several candidates are unknown; a claimed one is never adopted', async (t) => {
    const { clock, provider } = await setup(t);
    const requestedAt = clock.now();
    const first = await provider.buy(purchase({ clientRef: 'a' }));
    const second = await provider.buy(purchase({ clientRef: 'b' }));
    assert.deepEqual(await provider.lookup(lookupOf(requestedAt)), { status: 'unknown' });
    const result = await provider.lookup(lookupOf(requestedAt, { claimedOrderIds: new Set([first.providerOrderId]) }));
    assert.equal(result.status === 'found' && result.order.providerOrderId, second.providerOrderId);
    const none = await provider.lookup(lookupOf(requestedAt, { claimedOrderIds: new Set([first.providerOrderId, second.providerOrderId]) }));
    assert.deepEqual(none, { status: 'unknown' }); // still inside the settle window
  });

  test('older activations, other services, other countries and pricier ones are not candidates', async (t) => {
    const { clock, fake, provider } = await setup(t);
    fake.controls.createActivation({ service: 'wa', country: '187', createdAt: new Date(clock.now().getTime() - 600_000) });
    fake.controls.createActivation({ service: 'tg', country: '187' });
    fake.controls.createActivation({ service: 'wa', country: '16' });
    fake.controls.createActivation({ service: 'wa', country: '187', cost: 0.9 });
    const ours = fake.controls.createActivation({ service: 'wa', country: '187', cost: 0.5 });
    const result = await provider.lookup(lookupOf(clock.now()));
    assert.equal(result.status === 'found' && result.order.providerOrderId, ours.id);
  });
});

describe('SMS-Activate adapter: messages and states', () => {
  test('an SMS delivered is returned with its code and full text; polling again yields the same id', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const since = clock.now();
    const order = await provider.buy(purchase());
    assert.deepEqual(await provider.check({ ...order, since }), { state: 'waiting', messages: [] });

    clock.advance(40_000);
    fake.controls.deliverSms(order.providerOrderId, { code: '123456', text: 'Your WhatsApp code 123-456' });
    const first = await provider.check({ ...order, since });
    assert.equal(first.state, 'received');
    assert.equal(first.messages.length, 1);
    assert.deepEqual(
      { text: first.messages[0]!.text, code: first.messages[0]!.code, receivedAt: first.messages[0]!.receivedAt },
      { text: 'Your WhatsApp code 123-456', code: '123456', receivedAt: new Date('2026-03-01T12:00:40.000Z') },
    );
    assert.match(first.messages[0]!.providerMessageId, /^[0-9a-f]{32}$/);

    clock.advance(5000);
    const again = await provider.check({ ...order, since });
    const batched = await provider.checkMany([{ ...order, since }]);
    assert.equal(again.messages[0]!.providerMessageId, first.messages[0]!.providerMessageId);
    assert.equal(batched.get(order.providerOrderId)?.messages[0]?.providerMessageId, first.messages[0]!.providerMessageId);
    assert.equal(batched.get(order.providerOrderId)?.messages[0]?.text, 'Your WhatsApp code 123-456');
  });

  test('without getFullSms the code is the text, and the message id is the same', async (t) => {
    const withText = await setup(t);
    const withoutText = await setup(t, { fake: { supportsFullSms: false } });
    const ids: string[] = [];
    for (const { clock, fake, provider } of [withText, withoutText]) {
      const order = await provider.buy(purchase());
      fake.controls.deliverSms(order.providerOrderId, { code: '777777', text: 'Code 777777' });
      const check = await provider.check({ ...order, since: clock.now() });
      ids.push(check.messages[0]!.providerMessageId);
      if (provider === withoutText.provider) assert.equal(check.messages[0]!.text, '777777');
    }
    assert.equal(ids[0], ids[1]);
  });

  test('a recycled number never shows the previous activation’s SMS, and no message predates `since`', async (t) => {
    const { clock, fake, provider } = await setup(t);
    fake.controls.queueNumbers('12025559999', '12025559999');
    const previous = await provider.buy(purchase({ clientRef: 'previous' }));
    fake.controls.deliverSms(previous.providerOrderId, { code: '111111' });
    clock.advance(60_000);
    const since = clock.now();
    const order = await provider.buy(purchase());
    assert.equal(order.phoneNumber, previous.phoneNumber);
    assert.deepEqual(await provider.check({ ...order, since }), { state: 'waiting', messages: [] });

    fake.controls.deliverSms(order.providerOrderId, { code: '222222' });
    const later = new Date(clock.now().getTime() + 5000); // our `since` ahead of the adapter's clock
    const check = await provider.check({ ...order, since: later });
    assert.deepEqual(
      check.messages.map((m) => [m.code, m.receivedAt.toISOString()]),
      [['222222', later.toISOString()]],
    );
  });

  test('past its lifetime an order is expired, also when the seller forgot it', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const since = clock.now();
    const order = await provider.buy(purchase());
    const other = await provider.buy(purchase({ clientRef: 'b' }));
    fake.controls.forget(other.providerOrderId);
    assert.deepEqual(await provider.check({ ...other, since }), { state: 'unknown', messages: [] });
    clock.advance(1_201_000);
    assert.deepEqual(await provider.check({ ...order, since }), { state: 'expired', messages: [] });
    assert.deepEqual(await provider.check({ ...other, since }), { state: 'expired', messages: [] });
  });

  test('checkMany polls many orders with one call and leaves out those not active', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const since = clock.now();
    const a = await provider.buy(purchase({ clientRef: 'a' }));
    const b = await provider.buy(purchase({ clientRef: 'b' }));
    fake.controls.deliverSms(b.providerOrderId, { code: '4321', text: 'Telegram code 4321' });
    const before = fake.state.requests.length;
    const result = await provider.checkMany([
      { ...a, since },
      { ...b, since },
      { providerOrderId: '999', phoneNumber: '12025550000', since },
    ]);
    assert.equal(fake.state.requests.length, before + 1);
    assert.deepEqual([...result.keys()], [a.providerOrderId, b.providerOrderId]);
    assert.deepEqual(result.get(a.providerOrderId), { state: 'waiting', messages: [] });
    assert.deepEqual(
      result.get(b.providerOrderId)?.messages.map((m) => [m.code, m.text]),
      [['4321', 'Telegram code 4321']],
    );
  });

  test('active orders come from getActiveActivations with our service names', async (t) => {
    const { clock, provider } = await setup(t);
    assert.deepEqual(await provider.activeOrders(), []);
    const order = await provider.buy(purchase({ service: 'telegram' }));
    assert.deepEqual(await provider.activeOrders(), [
      { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, service: 'telegram', createdAt: clock.now() },
    ]);
  });
});

describe('SMS-Activate adapter: cancel, complete, balance, catalogue', () => {
  test('cancel before any SMS cancels and the seller refunds', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    assert.equal(fake.state.balance, 24.5);
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'cancelled' });
    assert.equal(fake.state.balance, 25);
    assert.deepEqual(await provider.check({ ...order, since: clock.now() }), { state: 'cancelled', messages: [] });
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'gone' });
  });

  test('cancel after the SMS arrived is already_received and never sends setStatus 8', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    fake.controls.deliverSms(order.providerOrderId, { code: '5555' });
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'already_received' });
    assert.equal(actions(fake).includes('setStatus'), false);
  });

  test('an SMS racing the cancel (ACCESS_READY answer) is already_received', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    fake.controls.failNext('setStatus', { type: 'status', status: 200, body: 'ACCESS_READY', contentType: 'text/html' });
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'already_received' });
  });

  test('EARLY_CANCEL_DENIED is too_early with the configured wait', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { earlyCancelSeconds: 120 } });
    const order = await provider.buy(purchase());
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'too_early', retryAfterSeconds: 120 });
    const custom = new SmsActivateProvider({ baseUrl: fake.url, apiKey: 'sa-test-key', requestsPerSecond: 0, clock, earlyCancelRetryAfterSeconds: 90 });
    assert.deepEqual(await custom.cancel(order.providerOrderId), { outcome: 'too_early', retryAfterSeconds: 90 });
    clock.advance(121_000);
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'cancelled' });
  });

  test('cancel of an unknown or expired activation is gone', async (t) => {
    const { clock, provider } = await setup(t);
    assert.deepEqual(await provider.cancel('123'), { outcome: 'gone' });
    const order = await provider.buy(purchase());
    clock.advance(1_201_000);
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'gone' });
  });

  test('complete sends setStatus 6', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    fake.controls.deliverSms(order.providerOrderId, { code: '8888' });
    await provider.complete(order.providerOrderId);
    assert.equal(fake.state.activations.get(order.providerOrderId)?.status, 'finished');
  });

  test('balance reads ACCESS_BALANCE in minor units', async (t) => {
    const { provider } = await setup(t);
    assert.deepEqual(await provider.balance(), { amountMinor: 2500, currency: 'USD' });
  });

  test('catalogue reads getPrices per configured country, mapped to our names, and is cached', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { countryCodes: { US: '187', GB: '16', CA: '36' } } });
    const entries = await provider.catalogue();
    assert.deepEqual(entries, [
      { service: 'whatsapp', country: 'US', costMinor: 50, available: 120 },
      { service: 'telegram', country: 'US', costMinor: 35, available: 40 },
      { service: 'google', country: 'US', costMinor: 20, available: 0 },
      { service: 'whatsapp', country: 'GB', costMinor: 90, available: 12 },
    ]);
    const before = fake.state.requests.length;
    await provider.catalogue();
    assert.equal(fake.state.requests.length, before);
  });
});

describe('SMS-Activate adapter: HeroSMS dialect (4xx JSON errors, 204 bodies)', () => {
  test('JSON {title, details} errors are classified like their text tokens', async (t) => {
    const { fake, provider } = await setup(t, { fake: { dialect: 'hero', balance: 0.1 } });
    const noMoney = await failure(provider.buy(purchase()));
    assert.deepEqual([noMoney.kind, noMoney.code, noMoney.status], ['definite', 'upstream_balance', 402]);
    const noNumbers = await failure(provider.buy(purchase({ service: 'google' })));
    assert.deepEqual([noNumbers.kind, noNumbers.code], ['definite', 'no_numbers']);
    const badKey = new SmsActivateProvider({ baseUrl: fake.url, apiKey: 'nope', requestsPerSecond: 0, clock: new ManualClock(T0) });
    const refused = await failure(badKey.balance());
    assert.deepEqual([refused.kind, refused.code, refused.status], ['definite', 'bad_credentials', 401]);
  });

  test('cancel answered 204, early refusal as 400 JSON, OTP_RECEIVED on a race', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { dialect: 'hero', earlyCancelSeconds: 60 } });
    const order = await provider.buy(purchase());
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'too_early', retryAfterSeconds: 120 });
    clock.advance(61_000);
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'cancelled' });

    const second = await provider.buy(purchase({ clientRef: 'b' }));
    clock.advance(61_000);
    fake.controls.failNext('setStatus', { type: 'status', status: 400, body: JSON.stringify({ title: 'OTP_RECEIVED', details: 'code already received' }) });
    assert.deepEqual(await provider.cancel(second.providerOrderId), { outcome: 'already_received' });
  });
});
