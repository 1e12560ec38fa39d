import { and, asc, eq, lt, sql } from 'drizzle-orm';
import { z } from 'zod';
import { recordAudit } from '../accounts/audit.ts';
import type { Database, Executor, Tx } from '../db/database.ts';
import { publish } from '../events/bus.ts';
import { creditTopUp, findTopUpCredit, takeBackFromWallet } from '../ledger/ledger.ts';
import { recordOutboundEvent } from '../outbound-webhooks/outbox.ts';
import { decideEvent } from './decisions.ts';
import type { PaymentEvent } from './processor.ts';
import {
  paymentEvents,
  topUpReversals,
  topUps,
  type PaymentEventOutcome,
  type ProcessorName,
  type TopUpRow,
  type TopUpStatus,
} from './schema.ts';
import { topUpResource } from './top-ups.ts';

/**
 * What a verified processor event does, in one transaction with its record: the event's row (whose
 * primary key is the processor's event id, so a replay or a concurrent duplicate waits for the first
 * and then does nothing), the top-up's compare-and-set, the ledger credit (keyed by the top-up, so
 * the database allows one), its audit row and the live event.
 */
export type EventResult = { outcome: PaymentEventOutcome | 'duplicate'; topUpId: string | null };

export async function applyPaymentEvent(
  database: Database,
  processor: ProcessorName,
  event: PaymentEvent,
  now: Date,
): Promise<EventResult> {
  return database.transaction(async (tx) => {
    const claimed = await tx
      .insert(paymentEvents)
      .values({
        processor,
        eventId: event.eventId,
        type: event.type,
        paymentId: event.paymentId,
        amountMinor: event.amountMinor,
        currency: event.currency,
        outcome: 'ignored',
        receivedAt: now,
      })
      .onConflictDoNothing()
      .returning({ eventId: paymentEvents.eventId });
    if (claimed.length === 0) return { outcome: 'duplicate', topUpId: null };

    const topUp = await lockTopUpFor(tx, processor, event);
    const decision = decideEvent(topUp, event);
    let outcome: PaymentEventOutcome;
    let detail = decision.action === 'record' ? decision.detail : undefined;
    if (decision.action === 'credit') {
      outcome = await creditConfirmed(tx, topUp!, { paymentId: event.paymentId, amountMinor: event.amountMinor!, source: event.eventId }, now);
    } else if (decision.action === 'reverse') {
      detail = await recordReversal(tx, topUp!, event, now);
      outcome = 'reversed';
    } else {
      outcome = decision.outcome;
      if (decision.status && topUp) await setStatus(tx, topUp, decision.status, decision.detail ?? null, now);
    }
    await tx
      .update(paymentEvents)
      .set({ outcome, topUpId: topUp?.id ?? null, detail: detail ?? null })
      .where(and(eq(paymentEvents.processor, processor), eq(paymentEvents.eventId, event.eventId)));
    return { outcome, topUpId: topUp?.id ?? null };
  });
}

/** The event's top-up, locked: by the id the processor echoed, else its checkout, else its payment. */
async function lockTopUpFor(tx: Tx, processor: ProcessorName, event: PaymentEvent): Promise<TopUpRow | null> {
  const candidates = [
    event.topUpId && isUuid(event.topUpId) ? eq(topUps.id, event.topUpId) : undefined,
    event.reference ? eq(topUps.processorReference, event.reference) : undefined,
    event.paymentId ? eq(topUps.processorPaymentId, event.paymentId) : undefined,
  ];
  for (const where of candidates) {
    if (!where) continue;
    const [row] = await tx.select().from(topUps).where(and(eq(topUps.processor, processor), where)).for('update');
    if (row) return row;
  }
  return null;
}

/** A processor echoes back whatever metadata it was given; only a UUID can be a top-up id. */
function isUuid(value: string): boolean {
  return z.uuid().safeParse(value).success;
}

/**
 * Credits a top-up the processor confirmed (from a webhook or a re-check), on the locked row: the
 * ledger credit, the top-up's compare-and-set to `credited`, the audit row, then the customer's
 * receivables, which a new top-up settles first.
 */
