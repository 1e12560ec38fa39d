import { sql } from 'drizzle-orm';
import { rows, type Executor } from '../../src/db/database.ts';

/**
 * Everything that records money and what happened, row by row, as text: every wallet, every hold
 * with its outcome, the journal, the verifications, their events and messages, the notifications.
 * Two databases that must hold the same data (before and after an upgrade, a backup and its
 * restore) must give equal snapshots. Reads only tables and columns of the earliest schema a test
 * builds (the first migrations), so it works on both sides of an upgrade.
 */
export async function dataSnapshot(ex: Executor) {
  const of = <T>(query: ReturnType<typeof sql>) => rows<T>(ex, query);
  return {
    wallets: await of(sql`
      SELECT coalesce(u.email, a.code) AS owner, a.kind, a.currency, a.posted_minor::text AS posted, a.held_minor::text AS held,
             (a.posted_minor - a.held_minor)::text AS available
      FROM ledger_accounts a LEFT JOIN users u ON u.id = a.user_id ORDER BY owner`),
    holds: await of(sql`
      SELECT hold_id::text, verification_id::text, amount_minor::text AS amount, outcome, resolved_by,
             charge_minor::text AS charge, correction_minor::text AS correction
      FROM ledger_hold_outcomes ORDER BY hold_id`),
    transfers: await of(sql`
      SELECT id::text, kind, amount_minor::text AS amount, idempotency_key, hold_id::text, actor, reason,
             debit_account_id::text AS debit, credit_account_id::text AS credit, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS at
      FROM ledger_transfers ORDER BY id`),
    verifications: await of(sql`
      SELECT id::text, user_id::text, state, upstream_status, price_minor::text AS price, hold_id::text, phone_number, provider_order_id, code,
             to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS expires_at
      FROM verifications ORDER BY id`),
    events: await of(sql`
      SELECT verification_id::text, from_state, to_state, actor, reason FROM verification_events ORDER BY verification_id, id`),
    messages: await of(sql`
      SELECT verification_id::text, provider_message_id, text, code, late FROM verification_messages ORDER BY verification_id, provider_message_id`),
    notifications: await of(sql`
      SELECT user_id::text, verification_id::text, kind, title FROM notifications ORDER BY verification_id, kind`),
    users: await of(sql`SELECT id::text, email, role, password_hash FROM users ORDER BY email`),
  };
}

export type DataSnapshot = Awaited<ReturnType<typeof dataSnapshot>>;
