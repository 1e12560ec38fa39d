import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider, deferred } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent, storedFor, verificationMoney } from '../support/lifecycle-invariants.ts';
import { purchaseVerification, type PurchaseOutcome, type PurchaseRequest } from '../../src/verifications/purchase.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { creditWallet } from '../../src/ledger/ledger.ts';
import { DomainError, isDomainError } from '../../src/errors.ts';
import { ProviderError, type PurchaseRequest as UpstreamPurchase } from '../../src/providers/provider.ts';

/** What a customer's script sees of one answer, comparable across requests. */
type Answer = { status: number; id: string; replayed?: boolean } | { status: number; code: string; id?: unknown; retryAfter?: string; replayedHeader?: string };

async function answer(request: Promise<PurchaseOutcome>): Promise<Answer> {
  try {
    const out = await request;
    return { status: out.status, id: out.row.id, replayed: out.replayed };
  } catch (error) {
    if (!isDomainError(error)) throw error;
    return {
      status: error.status,
      code: error.code,
      id: error.extra.verification_id,
      retryAfter: error.headers['Retry-After'],
      replayedHeader: error.headers['Idempotent-Replayed'],
    };
  }
}

function rejectsWith(code: string, status: number, check?: (e: DomainError) => void) {
  return (error: unknown) => {
    assert.ok(isDomainError(error), `expected a DomainError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.status, status);
    check?.(error);
    return true;
  };
}

for (const engine of engines) {
  describe(`idempotent purchase [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    /** Holds every upstream purchase until released (the concurrent tests use it). */
    let buyGate: Promise<void> | undefined;

    const defaultBuy = async (request: UpstreamPurchase) => {
      if (buyGate) await buyGate;
      if (request.service === 'test_no_numbers') throw new ProviderError('definite', 'no_numbers', 'no numbers');
      if (request.service === 'test_ambiguous') {
        provider.createOrder(request.clientRef);
        throw new ProviderError('ambiguous', 'connection_lost', 'answer lost');
      }
      return provider.createOrder(request.clientRef);
    };

    before(async () => {
      provider = new ScriptedProvider();
      provider.onBuy = defaultBuy;
      h = await lifecycleHarness(engine, { provider });
    });
    after(() => h.dispose());

    const buy = (request: Omit<PurchaseRequest, 'idempotencyKey'> & { idempotencyKey?: string }) =>
      purchaseVerification(h.deps, { idempotencyKey: 'key-1', ...request });

    test('10 sequential identical requests: one verification, one hold, one upstream purchase, the same answer', async () => {
      const user = await h.customer(1000);
      const buysBefore = provider.calls.buy;
      const answers: Answer[] = [];
      for (let i = 0; i < 10; i++) answers.push(await answer(buy({ userId: user, service: 'whatsapp' })));
      const first = answers[0] as { status: number; id: string; replayed: boolean };
      assert.deepEqual(first, { status: 201, id: first.id, replayed: false });
      for (const later of answers.slice(1)) assert.deepEqual(later, { status: 201, id: first.id, replayed: true });
      assert.equal(provider.calls.buy - buysBefore, 1);
      assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 1, holds: 1 });
      assert.deepEqual(await h.wallet(user), [1000, 120, 880]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('60 concurrent identical requests while the upstream call is held: one winner, 59 × 409 in progress', async () => {
      const user = await h.customer(1000);
      const buysBefore = provider.calls.buy;
      const gate = deferred();
      buyGate = gate.promise;
      let answered = 0;
      const N = 60;
      try {
        const all = Array.from({ length: N }, () =>
          answer(buy({ userId: user, service: 'telegram', idempotencyKey: 'burst' })).finally(() => {
            // Everyone but the purchase holding the upstream call has answered: let it finish.
            if (++answered === N - 1) gate.resolve();
          }),
        );
        const answers = await Promise.all(all);
        const winners = answers.filter((a) => a.status === 201);
        assert.equal(winners.length, 1, JSON.stringify(answers.filter((a) => a.status !== 409)));
        const winner = winners[0] as { status: number; id: string; replayed: boolean };
        assert.equal(winner.replayed, false);
        for (const a of answers.filter((x) => x !== winner)) {
          assert.equal(a.status, 409);
          assert.ok('code' in a && a.code === 'idempotency_in_progress', JSON.stringify(a));
          assert.ok('retryAfter' in a && Number(a.retryAfter) >= 1, `Retry-After ${JSON.stringify(a)}`);
        }
        assert.equal(provider.calls.buy - buysBefore, 1);
        assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 1, holds: 1 });
        assert.deepEqual(await h.wallet(user), [1000, 110, 890]);

        // Once settled, every re-send gets the original outcome again.
        const again = await Promise.all(Array.from({ length: 10 }, () => answer(buy({ userId: user, service: 'telegram', idempotencyKey: 'burst' }))));
        for (const a of again) assert.deepEqual(a, { status: 201, id: winner.id, replayed: true });
        assert.equal(provider.calls.buy - buysBefore, 1);
      } finally {
        buyGate = undefined;
        gate.resolve();
      }
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('60 concurrent identical requests, free running: each answer is the original outcome or 409 in progress', async () => {
      const user = await h.customer(1000);
      const buysBefore = provider.calls.buy;
      const answers = await Promise.all(
        Array.from({ length: 60 }, () => answer(buy({ userId: user, service: 'google', idempotencyKey: 'free' }))),
      );
      const ok = answers.filter((a) => a.status === 201) as { status: number; id: string; replayed: boolean }[];
      assert.ok(ok.length >= 1);
      assert.equal(new Set(ok.map((a) => a.id)).size, 1, 'one verification id');
      assert.equal(ok.filter((a) => !a.replayed).length, 1, 'exactly one request created it');
      for (const a of answers) {
        if (a.status === 201) continue;
        assert.deepEqual([a.status, 'code' in a ? a.code : undefined], [409, 'idempotency_in_progress']);
      }
      assert.equal(provider.calls.buy - buysBefore, 1);
      assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 1, holds: 1 });
      assert.deepEqual(await h.wallet(user), [1000, 90, 910]);
      const again = await answer(buy({ userId: user, service: 'google', idempotencyKey: 'free' }));
      assert.deepEqual(again, { status: 201, id: ok[0]!.id, replayed: true });
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('the same key with another request → 422 idempotency_key_reused, nothing changes', async () => {
      const user = await h.customer(1000);
      const out = await buy({ userId: user, service: 'whatsapp', idempotencyKey: 'reuse' });
      const buysBefore = provider.calls.buy;
      const before = await loadVerification(h.t.database.db, out.row.id);
      const variants: Omit<PurchaseRequest, 'userId' | 'idempotencyKey'>[] = [
        { service: 'telegram' },
        { service: 'whatsapp', maxPriceMinor: 500 },
        { service: 'whatsapp', country: 'GB' },
        { service: 'whatsapp', maxPriceMinor: 10 },
      ];
      for (const variant of variants) {
        await assert.rejects(
          buy({ userId: user, idempotencyKey: 'reuse', ...variant }),
          rejectsWith('idempotency_key_reused', 422, (e) => assert.equal(e.extra.verification_id, out.row.id)),
          JSON.stringify(variant),
        );
      }
      assert.equal(provider.calls.buy, buysBefore);
      assert.deepEqual(await loadVerification(h.t.database.db, out.row.id), before);
      assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 1, holds: 1 });
      assert.deepEqual(await h.wallet(user), [1000, 120, 880]);
      // The original request is still answered as before.
      assert.deepEqual(await answer(buy({ userId: user, service: 'whatsapp', idempotencyKey: 'reuse' })), {
        status: 201,
        id: out.row.id,
        replayed: true,
      });
    });

    test('a failed purchase (no numbers) replays the same error with the same verification id; never charged', async () => {
      const user = await h.customer(1000);
      const buysBefore = provider.calls.buy;
      const first = await answer(buy({ userId: user, service: 'test_no_numbers', idempotencyKey: 'nonum' }));
      assert.ok('code' in first);
      assert.equal(first.code, 'no_numbers');
      assert.equal(first.status, 503);
      assert.equal(typeof first.id, 'string');
      for (let i = 0; i < 5; i++) {
        const again = await answer(buy({ userId: user, service: 'test_no_numbers', idempotencyKey: 'nonum' }));
        assert.deepEqual(again, { status: 503, code: 'no_numbers', id: first.id, retryAfter: undefined, replayedHeader: 'true' });
      }
      assert.equal(provider.calls.buy - buysBefore, 1);
      assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 1, holds: 1 });
      assert.equal((await verificationMoney(h.t.database.db, first.id as string)).holdOutcome, 'voided');
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('an ambiguous purchase answers 202 and replays 202 with the same verification, before and after recovery', async () => {
      const user = await h.customer(1000);
      const first = await answer(buy({ userId: user, service: 'test_ambiguous', idempotencyKey: 'amb' }));
      assert.deepEqual(first, { status: 202, id: (first as { id: string }).id, replayed: false });
      const id = (first as { id: string }).id;
      assert.deepEqual(await answer(buy({ userId: user, service: 'test_ambiguous', idempotencyKey: 'amb' })), { status: 202, id, replayed: true });
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, id))?.state, 'waiting');
      assert.deepEqual(await answer(buy({ userId: user, service: 'test_ambiguous', idempotencyKey: 'amb' })), { status: 202, id, replayed: true });
      assert.equal(provider.calls.lookup >= 1, true);
      assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 1, holds: 1 });
      assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
    });

    test('keys are per customer: two customers with the same key get two verifications', async () => {
      const alice = await h.customer(1000);
      const bob = await h.customer(1000);
      const buysBefore = provider.calls.buy;
      const [a, b] = await Promise.all([
        buy({ userId: alice, service: 'whatsapp', idempotencyKey: 'shared-key' }),
        buy({ userId: bob, service: 'whatsapp', idempotencyKey: 'shared-key' }),
      ]);
      assert.notEqual(a.row.id, b.row.id);
      assert.equal(a.row.userId, alice);
      assert.equal(b.row.userId, bob);
      assert.deepEqual([a.replayed, b.replayed], [false, false]);
      assert.equal(provider.calls.buy - buysBefore, 2);
      assert.deepEqual(await h.wallet(alice), [1000, 120, 880]);
      assert.deepEqual(await h.wallet(bob), [1000, 120, 880]);
    });

    test('insufficient funds → 402 and nothing stored, so the same key succeeds after a top-up', async () => {
      const user = await h.customer(100);
      const buysBefore = provider.calls.buy;
      for (let i = 0; i < 3; i++) {
        await assert.rejects(
          buy({ userId: user, service: 'whatsapp', idempotencyKey: 'poor' }),
          rejectsWith('insufficient_funds', 402, (e) => assert.equal(e.extra.price_minor, 120)),
        );
      }
      assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 0, holds: 0 });
      assert.equal(provider.calls.buy, buysBefore);
      assert.deepEqual(await h.wallet(user), [100, 0, 100]);

      await creditWallet(h.t.database.db, { userId: user, amountMinor: 50, kind: 'topup', actor: 'admin', reason: 'top-up', now: h.clock.now() });
      const out = await buy({ userId: user, service: 'whatsapp', idempotencyKey: 'poor' });
      assert.equal(out.status, 201);
      assert.equal(out.replayed, false);
      assert.equal(provider.calls.buy - buysBefore, 1);
      assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 1, holds: 1 });
      assert.deepEqual(await h.wallet(user), [150, 120, 30]);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
