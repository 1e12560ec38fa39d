import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { asc, eq } from 'drizzle-orm';
import { isDomainError, type DomainError } from '../../src/errors.ts';
import { ProviderError, type ProviderErrorCode } from '../../src/providers/provider.ts';
import { createVerificationRuntime, type VerificationRuntime } from '../../src/runtime.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification, type PurchaseOutcome } from '../../src/verifications/purchase.ts';
import { verificationEvents } from '../../src/verifications/schema.ts';
import { engines } from '../support/db.ts';
import { assertLedgerConsistent } from '../support/ledger-invariants.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { putProviderCatalogue } from '../support/provider-catalogue.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';

/**
 * Failover between upstreams inside one purchase (docs/routing.md): after a definite failure the
 * next candidate is tried under the same hold, the same verification and the same Idempotency-Key,
 * and each attempt is in the verification's history; after an ambiguous one no other provider is
 * ever asked — the order stays pending at the provider that may have sold it, and recovery finds it
 * there. Three scripted upstreams, `alpha` preferred; whatsapp/US costs alpha 50, beta 60, gamma 70,
 * our price 100.
 */

const PRICE = 100;
const COST = { alpha: 50, beta: 60, gamma: 70 } as const;
type Name = keyof typeof COST;
const NAMES: Name[] = ['alpha', 'beta', 'gamma'];

async function outcome(request: Promise<PurchaseOutcome>): Promise<PurchaseOutcome | DomainError> {
  try {
    return await request;
  } catch (error) {
    if (isDomainError(error)) return error;
    throw error;
  }
}

