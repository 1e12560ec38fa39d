import assert from 'node:assert/strict';
import { sql, type SQL } from 'drizzle-orm';
import { firstRow, rows, type Executor } from '../../src/db/database.ts';

/**
 * The verification lifecycle's money rules as set-based SQL, one statement per rule, so each reads
 * one snapshot however many verifications exist. A rule is broken by the rows its query returns.
 *
 *   - every verification's hold is its own: its amount is the price, on the customer's wallet;
 *   - received  ↔ hold posted, with exactly one charge of exactly the price;
 *   - cancelled ↔ hold voided, failed ↔ hold voided, expired ↔ hold expired (no charge);
 *   - pending / waiting ↔ hold unresolved;
 *   - every hold belongs to a verification;
 *   - the journal sums to zero, cached posted and held balances equal the journal and the open holds,
 *     no wallet's available balance is negative;
 *   - messages: a received verification has an on-time message; a message on a cancelled, expired or
 *     failed verification is late; an on-time message only exists on a received verification;
 *   - a received verification's first message arrived by its deadline (late SMS are never charged);
 *   - the audit trail starts at pending and ends at the current state.
 */
export interface LifecycleViolation {
  rule: string;
  count: number;
  sample: string;
}

const SAMPLE = sql.raw('5');

async function violations(ex: Executor, rule: string, query: SQL): Promise<LifecycleViolation | undefined> {
  const row = await firstRow<{ count: number | string; sample: string | null }>(ex, query);
  const count = Number(row?.count ?? 0);
  return count === 0 ? undefined : { rule, count, sample: row?.sample ?? '' };
}

