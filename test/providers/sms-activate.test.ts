import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '../support/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { countsAgainstUpstream, createBreaker, withBreaker } from '../../src/providers/breaker.ts';
import { ProviderError, type LookupRequest, type PurchaseRequest } from '../../src/providers/provider.ts';
import { createProvider } from '../../src/providers/registry.ts';
import { SmsActivateProvider, type SmsActivateOptions } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES, sellerProfileFor } from '../../src/providers/sms-activate/sellers.ts';
import { deadlineFor } from '../../src/verifications/transitions.ts';
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
  test('getNumber by default: the number, the assumed 20-minute end, the cap sent, no cost stated', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    assert.deepEqual(order, {
      providerOrderId: '700000001',
      phoneNumber: '12025551000',
      endsAt: new Date('2026-03-01T12:20:00.000Z'),
      costMinor: null,
    });
    const sent = fake.state.requests[0]!.query;
    assert.deepEqual(
      [sent.get('action'), sent.get('service'), sent.get('country'), sent.get('maxPrice'), sent.get('api_key')],
      ['getNumber', 'wa', '187', '0.60', 'sa-test-key'],
    );
    assert.deepEqual(actions(fake), ['getNumber'], 'getNumberV2 is never tried unless configured');
  });

  test('getNumberV2 when configured: the number, the stated end time (Moscow time on the wire) and the cost', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { purchaseAction: 'getNumberV2' } });
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

  test('configured for getNumberV2, a seller without it (BAD_ACTION) is asked with getNumber, and remembered', async (t) => {
    const { fake, provider } = await setup(t, { fake: { supportsNumberV2: false }, adapter: { purchaseAction: 'getNumberV2' } });
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
    fake.controls.failNext('getNumber', { type: 'rateLimit', retryAfter: '5' });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code, error.retryAfterSeconds], ['definite', 'rate_limited', 5]);
  });

  test('5xx and ERROR_SQL are ambiguous on a purchase and definite on a read', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('getNumber', { type: 'status', status: 500, body: 'Internal Server Error', contentType: 'text/plain' });
    const buy500 = await failure(provider.buy(purchase()));
    assert.deepEqual([buy500.kind, buy500.code], ['ambiguous', 'server_error']);

    fake.controls.failNext('getNumber', { type: 'status', status: 200, body: 'ERROR_SQL', contentType: 'text/html' });
    const buySql = await failure(provider.buy(purchase()));
    assert.deepEqual([buySql.kind, buySql.code], ['ambiguous', 'server_error']);

    fake.controls.failNext('getBalance', { type: 'status', status: 200, body: 'ERROR_SQL', contentType: 'text/html' });
    const readSql = await failure(provider.balance());
    assert.deepEqual([readSql.kind, readSql.code], ['definite', 'server_error']);
  });

  test('an HTML page is never read as a number: 200 → malformed_response, 502 → server_error, both ambiguous', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('getNumber', { type: 'html', status: 200 });
    const portal = await failure(provider.buy(purchase()));
    assert.deepEqual([portal.kind, portal.code], ['ambiguous', 'malformed_response']);

    fake.controls.failNext('getNumber', { type: 'html', status: 502 });
    const gateway = await failure(provider.buy(purchase()));
    assert.deepEqual([gateway.kind, gateway.code, gateway.status], ['ambiguous', 'server_error', 502]);

    // A 4xx page is a refusal whatever its body: nothing was processed.
    fake.controls.failNext('getNumber', { type: 'html', status: 404 });
    const notFound = await failure(provider.buy(purchase()));
    assert.deepEqual([notFound.kind, notFound.code, notFound.status], ['definite', 'rejected', 404]);
    assert.equal(fake.state.purchases, 0);
  });

  test('a malformed phone number is ambiguous malformed_response, in text and in JSON', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('getNumber', { type: 'status', status: 200, body: 'ACCESS_NUMBER:123:not-a-phone', contentType: 'text/html' });
    const badText = await failure(provider.buy(purchase()));
    assert.deepEqual([badText.kind, badText.code], ['ambiguous', 'malformed_response']);

    const v2 = await setup(t, { adapter: { purchaseAction: 'getNumberV2' } });
    const body = JSON.stringify({ activationId: 1, phoneNumber: '12-34', activationCost: '0.50' });
    v2.fake.controls.failNext('getNumberV2', { type: 'status', status: 200, body, contentType: 'application/json' });
    const badPhone = await failure(v2.provider.buy(purchase()));
    assert.deepEqual([badPhone.kind, badPhone.code], ['ambiguous', 'malformed_response']);
  });

  test('a word the adapter does not know is unrecognised: ambiguous on a purchase, definite on a read, never "malformed"', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('getNumber', { type: 'status', status: 200, body: 'SOMETHING_NEW', contentType: 'text/html' });
    const bought = await failure(provider.buy(purchase()));
    assert.deepEqual([bought.kind, bought.code], ['ambiguous', 'unrecognised_answer']);
    fake.controls.failNext('getBalance', { type: 'status', status: 200, body: 'SOMETHING_NEW:42', contentType: 'text/html' });
    const read = await failure(provider.balance());
    assert.deepEqual([read.kind, read.code], ['definite', 'unrecognised_answer']);
    // The breaker does not count it: the seller is working when it says something.
    assert.equal(countsAgainstUpstream(bought), false);
    assert.equal(countsAgainstUpstream(read), false);
  });

  test('the words sellers use are known, each with what it proves', async (t) => {
    const { fake, provider } = await setup(t);
    const words: [string, 'definite' | 'ambiguous', string][] = [
      ['NO_NUMBERS', 'definite', 'no_numbers'],
      ['NO_NUMBER', 'definite', 'no_numbers'],
      ['OPERATORS_NOT_FOUND', 'definite', 'no_numbers'],
      ['NO_BALANCE', 'definite', 'upstream_balance'],
      ['LOW_BALANCE', 'definite', 'upstream_balance'],
      ['NO_MONEY', 'definite', 'upstream_balance'],
      ['BAD_KEY', 'definite', 'bad_credentials'],
      ['NO_KEY', 'definite', 'bad_credentials'],
      ['WRONG_API_KEY', 'definite', 'bad_credentials'],
      ['WRONG_MAX_PRICE:0.75', 'definite', 'price_exceeds_max'],
      ['MAX_PRICE_EXCEEDED', 'definite', 'price_exceeds_max'],
      ['WRONG_COUNTRY', 'definite', 'rejected'],
      ['WRONG_SERVICE', 'definite', 'rejected'],
      ['BANNED:2026-03-02 10-00-00', 'definite', 'rejected'],
      ['CHANNELS_LIMIT', 'definite', 'rejected'],
      ['TOO_MANY_ACTIVE_RENTALS', 'definite', 'rejected'],
      ['ORDER_ALREADY_EXISTS', 'definite', 'rejected'],
      ['ACCOUNT_INACTIVE', 'definite', 'rejected'],
      ['ERROR_SQL', 'ambiguous', 'server_error'],
      ['SERVER_ERROR', 'ambiguous', 'server_error'],
    ];
    for (const [word, kind, code] of words) {
      fake.controls.failNext('getNumber', { type: 'status', status: 200, body: word, contentType: 'text/html' });
      const error = await failure(provider.buy(purchase()));
      assert.deepEqual([error.kind, error.code], [kind, code], word);
    }
    // The same words as HeroSMS sends them: JSON with a real 4xx status.
    for (const [word, kind, code] of words.filter(([, k]) => k === 'definite')) {
      const title = word.split(':')[0];
      fake.controls.failNext('getNumber', { type: 'status', status: 403, body: JSON.stringify({ title, details: 'x' }) });
      const error = await failure(provider.buy(purchase()));
      assert.deepEqual([error.kind, error.code], [kind, code], `${word} as JSON`);
    }
    assert.equal(fake.state.purchases, 0);
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
    fake.controls.failNext('getNumber', { type: 'dropAfterEffect' });
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
    fake.controls.failNext('getNumber', { type: 'hangAfterEffect' });
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
    assert.equal(batched.get(order.providerOrderId)?.messages[0]!.providerMessageId, first.messages[0]!.providerMessageId);
    assert.equal(batched.get(order.providerOrderId)?.messages[0]!.text, 'Your WhatsApp code 123-456');
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
    const before = fake.state.requests.length;
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'cancelled' });
    assert.deepEqual(
      fake.state.requests.slice(before).map((r) => [r.query.get('action'), r.query.get('status')]),
      [
        ['getStatus', null],
        ['setStatus', '8'],
      ],
      'the status first: a delivered activation is never cancelled',
    );
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

  test('an early cancel is refused with 409 and the minimum age it names; OTP_RECEIVED on a race; an empty 204 is a cancel too', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { dialect: 'hero', earlyCancelSeconds: 60 } });
    const order = await provider.buy(purchase());
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'too_early', retryAfterSeconds: 60 });
    clock.advance(61_000);
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'cancelled' });

    const second = await provider.buy(purchase({ clientRef: 'b' }));
    clock.advance(61_000);
    fake.controls.failNext('setStatus', { type: 'status', status: 409, body: JSON.stringify({ title: 'OTP_RECEIVED', details: 'code already received' }) });
    assert.deepEqual(await provider.cancel(second.providerOrderId), { outcome: 'already_received' });

    const third = await provider.buy(purchase({ clientRef: 'c' }));
    clock.advance(61_000);
    fake.controls.failNext('setStatus', { type: 'status', status: 204, body: '' });
    assert.deepEqual(await provider.cancel(third.providerOrderId), { outcome: 'cancelled' });
  });

  test('an activation HeroSMS does not know (404 NOT_FOUND) is gone: check unknown, cancel gone, complete done — none of it upstream trouble', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { dialect: 'hero' } });
    const since = clock.now();
    const order = await provider.buy(purchase());
    fake.controls.forget(order.providerOrderId);
    const breaker = createBreaker('hero', { failureThreshold: 1, halfOpenAfterMs: 3_600_000 });
    const guarded = withBreaker(provider, breaker);
    assert.deepEqual(await guarded.check({ ...order, since }), { state: 'unknown', messages: [] });
    assert.deepEqual(await guarded.cancel(order.providerOrderId), { outcome: 'gone' });
    await guarded.complete!(order.providerOrderId);
    assert.equal(breaker.state(), 'closed');
    clock.advance(1_201_000);
    assert.deepEqual(await guarded.check({ ...order, since }), { state: 'expired', messages: [] }, 'past its lifetime, forgotten is expired');
  });

});

