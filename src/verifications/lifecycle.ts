import type { ProviderControls } from '../providers/controls.ts';
import { and, eq, inArray, isNull, lte, ne, sql, type SQL } from 'drizzle-orm';
import { recordAudit } from '../accounts/audit.ts';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { pgConstraint, pgErrorCode, type Database, type Executor, type Tx } from '../db/database.ts';
import { publish, publishMany } from '../events/bus.ts';
import { expireHold, postHold, releaseHolds, voidHold } from '../ledger/ledger.ts';
import { notify, notifyMany, type Notice } from '../notifications/notifications.ts';
import type { ProviderBreaker } from '../providers/breaker.ts';
import type { OrderRef, Provider, ProviderMessage, ProviderOrder } from '../providers/provider.ts';
import { providerFor, type ProviderSet } from '../providers/set.ts';
import { formatMinor } from '../money.ts';
import { recordOutboundEvent, recordOutboundEvents, type OutboundEvent } from '../outbound-webhooks/outbox.ts';
import type { OutboundEventType } from '../outbound-webhooks/schema.ts';
import { verificationEvents, verificationMessages, verifications, type Actor, type UpstreamAlarm, type UpstreamStatus, type VerificationState } from './schema.ts';
import { viewOf } from './resource.ts';
import { deadlineFor, holdMoveFor, isTerminal } from './transitions.ts';

/**
 * The one place that changes a verification's state. Every transition is a compare-and-set on the
 * current state, in one transaction with its ledger write, its audit event and its notification;
 * the flows (flows.ts, purchase.ts), upstream settlement (settlement.ts) and the repairs
 * (repairs.ts) all change state through here. Upstream calls always happen outside transactions.
 */
export type VerificationRow = typeof verifications.$inferSelect;

export interface LifecycleDeps {
  database: Database;
  clock: Clock;
  config: Config;
  /** The preferred provider, already wrapped in its breaker (the only one of a single-provider setup). */
  provider: Provider;
  breaker: ProviderBreaker;
  /**
   * Every configured upstream, each behind its own breaker, and the drained ones on demand. Calls
   * about an existing order go to `providerFor(deps, row.provider)` (src/providers/set.ts); without
   * a set (test doubles) that is `provider`.
   */
  providers?: ProviderSet;
  /** The operator's per-provider switches (src/providers/controls.ts); absent: every provider sells. */
  controls?: ProviderControls;
  logger: Logger;
  /** Test seam: called at named points between phases; a throw there simulates a crash. */
  faults?: (point: FaultPoint) => void | Promise<void>;
}

export type FaultPoint =
  | 'purchase.held'
  | 'purchase.bought'
  | 'another_code.requested'
  | 'capture.fetched'
  | 'cancel.upstream_done'
  | 'expire.checked'
  | 'expire.upstream_done'
  | 'recover.looked_up';

export async function fault(deps: LifecycleDeps, point: FaultPoint): Promise<void> {
  if (deps.faults) await deps.faults(point);
}

export interface TransitionChange {
  actor: Actor;
  reason: string;
  now: Date;
  /** Columns set together with the state. */
  set?: Partial<Omit<VerificationRow, 'id' | 'state' | 'userId' | 'holdId' | 'priceMinor'>>;
}

/**
 * Moves a verification from `from` to `to` if and only if it is still in `from`. Returns the
 * updated row, or undefined when another actor got there first (the caller decides what the loser
 * answers). The hold moves exactly as the state machine says.
 */