export async function lifecycleViolations(ex: Executor): Promise<LifecycleViolation[]> {
  const checks = await Promise.all([
    violations(
      ex,
      'hold matches the verification state',
      sql`WITH charges AS (
            SELECT hold_id, count(*)::int AS n, sum(amount_minor) AS total
            FROM ledger_transfers WHERE hold_id IS NOT NULL GROUP BY hold_id
          ), bad AS (
            SELECT v.id, v.state, r.outcome, coalesce(c.n, 0) AS n
            FROM verifications v
            LEFT JOIN ledger_holds h ON h.id = v.hold_id
            LEFT JOIN ledger_accounts a ON a.id = h.account_id
            LEFT JOIN ledger_hold_resolutions r ON r.hold_id = h.id
            LEFT JOIN charges c ON c.hold_id = h.id
            WHERE (
              -- A free additional code (price 0) holds nothing; every other verification holds its price.
              (v.hold_id IS NULL AND v.price_minor = 0 AND v.parent_id IS NOT NULL) OR
              h.id IS NOT NULL AND h.amount_minor = v.price_minor AND h.verification_id = v.id AND a.user_id = v.user_id
              AND CASE v.state
                WHEN 'received' THEN r.outcome = 'posted' AND coalesce(c.n, 0) = 1 AND c.total = v.price_minor
                WHEN 'cancelled' THEN r.outcome = 'voided' AND coalesce(c.n, 0) = 0
                WHEN 'failed' THEN r.outcome = 'voided' AND coalesce(c.n, 0) = 0
                WHEN 'expired' THEN r.outcome = 'expired' AND coalesce(c.n, 0) = 0
                ELSE r.outcome IS NULL AND coalesce(c.n, 0) = 0
              END
            ) IS NOT TRUE
          )
          SELECT count(*)::int AS count,
                 array_to_string((array_agg(id::text || ' ' || state || '/' || coalesce(outcome, 'unresolved') || '/charges=' || n ORDER BY id))[1:${SAMPLE}], '; ') AS sample
          FROM bad`,
    ),
    violations(
      ex,
      'every hold belongs to a verification',
      sql`SELECT count(*)::int AS count, array_to_string((array_agg(h.id::text ORDER BY h.id))[1:${SAMPLE}], '; ') AS sample
          FROM ledger_holds h LEFT JOIN verifications v ON v.hold_id = h.id WHERE v.id IS NULL`,
    ),
    violations(
      ex,
      'posted balances sum to zero',
      sql`SELECT CASE WHEN coalesce(sum(posted_minor), 0) = 0 THEN 0 ELSE 1 END AS count,
                 'sum = ' || coalesce(sum(posted_minor), 0)::text AS sample
          FROM ledger_accounts`,
    ),
    violations(
      ex,
      'cached posted balance equals the journal',
      sql`WITH journal AS (
            SELECT account_id, sum(delta) AS net FROM (
              SELECT credit_account_id AS account_id, amount_minor AS delta FROM ledger_transfers
              UNION ALL SELECT debit_account_id, -amount_minor FROM ledger_transfers
            ) m GROUP BY account_id
          ), bad AS (
            SELECT a.id, a.posted_minor, coalesce(j.net, 0) AS net FROM ledger_accounts a LEFT JOIN journal j ON j.account_id = a.id
            WHERE a.posted_minor <> coalesce(j.net, 0)
          )
          SELECT count(*)::int AS count,
                 array_to_string((array_agg(id::text || ' cached ' || posted_minor || ' journal ' || net ORDER BY id))[1:${SAMPLE}], '; ') AS sample
          FROM bad`,
    ),
    violations(
      ex,
      'cached held balance equals the unresolved holds',
      sql`WITH open AS (
            SELECT h.account_id, sum(h.amount_minor) AS held FROM ledger_holds h
            LEFT JOIN ledger_hold_resolutions r ON r.hold_id = h.id WHERE r.hold_id IS NULL GROUP BY h.account_id
          ), bad AS (
            SELECT a.id, a.held_minor, coalesce(o.held, 0) AS held FROM ledger_accounts a LEFT JOIN open o ON o.account_id = a.id
            WHERE a.held_minor <> coalesce(o.held, 0)
          )
          SELECT count(*)::int AS count,
                 array_to_string((array_agg(id::text || ' cached ' || held_minor || ' open holds ' || held ORDER BY id))[1:${SAMPLE}], '; ') AS sample
          FROM bad`,
    ),
    violations(
      ex,
      'no wallet has a negative available balance',
      sql`SELECT count(*)::int AS count, array_to_string((array_agg(id::text ORDER BY id))[1:${SAMPLE}], '; ') AS sample
          FROM ledger_accounts WHERE kind = 'wallet' AND posted_minor - held_minor < 0`,
    ),
    violations(
      ex,
      'messages are late exactly when the verification was refunded',
      sql`SELECT count(*)::int AS count,
                 array_to_string((array_agg(v.id::text || ' ' || v.state || ' late=' || m.late ORDER BY v.id))[1:${SAMPLE}], '; ') AS sample
          FROM verification_messages m JOIN verifications v ON v.id = m.verification_id
          WHERE (m.late AND v.state NOT IN ('cancelled', 'expired', 'failed')) OR (NOT m.late AND v.state <> 'received')`,
    ),
    violations(
      ex,
      'a received verification has its message',
      sql`SELECT count(*)::int AS count, array_to_string((array_agg(v.id::text ORDER BY v.id))[1:${SAMPLE}], '; ') AS sample
          FROM verifications v
          WHERE v.state = 'received'
            AND NOT EXISTS (SELECT 1 FROM verification_messages m WHERE m.verification_id = v.id AND NOT m.late)`,
    ),
    violations(
      ex,
      'a charge is for a code that arrived by the deadline',
      sql`SELECT count(*)::int AS count, array_to_string((array_agg(v.id::text ORDER BY v.id))[1:${SAMPLE}], '; ') AS sample
          FROM verifications v
          WHERE v.state = 'received'
            AND (SELECT min(m.received_at) FROM verification_messages m WHERE m.verification_id = v.id) > v.expires_at`,
    ),
    violations(
      ex,
      'the audit trail starts at pending and ends at the current state',
      sql`WITH trail AS (
            SELECT verification_id,
                   (array_agg(to_state ORDER BY id))[1] AS first_state,
                   (array_agg(from_state ORDER BY id))[1] AS first_from,
                   (array_agg(to_state ORDER BY id DESC))[1] AS last_state
            FROM verification_events GROUP BY verification_id
          ), bad AS (
            SELECT v.id, v.state, t.first_state, t.last_state FROM verifications v LEFT JOIN trail t ON t.verification_id = v.id
            WHERE (t.first_state = 'pending' AND t.first_from IS NULL AND t.last_state = v.state) IS NOT TRUE
          )
          SELECT count(*)::int AS count,
                 array_to_string((array_agg(id::text || ' ' || state || ' trail ' || coalesce(first_state, '-') || '..' || coalesce(last_state, '-') ORDER BY id))[1:${SAMPLE}], '; ') AS sample
          FROM bad`,
    ),
    violations(
      ex,
      'a received verification was captured once (one charge notice)',
      sql`SELECT count(*)::int AS count, array_to_string((array_agg(v.id::text ORDER BY v.id))[1:${SAMPLE}], '; ') AS sample
          FROM verifications v
          WHERE (v.state = 'received') <> EXISTS (SELECT 1 FROM notifications n WHERE n.verification_id = v.id AND n.kind = 'code_received')`,
    ),
  ]);
  return checks.filter((c): c is LifecycleViolation => c !== undefined);
}

