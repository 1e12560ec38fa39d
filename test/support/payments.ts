import { sql } from 'drizzle-orm';
import { rows, type Executor } from '../../src/db/database.ts';

/** What the ledger holds for one wallet's top-ups and reversals, for exact assertions. */
export interface LedgerLine {
  kind: string;
  amount: number;
  /** 'in' credits the wallet, 'out' debits it. */
  direction: 'in' | 'out';
  key: string | null;
  actor: string;
}

export async function walletLedger(ex: Executor, userId: string): Promise<LedgerLine[]> {
  const found = await rows<{ kind: string; amount_minor: string | number; credit_account_id: string; wallet: string; idempotency_key: string | null; actor: string }>(
    ex,
    sql`SELECT t.kind, t.amount_minor, t.credit_account_id, a.id AS wallet, t.idempotency_key, t.actor
        FROM ledger_transfers t JOIN ledger_accounts a ON a.user_id = ${userId}
        WHERE t.debit_account_id = a.id OR t.credit_account_id = a.id
        -- Within one instant (one transaction), a top-up's credit comes before the collections it allows.
        ORDER BY t.created_at, (t.kind = 'topup') DESC, t.id`,
  );
  return found.map((r) => ({
    kind: r.kind,
    amount: Number(r.amount_minor),
    direction: r.credit_account_id === r.wallet ? 'in' : 'out',
    key: r.idempotency_key,
    actor: r.actor,
  }));
}

export async function paymentEventsOf(ex: Executor, processor: string): Promise<{ event_id: string; type: string; outcome: string; top_up_id: string | null; detail: string | null }[]> {
  return rows(ex, sql`SELECT event_id, type, outcome, top_up_id, detail FROM payment_events WHERE processor = ${processor} ORDER BY received_at, event_id`);
}

export async function auditActions(ex: Executor, userId: string): Promise<{ action: string; detail: Record<string, unknown> }[]> {
  return rows(ex, sql`SELECT action, detail FROM audit_log WHERE subject_id = ${userId} AND action LIKE 'top_up.%' ORDER BY id`);
}