export async function transition(
  tx: Tx,
  row: VerificationRow,
  to: VerificationState,
  change: TransitionChange,
): Promise<VerificationRow | undefined> {
  const move = holdMoveFor(row.state, to);
  if (!move) throw new Error(`illegal transition ${row.state} → ${to} for verification ${row.id}`);
  const [updated] = await tx
    .update(verifications)
    .set(columnsFor(to, change))
    .where(and(eq(verifications.id, row.id), eq(verifications.state, row.state)))
    .returning();
  if (!updated) return undefined;

  // A free additional code holds nothing: its state moves, no money does.
  if (row.holdId !== null) {
    const ledgerRequest = { holdId: row.holdId, actor: change.actor, reason: `${to}: ${change.reason}`, now: change.now };
    if (move === 'post') await postHold(tx, ledgerRequest);
    if (move === 'void') await voidHold(tx, ledgerRequest);
    if (move === 'expire') await expireHold(tx, ledgerRequest);
  }

  await tx.insert(verificationEvents).values(eventOf(row.state, updated, change));
  await announce(tx, [updated], change);
  // The customer's webhook event, in the outbox of this transaction: one per state change, with
  // the verification as the API shows it after the change (its events give receivers the order).
  await recordOutboundEvent(tx, outboundOf(tx, updated, change));
  return updated;
}

/**
 * transition() for many rows in one transaction: the engine's deadline batch. Every row must be in
 * the same state and the move must release the hold (a capture stays one at a time). The
 * compare-and-set is one UPDATE on the rows still in that state (and matching `where`, e.g. still
 * due); the rest were taken by another actor and are left alone. The winners get the same hold
 * release, audit event, notification, live events and outbox rows as transition() writes, in one
 * statement per table. Returns the rows moved.
 */
export async function transitionMany(
  tx: Tx,
  list: readonly VerificationRow[],
  to: VerificationState,
  change: TransitionChange & { where?: SQL },
): Promise<VerificationRow[]> {
  if (list.length === 0) return [];
  const from = list[0]!.state;
  if (list.some((r) => r.state !== from)) throw new Error('a batch transition needs rows in one state');
  const move = holdMoveFor(from, to);
  if (move !== 'void' && move !== 'expire') throw new Error(`no batch transition ${from} → ${to}`);
  const updated = await tx
    .update(verifications)
    .set(columnsFor(to, change))
    .where(and(inArray(verifications.id, list.map((r) => r.id)), eq(verifications.state, from), change.where))
    .returning();
  if (updated.length === 0) return [];
  await releaseHolds(tx, {
    holdIds: updated.flatMap((r) => (r.holdId === null ? [] : [r.holdId])),
    outcome: move === 'void' ? 'voided' : 'expired',
    actor: change.actor,
    reason: `${to}: ${change.reason}`,
    now: change.now,
  });
  await tx.insert(verificationEvents).values(updated.map((r) => eventOf(from, r, change)));
  await announce(tx, updated, change);
  await recordOutboundEvents(tx, updated.map((r) => outboundOf(tx, r, change)));
  return updated;
}

/** The columns a transition sets: the new state, and the end of all engine work on a terminal one. */
function columnsFor(to: VerificationState, change: TransitionChange) {
  const terminal = isTerminal(to);
  return {
    ...(terminal ? { nextCheckAt: null, leaseOwner: null, leaseUntil: null, purchaseUntil: null } : {}),
    ...change.set,
    state: to,
    updatedAt: change.now,
    resolvedAt: terminal ? change.now : null,
  };
}

function eventOf(from: VerificationState, row: VerificationRow, change: TransitionChange) {
  return { verificationId: row.id, fromState: from, toState: row.state, actor: change.actor, reason: change.reason, createdAt: change.now };
}

function outboundOf(tx: Tx, row: VerificationRow, change: TransitionChange): OutboundEvent {
  return { userId: row.userId, type: `verification.${row.state}` as OutboundEventType, subjectId: row.id, now: change.now, data: () => viewOf(tx, row) };
}

/** The customer's notice that a price came back to their balance (one per verification, by constraint). */
export async function notifyRefund(tx: Tx, row: VerificationRow, amountMinor: number, now: Date): Promise<void> {
  await notify(tx, refundNotice(row, amountMinor, now));
}

function refundNotice(row: VerificationRow, amountMinor: number, now: Date): Notice {
  return {
    userId: row.userId,
    verificationId: row.id,
    kind: 'refund_issued',
    title: `Refund for ${row.service}`,
    body: `${formatMinor(amountMinor, row.currency)} returned to your balance (${row.state}).`,
    now,
  };
}