/** Asserts every lifecycle money rule holds; the message names each broken rule with a sample. */
export async function assertLifecycleConsistent(ex: Executor, context = ''): Promise<void> {
  const found = await lifecycleViolations(ex);
  assert.deepEqual(
    found.map((v) => `${v.rule}: ${v.count} (${v.sample})`),
    [],
    `lifecycle invariants violated${context ? ` (${context})` : ''}`,
  );
}

/** The money facts of one verification, for exact comparisons between runs. */
export interface VerificationMoney {
  state: string;
  holdOutcome: string | null;
  charges: number;
  chargedMinor: number;
  upstreamStatus: string;
  messages: number;
  lateMessages: number;
}

export async function verificationMoney(ex: Executor, id: string): Promise<VerificationMoney> {
  const [row] = await rows<{
    state: string;
    outcome: string | null;
    charges: number;
    charged: string;
    upstream_status: string;
    messages: number;
    late: number;
  }>(
    ex,
    sql`SELECT v.state, r.outcome, v.upstream_status,
               (SELECT count(*)::int FROM ledger_transfers t WHERE t.hold_id = v.hold_id) AS charges,
               (SELECT coalesce(sum(amount_minor), 0)::text FROM ledger_transfers t WHERE t.hold_id = v.hold_id) AS charged,
               (SELECT count(*)::int FROM verification_messages m WHERE m.verification_id = v.id) AS messages,
               (SELECT count(*)::int FROM verification_messages m WHERE m.verification_id = v.id AND m.late) AS late
        FROM verifications v LEFT JOIN ledger_hold_resolutions r ON r.hold_id = v.hold_id
        WHERE v.id = ${id}`,
  );
  assert.ok(row, `verification ${id} exists`);
  return {
    state: row.state,
    holdOutcome: row.outcome,
    charges: Number(row.charges),
    chargedMinor: Number(row.charged),
    upstreamStatus: row.upstream_status,
    messages: Number(row.messages),
    lateMessages: Number(row.late),
  };
}

/** How many verifications and holds a customer has (for "nothing was stored"). */
export async function storedFor(ex: Executor, userId: string): Promise<{ verifications: number; holds: number }> {
  const row = await firstRow<{ verifications: number; holds: number }>(
    ex,
    sql`SELECT (SELECT count(*)::int FROM verifications WHERE user_id = ${userId}) AS verifications,
               (SELECT count(*)::int FROM ledger_holds h JOIN ledger_accounts a ON a.id = h.account_id WHERE a.user_id = ${userId}) AS holds`,
  );
  return { verifications: Number(row?.verifications ?? 0), holds: Number(row?.holds ?? 0) };
}
