import { sql } from 'drizzle-orm';
import { recordAudit } from '../accounts/audit.ts';
import { firstRow } from '../db/database.ts';
import { expireHold, findHold, postHold, refundCharge, voidHold, type HoldOutcome } from '../ledger/ledger.ts';
import { formatMinor } from '../money.ts';
import type { Tx } from '../db/database.ts';
import { lockVerification, notifyRefund, recordEvent, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import type { Actor } from './schema.ts';
import { holdOutcomeFor, isRefunded } from './transitions.ts';

/**
 * The repairs reconcile may use (docs/architecture.md, "Reconcile"): rows the normal flow left
 * inconsistent are put right through the same ledger calls, compare-and-set, in one transaction
 * with their audit event. None of them ever takes money for a verification that was not delivered,
 * or refunds one that was.
 */

/**
 * A terminal verification whose hold was never resolved: resolve it as the state says (a delivered
 * code captures what was reserved for it; anything else releases it). Returns the outcome, or
 * undefined when there was nothing to do (not terminal, or resolved meanwhile).
 */
export async function resolveTerminalHold(deps: LifecycleDeps, id: string, actor: Actor): Promise<HoldOutcome | undefined> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const row = await lockVerification(tx, id);
    const outcome = row ? holdOutcomeFor(row.state) : undefined;
    if (!row || !outcome || row.holdId === null) return undefined;
    const hold = await findHold(tx, row.holdId);
    if (hold.outcome !== null) return undefined;
    const request = { holdId: row.holdId, actor, reason: `${row.state}: hold left unresolved, resolved by reconciliation`, now };
    if (outcome === 'posted') await postHold(tx, request);
    else if (outcome === 'expired') await expireHold(tx, request);
    else await voidHold(tx, request);
    await recordEvent(tx, row.id, row.state, actor, `unresolved hold ${outcome === 'posted' ? 'captured' : 'released'} (${outcome})`, now);
    if (outcome !== 'posted') await notifyRefund(tx, row, row.priceMinor, now);
    return outcome;
  });
}

/**
 * A verification that ended refunded (cancelled, expired, failed) but whose hold was captured: a
 * correction transfer gives back exactly the charged amount, once (keyed by the charge). Returns
 * the amount refunded, or undefined when there was nothing to do.
 */
export async function refundWrongCapture(deps: LifecycleDeps, id: string, actor: Actor): Promise<number | undefined> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const row = await lockVerification(tx, id);
    if (!row || !isRefunded(row.state) || row.holdId === null) return undefined;
    const hold = await findHold(tx, row.holdId);
    if (hold.outcome !== 'posted') return undefined;
    return giveChargeBack(tx, row, actor, now, { ledger: `refund of a charge captured for a ${row.state} verification`, event: 'refunded by correction transfer' });
  });
}

/**
 * A received verification charged for an SMS that arrived after its deadline (captured by a late
 * engine, webhook or manual SMS before that was impossible): the charge is given back by a
 * correction transfer, once (keyed by the charge), and audited; the message stays shown. Returns
 * the amount refunded, or undefined when there was nothing to do (its first message arrived in
 * time, there is none, or the charge was already corrected).
 */
export async function refundLateCapture(deps: LifecycleDeps, id: string, actor: Actor): Promise<number | undefined> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const row = await lockVerification(tx, id);
    if (!row || row.state !== 'received' || row.holdId === null) return undefined;
    const hold = await findHold(tx, row.holdId);
    if (hold.outcome !== 'posted') return undefined;
    const first = await firstRow<{ late: boolean | null }>(
      tx,
      sql`SELECT min(received_at) > ${row.expiresAt} AS late FROM verification_messages WHERE verification_id = ${row.id}`,
    );
    if (first?.late !== true) return undefined;
    return giveChargeBack(tx, row, actor, now, {
      ledger: 'refund of a charge captured for an SMS that arrived after the deadline',
      event: 'for an SMS after the deadline refunded by correction transfer',
    });
  });
}

/** The correction itself: exactly the charged amount back, once (keyed by the charge), with its event and notice. */
export async function giveChargeBack(
  tx: Tx,
  row: VerificationRow,
  actor: Actor,
  now: Date,
  why: { ledger: string; event: string },
): Promise<number | undefined> {
  if (row.holdId === null) return undefined;
  const { transfer, replayed } = await refundCharge(tx, { holdId: row.holdId, actor, reason: why.ledger, now });
  if (replayed) return undefined;
  await recordEvent(tx, row.id, row.state, actor, `charge of ${formatMinor(transfer.amountMinor, row.currency)} ${why.event}`, now);
  await notifyRefund(tx, row, transfer.amountMinor, now);
  return transfer.amountMinor;
}

/**
 * A hold that no verification refers to (its purchase never became a verification): nothing can
 * ever resolve it, so release it, once, with the audit row in the same transaction.
 */
export async function releaseOrphanHold(deps: LifecycleDeps, holdId: string, actor: Actor): Promise<boolean> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const owner = await firstRow<{ id: string }>(tx, sql`SELECT id FROM verifications WHERE hold_id = ${holdId} FOR UPDATE`);
    if (owner) return false;
    const hold = await findHold(tx, holdId);
    if (hold.outcome !== null) return false;
    await voidHold(tx, { holdId, actor, reason: 'hold without a verification, released by reconciliation', now });
    await recordAudit(tx, {
      actorId: null,
      actor: 'system',
      action: 'reconcile.orphan_hold_release',
      subjectId: holdId,
      detail: { by: actor, amount_minor: hold.amountMinor, verification_id: hold.verificationId },
      now,
    });
    return true;
  });
}