/** What the customer is told of a transition: in-app notices and the live event, for each row. */
async function announce(tx: Tx, list: readonly VerificationRow[], change: TransitionChange): Promise<void> {
  const notices: Notice[] = [];
  for (const row of list) {
    if (row.state === 'received') {
      const price = row.priceMinor === 0 ? 'Nothing' : formatMinor(row.priceMinor, row.currency);
      notices.push({
        userId: row.userId,
        verificationId: row.id,
        kind: 'code_received',
        title: `Code received for ${row.service}`,
        body: row.code ? `Your code is ${row.code}. ${price} charged.` : `A message arrived. ${price} charged.`,
        now: change.now,
      });
    }
    // A purchase that fails while the customer waits for the answer is told in that answer; a
    // refund issued later (cancel, deadline, background recovery) gets a notification.
    // A free additional code had nothing held, so nothing comes back.
    const laterRefund =
      row.priceMinor > 0 && (row.state === 'cancelled' || row.state === 'expired' || (row.state === 'failed' && change.actor !== 'customer'));
    if (laterRefund) notices.push(refundNotice(row, row.priceMinor, change.now));
  }
  await notifyMany(tx, notices);
  await publishMany(tx, list.map((row) => ({ userId: row.userId, kind: 'verification' as const, id: row.id })));
}

export async function lockVerification(tx: Tx, id: string): Promise<VerificationRow | undefined> {
  const [row] = await tx.select().from(verifications).where(eq(verifications.id, id)).for('update');
  return row;
}

export async function loadVerification(ex: Executor, id: string): Promise<VerificationRow | undefined> {
  const [row] = await ex.select().from(verifications).where(eq(verifications.id, id));
  return row;
}

export function orderRef(row: VerificationRow): OrderRef {
  return {
    providerOrderId: row.providerOrderId!,
    phoneNumber: row.phoneNumber!,
    since: row.createdAt,
    ...(row.numberOptions?.capability === 'voice' ? { capability: 'voice' as const } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Number assignment and failure of a pending purchase
// ---------------------------------------------------------------------------------------------

/** What the customer is told when the upstream reused an order id (never the other verification). */
export const ORDER_ID_REUSED_ANSWER = 'the upstream gave this purchase an order id it had already given another one; you were not charged';

/**
 * pending → waiting with the upstream's order. `reused` when the upstream gave an order id that
 * another verification already holds (a seller reusing ids): the purchase fails instead, its hold
 * released, and the collision is raised for the operators. The order is never cancelled by that id,
 * which would cancel the other verification's order.
 */
export async function assignNumber(
  deps: LifecycleDeps,
  id: string,
  order: ProviderOrder,
  change: { actor: Actor; reason: string; responseStatus?: number },
): Promise<{ row: VerificationRow; assigned: boolean; reused?: boolean }> {
  try {
    return await assignNumberOnce(deps, id, order, change);
  } catch (error) {
    // Two purchases given the same id at the same moment: the loser's transaction met the unique
    // index; once the winner committed, a second attempt sees it and fails the purchase cleanly.
    if (pgErrorCode(error) !== '23505' || pgConstraint(error) !== 'verifications_provider_order') throw error;
    return assignNumberOnce(deps, id, order, change);
  }
}

async function assignNumberOnce(
  deps: LifecycleDeps,
  id: string,
  order: ProviderOrder,
  change: { actor: Actor; reason: string; responseStatus?: number },
): Promise<{ row: VerificationRow; assigned: boolean; reused?: boolean }> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const row = await lockVerification(tx, id);
    if (!row) throw new Error(`verification ${id} vanished`);
    const [holder] = await tx
      .select({ id: verifications.id })
      .from(verifications)
      .where(and(eq(verifications.provider, row.provider), eq(verifications.providerOrderId, order.providerOrderId), ne(verifications.id, row.id)));
    if (holder) return { row: await orderIdReused(deps, tx, row, order, holder.id, change, now), assigned: false, reused: true };
    if (row.state !== 'pending') {
      // Someone else resolved it (recovery gave up, or assigned it already). An order we hold
      // that the verification does not use is owed a cancel upstream.
      if (row.providerOrderId !== order.providerOrderId) await owePendingOrphan(tx, row, order, now);
      return { row, assigned: false };
    }
    const expiresAt = deadlineFor(row.createdAt, deps.config.VERIFICATION_TTL_SECONDS, order.endsAt);
    const updated = await transition(tx, row, 'waiting', {
      actor: change.actor,
      reason: change.reason,
      now,
      set: {
        phoneNumber: order.phoneNumber,
        providerOrderId: order.providerOrderId,
        expiresAt: expiresAt < row.expiresAt ? expiresAt : row.expiresAt,
        purchaseUntil: null,
        nextCheckAt: new Date(Math.min(now.getTime() + deps.config.POLL_INTERVAL_MS, expiresAt.getTime())),
        upstreamStatus: 'open',
        responseStatus: row.responseStatus ?? change.responseStatus ?? null,
      },
    });
    return { row: updated!, assigned: true };
  });
}