describe('SMS-Activate adapter: active-activation lists', () => {
  test('getActiveActivations is read page by page (start/limit under data); an order on the third page is found', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { dialect: 'hero' }, adapter: { activeListPageSize: 2 } });
    const requestedAt = clock.now();
    for (let i = 0; i < 4; i += 1) fake.controls.createActivation({ service: 'tg', country: '187', createdAt: new Date(requestedAt.getTime() - 600_000) });
    fake.controls.failNext('getNumber', { type: 'dropAfterEffect' });
    await failure(provider.buy(purchase()));
    const result = await provider.lookup(lookupOf(requestedAt));
    assert.equal(result.status === 'found' && result.order.providerOrderId, '700000005');
    const pages = fake.state.requests.filter((r) => r.query.get('action') === 'getActiveActivations').map((r) => [r.query.get('start'), r.query.get('limit')]);
    assert.deepEqual(pages, [
      ['0', '2'],
      ['2', '2'],
      ['4', '2'],
    ]);
    assert.equal((await provider.activeOrders()).length, 5);
  });

  test('a list the seller caps (it ignores start/limit) proves nothing absent once it is full', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { activeListCap: 3 }, adapter: { activeListPageSize: 3, lookupSettleSeconds: 60 } });
    const requestedAt = clock.now();
    // Three other activations fill what the seller shows; ours would be out of sight.
    for (let i = 0; i < 3; i += 1) fake.controls.createActivation({ service: 'tg', country: '187' });
    clock.advance(120_000);
    assert.deepEqual(await provider.lookup(lookupOf(requestedAt)), { status: 'unknown' }, 'a full capped list is not proof of absence');
    // With room to spare, the list is whole: absent.
    const { clock: c2, fake: f2, provider: p2 } = await setup(t, { fake: { activeListCap: 3 }, adapter: { activeListPageSize: 3, lookupSettleSeconds: 60 } });
    const at = c2.now();
    f2.controls.createActivation({ service: 'tg', country: '187' });
    c2.advance(120_000);
    assert.deepEqual(await p2.lookup(lookupOf(at)), { status: 'absent' });
  });
});

