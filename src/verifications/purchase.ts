import { randomUUID } from 'node:crypto';
import { requireVerifiedEmail } from '../accounts/flows.ts';
import { DomainError, errorTable, type ErrorCode } from '../errors.ts';
import { canonicalOptions, isPlain, surchargeCost } from '../catalogue/number-options.ts';
import { isProviderError, type NumberOptions, type ProviderError, type ProviderOrder } from '../providers/provider.ts';
import type { RankedRoute } from '../providers/routing.ts';
import { buyWithFailover, capabilitiesOf, planPurchase, type PurchasePlan } from './failover.ts';
import { assignedNumberMismatch } from './assigned-number.ts';
import { requestUpstreamCancel, settlementAfterCancel } from './settlement.ts';
import type { Actor } from './schema.ts';
import { REPORTED_NUMBER_ANSWER, wasReported } from './reported-numbers.ts';
import { decideReplay, fingerprint } from './idempotency.ts';
import { assignNumber, failPurchase, fault, markPurchaseUncertain, ORDER_ID_REUSED_ANSWER, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import { assignPurchasedNumber, freshPurchaseView, reservePurchase, type ReservationRequest } from './reservation.ts';
import type { VerificationView } from './resource.ts';

/**
 * Purchase (docs/architecture.md, "The flows"): (1) one transaction stores the verification as pending and places
 * the hold; (2) the upstream call happens outside any transaction; (3) one transaction records the
 * outcome — waiting, failed with the hold voided, or still pending for recovery when the outcome is
 * unknown. The customer is never charged for a purchase that did not happen.
 */
export interface PurchaseRequest {
  userId: string;
  idempotencyKey: string;
  service: string;
  country?: string;
  maxPriceMinor?: number;
  /** Area codes, carriers, voice; checked against what the provider honours, priced into the hold. */
  options?: NumberOptions;
  /** Set by bulk purchases: part of the fingerprint, so a bulk key replays only the same bulk request. */
  bulk?: { quantity: number; index: number };
}

export interface PurchaseOutcome {
  status: 201 | 202;
  row: VerificationRow;
  replayed: boolean;
  /** The answer's view when it could be built from what the writes returned (no read needed). */
  view?: VerificationView;
}

/** How a definite upstream failure is told to the customer. */
function failureAnswer(error: ProviderError): { code: ErrorCode; message: string } {
  switch (error.code) {
    case 'no_numbers':
      return { code: 'no_numbers', message: 'no numbers are available for this service right now; you were not charged' };
    case 'price_exceeds_max':
      return { code: 'price_exceeds_max', message: 'the upstream price is above the allowed maximum; you were not charged' };
    default:
      return { code: 'provider_unavailable', message: 'the number provider is unavailable; you were not charged' };
  }
}

function replayOf(row: VerificationRow): PurchaseOutcome {
  if (row.state === 'failed') {
    const code = (row.responseCode ?? 'provider_unavailable') as ErrorCode;
    throw new DomainError(code, row.failureReason ?? 'the purchase failed; you were not charged', { verification_id: row.id }, {
      'Idempotent-Replayed': 'true',
    });
  }
  return { status: row.state === 'pending' || row.responseStatus === 202 ? 202 : 201, row, replayed: true };
}

/** What the idempotency key stands for; a plain single purchase keeps the fingerprint it always had. */
export function purchaseFingerprint(request: PurchaseRequest, country: string): string {
  const options = canonicalOptions(request.options);
  return fingerprint({
    service: request.service,
    country,
    max_price_minor: request.maxPriceMinor ?? null,
    ...(isPlain(options) ? {} : { options }),
    ...(request.bulk ? { bulk: request.bulk } : {}),
  });
}

/**
 * What phase 1 asks the reservation function (reservation.ts) for one purchase, given the routing
 * plan: the provider the offer is priced with, our price when several providers stand behind it,
 * the options' upstream surcharge at that provider (part of its price cap) and, with several
 * providers, the customer's price for the options decided over all of them (with one, the function
 * prices that provider's surcharge with the offer's margin). With no candidate available now
 * (breakers open, kill switch, drain) the function refuses like an open breaker: after a replay,
 * before a hold.
 */
export function reservationFor(deps: LifecycleDeps, request: PurchaseRequest, plan: PurchasePlan, now: Date): ReservationRequest {
  const { config } = deps;
  const country = request.country ?? config.DEFAULT_COUNTRY;
  const options = canonicalOptions(request.options);
  return {
    id: randomUUID(),
    userId: request.userId,
    idempotencyKey: request.idempotencyKey,
    fingerprint: purchaseFingerprint(request, country),
    provider: plan.provider,
    priceMinor: plan.priceMinor,
    service: request.service,
    country,
    maxPriceMinor: request.maxPriceMinor ?? null,
    currency: config.CURRENCY,
    now,
    expiresAt: new Date(now.getTime() + config.VERIFICATION_TTL_SECONDS * 1000),
    purchaseUntil: new Date(now.getTime() + config.PURCHASE_TIMEOUT_SECONDS * 1000),
    maxActive: config.MAX_ACTIVE_VERIFICATIONS,
    perMinute: config.PURCHASES_PER_MINUTE,
    breakerOpen: plan.candidates.length === 0,
    breakerRetrySeconds: Math.ceil(config.BREAKER_HALF_OPEN_AFTER_MS / 1000),
    options: isPlain(options) ? null : options,
    surchargeCostMinor: plan.provider === null ? 0 : surchargeCost(capabilitiesOf(deps, plan.provider), options),
    surchargePriceMinor: plan.surchargePriceMinor,
  };
}

export async function purchaseVerification(deps: LifecycleDeps, request: PurchaseRequest): Promise<PurchaseOutcome> {
  // REQUIRE_VERIFIED_EMAIL_FOR=purchase: refused before anything is stored (no query otherwise).
  await requireVerifiedEmail(deps.database.db, deps.config, request.userId, 'purchase');
  // Which upstreams to try, best first (routing, failover.ts), chosen before anything is reserved.
  const plan = await planPurchase(deps, deps.database.db, request.service, request.country ?? deps.config.DEFAULT_COUNTRY, request.options);

  // Phase 1: one statement — replay or reserve (reservation.ts; the rules are in its SQL function).
  const now = deps.clock.now();
  const reservation = reservationFor(deps, request, plan, now);
  const begun = await reservePurchase(deps.database, reservation);
  if (begun.kind === 'raced') {
    throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress', {}, { 'Retry-After': '1' });
  }
  if (begun.kind === 'existing') return replayReservation(begun.row, reservation.fingerprint, now);
  await fault(deps, 'purchase.held');
  return completePurchase(deps, begun.row, plan.candidates);
}

/** The answer to a request whose key is already stored: the first outcome again, or why not. */
export function replayReservation(existing: VerificationRow, requestFingerprint: string, now: Date): PurchaseOutcome {
  const decision = decideReplay(
    { fingerprint: existing.requestFingerprint, state: existing.state, responseStatus: existing.responseStatus, purchaseUntil: existing.purchaseUntil },
    requestFingerprint,
    now,
  );
  if (decision.kind === 'mismatch') {
    throw new DomainError('idempotency_key_reused', 'this Idempotency-Key was used with a different request', {
      verification_id: existing.id,
    });
  }
  if (decision.kind === 'in_progress') {
    throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress', {}, {
      'Retry-After': String(decision.retryAfterSeconds),
    });
  }
  return replayOf(existing);
}

