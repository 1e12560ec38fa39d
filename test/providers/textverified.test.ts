import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../src/clock.ts';
import { ManualClock } from '../support/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { createProvider } from '../../src/providers/registry.ts';
import { ProviderError, type PurchaseRequest } from '../../src/providers/provider.ts';
import { TextVerifiedProvider, type TextVerifiedOptions } from '../../src/providers/textverified/adapter.ts';
import { startFakeTextVerified, type FakeTextVerified, type FakeTextVerifiedOptions } from '../support/fake-textverified.ts';

const T0 = '2026-03-01T12:00:00.000Z';

async function setup(t: TestContext, options: { fake?: FakeTextVerifiedOptions; adapter?: Partial<TextVerifiedOptions> } = {}) {
  const clock = new ManualClock(T0);
  const fake = await startFakeTextVerified({ clock, ...options.fake });
  t.after(() => fake.close());
  const provider = new TextVerifiedProvider({
    baseUrl: fake.url,
    apiUsername: 'operator@example.com',
    apiKey: 'tv-test-key',
    requestsPerSecond: 0,
    timeoutMs: 2000,
    clock,
    ...options.adapter,
  });
  return { clock, fake, provider };
}

function purchase(overrides: Partial<PurchaseRequest> = {}): PurchaseRequest {
  return { service: 'whatsapp', country: 'US', maxCostMinor: 200, clientRef: 'ver_0001', ...overrides };
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

const creates = (fake: FakeTextVerified) =>
  fake.state.requests.filter((r) => r.method === 'POST' && r.path === '/api/pub/v2/verifications');

describe('TextVerified adapter: purchase', () => {
  test('buy returns the number, the upstream endsAt and the cost, sending the idempotency key and the cap', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase({ maxCostMinor: 295 }));
    assert.deepEqual(order, {
      providerOrderId: 'lr_000001',
      phoneNumber: '12025550100',
      endsAt: new Date('2026-03-01T12:15:00.000Z'),
      costMinor: 125,
    });
    const [create] = creates(fake);
    assert.equal(create?.headers['idempotency-key'], 'ver_0001');
    assert.deepEqual(JSON.parse(create!.body), { serviceName: 'whatsapp', capability: 'sms', maxPrice: 2.95 });
    assert.equal(fake.state.purchases, 1);
  });

  test('our service names map to TextVerified service names', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { serviceNames: { wa: 'whatsapp' } } });
    await provider.buy(purchase({ service: 'wa' }));
    assert.equal(JSON.parse(creates(fake)[0]!.body).serviceName, 'whatsapp');
  });

  test('definite refusals: no numbers, price above the cap, no balance, too many unfinished, bad key, wrong country', async (t) => {
    const { fake, provider } = await setup(t, { fake: { maxUnfinished: 1 } });

    fake.controls.setStock('google', 0);
    const noNumbers = await failure(provider.buy(purchase({ service: 'google', clientRef: 'a' })));
    assert.deepEqual([noNumbers.kind, noNumbers.code, noNumbers.status], ['definite', 'no_numbers', 400]);

    const tooExpensive = await failure(provider.buy(purchase({ maxCostMinor: 124, clientRef: 'b' })));
    assert.deepEqual([tooExpensive.kind, tooExpensive.code], ['definite', 'price_exceeds_max']);

    await provider.buy(purchase({ clientRef: 'c' }));
    const tooMany = await failure(provider.buy(purchase({ clientRef: 'd' })));
    assert.deepEqual([tooMany.kind, tooMany.code], ['definite', 'rejected']);

    const wrongCountry = await failure(provider.buy(purchase({ country: 'GB', clientRef: 'e' })));
    assert.deepEqual([wrongCountry.kind, wrongCountry.code], ['definite', 'rejected']);
    assert.equal(fake.state.purchases, 1);
  });

  test('an empty upstream float is a definite upstream_balance failure', async (t) => {
    const { fake, provider } = await setup(t, { fake: { balance: 1 } });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['definite', 'upstream_balance']);
    assert.equal(fake.state.purchases, 0);
  });

  test('a wrong API key is a definite bad_credentials failure', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { apiKey: 'wrong' } });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code, error.status], ['definite', 'bad_credentials', 401]);
    assert.equal(creates(fake).length, 0);
  });

  test('429 is definite rate_limited with Retry-After in seconds or as a date', async (t) => {
    const { clock, fake, provider } = await setup(t);
    fake.controls.failNext('create', { type: 'rateLimit', retryAfter: '7' });
    const seconds = await failure(provider.buy(purchase()));
    assert.deepEqual([seconds.kind, seconds.code, seconds.retryAfterSeconds], ['definite', 'rate_limited', 7]);

    fake.controls.failNext('create', { type: 'rateLimit', retryAfter: new Date(clock.now().getTime() + 30_000).toUTCString() });
    const dated = await failure(provider.buy(purchase()));
    assert.equal(dated.retryAfterSeconds, 30);
    assert.equal(fake.state.purchases, 0);
  });

  test('5xx on the purchase is ambiguous', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('create', { type: 'status', status: 500, body: '{"errorCode":"InternalError"}' });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code, error.status], ['ambiguous', 'server_error', 500]);
  });

  test('an HTML page is never read as an order: 200 → malformed_response, 502 → server_error, both ambiguous', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.failNext('create', { type: 'html', status: 200 });
    const portal = await failure(provider.buy(purchase()));
    assert.deepEqual([portal.kind, portal.code], ['ambiguous', 'malformed_response']);

    fake.controls.failNext('create', { type: 'html', status: 502 });
    const gateway = await failure(provider.buy(purchase()));
    assert.deepEqual([gateway.kind, gateway.code, gateway.status], ['ambiguous', 'server_error', 502]);
  });

  test('a malformed number in the verification is ambiguous, never data', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.queueNumbers('555-CALL-NOW');
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'malformed_response']);
    assert.equal(fake.state.purchases, 1);
  });

  test('a failure reading the order after the create is ambiguous, and lookup finds the order', async (t) => {
    const { fake, provider, clock } = await setup(t);
    const requestedAt = clock.now();
    fake.controls.failNext('details', { type: 'status', status: 503 });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'server_error']);
    const found = await provider.lookup({ ...purchase(), requestedAt, claimedOrderIds: new Set() });
    assert.equal(found.status, 'found');
    assert.equal(fake.state.purchases, 1);
  });

  test('a create link pointing at another origin is not followed', async (t) => {
    const { fake, provider } = await setup(t);
    fake.controls.setLinkOrigin('http://127.0.0.1:9');
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'malformed_response']);
  });

  test('a refused connection is definite unavailable', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const provider = new TextVerifiedProvider({
      baseUrl: `http://127.0.0.1:${port}`,
      apiUsername: 'x',
      apiKey: 'y',
      requestsPerSecond: 0,
      timeoutMs: 1000,
      clock: new ManualClock(T0),
    });
    const error = await failure(provider.buy(purchase()));
    // Auth is the first call, so nothing could have been bought.
    assert.deepEqual([error.kind, error.code], ['definite', 'unavailable']);
  });
});

