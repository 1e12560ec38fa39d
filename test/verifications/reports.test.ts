import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { FaultSwitch, lifecycleHarness, START, type LifecycleHarness } from '../support/lifecycle.ts';
import { ManualClock } from '../support/clock.ts';
import { startFakeTextVerified, type FakeTextVerified } from '../support/fake-textverified.ts';
import { startFakeSmsActivate, type FakeSmsActivate } from '../support/fake-sms-activate.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { rows } from '../../src/db/database.ts';
import { DomainError } from '../../src/errors.ts';
import { SmsActivateProvider } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES } from '../../src/providers/sms-activate/sellers.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { checkUpstream } from '../../src/verifications/flows.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { findReport, reportNumber } from '../../src/verifications/reports.ts';
import { REPORTED_NUMBER_ANSWER } from '../../src/verifications/reported-numbers.ts';

/**
 * Reporting a bad number: a waiting one is cancelled and released; a captured one is refunded only
 * when the upstream refunds it, exactly once; the next purchase of that service refuses the number;
 * a daily limit per customer. Exact wallet amounts and the ledger after each.
 */
async function refusedWith(promise: Promise<unknown>, code: string): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DomainError, String(error));
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

const adjustments = async (h: LifecycleHarness, userId: string) =>
  (
    await rows<{ amount_minor: string | number }>(
      h.t.database.db,
      sql`SELECT t.amount_minor FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_account_id WHERE a.user_id = ${userId} AND t.kind = 'adjustment'`,
    )
  ).map((r) => Number(r.amount_minor));

