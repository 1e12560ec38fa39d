import { and, eq, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { firstRow, rows, type Database, type Executor, type Tx } from '../db/database.ts';
import { publish } from '../events/bus.ts';
import { recordAudit } from '../accounts/audit.ts';
import { expireHold, findHold, postHold, refundCharge, voidHold, type HoldOutcome } from '../ledger/ledger.ts';
import { notify } from '../notifications/notifications.ts';
import type { ProviderBreaker } from '../providers/breaker.ts';
import { isProviderError, type Provider, type ProviderMessage, type ProviderOrder } from '../providers/provider.ts';
import { formatMinor } from '../money.ts';
import { verificationEvents, verificationMessages, verifications, type Actor, type UpstreamStatus, type VerificationState } from './schema.ts';
import { backoffMs, deadlineFor, holdMoveFor, isRefunded, isTerminal } from './transitions.ts';

/**
 * The verification lifecycle: the only code that changes a verification's state. Every transition
 * is a compare-and-set on the current state, in one transaction with its ledger write, its audit
 * event and its notification. Upstream calls always happen outside transactions.
 */
export type VerificationRow = typeof verifications.$inferSelect;

export interface LifecycleDeps {
  database: Database;
  clock: Clock;
  config: Config;
  /** The provider, already wrapped in its breaker. */
  provider: Provider;
  breaker: ProviderBreaker;
  logger: Logger;
  /** Test seam: called at named points between phases; a throw there simulates a crash. */
  faults?: (point: FaultPoint) => void | Promise<void>;
}

export type FaultPoint =
  | 'purchase.held'
  | 'purchase.bought'
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
  const terminal = isTerminal(to);
  const [updated] = await tx
    .update(verifications)
    .set({
      ...(terminal ? { nextCheckAt: null, leaseOwner: null, leaseUntil: null, purchaseUntil: null } : {}),
      ...change.set,
      state: to,
      updatedAt: change.now,
      resolvedAt: terminal ? change.now : null,
    })
    .where(and(eq(verifications.id, row.id), eq(verifications.state, row.state)))
    .returning();
  if (!updated) return undefined;

  const ledgerRequest = { holdId: row.holdId, actor: change.actor, reason: `${to}: ${change.reason}`, now: change.now };
  if (move === 'post') await postHold(tx, ledgerRequest);
  if (move === 'void') await voidHold(tx, ledgerRequest);
  if (move === 'expire') await expireHold(tx, ledgerRequest);

  await tx.insert(verificationEvents).values({
    verificationId: row.id,
    fromState: row.state,
    toState: to,
    actor: change.actor,
    reason: change.reason,
    createdAt: change.now,
  });
  await announce(tx, updated, change);
  return updated;
}

/** The customer's notice that a price came back to their balance (one per verification, by constraint). */
async function notifyRefund(tx: Tx, row: VerificationRow, amountMinor: number, now: Date): Promise<void> {
  await notify(tx, {
    userId: row.userId,
    verificationId: row.id,
    kind: 'refund_issued',
    title: `Refund for ${row.service}`,
    body: `${formatMinor(amountMinor, row.currency)} returned to your balance (${row.state}).`,
    now,
  });
}

