import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { FaultSwitch, SimulatedCrash, lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent, verificationMoney, type VerificationMoney } from '../support/lifecycle-invariants.ts';
import { firstRow } from '../../src/db/database.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification, type FaultPoint, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { isTerminal } from '../../src/verifications/transitions.ts';
import { ProviderError } from '../../src/providers/provider.ts';
import { isDomainError } from '../../src/errors.ts';
import { spawnWorker } from '../support/engine-worker.ts';
import { storedFor } from '../support/lifecycle-invariants.ts';

/**
 * Crash points: a throw at each named point between two phases stands for the process dying there.
 * Recovery is whatever the running system does next (the engine's ticks as time passes, a customer
 * pressing cancel again), and the end state must equal the crash-free run of the same scenario.
 */
type Scenario = 'sms' | 'timeout' | 'cancel';
type BuyMode = 'answered' | 'answer_lost';

interface Outcome extends VerificationMoney {
  wallet: [number, number, number];
  upstreamBuys: number;
  cancelledUpstream: boolean;
}

for (const engine of engines) {
  describe(`crash points [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    const faults = new FaultSwitch();
    let keys = 0;

    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, { provider, faults: faults.hook });
    });
    after(() => h.dispose());
    beforeEach(() => faults.reset());

    const db = () => h.t.database.db;

    function buyBehaviour(mode: BuyMode) {
      provider.resetBehaviour();
      if (mode === 'answer_lost') {
        provider.onBuy = async (request) => {
          provider.createOrder(request.clientRef);
          throw new ProviderError('ambiguous', 'connection_lost', 'the order was created but the answer was lost');
        };
      }
    }

    /** Lets time pass (past the purchase window, the poll interval and any backoff) and the engine run. */
    async function runEngineUntil(id: string, done: (row: VerificationRow) => boolean, maxTicks = 12): Promise<VerificationRow> {
      let row = (await loadVerification(db(), id))!;
      for (let i = 0; i < maxTicks && !done(row); i++) {
        await h.runtime.engine.tick();
        row = (await loadVerification(db(), id))!;
        if (done(row)) break;
        h.clock.advance(31_000);
      }
      return row;
    }

    /** One customer's whole story; `crashAt` makes that point throw once on the way. */
    async function story(scenario: Scenario, mode: BuyMode, crashAt?: FaultPoint): Promise<{ outcome: Outcome; id: string }> {
      buyBehaviour(mode);
      const user = await h.customer(1000);
      const buysBefore = provider.calls.buy;
      const key = `crash-${keys++}`;
      if (crashAt) faults.crashOnce(crashAt);

      // 1. Purchase. A script whose request died retries the same key; while the first call may still
      //    be running it is told so (409), afterwards it gets the first outcome.
      try {
        await purchaseVerification(h.deps, { userId: user, idempotencyKey: key, service: 'test_timeout' });
      } catch (error) {
        if (!(error instanceof SimulatedCrash)) throw error;
        await assert.rejects(
          purchaseVerification(h.deps, { userId: user, idempotencyKey: key, service: 'test_timeout' }),
          (e: unknown) => isDomainError(e) && e.code === 'idempotency_in_progress',
        );
      }
      const stored = await firstRow<{ id: string }>(db(), sql`SELECT id FROM verifications WHERE user_id = ${user}`);
      assert.ok(stored, 'the purchase left its verification');
      const id = stored.id;

      // 2. The engine resolves whatever is still pending (recovery asks the upstream, never buys again).
      let row = await runEngineUntil(id, (r) => r.state !== 'pending');

      // 3. The scenario.
      if (row.state === 'waiting') {
        if (scenario === 'sms') {
          provider.deliver(row.providerOrderId!, 'Your code is 909090', '909090', h.clock.now());
          h.clock.advance(1_000);
          row = await runEngineUntil(id, (r) => isTerminal(r.state));
        } else if (scenario === 'timeout') {
          h.clock.set(row.expiresAt);
          row = await runEngineUntil(id, (r) => isTerminal(r.state));
        } else {
          let answer;
          try {
            answer = await cancelVerification(h.deps, row, 'customer');
          } catch (error) {
            if (!(error instanceof SimulatedCrash)) throw error;
            // The customer saw an error and presses cancel again.
            answer = await cancelVerification(h.deps, (await loadVerification(db(), id))!, 'customer');
          }
          assert.equal(answer.kind, 'cancelled');
          row = answer.row;
        }
      }
      assert.ok(isTerminal(row.state), `${scenario}/${mode}/${crashAt}: ended ${row.state}`);

      // 4. Owed upstream cancels are settled in the background.
      for (let i = 0; i < 3; i++) {
        h.clock.advance(301_000);
        await h.runtime.engine.tick();
      }
      if (crashAt) assert.equal(faults.pending(crashAt), false, `the crash at ${crashAt} happened`);
      const final = (await loadVerification(db(), id))!;
      return {
        id,
        outcome: {
          ...(await verificationMoney(db(), id)),
          wallet: await h.wallet(user),
          upstreamBuys: provider.calls.buy - buysBefore,
          cancelledUpstream: final.providerOrderId !== null && provider.cancelledOrders.has(final.providerOrderId),
        },
      };
    }

    const cases: { point: FaultPoint; mode: BuyMode; scenarios: Scenario[] }[] = [
      { point: 'purchase.bought', mode: 'answered', scenarios: ['sms', 'timeout', 'cancel'] },
      // The deadline batch does not fetch messages from an upstream without a list call (the late
      // watch after the refund does), so capture.fetched is not on the timeout path here.
      { point: 'capture.fetched', mode: 'answered', scenarios: ['sms'] },
      { point: 'cancel.upstream_done', mode: 'answered', scenarios: ['cancel'] },
      { point: 'expire.checked', mode: 'answered', scenarios: ['timeout'] },
      { point: 'expire.upstream_done', mode: 'answered', scenarios: ['timeout'] },
      { point: 'recover.looked_up', mode: 'answer_lost', scenarios: ['sms', 'timeout', 'cancel'] },
      { point: 'capture.fetched', mode: 'answer_lost', scenarios: ['sms'] },
    ];

    for (const { point, mode, scenarios } of cases) {
      test(`crash at ${point} (upstream purchase ${mode.replace('_', ' ')}): same end as without the crash`, async () => {
        for (const scenario of scenarios) {
          const clean = await story(scenario, mode);
          const crashed = await story(scenario, mode, point);
          assert.deepEqual(crashed.outcome, clean.outcome, `${point} / ${scenario}`);
          // And the crash-free outcome is the right one.
          const expected = {
            sms: { state: 'received', wallet: [950, 0, 950], charges: 1, chargedMinor: 50 },
            timeout: { state: 'expired', wallet: [1000, 0, 1000], charges: 0, chargedMinor: 0 },
            cancel: { state: 'cancelled', wallet: [1000, 0, 1000], charges: 0, chargedMinor: 0 },
          }[scenario];
          assert.deepEqual(
            { state: clean.outcome.state, wallet: clean.outcome.wallet, charges: clean.outcome.charges, chargedMinor: clean.outcome.chargedMinor },
            expected,
          );
          assert.equal(crashed.outcome.upstreamBuys, 1, 'exactly one upstream purchase');
          assert.equal(crashed.outcome.cancelledUpstream, scenario !== 'sms', 'the unused number is cancelled upstream');
        }
        await assertLifecycleConsistent(db());
      });
    }

    test('crash at purchase.held (before the upstream call): nothing bought, failed and refunded, the key replays the failure', async () => {
      for (const scenario of ['sms', 'timeout', 'cancel'] as const) {
        const crashed = await story(scenario, 'answered', 'purchase.held');
        assert.deepEqual(
          { ...crashed.outcome },
          {
            state: 'failed',
            holdOutcome: 'voided',
            charges: 0,
            chargedMinor: 0,
            upstreamStatus: 'absent',
            messages: 0,
            lateMessages: 0,
            wallet: [1000, 0, 1000],
            upstreamBuys: 0,
            cancelledUpstream: false,
          },
          scenario,
        );
        // The crash-free run of a purchase that never reached the provider is a definite failure:
        // the customer, retrying the key, is told so with the verification id and was not charged.
        const row = (await loadVerification(db(), crashed.id))!;
        await assert.rejects(
          purchaseVerification(h.deps, { userId: row.userId, idempotencyKey: row.idempotencyKey, service: 'test_timeout' }),
          (e: unknown) => isDomainError(e) && e.code === 'provider_unavailable' && e.extra.verification_id === crashed.id,
        );
      }
      await assertLifecycleConsistent(db());
    });

    test('crash at cancel.upstream_done and the customer never retries: refunded at the deadline instead', async () => {
      provider.resetBehaviour();
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: `crash-${keys++}`, service: 'test_timeout' });
      faults.crashOnce('cancel.upstream_done');
      await assert.rejects(cancelVerification(h.deps, out.row, 'customer'), SimulatedCrash);
      assert.ok(provider.cancelledOrders.has(out.row.providerOrderId!), 'cancelled upstream, not yet here');
      assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
      h.clock.set(out.row.expiresAt);
      await h.runtime.engine.tick();
      const money = await verificationMoney(db(), out.row.id);
      assert.deepEqual([money.state, money.holdOutcome, money.charges], ['expired', 'expired', 0]);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000]);
      await assertLifecycleConsistent(db());
    });

    test('a crash at every point of one story in turn never double-charges or loses a refund', async () => {
      // All points armed at once, each throwing once wherever it is first reached.
      for (const scenario of ['sms', 'timeout', 'cancel'] as const) {
        for (const mode of ['answered', 'answer_lost'] as const) {
          faults.reset();
          const points: FaultPoint[] = ['capture.fetched', 'cancel.upstream_done', 'expire.checked', 'expire.upstream_done', 'recover.looked_up'];
          if (mode === 'answered') points.push('purchase.bought');
          for (const p of points) faults.crashOnce(p);
          const { outcome } = await story(scenario, mode);
          const refunded = outcome.state !== 'received';
          assert.equal(outcome.charges, refunded ? 0 : 1);
          assert.deepEqual(outcome.wallet, refunded ? [1000, 0, 1000] : [950, 0, 950], `${scenario}/${mode}: ${outcome.state}`);
          assert.equal(outcome.upstreamBuys, 1);
          assert.equal(outcome.state, { sms: 'received', timeout: 'expired', cancel: 'cancelled' }[scenario]);
        }
      }
      await assertLifecycleConsistent(db());
    });
  });
}

if (engines.includes('postgres')) {
  describe('a real process killed mid-purchase [postgres]', () => {
    let h: LifecycleHarness;
    before(async () => {
      h = await lifecycleHarness('postgres');
    });
    after(() => h.dispose());

    test('SIGKILL while the upstream call is in flight: recovery ends exactly where the crash-free purchase ends', async () => {
      // Crash-free: the sandbox delivers test_success's SMS 800 ms after the purchase.
      const calm = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: calm, idempotencyKey: 'calm', service: 'test_success' });
      h.clock.advance(1_000);
      await h.runtime.engine.tick();
      const clean = { ...(await verificationMoney(h.t.database.db, out.row.id)), wallet: await h.wallet(calm) };
      assert.equal(clean.state, 'received');

      const user = await h.customer(1000);
      const worker = spawnWorker({
        databaseUrl: h.t.databaseUrl!,
        workerId: 'doomed-api',
        now: h.clock.now().toISOString(),
        mode: 'purchase-hang',
        purchase: { userId: user, idempotencyKey: 'killed', service: 'test_success' },
      });
      try {
        const started = await worker.waitFor((e) => e.event === 'buy-started');
        assert.ok(started.event === 'buy-started');
        assert.deepEqual(await storedFor(h.t.database.db, user), { verifications: 1, holds: 1 });
        assert.deepEqual(await h.wallet(user), [1000, 50, 950]);
      } finally {
        worker.child.kill('SIGKILL');
        await worker.exited;
      }
      const id = (worker.events.find((e) => e.event === 'buy-started') as { clientRef: string }).clientRef;

      // The customer's script retries its key: told to wait while the dead call's window is open.
      await assert.rejects(
        purchaseVerification(h.deps, { userId: user, idempotencyKey: 'killed', service: 'test_success' }),
        (e: unknown) => isDomainError(e) && e.code === 'idempotency_in_progress',
      );
      h.clock.advance(h.config.PURCHASE_TIMEOUT_SECONDS * 1000);
      await h.runtime.engine.tick();
      assert.equal((await loadVerification(h.t.database.db, id))?.state, 'waiting', 'recovered by lookup, not bought again');
      h.clock.advance(1_000);
      await h.runtime.engine.tick();
      const crashed = { ...(await verificationMoney(h.t.database.db, id)), wallet: await h.wallet(user) };
      assert.deepEqual(crashed, clean);
      const replay = await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'killed', service: 'test_success' });
      assert.deepEqual([replay.row.id, replay.replayed, replay.row.state], [id, true, 'received']);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
