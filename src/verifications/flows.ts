import { sql } from 'drizzle-orm';
import { breakerFor, providerFor } from '../providers/set.ts';
import { isProviderError, type OrderCheck, type Provider, type ProviderMessage, type ProviderOrder } from '../providers/provider.ts';
import {
  failPurchase,
  fault,
  loadVerification,
  lockVerification,
  orderRef,
  raiseUpstreamAlarm,
  recordMessages,
  transition,
  transitionMany,
  type CaptureResult,
  type LifecycleDeps,
  type VerificationRow,
} from './lifecycle.ts';
import { verifications, type Actor } from './schema.ts';
import { takeBoughtOrder } from './purchase.ts';
import { lookUpPurchase, requestUpstreamCancel, settlementAfterCancel, type UpstreamSettlement } from './settlement.ts';

/**
 * The flows after a purchase (purchase.ts): a look upstream for the SMS, the customer's cancel, the
 * deadline, and the recovery of a purchase whose outcome is unknown. Each asks the upstream first,
 * outside any transaction, then changes state through lifecycle.ts; an upstream that is down never
 * delays the customer's refund, it only leaves a cancel owed (settlement.ts).
 */

/**
 * The upstream's messages for a verification, or undefined when the upstream could not be asked
 * (logged as `why`). Only the upstream's own failures are absorbed; anything else is thrown.
 */
export async function upstreamMessages(deps: LifecycleDeps, row: VerificationRow, why: string): Promise<ProviderMessage[] | undefined> {
  try {
    const check = await providerFor(deps, row.provider).check(orderRef(row));
    await noticeCheck(deps, row, check);
    return check.messages;
  } catch (error) {
    if (!isProviderError(error)) throw error;
    deps.logger.warn({ verification: row.id, err: error }, why);
    return undefined;
  }
}

/**
 * What a check says beyond its messages: an order the upstream calls completed while it shows us no
 * SMS means the seller billed a code we cannot read (polling looks in the wrong place, or the
 * seller lost it) — an alarm for the operator (diagnose, metrics); the deadline still refunds the
 * customer.
 */
export async function noticeCheck(deps: LifecycleDeps, row: VerificationRow, check: OrderCheck): Promise<void> {
  if (check.state === 'completed' && check.messages.length === 0) {
    await raiseUpstreamAlarm(deps, row, 'completed_without_sms', 'the upstream says the order is completed but shows no SMS');
  }
}

/** Asks the upstream for the verification's messages and records them (an upstream failure is thrown). */
export async function checkUpstream(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<CaptureResult | undefined> {
  const check = await providerFor(deps, row.provider).check(orderRef(row));
  await noticeCheck(deps, row, check);
  await fault(deps, 'capture.fetched');
  if (check.messages.length === 0) return { row, stored: 0, captured: false };
  return recordMessages(deps, row.id, check.messages, actor);
}

/** Like checkUpstream, but an upstream that cannot be asked counts as "no message" (logged). */
async function lookForSms(deps: LifecycleDeps, row: VerificationRow, actor: Actor, why: string): Promise<CaptureResult | undefined> {
  const messages = await upstreamMessages(deps, row, why);
  await fault(deps, 'capture.fetched');
  if (!messages || messages.length === 0) return { row, stored: 0, captured: false };
  return recordMessages(deps, row.id, messages, actor);
}

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

  // An additional code on its parent's order owns no upstream order to cancel (one that bought its
  // own, TextVerified reuse or a DaisySMS extra activation, cancels it like a purchase).
  const answer = row.parentId !== null && !row.ownOrder
    ? ({ outcome: 'gone' } as const)
    : await requestUpstreamCancel(deps, row, { onFailure: 'upstream cancel failed; refunding and owing the cancel' });
  if (answer !== 'failed' && answer.outcome === 'too_early') return { kind: 'too_early', row, retryAfterSeconds: answer.retryAfterSeconds };
  if (answer !== 'failed' && answer.outcome === 'already_received') {
    const captured = await lookForSms(deps, row, actor, 'reading the SMS of an order the upstream says was received failed');
    // Not captured here: show the verification as it is now (another actor may have settled it).
    const current = captured?.captured ? captured.row : (await loadVerification(deps.database.db, row.id))!;
    return current.state === 'cancelled' ? { kind: 'cancelled', row: current } : { kind: 'invalid_state', row: current };
  }
  const upstream = settlementAfterCancel(answer, deps.clock.now(), deps.clock.now());
  await fault(deps, 'cancel.upstream_done');

  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const current = await lockVerification(tx, row.id);
    // Another cancel won meanwhile: cancelling a cancelled verification answers it unchanged.
    if (current?.state === 'cancelled') return { kind: 'cancelled' as const, row: current };
    if (!current || current.state !== 'waiting') return { kind: 'invalid_state' as const, row: current ?? row };
    const updated = await transition(tx, current, 'cancelled', {
      actor,
      reason: upstream.status === 'cancelled' ? 'cancelled by customer' : 'cancelled by customer; upstream cancel pending',
      now,
      set: { upstreamStatus: upstream.status, upstreamNextAt: upstream.nextAt },
    });
    return updated ? { kind: 'cancelled' as const, row: updated } : { kind: 'invalid_state' as const, row: current };
  });
}