describe('SMS-Activate adapter: the seller account’s currency', () => {
  test('a purchase answer in roubles: the order is used, its cost not read as ours, every later purchase refused loudly', async (t) => {
    const alarms: string[] = [];
    const { fake, provider } = await setup(t, {
      fake: { currencyCode: 643 },
      adapter: { purchaseAction: 'getNumberV2', alarm: (message) => alarms.push(message) },
    });
    const order = await provider.buy(purchase());
    assert.equal(order.providerOrderId, '700000001', 'bought already: the customer gets the number');
    assert.equal(order.costMinor, null, 'a cost in roubles is not a cost in dollars');
    assert.equal(alarms.length, 1);
    assert.match(alarms[0]!, /RUB.*USD/);

    const refused = await failure(provider.buy(purchase({ clientRef: 'ver_0002' })));
    assert.deepEqual([refused.kind, refused.code], ['definite', 'currency_mismatch']);
    assert.equal(countsAgainstUpstream(refused), false);
    assert.equal(fake.state.purchases, 1, 'nothing more bought');
    assert.equal(alarms.length, 2, 'each refusal is told');
    assert.equal((await provider.balance()).currency, 'RUB', 'the balance says whose money it is');
  });

  test('the currency the active-activations list states (HeroSMS) is checked too, before any purchase', async (t) => {
    const { fake, provider } = await setup(t, { fake: { dialect: 'hero', currencyCode: 978 } });
    fake.controls.createActivation({ service: 'tg', country: '187' });
    await provider.activeOrders();
    const refused = await failure(provider.buy(purchase()));
    assert.equal(refused.code, 'currency_mismatch');
    assert.equal(fake.state.purchases, 0);
  });

  test('an account the operator states in another currency is refused before the first call; the same currency buys', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { sellerCurrency: 'EUR' } });
    assert.equal((await failure(provider.buy(purchase()))).code, 'currency_mismatch');
    assert.equal(fake.state.requests.length, 0);
    const same = await setup(t, { fake: { currencyCode: 840 }, adapter: { sellerCurrency: 'USD', purchaseAction: 'getNumberV2' } });
    assert.equal((await same.provider.buy(purchase())).costMinor, 50);
    assert.equal((await same.provider.buy(purchase({ clientRef: 'b' }))).costMinor, 50);
  });
});

