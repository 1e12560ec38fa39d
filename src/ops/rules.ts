import { sql, type SQL } from 'drizzle-orm';

/**
 * When a verification is a money problem, written once: `diagnose` counts these, `reconcile` finds
 * and repairs them, and the metrics and /health report them. Each rule is a SQL condition over
 * `v` (a row of verifications) and `o` (its hold's row in ledger_hold_outcomes, the ledger's view
 * of how each hold ended).
 */

/** A hold may outlive its deadline by this much before it counts as stuck (the sweeper's promise). */
export const DEADLINE_GRACE_SECONDS = 60;
/** A pending purchase not in flight for this long counts as stuck. */
export const PENDING_STUCK_AFTER_SECONDS = 300;

/** An upstream alarm fails its diagnose check for this long after it was raised. */
export const UPSTREAM_ALARM_WINDOW_HOURS = 24;

/** The verification states whose hold is still unresolved by design. */
const ACTIVE = sql`v.state IN ('pending', 'waiting')`;

export interface ProblemRules {
  /** Active, yet its hold is already resolved: no transition can resolve it again. */
  activeHoldResolved: SQL;
  /** Still pending or waiting more than the grace past its deadline. */
  pastDeadline: SQL;
  /** Pending, the purchase call no longer in flight, for longer than PENDING_STUCK_AFTER_SECONDS. */
  pendingStuck: SQL;
  /** Terminal, yet its hold was never resolved. */
  terminalHoldUnresolved: SQL;
  /** Delivered (received), yet its hold was released: the customer got the code for free. */
  receivedReleased: SQL;
  /** Ended without delivery, yet its hold was captured and no correction gave the charge back. */
  wronglyCaptured: SQL;
  /**
   * Received, but its first message arrived after its deadline (a late SMS captured the hold), and
   * no correction gave the charge back: only an SMS that arrived by the deadline is ever charged.
   */
  capturedAfterDeadline: SQL;
  /** Ended and released for the customer, but still owed a cancel upstream. */
  upstreamCancelOwed: SQL;
  /** Failed while its purchase's outcome was unknown: an upstream order may exist. */
  orphanSuspected: SQL;
  /** Given an order id the upstream had already given another verification, in the alarm window. */
  orderIdReused: SQL;
  /** Said completed (or received) upstream while we saw no SMS for it, in the alarm window. */
  completedWithoutSms: SQL;
}

export function problemRules(now: Date): ProblemRules {
  const graceNow = new Date(now.getTime() - DEADLINE_GRACE_SECONDS * 1000);
  const stuckBefore = new Date(now.getTime() - PENDING_STUCK_AFTER_SECONDS * 1000);
  const alarmSince = new Date(now.getTime() - UPSTREAM_ALARM_WINDOW_HOURS * 3_600_000);
  return {
    activeHoldResolved: sql`(${ACTIVE} AND o.outcome IS NOT NULL)`,
    pastDeadline: sql`(${ACTIVE} AND v.expires_at < ${graceNow})`,
    pendingStuck: sql`(v.state = 'pending' AND (v.purchase_until IS NULL OR v.purchase_until < ${now}) AND v.created_at < ${stuckBefore})`,
    // A free additional code (price 0) has no hold to resolve.
    terminalHoldUnresolved: sql`(NOT ${ACTIVE} AND v.hold_id IS NOT NULL AND o.outcome IS NULL)`,
    receivedReleased: sql`(v.state = 'received' AND o.outcome IN ('voided', 'expired'))`,
    wronglyCaptured: sql`(v.state IN ('cancelled', 'expired', 'failed') AND o.outcome = 'posted' AND o.correction_id IS NULL)`,
    // A message is stored with its arrival no later than its capture, so only a capture after the
    // deadline can be for a late SMS: that cheap test spares the look at the messages of the rest.
    capturedAfterDeadline: sql`(v.state = 'received' AND v.resolved_at > v.expires_at AND o.outcome = 'posted' AND o.correction_id IS NULL
      AND (SELECT min(m.received_at) FROM verification_messages m WHERE m.verification_id = v.id) > v.expires_at)`,
    upstreamCancelOwed: sql`(v.upstream_status = 'cancel_owed')`,
    orphanSuspected: sql`(v.upstream_status = 'orphan_suspected')`,
    orderIdReused: sql`(v.upstream_alarm = 'order_id_reused' AND v.upstream_alarm_at >= ${alarmSince})`,
    completedWithoutSms: sql`(v.upstream_alarm = 'completed_without_sms' AND v.upstream_alarm_at >= ${alarmSince})`,
  };
}

/** Unresolved holds that no verification refers to (their purchase never became one), over `o`. */
export const ORPHAN_HOLD = sql`(o.outcome IS NULL AND NOT EXISTS (SELECT 1 FROM verifications v WHERE v.hold_id = o.hold_id))`;