/**
 * The upstream answered with an order id another verification holds. A pending purchase fails with
 * its hold released; the alarm (diagnose, metrics), the audit log and an error log line name both
 * verifications for the operator. A verification already resolved keeps its state; only the alarm.
 */
async function orderIdReused(
  deps: LifecycleDeps,
  tx: Tx,
  row: VerificationRow,
  order: ProviderOrder,
  holderId: string,
  change: { actor: Actor },
  now: Date,
): Promise<VerificationRow> {
  deps.logger.error(
    { verification: row.id, holder: holderId, provider: row.provider, provider_order_id: order.providerOrderId },
    'the upstream reused an order id: purchase failed, not charged',
  );
  await recordAudit(tx, {
    actorId: null,
    actor: 'system',
    action: 'upstream.order_id_reused',
    subjectId: row.id,
    detail: { provider: row.provider, provider_order_id: order.providerOrderId, verification_id: row.id, holder_verification_id: holderId },
    now,
  });
  const alarm = { upstreamAlarm: 'order_id_reused' as const, upstreamAlarmAt: now };
  if (row.state === 'pending') {
    const failed = await transition(tx, row, 'failed', {
      actor: change.actor,
      reason: 'the upstream reused an order id',
      now,
      set: {
        ...alarm,
        failureReason: ORDER_ID_REUSED_ANSWER,
        responseStatus: row.responseStatus ?? 503,
        responseCode: row.responseCode ?? 'provider_unavailable',
        upstreamStatus: 'none',
      },
    });
    if (failed) return failed;
  }
  const [marked] = await tx.update(verifications).set({ ...alarm, updatedAt: now }).where(eq(verifications.id, row.id)).returning();
  return marked ?? row;
}

/** An upstream order that no verification will use: remember it so settlement cancels it. */
async function owePendingOrphan(tx: Tx, row: VerificationRow, order: ProviderOrder, now: Date): Promise<void> {
  if (row.providerOrderId === null) {
    await tx
      .update(verifications)
      .set({ providerOrderId: order.providerOrderId, upstreamStatus: 'cancel_owed', upstreamNextAt: now, updatedAt: now })
      .where(and(eq(verifications.id, row.id), sql`${verifications.providerOrderId} IS NULL`));
  }
}

/** pending → failed, hold voided. */
export async function failPurchase(
  deps: LifecycleDeps,
  id: string,
  change: {
    actor: Actor;
    reason: string;
    responseStatus?: number;
    responseCode?: string;
    upstream: UpstreamStatus;
    /** When a cancel owed is to be tried (default: now). */
    upstreamNextAt?: Date | null;
    /** The upstream order refused after it was bought (a mismatched number), kept so its cancel can be settled. */
    order?: ProviderOrder;
    /** What the customer is told, when it differs from the audit reason. */
    failureReason?: string;
  },
): Promise<VerificationRow | undefined> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const row = await lockVerification(tx, id);
    if (!row || row.state !== 'pending') return undefined;
    return transition(tx, row, 'failed', {
      actor: change.actor,
      reason: change.reason,
      now,
      set: {
        failureReason: change.failureReason ?? change.reason,
        responseStatus: row.responseStatus ?? change.responseStatus ?? null,
        responseCode: row.responseCode ?? change.responseCode ?? null,
        upstreamStatus: change.upstream,
        upstreamNextAt: change.upstream === 'cancel_owed' ? (change.upstreamNextAt ?? now) : null,
        ...(change.order ? { providerOrderId: change.order.providerOrderId, phoneNumber: change.order.phoneNumber } : {}),
      },
    });
  });
}