describe('SMS-Activate adapter: the catalogue', () => {
  test('a 429 in the middle of the price lists is waited out and the catalogue completes', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { countryCodes: { US: '187', GB: '16' }, rateLimitBackoff: { retries: 3, initialDelayMs: 1, maxDelayMs: 5 } } });
    fake.controls.failNext('getPrices', { type: 'rateLimit', retryAfter: '20' }, 2);
    const entries = await provider.catalogue();
    assert.deepEqual(
      entries.map((e) => [e.country, e.service, e.costMinor]),
      [
        ['US', 'whatsapp', 50],
        ['US', 'telegram', 35],
        ['US', 'google', 20],
        ['GB', 'whatsapp', 90],
      ],
    );
    assert.deepEqual(actions(fake), ['getPrices', 'getPrices', 'getPrices', 'getPrices']);
  });

  test('a price list keyed by other countries than asked is an error, not an empty catalogue', async (t) => {
    const { provider } = await setup(t, { fake: { prices: { '0': { wa: { cost: 0.5, count: 10 } } } }, adapter: { countryCodes: { US: '187' }, sendCountry: false } });
    const error = await failure(provider.catalogue());
    assert.equal(error.kind, 'definite');
    assert.match(error.message, /keyed by country 0/);
  });

  test('a seller that offers none of our services anywhere is an error, not silence', async (t) => {
    const { provider } = await setup(t, { fake: { prices: { '187': { zz: { cost: 0.5, count: 10 } } } }, adapter: { countryCodes: { US: '187' } } });
    assert.match((await failure(provider.catalogue())).message, /offers none of the configured services/);
  });
});