describe('TextVerified adapter: resolving an unclear purchase', () => {
  test('connection dropped after the order was created: buy is ambiguous, lookup finds the same order, one purchase', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const requestedAt = clock.now();
    fake.controls.failNext('create', { type: 'dropAfterEffect' });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'connection_lost']);
    assert.equal(fake.state.purchases, 1);

    clock.advance(5_000);
    const result = await provider.lookup({ ...purchase(), requestedAt, claimedOrderIds: new Set() });
    assert.deepEqual(result, {
      status: 'found',
      order: { providerOrderId: 'lr_000001', phoneNumber: '12025550100', endsAt: new Date('2026-03-01T12:15:00.000Z'), costMinor: 125 },
    });
    assert.equal(fake.state.purchases, 1);
    assert.deepEqual(
      creates(fake).map((r) => r.headers['idempotency-key']),
      ['ver_0001', 'ver_0001'],
    );
  });

  test('an answer that never comes (hang past the timeout) is ambiguous timeout; lookup finds the order', async (t) => {
    const { clock, fake, provider } = await setup(t, { adapter: { timeoutMs: 200 } });
    const requestedAt = clock.now();
    fake.controls.failNext('create', { type: 'hangAfterEffect' });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'timeout']);
    const result = await provider.lookup({ ...purchase(), requestedAt, claimedOrderIds: new Set() });
    assert.equal(result.status, 'found');
    assert.equal(fake.state.purchases, 1);
  });

  test('a create still running upstream (409 IdempotencyConflict) is ambiguous for buy and unknown for lookup', async (t) => {
    const { clock, fake, provider } = await setup(t);
    fake.controls.setIdempotencyState('ver_0001', 'running');
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.status], ['ambiguous', 409]);
    const result = await provider.lookup({ ...purchase(), requestedAt: clock.now(), claimedOrderIds: new Set() });
    assert.deepEqual(result, { status: 'unknown' });
    assert.equal(fake.state.purchases, 0);
  });

  test('a key that expired unfinished is unknown', async (t) => {
    const { clock, fake, provider } = await setup(t);
    fake.controls.setIdempotencyState('ver_0001', 'expired');
    const result = await provider.lookup({ ...purchase(), requestedAt: clock.now(), claimedOrderIds: new Set() });
    assert.deepEqual(result, { status: 'unknown' });
    assert.equal(fake.state.purchases, 0);
  });

  test('a definite refusal on the retry proves the first call bought nothing: absent', async (t) => {
    const { clock, fake, provider } = await setup(t);
    fake.controls.setStock('whatsapp', 0);
    const result = await provider.lookup({ ...purchase(), requestedAt: clock.now(), claimedOrderIds: new Set() });
    assert.deepEqual(result, { status: 'absent' });
    assert.equal(fake.state.purchases, 0);
  });

  test('past the idempotency window lookup searches the list instead of re-issuing the create', async (t) => {
    const { clock, fake, provider } = await setup(t, { adapter: { idempotencyWindowSeconds: 600 } });
    const requestedAt = clock.now();
    fake.controls.failNext('create', { type: 'dropAfterEffect' });
    await failure(provider.buy(purchase()));
    clock.advance(3_600_000);

    const found = await provider.lookup({ ...purchase(), requestedAt, claimedOrderIds: new Set() });
    assert.equal(found.status, 'found');
    assert.equal(found.status === 'found' && found.order.providerOrderId, 'lr_000001');
    const claimed = await provider.lookup({ ...purchase(), requestedAt, claimedOrderIds: new Set(['lr_000001']) });
    assert.deepEqual(claimed, { status: 'absent' });
    assert.equal(creates(fake).length, 1);
    assert.equal(fake.state.purchases, 1);
  });

  test('past the window, a list cut short by the page limit proves nothing absent', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { pageSize: 1 }, adapter: { idempotencyWindowSeconds: 600, maxPages: 2 } });
    const requestedAt = clock.now();
    fake.controls.failNext('create', { type: 'drop' }); // nothing bought
    await failure(provider.buy(purchase()));
    // Three other verifications, newer first in the list: our page limit sees two of them.
    for (const clientRef of ['x', 'y', 'z']) await provider.buy(purchase({ clientRef, service: 'telegram' }));
    clock.advance(3_600_000);
    assert.deepEqual(await provider.lookup({ ...purchase(), requestedAt, claimedOrderIds: new Set() }), { status: 'unknown' });
    const whole = new TextVerifiedProvider({ baseUrl: fake.url, apiUsername: 'operator@example.com', apiKey: 'tv-test-key', requestsPerSecond: 0, clock, idempotencyWindowSeconds: 600 });
    assert.deepEqual(await whole.lookup({ ...purchase(), requestedAt, claimedOrderIds: new Set() }), { status: 'absent' }, 'every page read: absent');
  });
});