/**
 * Deadline: one last look for the SMS, then cancel upstream, then waiting → expired with the hold
 * released. A provider that is down delays nothing but the upstream cancel, which becomes owed.
 */
export async function expireVerification(deps: LifecycleDeps, row: VerificationRow, actor: Actor = 'sweeper'): Promise<VerificationRow | undefined> {
  if (row.state !== 'waiting') return row;
  const breaker = breakerFor(deps, row.provider);
  if (!breaker.isOpen()) {
    const captured = await lookForSms(deps, row, actor, 'last check before expiry failed');
    if (captured?.captured || captured?.row.state !== 'waiting') return captured?.row;
  }
  await fault(deps, 'expire.checked');

  // An open breaker skips the call: the cancel is owed at once, as after a failed call.
  let upstream: UpstreamSettlement = { status: 'cancel_owed', nextAt: deps.clock.now() };
  if (!breaker.isOpen()) {
    const answer = await requestUpstreamCancel(deps, row, { onFailure: 'upstream cancel at deadline failed; owed' });
    if (answer !== 'failed' && answer.outcome === 'already_received') {
      // The SMS beat the deadline upstream: deliver it if we can read it.
      const captured = await lookForSms(deps, row, actor, 'reading the SMS of an order the upstream says was received failed');
      if (captured?.captured) return captured.row;
    }
    upstream = settlementAfterCancel(answer, deps.clock.now(), deps.clock.now());
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
        set: { upstreamStatus: upstream.status, upstreamNextAt: upstream.nextAt, nextCheckAt: new Date(now.getTime() + deps.config.POLL_INTERVAL_MS) },
      })) ?? current
    );
  });
}

/**
 * The deadline in bulk: the engine's claimed rows that are waiting past their deadline, expired in
 * one transaction (transitionMany: a compare-and-set on the rows still waiting and due), every hold
 * released and the upstream cancel owed, done later by settlement at the upstream's pace. The
 * refund never waits for an upstream call. The last look for an SMS is one list call where the
 * upstream has one; a row it shows a message for is recorded one at a time (captured when in time,
 * else stored late and expired). Without a list call the late watch after expiry looks instead:
 * an SMS found then is shown, never charged. Returns the rows expired here.
 */
