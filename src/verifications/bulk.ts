import { inArray } from 'drizzle-orm';
import { requireVerifiedEmail } from '../accounts/flows.ts';
import { pgConstraint, pgErrorCode } from '../db/database.ts';
import { DomainError, errorTable, isDomainError, type ErrorCode } from '../errors.ts';
import type { NumberOptions } from '../providers/provider.ts';
import { decideReplay } from './idempotency.ts';
import { fault, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import { planPurchase } from './failover.ts';
import { completePurchase, replayReservation, reservationFor, type PurchaseOutcome } from './purchase.ts';
import { reservePurchase, type Reservation } from './reservation.ts';
import { verifications } from './schema.ts';

/**
 * Bulk purchase: `quantity` numbers for one service under one Idempotency-Key. Every number is its
 * own verification, with its own hold, bought through the same phases as a single purchase:
 *
 * 1. One transaction reserves them all — the holds of the whole set (each number's price), the
 *    pending rows — or none (too little money, a limit, a refused option: nothing is stored).
 * 2. Each number is bought upstream on its own; a failed one is released at once, the others go on.
 * 3. The answer lists each number's outcome in order.
 *
 * Item i's own key is `<bulk key>#<i>`, and its fingerprint includes the bulk's quantity and i, so a
 * retry with the same key and body returns the same set, and the same key with another body (another
 * quantity too) is refused — nothing changes.
 */
export const MAX_BULK_QUANTITY = 50;
/** Numbers of one bulk bought upstream at the same time (the upstreams serialise writes anyway). */
const BUY_CONCURRENCY = 4;

export interface BulkPurchaseRequest {
  userId: string;
  idempotencyKey: string;
  service: string;
  country?: string;
  maxPriceMinor?: number;
  options?: NumberOptions;
  quantity: number;
}

export interface BulkItemOutcome {
  index: number;
  /** The status a single purchase would have answered: 201 waiting, 202 pending, or the error's. */
  status: number;
  row: VerificationRow;
  error: { code: ErrorCode; detail: string } | null;
}

export interface BulkOutcome {
  items: BulkItemOutcome[];
  /** Every number was already stored under this key: the whole answer is a replay. */
  replayed: boolean;
}

export function bulkItemKey(key: string, index: number): string {
  return `${key}#${index}`;
}

export async function purchaseBulk(deps: LifecycleDeps, request: BulkPurchaseRequest): Promise<BulkOutcome> {
  const { quantity } = request;
  if (!Number.isSafeInteger(quantity) || quantity < 1 || quantity > MAX_BULK_QUANTITY) {
    throw new DomainError('validation_failed', `quantity must be a whole number from 1 to ${MAX_BULK_QUANTITY}`);
  }
  if (bulkItemKey(request.idempotencyKey, quantity - 1).length > 255) {
    throw new DomainError('validation_failed', 'the Idempotency-Key of a bulk purchase must be at most 252 characters');
  }
  await requireVerifiedEmail(deps.database.db, deps.config, request.userId, 'purchase');
  const country = request.country ?? deps.config.DEFAULT_COUNTRY;
  const items = Array.from({ length: quantity }, (_, index) => ({
    userId: request.userId,
    idempotencyKey: bulkItemKey(request.idempotencyKey, index),
    service: request.service,
    country: request.country,
    maxPriceMinor: request.maxPriceMinor,
    options: request.options,
    bulk: { quantity, index },
  }));

  // Phase 1 for the whole set, in one transaction.
  const plan = await planPurchase(deps, deps.database.db, request.service, country, request.options);
  const now = deps.clock.now();
  const requests = items.map((item) => reservationFor(deps, item, plan, now));
  const reserved = await deps.database
    .transaction(async (tx) => {
      const out: Exclude<Reservation, { kind: 'raced' }>[] = [];
      for (const request of requests) {
        const reservation = await reservePurchase(deps.database, request, tx);
        if (reservation.kind === 'raced') throw new DomainError('idempotency_in_progress', 'a bulk purchase with this Idempotency-Key is in progress', {}, { 'Retry-After': '1' });
        if (reservation.kind === 'existing') {
          // A stored number decides for the set: another body under this key changes nothing.
          const decision = decideReplay(
            {
              fingerprint: reservation.row.requestFingerprint,
              state: reservation.row.state,
              responseStatus: reservation.row.responseStatus,
              purchaseUntil: reservation.row.purchaseUntil,
            },
            request.fingerprint,
            now,
          );
          if (decision.kind === 'mismatch') {
            throw new DomainError('idempotency_key_reused', 'this Idempotency-Key was used with a different request', {
              verification_id: reservation.row.id,
            });
          }
          if (decision.kind === 'in_progress') {
            throw new DomainError('idempotency_in_progress', 'a bulk purchase with this Idempotency-Key is in progress', {}, {
              'Retry-After': String(decision.retryAfterSeconds),
            });
          }
        }
        out.push(reservation);
      }
      return out;
    })
    .catch((error: unknown) => {
      if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_idempotency') {
        throw new DomainError('idempotency_in_progress', 'a bulk purchase with this Idempotency-Key is in progress', {}, { 'Retry-After': '1' });
      }
      throw error;
    });
  await fault(deps, 'purchase.held');

  // Phases 2 and 3, each number on its own; replays answer as they did.
  const outcomes: BulkItemOutcome[] = new Array(quantity);
  const queue = reserved.map((reservation, index) => ({ reservation, index, request: requests[index]! }));
  const work = async (): Promise<void> => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const { reservation, index, request } = next;
      const row = reservation.row;
      try {
        const outcome: PurchaseOutcome =
          reservation.kind === 'existing' ? replayReservation(row, request.fingerprint, now) : await completePurchase(deps, row, plan.candidates);
        outcomes[index] = { index, status: outcome.status, row: outcome.row, error: null };
      } catch (error) {
        if (!isDomainError(error)) throw error;
        outcomes[index] = { index, status: errorTable[error.code].status, row, error: { code: error.code, detail: error.message } };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(BUY_CONCURRENCY, quantity) }, work));

  // The rows as they are now (a failed number's row is failed, its hold released).
  const fresh = await deps.database.db
    .select()
    .from(verifications)
    .where(inArray(verifications.id, outcomes.map((o) => o.row.id)));
  const byId = new Map(fresh.map((r) => [r.id, r]));
  return {
    items: outcomes.map((o) => ({ ...o, row: byId.get(o.row.id) ?? o.row })),
    replayed: reserved.every((r) => r.kind === 'existing'),
  };
}
