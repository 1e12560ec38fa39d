import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { deliveryStats, STATS_CACHE_MS } from '../../src/catalogue/stats.ts';
import { creditWallet } from '../../src/ledger/ledger.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { engines } from '../support/db.ts';
import { login, registerUser, type TestUser } from '../support/http.ts';

/**
 * What customers see per service and country (GET /v1/services, `last_24h`) and operators per
 * provider: exact figures from seeded verifications, the 24-hour window's edge (a row finished
 * exactly 24 h ago is out, one a second later is in), too few samples (null, with the sample size),
 * a real 0 % when there are enough, and a brief in-process cache.
 */
const T = new Date('2026-06-02T12:00:00Z');
const at = (ms: number) => new Date(T.getTime() + ms);
const S = 1000;
const H = 3600 * S;

test('the figures of one group: rate to 3 decimals, median to a whole second, null below 10 finished', () => {
  assert.deepEqual(deliveryStats(12, 9, 50.4), { sampleSize: 12, received: 9, successRate: 0.75, medianSecondsToCode: 50 });
  assert.deepEqual(deliveryStats(9, 9, 10), { sampleSize: 9, received: 9, successRate: null, medianSecondsToCode: null });
  assert.deepEqual(deliveryStats(10, 0, null), { sampleSize: 10, received: 0, successRate: 0, medianSecondsToCode: null });
  assert.deepEqual(deliveryStats(3, 2, 7), { sampleSize: 3, received: 2, successRate: null, medianSecondsToCode: null });
  assert.equal(deliveryStats(3000, 1000, 1).successRate, 0.333);
});

for (const engine of engines) {
  describe(`delivery over the last 24 hours [${engine}]`, () => {
    let app: TestApp;
    let customer: TestUser;
    let admin: TestUser;
    const clock = new ManualClock(T);

    /** A verification as the lifecycle leaves it (its hold placed), created and finished when given. */
    async function seed(v: { service: string; country: string; state: string; createdAt: Date; resolvedAt: Date | null }) {
      const id = randomUUID();
      const holdId = randomUUID();
      const db = app.ctx.database.db;
      await db.execute(sql`INSERT INTO ledger_holds (id, account_id, amount_minor, verification_id, expires_at, actor, created_at)
        SELECT ${holdId}, a.id, 50, ${id}, ${at(H)}, 'customer', ${v.createdAt} FROM ledger_accounts a WHERE a.user_id = ${customer.id}`);
      await db.execute(sql`INSERT INTO verifications (id, user_id, provider, service, country, state, price_minor, max_cost_minor, currency,
          idempotency_key, request_fingerprint, hold_id, phone_number, created_at, updated_at, expires_at, resolved_at)
        VALUES (${id}, ${customer.id}, 'sandbox', ${v.service}, ${v.country}, ${v.state}, 50, 25, 'USD', ${id}, 'f', ${holdId},
          ${v.state === 'failed' ? null : '+15550000000'}, ${v.createdAt}, ${v.resolvedAt ?? v.createdAt}, ${at(H)}, ${v.resolvedAt})`);
    }

    before(async () => {
      app = await startTestApp({ engine, clock, worker: false });
      customer = await registerUser(app.url);
      admin = await login(app.url, app.admin.email, app.admin.password);
      await creditWallet(app.ctx.database.db, { userId: customer.id, amountMinor: 100_000, kind: 'topup', actor: 'admin', reason: 'test', now: at(-48 * H) });
      // whatsapp/US: 9 codes in 10, 20, … 90 s, finished an hour ago; 2 expired; 1 failed a second inside the window.
      for (let i = 1; i <= 9; i++) await seed({ service: 'whatsapp', country: 'US', state: 'received', createdAt: at(-H - i * 10 * S), resolvedAt: at(-H) });
      for (let i = 0; i < 2; i++) await seed({ service: 'whatsapp', country: 'US', state: 'expired', createdAt: at(-3 * H), resolvedAt: at(-2 * H) });
      await seed({ service: 'whatsapp', country: 'US', state: 'failed', createdAt: at(-24 * H + S), resolvedAt: at(-24 * H + S) });
      // Outside the window (exactly 24 h ago, and earlier), and not finished: not counted.
      await seed({ service: 'whatsapp', country: 'US', state: 'received', createdAt: at(-24 * H - 5 * S), resolvedAt: at(-24 * H) });
      await seed({ service: 'whatsapp', country: 'US', state: 'received', createdAt: at(-26 * H), resolvedAt: at(-25 * H) });
      await seed({ service: 'whatsapp', country: 'US', state: 'waiting', createdAt: at(-60 * S), resolvedAt: null });
      // telegram/US: 3 codes, too few to tell.
      for (let i = 0; i < 3; i++) await seed({ service: 'telegram', country: 'US', state: 'received', createdAt: at(-2 * H - 5 * S), resolvedAt: at(-2 * H) });
      // whatsapp/GB: 10 finished, none received: a real 0 %.
      for (let i = 0; i < 10; i++) await seed({ service: 'whatsapp', country: 'GB', state: 'cancelled', createdAt: at(-5 * H), resolvedAt: at(-4 * H) });
    });
    after(() => app?.close());

    const listed = async (country?: string) => {
      const response = await customer.client.get(`/v1/services${country ? `?country=${country}` : ''}`);
      assert.equal(response.status, 200);
      return (service: string, c: string) => response.body.services.find((s: { service: string; country: string }) => s.service === service && s.country === c).last_24h;
    };

    test('exact figures per service and country; too few samples is null with the sample size; 0 % only with enough', async () => {
      const offer = await listed();
      assert.deepEqual(offer('whatsapp', 'US'), { sample_size: 12, success_rate: 0.75, median_seconds_to_code: 50 });
      assert.deepEqual(offer('telegram', 'US'), { sample_size: 3, success_rate: null, median_seconds_to_code: null });
      assert.deepEqual(offer('whatsapp', 'GB'), { sample_size: 10, success_rate: 0, median_seconds_to_code: null });
      assert.deepEqual(offer('google', 'US'), { sample_size: 0, success_rate: null, median_seconds_to_code: null });
      const gb = await listed('GB');
      assert.deepEqual(gb('whatsapp', 'GB'), { sample_size: 10, success_rate: 0, median_seconds_to_code: null });
    });

    test('operators see the same figures per provider, beside the margin', async () => {
      const report = await admin.client.get('/v1/admin/upstreams');
      const sandbox = report.body.upstreams.find((u: { provider: string }) => u.provider === 'sandbox');
      const whatsapp = sandbox.offers.find((o: { service: string; country: string }) => o.service === 'whatsapp' && o.country === 'US');
      assert.deepEqual(whatsapp.last_24h, { sample_size: 12, success_rate: 0.75, median_seconds_to_code: 50 });
      assert.equal(whatsapp.margin_minor, 60);
    });

    test('the window moves with the clock (after the brief cache): the failure a second inside it drops out', async () => {
      clock.advance(2 * S);
      // Within the cache's life the listing is not recomputed.
      assert.deepEqual((await listed())('whatsapp', 'US'), { sample_size: 12, success_rate: 0.75, median_seconds_to_code: 50 });
      clock.advance(STATS_CACHE_MS);
      assert.deepEqual((await listed())('whatsapp', 'US'), { sample_size: 11, success_rate: 0.818, median_seconds_to_code: 50 });
    });
  });
}
