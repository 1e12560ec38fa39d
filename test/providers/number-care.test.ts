import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../support/clock.ts';
import { ProviderError } from '../../src/providers/provider.ts';
import { SmsActivateProvider } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES, type SellerName } from '../../src/providers/sms-activate/sellers.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { startFakeSmsActivate, type SmsActivateDialect } from '../support/fake-sms-activate.ts';
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
