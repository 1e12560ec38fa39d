import { randomUUID } from 'node:crypto';
import { requireVerifiedEmail } from '../accounts/flows.ts';
import { DomainError, errorTable, type ErrorCode } from '../errors.ts';
import { isProviderError, type ProviderError } from '../providers/provider.ts';
import { assignPurchasedNumber, freshPurchaseView, reservePurchase } from './reservation.ts';
import type { VerificationView } from './resource.ts';
import { decideReplay, fingerprint } from './idempotency.ts';
import { assignNumber, failPurchase, fault, markPurchaseUncertain, ORDER_ID_REUSED_ANSWER, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';

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

export async function purchaseVerification(deps: LifecycleDeps, request: PurchaseRequest): Promise<PurchaseOutcome> {
  const { config } = deps;
  const country = request.country ?? config.DEFAULT_COUNTRY;
  const requestFingerprint = fingerprint({ service: request.service, country, max_price_minor: request.maxPriceMinor ?? null });
  // REQUIRE_VERIFIED_EMAIL_FOR=purchase: refused before anything is stored (no query otherwise).
  await requireVerifiedEmail(deps.database.db, config, request.userId, 'purchase');

  // Phase 1: one statement — replay or reserve (reservation.ts; the rules are in its SQL function).
  const now = deps.clock.now();
  const begun = await reservePurchase(deps.database, {
    id: randomUUID(),
    userId: request.userId,
    idempotencyKey: request.idempotencyKey,
    fingerprint: requestFingerprint,
    provider: deps.provider.name,
    service: request.service,
    country,
    maxPriceMinor: request.maxPriceMinor ?? null,
    currency: config.CURRENCY,
    now,
    expiresAt: new Date(now.getTime() + config.VERIFICATION_TTL_SECONDS * 1000),
    purchaseUntil: new Date(now.getTime() + config.PURCHASE_TIMEOUT_SECONDS * 1000),
    maxActive: config.MAX_ACTIVE_VERIFICATIONS,
    perMinute: config.PURCHASES_PER_MINUTE,
    breakerOpen: deps.breaker.isOpen(),
    breakerRetrySeconds: Math.ceil(config.BREAKER_HALF_OPEN_AFTER_MS / 1000),
  });

  if (begun.kind === 'raced') {
    throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress', {}, { 'Retry-After': '1' });
  }
  if (begun.kind === 'existing') {
    const existing = begun.row;
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

  const created = begun.row;
  await fault(deps, 'purchase.held');

  // Phase 2: the upstream call, outside any transaction.
  let order;
  try {
    order = await deps.provider.buy({
      service: created.service,
      country: created.country,
      maxCostMinor: created.maxCostMinor,
      clientRef: created.id,
    });
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

  // Phase 3: the outcome. The common case is one statement, answered from what it wrote; anything
  // else (another actor got there, a reused order id, a webhook to write) takes the general path.
  const assignedAt = deps.clock.now();
  const fast = await assignPurchasedNumber(deps.database, {
    id: created.id,
    providerOrderId: order.providerOrderId,
    phoneNumber: order.phoneNumber,
    endsAt: order.endsAt ?? null,
    now: assignedAt,
    ttlSeconds: config.VERIFICATION_TTL_SECONDS,
    pollIntervalMs: config.POLL_INTERVAL_MS,
    responseStatus: 201,
    actor: 'customer',
    reason: 'number assigned',
  });
  if (fast) return { status: 201, row: fast, replayed: false, view: freshPurchaseView(fast, assignedAt, 'customer', 'number assigned') };
  const { row, reused } = await assignNumber(deps, created.id, order, { actor: 'customer', reason: 'number assigned', responseStatus: 201 });
  if (reused && row.state === 'failed') throw new DomainError('provider_unavailable', ORDER_ID_REUSED_ANSWER, { verification_id: row.id });
  if (row.state === 'failed' || row.state === 'pending') return replayOf(row);
  return { status: 201, row, replayed: false };
}