/** Records the first answer given for an ambiguous purchase (202) so a replay gives it again. */
export async function markPurchaseUncertain(deps: LifecycleDeps, id: string, reason: string): Promise<VerificationRow | undefined> {
  const now = deps.clock.now();
  const [row] = await deps.database.db
    .update(verifications)
    .set({ responseStatus: 202, purchaseUntil: null, nextCheckAt: now, failureReason: reason, updatedAt: now })
    .where(and(eq(verifications.id, id), eq(verifications.state, 'pending')))
    .returning();
  return row;
}

// ---------------------------------------------------------------------------------------------
// SMS capture
// ---------------------------------------------------------------------------------------------

export interface CaptureResult {
  row: VerificationRow;
  /** Messages stored by this call (a message already stored is not stored again). */
  stored: number;
  captured: boolean;
}

/**
 * When a message arrived, for the money rule "only an SMS that arrived by the deadline is charged":
 * the upstream's timestamp, never later than the moment we hold it (`now`). An upstream that
 * gives no timestamp is dated when we first saw the message (the adapters do that), so a message
 * first seen after the deadline is late however it reached us.
 */
export function arrivedAt(message: ProviderMessage, now: Date): number {
  return Math.min(message.receivedAt.getTime(), now.getTime());
}

/** Whether a message counts for a capture: it arrived by the verification's deadline. */
export function arrivedInTime(message: ProviderMessage, expiresAt: Date, now: Date): boolean {
  return arrivedAt(message, now) <= expiresAt.getTime();
}

/**
 * Stores the messages of a verification and captures its hold on the first one that arrived by
 * the deadline. Messages older than the purchase belong to the number's previous holder and are
 * dropped. A message for a cancelled or expired verification is stored as late: shown, never
 * charged. So is one that reaches a verification still waiting after its deadline (a late engine,
 * webhook or manual SMS): the verification then expires here, its hold released and the upstream
 * cancel owed, whichever path brought the message.
 */
export async function recordMessages(
  deps: LifecycleDeps,
  id: string,
  messages: ProviderMessage[],
  actor: Actor,
): Promise<CaptureResult | undefined> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const row = await lockVerification(tx, id);
    if (!row) return undefined;
    const seenBefore = await seenByFamily(tx, row);
    const fresh = messages
      .filter((m) => m.receivedAt.getTime() >= row.createdAt.getTime() && !seenBefore.has(m.providerMessageId))
      .sort((a, b) => a.receivedAt.getTime() - b.receivedAt.getTime());
    if (fresh.length === 0 || row.state === 'pending') return { row, stored: 0, captured: false };
    const inTime = row.state === 'waiting' ? fresh.filter((m) => arrivedInTime(m, row.expiresAt, now)) : [];
    const capturing = inTime.length > 0;
    const late = capturing ? false : row.state !== 'received';
    const inserted = await tx
      .insert(verificationMessages)
      .values(
        fresh.map((m) => ({
          verificationId: row.id,
          providerMessageId: m.providerMessageId,
          text: m.text,
          code: m.code,
          receivedAt: new Date(arrivedAt(m, now)),
          late,
          createdAt: now,
        })),
      )
      .onConflictDoNothing()
      .returning({ id: verificationMessages.id });
    if (capturing) {
      const first = inTime.find((m) => m.code) ?? inTime[0]!;
      const updated = await transition(tx, row, 'received', {
        actor,
        reason: 'sms received',
        now,
        // An upstream that can be told the order is finished (SMS-Activate setStatus 6) is told by
        // the engine, outside this transaction (settlement.ts); others complete on their own.
        set: finishAfterCapture(deps, row, first.code, now),
      });
      return { row: updated ?? row, stored: inserted.length, captured: updated !== undefined };
    }
    if (row.state === 'waiting') {
      // Every message arrived after the deadline (so now is past it too): the deadline wins.
      const updated = await transition(tx, row, 'expired', {
        actor,
        reason: 'no SMS before the deadline; the SMS that came after it is stored as late',
        now,
        set: { upstreamStatus: 'cancel_owed', upstreamNextAt: now, nextCheckAt: new Date(now.getTime() + deps.config.POLL_INTERVAL_MS) },
      });
      return { row: updated ?? row, stored: inserted.length, captured: false };
    }
    if (inserted.length > 0) {
      await tx.update(verifications).set({ updatedAt: now }).where(eq(verifications.id, row.id));
      await publish(tx, { userId: row.userId, kind: 'verification', id: row.id });
    }
    return { row, stored: inserted.length, captured: false };
  });
}

