import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { lifecycleHarness, START, type LifecycleHarness } from '../support/lifecycle.ts';
import { ManualClock } from '../support/clock.ts';
import { startFakeSmsActivate, type FakeSmsActivate, type SmsActivateDialect } from '../support/fake-sms-activate.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { rows } from '../../src/db/database.ts';
import { SmsActivateProvider } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES, type SellerName } from '../../src/providers/sms-activate/sellers.ts';
import { FINISH_ATTEMPTS } from '../../src/verifications/settlement.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';

/**
 * A delivered order is marked finished upstream (SMS-Activate setStatus 6) by the engine, outside
 * the capture, and every answer is written in the verification's history. The fake seller asserts
 * it received the call.
 */
const sellers: { dialect: SmsActivateDialect; seller: SellerName }[] = [
  { dialect: 'classic', seller: 'sms-activate' },
  { dialect: 'hero', seller: 'herosms' },
];

for (const engine of engines) {
  for (const { dialect, seller } of sellers) {
    describe(`finishing a delivered order upstream, ${seller} [${engine}]`, () => {
      let h: LifecycleHarness;
      let fake: FakeSmsActivate;
      const clock = new ManualClock(START);

      before(async () => {
        fake = await startFakeSmsActivate({ clock, dialect, balance: 1000, earlyCancelSeconds: 0 });
        const provider = new SmsActivateProvider({ ...SELLER_PROFILES[seller].options, baseUrl: fake.url, apiKey: 'sa-test-key', clock, requestsPerSecond: 0, timeoutMs: 2000 });
        // The breaker keeps real time: a high threshold keeps it out of the finish retries.
        h = await lifecycleHarness(engine, { provider, clock, env: { BREAKER_FAILURE_THRESHOLD: '100' } });
        await putProviderCatalogue(h.t.database.db, 'sms-activate');
      });
      after(async () => {
        await h?.dispose();
        await fake?.close();
      });

      const finishCalls = (id: string) =>
        fake.state.requests.filter((r) => r.query.get('action') === 'setStatus' && r.query.get('status') === '6' && r.query.get('id') === id).length;
      const history = async (id: string) =>
        (await rows<{ actor: string; reason: string }>(h.t.database.db, sql`SELECT actor, reason FROM verification_events WHERE verification_id = ${id} AND from_state = to_state ORDER BY id`)).map(
          (e) => `${e.actor}: ${e.reason}`,
        );

      async function delivered(): Promise<{ id: string; order: string; user: string }> {
        const user = await h.customer(1000);
        const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'whatsapp' });
        assert.equal(out.row.state, 'waiting');
        fake.controls.deliverSms(out.row.providerOrderId!, { code: '443322', text: 'Your WhatsApp code 443-322' });
        return { id: out.row.id, order: out.row.providerOrderId!, user };
      }

      test('the capture owes the finish; the engine sends setStatus 6 once and records the answer', async () => {
        const { id, order, user } = await delivered();
        clock.advance(2_000);
        const report = await h.runtime.engine.tick();
        assert.equal(report.captured, 1);
        const row = (await loadVerification(h.t.database.db, id))!;
        assert.deepEqual([row.state, row.upstreamStatus], ['received', 'completed']);
        assert.equal(finishCalls(order), 1, 'the seller received the finish call');
        assert.equal(fake.state.activations.get(order)?.status, 'finished');
        assert.deepEqual(await history(id), ['sweeper: upstream order finished']);
        assert.deepEqual(await h.wallet(user), [920, 0, 920]);

        clock.advance(60_000);
        await h.runtime.engine.tick();
        assert.equal(finishCalls(order), 1, 'never finished twice');
        await assertLifecycleConsistent(h.t.database.db);
      });

      test('a failing finish is retried with backoff, each answer in the history; the money never moves', async () => {
        const { id, order, user } = await delivered();
        fake.controls.failNext('setStatus', { type: 'status', status: 503, body: 'busy' }, 2);
        clock.advance(2_000);
        await h.runtime.engine.tick();
        let row = (await loadVerification(h.t.database.db, id))!;
        assert.deepEqual([row.state, row.upstreamStatus], ['received', 'finish_owed']);
        for (let i = 0; i < 3 && row.upstreamStatus === 'finish_owed'; i++) {
          clock.advance(60_000);
          await h.runtime.engine.tick();
          row = (await loadVerification(h.t.database.db, id))!;
        }
        assert.equal(row.upstreamStatus, 'completed');
        assert.equal(finishCalls(order), 3);
        assert.deepEqual(await history(id), [
          'sweeper: upstream finish failed (server_error); retrying',
          'sweeper: upstream finish failed (server_error); retrying',
          'sweeper: upstream order finished',
        ]);
        assert.deepEqual(await h.wallet(user), [920, 0, 920]);
        await assertLifecycleConsistent(h.t.database.db);
      });

      test(`a seller that never answers the finish is given up after ${FINISH_ATTEMPTS} attempts`, async () => {
        const { id, order } = await delivered();
        fake.controls.failNext('setStatus', { type: 'status', status: 503, body: 'busy' }, FINISH_ATTEMPTS);
        clock.advance(2_000);
        for (let i = 0; i < FINISH_ATTEMPTS + 2; i++) {
          await h.runtime.engine.tick();
          clock.advance(310_000);
        }
        assert.equal((await loadVerification(h.t.database.db, id))?.upstreamStatus, 'completed');
        assert.equal(finishCalls(order), FINISH_ATTEMPTS);
        assert.match((await history(id)).at(-1)!, /given up after 5 attempts, the order ends on its own/);
        fake.controls.clearFailures();
      });
    });
  }
}
