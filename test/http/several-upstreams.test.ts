import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { startFakeSmsActivate, type FakeSmsActivate } from '../support/fake-sms-activate.ts';
import { call, login, registerUser } from '../support/http.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';

/**
 * A real server configured with several upstreams (two SMS-Activate-protocol sellers under their own
 * names, and the sandbox): one offer per service and country at our price, each provider's breaker in
 * /health and /metrics, and a webhook path per configured provider.
 */
const METRICS_TOKEN = 'prometheus-scrape-token-several-upstreams';

for (const engine of engines) {
  describe(`several upstreams over HTTP [${engine}]`, () => {
    let app: TestApp;
    let north: FakeSmsActivate;
    let south: FakeSmsActivate;

    before(async () => {
      north = await startFakeSmsActivate({ balance: 100 });
      south = await startFakeSmsActivate({ balance: 100 });
      const seller = (name: string, fake: FakeSmsActivate) => ({
        [`PROVIDER_${name}_PROTOCOL`]: 'sms-activate',
        [`PROVIDER_${name}_BASE_URL`]: fake.url,
        [`PROVIDER_${name}_API_KEY`]: 'sa-test-key',
        [`PROVIDER_${name}_REQUESTS_PER_SECOND`]: '0',
      });
      app = await startTestApp({
        engine,
        worker: false,
        env: { PROVIDERS: 'north,south,sandbox', METRICS_TOKEN, ...seller('NORTH', north), ...seller('SOUTH', south) },
      });
      // Whatsapp in the US: north sells at 100 (cost 50), south at 90 (cost 55), the sandbox at 120 (cost 60).
      await putProviderCatalogue(app.ctx.database.db, 'north', [{ service: 'whatsapp', priceMinor: 100, costMinor: 50 }]);
      await putProviderCatalogue(app.ctx.database.db, 'south', [{ service: 'whatsapp', priceMinor: 90, costMinor: 55 }]);
    });
    after(async () => {
      await app?.close();
      await north?.close();
      await south?.close();
    });

    test('GET /v1/services: one offer per service and country, at the lowest price that keeps a margin', async () => {
      const customer = await registerUser(app.url);
      const res = await customer.client.get('/v1/services?country=US');
      assert.equal(res.status, 200);
      const whatsapp = res.body.services.filter((s: { service: string }) => s.service === 'whatsapp');
      assert.deepEqual(whatsapp.map((s: { price_minor: number; country: string }) => [s.country, s.price_minor]), [['US', 90]]);
    });

    test('/health and /metrics show each provider’s breaker', async () => {
      const admin = await login(app.url, app.admin.email, app.admin.password);
      const health = await admin.client.get('/health');
      assert.equal(health.status, 200);
      assert.deepEqual(health.body.checks.breakers, { ok: true, north: { state: 'closed' }, south: { state: 'closed' }, sandbox: { state: 'closed' } });
      const metrics = await call(app.url, 'GET', '/metrics', { token: METRICS_TOKEN });
      assert.equal(metrics.status, 200);
      for (const name of ['north', 'south', 'sandbox']) assert.match(String(metrics.body), new RegExp(`namaskah_breaker_state\\{provider="${name}"\\} 0`));
    });

    test('webhooks: a path per configured provider; a provider that takes none, or none configured, is 404', async () => {
      for (const name of ['north', 'nowhere']) {
        const res = await call(app.url, 'POST', `/webhooks/providers/${name}`, { body: { event: 'x' } });
        assert.equal(res.status, 404);
      }
    });
  });
}
