import { sql, type SQL } from 'drizzle-orm';
import { percentileSorted, round } from '../../bench/support/stats.ts';
import { firstRow, rows, type Executor } from '../../src/db/database.ts';
import type { FinalVerification, FinalWallet } from './oracle.ts';

/**
 * The soak's own SQL over the final database, written apart from `diagnose` so that a mistake in
 * one is not repeated in the other. Each rule is one statement (one snapshot) returning the number
 * of rows that break it and a few of their ids:
 *
 *   - journal_sums_to_zero: the posted balances of all accounts add up to 0;
 *   - cached_posted_is_journal: each account's posted_minor is its credits minus its debits;
 *   - cached_held_is_open_holds: each account's held_minor is the sum of its unresolved holds;
 *   - available_not_negative: no wallet's posted − held is below 0;
 *   - one_resolution_per_hold: a finished verification's hold has exactly one resolution, an
 *     active one's none;
 *   - received_iff_posted: a verification is received exactly when its hold was posted;
 *   - charged_exactly_price: a received verification's charges (net of correction refunds) are its
 *     price, anyone else's are 0;
 *   - no_sms_captured_after_deadline: a received verification's first message arrived by its
 *     deadline (the upstream's timestamp, or when the message was first seen);
 *   - wallet_is_credits_minus_captured: each wallet's posted balance is what was credited to it,
 *     minus other debits, minus the prices of its received verifications.
 */
export interface SqlViolation {
  name: string;
  count: number;
  sample: string[];
}

const SAMPLE = sql.raw('5');

/** The query yields one row per offending thing, with an `id` column. */
async function offenders(ex: Executor, name: string, query: SQL): Promise<SqlViolation> {
  const row = await firstRow<{ count: number | string; sample: string[] | null }>(
    ex,
    sql`SELECT count(*)::int AS count, (array_agg(o.id ORDER BY o.id))[1:${SAMPLE}] AS sample FROM (${query}) o`,
  );
  return { name, count: Number(row?.count ?? 0), sample: row?.sample ?? [] };
}

/** Net amount charged per hold: its charge transfers minus any correction refunding them. */
const chargesPerHold = sql`
  SELECT t.hold_id,
         count(*)::int AS charges,
         sum(t.amount_minor) - coalesce(sum(back.amount_minor), 0) AS net_minor
  FROM ledger_transfers t
  LEFT JOIN ledger_transfers back ON back.idempotency_key = 'charge-refund:' || t.id::text
  WHERE t.kind = 'verification_charge'
  GROUP BY t.hold_id`;

export async function sqlViolations(ex: Executor): Promise<SqlViolation[]> {
  return [
    await offenders(
      ex,
      'journal_sums_to_zero',
      sql`SELECT 'all accounts: ' || sum(posted_minor)::text AS id FROM ledger_accounts HAVING coalesce(sum(posted_minor), 0) <> 0`,
    ),
    await offenders(
      ex,
      'cached_posted_is_journal',
      sql`SELECT a.id::text AS id FROM ledger_accounts a
          WHERE a.posted_minor <>
                coalesce((SELECT sum(amount_minor) FROM ledger_transfers WHERE credit_account_id = a.id), 0)
              - coalesce((SELECT sum(amount_minor) FROM ledger_transfers WHERE debit_account_id = a.id), 0)`,
    ),
    await offenders(
      ex,
      'cached_held_is_open_holds',
      sql`SELECT a.id::text AS id FROM ledger_accounts a
          WHERE a.held_minor <> coalesce((
            SELECT sum(h.amount_minor) FROM ledger_holds h
            WHERE h.account_id = a.id AND h.id NOT IN (SELECT hold_id FROM ledger_hold_resolutions)), 0)`,
    ),
    await offenders(
      ex,
      'available_not_negative',
      sql`SELECT id::text AS id FROM ledger_accounts WHERE kind = 'wallet' AND posted_minor < held_minor`,
    ),
    await offenders(
      ex,
      'one_resolution_per_hold',
      sql`SELECT v.id::text AS id FROM verifications v
          WHERE (SELECT count(*) FROM ledger_hold_resolutions r WHERE r.hold_id = v.hold_id)
                <> CASE WHEN v.state IN ('pending', 'waiting') THEN 0 ELSE 1 END`,
    ),
    await offenders(
      ex,
      'received_iff_posted',
      sql`SELECT v.id::text AS id FROM verifications v
          LEFT JOIN ledger_hold_resolutions r ON r.hold_id = v.hold_id
          WHERE (v.state = 'received') <> coalesce(r.outcome = 'posted', false)`,
    ),
    await offenders(
      ex,
      'charged_exactly_price',
      sql`SELECT v.id::text AS id FROM verifications v
          LEFT JOIN (${chargesPerHold}) c ON c.hold_id = v.hold_id
          WHERE coalesce(c.net_minor, 0) <> CASE WHEN v.state = 'received' THEN v.price_minor ELSE 0 END
             OR (v.state = 'received' AND c.charges <> 1)`,
    ),
    await offenders(
      ex,
      'no_sms_captured_after_deadline',
      sql`SELECT v.id::text AS id FROM verifications v
          WHERE v.state = 'received'
            AND coalesce((SELECT min(m.received_at) FROM verification_messages m WHERE m.verification_id = v.id), 'infinity') > v.expires_at`,
    ),
    await offenders(
      ex,
      'wallet_is_credits_minus_captured',
      sql`SELECT a.id::text AS id FROM ledger_accounts a
          WHERE a.kind = 'wallet' AND a.posted_minor <>
                coalesce((SELECT sum(amount_minor) FROM ledger_transfers WHERE credit_account_id = a.id), 0)
              - coalesce((SELECT sum(amount_minor) FROM ledger_transfers WHERE debit_account_id = a.id AND kind <> 'verification_charge'), 0)
              - coalesce((SELECT sum(price_minor) FROM verifications WHERE user_id = a.user_id AND state = 'received'), 0)`,
    ),
  ];
}

