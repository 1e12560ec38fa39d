import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { requireVerifiedEmail } from '../accounts/flows.ts';
import { firstRow, pgConstraint, pgErrorCode, type Executor } from '../db/database.ts';
import { DomainError, errorTable, type ErrorCode } from '../errors.ts';
import { isLedgerError } from '../ledger/errors.ts';
import { placeHold } from '../ledger/ledger.ts';
import { isProviderError, type ProviderError } from '../providers/provider.ts';
import { verificationEvents, verifications } from './schema.ts';
import { decideReplay, fingerprint } from './idempotency.ts';
import { buyWithFailover, planPurchase } from './failover.ts';
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
  // Which upstreams to try, best first (routing), chosen before anything is reserved.
  const plan = await planPurchase(deps, deps.database.db, request.service, country);

  // Phase 1: one transaction — replay or reserve.
  const begun = await deps.database
    .transaction(async (tx) => {
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

      const offer = plan?.offer;
      if (!offer) throw new DomainError('unknown_service', `no service "${request.service}" in ${country}`);
      if (request.maxPriceMinor !== undefined && offer.priceMinor > request.maxPriceMinor) {
        throw new DomainError('price_exceeds_max', `the price ${offer.priceMinor} is above max_price_minor ${request.maxPriceMinor}`, {
          price_minor: offer.priceMinor,
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
      const first = plan!.candidates[0];
      if (!first) {
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
          amountMinor: offer.priceMinor,
          verificationId: id,
          expiresAt,
          actor: 'customer',
          now,
        });
      } catch (error) {
        if (isLedgerError(error, 'insufficient_funds')) {
          throw new DomainError('insufficient_funds', `this number costs ${offer.priceMinor}; your available balance is too low`, {
            price_minor: offer.priceMinor,
          });
        }
        throw error;
      }
      const [created] = await tx
        .insert(verifications)
        .values({
          id,
          userId: request.userId,
          provider: first.provider,
          service: offer.service,
          country: offer.country,
          state: 'pending',
          priceMinor: offer.priceMinor,
          maxCostMinor: first.costMinor,
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
    })
    .catch((error: unknown) => {
      // Two identical requests racing past the lock (other processes): the loser sees the winner.
      if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_idempotency') return { raced: true as const };
      throw error;
    });

  if ('raced' in begun) {
    throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress', {}, { 'Retry-After': '1' });
  }
  if ('existing' in begun && begun.existing) {
    const existing = begun.existing;
    const decision = decideReplay(
      { fingerprint: existing.requestFingerprint, state: existing.state, responseStatus: existing.responseStatus, purchaseUntil: existing.purchaseUntil },
      requestFingerprint,
      begun.now,
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

  const created = (begun as { created: VerificationRow }).created;
  await fault(deps, 'purchase.held');

  // Phase 2: the upstream call, outside any transaction; the next candidate only after a definite failure.
  let order;
  try {
    order = await buyWithFailover(deps, created, plan!.candidates);
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

  // Phase 3: one transaction with the outcome.
  const { row, reused } = await assignNumber(deps, created.id, order, { actor: 'customer', reason: 'number assigned', responseStatus: 201 });
  if (reused && row.state === 'failed') throw new DomainError('provider_unavailable', ORDER_ID_REUSED_ANSWER, { verification_id: row.id });
  if (row.state === 'failed' || row.state === 'pending') return replayOf(row);
  return { status: 201, row, replayed: false };
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