async function announce(tx: Tx, row: VerificationRow, change: TransitionChange): Promise<void> {
  const price = formatMinor(row.priceMinor, row.currency);
  if (row.state === 'received') {
    await notify(tx, {
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
  const laterRefund = row.state === 'cancelled' || row.state === 'expired' || (row.state === 'failed' && change.actor !== 'customer');
  if (laterRefund) await notifyRefund(tx, row, row.priceMinor, change.now);
  await publish(tx, { userId: row.userId, kind: 'verification', id: row.id });
  if (row.state !== 'waiting') await publish(tx, { userId: row.userId, kind: 'wallet', id: row.userId });
}

export async function lockVerification(tx: Tx, id: string): Promise<VerificationRow | undefined> {
  const [row] = await tx.select().from(verifications).where(eq(verifications.id, id)).for('update');
  return row;
}

export async function loadVerification(ex: Executor, id: string): Promise<VerificationRow | undefined> {
  const [row] = await ex.select().from(verifications).where(eq(verifications.id, id));
  return row;
}

export function orderRef(row: VerificationRow) {
  return { providerOrderId: row.providerOrderId!, phoneNumber: row.phoneNumber!, since: row.createdAt };
}

// ---------------------------------------------------------------------------------------------
// Number assignment and failure of a pending purchase
// ---------------------------------------------------------------------------------------------

/** pending → waiting with the upstream's order. */
export async function assignNumber(
  deps: LifecycleDeps,
  id: string,
  order: ProviderOrder,
  change: { actor: Actor; reason: string; responseStatus?: number },
): Promise<{ row: VerificationRow; assigned: boolean }> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const row = await lockVerification(tx, id);
    if (!row) throw new Error(`verification ${id} vanished`);
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
  change: { actor: Actor; reason: string; responseStatus?: number; responseCode?: string; upstream: UpstreamStatus },
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
        failureReason: change.reason,
        responseStatus: row.responseStatus ?? change.responseStatus ?? null,
        responseCode: row.responseCode ?? change.responseCode ?? null,
        upstreamStatus: change.upstream,
        upstreamNextAt: change.upstream === 'cancel_owed' ? now : null,
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
 * Stores the messages of a verification and captures its hold on the first one. Messages older than
 * the purchase belong to the number's previous holder and are dropped. A message for a cancelled
 * or expired verification is stored as late: shown, never charged.
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
    const fresh = messages
      .filter((m) => m.receivedAt.getTime() >= row.createdAt.getTime())
      .sort((a, b) => a.receivedAt.getTime() - b.receivedAt.getTime());
    if (fresh.length === 0 || row.state === 'pending') return { row, stored: 0, captured: false };
    const late = row.state !== 'waiting' && row.state !== 'received';
    const inserted = await tx
      .insert(verificationMessages)
      .values(
        fresh.map((m) => ({
          verificationId: row.id,
          providerMessageId: m.providerMessageId,
          text: m.text,
          code: m.code,
          receivedAt: m.receivedAt,
          late,
          createdAt: now,
        })),
      )
      .onConflictDoNothing()
      .returning({ id: verificationMessages.id });
    if (row.state === 'waiting') {
      const first = fresh.find((m) => m.code) ?? fresh[0]!;
      const updated = await transition(tx, row, 'received', {
        actor,
        reason: 'sms received',
        now,
        set: { code: first.code, upstreamStatus: 'completed' },
      });
      return { row: updated ?? row, stored: inserted.length, captured: updated !== undefined };
    }
    if (inserted.length > 0) {
      await tx.update(verifications).set({ updatedAt: now }).where(eq(verifications.id, row.id));
      await publish(tx, { userId: row.userId, kind: 'verification', id: row.id });
    }
    return { row, stored: inserted.length, captured: false };
  });
}

