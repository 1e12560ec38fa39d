import { sql, type SQL } from 'drizzle-orm';
import { firstRow, type Executor } from '../db/database.ts';
import type { Check } from './reports.ts';

/**
 * The ledger's invariants as read-only, set-based checks, for `diagnose` and the tests.
 *
 * Each check is ONE statement, so on PostgreSQL it reads one consistent snapshot even while money
 * moves (READ COMMITTED gives every statement its own snapshot) and costs one pass over the tables,
 * however many millions of rows they hold. Details name account and hold ids only (never owners,
 * emails or connection settings), at most a few of each.
 */
const SAMPLE = 5;

/**
 * Runs one check: `offenders` is a query with one row per thing that violates the invariant, in a
 * column `what` that describes it (starting with its id). The check is passed when there are none;
 * otherwise its detail names the first few.
 */
export async function check(ex: Executor, name: string, offenders: SQL, what: string, okText: string): Promise<Check> {
  const row = await firstRow<{ count: number | string; sample: string | null }>(
    ex,
    sql`WITH offenders AS (${offenders})
        SELECT count(*)::int AS count, array_to_string((array_agg(what ORDER BY what))[1:${sql.raw(String(SAMPLE))}], '; ') AS sample
        FROM offenders`,
  );
  const count = Number(row?.count ?? 0);
  if (count === 0) return { name, ok: true, count: 0, detail: okText };
  const more = count > SAMPLE ? `, … (${count - SAMPLE} more)` : '';
  return { name, ok: false, count, detail: `${count} ${what}: ${row?.sample ?? ''}${more}` };
}

/** Sum of all accounts' posted balances is zero: every transfer debits one account and credits another. */
async function journalBalanced(ex: Executor): Promise<Check> {
  const row = await firstRow<{ total: string; accounts: number }>(
    ex,
    sql`SELECT coalesce(sum(posted_minor), 0)::text AS total, count(*)::int AS accounts FROM ledger_accounts`,
  );
  const total = BigInt(row?.total ?? '0');
  return {
    name: 'journal_balanced',
    ok: total === 0n,
    count: total === 0n ? 0 : 1,
    detail:
      total === 0n
        ? `posted balances of ${row?.accounts ?? 0} accounts sum to 0`
        : `posted balances sum to ${total} minor units instead of 0`,
  };
}

/** Each account's cached posted balance equals its credits minus its debits in the journal. */
function postedMatchesJournal(ex: Executor): Promise<Check> {
  return check(
    ex,
    'posted_matches_journal',
    sql`WITH journal AS (
          SELECT account_id, sum(delta) AS net FROM (
            SELECT credit_account_id AS account_id, amount_minor AS delta FROM ledger_transfers
            UNION ALL
            SELECT debit_account_id, -amount_minor FROM ledger_transfers
          ) movements GROUP BY account_id
        )
        SELECT a.id::text || ' cached ' || a.posted_minor || ' journal ' || coalesce(j.net, 0) AS what
        FROM ledger_accounts a LEFT JOIN journal j ON j.account_id = a.id
        WHERE a.posted_minor <> coalesce(j.net, 0)`,
    'accounts whose posted balance differs from the journal',
    'every posted balance equals its journal',
  );
}

/** Each account's cached held balance equals the sum of its unresolved holds. */
function heldMatchesHolds(ex: Executor): Promise<Check> {
  return check(
    ex,
    'held_matches_holds',
    sql`WITH unresolved AS (
          SELECT o.account_id, sum(o.amount_minor) AS held FROM ledger_hold_outcomes o WHERE o.outcome IS NULL GROUP BY o.account_id
        )
        SELECT a.id::text || ' cached ' || a.held_minor || ' unresolved holds ' || coalesce(u.held, 0) AS what
        FROM ledger_accounts a LEFT JOIN unresolved u ON u.account_id = a.id
        WHERE a.held_minor <> coalesce(u.held, 0)`,
    'accounts whose held balance differs from their unresolved holds',
    'every held balance equals its unresolved holds',
  );
}

/** No wallet (nor any account that may not overdraw) has a negative available balance. */
function availableNonnegative(ex: Executor): Promise<Check> {
  return check(
    ex,
    'available_nonnegative',
    sql`SELECT id::text || ' available ' || (posted_minor - held_minor) AS what
        FROM ledger_accounts
        WHERE (kind = 'wallet' OR NOT may_overdraw) AND posted_minor - held_minor < 0`,
    'accounts with a negative available balance',
    'no wallet has a negative available balance',
  );
}

/**
 * Every hold resolved 'posted' has exactly one verification_charge of the hold's amount from the
 * hold's account, and every charge (any transfer naming a hold) belongs to a hold resolved 'posted'.
 */
function postedHoldsHaveOneCharge(ex: Executor): Promise<Check> {
  return check(
    ex,
    'posted_holds_have_one_charge',
    // A hold has at most one transfer naming it (ledger_transfers.hold_id is unique), so "exactly one
    // matching charge" is: its charge exists, is of its amount and comes from its account; and a
    // transfer naming a hold is the view's charge_id of that hold. The last part reads transfers
    // alone: a charge without a hold, or another kind of transfer naming one.
    sql`SELECT CASE WHEN o.outcome = 'posted' THEN 'hold ' || o.hold_id::text || ' posted with 0 matching charges'
                    ELSE 'transfer ' || o.charge_id::text || ' (verification_charge) for hold ' || o.hold_id::text
                         || ' resolved ' || coalesce(o.outcome, 'never') END AS what
        FROM ledger_hold_outcomes o
        WHERE (o.outcome = 'posted' AND (o.charge_id IS NULL OR o.charge_minor <> o.amount_minor OR o.charge_account_id <> o.account_id))
           OR (o.charge_id IS NOT NULL AND o.outcome IS DISTINCT FROM 'posted')
        UNION ALL
        SELECT 'transfer ' || t.id::text || ' (' || t.kind || ') ' || coalesce('for hold ' || t.hold_id::text, 'without a hold')
        FROM ledger_transfers t
        WHERE (t.kind = 'verification_charge') <> (t.hold_id IS NOT NULL)`,
    'holds or charges out of step',
    'every posted hold has exactly one charge of its amount',
  );
}

/** Runs every ledger invariant check; read-only, safe on a live database. */
export async function checkLedgerInvariants(ex: Executor): Promise<Check[]> {
  return [
    await journalBalanced(ex),
    await postedMatchesJournal(ex),
    await heldMatchesHolds(ex),
    await availableNonnegative(ex),
    await postedHoldsHaveOneCharge(ex),
  ];
}
