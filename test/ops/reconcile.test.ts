import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { firstRow, rows } from '../../src/db/database.ts';
import { diagnose } from '../../src/ops/diagnose.ts';
import { reconcile, reportOnlyKinds } from '../../src/ops/reconcile.ts';
import type { DiagnoseReport, Finding, ReconcileReport } from '../../src/ops/reports.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { injectEveryProblem, ListingProvider, snapshot } from './support.ts';

function failing(report: DiagnoseReport): string[] {
  return report.checks.filter((c) => !c.ok).map((c) => c.name).sort();
}

function check(report: DiagnoseReport, name: string) {
  const found = report.checks.find((c) => c.name === name);
  assert.ok(found, `diagnose has a check named ${name}`);
  return found;
}

function idsOf(report: ReconcileReport, kind: Finding['kind']): string[] {
  return report.found
    .filter((f) => f.kind === kind)
    .map((f) => f.verification_id ?? '')
    .sort();
}

const diag = (h: LifecycleHarness) => diagnose({ database: h.t.database, clock: h.clock, config: h.config, breaker: h.runtime.breaker });

for (const engine of engines) {
  describe(`ops: diagnose and reconcile [${engine}]`, () => {
    test('an empty, healthy database: diagnose is ok, reconcile finds nothing', async () => {
      const h = await lifecycleHarness(engine, { provider: new ListingProvider() });
      try {
        const report = await diag(h);
        assert.equal(report.ok, true, JSON.stringify(report.checks));
        assert.ok(report.checks.length >= 13);
        assert.deepEqual(report.states, { pending: 0, waiting: 0, received: 0, cancelled: 0, expired: 0, failed: 0 });
        assert.equal(report.last_24h.purchases, 0);
        assert.equal(report.last_24h.success_rate, null);
        assert.deepEqual(report.breakers, { sandbox: 'closed' });
        assert.deepEqual(report.engine, { lag_seconds: 0, workers: [] });
        assert.equal(report.late_sms, 0);
        assert.deepEqual(report.upstream_settlement_owed, { count: 0, amount_minor: 0, orphans_suspected: 0 });
        const run = await reconcile(h.deps, { days: 30, execute: true });
        assert.deepEqual(run.found, []);
        assert.equal(run.remaining, 0);

        // The window: a problem 40 days old is outside --days 30 and inside --days 60.
        const { purchaseVerification } = await import('../../src/verifications/purchase.ts');
        const old = (await purchaseVerification(h.deps, { userId: await h.customer(100), idempotencyKey: 'old', service: 'test_timeout' })).row;
        const longAgo = new Date(h.clock.now().getTime() - 40 * 86_400_000);
        await h.t.database.db.execute(sql`UPDATE verifications SET created_at = ${longAgo}, expires_at = ${longAgo} WHERE id = ${old.id}`);
        assert.deepEqual((await reconcile(h.deps, { days: 30, execute: false })).found, []);
        assert.deepEqual(
          (await reconcile(h.deps, { days: 60, execute: false })).found.map((f) => [f.kind, f.verification_id]),
          [['hold_past_deadline', old.id]],
        );
      } finally {
        await h.dispose();
      }
    });

    test('one of each problem: named by diagnose, listed by a dry run that changes nothing, repaired once by execute', async () => {
      const provider = new ListingProvider();
      // Three purchases are made ambiguous on purpose; they must not open the breaker.
      const h = await lifecycleHarness(engine, { provider, env: { BREAKER_FAILURE_THRESHOLD: '100' } });
      try {
        const p = await injectEveryProblem(h, provider);
        const ex = h.t.database.db;

        // diagnose names every problem
        const before = await diag(h);
        assert.equal(before.ok, false);
        assert.deepEqual(failing(before), [
          'active_holds_unresolved',
          'no_hold_past_deadline',
          'no_orphan_holds',
          'no_pending_stuck',
          'no_received_refunded',
          'terminal_holds_resolved',
          'terminal_holds_resolved_correctly',
        ]);
        assert.match(check(before, 'no_hold_past_deadline').detail, new RegExp(p.stuckWaiting));
        assert.match(check(before, 'no_hold_past_deadline').detail, new RegExp(p.stuckPendingPastDeadline));
        assert.match(check(before, 'no_pending_stuck').detail, new RegExp(p.pendingStuck));
        assert.equal(check(before, 'terminal_holds_resolved').count, 2);
        assert.match(check(before, 'terminal_holds_resolved_correctly').detail, new RegExp(p.wronglyCaptured));
        assert.match(check(before, 'no_received_refunded').detail, new RegExp(p.receivedRefunded));
        assert.match(check(before, 'active_holds_unresolved').detail, new RegExp(p.activeHoldResolved));
        assert.match(check(before, 'no_orphan_holds').detail, new RegExp(p.orphanHold));
        assert.deepEqual(before.upstream_settlement_owed, { count: 1, amount_minor: 25, orphans_suspected: 1 });

        // a dry run lists them all and changes nothing
        const state0 = await snapshot(ex);
        const dry = await reconcile(h.deps, { days: 30, execute: false });
        assert.deepEqual(await snapshot(ex), state0, 'a dry run changes nothing');
        assert.deepEqual(idsOf(dry, 'hold_past_deadline'), [p.stuckWaiting, p.stuckPendingPastDeadline].sort());
        assert.deepEqual(idsOf(dry, 'pending_stuck'), [p.pendingStuck]);
        assert.deepEqual(idsOf(dry, 'terminal_hold_unresolved'), [p.terminalUnresolved, p.receivedUnresolved].sort());
        assert.deepEqual(idsOf(dry, 'wrongly_captured'), [p.wronglyCaptured]);
        assert.deepEqual(idsOf(dry, 'received_refunded'), [p.receivedRefunded]);
        assert.deepEqual(idsOf(dry, 'upstream_cancel_owed'), [p.cancelOwed]);
        assert.deepEqual(idsOf(dry, 'orphan_suspected'), [p.orphanSuspected]);
        assert.deepEqual(idsOf(dry, 'active_hold_resolved'), [p.activeHoldResolved]);
        assert.equal(dry.summary.orphan_hold, 1);
        assert.match(dry.found.find((f) => f.kind === 'orphan_hold')!.detail, new RegExp(p.orphanHold));
        assert.equal(dry.summary.upstream_orphan, 1);
        assert.match(dry.found.find((f) => f.kind === 'upstream_orphan')!.detail, new RegExp(p.upstreamOrphanOrder));
        assert.equal(dry.found.length, 12);
        assert.equal(dry.remaining, 12);
        assert.ok(dry.found.every((f) => !f.repaired));
        assert.ok(!dry.found.some((f) => f.verification_id === p.delivered), 'a healthy verification is not a problem');
        assert.equal(dry.found.find((f) => f.kind === 'wrongly_captured')!.amount_minor, 50);

        // --user narrows to one customer (and leaves the provider's orders out)
        const email = (await firstRow<{ email: string }>(ex, sql`SELECT email FROM users WHERE id = ${p.users.stuckWaiting}`))!.email;
        const mine = await reconcile(h.deps, { days: 30, execute: false, userEmail: email.toUpperCase() });
        assert.deepEqual(
          mine.found.map((f) => [f.kind, f.verification_id, f.user_email]),
          [['hold_past_deadline', p.stuckWaiting, email]],
        );

        // execute repairs everything repairable, through the settlement code
        const progress: [number, number][] = [];
        const run = await reconcile(h.deps, { days: 30, execute: true, onProgress: (d, t) => progress.push([d, t]) });
        for (const f of run.found) assert.equal(f.repaired, !reportOnlyKinds.has(f.kind), `${f.kind} ${f.verification_id}: ${f.detail}`);
        assert.equal(run.found.length, 12);
        assert.equal(run.repaired, 10);
        assert.equal(run.remaining, 2, 'the report-only problems remain');
        assert.deepEqual(progress.at(-1), [12, 12]);

        const state = async (id: string) => (await loadVerification(ex, id))!;
        assert.equal((await state(p.stuckWaiting)).state, 'expired');
        assert.equal((await state(p.stuckPendingPastDeadline)).state, 'failed');
        assert.equal((await state(p.pendingStuck)).state, 'failed');
        assert.equal((await state(p.cancelOwed)).upstreamStatus, 'cancelled');
        const suspect = await state(p.orphanSuspected);
        assert.equal(suspect.upstreamStatus, 'cancelled');
        assert.equal(suspect.providerOrderId, `ord-${p.orphanSuspected}`);
        assert.equal(provider.active.size, 0, 'the upstream orphan was cancelled');

        // money: every refund is exact, the delivered verifications keep their charge
        for (const name of [
          'stuckWaiting',
          'stuckPendingPastDeadline',
          'pendingStuck',
          'terminalUnresolved',
          'wronglyCaptured',
          'cancelOwed',
          'orphanSuspected',
          'orphanHold',
          'activeHoldResolved',
          'receivedRefunded',
        ]) {
          assert.deepEqual(await h.wallet(p.users[name]!), [1000, 0, 1000], name);
        }
        assert.deepEqual(await h.wallet(p.users.receivedUnresolved!), [950, 0, 950], 'a delivered code captures its hold');
        assert.deepEqual(await h.wallet(p.users.delivered!), [950, 0, 950], 'a delivered verification is never refunded');
        const corrections = await rows<{ amount_minor: number; verification_id: string }>(
          ex,
          sql`SELECT amount_minor, verification_id FROM ledger_transfers WHERE idempotency_key LIKE 'charge-refund:%'`,
        );
        assert.deepEqual(corrections.map((c) => [Number(c.amount_minor), c.verification_id]), [[50, p.wronglyCaptured]]);

        // each repair is audited as the reconciler
        const audited = await rows<{ verification_id: string }>(
          ex,
          sql`SELECT DISTINCT verification_id FROM verification_events WHERE actor = 'reconciler' ORDER BY verification_id`,
        );
        assert.deepEqual(
          audited.map((a) => a.verification_id),
          [p.stuckWaiting, p.stuckPendingPastDeadline, p.pendingStuck, p.terminalUnresolved, p.receivedUnresolved, p.wronglyCaptured, p.cancelOwed, p.orphanSuspected].sort(),
        );
        const auditLog = await rows<{ action: string }>(ex, sql`SELECT action FROM audit_log WHERE detail->>'by' = 'reconciler' ORDER BY action`);
        assert.deepEqual(auditLog.map((a) => a.action), ['reconcile.orphan_hold_release', 'reconcile.upstream_orphan_cancel']);

        // a second run repairs nothing and changes nothing
        const state1 = await snapshot(ex);
        const again = await reconcile(h.deps, { days: 30, execute: true });
        assert.deepEqual(await snapshot(ex), state1, 'a second run changes nothing');
        assert.deepEqual(again.found.map((f) => f.kind).sort(), ['active_hold_resolved', 'received_refunded']);
        assert.equal(again.repaired, 0);

        // diagnose now only names what needs a human
        const after = await diag(h);
        assert.deepEqual(failing(after), ['active_holds_unresolved', 'no_received_refunded']);
        assert.deepEqual(after.upstream_settlement_owed, { count: 0, amount_minor: 0, orphans_suspected: 0 });
      } finally {
        await h.dispose();
      }
    });

    test('a charge for an SMS that arrived after the deadline: diagnose names it, reconcile refunds it once, audited', async () => {
      const h = await lifecycleHarness(engine, { provider: new ListingProvider() });
      try {
        const ex = h.t.database.db;
        const user = await h.customer(1000);
        const { purchaseVerification } = await import('../../src/verifications/purchase.ts');
        const { recordMessages } = await import('../../src/verifications/lifecycle.ts');
        const row = (await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'late-charge', service: 'test_timeout' })).row;
        const onTime = (await purchaseVerification(h.deps, { userId: user, idempotencyKey: 'on-time', service: 'test_timeout' })).row;
        for (const r of [row, onTime]) {
          const sms = { providerMessageId: `${r.id}#1`, text: 'Your code is 424242', code: '424242', receivedAt: h.clock.now() };
          assert.equal((await recordMessages(h.deps, r.id, [sms], 'poller'))?.captured, true);
        }
        // What a late engine did before the rule: the first message came after the deadline, yet it was charged.
        const late = new Date(row.expiresAt.getTime() + 5_000);
        await ex.execute(sql`UPDATE verification_messages SET received_at = ${late} WHERE verification_id = ${row.id}`);
        await ex.execute(sql`UPDATE verifications SET resolved_at = ${late} WHERE id = ${row.id}`);
        assert.deepEqual(await h.wallet(user), [900, 0, 900]);

        const before = await diag(h);
        assert.deepEqual(failing(before), ['no_charge_after_deadline']);
        assert.equal(check(before, 'no_charge_after_deadline').count, 1);
        assert.match(check(before, 'no_charge_after_deadline').detail, new RegExp(row.id));

        const dry = await reconcile(h.deps, { days: 30, execute: false });
        assert.deepEqual(dry.found.map((f) => [f.kind, f.verification_id, f.amount_minor, f.repaired]), [['captured_after_deadline', row.id, 50, false]]);
        assert.deepEqual(await h.wallet(user), [900, 0, 900], 'a dry run changes nothing');

        const run = await reconcile(h.deps, { days: 30, execute: true });
        assert.deepEqual(run.found.map((f) => [f.kind, f.repaired]), [['captured_after_deadline', true]]);
        assert.equal(run.remaining, 0);
        assert.deepEqual(await h.wallet(user), [950, 0, 950], 'exactly the late charge is given back; the on-time one stays');
        const corrections = await rows<{ amount_minor: number; verification_id: string; actor: string }>(
          ex,
          sql`SELECT amount_minor, verification_id, actor FROM ledger_transfers WHERE idempotency_key LIKE 'charge-refund:%'`,
        );
        assert.deepEqual(corrections.map((c) => [Number(c.amount_minor), c.verification_id, c.actor]), [[50, row.id, 'reconciler']]);
        const events = await rows<{ actor: string; reason: string }>(ex, sql`SELECT actor, reason FROM verification_events WHERE verification_id = ${row.id} AND actor = 'reconciler'`);
        assert.equal(events.length, 1);
        assert.match(events[0]!.reason, /after the deadline refunded/);
        assert.equal((await loadVerification(ex, row.id))?.state, 'received', 'the code stays shown');

        const state1 = await snapshot(ex);
        const again = await reconcile(h.deps, { days: 30, execute: true });
        assert.deepEqual(again.found, []);
        assert.equal(again.repaired, 0);
        assert.deepEqual(await snapshot(ex), state1, 'a second run changes nothing');
        assert.equal((await diag(h)).ok, true);
      } finally {
        await h.dispose();
      }
    });

    test('ledger corruption that only a trigger bypass can make is named by diagnose; reconcile never touches it', async () => {
      const h = await lifecycleHarness(engine, { provider: new ListingProvider() });
      try {
        const ex = h.t.database.db;
        const user = await h.customer(1000);
        const priced = await h.customer(1000);
        const { purchaseVerification } = await import('../../src/verifications/purchase.ts');
        const row = (await purchaseVerification(h.deps, { userId: priced, idempotencyKey: 'k', service: 'test_timeout' })).row;
        await ex.execute(sql`UPDATE verifications SET price_minor = 51 WHERE id = ${row.id}`);
        // A cached balance edited behind the journal's back: the balance guard refuses this, so the
        // triggers are bypassed for one transaction.
        await h.t.database.transaction(async (tx) => {
          await tx.execute(sql`SET LOCAL session_replication_role = replica`);
          await tx.execute(sql`UPDATE ledger_accounts SET posted_minor = posted_minor + 7 WHERE user_id = ${user}`);
        });
        const report = await diag(h);
        assert.equal(report.ok, false);
        assert.deepEqual(failing(report), ['journal_balanced', 'one_hold_per_verification', 'posted_matches_journal']);
        assert.match(check(report, 'one_hold_per_verification').detail, new RegExp(row.id));
        const state0 = await snapshot(ex);
        const run = await reconcile(h.deps, { days: 30, execute: true });
        assert.deepEqual(run.found, []);
        assert.deepEqual(await snapshot(ex), state0);
      } finally {
        await h.dispose();
      }
    });
  });
}
