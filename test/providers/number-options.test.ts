import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../support/clock.ts';
import { honours } from '../../src/catalogue/number-options.ts';
import { ProviderError, type PurchaseRequest } from '../../src/providers/provider.ts';
import { SmsActivateProvider, type SmsActivateOptions } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES } from '../../src/providers/sms-activate/sellers.ts';
import { TextVerifiedProvider, type TextVerifiedOptions } from '../../src/providers/textverified/adapter.ts';
import { assignedNumberMismatch } from '../../src/verifications/assigned-number.ts';
import { startFakeSmsActivate, type FakeSmsActivateOptions } from '../support/fake-sms-activate.ts';
import { startFakeTextVerified, type FakeTextVerifiedOptions } from '../support/fake-textverified.ts';

/** Area code, carrier and voice on the wire, against local upstreams speaking each one's format. */
const T0 = '2026-03-01T12:00:00.000Z';

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

describe('TextVerified: areaCodeSelectOption, carrierSelectOption, capability', () => {
  async function setup(t: TestContext, fakeOptions: FakeTextVerifiedOptions = {}, adapter: Partial<TextVerifiedOptions> = {}) {
    const clock = new ManualClock(T0);
    const fake = await startFakeTextVerified({ clock, ...fakeOptions });
    t.after(() => fake.close());
    const provider = new TextVerifiedProvider({
      baseUrl: fake.url,
      apiUsername: 'operator@example.com',
      apiKey: 'tv-test-key',
      requestsPerSecond: 0,
      timeoutMs: 2000,
      clock,
      ...adapter,
    });
    return { clock, fake, provider };
  }
  const purchase = (o: Partial<PurchaseRequest> = {}): PurchaseRequest => ({ service: 'whatsapp', country: 'US', maxCostMinor: 200, clientRef: 'ver_0001', ...o });
  const createBodies = (fake: { state: { requests: { method: string; path: string; body: string }[] } }) =>
    fake.state.requests.filter((r) => r.method === 'POST' && r.path === '/api/pub/v2/verifications').map((r) => JSON.parse(r.body));

  test('a plain purchase sends neither option; one with options sends both lists and the cap with the surcharge', async (t) => {
    const { fake, provider } = await setup(t, { surcharges: { areaCode: 0.25, carrier: 0.1 } }, { surcharges: { areaCodeMinor: 25, carrierMinor: 10, voiceMinor: 0 } });
    await provider.buy(purchase());
    const order = await provider.buy(purchase({ clientRef: 'ver_0002', maxCostMinor: 125 + 35, options: { areaCodes: ['212', '415'], carriers: ['tmo', 'vz'] } }));
    const [plain, chosen] = createBodies(fake);
    assert.deepEqual(plain, { serviceName: 'whatsapp', capability: 'sms', maxPrice: 2 });
    assert.deepEqual(chosen, { serviceName: 'whatsapp', capability: 'sms', areaCodeSelectOption: ['212', '415'], carrierSelectOption: ['tmo', 'vz'], maxPrice: 1.6 });
    assert.match(order.phoneNumber, /^1212555\d{4}$/);
    assert.equal(order.costMinor, 160);
    assert.equal(assignedNumberMismatch({ areaCodes: ['212', '415'] }, order), null);
  });

  test('a surcharge above the cap is refused upstream (PricingFailure): definite, nothing bought', async (t) => {
    const { fake, provider } = await setup(t, { surcharges: { areaCode: 0.5 } });
    const error = await failure(provider.buy(purchase({ maxCostMinor: 150, options: { areaCodes: ['212'] } })));
    assert.equal(error.kind, 'definite');
    assert.equal(error.code, 'price_exceeds_max');
    assert.equal(fake.state.purchases, 0);
  });

  test('no numbers in the area codes asked for: definite no_numbers', async (t) => {
    const { fake, provider } = await setup(t, { emptyAreaCodes: ['907'] });
    const error = await failure(provider.buy(purchase({ options: { areaCodes: ['907'] } })));
    assert.equal(error.kind, 'definite');
    assert.equal(error.code, 'no_numbers');
    assert.equal(fake.state.purchases, 0);
  });

  test('voice: capability voice for a combo service; a code texted to a voice order is read like any SMS (its calls: textverified-voice.test.ts)', async (t) => {
    const { fake, provider, clock } = await setup(t, { voiceServices: ['whatsapp'] });
    const order = await provider.buy(purchase({ options: { capability: 'voice' } }));
    assert.equal(createBodies(fake)[0].capability, 'voice');
    clock.advance(5_000);
    fake.controls.deliverSms(order.providerOrderId, { text: 'Your WhatsApp code is 482913', code: '482913' });
    const check = await provider.check({ providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, since: new Date(T0) });
    assert.equal(check.state, 'received');
    assert.equal(check.messages[0]!.code, '482913');
    // A service that is SMS only: TextVerified refuses the capability, definite.
    const refused = await failure(provider.buy(purchase({ service: 'telegram', clientRef: 'ver_0003', options: { capability: 'voice' } })));
    assert.equal(refused.kind, 'definite');
  });

  test('the catalogue marks combo services as voice; area codes are listed with their state', async (t) => {
    const { provider } = await setup(t, { voiceServices: ['telegram'], areaCodes: [{ areaCode: '305', state: 'FL' }] });
    const entries = await provider.catalogue();
    assert.equal(entries.find((e) => e.service === 'telegram')!.voice, true);
    assert.equal(entries.find((e) => e.service === 'whatsapp')!.voice, undefined);
    assert.deepEqual(await provider.areaCodes(), [{ areaCode: '305', region: 'FL' }]);
    assert.equal(honours(provider.capabilities, { areaCodes: ['305'], carriers: ['vz'], capability: 'voice' }, 'US').ok, true);
    assert.equal(honours(provider.capabilities, { areaCodes: ['305'] }, 'GB').ok, false);
  });

  test('lookup re-issues the create with the same options, so the same key means the same request', async (t) => {
    const { fake, provider } = await setup(t);
    const options = { areaCodes: ['415'], carriers: ['att'] };
    const bought = await provider.buy(purchase({ options }));
    const found = await provider.lookup({ ...purchase({ options }), requestedAt: new Date(T0), claimedOrderIds: new Set() });
    assert.equal(found.status, 'found');
    assert.equal(found.status === 'found' && found.order.providerOrderId, bought.providerOrderId);
    const [first, second] = createBodies(fake);
    assert.deepEqual(second, first);
    assert.equal(fake.state.purchases, 1);
  });
});