export async function expireDue(
  deps: LifecycleDeps,
  list: readonly VerificationRow[],
  actor: Actor = 'sweeper',
): Promise<{ expired: VerificationRow[]; captured: number }> {
  let due = list.filter((row) => row.state === 'waiting' && row.expiresAt.getTime() <= deps.clock.now().getTime());
  let captured = 0;
  if (due.length === 0) return { expired: [], captured };
  for (const [name, batch] of byProvider(due)) {
    const provider = providerFor(deps, name);
    if (!provider.checkMany || breakerFor(deps, name).isOpen()) continue;
    const checks = await lastLook(deps, provider, batch);
    for (const row of batch) {
      const check = checks?.get(row.providerOrderId!);
      if (!check) continue;
      await noticeCheck(deps, row, check);
      if (check.messages.length > 0 && (await recordMessages(deps, row.id, check.messages, actor))?.captured) captured++;
    }
  }
  await fault(deps, 'expire.checked');
  await fault(deps, 'expire.upstream_done');

  const now = deps.clock.now();
  due = due.filter((row) => row.expiresAt.getTime() <= now.getTime());
  const expired = await deps.database.transaction((tx) =>
    transitionMany(tx, due, 'expired', {
      actor,
      reason: 'no SMS before the deadline',
      now,
      // Still due: a row whose deadline moved is not this batch's to expire.
      where: sql`${verifications.expiresAt} <= ${now}`,
      // The late watch starts at once (the engine's next claim): an SMS the batch did not look for
      // is shown to the customer as soon as it is read, free.
      set: { upstreamStatus: 'cancel_owed', upstreamNextAt: now, nextCheckAt: now },
    }),
  );
  return { expired, captured };
}

/** The upstream's list of active orders for a batch, or undefined when it could not be asked (logged). */
async function lastLook(deps: LifecycleDeps, provider: Provider, list: readonly VerificationRow[]): Promise<Map<string, OrderCheck> | undefined> {
  try {
    return await provider.checkMany!(list.map(orderRef));
  } catch (error) {
    if (!isProviderError(error)) throw error;
    deps.logger.warn({ err: error, provider: provider.name, verifications: list.length }, 'last look before the deadline batch failed');
    return undefined;
  }
}

/** Rows grouped by the provider they belong to, in first-seen order. */
export function byProvider<T extends { provider: string }>(list: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of list) {
    const group = groups.get(row.provider);
    if (group) group.push(row);
    else groups.set(row.provider, [row]);
  }
  return groups;
}

/**
 * Recovery of a pending purchase whose call is no longer in flight: ask the upstream about our
 * client reference, never buy again. Found → waiting; provably absent → failed; still unknown at
 * the deadline → failed with the reference kept so reconciliation can find an upstream orphan.
 */
export async function recoverPurchase(deps: LifecycleDeps, row: VerificationRow, actor: Actor = 'recovery'): Promise<VerificationRow | undefined> {
  if (row.state !== 'pending') return row;
  if (row.parentId !== null) {
    // An additional code whose request was cut off (a crash between its phases): it did not happen,
    // its hold (a charged one) is released; the customer may ask again. Where the upstream sells a
    // new order per code one may exist: reconcile's sweep of active orders finds it where the seller
    // lists them (not DaisySMS, which charges an activation only when a code reaches it).
    const reason = row.ownOrder ? 'another-code request not completed; an upstream order may exist' : 'another-code request not completed';
    return failPurchase(deps, row.id, { actor, reason, responseStatus: 409, responseCode: 'invalid_state', upstream: 'none' });
  }
  const now = deps.clock.now();
  let status: 'found' | 'absent' | 'unknown' = 'unknown';
  let order: ProviderOrder | undefined;
  if (!breakerFor(deps, row.provider).isOpen()) {
    try {
      const answer = await lookUpPurchase(deps, row);
      status = answer.status;
      if (answer.status === 'found') order = answer.order;
    } catch (error) {
      if (!isProviderError(error)) throw error;
      deps.logger.warn({ verification: row.id, err: error }, 'lookup of a pending purchase failed');
    }
  }
  await fault(deps, 'recover.looked_up');

  if (order) {
    // The order found is taken exactly as the purchase's own answer would have been: a number
    // outside the request or one the customer reported is refused (cancelled upstream, released).
    const taken = await takeBoughtOrder(deps, row, order, { actor, reason: 'purchase found upstream', responseStatus: 202, fast: false });
    return taken.kind === 'assigned' ? taken.row : loadVerification(deps.database.db, row.id);
  }
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