/** Asks the upstream for the verification's messages and records them. */
export async function checkUpstream(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<CaptureResult | undefined> {
  const check = await deps.provider.check(orderRef(row));
  await fault(deps, 'capture.fetched');
  if (check.messages.length === 0) return { row, stored: 0, captured: false };
  return recordMessages(deps, row.id, check.messages, actor);
}

// ---------------------------------------------------------------------------------------------
// Cancel, deadline, recovery, upstream settlement
// ---------------------------------------------------------------------------------------------

export type CancelResult =
  | { kind: 'cancelled'; row: VerificationRow }
  | { kind: 'invalid_state'; row: VerificationRow }
  | { kind: 'too_early'; row: VerificationRow; retryAfterSeconds: number };

/**
 * Customer (or admin) cancel: upstream first, then waiting → cancelled with the hold voided. When
 * the SMS won the race the compare-and-set fails and the caller shows the code. When the upstream
 * is unreachable the customer is refunded anyway and the upstream cancel is owed.
 */
export async function cancelVerification(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<CancelResult> {
  if (row.state === 'cancelled') return { kind: 'cancelled', row };
  if (row.state !== 'waiting') return { kind: 'invalid_state', row };

  let upstream: UpstreamStatus = 'cancelled';
  let upstreamNextAt: Date | null = null;
  try {
    const answer = await deps.provider.cancel(row.providerOrderId!);
    if (answer.outcome === 'too_early') return { kind: 'too_early', row, retryAfterSeconds: answer.retryAfterSeconds };
    if (answer.outcome === 'already_received') {
      const captured = await checkUpstream(deps, row, actor).catch(() => undefined);
      // Not captured here: show the verification as it is now (another actor may have settled it).
      const current = captured?.captured ? captured.row : (await loadVerification(deps.database.db, row.id))!;
      return current.state === 'cancelled' ? { kind: 'cancelled', row: current } : { kind: 'invalid_state', row: current };
    }
  } catch (error) {
    deps.logger.warn({ verification: row.id, err: describe(error) }, 'upstream cancel failed; refunding and owing the cancel');
    upstream = 'cancel_owed';
    upstreamNextAt = deps.clock.now();
  }
  await fault(deps, 'cancel.upstream_done');

  const now = deps.clock.now();
  const result = await deps.database.transaction(async (tx) => {
    const current = await lockVerification(tx, row.id);
    // Another cancel won meanwhile: cancelling a cancelled verification answers it unchanged.
    if (current?.state === 'cancelled') return { kind: 'cancelled' as const, row: current };
    if (!current || current.state !== 'waiting') return { kind: 'invalid_state' as const, row: current ?? row };
    const updated = await transition(tx, current, 'cancelled', {
      actor,
      reason: upstream === 'cancelled' ? 'cancelled by customer' : 'cancelled by customer; upstream cancel pending',
      now,
      set: { upstreamStatus: upstream, upstreamNextAt },
    });
    return updated ? { kind: 'cancelled' as const, row: updated } : { kind: 'invalid_state' as const, row: current };
  });
  return result;
}

/**
 * Deadline: one last look for the SMS, then cancel upstream, then waiting → expired with the hold
 * released. A provider that is down delays nothing but the upstream cancel, which becomes owed.
 */
export async function expireVerification(deps: LifecycleDeps, row: VerificationRow, actor: Actor = 'sweeper'): Promise<VerificationRow | undefined> {
  if (row.state !== 'waiting') return row;
  if (!deps.breaker.isOpen()) {
    try {
      const captured = await checkUpstream(deps, row, actor);
      if (captured?.captured || captured?.row.state !== 'waiting') return captured?.row;
    } catch (error) {
      deps.logger.debug({ verification: row.id, err: describe(error) }, 'last check before expiry failed');
    }
  }
  await fault(deps, 'expire.checked');

  let upstream: UpstreamStatus = 'cancel_owed';
  let upstreamNextAt: Date | null = deps.clock.now();
  if (!deps.breaker.isOpen()) {
    try {
      const answer = await deps.provider.cancel(row.providerOrderId!);
      if (answer.outcome === 'cancelled' || answer.outcome === 'gone') {
        upstream = 'cancelled';
        upstreamNextAt = null;
      } else if (answer.outcome === 'already_received') {
        // The SMS beat the deadline upstream: deliver it if we can read it.
        const captured = await checkUpstream(deps, row, actor).catch(() => undefined);
        if (captured?.captured) return captured.row;
        upstream = 'completed';
        upstreamNextAt = null;
      } else {
        upstreamNextAt = new Date(deps.clock.now().getTime() + answer.retryAfterSeconds * 1000);
      }
    } catch (error) {
      deps.logger.warn({ verification: row.id, err: describe(error) }, 'upstream cancel at deadline failed; owed');
    }
  }
  await fault(deps, 'expire.upstream_done');

  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const current = await lockVerification(tx, row.id);
    if (!current || current.state !== 'waiting') return current;
    return (
      (await transition(tx, current, 'expired', {
        actor,
        reason: 'no SMS before the deadline',
        now,
        // Keep watching for a while: an SMS that arrives late is shown to the customer, free.
        set: { upstreamStatus: upstream, upstreamNextAt, nextCheckAt: new Date(now.getTime() + deps.config.POLL_INTERVAL_MS) },
      })) ?? current
    );
  });
}

/** Asks the upstream about a purchase by our client reference, never adopting another verification's order. */
async function lookUpPurchase(deps: LifecycleDeps, row: VerificationRow) {
  const claimed = await rows<{ provider_order_id: string }>(
    deps.database.db,
    sql`SELECT provider_order_id FROM verifications
        WHERE provider = ${row.provider} AND provider_order_id IS NOT NULL AND id <> ${row.id}
          AND created_at >= ${new Date(row.createdAt.getTime() - 3_600_000)}`,
  );
  return deps.provider.lookup({
    clientRef: row.id,
    service: row.service,
    country: row.country,
    maxCostMinor: row.maxCostMinor,
    requestedAt: row.createdAt,
    claimedOrderIds: new Set(claimed.map((c) => c.provider_order_id)),
  });
}

/**
 * Recovery of a pending purchase whose call is no longer in flight: ask the upstream about our
 * client reference, never buy again. Found → waiting; provably absent → failed; still unknown at
 * the deadline → failed with the reference kept so reconciliation can find an upstream orphan.
 */