/** Every verification as the oracle needs it: its key, state, price, deadline and what its hold became. */
export async function finalVerifications(ex: Executor): Promise<FinalVerification[]> {
  const found = await rows<{
    id: string;
    user_id: string;
    idempotency_key: string;
    service: string;
    state: string;
    price_minor: number;
    expires_at: Date;
    outcome: string | null;
    charged_minor: number | string | null;
    charges: number | null;
  }>(
    ex,
    sql`SELECT v.id::text AS id, v.user_id::text AS user_id, v.idempotency_key, v.service, v.state, v.price_minor, v.expires_at,
               r.outcome, c.net_minor AS charged_minor, c.charges
        FROM verifications v
        LEFT JOIN ledger_hold_resolutions r ON r.hold_id = v.hold_id
        LEFT JOIN (${chargesPerHold}) c ON c.hold_id = v.hold_id`,
  );
  return found.map((r) => ({
    id: r.id,
    userId: r.user_id,
    key: r.idempotency_key,
    service: r.service,
    state: r.state,
    priceMinor: Number(r.price_minor),
    expiresAt: new Date(r.expires_at).getTime(),
    outcome: r.outcome,
    chargedMinor: Number(r.charged_minor ?? 0),
    charges: Number(r.charges ?? 0),
  }));
}

export async function finalWallets(ex: Executor): Promise<FinalWallet[]> {
  const found = await rows<{ user_id: string; posted_minor: number; held_minor: number }>(
    ex,
    sql`SELECT user_id::text AS user_id, posted_minor, held_minor FROM ledger_accounts WHERE kind = 'wallet'`,
  );
  return found.map((w) => ({ userId: w.user_id, postedMinor: Number(w.posted_minor), heldMinor: Number(w.held_minor) }));
}

export interface RefundDelays {
  expired: number;
  p50_seconds: number | null;
  p99_seconds: number | null;
  max_seconds: number | null;
}

function summarise(delays: number[]): RefundDelays {
  const sorted = [...delays].sort((a, b) => a - b);
  const at = (p: number) => (sorted.length === 0 ? null : round(percentileSorted(sorted, p), 2));
  return { expired: sorted.length, p50_seconds: at(50), p99_seconds: at(99), max_seconds: at(100) };
}

/**
 * resolved_at − expires_at of the expired verifications: how long after its deadline each refund
 * came; over all of them, and over those whose deadline fell outside the given windows.
 */
export async function refundDelays(ex: Executor, windows: { from: Date; to: Date }[] = []): Promise<{ all: RefundDelays; outside: RefundDelays }> {
  const found = await rows<{ d: number; expires_at: Date }>(
    ex,
    sql`SELECT extract(epoch FROM resolved_at - expires_at)::float8 AS d, expires_at FROM verifications WHERE state = 'expired'`,
  );
  const inside = (at: Date) => windows.some((w) => at >= w.from && at <= w.to);
  return {
    all: summarise(found.map((r) => Number(r.d))),
    outside: summarise(found.filter((r) => !inside(new Date(r.expires_at))).map((r) => Number(r.d))),
  };
}

/** Verifications by state, and SMS stored as late (after their verification ended). */
export async function finalCounts(ex: Executor): Promise<{ states: Record<string, number>; late_sms: number }> {
  const states = await rows<{ state: string; n: number }>(ex, sql`SELECT state, count(*)::int AS n FROM verifications GROUP BY state ORDER BY state`);
  const late = await firstRow<{ n: number }>(ex, sql`SELECT count(*)::int AS n FROM verification_messages WHERE late`);
  return { states: Object.fromEntries(states.map((s) => [s.state, Number(s.n)])), late_sms: Number(late?.n ?? 0) };
}