for (const engine of engines) {
  describe(`reporting a bad number, sandbox [${engine}]`, () => {
    let h: LifecycleHarness;
    const faults = new FaultSwitch();
    before(async () => {
      h = await lifecycleHarness(engine, { faults: faults.hook, env: { REPORTS_PER_DAY: '3' } });
    });
    after(async () => h?.dispose());

    test('a waiting number reported is cancelled and released; a repeat answers the first report', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
      const first = await reportNumber(h.deps, { userId: user, verificationId: out.row.id, reason: 'code_not_received' });
      assert.deepEqual([first.created, first.report.upstream, first.report.refund, first.verification.state], [true, 'cancelled', 'none', 'cancelled']);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      const again = await reportNumber(h.deps, { userId: user, verificationId: out.row.id, reason: 'number_rejected' });
      assert.deepEqual([again.created, again.report.id, again.report.reason], [false, first.report.id, 'code_not_received']);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await refusedWith(reportNumber(h.deps, { userId: await h.customer(0), verificationId: out.row.id, reason: 'code_not_received' }), 'not_found');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('a captured number reported is refunded once, when the upstream refunds it', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_success' });
      h.clock.advance(2_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))!.state, 'received');
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);

      const reported = await reportNumber(h.deps, { userId: user, verificationId: out.row.id, reason: 'number_rejected' });
      assert.deepEqual([reported.report.upstream, reported.report.refund], ['reported', 'awaiting_upstream']);
      assert.deepEqual(await h.wallet(user), [950, 0, 950], 'no refund on the customer\'s word alone');

      // The engine asks the upstream (the sandbox refunds reports) and gives the charge back, once.
      await Promise.all([h.runtime.engine.tick(), h.engine('second-worker').tick()]);
      h.clock.advance(600_000);
      await h.runtime.engine.tick();
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.deepEqual(await adjustments(h, user), [50], 'one correction of exactly the charge');
      assert.equal((await findReport(h.t.database.db, out.row.id))!.refund, 'refunded');
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([row.state, row.upstreamStatus, row.upstreamNextAt], ['received', 'reported', null]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('at most REPORTS_PER_DAY in 24 hours: then 429 with Retry-After until the oldest leaves the window', async () => {
      const user = await h.customer(1000);
      const buy = async () => (await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' })).row.id;
      for (let i = 0; i < 3; i++) {
        await reportNumber(h.deps, { userId: user, verificationId: await buy(), reason: 'code_not_received' });
        h.clock.advance(60_000);
      }
      const over = await buy();
      const refused = await refusedWith(reportNumber(h.deps, { userId: user, verificationId: over, reason: 'code_not_received' }), 'rate_limited');
      assert.equal(refused.headers['Retry-After'], String(86_400 - 180));
      assert.equal((await loadVerification(h.t.database.db, over))!.state, 'waiting', 'a refused report changes nothing');
      assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
      h.clock.advance((86_400 - 180) * 1000);
      // Past the first's 24 hours: allowed again (the verification has expired meanwhile; still recorded).
      const later = await reportNumber(h.deps, { userId: user, verificationId: over, reason: 'code_not_received' });
      assert.equal(later.created, true);
      await h.runtime.engine.tick();
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('report racing a late SMS (interleaved after the upstream cancel): the SMS wins, the report is refused, one charge', async () => {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_delayed' });
      h.clock.advance(5_500);
      faults.once('cancel.upstream_done', async () => {
        const row = (await loadVerification(h.t.database.db, out.row.id))!;
        const captured = await checkUpstream(h.deps, row, 'poller');
        assert.equal(captured?.captured, true);
      });
      await refusedWith(reportNumber(h.deps, { userId: user, verificationId: out.row.id, reason: 'code_not_received' }), 'invalid_state');
      assert.equal(await findReport(h.t.database.db, out.row.id), undefined);
      assert.equal((await loadVerification(h.t.database.db, out.row.id))!.state, 'received');
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('report racing the poller with real concurrency: exactly one outcome, money moved once', async () => {
      for (let i = 0; i < 4; i++) {
        const user = await h.customer(1000);
        const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_delayed' });
        h.clock.advance(5_500);
        const [report] = await Promise.allSettled([
          reportNumber(h.deps, { userId: user, verificationId: out.row.id, reason: 'code_not_received' }),
          h.runtime.engine.tick(),
        ]);
        const row = (await loadVerification(h.t.database.db, out.row.id))!;
        if (row.state === 'cancelled') {
          assert.equal(report.status, 'fulfilled');
          assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
        } else {
          assert.equal(row.state, 'received');
          assert.deepEqual(await h.wallet(user), [950, 0, 950]);
        }
      }
      await assertLifecycleConsistent(h.t.database.db);
    });
  });

  describe(`reporting a captured TextVerified number [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeTextVerified;
    const clock = new ManualClock(START);
    before(async () => {
      fake = await startFakeTextVerified({ clock });
      const provider = new TextVerifiedProvider({ baseUrl: fake.url, apiUsername: 'operator@example.com', apiKey: 'tv-test-key', requestsPerSecond: 0, timeoutMs: 2000, clock });
      h = await lifecycleHarness(engine, { provider, clock, env: { BREAKER_FAILURE_THRESHOLD: '100' } });
      await putProviderCatalogue(h.t.database.db, 'textverified');
    });
    after(async () => {
      await h?.dispose();
      await fake?.close();
    });

    async function captured(): Promise<{ user: string; id: string; order: string; paid: number }> {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'whatsapp' });
      fake.controls.deliverSms(out.row.providerOrderId!, { text: 'Your WhatsApp code is 123456' });
      clock.advance(2_000);
      await h.runtime.engine.tick();
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(row.state, 'received');
      return { user, id: row.id, order: row.providerOrderId!, paid: row.priceMinor };
    }

    test('POST /report upstream; refunded only after TextVerified refunds it', async () => {
      const { user, id, order, paid } = await captured();
      const reported = await reportNumber(h.deps, { userId: user, verificationId: id, reason: 'number_rejected' });
      assert.deepEqual([reported.report.upstream, reported.report.refund], ['reported', 'awaiting_upstream']);
      assert.equal(fake.state.requests.filter((r) => r.method === 'POST' && r.path.endsWith(`/verifications/${order}/report`)).length, 1);
      clock.advance(5_000);
      await h.runtime.engine.tick();
      assert.deepEqual(await h.wallet(user), [1000 - paid, 0, 1000 - paid], 'undecided upstream: the charge stands for now');

      fake.controls.settleReport(order, 'refunded');
      clock.advance(300_000);
      await h.runtime.engine.tick();
      clock.advance(300_000);
      await h.runtime.engine.tick();
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      assert.deepEqual(await adjustments(h, user), [paid]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('declined upstream: the charge stands, and the report says so', async () => {
      const { user, id, order, paid } = await captured();
      await reportNumber(h.deps, { userId: user, verificationId: id, reason: 'number_rejected' });
      fake.controls.settleReport(order, 'declined');
      clock.advance(5_000);
      await h.runtime.engine.tick();
      assert.equal((await findReport(h.t.database.db, id))!.refund, 'declined');
      assert.deepEqual(await h.wallet(user), [1000 - paid, 0, 1000 - paid]);
      assert.deepEqual(await adjustments(h, user), []);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });

  describe(`the next purchase avoids a reported number, SMS-Activate [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeSmsActivate;
    const clock = new ManualClock(START);
    before(async () => {
      fake = await startFakeSmsActivate({ clock, balance: 1000, earlyCancelSeconds: 0 });
      const provider = new SmsActivateProvider({ ...SELLER_PROFILES['sms-activate'].options, baseUrl: fake.url, apiKey: 'sa-test-key', clock, requestsPerSecond: 0, timeoutMs: 2000 });
      h = await lifecycleHarness(engine, { provider, clock, env: { BREAKER_FAILURE_THRESHOLD: '100' } });
      await putProviderCatalogue(h.t.database.db, 'sms-activate');
    });
    after(async () => {
      await h?.dispose();
      await fake?.close();
    });

    test('the same number offered again for that service is refused and cancelled upstream, not charged', async () => {
      const user = await h.customer(1000);
      fake.controls.queueNumbers('12025550777', '12025550777', '12025550777');
      const first = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'whatsapp' });
      await reportNumber(h.deps, { userId: user, verificationId: first.row.id, reason: 'number_rejected' });
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);

      const refusal = await refusedWith(purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'whatsapp' }), 'no_numbers');
      assert.equal(refusal.message, REPORTED_NUMBER_ANSWER);
      const failed = (await loadVerification(h.t.database.db, String(refusal.extra.verification_id)))!;
      assert.deepEqual([failed.state, failed.upstreamStatus], ['failed', 'cancelled']);
      assert.equal(fake.state.activations.get(failed.providerOrderId!)?.status, 'cancelled', 'cancelled at the seller');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);

      // Another customer may have that number.
      const other = await h.customer(1000);
      const theirs = await purchaseVerification(h.deps, { userId: other, idempotencyKey: randomUUID(), service: 'whatsapp' });
      assert.equal(theirs.row.state, 'waiting');
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
