import { eq, sql } from 'drizzle-orm';
import { rows, type Database, type Executor } from '../db/database.ts';
import { formatMinor } from '../money.ts';
import { recordOutboundEvents } from '../outbound-webhooks/outbox.ts';
import { publishMany } from '../events/bus.ts';
import { lowBalanceAlerts, notifications } from './schema.ts';

/**
 * The low-balance notice (docs/number-care.md). A customer sets a threshold; when their available
 * balance (balance − held) goes below it they get one notice — in the app, and as the
 * `wallet.low_balance` event to their webhook endpoints subscribed to it — and no other until the
 * balance has come back to the threshold or above (re-armed) and gone below again. "Once per
 * crossing" is a compare-and-set on `below`, so several engines raise each crossing once.
 *
 * The engine looks in one set-based pass per tick (raiseLowBalanceNotices), not on every debit:
 * a ledger movement never waits for it, and a hold and its release within one tick raise nothing.
 */
export async function lowBalanceThreshold(ex: Executor, userId: string): Promise<number | null> {
  const [row] = await ex.select().from(lowBalanceAlerts).where(eq(lowBalanceAlerts.userId, userId));
  return row ? row.thresholdMinor : null;
}

/** Sets (or with null, removes) the threshold. A new threshold starts armed: a balance already below it is told at once. */
export async function setLowBalanceThreshold(ex: Executor, userId: string, thresholdMinor: number | null, now: Date): Promise<void> {
  if (thresholdMinor === null) {
    await ex.delete(lowBalanceAlerts).where(eq(lowBalanceAlerts.userId, userId));
    return;
  }
  await ex
    .insert(lowBalanceAlerts)
    .values({ userId, thresholdMinor, below: false, updatedAt: now })
    .onConflictDoUpdate({ target: lowBalanceAlerts.userId, set: { thresholdMinor, below: false, updatedAt: now } });
}

/** One pass: re-arms those back at or above their threshold, then raises one notice per fresh crossing below it. Returns the notices raised. */
export async function raiseLowBalanceNotices(database: Database, currency: string, now: Date): Promise<number> {
  return database.transaction(async (tx) => {
    await rows(tx, sqlRearm(now));
    const crossed = await rows<{ user_id: string; available: string | number; threshold_minor: string | number }>(tx, sqlRaise(now));
    if (crossed.length === 0) return 0;
    const inserted = await tx
      .insert(notifications)
      .values(
        crossed.map((c) => ({
          userId: c.user_id,
          verificationId: null,
          kind: 'low_balance' as const,
          title: 'Low balance',
          body: `Your available balance is ${formatMinor(Number(c.available), currency)}, below the ${formatMinor(Number(c.threshold_minor), currency)} you set.`,
          createdAt: now,
        })),
      )
      .returning({ id: notifications.id, userId: notifications.userId });
    await publishMany(tx, inserted.map((n) => ({ userId: n.userId, kind: 'notification' as const, id: n.id })));
    const byUser = new Map(crossed.map((c) => [c.user_id, c]));
    await recordOutboundEvents(
      tx,
      inserted.map((n) => {
        const c = byUser.get(n.userId)!;
        return {
          userId: n.userId,
          type: 'wallet.low_balance' as const,
          subjectId: n.id,
          now,
          data: () => ({ available_minor: Number(c.available), threshold_minor: Number(c.threshold_minor), currency }),
        };
      }),
    );
    return inserted.length;
  });
}


function sqlRearm(now: Date) {
  return sql`UPDATE low_balance_alerts l SET below = false, updated_at = ${now}
             FROM ledger_accounts a
             WHERE a.user_id = l.user_id AND a.kind = 'wallet' AND l.below AND a.posted_minor - a.held_minor >= l.threshold_minor
             RETURNING l.user_id`;
}

function sqlRaise(now: Date) {
  return sql`UPDATE low_balance_alerts l SET below = true, updated_at = ${now}
             FROM ledger_accounts a
             WHERE a.user_id = l.user_id AND a.kind = 'wallet' AND NOT l.below AND a.posted_minor - a.held_minor < l.threshold_minor
             RETURNING l.user_id, a.posted_minor - a.held_minor AS available, l.threshold_minor`;
}
