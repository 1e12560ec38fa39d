import { and, eq, sql } from 'drizzle-orm';
import { recordAudit } from '../accounts/audit.ts';
import { rows, type Executor } from '../db/database.ts';
import { isProviderError, type CancelOutcome, type LookupResult } from '../providers/provider.ts';
import { breakerFor, providerFor } from '../providers/set.ts';
import { recordEvent, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import { settleReport } from './report-refunds.ts';
import { verifications, type Actor, type UpstreamStatus } from './schema.ts';
import { backoffMs } from './transitions.ts';

/**
 * Upstream settlement: what we still owe an upstream order once the customer's money is settled
 * (see docs/architecture.md, "Upstream settlement"). A customer's refund never waits for the
 * upstream; the cancel it implies is tracked on the verification (upstream_status) and retried here,
 * by the engine and by reconcile, at the upstream's pace.
 */

export interface UpstreamSettlement {
  status: UpstreamStatus;
  /** When to ask again; set only while the cancel is still owed. */
  nextAt: Date | null;
}

/**
 * What an answer to "cancel this order" leaves owed — the one mapping every caller uses. `failed`
 * stands for a call that did not get an answer; `retryAt` is when such a cancel is tried again.
 */
export function settlementAfterCancel(answer: CancelOutcome | 'failed', now: Date, retryAt: Date): UpstreamSettlement {
  if (answer === 'failed') return { status: 'cancel_owed', nextAt: retryAt };
  switch (answer.outcome) {
    case 'cancelled':
    case 'gone':
      return { status: 'cancelled', nextAt: null };
    case 'already_received':
      return { status: 'completed', nextAt: null };
    case 'too_early':
      return { status: 'cancel_owed', nextAt: new Date(now.getTime() + answer.retryAfterSeconds * 1000) };
  }
}

/**
 * Asks the upstream to cancel an order. An upstream failure is logged and answered as `failed`
 * (the cancel stays owed); anything else is not the upstream's and is thrown.
 */
export async function requestUpstreamCancel(
  deps: LifecycleDeps,
  row: Pick<VerificationRow, 'id' | 'provider' | 'providerOrderId'>,
  context: { onFailure: string },
): Promise<CancelOutcome | 'failed'> {
  try {
    return await providerFor(deps, row.provider).cancel(row.providerOrderId!);
  } catch (error) {
    if (!isProviderError(error)) throw error;
    deps.logger.warn({ verification: row.id, provider: row.provider, err: error }, context.onFailure);
    return 'failed';
  }
}

/** Asks the upstream about a purchase by our client reference, never adopting another verification's order. */
export async function lookUpPurchase(deps: LifecycleDeps, row: VerificationRow): Promise<LookupResult> {
  const claimed = await rows<{ provider_order_id: string }>(
    deps.database.db,
    sql`SELECT provider_order_id FROM verifications
        WHERE provider = ${row.provider} AND provider_order_id IS NOT NULL AND id <> ${row.id}
          AND created_at >= ${new Date(row.createdAt.getTime() - 3_600_000)}`,
  );
  return providerFor(deps, row.provider).lookup({
    clientRef: row.id,
    service: row.service,
    country: row.country,
    maxCostMinor: row.maxCostMinor,
    ...(row.numberOptions ? { options: row.numberOptions } : {}),
    requestedAt: row.createdAt,
    claimedOrderIds: new Set(claimed.map((c) => c.provider_order_id)),
  });
}

/** Tries to finish a delivered order upstream at most this many times; after that it ends on its own. */
export const FINISH_ATTEMPTS = 5;

/**
 * Tells the upstream a delivered order is finished (SMS-Activate setStatus 6), so the seller closes
 * it instead of keeping the number for its whole lifetime. Nothing about the customer's money
 * depends on it; a failure is retried with backoff, FINISH_ATTEMPTS times. Every answer, and every
 * failure, is recorded in the verification's history. Returns the new upstream status.
 */
async function finishUpstream(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<UpstreamStatus> {
  const now = deps.clock.now();
  if (breakerFor(deps, row.provider).isOpen()) {
    // An open breaker skips the call without spending one of the attempts: asked again later.
    await deps.database.db
      .update(verifications)
      .set({ upstreamNextAt: new Date(now.getTime() + backoffMs(row.upstreamAttempts + 1)) })
      .where(and(eq(verifications.id, row.id), eq(verifications.upstreamStatus, 'finish_owed')));
    return 'finish_owed';
  }
  const next = await askToFinish(deps, row);
  const answeredAt = deps.clock.now();
  await deps.database.transaction(async (tx) => {
    const [changed] = await tx
      .update(verifications)
      .set({ upstreamStatus: next.status, upstreamNextAt: next.nextAt, upstreamAttempts: sql`${verifications.upstreamAttempts} + 1`, updatedAt: answeredAt })
      .where(and(eq(verifications.id, row.id), eq(verifications.upstreamStatus, 'finish_owed')))
      .returning({ state: verifications.state });
    if (changed) await recordEvent(tx, row.id, changed.state, actor, next.said, answeredAt);
  });
  return next.status;
}

/** The finish call and what its answer (or failure) leaves owed, in the words the history records. */
async function askToFinish(deps: LifecycleDeps, row: VerificationRow): Promise<UpstreamSettlement & { said: string }> {
  const provider = providerFor(deps, row.provider);
  if (!provider.complete || !row.providerOrderId) {
    return { status: 'completed', nextAt: null, said: 'the upstream cannot be told the order is finished; it ends on its own' };
  }
  try {
    const outcome = await provider.complete(row.providerOrderId);
    return { status: 'completed', nextAt: null, said: outcome === 'gone' ? 'upstream order already closed upstream' : 'upstream order finished' };
  } catch (error) {
    if (!isProviderError(error)) throw error;
    deps.logger.warn({ verification: row.id, err: error }, 'finishing the upstream order failed');
    const attempts = row.upstreamAttempts + 1;
    if (attempts >= FINISH_ATTEMPTS) {
      return { status: 'completed', nextAt: null, said: `upstream finish failed (${error.code}); given up after ${attempts} attempts, the order ends on its own` };
    }
    const retryAt = new Date(deps.clock.now().getTime() + backoffMs(attempts));
    return { status: 'finish_owed', nextAt: retryAt, said: `upstream finish failed (${error.code}); retrying` };
  }
}

/**
 * Retries an owed upstream cancel, or finishes a delivered order (finishUpstream). Returns the new
 * upstream status. With an actor (the engine's sweeper, the reconciler), a settled cancel is also
 * recorded as an audit event, in the same transaction as the change.
 */
export async function settleUpstream(deps: LifecycleDeps, row: VerificationRow, actor?: Actor): Promise<UpstreamStatus> {
  if (row.upstreamStatus === 'finish_owed') return finishUpstream(deps, row, actor ?? 'sweeper');
  if (row.upstreamStatus === 'reported') return settleReport(deps, row, actor ?? 'sweeper');
  if (row.upstreamStatus !== 'cancel_owed' || !row.providerOrderId) return row.upstreamStatus;
  const answer = await requestUpstreamCancel(deps, row, { onFailure: 'owed upstream cancel failed again' });
  const now = deps.clock.now();
  const next = settlementAfterCancel(answer, now, new Date(now.getTime() + backoffMs(row.upstreamAttempts + 1)));
  const record = (ex: Executor) =>
    ex
      .update(verifications)
      .set({
        upstreamStatus: next.status,
        upstreamNextAt: next.nextAt,
        upstreamAttempts: sql`${verifications.upstreamAttempts} + 1`,
        updatedAt: now,
      })
      .where(and(eq(verifications.id, row.id), eq(verifications.upstreamStatus, 'cancel_owed')))
      .returning({ state: verifications.state });
  if (!actor) {
    await record(deps.database.db);
    return next.status;
  }
  await deps.database.transaction(async (tx) => {
    const [changed] = await record(tx);
    if (changed && next.status !== 'cancel_owed') {
      await recordEvent(tx, row.id, changed.state, actor, `owed upstream cancel settled: ${next.status}`, now);
    }
  });
  return next.status;
}

/**
 * A purchase given up while its outcome was unknown (upstream_status orphan_suspected): ask the
 * upstream about our client reference again. An order found is cancelled upstream and remembered on
 * the verification; one provably absent closes the matter. The customer's money is not touched (it
 * was released when the purchase failed). Returns the new upstream status.
 */
export async function settleSuspectedOrphan(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<UpstreamStatus> {
  if (row.upstreamStatus !== 'orphan_suspected') return row.upstreamStatus;
  const found = await lookUpPurchase(deps, row);
  if (found.status === 'unknown') return 'orphan_suspected';
  let next: UpstreamSettlement = { status: 'absent', nextAt: null };
  let orderId: string | null = null;
  if (found.status === 'found') {
    orderId = found.order.providerOrderId;
    const answer = await requestUpstreamCancel(deps, { id: row.id, provider: row.provider, providerOrderId: orderId }, { onFailure: 'cancel of a suspected orphan failed; owed' });
    const now = deps.clock.now();
    next = settlementAfterCancel(answer, now, now);
  }
  const now = deps.clock.now();
  await deps.database.transaction(async (tx) => {
    const [changed] = await tx
      .update(verifications)
      .set({
        upstreamStatus: next.status,
        upstreamNextAt: next.nextAt,
        ...(orderId ? { providerOrderId: sql`coalesce(${verifications.providerOrderId}, ${orderId})` } : {}),
        updatedAt: now,
      })
      .where(and(eq(verifications.id, row.id), eq(verifications.upstreamStatus, 'orphan_suspected')))
      .returning({ state: verifications.state });
    if (changed) {
      const what = orderId ? `order ${orderId} found upstream: ${next.status}` : 'purchase provably absent upstream';
      await recordEvent(tx, row.id, changed.state, actor, `suspected orphan settled: ${what}`, now);
    }
  });
  return next.status;
}

/**
 * An order the upstream says is active but no verification knows: nobody will ever use it, so
 * cancel it (the platform paid for it). Audited in the audit log, as there is no verification.
 */
export async function cancelForeignOrder(deps: LifecycleDeps, providerName: string, providerOrderId: string, actor: Actor): Promise<CancelOutcome['outcome']> {
  const answer = await providerFor(deps, providerName).cancel(providerOrderId);
  await recordAudit(deps.database.db, {
    actorId: null,
    actor: 'system',
    action: 'reconcile.upstream_orphan_cancel',
    subjectId: null,
    detail: { by: actor, provider: providerName, provider_order_id: providerOrderId, outcome: answer.outcome },
    now: deps.clock.now(),
  });
  return answer.outcome;
}