/** Phases 2 and 3 for a reserved (pending) purchase: the upstream call, then the outcome. */
export async function completePurchase(deps: LifecycleDeps, created: VerificationRow, candidates: readonly RankedRoute[]): Promise<PurchaseOutcome> {
  // Phase 2: the upstream call, outside any transaction; the next candidate only after a definite failure.
  let order;
  try {
    order = await buyWithFailover(deps, created, candidates);
  } catch (error) {
    if (isProviderError(error) && error.kind === 'definite') {
      const answer = failureAnswer(error);
      await failPurchase(deps, created.id, {
        actor: 'customer',
        reason: `${error.code}: ${error.message}`,
        responseStatus: errorTable[answer.code].status,
        responseCode: answer.code,
        upstream: 'absent',
      });
      throw new DomainError(answer.code, answer.message, { verification_id: created.id }, error.retryAfterSeconds ? { 'Retry-After': String(error.retryAfterSeconds) } : {});
    }
    // Ambiguous: something may have been bought. Keep the hold; recovery resolves it.
    deps.logger.warn({ verification: created.id, err: error }, 'purchase outcome unknown; left for recovery');
    const pending = await markPurchaseUncertain(deps, created.id, `outcome unknown: ${error instanceof Error ? error.message : String(error)}`);
    return { status: 202, row: pending ?? created, replayed: false };
  }
  await fault(deps, 'purchase.bought');
  // Phase 3: the outcome, checked and written by the function recovery uses too.
  const taken = await takeBoughtOrder(deps, created, order, { actor: 'customer', reason: 'number assigned', responseStatus: 201, fast: true });
  if (taken.kind === 'refused') throw new DomainError('no_numbers', taken.message, { verification_id: created.id });
  const { row, reused, view } = taken;
  if (view) return { status: 201, row, replayed: false, view };
  if (reused && row.state === 'failed') throw new DomainError('provider_unavailable', ORDER_ID_REUSED_ANSWER, { verification_id: row.id });
  if (row.state === 'failed' || row.state === 'pending') return replayOf(row);
  return { status: 201, row, replayed: false };
}