describe('TextVerified adapter: messages and states', () => {
  test('an SMS delivered is returned by check with its code', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const since = clock.now();
    const order = await provider.buy(purchase());
    assert.deepEqual(await provider.check({ ...order, since }), { state: 'waiting', messages: [] });

    clock.advance(30_000);
    fake.controls.deliverSms(order.providerOrderId, { text: 'Your WhatsApp code is 123-456', code: '123456' });
    const check = await provider.check({ ...order, since });
    assert.equal(check.state, 'received');
    assert.equal(check.messages.length, 1);
    const [message] = check.messages;
    assert.deepEqual(
      { text: message!.text, code: message!.code, receivedAt: message!.receivedAt },
      { text: 'Your WhatsApp code is 123-456', code: '123456', receivedAt: new Date('2026-03-01T12:00:30.000Z') },
    );
    // Not TextVerified's SMS id: the webhook does not carry one, and both paths must agree.
    assert.match(message!.providerMessageId, /^tv-[0-9a-f]{32}$/);
    assert.deepEqual((await provider.check({ ...order, since })).messages, check.messages, 'the same SMS polled again is the same message');
  });

  test('check follows the verification’s sms link as given, never a query built from the number', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const since = clock.now();
    const order = await provider.buy(purchase());
    clock.advance(5_000);
    // TextVerified may write the number in another form; the list is the reservation's, so it is ours.
    fake.controls.smsToNumber('+12025550100', { text: 'Code 777001', code: '777001', at: clock.now(), reservationId: order.providerOrderId });
    // Same number, another reservation (the number was recycled): not this verification's.
    fake.controls.smsToNumber('2025550100', { text: 'Code 999999', code: '999999', at: clock.now(), reservationId: 'lr_someone_else' });
    const check = await provider.check({ ...order, since });
    assert.deepEqual(
      check.messages.map((m) => m.code),
      ['777001'],
    );
    const listCalls = fake.state.requests.filter((r) => r.path === '/api/pub/v2/sms');
    assert.ok(listCalls.length > 0);
    for (const call of listCalls) {
      assert.deepEqual(Object.fromEntries(call.query), { reservationId: order.providerOrderId, reservationType: 'verification' });
    }
  });

  test('the fake filters the SMS list on every parameter given, as documented: a number in another spelling finds nothing', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    fake.controls.deliverSms(order.providerOrderId, { text: 'Code 123123', code: '123123' });
    const token = JSON.parse((await fetch(`${fake.url}/api/pub/v2/auth`, { method: 'POST', headers: { 'X-API-KEY': 'tv-test-key', 'X-API-USERNAME': 'operator@example.com' } }).then((r) => r.text()))).token;
    const list = async (query: string) => {
      const res = await fetch(`${fake.url}/api/pub/v2/sms?${query}`, { headers: { Authorization: `Bearer ${token}` } });
      return ((await res.json()) as { data: { smsContent: string }[] }).data.length;
    };
    assert.equal(await list(`reservationId=${order.providerOrderId}`), 1);
    assert.equal(await list('to=2025550100'), 1);
    assert.equal(await list('to=12025550100'), 0, 'E.164 digits are not how the fake stores the number');
    assert.equal(await list(`to=2025550100&reservationId=lr_other`), 0, 'every filter applies');
    assert.equal(await list(`reservationId=${order.providerOrderId}&reservationType=renewable`), 0);
  });

  test('a message sent to a recycled number before `since` is never returned', async (t) => {
    const { clock, fake, provider } = await setup(t);
    fake.controls.queueNumbers('2025550199');
    fake.controls.smsToNumber('2025550199', { text: 'Old code 111111', code: '111111', at: new Date(clock.now().getTime() - 600_000), reservationId: 'lr_previous' });
    const since = clock.now();
    const order = await provider.buy(purchase());
    assert.equal(order.phoneNumber, '12025550199');
    assert.deepEqual(await provider.check({ ...order, since }), { state: 'waiting', messages: [] });

    clock.advance(10_000);
    fake.controls.deliverSms(order.providerOrderId, { text: 'New code 222222', code: '222222' });
    const check = await provider.check({ ...order, since });
    assert.deepEqual(
      check.messages.map((m) => m.code),
      ['222222'],
    );
  });

  test('check follows links.next over every page', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { pageSize: 1 } });
    const since = clock.now();
    const order = await provider.buy(purchase());
    for (const code of ['111111', '222222', '333333']) {
      clock.advance(1000);
      fake.controls.deliverSms(order.providerOrderId, { text: `Code ${code}`, code });
    }
    const check = await provider.check({ ...order, since });
    assert.deepEqual(
      check.messages.map((m) => m.code),
      ['111111', '222222', '333333'],
    );
    assert.equal(new Set(check.messages.map((m) => m.providerMessageId)).size, 3);
  });

  test('past its endsAt the order is expired', async (t) => {
    const { clock, provider } = await setup(t);
    const since = clock.now();
    const order = await provider.buy(purchase());
    clock.advance(901_000);
    assert.deepEqual(await provider.check({ ...order, since }), { state: 'expired', messages: [] });
  });

  test('an id the upstream does not know is unknown', async (t) => {
    const { clock, provider } = await setup(t);
    const check = await provider.check({ providerOrderId: 'lr_nope', phoneNumber: '12025550100', since: clock.now() });
    assert.deepEqual(check, { state: 'unknown', messages: [] });
  });

  test('an HTML answer to a poll is ambiguous malformed_response', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    fake.controls.failNext('sms', { type: 'html', status: 200 });
    const error = await failure(provider.check({ ...order, since: clock.now() }));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'malformed_response']);
  });
});

