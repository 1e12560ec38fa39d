import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { FaultSwitch, lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider, deferred } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent, verificationMoney } from '../support/lifecycle-invariants.ts';
import { assertLedgerConsistent, prng } from '../support/ledger-invariants.ts';
import { rows } from '../../src/db/database.ts';
import { DomainError } from '../../src/errors.ts';
import type { OrderCheck } from '../../src/providers/provider.ts';
import { checkUpstream } from '../../src/verifications/flows.ts';
import { loadVerification, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { findReport, reportNumber, type ReportOutcome } from '../../src/verifications/reports.ts';

/**
 * A report of a waiting verification racing the SMS capture (issue 18, "report racing a late
 * SMS"): exactly one wins. Either the customer has the code and was charged once — the report
 * refused with 409 (or, when it read the verification after the capture, recorded with the charge
 * standing: this upstream takes no reports) — or the hold is released once, nothing is charged and
 * the report recorded; a message that comes after is kept as late, never charged. Injected
 * interleavings at each step of both sides, then real concurrency with seeded random timing
 * (RACE_SEED replays a failing run). Exact wallet amounts, the ledger and the lifecycle after each.
 */
const PRICE = 50;

for (const engine of engines) {
  describe(`report racing a late SMS [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    const faults = new FaultSwitch();

    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, { provider, faults: faults.hook });
    });
    after(() => h.dispose());
    beforeEach(() => {
      provider.resetBehaviour();
      faults.reset();
    });

    const db = () => h.t.database.db;
    const sms = (row: VerificationRow) => provider.deliver(row.providerOrderId!, 'Your code is 515151', '515151', h.clock.now());
    const report = (user: string, row: VerificationRow) => reportNumber(h.deps, { userId: user, verificationId: row.id, reason: 'code_not_received' });

    async function waiting(): Promise<{ user: string; row: VerificationRow }> {
      const user = await h.customer(1000);
      const out = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      assert.equal(out.row.state, 'waiting');
      assert.deepEqual(await h.wallet(user), [1000, PRICE, 1000 - PRICE]);
      h.clock.advance(1_000);
      return { user, row: out.row };
    }

    async function refused(promise: Promise<unknown>): Promise<DomainError> {
      try {
        await promise;
      } catch (error) {
        assert.ok(error instanceof DomainError, String(error));
        assert.equal(error.code, 'invalid_state', error.message);
        return error;
      }
      assert.fail('expected the report to be refused');
    }

    async function transitionsFromWaiting(id: string): Promise<number> {
      const [found] = await rows<{ n: number }>(db(), sql`SELECT count(*)::int AS n FROM verification_events WHERE verification_id = ${id} AND from_state = 'waiting'`);
      return Number(found!.n);
    }

    /** The SMS won: the code shown, one charge of the price, and no report unless it read the capture first. */
    async function assertSmsWon(user: string, id: string, context = ''): Promise<void> {
      const row = (await loadVerification(db(), id))!;
      assert.equal(row.state, 'received', context);
      assert.equal(row.code, '515151', context);
      const money = await verificationMoney(db(), id);
      assert.deepEqual([money.holdOutcome, money.charges, money.chargedMinor], ['posted', 1, PRICE], context);
      assert.deepEqual(await h.wallet(user), [1000 - PRICE, 0, 1000 - PRICE], context);
      assert.equal(await transitionsFromWaiting(id), 1, context);
    }

    /** The report won: cancelled, released once, nothing charged, the report recorded. */
    async function assertReportWon(user: string, id: string, context = ''): Promise<void> {
      const row = (await loadVerification(db(), id))!;
      assert.equal(row.state, 'cancelled', context);
      const money = await verificationMoney(db(), id);
      assert.deepEqual([money.holdOutcome, money.charges, money.lateMessages === money.messages], ['voided', 0, true], context);
      assert.deepEqual(await h.wallet(user), [1000, 0, 1000], context);
      const stored = await findReport(db(), id);
      assert.deepEqual([stored?.upstream, stored?.refund], ['cancelled', 'none'], context);
      assert.equal(await transitionsFromWaiting(id), 1, context);
    }

    async function invariants(context = ''): Promise<void> {
      await assertLifecycleConsistent(db(), context);
      await assertLedgerConsistent(db(), context);
    }

    test('the poller captures between the upstream cancel and the report\'s state change: the SMS wins, the report is refused', async () => {
      const { user, row } = await waiting();
      faults.once('cancel.upstream_done', async () => {
        sms(row);
        // The upstream had already taken the cancel; the poller had fetched the message.
        const captured = await checkUpstream(h.deps, row, 'poller');
        assert.equal(captured?.captured, true);
      });
      const error = await refused(report(user, row));
      assert.match(error.message, /515151/, 'the report answers with the code');
      assert.equal(await findReport(db(), row.id), undefined);
      await assertSmsWon(user, row.id);
      await invariants();
    });

    test('the SMS reached the upstream before the report\'s cancel: the upstream refuses the cancel, the report captures it and is refused', async () => {
      const { user, row } = await waiting();
      sms(row);
      await refused(report(user, row));
      assert.equal(await findReport(db(), row.id), undefined);
      await assertSmsWon(user, row.id);
      assert.equal(provider.cancelledOrders.has(row.providerOrderId!), false);
      await invariants();
    });

    test('a poller holding a stale waiting row: the report commits first, the message it brings is late, never charged', async () => {
      const { user, row } = await waiting();
      const inFlight = deferred();
      const asked = deferred();
      provider.onCheck = async (order): Promise<OrderCheck> => {
        asked.resolve();
        await inFlight.promise;
        return provider.defaultCheck(order);
      };
      const poll = checkUpstream(h.deps, row, 'poller');
      await asked.promise;
      provider.onCheck = (order) => provider.defaultCheck(order);
      const outcome = await report(user, row);
      assert.deepEqual([outcome.created, outcome.verification.state], [true, 'cancelled']);
      // The code comes after the cancel; the poller's answer carries it.
      h.clock.advance(500);
      sms(row);
      inFlight.resolve();
      const captured = await poll;
      assert.equal(captured?.captured ?? false, false);
      await assertReportWon(user, row.id);
      // The engine running on changes nothing.
      h.clock.advance(60_000);
      await h.runtime.engine.tick();
      await assertReportWon(user, row.id);
      await invariants();
    });

    test('a report waiting on the upstream cancel while the poller captures: the report waits, then is refused; one charge', async () => {
      const { user, row } = await waiting();
      const cancelHeld = deferred();
      const cancelAsked = deferred();
      provider.onCancel = async (id) => {
        cancelAsked.resolve();
        await cancelHeld.promise;
        return provider.defaultCancel(id);
      };
      const reporting = report(user, row);
      await cancelAsked.promise;
      sms(row);
      const captured = await checkUpstream(h.deps, row, 'poller');
      assert.equal(captured?.captured, true);
      cancelHeld.resolve();
      await refused(reporting);
      assert.equal(await findReport(db(), row.id), undefined);
      await assertSmsWon(user, row.id);
      await invariants();
    });

    test('the capture commits before the report reads the verification: the report is recorded, the charge stands', async () => {
      const { user, row } = await waiting();
      sms(row);
      assert.equal((await checkUpstream(h.deps, row, 'poller'))?.captured, true);
      const outcome = await report(user, row);
      assert.deepEqual([outcome.created, outcome.report.refund, outcome.report.upstream], [true, 'declined', 'not_reportable']);
      await assertSmsWon(user, row.id);
      await invariants();
    });

    test('real concurrency, seeded random timing: report(s), the SMS, the poller and the engine racing; exactly one wins', async (t) => {
      const seed = Number(process.env.RACE_SEED ?? Date.now() % 1_000_000);
      const random = prng(seed);
      const rounds = engine === 'pglite' ? 12 : 20;
      const wins = { sms: 0, report: 0 };
      for (let round = 0; round < rounds; round++) {
        const context = `seed ${seed}, round ${round}`;
        const { user, row } = await waiting();
        const smsFirst = random.next() < 0.3;
        const plan = { secondReport: random.next() < 0.3, tick: random.next() < 0.5, poll: random.next() < 0.8, lateSms: random.next() < 0.8 };
        if (smsFirst) sms(row);
        const pause = async () => {
          for (let i = random.int(0, 6); i > 0; i--) await new Promise((resolve) => setImmediate(resolve));
        };
        const attempts: Promise<ReportOutcome | undefined | unknown>[] = [
          (async () => {
            await pause();
            return report(user, row);
          })(),
        ];
        if (plan.secondReport) attempts.push((async () => (await pause(), report(user, row)))());
        if (plan.lateSms && !smsFirst) attempts.push((async () => (await pause(), sms(row)))());
        if (plan.poll) attempts.push((async () => (await pause(), checkUpstream(h.deps, row, 'poller')))());
        if (plan.tick) attempts.push((async () => (await pause(), h.runtime.engine.tick()))());
        const settled = await Promise.allSettled(attempts);
        const reports = settled.slice(0, plan.secondReport ? 2 : 1);
        for (const [i, s] of settled.entries()) {
          if (s.status === 'rejected' && !(i < reports.length && s.reason instanceof DomainError && s.reason.code === 'invalid_state')) {
            assert.fail(`${context}: attempt ${i} failed: ${String(s.reason)}`);
          }
        }
        // Whatever came last, the engine looks once more: a message nobody fetched yet is fetched now.
        h.clock.advance(1_000);
        await h.runtime.engine.tick();

        const final = (await loadVerification(db(), row.id))!;
        if (final.state === 'received') {
          wins.sms++;
          await assertSmsWon(user, row.id, context);
          const stored = await findReport(db(), row.id);
          if (stored) assert.deepEqual([stored.refund, stored.upstream], ['declined', 'not_reportable'], `${context}: recorded after the capture`);
          else assert.ok(reports.every((r) => r.status === 'rejected'), `${context}: no report stored, none answered as recorded`);
        } else {
          wins.report++;
          await assertReportWon(user, row.id, context);
          assert.ok(reports.every((r) => r.status === 'fulfilled'), `${context}: the report answered`);
          assert.equal(smsFirst, false, `${context}: an SMS at the upstream before the report always wins`);
        }
        const [count] = await rows<{ n: number }>(db(), sql`SELECT count(*)::int AS n FROM number_reports WHERE verification_id = ${row.id}`);
        assert.ok(Number(count!.n) <= 1, `${context}: one report at most`);
        await invariants(context);
      }
      assert.equal(wins.sms + wins.report, rounds);
      t.diagnostic(`seed ${seed}: the SMS won ${wins.sms}, the report ${wins.report}`);
    });
  });
}
