import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { requireVerifiedEmail } from '../accounts/flows.ts';
import { firstRow, pgConstraint, pgErrorCode, type Executor } from '../db/database.ts';
import { DomainError, errorTable, type ErrorCode } from '../errors.ts';
import { findOffer } from '../catalogue/catalogue.ts';
import { canonicalOptions, honours, isPlain, optionSurcharge } from '../catalogue/number-options.ts';
import { isLedgerError } from '../ledger/errors.ts';
import { placeHold } from '../ledger/ledger.ts';
import { isProviderError, PLAIN_CAPABILITIES, type NumberOptions, type ProviderError, type ProviderOrder } from '../providers/provider.ts';
import { assignedNumberMismatch } from './assigned-number.ts';
import { requestUpstreamCancel, settlementAfterCancel } from './settlement.ts';
import { verificationEvents, verifications, type Actor } from './schema.ts';
import { decideReplay, fingerprint } from './idempotency.ts';
import { assignNumber, failPurchase, fault, markPurchaseUncertain, ORDER_ID_REUSED_ANSWER, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import type { Tx } from '../db/database.ts';

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

export type Reservation = { existing: VerificationRow; now: Date } | { created: VerificationRow; now: Date };

/**
 * Phase 1 inside the caller's transaction: the replay check, the catalogue, the options, the limits,
 * the hold and the pending row. A bulk purchase reserves all its numbers in one transaction.
 */
export async function reservePurchase(deps: LifecycleDeps, tx: Tx, request: PurchaseRequest): Promise<Reservation> {
  const { config } = deps;
  const country = request.country ?? config.DEFAULT_COUNTRY;
  const requestFingerprint = purchaseFingerprint(request, country);
  const options = canonicalOptions(request.options);
  const now = deps.clock.now();
  // One customer's purchases queue here, so identical concurrent requests see each other. NO KEY
  // UPDATE, not UPDATE: captures and refunds of the same customer take KEY SHARE on this row
  // (foreign keys of their notifications) while holding the wallet, which this transaction
  // needs next; FOR UPDATE would deadlock with them.
  await tx.execute(sql`SELECT 1 FROM users WHERE id = ${request.userId} FOR NO KEY UPDATE`);
  const [existing] = await tx
    .select()
    .from(verifications)
    .where(and(eq(verifications.userId, request.userId), eq(verifications.idempotencyKey, request.idempotencyKey)));
  if (existing) return { existing, now };

  const offer = await findOffer(tx, deps.provider.name, request.service, country);
  if (!offer) throw new DomainError('unknown_service', `no service "${request.service}" in ${country}`);
  const capabilities = deps.provider.capabilities ?? PLAIN_CAPABILITIES;
  const honoured = honours(capabilities, options, offer.country);
  if (!honoured.ok) throw new DomainError('option_not_offered', honoured.reason, { option: honoured.option });
  if (options.capability === 'voice' && !offer.voice) {
    throw new DomainError('option_not_offered', `"${offer.service}" in ${offer.country} is not offered with a voice call`, { option: 'capability' });
  }
  const surcharge = optionSurcharge(offer, capabilities, options);
  const priceMinor = offer.priceMinor + surcharge.priceMinor;
  if (request.maxPriceMinor !== undefined && priceMinor > request.maxPriceMinor) {
    throw new DomainError('price_exceeds_max', `the price ${priceMinor} is above max_price_minor ${request.maxPriceMinor}`, {
      price_minor: priceMinor,
    });
  }
  const activity = await customerActivity(tx, request.userId, new Date(now.getTime() - 60_000));
  if (activity.active >= config.MAX_ACTIVE_VERIFICATIONS) {
    // A place frees up at the latest when the soonest active verification reaches its deadline.
    const seconds = secondsUntil(activity.firstDeadline, now);
    throw new DomainError(
      'too_many_active',
      `at most ${config.MAX_ACTIVE_VERIFICATIONS} verifications may be active at once; one ends within ${seconds} s`,
      { retry_after_seconds: seconds },
      { 'Retry-After': String(seconds) },
    );
  }
  if (activity.recent >= config.PURCHASES_PER_MINUTE) {
    throw new DomainError('rate_limited', `at most ${config.PURCHASES_PER_MINUTE} purchases per minute`, {}, { 'Retry-After': '60' });
  }
  if (deps.controls?.isDisabled(offer.provider)) throw new DomainError('provider_unavailable', 'this service cannot be bought right now; you were not charged');
  if (deps.breaker.isOpen()) {
    throw new DomainError('provider_unavailable', 'the number provider is unavailable right now; you were not charged', {}, {
      'Retry-After': String(Math.ceil(config.BREAKER_HALF_OPEN_AFTER_MS / 1000)),
    });
  }

  const id = randomUUID();
  const expiresAt = new Date(now.getTime() + config.VERIFICATION_TTL_SECONDS * 1000);
  const purchaseUntil = new Date(now.getTime() + config.PURCHASE_TIMEOUT_SECONDS * 1000);
  let hold;
  try {
    hold = await placeHold(tx, {
      userId: request.userId,
      amountMinor: priceMinor,
      verificationId: id,
      expiresAt,
      actor: 'customer',
      now,
    });
  } catch (error) {
    if (isLedgerError(error, 'insufficient_funds')) {
      throw new DomainError('insufficient_funds', `this number costs ${priceMinor}; your available balance is too low`, {
        price_minor: priceMinor,
      });
    }
    throw error;
  }
  const [created] = await tx
    .insert(verifications)
    .values({
      id,
      userId: request.userId,
      provider: deps.provider.name,
      service: offer.service,
      country: offer.country,
      state: 'pending',
      priceMinor,
      maxCostMinor: offer.costMinor + surcharge.costMinor,
      numberOptions: isPlain(options) ? null : options,
      currency: config.CURRENCY,
      idempotencyKey: request.idempotencyKey,
      requestFingerprint,
      holdId: hold.id,
      createdAt: now,
      updatedAt: now,
      expiresAt,
      purchaseUntil,
      nextCheckAt: purchaseUntil,
    })
    .returning();
  await tx.insert(verificationEvents).values({
    verificationId: id,
    fromState: null,
    toState: 'pending',
    actor: 'customer',
    reason: 'purchase requested',
    createdAt: now,
  });
  return { created: created!, now };
}

export async function purchaseVerification(deps: LifecycleDeps, request: PurchaseRequest): Promise<PurchaseOutcome> {
  const { config } = deps;
  const country = request.country ?? config.DEFAULT_COUNTRY;
  const requestFingerprint = purchaseFingerprint(request, country);
  // REQUIRE_VERIFIED_EMAIL_FOR=purchase: refused before anything is stored (no query otherwise).
  await requireVerifiedEmail(deps.database.db, config, request.userId, 'purchase');

  // Phase 1: one transaction — replay or reserve.
  const begun = await deps.database
    .transaction((tx) => reservePurchase(deps, tx, request))
    .catch((error: unknown) => {
      // Two identical requests racing past the lock (other processes): the loser sees the winner.
      if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_idempotency') return { raced: true as const };
      throw error;
    });

  if ('raced' in begun) {
    throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress', {}, { 'Retry-After': '1' });
  }
  if ('existing' in begun) return replayReservation(begun.existing, requestFingerprint, begun.now);
  await fault(deps, 'purchase.held');
  return completePurchase(deps, begun.created);
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
export async function completePurchase(deps: LifecycleDeps, created: VerificationRow): Promise<PurchaseOutcome> {
  // Phase 2: the upstream call, outside any transaction.
  let order;
  try {
    order = await deps.provider.buy({
      service: created.service,
      country: created.country,
      maxCostMinor: created.maxCostMinor,
      clientRef: created.id,
      ...(created.numberOptions ? { options: created.numberOptions } : {}),
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

  // Not the number asked for (area code, carrier): a definite failure at this upstream. The order is
  // cancelled there (owed if that fails) and the customer's hold released.
  const mismatch = assignedNumberMismatch(created.numberOptions, order);
  if (mismatch !== null) return refuseMismatchedNumber(deps, created, order, mismatch);

  // Phase 3: one transaction with the outcome.
  const { row, reused } = await assignNumber(deps, created.id, order, { actor: 'customer', reason: 'number assigned', responseStatus: 201 });
  if (reused && row.state === 'failed') throw new DomainError('provider_unavailable', ORDER_ID_REUSED_ANSWER, { verification_id: row.id });
  if (row.state === 'failed' || row.state === 'pending') return replayOf(row);
  return { status: 201, row, replayed: false };
}

async function refuseMismatchedNumber(deps: LifecycleDeps, created: VerificationRow, order: ProviderOrder, mismatch: string): Promise<never> {
  const message = await failMismatchedPurchase(deps, created, order, mismatch, 'customer');
  throw new DomainError('no_numbers', message, { verification_id: created.id });
}

/**
 * A number outside the request (area code, carrier) is a definite failure at that upstream: its
 * order is cancelled there (owed, and retried, when the cancel fails) and the pending purchase fails
 * with its hold released. Also used by recovery, which may find such an order after a lost answer.
 * Returns what the customer is told.
 */
export async function failMismatchedPurchase(
  deps: LifecycleDeps,
  row: VerificationRow,
  order: ProviderOrder,
  mismatch: string,
  actor: Actor,
): Promise<string> {
  const now = deps.clock.now();
  const answer = await requestUpstreamCancel(deps, order.providerOrderId, {
    verification: row.id,
    onFailure: 'cancel of a mismatched number failed; owed',
  });
  const settled = settlementAfterCancel(answer, now, new Date(now.getTime() + 30_000));
  const message = `the provider assigned a number that does not match the request (${mismatch}); you were not charged`;
  await failPurchase(deps, row.id, {
    actor,
    reason: `number_mismatch: ${mismatch}`,
    responseStatus: errorTable.no_numbers.status,
    responseCode: 'no_numbers',
    upstream: settled.status,
    upstreamNextAt: settled.nextAt,
    order,
    failureReason: message,
  });
  return message;
}

/** Counts active verifications and recent purchases of a customer (for limits), and when the first active one ends. */
async function customerActivity(
  ex: Executor,
  userId: string,
  since: Date,
): Promise<{ active: number; recent: number; firstDeadline: Date | null }> {
  const row = await firstRow<{ active: number; recent: number; first_deadline: Date | string | null }>(
    ex,
    sql`SELECT count(*) FILTER (WHERE state IN ('pending', 'waiting'))::int AS active,
               count(*) FILTER (WHERE created_at >= ${since})::int AS recent,
               min(expires_at) FILTER (WHERE state IN ('pending', 'waiting')) AS first_deadline
        FROM verifications WHERE user_id = ${userId} AND (state IN ('pending', 'waiting') OR created_at >= ${since})`,
  );
  return {
    active: Number(row?.active ?? 0),
    recent: Number(row?.recent ?? 0),
    firstDeadline: row?.first_deadline ? new Date(row.first_deadline) : null,
  };
}

/** Whole seconds from now until `at`, at least 1 (a Retry-After of 0 invites a busy loop). */
function secondsUntil(at: Date | null, now: Date): number {
  if (!at) return 1;
  return Math.max(1, Math.ceil((at.getTime() - now.getTime()) / 1000));
}