export async function recoverPurchase(deps: LifecycleDeps, row: VerificationRow, actor: Actor = 'recovery'): Promise<VerificationRow | undefined> {
  if (row.state !== 'pending') return row;
  const now = deps.clock.now();
  let status: 'found' | 'absent' | 'unknown' = 'unknown';
  let order: ProviderOrder | undefined;
  if (!deps.breaker.isOpen()) {
    try {
      const answer = await lookUpPurchase(deps, row);
      status = answer.status;
      if (answer.status === 'found') order = answer.order;
    } catch (error) {
      deps.logger.warn({ verification: row.id, err: describe(error) }, 'lookup of a pending purchase failed');
    }
  }
  await fault(deps, 'recover.looked_up');

  if (order) return (await assignNumber(deps, row.id, order, { actor, reason: 'purchase found upstream', responseStatus: 202 })).row;
  if (status === 'absent') {
    return failPurchase(deps, row.id, { actor, reason: 'purchase not found upstream', responseStatus: 503, responseCode: 'provider_unavailable', upstream: 'absent' });
  }
  if (now >= row.expiresAt) {
    return failPurchase(deps, row.id, {
      actor,
      reason: 'purchase outcome unknown at the deadline',
      responseStatus: 503,
      responseCode: 'provider_unavailable',
      upstream: 'orphan_suspected',
    });
  }
  return row;
}

/**
 * Retries an owed upstream cancel. Returns the new upstream status. With an actor (the reconciler),
 * a settled cancel is also recorded as an audit event, in the same transaction as the change.
 */
export async function settleUpstream(deps: LifecycleDeps, row: VerificationRow, actor?: Actor): Promise<UpstreamStatus> {
  if (row.upstreamStatus !== 'cancel_owed' || !row.providerOrderId) return row.upstreamStatus;
  const now = deps.clock.now();
  let next: UpstreamStatus = 'cancel_owed';
  let nextAt: Date | null = new Date(now.getTime() + backoffMs(row.upstreamAttempts + 1));
  try {
    const answer = await deps.provider.cancel(row.providerOrderId);
    if (answer.outcome === 'cancelled' || answer.outcome === 'gone') next = 'cancelled';
    else if (answer.outcome === 'already_received') next = 'completed';
    else nextAt = new Date(now.getTime() + answer.retryAfterSeconds * 1000);
  } catch (error) {
    deps.logger.warn({ verification: row.id, err: describe(error) }, 'owed upstream cancel failed again');
  }
  const record = (ex: Executor) =>
    ex
      .update(verifications)
      .set({
        upstreamStatus: next,
        upstreamNextAt: next === 'cancel_owed' ? nextAt : null,
        upstreamAttempts: sql`${verifications.upstreamAttempts} + 1`,
        updatedAt: now,
      })
      .where(and(eq(verifications.id, row.id), eq(verifications.upstreamStatus, 'cancel_owed')))
      .returning({ state: verifications.state });
  if (!actor) {
    await record(deps.database.db);
    return next;
  }
  await deps.database.transaction(async (tx) => {
    const [changed] = await record(tx);
    if (changed && next !== 'cancel_owed') {
      await recordEvent(tx, row.id, changed.state, actor, `owed upstream cancel settled: ${next}`, now);
    }
  });
  return next;
}

// ---------------------------------------------------------------------------------------------
// Reconciliation repairs (DESIGN §7): rows the normal flow left inconsistent are put right through
// the same ledger calls, compare-and-set, one transaction with the audit event. None of them ever
// takes money for a verification that was not delivered, or refunds one that was.
// ---------------------------------------------------------------------------------------------

/** An audit event that records a repair without a state change (from = to). */
async function recordEvent(tx: Tx, id: string, state: VerificationState, actor: Actor, reason: string, now: Date): Promise<void> {
  await tx.insert(verificationEvents).values({ verificationId: id, fromState: state, toState: state, actor, reason, createdAt: now });
}

/** How a terminal state resolves its hold: delivered → posted, deadline → expired, cancel/failure → voided. */
export function holdOutcomeFor(state: VerificationState): HoldOutcome | undefined {
  if (state === 'received') return 'posted';
  if (state === 'expired') return 'expired';
  if (state === 'cancelled' || state === 'failed') return 'voided';
  return undefined;
}

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
    if (!row || !outcome) return undefined;
    const hold = await findHold(tx, row.holdId);
    if (hold.outcome !== null) return undefined;
    const request = { holdId: row.holdId, actor, reason: `${row.state}: hold left unresolved, resolved by reconciliation`, now };
    if (outcome === 'posted') await postHold(tx, request);
    else if (outcome === 'expired') await expireHold(tx, request);
    else await voidHold(tx, request);
    await recordEvent(tx, row.id, row.state, actor, `unresolved hold ${outcome === 'posted' ? 'captured' : 'released'} (${outcome})`, now);
    if (outcome !== 'posted') await notifyRefund(tx, row, row.priceMinor, now);
    await publish(tx, { userId: row.userId, kind: 'wallet', id: row.userId });
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
    if (!row || !isRefunded(row.state)) return undefined;
    const hold = await findHold(tx, row.holdId);
    if (hold.outcome !== 'posted') return undefined;
    const { transfer, replayed } = await refundCharge(tx, {
      holdId: row.holdId,
      actor,
      reason: `refund of a charge captured for a ${row.state} verification`,
      now,
    });
    if (replayed) return undefined;
    await recordEvent(tx, row.id, row.state, actor, `charge of ${formatMinor(transfer.amountMinor, row.currency)} refunded by correction transfer`, now);
    await notifyRefund(tx, row, transfer.amountMinor, now);
    await publish(tx, { userId: row.userId, kind: 'wallet', id: row.userId });
    return transfer.amountMinor;
  });
}

