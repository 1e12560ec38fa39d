import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { FaultSwitch, lifecycleHarness, SimulatedCrash, START, type LifecycleHarness } from '../support/lifecycle.ts';
import { ManualClock } from '../support/clock.ts';
import { startFakeSmsActivate, type FakeSmsActivate } from '../support/fake-sms-activate.ts';
import { startFakeTextVerified, type FakeTextVerified } from '../support/fake-textverified.ts';
import { DEFAULT_OFFERS, putProviderCatalogue } from '../support/provider-catalogue.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { assertLedgerConsistent } from '../support/ledger-invariants.ts';
import { rows } from '../../src/db/database.ts';
import { DomainError } from '../../src/errors.ts';
import { SmsActivateProvider } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES } from '../../src/providers/sms-activate/sellers.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { requestAnotherCode, unfitNewOrder, type AnotherCodeOutcome } from '../../src/verifications/another-code.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification, recordMessages } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { diagnose } from '../../src/ops/diagnose.ts';

/**
 * Another code on the upstreams that sell it as a new order: TextVerified's reuse (free, inside the
 * upstream's window) and DaisySMS's extra activation (charged: its own hold, captured once, released
 * once), end to end through the lifecycle and the engine against the fakes, with exact wallets
 * ([balance, held, available]) and the ledger checked afterwards. Then the another-code request
 * racing the number's deadline, free and charged.
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

async function consistent(h: LifecycleHarness): Promise<void> {
  await assertLifecycleConsistent(h.t.database.db);
  await assertLedgerConsistent(h.t.database.db);
}

/** The child's hold: how it ended (null while open) and how many transfers it made. */
async function holdOf(h: LifecycleHarness, verificationId: string): Promise<{ outcome: string | null; amount: number; charges: number } | undefined> {
  const [hold] = await rows<{ outcome: string | null; amount_minor: string | number; charges: string | number }>(
    h.t.database.db,
    sql`SELECT o.outcome, o.amount_minor,
               (SELECT count(*) FROM ledger_transfers t WHERE t.hold_id = o.hold_id) AS charges
          FROM ledger_hold_outcomes o WHERE o.verification_id = ${verificationId}`,
  );
  return hold ? { outcome: hold.outcome, amount: Number(hold.amount_minor), charges: Number(hold.charges) } : undefined;
}

const childrenOf = (h: LifecycleHarness, id: string) =>
  rows<{ id: string; state: string; price_minor: string | number; hold_id: string | null }>(
    h.t.database.db,
    sql`SELECT id, state, price_minor, hold_id FROM verifications WHERE parent_id = ${id} ORDER BY created_at`,
  );

test('a new order is fit only on the parent\'s number and within its cap (pure)', () => {
  const root = { phoneNumber: '12025550100', maxCostMinor: 60 };
  const order = { providerOrderId: 'x', phoneNumber: '12025550100', endsAt: null, costMinor: 60 };
  assert.equal(unfitNewOrder(root, order), null);
  assert.equal(unfitNewOrder(root, { ...order, costMinor: null }), null, 'a seller that states no cost');
  assert.match(unfitNewOrder(root, { ...order, costMinor: 61 })!, /above the cap/);
  assert.match(unfitNewOrder(root, { ...order, phoneNumber: '12025550199' })!, /another number/);
});