async function creditConfirmed(
  tx: Tx,
  topUp: TopUpRow,
  payment: { paymentId: string | null; amountMinor: number; source: string },
  now: Date,
): Promise<PaymentEventOutcome> {
  const { transfer, replayed } = await creditTopUp(tx, {
    userId: topUp.userId,
    topUpId: topUp.id,
    amountMinor: payment.amountMinor,
    processor: topUp.processor,
    now,
  });
  const updated = await tx
    .update(topUps)
    .set({
      status: 'credited',
      creditedMinor: payment.amountMinor,
      creditTransferId: transfer.id,
      processorPaymentId: payment.paymentId ?? topUp.processorPaymentId,
      statusReason: null,
      creditedAt: now,
      updatedAt: now,
    })
    .where(and(eq(topUps.id, topUp.id), sql`${topUps.status} <> 'credited'`))
    .returning({ id: topUps.id });
  if (replayed || updated.length === 0) return 'already_credited';
  await recordAudit(tx, {
    actorId: null,
    actor: 'system',
    action: 'top_up.credit',
    subjectId: topUp.userId,
    detail: {
      top_up_id: topUp.id,
      processor: topUp.processor,
      amount_minor: payment.amountMinor,
      transfer_id: transfer.id,
      payment_id: payment.paymentId,
      confirmed_by: payment.source,
    },
    now,
  });
  await collectReceivables(tx, topUp.userId, now);
  await publish(tx, { userId: topUp.userId, kind: 'top_up', id: topUp.id });
  await recordTopUpEvent(tx, topUp, 'credited', now);
  return 'credited';
}

async function setStatus(tx: Tx, topUp: TopUpRow, status: TopUpStatus, reason: string | null, now: Date): Promise<void> {
  const changed = await tx
    .update(topUps)
    .set({ status, statusReason: reason, updatedAt: now })
    .where(and(eq(topUps.id, topUp.id), eq(topUps.status, topUp.status)))
    .returning({ id: topUps.id });
  await publish(tx, { userId: topUp.userId, kind: 'top_up', id: topUp.id });
  if (changed.length > 0 && (status === 'failed' || status === 'expired')) await recordTopUpEvent(tx, topUp, status, now);
}

/**
 * Tells the customer's webhook endpoints what became of a top-up, in the transaction that made it
 * so (the outbox): `top_up.credited`, `top_up.failed`, `top_up.expired`, once each per top-up.
 */
async function recordTopUpEvent(tx: Tx, topUp: TopUpRow, outcome: 'credited' | 'failed' | 'expired', now: Date): Promise<void> {
  await recordOutboundEvent(tx, {
    userId: topUp.userId,
    type: `top_up.${outcome}`,
    subjectId: topUp.id,
    now,
    data: async () => topUpResource(tx, (await tx.select().from(topUps).where(eq(topUps.id, topUp.id)))[0]!),
  });
}

/**
 * Records money the processor took back. `amountMinor` of a reversal is the total reversed so far
 * under its reference (Stripe reports a charge's refunds cumulatively), so a later, larger report
 * raises it and a repeat changes nothing. It is collected at once when the top-up was credited, as
 * far as the wallet's available balance allows; a reversal that arrives before its top-up's
 * completion (out of order) waits for that credit.
 */
async function recordReversal(tx: Tx, topUp: TopUpRow, event: PaymentEvent, now: Date): Promise<string> {
  const reversal = event.reversal!;
  const amount = Math.min(event.amountMinor!, topUp.amountMinor);
  await tx
    .insert(topUpReversals)
    .values({
      topUpId: topUp.id,
      userId: topUp.userId,
      processor: topUp.processor,
      reference: reversal.reference,
      kind: reversal.kind,
      amountMinor: amount,
      createdAt: now,
      updatedAt: now,
    })
    .onConflictDoUpdate({
      target: [topUpReversals.processor, topUpReversals.reference],
      set: { amountMinor: sql`greatest(${topUpReversals.amountMinor}, ${amount})`, updatedAt: now },
    });
  await recordAudit(tx, {
    actorId: null,
    actor: 'system',
    action: 'top_up.reversal',
    subjectId: topUp.userId,
    detail: { top_up_id: topUp.id, processor: topUp.processor, reference: reversal.reference, kind: reversal.kind, amount_minor: amount },
    now,
  });
  if (topUp.status === 'credited') await collectReceivables(tx, topUp.userId, now);
  await publish(tx, { userId: topUp.userId, kind: 'top_up', id: topUp.id });
  return `${reversal.kind} ${reversal.reference}: ${amount}`;
}