for (const engine of engines) {
  describe(`failover between upstreams [${engine}]`, () => {
    let h: LifecycleHarness;
    let runtime: VerificationRuntime;
    const upstreams = Object.fromEntries(NAMES.map((n) => [n, new ScriptedProvider(n)])) as Record<Name, ScriptedProvider>;
    const disabled = new Set<string>();
    let keys = 0;

    before(async () => {
      // Threshold 3 (the harness), and a half-open time no test outlives.
      h = await lifecycleHarness(engine, { env: { BREAKER_HALF_OPEN_AFTER_MS: '3600000' } });
      for (const name of NAMES) await putProviderCatalogue(h.t.database.db, name, [{ service: 'whatsapp', priceMinor: PRICE + 20, costMinor: COST[name] }]);
      // Our price is the lowest that keeps a margin: alpha's row sells at 100.
      await putProviderCatalogue(h.t.database.db, 'alpha', [{ service: 'whatsapp', priceMinor: PRICE, costMinor: COST.alpha }]);
      runtime = createVerificationRuntime(h.ctx, {
        providers: NAMES.map((n) => upstreams[n]),
        controls: { isDisabled: (name) => disabled.has(name) },
        workerId: 'failover-worker',
      });
    });
    after(async () => {
      await runtime.engine.stop();
      await h.dispose();
    });
    beforeEach(() => {
      for (const name of NAMES) {
        upstreams[name].resetBehaviour();
        upstreams[name].calls = { buy: 0, lookup: 0, check: 0, cancel: 0 };
      }
      disabled.clear();
    });

    const buy = (userId: string, key = `fo-${keys++}`) =>
      outcome(purchaseVerification(runtime.deps, { userId, idempotencyKey: key, service: 'whatsapp', country: 'US' }));
    const buys = () => NAMES.map((n) => upstreams[n].calls.buy);
    const history = async (id: string) =>
      (await h.t.database.db.select().from(verificationEvents).where(eq(verificationEvents.verificationId, id)).orderBy(asc(verificationEvents.id))).map(
        (e) => `${e.fromState ?? '∅'}→${e.toState}: ${e.reason}`,
      );
    const refuse = (name: Name, code: ProviderErrorCode) => {
      upstreams[name].onBuy = async () => {
        throw new ProviderError('definite', code, `scripted ${code}`);
      };
    };

    const definiteKinds: { code: ProviderErrorCode; what: string }[] = [
      { code: 'no_numbers', what: 'no numbers' },
      { code: 'price_exceeds_max', what: 'price above the cap' },
      { code: 'rejected', what: 'a refusal before acceptance' },
      { code: 'unavailable', what: 'the upstream unavailable before the request was sent' },
      { code: 'upstream_balance', what: 'our float at the upstream empty' },
    ];
    for (const { code, what } of definiteKinds) {
      test(`${what} (${code}) at the preferred provider: the next one sells, same verification, same hold`, async () => {
        const user = await h.customer(1000);
        refuse('alpha', code);
        const out = await buy(user, `definite-${code}`);
        assert.ok(!isDomainError(out), `bought: ${isDomainError(out) ? out.code : ''}`);
        assert.equal(out.status, 201);
        assert.deepEqual(buys(), [1, 1, 0]);
        const row = (await loadVerification(h.t.database.db, out.row.id))!;
        assert.deepEqual([row.state, row.provider, row.maxCostMinor, row.priceMinor], ['waiting', 'beta', COST.beta, PRICE]);
        assert.equal(row.providerOrderId, `ord-${row.id}`);
        assert.deepEqual(await history(row.id), [
          '∅→pending: purchase requested',
          `pending→pending: ${code} at alpha: trying beta`,
          'pending→waiting: number assigned',
        ]);
        assert.deepEqual(await h.wallet(user), [1000, PRICE, 1000 - PRICE]);
        // The same Idempotency-Key again: the same verification, nobody asked again.
        const again = await buy(user, `definite-${code}`);
        assert.ok(!isDomainError(again) && again.replayed && again.row.id === row.id);
        assert.deepEqual(buys(), [1, 1, 0]);
        await assertLifecycleConsistent(h.t.database.db);
      });
    }

    test('a provider an operator disabled is not asked', async () => {
      disabled.add('alpha');
      const user = await h.customer(1000);
      const out = await buy(user);
      assert.ok(!isDomainError(out) && out.row.provider === 'beta');
      assert.deepEqual(buys(), [0, 1, 0]);
      disabled.add('beta').add('gamma');
      const none = await buy(user);
      assert.ok(isDomainError(none) && none.code === 'provider_unavailable' && none.extra.verification_id === undefined, 'nothing stored');
      assert.deepEqual(await h.wallet(user), [1000, PRICE, 1000 - PRICE]);
    });

    test('every candidate fails definitely: failed, refunded, each asked once, every attempt in the history', async () => {
      const user = await h.customer(1000);
      refuse('alpha', 'no_numbers');
      refuse('beta', 'price_exceeds_max');
      refuse('gamma', 'no_numbers');
      const out = await buy(user);
      assert.ok(isDomainError(out));
      assert.deepEqual([out.code, out.status], ['no_numbers', 503]);
      assert.deepEqual(buys(), [1, 1, 1]);
      const row = (await loadVerification(h.t.database.db, String(out.extra.verification_id)))!;
      assert.deepEqual([row.state, row.provider], ['failed', 'gamma']);
      assert.deepEqual(await history(row.id), [
        '∅→pending: purchase requested',
        'pending→pending: no_numbers at alpha: trying beta',
        'pending→pending: price_exceeds_max at beta: trying gamma',
        'pending→failed: no_numbers: scripted no_numbers',
      ]);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLedgerConsistent(h.t.database.db);
    });

    test('no attempt starts after PURCHASE_TIMEOUT_SECONDS: a slow definite failure ends the purchase', async () => {
      const user = await h.customer(1000);
      upstreams.alpha.onBuy = async () => {
        h.clock.advance(31_000);
        throw new ProviderError('definite', 'no_numbers', 'slow no numbers');
      };
      const out = await buy(user);
      assert.ok(isDomainError(out) && out.code === 'no_numbers');
      assert.deepEqual(buys(), [1, 0, 0]);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
    });

    test('no second purchase after an ambiguous outcome: pending at the provider that may have sold it, then recovered there', async () => {
      const user = await h.customer(1000);
      upstreams.alpha.onBuy = async (request) => {
        upstreams.alpha.createOrder(request.clientRef);
        throw new ProviderError('ambiguous', 'timeout', 'answer lost after the order was made');
      };
      const out = await buy(user);
      assert.ok(!isDomainError(out));
      assert.equal(out.status, 202);
      assert.deepEqual(buys(), [1, 0, 0]);
      assert.deepEqual([out.row.state, out.row.provider], ['pending', 'alpha']);
      assert.deepEqual(await h.wallet(user), [1000, PRICE, 1000 - PRICE]);
      // While it is pending, and through recovery, no other provider is asked.
      await runtime.engine.tick();
      assert.deepEqual(buys(), [1, 0, 0]);
      h.clock.advance(31_000);
      await runtime.engine.tick();
      const row = (await loadVerification(h.t.database.db, out.row.id))!;
      assert.deepEqual([row.state, row.provider, row.providerOrderId], ['waiting', 'alpha', `ord-${row.id}`]);
      assert.equal(upstreams.alpha.calls.lookup, 1);
      assert.deepEqual(buys(), [1, 0, 0]);
      // Its code comes from alpha, and the hold is captured once.
      upstreams.alpha.deliver(row.providerOrderId!, 'code 4242', '4242', h.clock.now());
      h.clock.advance(1_000);
      await runtime.engine.tick();
      const done = (await loadVerification(h.t.database.db, row.id))!;
      assert.deepEqual([done.state, done.code], ['received', '4242']);
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE]);
      assert.deepEqual(buys(), [1, 0, 0]);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('property: providers are asked in rank order up to the first answer that is not a definite failure, never past it', async () => {
      const answer = fc.constantFrom('definite', 'ambiguous', 'sold');
      await fc.assert(
        fc.asyncProperty(fc.tuple(answer, answer, answer), async (answers) => {
          for (const [i, name] of NAMES.entries()) {
            upstreams[name].resetBehaviour();
            upstreams[name].calls = { buy: 0, lookup: 0, check: 0, cancel: 0 };
            if (answers[i] === 'definite') refuse(name, 'no_numbers');
            if (answers[i] === 'ambiguous') {
              upstreams[name].onBuy = async () => {
                throw new ProviderError('ambiguous', 'server_error', '502 after sending');
              };
            }
          }
          // Fresh breakers each run: ambiguous answers in earlier runs would have opened one (as they should).
          const fresh = createVerificationRuntime(h.ctx, { providers: NAMES.map((n) => upstreams[n]), workerId: 'property-worker' });
          const user = await h.customer(1000);
          const out = await outcome(purchaseVerification(fresh.deps, { userId: user, idempotencyKey: `prop-${keys++}`, service: 'whatsapp', country: 'US' }));
          const decisive = answers.findIndex((a) => a !== 'definite');
          const asked = decisive === -1 ? 3 : decisive + 1;
          assert.deepEqual(buys(), NAMES.map((_, i) => (i < asked ? 1 : 0)), `answers ${answers.join(',')}`);
          if (decisive === -1) {
            assert.ok(isDomainError(out) && out.code === 'no_numbers');
            assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
            return;
          }
          assert.ok(!isDomainError(out));
          const row = (await loadVerification(h.t.database.db, out.row.id))!;
          assert.equal(row.provider, NAMES[decisive]);
          assert.equal(row.state, answers[decisive] === 'sold' ? 'waiting' : 'pending');
          assert.equal(out.status, answers[decisive] === 'sold' ? 201 : 202);
          assert.deepEqual(await h.wallet(user), [1000, PRICE, 1000 - PRICE]);
          assert.equal((await history(row.id)).filter((e) => e.includes('trying')).length, decisive);
        }),
        { numRuns: 20 },
      );
      await assertLifecycleConsistent(h.t.database.db);
    });

    // Last: on PostgreSQL the breaker it opens is shared with every runtime through the database.
    test('an open breaker: that provider is not even asked', async () => {
      const fresh = createVerificationRuntime(h.ctx, { providers: NAMES.map((n) => upstreams[n]), workerId: 'breaker-worker' });
      upstreams.alpha.failAll('ambiguous', 'timeout');
      const ref = { providerOrderId: 'x', phoneNumber: '1555', since: h.clock.now() };
      for (let i = 0; i < 3; i++) await fresh.providers.get('alpha').check(ref).catch(() => undefined);
      upstreams.alpha.restore();
      assert.equal(fresh.providers.breaker('alpha').state(), 'open');
      const user = await h.customer(1000);
      const out = await outcome(purchaseVerification(fresh.deps, { userId: user, idempotencyKey: 'breaker-open', service: 'whatsapp', country: 'US' }));
      assert.ok(!isDomainError(out) && out.status === 201);
      assert.deepEqual(buys(), [0, 1, 0]);
      assert.equal(out.row.provider, 'beta');
      assert.equal(fresh.providers.breaker('beta').state(), 'closed', 'one breaker per provider');
      await fresh.engine.stop();
    });
  });
}