for (const engine of engines) {
  describe(`another code on TextVerified: reuse, free, a new verification [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeTextVerified;
    const clock = new ManualClock(START);
    const PRICE = DEFAULT_OFFERS.textverified[0]!.priceMinor; // whatsapp

    before(async () => {
      fake = await startFakeTextVerified({ clock, reuseWindowSeconds: 30, balance: 1000 });
      const provider = new TextVerifiedProvider({ baseUrl: fake.url, apiUsername: 'operator@example.com', apiKey: 'tv-test-key', requestsPerSecond: 0, timeoutMs: 2000, clock });
      h = await lifecycleHarness(engine, { provider, clock, env: { BREAKER_FAILURE_THRESHOLD: '100' } });
      await putProviderCatalogue(h.t.database.db, 'textverified');
    });
    after(async () => {
      await h?.dispose();
      await fake?.close();
    });

    const posts = (suffix: string, id: string) => fake.state.requests.filter((r) => r.method === 'POST' && r.path.endsWith(`/verifications/${id}${suffix}`)).length;

    async function delivered(): Promise<{ user: string; id: string; order: string; phone: string }> {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'whatsapp' });
      assert.equal(out.row.state, 'waiting');
      fake.controls.deliverSms(out.row.providerOrderId!, { text: 'Your code is 111111' });
      clock.advance(2_000);
      await h.runtime.engine.tick();
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([row.state, row.code], ['received', '111111']);
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE]);
      return { user, id: row.id, order: row.providerOrderId!, phone: row.phoneNumber! };
    }

    test('purchase → code → another code (reuse: a new verification, same number) → its own code captured; nothing more charged', async () => {
      const { user, id, order, phone } = await delivered();
      const reusesBefore = fake.state.reuses;
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      assert.equal(out.row.state, 'waiting');
      assert.equal(posts('/reuse', order), 1);
      assert.equal(fake.state.reuses, reusesBefore + 1);
      assert.notEqual(out.row.providerOrderId, order, 'the child owns the verification the reuse created');
      assert.deepEqual([out.row.parentId, out.row.phoneNumber, out.row.priceMinor, out.row.holdId, out.row.ownOrder, out.row.upstreamStatus], [id, phone, 0, null, true, 'open']);
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE], 'nothing held for a free reuse');

      // The first code is the parent's only: the child waits for its own.
      clock.advance(2_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))!.state, 'waiting');
      fake.controls.deliverSms(out.row.providerOrderId!, { text: 'Your code is 222222' });
      clock.advance(2_000);
      await h.runtime.engine.tick();
      const child = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([child.state, child.code, child.upstreamStatus], ['received', '222222', 'completed']);
      assert.equal(fake.state.verifications.get(child.providerOrderId!)!.state, 'verificationReused');
      assert.equal((await loadVerification(h.t.database.db, id))!.code, '111111', 'the parent keeps its code');
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE], 'one charge: the purchase');
      await consistent(h);
    });

    test('no SMS on the reused verification: the child expires at its deadline, free; its own order is cancelled upstream', async () => {
      const { user, id } = await delivered();
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      clock.set(new Date(out.row.expiresAt.getTime() + 1));
      await h.runtime.engine.tick();
      await h.runtime.engine.tick();
      const child = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(child.state, 'expired');
      assert.equal(posts('/cancel', child.providerOrderId!), 1, 'the reused verification is cancelled');
      assert.equal(posts('/cancel', child.parentId!), 0, 'never the parent\'s');
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE]);
      const notices = await rows<{ kind: string }>(h.t.database.db, sql`SELECT kind FROM notifications WHERE verification_id = ${child.id}`);
      assert.deepEqual(notices, [], 'nothing was held, so no refund notice');
      await consistent(h);
    });

    test('the customer cancels the child: its own verification is cancelled upstream, the parent untouched, free', async () => {
      const { user, id, order } = await delivered();
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      const cancelled = await cancelVerification(h.deps, out.row, 'customer');
      assert.equal(cancelled.kind, 'cancelled');
      assert.equal(posts('/cancel', out.row.providerOrderId!), 1);
      assert.equal(fake.state.verifications.get(out.row.providerOrderId!)!.state, 'verificationCanceled');
      assert.equal(posts('/cancel', order), 0);
      assert.equal((await loadVerification(h.t.database.db, id))!.state, 'received');
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE]);
      await consistent(h);
    });

    test('the reuse window is the upstream\'s: 30 s after the code it is closed, 409, no reuse call, nothing charged', async () => {
      const { user, id, order } = await delivered();
      clock.advance(30_000);
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'invalid_state');
      assert.equal(posts('/reuse', order), 0);
      const [child] = await childrenOf(h, id);
      assert.deepEqual([child?.state, child?.hold_id], ['failed', null]);
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE]);
      await consistent(h);
    });

    test('a lost answer to the reuse: the child fails (503, not charged) rather than wait on a verification it cannot name; recorded for the operator', async () => {
      const { user, id } = await delivered();
      fake.controls.failNext('reuse', { type: 'dropAfterEffect' });
      const key = randomUUID();
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: key }), 'provider_unavailable');
      const [child] = await childrenOf(h, id);
      assert.equal(child?.state, 'failed');
      const audit = await rows<{ action: string }>(h.t.database.db, sql`SELECT action FROM audit_log WHERE subject_id = ${child!.id}`);
      assert.deepEqual(audit.map((a) => a.action), ['upstream.another_code_uncertain']);
      // The same key answers the same outcome.
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: key }), 'provider_unavailable');
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE]);
      await consistent(h);
    });
  });

  describe(`another code on DaisySMS: extra activation, charged, its own hold [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeSmsActivate;
    const clock = new ManualClock(START);
    const PRICE = DEFAULT_OFFERS['sms-activate'][0]!.priceMinor; // whatsapp
    // The seller's price list, changed by a test (surge pricing).
    const prices = { '187': { wa: { cost: 0.5, count: 500, ttl: 600 } } };

    before(async () => {
      fake = await startFakeSmsActivate({ clock, dialect: 'daisy', balance: 1000, earlyCancelSeconds: 0, prices });
      const provider = new SmsActivateProvider({
        ...SELLER_PROFILES.daisysms.options,
        name: 'daisysms',
        baseUrl: fake.url,
        apiKey: 'sa-test-key',
        clock,
        requestsPerSecond: 0,
        timeoutMs: 2000,
      });
      h = await lifecycleHarness(engine, { provider, clock, env: { BREAKER_FAILURE_THRESHOLD: '100', ANOTHER_CODE_WINDOW_SECONDS: '300' } });
      await putProviderCatalogue(h.t.database.db, 'daisysms', DEFAULT_OFFERS['sms-activate']);
    });
    after(async () => {
      await h?.dispose();
      await fake?.close();
    });

    const setStatus = (id: string, status: string) =>
      fake.state.requests.filter((r) => r.query.get('action') === 'setStatus' && r.query.get('status') === status && r.query.get('id') === id).length;

    async function delivered(funds = 1000): Promise<{ user: string; id: string; order: string; phone: string; left: number }> {
      const user = await h.customer(funds);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'whatsapp' });
      fake.controls.deliverSms(out.row.providerOrderId!, { code: '111111' });
      clock.advance(2_000);
      await h.runtime.engine.tick();
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([row.state, row.upstreamStatus, row.priceMinor], ['received', 'finish_owed', PRICE]);
      const left = funds - PRICE;
      assert.deepEqual(await h.wallet(user), [left, 0, left]);
      return { user, id: row.id, order: row.providerOrderId!, phone: row.phoneNumber!, left };
    }

    test('extra code delivered: held in the request, charged once on its SMS; the new activation finished on its own', async () => {
      const { user, id, order, phone, left } = await delivered();
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      assert.equal(fake.state.requests.filter((r) => r.query.get('action') === 'getExtraActivation' && r.query.get('activationId') === order).length, 1);
      assert.notEqual(out.row.providerOrderId, order);
      assert.deepEqual([out.row.state, out.row.phoneNumber, out.row.priceMinor, out.row.ownOrder, out.row.upstreamStatus], ['waiting', phone, PRICE, true, 'open']);
      assert.ok(out.row.holdId);
      assert.deepEqual(await h.wallet(user), [left, PRICE, left - PRICE], 'the extra activation is held like a purchase');

      fake.controls.deliverSms(out.row.providerOrderId!, { code: '222222' });
      clock.advance(2_000);
      await h.runtime.engine.tick();
      const child = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([child.state, child.code], ['received', '222222']);
      assert.deepEqual(await h.wallet(user), [left - PRICE, 0, left - PRICE], 'charged once for the second code');
      assert.deepEqual(await holdOf(h, child.id), { outcome: 'posted', amount: PRICE, charges: 1 });
      // More ticks change nothing; the child's own activation is finished (setStatus 6), once.
      clock.advance(2_000);
      await h.runtime.engine.tick();
      await h.runtime.engine.tick();
      assert.equal(setStatus(child.providerOrderId!, '6'), 1);
      assert.equal(setStatus(child.providerOrderId!, '8'), 0);
      assert.deepEqual(await h.wallet(user), [left - PRICE, 0, left - PRICE]);
      assert.deepEqual(await holdOf(h, child.id), { outcome: 'posted', amount: PRICE, charges: 1 });
      await consistent(h);
    });

    test('extra code timed out: the hold released at the deadline, once; the extra activation cancelled upstream', async () => {
      const { user, id, left } = await delivered();
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      assert.deepEqual(await h.wallet(user), [left, PRICE, left - PRICE]);
      clock.set(new Date(out.row.expiresAt.getTime() + 1));
      await h.runtime.engine.tick();
      await h.runtime.engine.tick();
      const child = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(child.state, 'expired');
      assert.deepEqual(await h.wallet(user), [left, 0, left], 'released');
      assert.deepEqual(await holdOf(h, child.id), { outcome: 'expired', amount: PRICE, charges: 0 });
      assert.equal(setStatus(child.providerOrderId!, '8'), 1, 'its own activation cancelled');
      const notices = await rows<{ kind: string }>(h.t.database.db, sql`SELECT kind FROM notifications WHERE verification_id = ${child.id}`);
      assert.deepEqual(notices.map((n) => n.kind), ['refund_issued']);
      await consistent(h);
    });

    test('cancel: the extra activation cancelled upstream, the hold voided; a repeated cancel moves nothing', async () => {
      const { user, id, order, left } = await delivered();
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      const [first, second] = await Promise.all([cancelVerification(h.deps, out.row, 'customer'), cancelVerification(h.deps, out.row, 'customer')]);
      assert.deepEqual([first.kind, second.kind], ['cancelled', 'cancelled']);
      assert.equal(fake.state.activations.get(out.row.providerOrderId!)!.status, 'cancelled');
      assert.equal(setStatus(order, '8'), 0, 'never the parent\'s activation');
      assert.deepEqual(await h.wallet(user), [left, 0, left]);
      assert.deepEqual(await holdOf(h, out.row.id), { outcome: 'voided', amount: PRICE, charges: 0 });
      assert.equal((await loadVerification(h.t.database.db, id))!.state, 'received');
      await consistent(h);
    });

    test('ASLEEP: refused (409 with the wait), nothing held or charged; the sleeping activation cancelled upstream', async () => {
      const { user, id, order, left } = await delivered();
      // The seller names a unix time (whole seconds): the wait is rounded up from now.
      const until = new Date(Math.ceil(clock.now().getTime() / 1000) * 1000 + 120_000);
      fake.controls.setAsleepUntil(until);
      try {
        const error = await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'invalid_state');
        assert.equal(error.headers?.['Retry-After'], String(Math.ceil((until.getTime() - clock.now().getTime()) / 1000)));
        assert.equal(error.extra.retry_after_seconds, Math.ceil((until.getTime() - clock.now().getTime()) / 1000));
      } finally {
        fake.controls.setAsleepUntil(null);
      }
      const [child] = await childrenOf(h, id);
      assert.equal(child?.state, 'failed');
      assert.deepEqual(await holdOf(h, child!.id), { outcome: 'voided', amount: PRICE, charges: 0 });
      const extra = [...fake.state.activations.values()].find((a) => a.extraOf === order)!;
      assert.equal(extra.status, 'cancelled');
      assert.deepEqual(await h.wallet(user), [left, 0, left]);
      await consistent(h);
    });

    test('a lost answer to the charged call: failed at once, the hold released, 503; never left waiting on a guess', async () => {
      const { user, id, left } = await delivered();
      const extrasBefore = fake.state.extras;
      fake.controls.failNext('getExtraActivation', { type: 'dropAfterEffect' });
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'provider_unavailable');
      assert.equal(fake.state.extras, extrasBefore + 1, 'the seller did sell one: an orphan the operator is told of');
      const [child] = await childrenOf(h, id);
      assert.equal(child?.state, 'failed');
      assert.deepEqual(await holdOf(h, child!.id), { outcome: 'voided', amount: PRICE, charges: 0 });
      assert.deepEqual(await h.wallet(user), [left, 0, left]);
      const audit = await rows<{ action: string }>(h.t.database.db, sql`SELECT action FROM audit_log WHERE subject_id = ${child!.id}`);
      assert.deepEqual(audit.map((a) => a.action), ['upstream.another_code_uncertain']);
      // Later ticks touch nothing more.
      clock.advance(700_000);
      await h.runtime.engine.tick();
      assert.deepEqual(await h.wallet(user), [left, 0, left]);
      await consistent(h);
    });

    test('the extra activation costs more than the cap (surge): not sold, the hold released, the activation cancelled upstream', async () => {
      const { user, id, left } = await delivered();
      prices['187'].wa.cost = 0.75; // 75 > the cap of 60 this offer sends with a purchase
      try {
        await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'invalid_state');
      } finally {
        prices['187'].wa.cost = 0.5;
      }
      const [child] = await childrenOf(h, id);
      assert.equal(child?.state, 'failed');
      assert.deepEqual(await holdOf(h, child!.id), { outcome: 'voided', amount: PRICE, charges: 0 });
      assert.deepEqual(await h.wallet(user), [left, 0, left]);
      const failed = (await loadVerification(h.t.database.db, child!.id))!;
      assert.equal(failed.upstreamStatus, 'cancel_owed');
      await h.runtime.engine.tick();
      assert.equal(fake.state.activations.get(failed.providerOrderId!)!.status, 'cancelled', 'settlement cancelled it');
      assert.equal((await loadVerification(h.t.database.db, child!.id))!.upstreamStatus, 'cancelled');
      await consistent(h);
    });

    async function diagnoseOk(): Promise<void> {
      const report = await diagnose({ database: h.t.database, clock: h.clock, config: h.config });
      assert.deepEqual(report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`), []);
    }

    test('a balance short of the price: 402, nothing stored, nothing asked upstream', async () => {
      const { user, id } = await delivered(PRICE + 10);
      const extrasBefore = fake.state.requests.filter((r) => r.query.get('action') === 'getExtraActivation').length;
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'insufficient_funds');
      assert.deepEqual(await childrenOf(h, id), []);
      assert.equal(fake.state.requests.filter((r) => r.query.get('action') === 'getExtraActivation').length, extrasBefore);
      assert.deepEqual(await h.wallet(user), [10, 0, 10]);
      await consistent(h);
    });

    test('after all of the above, with the owed finishes and cancels settled: diagnose finds nothing wrong', async () => {
      clock.advance(1_200_000);
      await h.runtime.engine.tick();
      await h.runtime.engine.tick();
      await consistent(h);
      await diagnoseOk();
    });
  });

  describe(`another-code request racing the number's deadline [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeSmsActivate;
    const faults = new FaultSwitch();
    const clock = new ManualClock(START);
    const PRICE = DEFAULT_OFFERS['sms-activate'][0]!.priceMinor;

    before(async () => {
      fake = await startFakeSmsActivate({ clock, dialect: 'daisy', balance: 1000, earlyCancelSeconds: 0 });
      const provider = new SmsActivateProvider({ ...SELLER_PROFILES.daisysms.options, name: 'daisysms', baseUrl: fake.url, apiKey: 'sa-test-key', clock, requestsPerSecond: 0, timeoutMs: 2000 });
      h = await lifecycleHarness(engine, { provider, clock, faults: faults.hook, env: { BREAKER_FAILURE_THRESHOLD: '100', ANOTHER_CODE_WINDOW_SECONDS: '60' } });
      await putProviderCatalogue(h.t.database.db, 'daisysms', DEFAULT_OFFERS['sms-activate']);
    });
    after(async () => {
      await h?.dispose();
      await fake?.close();
    });

    async function delivered(): Promise<{ user: string; id: string; windowEnd: Date; left: number }> {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'whatsapp' });
      fake.controls.deliverSms(out.row.providerOrderId!, { code: '111111' });
      clock.advance(2_000);
      await h.runtime.engine.tick();
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(row.state, 'received');
      const windowEnd = row.upstreamNextAt! < row.expiresAt ? row.upstreamNextAt! : row.expiresAt;
      return { user, id: row.id, windowEnd, left: 1000 - PRICE };
    }

    /** Everything settled: the family's money is the purchase's, or the purchase's and one more code's. */
    async function settle(user: string, id: string, left: number): Promise<void> {
      const [child] = await childrenOf(h, id);
      if (child && (child.state === 'waiting' || child.state === 'pending')) {
        clock.advance(700_000);
        await h.runtime.engine.tick();
        await h.runtime.engine.tick();
      }
      const children = await childrenOf(h, id);
      assert.ok(children.length <= 1);
      const last = children[0];
      if (last) {
        assert.ok(['expired', 'failed'].includes(last.state), last.state);
        const hold = await holdOf(h, last.id);
        // Released exactly once: one resolution, no transfer.
        assert.deepEqual(hold, { outcome: last.state === 'expired' ? 'expired' : 'voided', amount: PRICE, charges: 0 });
      }
      assert.deepEqual(await h.wallet(user), [left, 0, left], 'whoever won, the customer paid for the first code only');
      await consistent(h);
    }

    test('injected: the request passes its check just before the window closes, the engine runs past the window during the upstream call', async () => {
      const { user, id, windowEnd, left } = await delivered();
      clock.set(new Date(windowEnd.getTime() - 1));
      faults.once('another_code.requested', async () => {
        clock.set(new Date(windowEnd.getTime() + 1));
        await Promise.all([h.runtime.engine.tick(), h.engine('racer').tick()]);
      });
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      // The request held first and postponed the parent's finish: the engine did not close the order under it.
      assert.equal(out.row.state, 'waiting');
      const parent = (await loadVerification(h.t.database.db, id))!;
      assert.equal(parent.upstreamStatus, 'finish_owed');
      assert.deepEqual(await h.wallet(user), [left, PRICE, left - PRICE]);
      await settle(user, id, left);
    });

    test('a crash between the hold and the upstream call: recovery ends the charged child, its hold released once; nothing asked upstream', async () => {
      const { user, id, left } = await delivered();
      const asked = fake.state.requests.filter((r) => r.query.get('action') === 'getExtraActivation').length;
      faults.crashOnce('another_code.requested');
      await assert.rejects(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), SimulatedCrash);
      assert.deepEqual(await h.wallet(user), [left, PRICE, left - PRICE], 'held until recovery');
      clock.advance((h.config.PURCHASE_TIMEOUT_SECONDS + 1) * 1000);
      await Promise.all([h.runtime.engine.tick(), h.engine('recovery-racer').tick()]);
      const [child] = await childrenOf(h, id);
      assert.equal(child?.state, 'failed');
      assert.deepEqual(await holdOf(h, child!.id), { outcome: 'voided', amount: PRICE, charges: 0 });
      assert.equal(fake.state.requests.filter((r) => r.query.get('action') === 'getExtraActivation').length, asked);
      assert.deepEqual(await h.wallet(user), [left, 0, left]);
      await consistent(h);
    });

    test('injected: the engine finishes the number first; the request then finds the window closed, nothing held', async () => {
      const { user, id, windowEnd, left } = await delivered();
      clock.set(windowEnd);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, id))!.upstreamStatus, 'completed');
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'invalid_state');
      assert.deepEqual(await childrenOf(h, id), []);
      await settle(user, id, left);
    });

    test('real concurrency: requests and engine ticks around the deadline, the clock moving past it meanwhile; a charged child released exactly once when it loses', async () => {
      for (let i = 0; i < 6; i++) {
        const { user, id, windowEnd, left } = await delivered();
        clock.set(new Date(windowEnd.getTime() - 1));
        const requests = Array.from({ length: 3 }, () =>
          requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }).then(
            (r: AnotherCodeOutcome) => r.row.state,
            (e: unknown) => (e instanceof DomainError ? e.code : String(e)),
          ),
        );
        // The window closes while they run: after 0, 1, 2… real milliseconds.
        await new Promise((resolve) => setTimeout(resolve, i % 3));
        clock.set(new Date(windowEnd.getTime() + 1));
        const outcomes = await Promise.all([...requests, h.runtime.engine.tick().then(() => 'tick'), h.engine(`racer-${i}`).tick().then(() => 'tick')]);
        for (const outcome of outcomes) assert.ok(['waiting', 'invalid_state', 'tick'].includes(outcome), outcome);
        assert.ok(outcomes.filter((o) => o === 'waiting').length <= 1, 'one additional code at a time');
        await settle(user, id, left);
      }
      clock.advance(1_200_000);
      await h.runtime.engine.tick();
      const report = await diagnose({ database: h.t.database, clock: h.clock, config: h.config });
      assert.deepEqual(report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`), []);
    });
  });

  describe(`another-code request racing the number's deadline, free on the same order (sandbox) [${engine}]`, () => {
    let h: LifecycleHarness;
    const faults = new FaultSwitch();

    before(async () => {
      h = await lifecycleHarness(engine, { faults: faults.hook });
    });
    after(async () => h?.dispose());

    test('injected: the number\'s deadline passes during the upstream call; the child ends at the number\'s deadline, free', async () => {
      const user = await h.customer(1000);
      const bought = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      // A code on a number that would otherwise time out: delivered by hand, then the request just before the deadline.
      await recordMessages(
        h.deps,
        bought.row.id,
        [{ providerMessageId: `m-${randomUUID()}`, text: 'Your code is 424242', code: '424242', receivedAt: h.clock.now() }],
        'webhook',
      );
      const parent = (await loadVerification(h.t.database.db, bought.row.id))!;
      assert.equal(parent.state, 'received');
      h.clock.set(new Date(parent.expiresAt.getTime() - 1));
      faults.once('another_code.requested', async () => {
        h.clock.set(new Date(parent.expiresAt.getTime() + 1));
        await h.runtime.engine.tick();
      });
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: parent.id, idempotencyKey: randomUUID() });
      assert.ok(out.row.expiresAt.getTime() <= parent.expiresAt.getTime(), 'never past the number\'s deadline');
      h.clock.advance(2_000);
      await h.runtime.engine.tick();
      await h.runtime.engine.tick();
      const child = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(child.state, 'expired');
      const [balance] = await h.wallet(user);
      assert.deepEqual(await h.wallet(user), [balance!, 0, balance!]);
      assert.equal(balance, 1000 - parent.priceMinor, 'the first code only');
      await consistent(h);
    });

    test('real concurrency: requests and engine ticks at the number\'s deadline, the clock passing it meanwhile; free whoever wins', async () => {
      for (let i = 0; i < 6; i++) {
        const user = await h.customer(1000);
        const bought = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_success' });
        h.clock.advance(2_000);
        await h.runtime.engine.tick();
        const parent = (await loadVerification(h.t.database.db, bought.row.id))!;
        assert.equal(parent.state, 'received');
        h.clock.set(new Date(parent.expiresAt.getTime() - 1));
        const requests = Array.from({ length: 3 }, () =>
          requestAnotherCode(h.deps, { userId: user, verificationId: parent.id, idempotencyKey: randomUUID() }).then(
            (r: AnotherCodeOutcome) => r.row.state,
            (e: unknown) => (e instanceof DomainError ? e.code : String(e)),
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, i % 3));
        h.clock.set(new Date(parent.expiresAt.getTime() + 1));
        const outcomes = await Promise.all([...requests, h.runtime.engine.tick().then(() => 'tick'), h.engine(`racer-${i}`).tick().then(() => 'tick')]);
        for (const outcome of outcomes) assert.ok(['waiting', 'invalid_state', 'tick'].includes(outcome), outcome);
        assert.ok(outcomes.filter((o) => o === 'waiting').length <= 1);
        h.clock.advance(2_000);
        await h.runtime.engine.tick();
        for (const child of await childrenOf(h, parent.id)) {
          assert.ok(['expired', 'failed', 'received'].includes(child.state), child.state);
          assert.equal(child.hold_id, null);
        }
        assert.deepEqual(await h.wallet(user), [1000 - parent.priceMinor, 0, 1000 - parent.priceMinor]);
      }
      await consistent(h);
    });
  });
}
