import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../support/clock.ts';
import { ProviderError } from '../../src/providers/provider.ts';
import { SmsActivateProvider } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES, type SellerName } from '../../src/providers/sms-activate/sellers.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { startFakeSmsActivate, type FakeSmsActivate, type SmsActivateDialect } from '../support/fake-sms-activate.ts';
import { startFakeTextVerified } from '../support/fake-textverified.ts';

/**
 * The adapters' number-care calls against local sellers speaking the real wire format: SMS-Activate
 * setStatus 3 (text answers, HeroSMS JSON refusals) and TextVerified's report and its outcome.
 */
const T0 = '2026-03-01T12:00:00.000Z';

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ProviderError, String(error));
    return error;
  }
  assert.fail('expected a ProviderError');
}

const sellers: { dialect: SmsActivateDialect; seller: SellerName }[] = [
  { dialect: 'classic', seller: 'sms-activate' },
  { dialect: 'hero', seller: 'herosms' },
];

for (const { dialect, seller } of sellers) {
  describe(`SMS-Activate another code, ${seller}`, () => {
    async function setup(t: TestContext) {
      const clock = new ManualClock(T0);
      const fake = await startFakeSmsActivate({ clock, dialect, balance: 100 });
      t.after(() => fake.close());
      const provider = new SmsActivateProvider({ ...SELLER_PROFILES[seller].options, baseUrl: fake.url, apiKey: 'sa-test-key', requestsPerSecond: 0, timeoutMs: 2000, clock });
      const order = await provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 60, clientRef: 'ver_1' });
      return { clock, fake, provider, order };
    }

    test('setStatus 3 after a code: ACCESS_RETRY_GET, the same activation; getStatus reports the old code as received, then the new one', async (t) => {
      const { clock, fake, provider, order } = await setup(t);
      fake.controls.deliverSms(order.providerOrderId, { code: '111111' });
      const since = new Date(clock.now().getTime() + 1000);
      clock.advance(1000);
      const another = await provider.anotherCode({ providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, since });
      assert.deepEqual(another, { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, endsAt: null, costMinor: 0 });
      assert.equal(fake.state.activations.get(order.providerOrderId)?.status, 'retry');
      const sent = fake.state.requests.filter((r) => r.query.get('action') === 'setStatus' && r.query.get('status') === '3');
      assert.equal(sent.length, 1);
      assert.equal(sent[0]!.query.get('id'), order.providerOrderId);

      const waiting = await provider.check({ providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, since });
      assert.deepEqual(waiting.messages.map((m) => m.code), ['111111'], 'STATUS_WAIT_RETRY carries the previous code; the lifecycle drops it');
      fake.controls.deliverSms(order.providerOrderId, { code: '222222' });
      const next = await provider.check({ providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, since });
      assert.deepEqual(next.messages.map((m) => m.code), ['222222']);
      assert.notEqual(next.messages[0]!.providerMessageId, waiting.messages[0]!.providerMessageId);
    });

    test('before a code, or once finished: refused, definite (nothing changed upstream)', async (t) => {
      const { clock, fake, provider, order } = await setup(t);
      const ref = { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, since: clock.now() };
      const early = await failure(provider.anotherCode(ref));
      assert.deepEqual([early.kind, early.code], ['definite', 'rejected']);
      fake.controls.deliverSms(order.providerOrderId, { code: '111111' });
      assert.equal(await provider.complete(order.providerOrderId), 'finished');
      const finished = await failure(provider.anotherCode(ref));
      assert.deepEqual([finished.kind, finished.code], ['definite', 'rejected']);
      assert.equal(fake.state.activations.get(order.providerOrderId)?.status, 'finished');
    });
  });
}

describe('TextVerified report and its outcome', () => {
  async function setup(t: TestContext) {
    const clock = new ManualClock(T0);
    const fake = await startFakeTextVerified({ clock });
    t.after(() => fake.close());
    const provider = new TextVerifiedProvider({ baseUrl: fake.url, apiUsername: 'operator@example.com', apiKey: 'tv-test-key', requestsPerSecond: 0, timeoutMs: 2000, clock });
    const order = await provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 150, clientRef: 'ver_1' });
    fake.controls.deliverSms(order.providerOrderId, { text: 'Your code is 123456' });
    return { fake, provider, order };
  }

  test('POST /verifications/{id}/report, then pending until TextVerified refunds it', async (t) => {
    const { fake, provider, order } = await setup(t);
    await provider.report(order.providerOrderId);
    assert.equal(fake.state.requests.filter((r) => r.method === 'POST' && r.path.endsWith(`/verifications/${order.providerOrderId}/report`)).length, 1);
    assert.equal(await provider.reportOutcome(order.providerOrderId), 'pending');
    fake.controls.settleReport(order.providerOrderId, 'refunded');
    assert.equal(await provider.reportOutcome(order.providerOrderId), 'refunded');
  });

  test('declined: back to completed; a second report is refused (400), definite', async (t) => {
    const { fake, provider, order } = await setup(t);
    await provider.report(order.providerOrderId);
    fake.controls.settleReport(order.providerOrderId, 'declined');
    assert.equal(await provider.reportOutcome(order.providerOrderId), 'declined');
    fake.state.verifications.get(order.providerOrderId)!.state = 'verificationCanceled';
    const refused = await failure(provider.report(order.providerOrderId));
    assert.deepEqual([refused.kind, refused.code, refused.status], ['definite', 'rejected', 400]);
  });
});