/**
 * A purchase given up while its outcome was unknown (upstream_status orphan_suspected): ask the
 * upstream about our client reference again. An order found is cancelled upstream and remembered on
 * the verification; one provably absent closes the matter. The customer's money is not touched (it
 * was released when the purchase failed). Returns the new upstream status.
 */
export async function settleSuspectedOrphan(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<UpstreamStatus> {
  if (row.upstreamStatus !== 'orphan_suspected') return row.upstreamStatus;
  const answer = await lookUpPurchase(deps, row);
  if (answer.status === 'unknown') return 'orphan_suspected';
  let next: UpstreamStatus = 'absent';
  let nextAt: Date | null = null;
  let orderId: string | null = null;
  if (answer.status === 'found') {
    orderId = answer.order.providerOrderId;
    next = 'cancel_owed';
    nextAt = deps.clock.now();
    try {
      const cancel = await deps.provider.cancel(orderId);
      if (cancel.outcome === 'cancelled' || cancel.outcome === 'gone') next = 'cancelled';
      else if (cancel.outcome === 'already_received') next = 'completed';
      else nextAt = new Date(deps.clock.now().getTime() + cancel.retryAfterSeconds * 1000);
    } catch (error) {
      deps.logger.warn({ verification: row.id, err: describe(error) }, 'cancel of a suspected orphan failed; owed');
    }
  }
  const now = deps.clock.now();
  await deps.database.transaction(async (tx) => {
    const [changed] = await tx
      .update(verifications)
      .set({
        upstreamStatus: next,
        upstreamNextAt: next === 'cancel_owed' ? nextAt : null,
        ...(orderId ? { providerOrderId: sql`coalesce(${verifications.providerOrderId}, ${orderId})` } : {}),
        updatedAt: now,
      })
      .where(and(eq(verifications.id, row.id), eq(verifications.upstreamStatus, 'orphan_suspected')))
      .returning({ state: verifications.state });
    if (changed) {
      const what = orderId ? `order ${orderId} found upstream: ${next}` : 'purchase provably absent upstream';
      await recordEvent(tx, row.id, changed.state, actor, `suspected orphan settled: ${what}`, now);
    }
  });
  return next;
}

/**
 * An order the upstream says is active but no verification knows: nobody will ever use it, so
 * cancel it (the platform paid for it). Audited in the audit log, as there is no verification.
 */
export async function cancelForeignOrder(
  deps: LifecycleDeps,
  providerOrderId: string,
  actor: Actor,
): Promise<'cancelled' | 'gone' | 'already_received' | 'too_early'> {
  const answer = await deps.provider.cancel(providerOrderId);
  await recordAudit(deps.database.db, {
    actorId: null,
    actor: 'system',
    action: 'reconcile.upstream_orphan_cancel',
    subjectId: null,
    detail: { by: actor, provider: deps.provider.name, provider_order_id: providerOrderId, outcome: answer.outcome },
    now: deps.clock.now(),
  });
  return answer.outcome;
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

export function describe(error: unknown): Record<string, unknown> {
  if (isProviderError(error)) return { kind: error.kind, code: error.code, message: error.message };
  return { message: error instanceof Error ? error.message : String(error) };
}

/** Counts active verifications and recent purchases of a customer (for limits). */
export async function customerActivity(ex: Executor, userId: string, since: Date): Promise<{ active: number; recent: number }> {
  const row = await firstRow<{ active: number; recent: number }>(
    ex,
    sql`SELECT count(*) FILTER (WHERE state IN ('pending', 'waiting'))::int AS active,
               count(*) FILTER (WHERE created_at >= ${since})::int AS recent
        FROM verifications WHERE user_id = ${userId} AND (state IN ('pending', 'waiting') OR created_at >= ${since})`,
  );
  return { active: Number(row?.active ?? 0), recent: Number(row?.recent ?? 0) };
}
