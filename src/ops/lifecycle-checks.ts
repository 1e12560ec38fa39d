import { sql, type SQL } from 'drizzle-orm';
import { firstRow, rows, type Executor } from '../db/database.ts';
import type { Check } from './reports.ts';
import { DEADLINE_GRACE_SECONDS, ORPHAN_HOLD, PENDING_STUCK_AFTER_SECONDS, problemRules, UPSTREAM_ALARM_WINDOW_HOURS } from './rules.ts';

/**
 * The verification lifecycle's invariants as read-only, set-based checks (docs/architecture.md):
 *
 *   - a terminal verification's hold is resolved, and resolved as its state says: received ↔
 *     posted with a charge of exactly price_minor; cancelled/failed ↔ voided; expired ↔ expired
 *     (a charge wrongly captured for a refunded verification counts as put right once a
 *     correction transfer refunded it);
 *   - a delivered (received) verification is never refunded;
 *   - a charge is only ever for a code that arrived by the deadline (a received verification's first
 *     message arrived by its expires_at), unless a correction transfer gave it back;
 *   - an active (pending/waiting) verification's hold is still unresolved;
 *   - no hold outlives its deadline by more than the grace (rules.ts);
 *   - no purchase is stuck: nothing pending, not in flight, for too long;
 *   - each verification has exactly one hold, of its price, on its owner's wallet, naming it;
 *     and no unresolved hold exists without a verification.
 *
 * The verification checks share ONE statement (one pass over the verifications and their holds'
 * outcomes), the orphan-hold check is a second; a failing check reads a few of its ids for its
 * detail. Details name verification and hold ids only.
 */

const SAMPLE = 5;

interface VerificationCheck {
  name: string;
  /** A condition over v (verification), o (its hold's outcome, ledger_hold_outcomes) and a (the owner's wallet). */
  violates: SQL;
  what: string;
  okText: string;
  /** The violation includes a verification whose hold row is missing altogether. */
  missingHold?: boolean;
}

function verificationChecks(now: Date): VerificationCheck[] {
  const rules = problemRules(now);
  return [
    {
      name: 'terminal_holds_resolved',
      violates: rules.terminalHoldUnresolved,
      what: 'terminal verifications whose hold is unresolved',
      okText: "every terminal verification's hold is resolved",
    },
    {
      name: 'terminal_holds_resolved_correctly',
      violates: sql`o.outcome IS NOT NULL AND (
          (v.state = 'received' AND o.outcome = 'posted' AND o.charge_minor IS DISTINCT FROM v.price_minor)
          OR ${rules.wronglyCaptured}
          OR (v.state IN ('cancelled', 'failed') AND o.outcome = 'expired')
          OR (v.state = 'expired' AND o.outcome = 'voided'))`,
      what: 'terminal verifications whose hold was resolved against their state',
      okText: 'received ↔ posted at price, cancelled/failed ↔ voided, expired ↔ expired',
    },
    {
      name: 'no_received_refunded',
      violates: rules.receivedReleased,
      what: 'received verifications whose hold was released (delivered, yet refunded)',
      okText: 'no delivered verification was refunded',
    },
    {
      name: 'no_charge_after_deadline',
      violates: rules.capturedAfterDeadline,
      what: 'received verifications whose first code arrived after their deadline (charged for a late SMS)',
      okText: 'every charged code arrived by its deadline',
    },
    {
      name: 'active_holds_unresolved',
      violates: rules.activeHoldResolved,
      what: 'active verifications whose hold is already resolved',
      okText: "every active verification's hold is unresolved",
    },
    {
      name: 'no_hold_past_deadline',
      violates: rules.pastDeadline,
      what: `verifications still active more than ${DEADLINE_GRACE_SECONDS} s past their deadline`,
      okText: `no hold outlives its deadline by more than ${DEADLINE_GRACE_SECONDS} s`,
    },
    {
      // Past its deadline, a stuck purchase is counted by no_hold_past_deadline instead.
      name: 'no_pending_stuck',
      violates: sql`${rules.pendingStuck} AND NOT ${rules.pastDeadline}`,
      what: `pending purchases not in flight for over ${PENDING_STUCK_AFTER_SECONDS / 60} minutes`,
      okText: 'no pending purchase is stuck',
    },
    {
      // Alarms about a seller, not about money: the customer was not charged. They fail for a day.
      name: 'no_upstream_order_id_reused',
      violates: rules.orderIdReused,
      what: `purchases in the last ${UPSTREAM_ALARM_WINDOW_HOURS} h given an order id the upstream had already given another (failed, not charged; see audit_log upstream.order_id_reused)`,
      okText: `no upstream order id was given twice in the last ${UPSTREAM_ALARM_WINDOW_HOURS} h`,
    },
    {
      name: 'no_upstream_completed_without_sms',
      violates: rules.completedWithoutSms,
      what: `verifications in the last ${UPSTREAM_ALARM_WINDOW_HOURS} h whose order the upstream called completed while no SMS was visible to us`,
      okText: `no order was completed upstream without an SMS visible to us in the last ${UPSTREAM_ALARM_WINDOW_HOURS} h`,
    },
    {
      name: 'one_hold_per_verification',
      // A free additional code holds nothing, and only it may (a CHECK pairs price 0 with no hold).
      violates: sql`(v.hold_id IS NULL AND v.price_minor <> 0) OR (v.hold_id IS NOT NULL AND (o.hold_id IS NULL OR o.amount_minor <> v.price_minor
          OR o.verification_id IS DISTINCT FROM v.id OR o.account_id IS DISTINCT FROM a.id))`,
      what: "verifications whose hold is not exactly one hold of price_minor on the owner's wallet",
      okText: "each verification has one hold of its price on its owner's wallet (a free additional code none)",
      missingHold: true,
    },
  ];
}

