import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { FaultSwitch, lifecycleHarness, SimulatedCrash, START, type LifecycleHarness } from '../support/lifecycle.ts';
import { ManualClock } from '../support/clock.ts';
import { startFakeSmsActivate, type FakeSmsActivate } from '../support/fake-sms-activate.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { rows } from '../../src/db/database.ts';
import { DomainError } from '../../src/errors.ts';
import { SmsActivateProvider } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES } from '../../src/providers/sms-activate/sellers.ts';
import { requestAnotherCode } from '../../src/verifications/another-code.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification, recordMessages } from '../../src/verifications/lifecycle.ts';
import { diagnose } from '../../src/ops/diagnose.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';

/**
 * Another code on the same number: a child verification of the one that bought the number, free
 * where the upstream is free (no hold, the wallet never moves), its own deadline and cancel, and
 * never the previous code again.
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

const messagesOf = async (h: LifecycleHarness, id: string) =>
  (await rows<{ code: string | null; late: boolean }>(h.t.database.db, sql`SELECT code, late FROM verification_messages WHERE verification_id = ${id} ORDER BY received_at`)).map(
    (m) => `${m.code}${m.late ? ' (late)' : ''}`,
  );

for (const engine of engines) {
  describe(`another code on the same number, sandbox [${engine}]`, () => {
    let h: LifecycleHarness;
    const faults = new FaultSwitch();
    before(async () => {
      h = await lifecycleHarness(engine, { faults: faults.hook });
    });
    after(async () => h?.dispose());

    async function received(service = 'test_success'): Promise<{ user: string; id: string }> {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service });
      assert.equal(out.row.state, 'waiting');
      h.clock.advance(2_000);
      await h.runtime.engine.tick();
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(row.state, 'received');
      return { user, id: row.id };
    }

    test('a child waits on the same number, captures its own new code, and the wallet never moves', async () => {
      const { user, id } = await received();
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
      const parent = (await loadVerification(h.t.database.db, id))!;

      const key = randomUUID();
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: key });
      assert.equal(out.row.state, 'waiting');
      assert.deepEqual([out.row.parentId, out.row.phoneNumber, out.row.providerOrderId, out.row.priceMinor, out.row.holdId], [id, parent.phoneNumber, parent.providerOrderId, 0, null]);
      assert.deepEqual(await h.wallet(user), [950, 0, 950], 'nothing held for a free code');

      h.clock.advance(2_000);
      await h.runtime.engine.tick();
      const child = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(child.state, 'received');
      assert.notEqual(child.code, parent.code, 'a new code, not the first one again');
      assert.deepEqual(await messagesOf(h, out.row.id), [child.code]);
      assert.deepEqual(await messagesOf(h, id), [parent.code], 'the parent keeps its own message');
      assert.deepEqual(await h.wallet(user), [950, 0, 950], 'the second code is free');

      // The same key again answers the same child; the key with another request is 422.
      const again = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: key });
      assert.deepEqual([again.row.id, again.replayed], [out.row.id, true]);
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: randomUUID(), idempotencyKey: key }), 'idempotency_key_reused');

      // Pointing at the child asks on the same number again: a third code, still the parent's child.
      const third = await requestAnotherCode(h.deps, { userId: user, verificationId: out.row.id, idempotencyKey: randomUUID() });
      assert.equal(third.row.parentId, id);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('refused, changing nothing: before a code, another customer\'s, one already waiting, the window closed', async () => {
      const user = await h.customer(1000);
      const waiting = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: waiting.row.id, idempotencyKey: randomUUID() }), 'invalid_state');

      const { user: owner, id } = await received();
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'not_found');
      await requestAnotherCode(h.deps, { userId: owner, verificationId: id, idempotencyKey: randomUUID() });
      await refusedWith(requestAnotherCode(h.deps, { userId: owner, verificationId: id, idempotencyKey: randomUUID() }), 'invalid_state');

      // Past the number's deadline the window is closed.
      const late = await received();
      h.clock.advance(700_000);
      await refusedWith(requestAnotherCode(h.deps, { userId: late.user, verificationId: late.id, idempotencyKey: randomUUID() }), 'invalid_state');
      assert.deepEqual(await h.wallet(late.user), [950, 0, 950]);
      assert.deepEqual(await h.wallet(owner), [950, 0, 950]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('concurrent requests on one number: exactly one child; a cancel of it moves no money', async () => {
      const { user, id } = await received();
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, () => requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() })),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1, 'one child per number at a time');
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as DomainError).code, 'invalid_state');
      const child = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof requestAnotherCode>>>).value.row;
      const cancelled = await cancelVerification(h.deps, child, 'customer');
      assert.equal(cancelled.kind, 'cancelled');
      assert.equal((await loadVerification(h.t.database.db, id))!.state, 'received', 'the parent is untouched');
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
      const notices = await rows<{ kind: string }>(h.t.database.db, sql`SELECT kind FROM notifications WHERE verification_id = ${child.id}`);
      assert.deepEqual(notices, [], 'no refund notice for a code that cost nothing');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('another-code request racing the deadline: an SMS and the sweeper at the child\'s deadline, real concurrency; diagnose stays ok', async () => {
      for (let i = 0; i < 4; i++) {
        const { user, id } = await received();
        const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
        // Exactly at the deadline: a message (dated in time) and the sweeper race.
        h.clock.set(out.row.expiresAt);
        const sms = { providerMessageId: `manual-${randomUUID()}`, text: 'Your code is 515151', code: '515151', receivedAt: h.clock.now() };
        await Promise.all([recordMessages(h.deps, out.row.id, [sms], 'webhook'), h.runtime.engine.tick(), h.engine(`racer-${i}`).tick()]);
        const child = (await loadVerification(h.t.database.db, out.row.id))!;
        assert.ok(['received', 'expired'].includes(child.state), child.state);
        assert.deepEqual(await h.wallet(user), [950, 0, 950], 'whoever won, the wallet never moved');
        h.clock.advance(1_000);
      }
      await assertLifecycleConsistent(h.t.database.db);
      const report = await diagnose({ database: h.t.database, clock: h.clock, config: h.config });
      assert.deepEqual(report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`), []);
    });

    test('a crash between the request and the upstream call: recovery ends the child, free; the customer may ask again', async () => {
      const { user, id } = await received();
      faults.crashOnce('another_code.requested');
      await assert.rejects(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), SimulatedCrash);
      h.clock.advance((h.config.PURCHASE_TIMEOUT_SECONDS + 1) * 1000);
      await h.runtime.engine.tick();
      const [child] = await rows<{ id: string; state: string }>(h.t.database.db, sql`SELECT id, state FROM verifications WHERE parent_id = ${id}`);
      assert.equal(child?.state, 'failed');
      const again = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      assert.equal(again.row.state, 'waiting');
      assert.deepEqual(await h.wallet(user), [950, 0, 950]);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });

  describe(`another code on the same number, SMS-Activate setStatus 3 [${engine}]`, () => {
    let h: LifecycleHarness;
    let fake: FakeSmsActivate;
    const clock = new ManualClock(START);

    before(async () => {
      fake = await startFakeSmsActivate({ clock, balance: 1000, earlyCancelSeconds: 0 });
      const provider = new SmsActivateProvider({ ...SELLER_PROFILES['sms-activate'].options, baseUrl: fake.url, apiKey: 'sa-test-key', clock, requestsPerSecond: 0, timeoutMs: 2000 });
      h = await lifecycleHarness(engine, { provider, clock, env: { BREAKER_FAILURE_THRESHOLD: '100', ANOTHER_CODE_WINDOW_SECONDS: '300' } });
      await putProviderCatalogue(h.t.database.db, 'sms-activate');
    });
    after(async () => {
      await h?.dispose();
      await fake?.close();
    });

    const calls = (id: string, status: string) =>
      fake.state.requests.filter((r) => r.query.get('action') === 'setStatus' && r.query.get('status') === status && r.query.get('id') === id).length;

    async function delivered(): Promise<{ user: string; id: string; order: string; paid: number }> {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'whatsapp' });
      fake.controls.deliverSms(out.row.providerOrderId!, { code: '111111' });
      clock.advance(2_000);
      await h.runtime.engine.tick();
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([row.state, row.upstreamStatus], ['received', 'finish_owed'], 'the finish waits for the window');
      assert.equal(calls(row.providerOrderId!, '6'), 0);
      return { user, id: row.id, order: row.providerOrderId!, paid: row.priceMinor };
    }

    test('setStatus 3 on the same activation; the previous code reported again is never the child\'s', async () => {
      const { user, id, order, paid } = await delivered();
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      assert.equal(calls(order, '3'), 1);
      assert.equal(out.row.providerOrderId, order);

      // STATUS_WAIT_RETRY:111111 — the old code, dated now by the adapter: not captured.
      clock.advance(2_000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, out.row.id))!.state, 'waiting');
      assert.deepEqual(await messagesOf(h, out.row.id), []);

      fake.controls.deliverSms(order, { code: '222222' });
      clock.advance(2_000);
      await h.runtime.engine.tick();
      const child = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([child.state, child.code], ['received', '222222']);
      assert.deepEqual(await h.wallet(user), [1000 - paid, 0, 1000 - paid], 'one charge: the first code');

      // The finish is told once the window (stretched to cover the child) is over, once.
      clock.advance(1_200_000);
      await h.runtime.engine.tick();
      await h.runtime.engine.tick();
      assert.equal(calls(order, '6'), 1);
      assert.equal(calls(order, '8'), 0, 'nothing was ever cancelled upstream');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('a child whose SMS never comes ends at its deadline, free; the window closed refuses more', async () => {
      const { user, id, paid } = await delivered();
      const out = await requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() });
      clock.advance(700_000);
      await h.runtime.engine.tick();
      const child = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.equal(child.state, 'expired');
      assert.deepEqual(await h.wallet(user), [1000 - paid, 0, 1000 - paid]);
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'invalid_state');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('an upstream refusal (activation already finished) fails the child, nothing charged', async () => {
      const { user, id, order, paid } = await delivered();
      fake.state.activations.get(order)!.status = 'finished';
      await refusedWith(requestAnotherCode(h.deps, { userId: user, verificationId: id, idempotencyKey: randomUUID() }), 'invalid_state');
      assert.deepEqual(await h.wallet(user), [1000 - paid, 0, 1000 - paid]);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