describe('TextVerified reuse: another code on the number, inside the reuse window', () => {
  async function setup(t: TestContext, reuseWindowSeconds?: number) {
    const clock = new ManualClock(T0);
    const fake = await startFakeTextVerified({ clock, ...(reuseWindowSeconds === undefined ? {} : { reuseWindowSeconds }) });
    t.after(() => fake.close());
    const provider = new TextVerifiedProvider({ baseUrl: fake.url, apiUsername: 'operator@example.com', apiKey: 'tv-test-key', requestsPerSecond: 0, timeoutMs: 2000, clock });
    const order = await provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 150, clientRef: 'ver_1' });
    const ref = { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, since: clock.now() };
    return { clock, fake, provider, order, ref };
  }
  const reuseCalls = (fake: Awaited<ReturnType<typeof startFakeTextVerified>>) =>
    fake.state.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/reuse'));

  test('POST /verifications/{id}/reuse: 201 and a new verification on the same number, free; its own SMS, not the first one', async (t) => {
    const { clock, fake, provider, order, ref } = await setup(t);
    fake.controls.deliverSms(order.providerOrderId, { text: 'Your code is 111111' });
    clock.advance(10_000);
    const balance = fake.state.balance;
    const since = clock.now();
    const another = await provider.anotherCode({ ...ref, since });
    assert.notEqual(another.providerOrderId, order.providerOrderId, 'reuse creates a new verification');
    assert.deepEqual([another.phoneNumber, another.costMinor], [order.phoneNumber, 0]);
    assert.equal(another.endsAt?.toISOString(), new Date(since.getTime() + 900_000).toISOString());
    assert.equal(reuseCalls(fake).length, 1);
    assert.equal(reuseCalls(fake)[0]!.body, '', 'the reuse call carries no body');
    assert.equal(fake.state.balance, balance, 'nothing charged upstream');

    const newRef = { providerOrderId: another.providerOrderId, phoneNumber: another.phoneNumber, since };
    const waiting = await provider.check(newRef);
    assert.deepEqual([waiting.state, waiting.messages.length], ['waiting', 0], 'the first code is the first verification\'s, not this one\'s');
    fake.controls.deliverSms(another.providerOrderId, { text: 'Your code is 222222' });
    const got = await provider.check(newRef);
    assert.deepEqual([got.state, got.messages.map((m) => m.code)], ['received', ['222222']]);
    assert.equal(fake.state.verifications.get(another.providerOrderId)!.state, 'verificationReused');
    // A reuse is taken once: asking again on the first verification is refused before any call.
    const again = await failure(provider.anotherCode({ ...ref, since: clock.now() }));
    assert.deepEqual([again.kind, again.code], ['definite', 'rejected']);
    assert.equal(reuseCalls(fake).length, 1);
  });

  test('the window is the upstream\'s: before a code and after reusableUntil refused, definite, without calling reuse', async (t) => {
    const { clock, fake, provider, order, ref } = await setup(t, 30);
    const early = await failure(provider.anotherCode(ref));
    assert.deepEqual([early.kind, early.code], ['definite', 'rejected']);
    fake.controls.deliverSms(order.providerOrderId, { text: 'Your code is 111111' });
    clock.advance(30_000);
    const closed = await failure(provider.anotherCode(ref));
    assert.deepEqual([closed.kind, closed.code], ['definite', 'rejected']);
    assert.match(closed.message, /window is closed/);
    assert.equal(reuseCalls(fake).length, 0);
    assert.equal(fake.state.reuses, 0);
  });

  test('a 400 from the reuse call is a definite refusal; a lost answer after the reuse is ambiguous', async (t) => {
    const { clock, fake, provider, order, ref } = await setup(t);
    fake.controls.deliverSms(order.providerOrderId, { text: 'Your code is 111111' });
    clock.advance(1_000);
    fake.controls.failNext('reuse', { type: 'status', status: 400, body: JSON.stringify({ errorCode: 'ReuseNotAllowed', errorDescription: 'no' }), contentType: 'application/json' });
    const refused = await failure(provider.anotherCode(ref));
    assert.deepEqual([refused.kind, refused.code, refused.status], ['definite', 'rejected', 400]);
    assert.equal(fake.state.reuses, 0);

    fake.controls.failNext('reuse', { type: 'dropAfterEffect' });
    const lost = await failure(provider.anotherCode(ref));
    assert.equal(lost.kind, 'ambiguous');
    assert.equal(fake.state.reuses, 1, 'the reuse happened upstream: its answer was lost');
  });
});