describe('SMS-Activate adapter: DaisySMS', () => {
  const daisy = (t: TestContext, fake: FakeSmsActivateOptions = {}, adapter: Partial<SmsActivateOptions> = {}) =>
    setup(t, { fake: { dialect: 'daisy', ...fake }, adapter: { ...SELLER_PROFILES.daisysms.options, ...adapter } });

  test('no country is sent; the lifetime of the service comes from its price list; the effective price from X-Price', async (t) => {
    const { clock, fake, provider } = await daisy(t, { priceFactor: 0.8 });
    const now = clock.now();
    const order = await provider.buy(purchase());
    // wa lives 600 s at the fake; the price list was read once, before the first purchase.
    assert.deepEqual(order, { providerOrderId: '700000001', phoneNumber: '12025551000', endsAt: new Date(now.getTime() + 600_000), costMinor: 40 });
    const telegram = await provider.buy(purchase({ service: 'telegram', clientRef: 'b' }));
    assert.equal(telegram.endsAt?.getTime(), now.getTime() + 900_000);
    assert.deepEqual(actions(fake), ['getPricesVerification', 'getNumber', 'getNumber']);
    for (const request of fake.state.requests) assert.equal(request.query.has('country'), false, `${request.query.get('action')} sent no country`);
  });

  test('without the price list, the shortest lifetime is assumed: our deadline never outlives the seller’s', async (t) => {
    const { clock, fake, provider } = await daisy(t);
    fake.controls.failNext('getPricesVerification', { type: 'status', status: 503, body: 'busy', contentType: 'text/plain' });
    const now = clock.now();
    const order = await provider.buy(purchase());
    assert.equal(order.endsAt?.getTime(), now.getTime() + 300_000);
  });

  test('its words: MAX_PRICE_EXCEEDED, NO_MONEY, TOO_MANY_ACTIVE_RENTALS are definite; ACCESS_READY on a cancel is the code', async (t) => {
    const { fake, provider } = await daisy(t, { balance: 0.3 });
    const tooDear = await failure(provider.buy(purchase({ maxCostMinor: 40 })));
    assert.deepEqual([tooDear.kind, tooDear.code], ['definite', 'price_exceeds_max']);
    const broke = await failure(provider.buy(purchase()));
    assert.deepEqual([broke.kind, broke.code], ['definite', 'upstream_balance']);
    assert.equal(fake.state.purchases, 0);

    const rich = await daisy(t, { balance: 1000 });
    const orders = [];
    for (let i = 0; i < 20; i += 1) orders.push(await rich.provider.buy(purchase({ clientRef: `r${i}` })));
    const full = await failure(rich.provider.buy(purchase({ clientRef: 'r20' })));
    assert.deepEqual([full.kind, full.code], ['definite', 'rejected']);
    assert.match(full.message, /TOO_MANY_ACTIVE_RENTALS/);
    rich.fake.controls.failNext('setStatus', { type: 'status', status: 200, body: 'ACCESS_READY', contentType: 'text/html' });
    assert.deepEqual(await rich.provider.cancel(orders[0]!.providerOrderId), { outcome: 'already_received' });
  });

  test('no active-activations list: asked once, then lookups stay unknown and polls go one by one', async (t) => {
    const { clock, fake, provider } = await daisy(t);
    const requestedAt = clock.now();
    clock.advance(600_000);
    assert.deepEqual(await provider.lookup(lookupOf(requestedAt)), { status: 'unknown' }, 'nothing can prove absence');
    assert.deepEqual(await provider.lookup(lookupOf(requestedAt)), { status: 'unknown' });
    assert.equal((await provider.checkMany([{ providerOrderId: '1', phoneNumber: '12025550000', since: requestedAt }])).size, 0);
    assert.deepEqual(await provider.activeOrders(), []);
    assert.equal(actions(fake).filter((a) => a === 'getActiveActivations').length, 1, 'BAD_ACTION is remembered');
  });
});