/**
 * Takes back what the customer owes for reversed top-ups, oldest first, as far as the wallet's
 * available balance allows (never below zero, never from held money). Each collection's ledger key
 * names the reversal and how much of it was collected before, so a retry collects nothing twice.
 * Only reversals of credited top-ups are owed: money never credited is not taken back.
 */
async function collectReceivables(tx: Tx, userId: string, now: Date): Promise<number> {
  const owed = await tx
    .select({ reversal: topUpReversals })
    .from(topUpReversals)
    .innerJoin(topUps, eq(topUps.id, topUpReversals.topUpId))
    .where(and(eq(topUpReversals.userId, userId), lt(topUpReversals.collectedMinor, topUpReversals.amountMinor), eq(topUps.status, 'credited')))
    .orderBy(asc(topUpReversals.createdAt), asc(topUpReversals.id))
    .for('update', { of: topUpReversals });
  let collected = 0;
  for (const { reversal } of owed) {
    const { takenMinor } = await takeBackFromWallet(tx, {
      userId,
      amountMinor: reversal.amountMinor - reversal.collectedMinor,
      idempotencyKey: `top-up-reversal:${reversal.id}:${reversal.collectedMinor}`,
      reason: `${reversal.kind === 'refund' ? 'refund' : 'lost dispute'} of top-up ${reversal.topUpId}`,
      now,
    });
    if (takenMinor === 0) break;
    await tx
      .update(topUpReversals)
      .set({ collectedMinor: reversal.collectedMinor + takenMinor, updatedAt: now })
      .where(and(eq(topUpReversals.id, reversal.id), eq(topUpReversals.collectedMinor, reversal.collectedMinor)));
    collected += takenMinor;
  }
  return collected;
}

/** What a customer still owes for reversed top-ups (shown on the top-up list and in diagnose). */
export async function outstandingReceivable(ex: Executor, userId: string): Promise<number> {
  const [row] = await ex
    .select({ owed: sql<string>`coalesce(sum(${topUpReversals.amountMinor} - ${topUpReversals.collectedMinor}), 0)` })
    .from(topUpReversals)
    .innerJoin(topUps, eq(topUps.id, topUpReversals.topUpId))
    .where(and(eq(topUpReversals.userId, userId), eq(topUps.status, 'credited')));
  return Number(row?.owed ?? 0);
}

/**
 * Reconcile's repair for a top-up whose ledger credit exists while the top-up does not say so (the
 * state fell behind the money): records the credit the ledger already holds. Moves no money.
 */
export async function adoptLedgerCredit(database: Database, topUpId: string, now: Date): Promise<boolean> {
  return database.transaction(async (tx) => {
    const [row] = await tx.select().from(topUps).where(eq(topUps.id, topUpId)).for('update');
    if (!row || row.status === 'credited') return false;
    const transfer = await findTopUpCredit(tx, topUpId);
    if (!transfer) return false;
    await tx
      .update(topUps)
      .set({ status: 'credited', creditedMinor: transfer.amountMinor, creditTransferId: transfer.id, creditedAt: now, updatedAt: now, statusReason: 'credit found in the ledger by reconcile' })
      .where(and(eq(topUps.id, topUpId), eq(topUps.status, row.status)));
    await recordAudit(tx, {
      actorId: null,
      actor: 'system',
      action: 'top_up.credit_adopted',
      subjectId: row.userId,
      detail: { top_up_id: row.id, transfer_id: transfer.id, previous_status: row.status },
      now,
    });
    await publish(tx, { userId: row.userId, kind: 'top_up', id: row.id });
    await recordTopUpEvent(tx, row, 'credited', now);
    return true;
  });
}