describe('DaisySMS extra activation: another code on the number, a new activation, charged', () => {
  async function setup(t: TestContext) {
    const clock = new ManualClock(T0);
    const fake = await startFakeSmsActivate({ clock, dialect: 'daisy', balance: 10 });
    t.after(() => fake.close());
    const provider = new SmsActivateProvider({ ...SELLER_PROFILES.daisysms.options, baseUrl: fake.url, apiKey: 'sa-test-key', requestsPerSecond: 0, timeoutMs: 2000, clock });
    const order = await provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 60, clientRef: 'ver_1' });
    const ref = { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, since: clock.now() };
    return { clock, fake, provider, order, ref };
  }
  const extraCalls = (fake: FakeSmsActivate) => fake.state.requests.filter((r) => r.query.get('action') === 'getExtraActivation');

  test('getExtraActivation&activationId=<previous>: ACCESS_NUMBER with a new id, the same number, the price from X-Price', async (t) => {
    const { clock, fake, provider, order, ref } = await setup(t);
    assert.deepEqual(provider.anotherCodeTerms, { charged: true, newOrder: true });
    fake.controls.deliverSms(order.providerOrderId, { code: '111111' });
    const balance = fake.state.balance;
    const another = await provider.anotherCode({ ...ref, since: clock.now() });
    assert.notEqual(another.providerOrderId, order.providerOrderId);
    assert.deepEqual([another.phoneNumber, another.costMinor], [order.phoneNumber, 50]);
    assert.equal(extraCalls(fake)[0]!.query.get('activationId'), order.providerOrderId);
    assert.equal(fake.state.balance, Math.round((balance - 0.5) * 100) / 100, 'the seller charged the extra activation');

    const newRef = { providerOrderId: another.providerOrderId, phoneNumber: another.phoneNumber, since: clock.now() };
    assert.deepEqual((await provider.check(newRef)).messages, []);
    fake.controls.deliverSms(another.providerOrderId, { code: '222222' });
    assert.deepEqual((await provider.check(newRef)).messages.map((m) => m.code), ['222222']);
  });

  test('BAD_ID (before a code, or the extra already taken) and NO_MONEY: definite', async (t) => {
    const { fake, provider, order, ref } = await setup(t);
    const early = await failure(provider.anotherCode(ref));
    assert.deepEqual([early.kind, early.code], ['definite', 'rejected']);
    fake.controls.deliverSms(order.providerOrderId, { code: '111111' });
    await provider.anotherCode(ref);
    const twice = await failure(provider.anotherCode(ref));
    assert.deepEqual([twice.kind, twice.code], ['definite', 'rejected']);
    const other = await provider.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 60, clientRef: 'ver_2' });
    fake.controls.deliverSms(other.providerOrderId, { code: '333333' });
    fake.state.balance = 0.1;
    const broke = await failure(provider.anotherCode({ ...ref, providerOrderId: other.providerOrderId }));
    assert.deepEqual([broke.kind, broke.code], ['definite', 'upstream_balance']);
  });

  test('ASLEEP:<id>:<number>:<time>: the sleeping activation is cancelled at once and the request refused, definite, with the wait', async (t) => {
    const { clock, fake, provider, order, ref } = await setup(t);
    fake.controls.deliverSms(order.providerOrderId, { code: '111111' });
    fake.controls.setAsleepUntil(new Date(clock.now().getTime() + 90_000));
    const balance = fake.state.balance;
    const asleep = await failure(provider.anotherCode(ref));
    assert.deepEqual([asleep.kind, asleep.code, asleep.retryAfterSeconds], ['definite', 'rejected', 90]);
    const extra = [...fake.state.activations.values()].find((a) => a.extraOf === order.providerOrderId)!;
    assert.equal(extra.status, 'cancelled');
    assert.equal(fake.state.balance, balance, 'the cancelled extra activation cost nothing');
  });

  test('a lost answer to the charged call is ambiguous', async (t) => {
    const { fake, provider, order, ref } = await setup(t);
    fake.controls.deliverSms(order.providerOrderId, { code: '111111' });
    fake.controls.failNext('getExtraActivation', { type: 'dropAfterEffect' });
    const lost = await failure(provider.anotherCode(ref));
    assert.equal(lost.kind, 'ambiguous');
    assert.equal(fake.state.extras, 1);
  });
});