describe('SMS-Activate as configured (PROVIDER=sms-activate)', () => {
  test('the seller is recognised by the handler’s host', () => {
    assert.equal(sellerProfileFor('https://daisysms.com/stubs/handler_api.php').name, 'daisysms');
    assert.equal(sellerProfileFor('https://api.daisysms.io/stubs/handler_api.php').name, 'daisysms');
    assert.equal(sellerProfileFor('https://hero-sms.com/stubs/handler_api.php').name, 'herosms');
    assert.equal(sellerProfileFor('https://api.sms-activate.ae/stubs/handler_api.php').name, 'sms-activate');
    assert.equal(sellerProfileFor('https://notdaisysms.com/stubs/handler_api.php').name, 'sms-activate');
  });

  test('a seller that states no end time is assumed to keep the number 20 minutes, whatever our TTL', async () => {
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    const fake = await startFakeSmsActivate({ clock, statesEndTime: false });
    try {
      for (const ttl of [600, 1800]) {
        const config = loadConfig({
          PROVIDER: 'sms-activate',
          SMS_ACTIVATE_BASE_URL: fake.url,
          SMS_ACTIVATE_API_KEY: 'sa-test-key',
          PROVIDER_REQUESTS_PER_SECOND: '0',
          VERIFICATION_TTL_SECONDS: String(ttl),
        });
        const provider = createProvider(config, clock);
        assert.equal(provider.name, 'sms-activate');
        const now = clock.now();
        const order = await provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 60, clientRef: `ttl-${ttl}` });
        assert.equal(order.endsAt?.getTime(), now.getTime() + 1200_000);
        // Our deadline: the TTL when shorter, the seller's 20 minutes when the TTL is longer.
        assert.equal(deadlineFor(now, ttl, order.endsAt).getTime(), now.getTime() + Math.min(ttl, 1200) * 1000);
      }
    } finally {
      await fake.close();
    }
  });

  test('a currency mismatch is logged at error level by the configured provider', async () => {
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    const fake = await startFakeSmsActivate({ clock, dialect: 'hero', currencyCode: 643 });
    const logged: { detail: object; message: string }[] = [];
    try {
      const config = loadConfig({ PROVIDER: 'sms-activate', SMS_ACTIVATE_BASE_URL: fake.url, SMS_ACTIVATE_API_KEY: 'sa-test-key', PROVIDER_REQUESTS_PER_SECOND: '0' });
      const provider = createProvider(config, clock, { logger: { error: (detail: object, message: string) => void logged.push({ detail, message }) } as never });
      // Configured with getNumber, as by default: the account's currency comes to light in the list.
      fake.controls.createActivation({ service: 'tg', country: '187' });
      await provider.activeOrders!();
      await assert.rejects(provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 60, clientRef: 'x' }), /refusing to buy/);
      assert.ok(logged.some((l) => /refusing to buy/.test(l.message) && (l.detail as { seller_currency?: string }).seller_currency === 'RUB'), JSON.stringify(logged));
    } finally {
      await fake.close();
    }
  });
});
