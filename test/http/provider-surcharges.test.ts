import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { startFakeSmsActivate, type FakeSmsActivate } from '../support/fake-sms-activate.ts';
import { login, registerUser, type TestUser } from '../support/http.ts';
import { ManualClock } from '../support/clock.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';
import { assertLedgerConsistent } from '../support/ledger-invariants.ts';

/**
 * Surcharges per provider over HTTP: two SMS-Activate-protocol sellers behind one offer, each with
 * its own carrier surcharge. WhatsApp in the US: north sells at 100 (cost 50), south at 90 (cost
 * 55), so our price is 90 with both behind it. Carrier surcharges: north falls back to the global
 * CARRIER_SURCHARGE_MINOR=20, south has PROVIDER_SOUTH_CARRIER_SURCHARGE_MINOR=30. Each sold with the
 * offer's margin at that seller: north ⌈20 × 90 ÷ 50⌉ = 36, south ⌈30 × 90 ÷ 55⌉ = 50; the customer
 * pays the higher, 50, wherever the purchase lands (so 140 is held, and charged when the code comes),
 * and each seller's price cap is its own cost with its own surcharge (north 0.70, south 0.85).
 */
const PRICE = 90;
const CARRIER = 50;

for (const engine of engines) {
  describe(`surcharges per provider [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    let north: FakeSmsActivate;
    let south: FakeSmsActivate;
    const clock = new ManualClock();

    before(async () => {
      north = await startFakeSmsActivate({ clock, balance: 100 });
      south = await startFakeSmsActivate({ clock, balance: 100 });
      const seller = (name: string, fake: FakeSmsActivate) => ({
        [`PROVIDER_${name}_PROTOCOL`]: 'sms-activate',
        [`PROVIDER_${name}_BASE_URL`]: fake.url,
        [`PROVIDER_${name}_API_KEY`]: 'sa-test-key',
        [`PROVIDER_${name}_REQUESTS_PER_SECOND`]: '0',
      });
      app = await startTestApp({
        engine,
        worker: false,
        clock,
        env: {
          PROVIDERS: 'north,south',
          CARRIER_SURCHARGE_MINOR: '20',
          PROVIDER_SOUTH_CARRIER_SURCHARGE_MINOR: '30',
          BREAKER_FAILURE_THRESHOLD: '100',
          ...seller('NORTH', north),
          ...seller('SOUTH', south),
        },
      });
      admin = await login(app.url, app.admin.email, app.admin.password);
      await putProviderCatalogue(app.ctx.database.db, 'north', [{ service: 'whatsapp', priceMinor: 100, costMinor: 50 }]);
      await putProviderCatalogue(app.ctx.database.db, 'south', [{ service: 'whatsapp', priceMinor: 90, costMinor: 55 }]);
    });
    after(async () => {
      await app?.close();
      await north?.close();
      await south?.close();
    });

    async function customer(funds: number): Promise<TestUser> {
      const user = await registerUser(app.url);
      const credit = await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: funds, reason: 'test funds' });
      assert.equal(credit.status, 201);
      clock.advance(1000);
      return user;
    }
    const wallet = async (user: TestUser) => {
      const w = (await user.client.get('/v1/wallet')).body;
      return [w.balance_minor, w.held_minor, w.available_minor];
    };
    const purchasesAt = (fake: FakeSmsActivate) => fake.state.requests.filter((r) => /^getNumber/.test(r.query.get('action') ?? ''));

    /** Buys WhatsApp with a carrier; the answer, the seller that sold it, and the cap that seller was sent. */
    async function buyWithCarrier(user: TestUser): Promise<{ id: string; fake: FakeSmsActivate; cap: string | null }> {
      const before = { south: purchasesAt(south).length };
      const bought = await user.client.post('/v1/verifications', { service: 'whatsapp', country: 'US', carriers: ['tmo'] }, { headers: { 'idempotency-key': randomUUID() } });
      assert.equal(bought.status, 201, JSON.stringify(bought.body));
      assert.equal(bought.body.price_minor, PRICE + CARRIER);
      const soldBy = purchasesAt(south).length > before.south ? south : north;
      const sale = purchasesAt(soldBy).at(-1)!;
      assert.equal(sale.query.get('operator'), 'tmo');
      return { id: bought.body.id, fake: soldBy, cap: sale.query.get('maxPrice') };
    }

    async function deliver(user: TestUser, id: string, fake: FakeSmsActivate): Promise<string> {
      const activation = [...fake.state.activations.values()].find((a) => a.status === 'waiting' && a.operator === 'tmo')!;
      fake.controls.deliverSms(activation.id, { code: '246810', text: 'Your WhatsApp code is 246810' });
      clock.advance(2000);
      await app.server.runtime.engine.tick();
      return (await user.client.get(`/v1/verifications/${id}`)).body.state;
    }

    test('GET /v1/services and GET /v1/area-codes show the carrier surcharge the customer will pay: the highest among the sellers', async () => {
      const user = await customer(1);
      const services = await user.client.get('/v1/services?country=US');
      assert.equal(services.status, 200);
      const whatsapp = services.body.services.find((s: { service: string }) => s.service === 'whatsapp');
      assert.equal(whatsapp.price_minor, PRICE);
      assert.deepEqual(whatsapp.surcharge_minor, { area_code: null, carrier: CARRIER, voice: null });

      const choices = await user.client.get('/v1/area-codes?country=US&service=whatsapp');
      assert.equal(choices.status, 200);
      assert.deepEqual(choices.body.surcharge_minor, { area_code: null, carrier: CARRIER, voice: null });
    });

    test('bought at the first seller: its own cap sent up, the highest surcharge held, then captured', async () => {
      const user = await customer(1000);
      const { id, fake, cap } = await buyWithCarrier(user);
      assert.equal(cap, fake === north ? '0.70' : '0.85', 'each seller is sent its own cost with its own surcharge');
      assert.deepEqual(await wallet(user), [1000, PRICE + CARRIER, 1000 - PRICE - CARRIER]);
      assert.equal(await deliver(user, id, fake), 'received');
      assert.deepEqual(await wallet(user), [1000 - PRICE - CARRIER, 0, 1000 - PRICE - CARRIER]);
      await assertLedgerConsistent(app.ctx.database.db);
    });

    test('one seller has no numbers: the other sells under the same hold, with its own cap; the same charge', async () => {
      const user = await customer(1000);
      // North has no numbers: wherever routing starts, south sells, with south's own cap.
      north.controls.setCount('187', 'wa', 0);
      const before = purchasesAt(north).length;
      const { id, fake, cap } = await buyWithCarrier(user);
      assert.equal(fake, south);
      assert.equal(cap, '0.85');
      const northCaps = purchasesAt(north).slice(before).map((r) => r.query.get('maxPrice'));
      assert.ok(northCaps.every((c) => c === '0.70'), `north was asked with its own cap: ${northCaps.join(',')}`);
      assert.deepEqual(await wallet(user), [1000, PRICE + CARRIER, 1000 - PRICE - CARRIER]);
      assert.equal(await deliver(user, id, south), 'received');
      assert.deepEqual(await wallet(user), [1000 - PRICE - CARRIER, 0, 1000 - PRICE - CARRIER]);
      north.controls.setCount('187', 'wa', 120);
      await assertLedgerConsistent(app.ctx.database.db);
    });

    test('a plain purchase pays no surcharge at either seller', async () => {
      const user = await customer(1000);
      const bought = await user.client.post('/v1/verifications', { service: 'whatsapp', country: 'US' }, { headers: { 'idempotency-key': randomUUID() } });
      assert.equal(bought.status, 201);
      assert.equal(bought.body.price_minor, PRICE);
      assert.deepEqual(await wallet(user), [1000, PRICE, 1000 - PRICE]);
    });
  });
}
