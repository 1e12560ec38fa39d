import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ProviderError } from '../../src/providers/provider.ts';
import { SmsActivateProvider, type SmsActivateOptions } from '../../src/providers/sms-activate/adapter.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { login } from '../support/http.ts';
import { HANDLER_PATH, protocolCustomer, walletOf, type ProtocolCustomer } from '../support/handler-api.ts';

/**
 * A client written for the protocol, unchanged: Namaskah's own SMS-Activate adapter — built and
 * tested against what real sellers answer — pointed at our handler with a customer's API key,
 * buys, reads the code, cancels, lists and reads prices and the balance, and the customer's wallet
 * moves exactly as it would through /v1.
 */
for (const engine of engines) {
  describe(`SMS-Activate protocol: an existing client works against it unchanged [${engine}]`, () => {
    let app: TestApp;
    let customer: ProtocolCustomer;
    const clock = new ManualClock('2026-03-01T12:00:00Z');

    before(async () => {
      app = await startTestApp({ engine, worker: false, clock, env: { SANDBOX_FAILURE_RATE: '1', VERIFICATION_TTL_SECONDS: '600' } });
      const admin = await login(app.url, app.admin.email, app.admin.password);
      customer = await protocolCustomer(app, admin, 1000);
    });
    after(() => app.close());

    function client(options: Partial<SmsActivateOptions> = {}): SmsActivateProvider {
      return new SmsActivateProvider({
        baseUrl: new URL(HANDLER_PATH, app.url).toString(),
        apiKey: customer.key,
        clock,
        requestsPerSecond: 0,
        // Our names for the sandbox's scenarios, as an operator would configure any seller's codes.
        serviceCodes: { whatsapp: 'wa', test_timeout: 'testtimeout', test_success: 'testsuccess' },
        countryCodes: { US: '187', GB: '16' },
        // Our timestamps are UTC; the installation and the account are in USD.
        sellerUtcOffsetMinutes: 0,
        sellerCurrency: 'USD',
        ...options,
      });
    }

    test('balance, prices, purchase, code, cancel and the active list, as the client reads them', async () => {
      const seller = client();
      assert.deepEqual(await seller.balance(), { amountMinor: 1000, currency: 'USD' });
      const catalogue = await seller.catalogue();
      assert.deepEqual(
        catalogue.map((e) => [e.service, e.country, e.costMinor]).sort(),
        [
          ['test_success', 'GB', 50],
          ['test_success', 'US', 50],
          ['test_timeout', 'GB', 50],
          ['test_timeout', 'US', 50],
          ['whatsapp', 'GB', 120],
          ['whatsapp', 'US', 120],
        ],
      );

      clock.advance(1000);
      const order = await seller.buy({ service: 'test_timeout', country: 'US', maxCostMinor: 50, clientRef: 'interop-1' });
      const bought = (await customer.user.client.get('/v1/verifications?limit=1')).body.items[0];
      assert.equal(order.phoneNumber, bought.phone_number);
      assert.match(order.providerOrderId, /^\d+$/);
      assert.deepEqual(await walletOf(customer.user), [1000, 50, 950]);
      assert.deepEqual(await seller.balance(), { amountMinor: 950, currency: 'USD' });

      const ref = { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, since: new Date(bought.created_at) };
      assert.deepEqual(await seller.check(ref), { state: 'waiting', messages: [] });
      clock.advance(1000);
      assert.equal((await customer.user.client.post('/v1/sandbox/sms', { verification_id: bought.id, text: 'Your code is 246810' })).status, 200);
      const received = await seller.check(ref);
      assert.equal(received.state, 'received');
      assert.deepEqual(
        received.messages.map((m) => m.code),
        ['246810'],
      );
      assert.deepEqual(await seller.cancel(order.providerOrderId), { outcome: 'already_received' });
      assert.deepEqual(await walletOf(customer.user), [950, 0, 950]);

      clock.advance(1000);
      const second = await seller.buy({ service: 'whatsapp', country: 'GB', maxCostMinor: 120, clientRef: 'interop-2' });
      const listed = await seller.activeOrders();
      assert.deepEqual(
        listed.map((o) => [o.providerOrderId, o.service]).sort(),
        [
          [order.providerOrderId, 'test_timeout'],
          [second.providerOrderId, 'whatsapp'],
        ].sort(),
      );
      assert.deepEqual(await seller.cancel(second.providerOrderId), { outcome: 'cancelled' });
      assert.deepEqual(await walletOf(customer.user), [950, 0, 950]);
      assert.deepEqual(await seller.cancel(second.providerOrderId), { outcome: 'gone' });
    });

    test('getNumberV2 as the client reads it: the number and its end of life; a price cap below the price is refused, nothing held', async () => {
      const seller = client({ purchaseAction: 'getNumberV2' });
      clock.advance(1000);
      const order = await seller.buy({ service: 'test_timeout', country: 'GB', maxCostMinor: 50, clientRef: 'interop-3' });
      const bought = (await customer.user.client.get('/v1/verifications?limit=1')).body.items[0];
      assert.equal(bought.country, 'GB');
      assert.equal(order.phoneNumber, bought.phone_number);
      assert.equal(order.endsAt?.toISOString(), bought.expires_at);
      assert.equal(order.costMinor, 50);
      assert.deepEqual(await seller.cancel(order.providerOrderId), { outcome: 'cancelled' });

      const before = await walletOf(customer.user);
      await assert.rejects(seller.buy({ service: 'whatsapp', country: 'US', maxCostMinor: 119, clientRef: 'interop-4' }), (error: unknown) => {
        assert.ok(error instanceof ProviderError);
        assert.equal(error.kind, 'definite');
        assert.equal(error.code, 'price_exceeds_max');
        return true;
      });
      assert.deepEqual(await walletOf(customer.user), before);
    });
  });
}