describe('TextVerified adapter: cancel and report', () => {
  test('cancel before any SMS cancels', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const since = clock.now();
    const order = await provider.buy(purchase());
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'cancelled' });
    assert.equal(fake.state.verifications.get(order.providerOrderId)?.state, 'verificationCanceled');
    assert.deepEqual(await provider.check({ ...order, since }), { state: 'cancelled', messages: [] });
  });

  test('cancel after the SMS arrived is already_received and leaves the order alone', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    fake.controls.deliverSms(order.providerOrderId, { text: 'Code 654321', code: '654321' });
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'already_received' });
    assert.equal(fake.state.verifications.get(order.providerOrderId)?.state, 'verificationCompleted');
  });

  test('a cancel refused because it is too early is too_early with the configured wait', async (t) => {
    const { clock, fake, provider } = await setup(t, { fake: { cancelableAfterSeconds: 120 }, adapter: { cancelRetryAfterSeconds: 45 } });
    const order = await provider.buy(purchase());
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'too_early', retryAfterSeconds: 45 });
    assert.equal(fake.state.verifications.get(order.providerOrderId)?.state, 'verificationPending');
    clock.advance(121_000);
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'cancelled' });
  });

  test('cancel of an expired or unknown order is gone', async (t) => {
    const { clock, provider } = await setup(t);
    const order = await provider.buy(purchase());
    clock.advance(901_000);
    assert.deepEqual(await provider.cancel(order.providerOrderId), { outcome: 'gone' });
    assert.deepEqual(await provider.cancel('lr_unknown'), { outcome: 'gone' });
  });

  test('cancel answered 5xx is ambiguous', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    fake.controls.failNext('cancel', { type: 'status', status: 502, body: '' });
    const error = await failure(provider.cancel(order.providerOrderId));
    assert.deepEqual([error.kind, error.code], ['ambiguous', 'server_error']);
  });

  test('report marks the verification reported', async (t) => {
    const { fake, provider } = await setup(t);
    const order = await provider.buy(purchase());
    await provider.report(order.providerOrderId);
    assert.equal(fake.state.verifications.get(order.providerOrderId)?.state, 'verificationReported');
    const again = await failure(provider.report(order.providerOrderId));
    assert.deepEqual([again.kind, again.code], ['definite', 'rejected']);
  });
});