describe('SMS-Activate family: operator; DaisySMS areas and carriers', () => {
  async function setup(t: TestContext, fakeOptions: FakeSmsActivateOptions = {}, adapter: Partial<SmsActivateOptions> = {}) {
    const clock = new ManualClock(T0);
    const fake = await startFakeSmsActivate({ clock, ...fakeOptions });
    t.after(() => fake.close());
    const provider = new SmsActivateProvider({ baseUrl: fake.url, apiKey: 'sa-test-key', requestsPerSecond: 0, timeoutMs: 2000, clock, ...adapter });
    return { clock, fake, provider };
  }
  const purchase = (o: Partial<PurchaseRequest> = {}): PurchaseRequest => ({ service: 'whatsapp', country: 'US', maxCostMinor: 60, clientRef: 'ver_0001', ...o });
  const numberQueries = (fake: { state: { requests: { query: URLSearchParams }[] } }) =>
    fake.state.requests.map((r) => r.query).filter((q) => q.get('action')?.startsWith('getNumber'));

  test('carriers go up as `operator`; getNumberV2 names the operator assigned, which the purchase checks', async (t) => {
    const { fake, provider } = await setup(t, { operators: ['tmo', 'att'] }, { purchaseAction: 'getNumberV2' });
    const order = await provider.buy(purchase({ options: { carriers: ['tmo', 'att'] } }));
    const [query] = numberQueries(fake);
    assert.equal(query!.get('operator'), 'tmo,att');
    assert.equal(query!.get('areas'), null);
    assert.equal(order.carrier, 'tmo');
    assert.equal(assignedNumberMismatch({ carriers: ['tmo', 'att'] }, order), null);
    assert.equal(provider.capabilities.areaCodes, false, 'the protocol has no area codes');
    assert.equal(honours(provider.capabilities, { areaCodes: ['212'] }, 'US').ok, false);
    assert.equal(honours(provider.capabilities, { capability: 'voice' }, 'US').ok, false);
  });

  test('an operator the seller does not have: WRONG_OPERATOR, definite; a seller that assigns another operator is caught', async (t) => {
    const { fake, provider } = await setup(t, { operators: ['tmo'], assignedOperator: 'vz' }, { purchaseAction: 'getNumberV2' });
    const error = await failure(provider.buy(purchase({ options: { carriers: ['att'] } })));
    assert.equal(error.kind, 'definite');
    assert.equal(error.code, 'rejected');
    assert.equal(fake.state.purchases, 0);
    const order = await provider.buy(purchase({ clientRef: 'ver_0002', options: { carriers: ['tmo'] } }));
    assert.equal(order.carrier, 'vz');
    assert.match(assignedNumberMismatch({ carriers: ['tmo'] }, order)!, /carrier vz/);
  });

  test('a plain purchase sends no operator, and "any" says nothing about the carrier', async (t) => {
    const { fake, provider } = await setup(t, {}, { purchaseAction: 'getNumberV2' });
    const order = await provider.buy(purchase());
    assert.equal(numberQueries(fake)[0]!.get('operator'), null);
    assert.equal(order.carrier, undefined);
  });

  test('DaisySMS: `areas` and `carriers`, comma-separated; the number is in an area asked for; an empty area has no numbers', async (t) => {
    const { fake, provider } = await setup(t, { dialect: 'daisy', emptyAreaCodes: ['907'] }, { ...SELLER_PROFILES.daisysms.options });
    const order = await provider.buy(purchase({ options: { areaCodes: ['305', '786'], carriers: ['tmo'] } }));
    const [query] = numberQueries(fake);
    assert.equal(query!.get('areas'), '305,786');
    assert.equal(query!.get('carriers'), 'tmo');
    assert.equal(query!.get('operator'), null);
    assert.match(order.phoneNumber, /^1305555\d{4}$/);
    assert.equal(assignedNumberMismatch({ areaCodes: ['305', '786'] }, order), null);

    const none = await failure(provider.buy(purchase({ clientRef: 'ver_0002', options: { areaCodes: ['907'] } })));
    assert.equal(none.kind, 'definite');
    assert.equal(none.code, 'no_numbers');
    assert.equal(honours(provider.capabilities, { areaCodes: ['305'], carriers: ['tmo'] }, 'US').ok, true);
    assert.equal(honours(provider.capabilities, { carriers: ['verizon'] }, 'US').ok, false, 'DaisySMS names its carriers');
  });
});