function describeViolations(count: number, sample: string[] | null, what: string, okText: string): Omit<Check, 'name'> {
  if (count === 0) return { ok: true, count: 0, detail: okText };
  const more = count > SAMPLE ? `, … (${count - SAMPLE} more)` : '';
  return { ok: false, count, detail: `${count} ${what}: ${(sample ?? []).join(', ')}${more}` };
}

const FROM_VERIFICATIONS = sql`
  FROM verifications v
  LEFT JOIN ledger_hold_outcomes o ON o.hold_id = v.hold_id
  LEFT JOIN ledger_accounts a ON a.user_id = v.user_id`;

// For the few ids of a failing check. Every verification's hold exists (a foreign key), so an inner
// join finds the same rows, and it lets PostgreSQL drop the joins the check does not read: the ids
// cost a walk of an index instead of a pass over the view. The outer form is kept for the one check
// whose violation may be a hold row that is missing.
const SAMPLE_FROM_VERIFICATIONS = sql`
  FROM verifications v
  JOIN ledger_hold_outcomes o ON o.hold_id = v.hold_id
  LEFT JOIN ledger_accounts a ON a.user_id = v.user_id`;

/** Runs the lifecycle invariants; read-only, safe on a live database. */
export async function checkLifecycleInvariants(ex: Executor, now: Date): Promise<Check[]> {
  const checks = verificationChecks(now);
  // Plain counts only, so PostgreSQL can split the pass over parallel workers; the few ids named
  // in a failing check's detail are fetched afterwards, only for a check that failed.
  const counts = await firstRow<Record<string, number>>(
    ex,
    sql`SELECT ${sql.join(
      checks.map((c) => sql`count(*) FILTER (WHERE ${c.violates})::int AS ${sql.raw(c.name)}`),
      sql`, `,
    )} ${FROM_VERIFICATIONS}`,
  );
  const results: Check[] = [];
  for (const c of checks) {
    const count = Number(counts?.[c.name] ?? 0);
    let sample: string[] | null = null;
    if (count > 0) {
      const found = await rows<{ id: string }>(
        ex,
        sql`SELECT v.id::text AS id ${c.missingHold ? FROM_VERIFICATIONS : SAMPLE_FROM_VERIFICATIONS} WHERE ${c.violates}
            ORDER BY v.id LIMIT ${sql.raw(String(SAMPLE))}`,
      );
      sample = found.map((f) => f.id);
    }
    results.push({ name: c.name, ...describeViolations(count, sample, c.what, c.okText) });
  }

  const orphans = await firstRow<{ count: number; sample: string[] | null }>(
    ex,
    sql`SELECT count(*)::int AS count, (array_agg(o.hold_id::text ORDER BY o.hold_id))[1:${sql.raw(String(SAMPLE))}] AS sample
        FROM ledger_hold_outcomes o WHERE ${ORPHAN_HOLD}`,
  );
  results.push({
    name: 'no_orphan_holds',
    ...describeViolations(
      Number(orphans?.count ?? 0),
      orphans?.sample ?? null,
      'unresolved holds that no verification refers to',
      'every unresolved hold belongs to a verification',
    ),
  });
  return results;
}