describe('TextVerified adapter: token, catalogue, balance, active orders', () => {
  test('one auth request serves many calls, concurrent ones included', async (t) => {
    const { fake, provider } = await setup(t);
    await provider.balance();
    await provider.balance();
    await Promise.all(Array.from({ length: 5 }, () => provider.balance()));
    assert.equal(fake.state.authRequests, 1);
  });

  test('the token is refreshed shortly before it expires, using the injected clock', async (t) => {
    const { clock, fake, provider } = await setup(t);
    await provider.balance();
    clock.advance(830_000); // 899 s token, refreshed 60 s early: still good at 830 s
    await provider.balance();
    assert.equal(fake.state.authRequests, 1);
    clock.advance(10_000); // 840 s: inside the refresh margin
    await provider.balance();
    assert.equal(fake.state.authRequests, 2);
  });

  test('a 401 on a cached token is answered by one re-authentication', async (t) => {
    const { fake, provider } = await setup(t);
    await provider.balance();
    fake.controls.revokeTokens();
    assert.deepEqual(await provider.balance(), { amountMinor: 10000, currency: 'USD' });
    assert.equal(fake.state.authRequests, 2);
  });

  test('balance is the account currentBalance in minor units', async (t) => {
    const { provider } = await setup(t);
    await provider.buy(purchase());
    assert.deepEqual(await provider.balance(), { amountMinor: 9875, currency: 'USD' });
  });

  test('an account answer without currentBalance (optional in the API document) is a balance not stated, not a failure', async (t) => {
    const { provider } = await setup(t, { fake: { omitBalance: true } });
    assert.deepEqual(await provider.balance(), { amountMinor: null, currency: 'USD' });
  });

  test('an installation in another currency than TextVerified’s dollars refuses to buy, before any call', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { currency: 'EUR' } });
    const error = await failure(provider.buy(purchase()));
    assert.deepEqual([error.kind, error.code], ['definite', 'currency_mismatch']);
    assert.match(error.message, /USD.*EUR/);
    assert.equal(fake.state.requests.length, 0);
  });

  test('a 429 in the middle of the catalogue is waited out and the sync continues', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { rateLimitBackoff: { retries: 3, initialDelayMs: 1, maxDelayMs: 5 } } });
    fake.controls.failNext('pricing', { type: 'rateLimit', retryAfter: '30' }, 2);
    const entries = await provider.catalogue();
    assert.deepEqual(
      entries.map((e) => [e.service, e.costMinor]),
      [
        ['whatsapp', 125],
        ['telegram', 75],
        ['google', 50],
      ],
    );
    assert.equal(fake.state.requests.filter((r) => r.path === '/api/pub/v2/pricing/verifications').length, 5, 'three prices, two of them asked twice');
  });

  test('a rate limit that outlasts the retries fails the catalogue (definite), rather than leave services out silently', async (t) => {
    const { fake, provider } = await setup(t, { adapter: { rateLimitBackoff: { retries: 2, initialDelayMs: 1, maxDelayMs: 5 } } });
    fake.controls.failNext('pricing', { type: 'rateLimit', retryAfter: '1' }, 3);
    const error = await failure(provider.catalogue());
    assert.deepEqual([error.kind, error.code], ['definite', 'rate_limited']);
  });

  test('the fake refuses bodies the API document refuses: a missing required field, an unknown field', async (t) => {
    const { fake } = await setup(t);
    const auth = await fetch(`${fake.url}/api/pub/v2/auth`, { method: 'POST', headers: { 'X-API-KEY': 'tv-test-key', 'X-API-USERNAME': 'operator@example.com' } });
    const { token } = (await auth.json()) as { token: string };
    const post = (path: string, body: unknown) =>
      fetch(`${fake.url}/api/pub/v2${path}`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post('/verifications', { serviceName: 'whatsapp' })).status, 400, 'capability is required');
    assert.equal((await post('/verifications', { serviceName: 'whatsapp', capability: 'sms', country: 'US' })).status, 400, 'no unknown fields');
    assert.equal((await post('/pricing/verifications', { serviceName: 'whatsapp', capability: 'sms', numberType: 'mobile', areaCode: false })).status, 400, 'carrier is required');
    assert.equal(fake.state.purchases, 0);
  });

  test('catalogue prices every SMS service and is cached', async (t) => {
    const { fake, provider } = await setup(t);
    const entries = await provider.catalogue();
    assert.deepEqual(entries, [
      { service: 'whatsapp', country: 'US', costMinor: 125, available: null },
      { service: 'telegram', country: 'US', costMinor: 75, available: null },
      { service: 'google', country: 'US', costMinor: 50, available: null },
    ]);
    const before = fake.state.requests.length;
    assert.deepEqual(await provider.catalogue(), entries);
    assert.equal(fake.state.requests.length, before);
  });

  test('active orders are the pending verifications', async (t) => {
    const { clock, fake, provider } = await setup(t);
    const first = await provider.buy(purchase({ clientRef: 'a' }));
    const second = await provider.buy(purchase({ clientRef: 'b', service: 'telegram' }));
    fake.controls.deliverSms(first.providerOrderId, { text: 'Code 1234', code: '1234' });
    assert.deepEqual(await provider.activeOrders(), [
      { providerOrderId: second.providerOrderId, phoneNumber: second.phoneNumber, service: 'telegram', createdAt: clock.now() },
    ]);
  });
});

describe('TextVerified as configured (PROVIDER=textverified)', () => {
  test('without PROVIDER_REQUESTS_PER_SECOND the adapter paces at its own 5 per second: no global default overrides it', async (t) => {
    const fake = await startFakeTextVerified({});
    t.after(() => fake.close());
    const config = loadConfig({ PROVIDER: 'textverified', TEXTVERIFIED_BASE_URL: fake.url, TEXTVERIFIED_API_USERNAME: 'operator@example.com', TEXTVERIFIED_API_KEY: 'tv-test-key' });
    assert.equal(config.PROVIDER_REQUESTS_PER_SECOND, undefined);
    const provider = createProvider(config, systemClock);
    const done: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      await provider.balance();
      done.push(performance.now());
    }
    // Calls start 200 ms apart (the first one also authenticates); a load can only widen the gaps.
    const gaps = done.slice(1).map((at, i) => at - done[i]!);
    assert.ok(Math.min(...gaps) >= 150, `gaps ${gaps.map((g) => Math.round(g)).join(', ')} ms`);
  });
});