/** An order bought for a pending purchase: assigned to it, or refused (and what the customer is told). */
export type BoughtOrder =
  | { kind: 'assigned'; row: VerificationRow; reused: boolean; view?: VerificationView }
  | { kind: 'refused'; message: string };

/**
 * What becomes of an order an upstream sold for a pending purchase — the one place both the
 * purchase's own answer and recovery's lookup (flows.ts, after a lost answer) go through, so an
 * order found either way is checked the same. A number outside the request (area code, carrier) or
 * one this customer reported for this service is a definite failure at that upstream
 * (refuseBoughtNumber: cancelled there or the cancel owed, the hold released, no charge).
 * Otherwise pending → waiting. `fast`: try the one-statement assignment first (the purchase's
 * common case; its SQL function leaves a reported number to the general path below).
 */
export async function takeBoughtOrder(
  deps: LifecycleDeps,
  row: VerificationRow,
  order: ProviderOrder,
  how: { actor: Actor; reason: string; responseStatus: 201 | 202; fast: boolean },
): Promise<BoughtOrder> {
  const mismatch = assignedNumberMismatch(row.numberOptions, order);
  if (mismatch !== null) return { kind: 'refused', message: await failMismatchedPurchase(deps, row, order, mismatch, how.actor) };

  if (how.fast) {
    const assignedAt = deps.clock.now();
    const fast = await assignPurchasedNumber(deps.database, {
      id: row.id,
      providerOrderId: order.providerOrderId,
      phoneNumber: order.phoneNumber,
      endsAt: order.endsAt ?? null,
      now: assignedAt,
      ttlSeconds: deps.config.VERIFICATION_TTL_SECONDS,
      pollIntervalMs: deps.config.POLL_INTERVAL_MS,
      responseStatus: how.responseStatus,
      actor: how.actor,
      reason: how.reason,
    });
    if (fast) return { kind: 'assigned', row: fast, reused: false, view: freshPurchaseView(fast, assignedAt, how.actor, how.reason) };
  }

  if (await wasReported(deps, row, order)) {
    await refuseBoughtNumber(deps, row, order, {
      actor: how.actor,
      reason: `the upstream offered ${order.phoneNumber}, which the customer reported for ${row.service}`,
      failureReason: REPORTED_NUMBER_ANSWER,
    });
    return { kind: 'refused', message: REPORTED_NUMBER_ANSWER };
  }

  const { row: assigned, reused } = await assignNumber(deps, row.id, order, { actor: how.actor, reason: how.reason, responseStatus: how.responseStatus });
  return { kind: 'assigned', row: assigned, reused: reused ?? false };
}

/**
 * A number outside the request (area code, carrier) is a definite failure at that upstream (see
 * refuseBoughtNumber), through takeBoughtOrder.
 * Returns what the customer is told.
 */
export async function failMismatchedPurchase(
  deps: LifecycleDeps,
  row: VerificationRow,
  order: ProviderOrder,
  mismatch: string,
  actor: Actor,
): Promise<string> {
  const message = `the provider assigned a number that does not match the request (${mismatch}); you were not charged`;
  await refuseBoughtNumber(deps, row, order, { actor, reason: `number_mismatch: ${mismatch}`, failureReason: message });
  return message;
}

/**
 * A number bought and then refused by us (not the one asked for, or one the customer reported) is a
 * definite failure at that upstream: its order is cancelled there (owed, and retried, when the
 * cancel fails) and the pending purchase fails with its hold released, the order kept on the row so
 * its cancel can be settled.
 */
export async function refuseBoughtNumber(
  deps: LifecycleDeps,
  row: VerificationRow,
  order: ProviderOrder,
  refusal: { actor: Actor; reason: string; failureReason: string },
): Promise<void> {
  const now = deps.clock.now();
  const answer = await requestUpstreamCancel(deps, { id: row.id, provider: row.provider, providerOrderId: order.providerOrderId }, {
    onFailure: 'cancel of a refused number failed; owed',
  });
  const settled = settlementAfterCancel(answer, now, new Date(now.getTime() + 30_000));
  await failPurchase(deps, row.id, {
    actor: refusal.actor,
    reason: refusal.reason,
    responseStatus: errorTable.no_numbers.status,
    responseCode: 'no_numbers',
    upstream: settled.status,
    upstreamNextAt: settled.nextAt,
    order,
    failureReason: refusal.failureReason,
  });
}