/**
 * Messages another verification of the same number (its parent, an earlier additional code) had
 * stored before this one was asked for: an upstream that keeps one order for several codes reports
 * the previous code again (SMS-Activate STATUS_WAIT_RETRY:<code>), and that code is never this
 * verification's. Empty for a verification that bought its own number.
 */
async function seenByFamily(tx: Tx, row: VerificationRow): Promise<Set<string>> {
  if (row.parentId === null) return new Set();
  const seen = await tx
    .select({ id: verificationMessages.providerMessageId })
    .from(verificationMessages)
    .innerJoin(verifications, eq(verifications.id, verificationMessages.verificationId))
    .where(
      and(
        sql`(${verifications.id} = ${row.parentId} OR ${verifications.parentId} = ${row.parentId})`,
        ne(verifications.id, row.id),
        lte(verificationMessages.createdAt, row.createdAt),
      ),
    );
  return new Set(seen.map((m) => m.id));
}

/**
 * What a capture leaves owed upstream. An upstream that can be told the order is finished
 * (SMS-Activate setStatus 6) is told by the engine (settlement.ts); one that also gives another code
 * on the same order is told ANOTHER_CODE_WINDOW_SECONDS later, since a finished order gives no more
 * codes. An additional code on its parent's order: the parent's finish covers it; one that owns its
 * order (DaisySMS extra activation) owes its own finish.
 */
function finishAfterCapture(deps: LifecycleDeps, row: VerificationRow, code: string | null, now: Date): TransitionChange['set'] {
  const provider = providerFor(deps, row.provider);
  if (!provider.complete) return { code, upstreamStatus: 'completed' };
  if (row.parentId !== null && !row.ownOrder) return { code, upstreamStatus: 'none' };
  // A child owning its order (an extra activation) is finished at once: more codes are asked on the
  // number's first order, whose finish waits.
  const window = provider.anotherCode && row.parentId === null ? deps.config.ANOTHER_CODE_WINDOW_SECONDS * 1000 : 0;
  return { code, upstreamStatus: 'finish_owed', upstreamNextAt: new Date(now.getTime() + window) };
}

/**
 * Raises an upstream alarm on a verification (once: the first raise is kept), for diagnose and the
 * metrics; logged as a warning. Returns whether this call raised it.
 */
export async function raiseUpstreamAlarm(deps: LifecycleDeps, row: VerificationRow, alarm: UpstreamAlarm, why: string): Promise<boolean> {
  if (row.upstreamAlarm !== null) return false;
  const now = deps.clock.now();
  const [raised] = await deps.database.db
    .update(verifications)
    .set({ upstreamAlarm: alarm, upstreamAlarmAt: now })
    .where(and(eq(verifications.id, row.id), isNull(verifications.upstreamAlarm)))
    .returning({ id: verifications.id });
  if (raised) deps.logger.warn({ verification: row.id, provider: row.provider, provider_order_id: row.providerOrderId, alarm }, why);
  return raised !== undefined;
}

/** An audit event that records a change without a state change (from = to): a repair, a settlement. */
export async function recordEvent(tx: Tx, id: string, state: VerificationState, actor: Actor, reason: string, now: Date): Promise<void> {
  await tx.insert(verificationEvents).values({ verificationId: id, fromState: state, toState: state, actor, reason, createdAt: now });
}
