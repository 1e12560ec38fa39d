import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { firstRow, rows, type Executor } from '../../src/db/database.ts';
import { ProviderError, type ActiveOrder, type CancelOutcome } from '../../src/providers/provider.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { cancelVerification, recoverPurchase } from '../../src/verifications/flows.ts';
import { loadVerification, recordMessages, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import type { LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';

/** A scripted provider that also lists its active orders, so reconcile can look for upstream orphans. */
export class ListingProvider extends ScriptedProvider {
  active = new Map<string, ActiveOrder>();

  async activeOrders(): Promise<ActiveOrder[]> {
    return [...this.active.values()];
  }

  override cancel(providerOrderId: string): Promise<CancelOutcome> {
    const answer = super.cancel(providerOrderId);
    return answer.then((a) => {
      if (a.outcome === 'cancelled' || a.outcome === 'gone') this.active.delete(providerOrderId);
      return a;
    });
  }
}

export const ambiguous = () => new ProviderError('ambiguous', 'timeout', 'no answer in time');

/** What may never change when nothing is repaired: balances, states, and the number of rows that record money or events. */
export async function snapshot(ex: Executor) {
  const accounts = await rows<{ id: string; posted: string; held: string }>(
    ex,
    sql`SELECT id::text, posted_minor::text AS posted, held_minor::text AS held FROM ledger_accounts ORDER BY id`,
  );
  const verifications = await rows<{ id: string; state: string; upstream: string; order_id: string | null }>(
    ex,
    sql`SELECT id::text, state, upstream_status AS upstream, provider_order_id AS order_id FROM verifications ORDER BY id`,
  );
  const counts = await firstRow<Record<string, number>>(
    ex,
    sql`SELECT (SELECT count(*) FROM ledger_transfers)::int AS transfers,
               (SELECT count(*) FROM ledger_hold_resolutions)::int AS resolutions,
               (SELECT count(*) FROM ledger_holds)::int AS holds,
               (SELECT count(*) FROM verification_events)::int AS events,
               (SELECT count(*) FROM audit_log)::int AS audit,
               (SELECT count(*) FROM notifications)::int AS notifications`,
  );
  return { accounts, verifications, counts };
}

export interface InjectedProblems {
  stuckWaiting: string;
  stuckPendingPastDeadline: string;
  pendingStuck: string;
  terminalUnresolved: string;
  receivedUnresolved: string;
  wronglyCaptured: string;
  receivedRefunded: string;
  cancelOwed: string;
  orphanSuspected: string;
  upstreamOrphanOrder: string;
  orphanHold: string;
  activeHoldResolved: string;
  /** Healthy delivered verification: must never be touched. */
  delivered: string;
  users: Record<string, string>;
}

const minutesAgo = (h: LifecycleHarness, m: number) => new Date(h.clock.now().getTime() - m * 60_000);

async function buy(h: LifecycleHarness, userId: string, service = 'test_timeout'): Promise<VerificationRow> {
  const out = await purchaseVerification(h.deps, { userId, idempotencyKey: randomUUID(), service });
  return out.row;
}

async function deliver(h: LifecycleHarness, row: VerificationRow): Promise<void> {
  const result = await recordMessages(
    h.deps,
    row.id,
    [{ providerMessageId: `${row.id}#1`, text: 'Your code is 424242', code: '424242', receivedAt: h.clock.now() }],
    'poller',
  );
  if (!result?.captured) throw new Error('delivery did not capture');
}

/**
 * One of each money problem reconcile knows, each on its own customer, built through the normal
 * flow and then bent with plain SQL (none needs the ledger's triggers disabled: each is a state the
 * verification table alone can be put in, or a ledger row the database accepts).
 */
export async function injectEveryProblem(h: LifecycleHarness, provider: ListingProvider): Promise<InjectedProblems> {
  const ex = h.t.database.db;
  const users: Record<string, string> = {};
  const customer = async (name: string) => (users[name] = await h.customer(1000));

  // A waiting verification 5 minutes past its deadline, hold unresolved.
  const stuckWaiting = await buy(h, await customer('stuckWaiting'));
  await ex.execute(sql`UPDATE verifications SET expires_at = ${minutesAgo(h, 5)} WHERE id = ${stuckWaiting.id}`);

  // A pending purchase past its deadline (its purchase was lost: the upstream never created it).
  provider.onBuy = async () => {
    throw ambiguous();
  };
  const stuckPendingPastDeadline = await buy(h, await customer('stuckPendingPastDeadline'));
  await ex.execute(sql`UPDATE verifications SET expires_at = ${minutesAgo(h, 5)}, created_at = ${minutesAgo(h, 15)} WHERE id = ${stuckPendingPastDeadline.id}`);

  // A pending purchase not in flight for 6 minutes, deadline still ahead.
  const pendingStuck = await buy(h, await customer('pendingStuck'));
  await ex.execute(sql`UPDATE verifications SET created_at = ${minutesAgo(h, 6)}, purchase_until = NULL WHERE id = ${pendingStuck.id}`);

  // A purchase whose outcome stayed unknown until its deadline, though the upstream did create it.
  provider.onBuy = async (request) => {
    provider.createOrder(request.clientRef);
    throw ambiguous();
  };
  const suspect = await buy(h, await customer('orphanSuspected'));
  provider.onBuy = async (request) => provider.createOrder(request.clientRef);
  const lookup = provider.onLookup;
  provider.onLookup = async () => ({ status: 'unknown' });
  await ex.execute(sql`UPDATE verifications SET expires_at = ${h.clock.now()} WHERE id = ${suspect.id}`);
  const failed = await recoverPurchase(h.deps, (await loadVerification(ex, suspect.id))!);
  if (failed?.upstreamStatus !== 'orphan_suspected') throw new Error('expected a suspected orphan');
  provider.onLookup = lookup;

  // Terminal states written without their hold resolution.
  const terminalUnresolved = await buy(h, await customer('terminalUnresolved'));
  await ex.execute(sql`UPDATE verifications SET state = 'cancelled', resolved_at = ${h.clock.now()} WHERE id = ${terminalUnresolved.id}`);
  const receivedUnresolved = await buy(h, await customer('receivedUnresolved'));
  await ex.execute(
    sql`UPDATE verifications SET state = 'received', code = '777777', resolved_at = ${h.clock.now()} WHERE id = ${receivedUnresolved.id}`,
  );

  // Captured, then marked cancelled: the customer paid for a verification shown as refunded.
  const wronglyCaptured = await buy(h, await customer('wronglyCaptured'));
  await deliver(h, wronglyCaptured);
  await ex.execute(sql`UPDATE verifications SET state = 'cancelled' WHERE id = ${wronglyCaptured.id}`);

  // Refunded, then marked received: delivered yet refunded (report only).
  const receivedRefunded = await buy(h, await customer('receivedRefunded'));
  await cancelVerification(h.deps, receivedRefunded, 'customer');
  await ex.execute(sql`UPDATE verifications SET state = 'received', code = '555555' WHERE id = ${receivedRefunded.id}`);

  // Cancelled while the upstream was unreachable: the upstream cancel is owed.
  const cancelOwed = await buy(h, await customer('cancelOwed'));
  const onCancel = provider.onCancel;
  provider.onCancel = async () => {
    throw new ProviderError('ambiguous', 'connection_lost', 'connection reset');
  };
  const cancelled = await cancelVerification(h.deps, cancelOwed, 'customer');
  provider.onCancel = onCancel;
  if (cancelled.kind !== 'cancelled' || cancelled.row.upstreamStatus !== 'cancel_owed') throw new Error('expected an owed cancel');

  // An upstream order no verification knows, two hours old.
  const upstreamOrphanOrder = `ord-foreign-${randomUUID().slice(0, 8)}`;
  provider.active.set(upstreamOrphanOrder, { providerOrderId: upstreamOrphanOrder, phoneNumber: '15550009999', service: 'whatsapp', createdAt: minutesAgo(h, 120) });

  // A hold that no verification refers to.
  const orphanUser = await customer('orphanHold');
  const wallet = await firstRow<{ id: string }>(ex, sql`SELECT id FROM ledger_accounts WHERE user_id = ${orphanUser}`);
  const orphanHold = await firstRow<{ id: string }>(
    ex,
    sql`INSERT INTO ledger_holds (account_id, amount_minor, verification_id, expires_at, actor, created_at)
        VALUES (${wallet!.id}, 70, ${randomUUID()}, ${h.clock.now()}, 'customer', ${minutesAgo(h, 30)}) RETURNING id`,
  );

  // A live verification whose hold was already released (report only).
  const activeHoldResolved = await buy(h, await customer('activeHoldResolved'));
  await ex.execute(
    sql`INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, reason, created_at)
        VALUES (${activeHoldResolved.holdId}, 'voided', 'test', 'injected', ${h.clock.now()})`,
  );

  // A healthy delivered verification.
  const delivered = await buy(h, await customer('delivered'));
  await deliver(h, delivered);

  return {
    stuckWaiting: stuckWaiting.id,
    stuckPendingPastDeadline: stuckPendingPastDeadline.id,
    pendingStuck: pendingStuck.id,
    terminalUnresolved: terminalUnresolved.id,
    receivedUnresolved: receivedUnresolved.id,
    wronglyCaptured: wronglyCaptured.id,
    receivedRefunded: receivedRefunded.id,
    cancelOwed: cancelOwed.id,
    orphanSuspected: suspect.id,
    upstreamOrphanOrder,
    orphanHold: orphanHold!.id,
    activeHoldResolved: activeHoldResolved.id,
    delivered: delivered.id,
    users,
  };
}

/**
 * Thousands of problems at once, written with INSERT … SELECT generate_series: `stuck` waiting
 * verifications past their deadline, `unresolved` cancelled ones whose hold was never released and
 * `captured` cancelled ones whose hold was captured.
 */
export async function injectBulk(
  h: LifecycleHarness,
  counts: { stuck: number; unresolved: number; captured: number },
): Promise<{ userId: string; email: string }> {
  const ex = h.t.database.db;
  const total = counts.stuck + counts.unresolved + counts.captured;
  const userId = await h.customer(total * 50 + 10_000);
  const email = (await firstRow<{ email: string }>(ex, sql`SELECT email FROM users WHERE id = ${userId}`))!.email;
  const wallet = (await firstRow<{ id: string }>(ex, sql`SELECT id FROM ledger_accounts WHERE user_id = ${userId}`))!.id;
  const now = h.clock.now();
  const created = minutesAgo(h, 30);
  const deadline = minutesAgo(h, 20);
  const insert = async (n: number, state: 'waiting' | 'cancelled', tag: string) => {
    if (n === 0) return;
    await ex.execute(sql`
      WITH ids AS (SELECT gen_random_uuid() AS vid FROM generate_series(1, ${n})),
      holds AS (
        INSERT INTO ledger_holds (account_id, amount_minor, verification_id, expires_at, actor, created_at)
        SELECT ${wallet}, 50, vid, ${deadline}, 'customer', ${created} FROM ids
        RETURNING id, verification_id)
      INSERT INTO verifications (id, user_id, provider, service, country, state, price_minor, max_cost_minor, currency,
                                 idempotency_key, request_fingerprint, hold_id, phone_number, provider_order_id,
                                 created_at, updated_at, expires_at, resolved_at, upstream_status)
      SELECT verification_id, ${userId}, 'sandbox', 'test_timeout', 'US', ${state}, 50, 25, 'USD',
             ${tag} || verification_id::text, 'bulk', id, '1555' || substr(md5(verification_id::text), 1, 7),
             ${tag} || verification_id::text, ${created}, ${created}, ${deadline},
             ${state === 'waiting' ? null : now}::timestamptz, ${state === 'waiting' ? 'open' : 'cancelled'}
      FROM holds`);
  };
  await insert(counts.stuck, 'waiting', 'bulk-stuck-');
  await insert(counts.unresolved, 'cancelled', 'bulk-unresolved-');
  if (counts.captured > 0) {
    await insert(counts.captured, 'cancelled', 'bulk-captured-');
    const revenue = (await firstRow<{ id: string }>(ex, sql`SELECT id FROM ledger_accounts WHERE code = 'revenue'`))!.id;
    await h.t.database.transaction(async (tx) => {
      await tx.execute(sql`
        INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, reason, created_at)
        SELECT hold_id, 'posted', 'poller', 'injected', ${now} FROM verifications WHERE idempotency_key LIKE 'bulk-captured-%'`);
      await tx.execute(sql`
        INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, hold_id, verification_id, actor, reason, created_at)
        SELECT ${wallet}, ${revenue}, 50, 'verification_charge', hold_id, id, 'poller', 'injected', ${now}
        FROM verifications WHERE idempotency_key LIKE 'bulk-captured-%'`);
    });
  }
  return { userId, email };
}
