import { sql } from 'drizzle-orm';
import { rows, type Executor } from '../db/database.ts';
import { check } from './invariants.ts';
import type { Check } from './reports.ts';

/**
 * Top-ups against the ledger (docs/payments.md), as read-only, set-based checks for `diagnose` and
 * the findings `reconcile` acts on. The ledger's keys make a double credit impossible; these checks
 * prove on a live database that the top-ups' record and the ledger's money agree.
 */

/**
 * Ledger credits and top-ups, both ways: a top-up marked credited has its one credit transfer (its
 * key, its amount, into its owner's wallet), and every top-up credit in the ledger belongs to a
 * top-up marked credited. Missing credit, double credit and amount mismatch all land here.
 */
export const TOP_UP_CREDIT_OFFENDERS = sql`
  SELECT 'top-up ' || tu.id::text || ' credited ' || tu.credited_minor || ' but its transfer is '
         || coalesce(t.kind || ' of ' || t.amount_minor, 'missing') AS what, tu.id AS top_up_id, 'mismatch' AS problem
  FROM top_ups tu
  LEFT JOIN ledger_transfers t ON t.id = tu.credit_transfer_id
  LEFT JOIN ledger_accounts a ON a.user_id = tu.user_id
  WHERE tu.status = 'credited'
    AND (t.id IS NULL OR t.kind <> 'topup' OR t.amount_minor <> tu.credited_minor OR t.credit_account_id <> a.id
         OR t.idempotency_key IS DISTINCT FROM 'top-up:' || tu.id::text)
  UNION ALL
  SELECT 'transfer ' || t.id::text || ' credits top-up ' || substr(t.idempotency_key, 8) || ' which is ' || coalesce(tu.status, 'missing'),
         tu.id, 'unrecorded'
  FROM ledger_transfers t
  LEFT JOIN top_ups tu ON tu.id::text = substr(t.idempotency_key, 8)
  WHERE t.idempotency_key LIKE 'top-up:%' AND (tu.id IS NULL OR tu.status <> 'credited')`;

function topUpCreditsMatchLedger(ex: Executor): Promise<Check> {
  return check(
    ex,
    'top_up_credits_match_ledger',
    sql`SELECT what FROM (${TOP_UP_CREDIT_OFFENDERS}) o`,
    'top-ups and ledger credits out of step',
    'every credited top-up has exactly its one ledger credit, and every top-up credit its top-up',
  );
}

/**
 * What a reversal says it collected is what the ledger took back under its keys
 * (`top-up-reversal:<reversal id>:<collected before>`), and every such transfer names a reversal.
 * One pass over the transfers, grouped by reversal, whatever the number of reversals.
 */
function receivablesMatchLedger(ex: Executor): Promise<Check> {
  return check(
    ex,
    'receivables_match_ledger',
    sql`WITH collected AS (
          SELECT split_part(idempotency_key, ':', 2) AS reversal_id, sum(amount_minor) AS taken
          FROM ledger_transfers WHERE idempotency_key LIKE 'top-up-reversal:%' GROUP BY 1
        )
        SELECT 'reversal ' || r.id::text || ' collected ' || r.collected_minor || ' ledger ' || coalesce(c.taken, 0) AS what
        FROM top_up_reversals r LEFT JOIN collected c ON c.reversal_id = r.id::text
        WHERE r.collected_minor <> coalesce(c.taken, 0)
        UNION ALL
        SELECT 'transfers of ' || c.taken || ' name reversal ' || c.reversal_id || ', which does not exist'
        FROM collected c LEFT JOIN top_up_reversals r ON r.id::text = c.reversal_id
        WHERE r.id IS NULL`,
    'reversals whose collections differ from the ledger',
    'every collected receivable is in the ledger',
  );
}

export async function checkTopUpInvariants(ex: Executor): Promise<Check[]> {
  return [await topUpCreditsMatchLedger(ex), await receivablesMatchLedger(ex)];
}

export interface TopUpFacts {
  pending: number;
  overdue: number;
  in_review: number;
  unknown_payments: number;
  receivables: { customers: number; amount_minor: number };
}

/** Facts for the operator (never failing diagnose): checkouts still open, payments to review, money owed. */
export async function topUpFacts(ex: Executor, overdueBefore: Date): Promise<TopUpFacts> {
  const [counts] = await rows<{ pending: number; overdue: number; in_review: number; unknown_payments: number; customers: number; owed: string }>(
    ex,
    sql`SELECT (SELECT count(*) FROM top_ups WHERE status = 'pending')::int AS pending,
               (SELECT count(*) FROM top_ups WHERE status = 'pending' AND created_at < ${overdueBefore})::int AS overdue,
               (SELECT count(*) FROM top_ups WHERE status = 'review')::int AS in_review,
               (SELECT count(*) FROM payment_events WHERE outcome = 'unknown_top_up')::int AS unknown_payments,
               (SELECT count(DISTINCT r.user_id) FROM top_up_reversals r JOIN top_ups tu ON tu.id = r.top_up_id
                 WHERE tu.status = 'credited' AND r.collected_minor < r.amount_minor)::int AS customers,
               (SELECT coalesce(sum(r.amount_minor - r.collected_minor), 0) FROM top_up_reversals r JOIN top_ups tu ON tu.id = r.top_up_id
                 WHERE tu.status = 'credited')::text AS owed`,
  );
  return {
    pending: Number(counts?.pending ?? 0),
    overdue: Number(counts?.overdue ?? 0),
    in_review: Number(counts?.in_review ?? 0),
    unknown_payments: Number(counts?.unknown_payments ?? 0),
    receivables: { customers: Number(counts?.customers ?? 0), amount_minor: Number(counts?.owed ?? 0) },
  };
}
