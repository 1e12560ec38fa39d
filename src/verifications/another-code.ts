import { randomUUID } from 'node:crypto';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { recordAudit } from '../accounts/audit.ts';
import { pgConstraint, pgErrorCode } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { LedgerError } from '../ledger/errors.ts';
import { placeHold } from '../ledger/ledger.ts';
import { formatMinor } from '../money.ts';
import { isProviderError, type AnotherCodeOrder, type AnotherCodeTerms, type ProviderError } from '../providers/provider.ts';
import { providerFor } from '../providers/set.ts';
import { decideReplay, fingerprint } from './idempotency.ts';
import {
  assignNumber,
  failPurchase,
  fault,
  lockVerification,
  ORDER_ID_REUSED_ANSWER,
  transition,
  type LifecycleDeps,
  type VerificationRow,
} from './lifecycle.ts';
import { verificationEvents, verifications } from './schema.ts';

/**
 * Another code on the same number (docs/number-care.md). After a code arrived, the customer may ask
 * the upstream for another SMS on that number while the upstream allows it. Each additional code is
 * a child verification of the one that bought the number (`parent_id`): its own state, deadline and
 * messages, its own cancel, on the same lifecycle. Upstreams sell it in three ways (the provider's
 * `anotherCodeTerms`):
 *
 * - free on the same order (SMS-Activate setStatus 3, the sandbox): the child holds nothing (price
 *   0, no hold) and carries its parent's order id; the order's cancel and finish are the parent's.
 * - free on a new order (TextVerified reuse): still no hold, but the child owns the new order
 *   (`own_order`): it polls, cancels it, and the order-id guard covers it like a purchase's.
 * - charged on a new order (DaisySMS extra activation): the child is a purchase of a chosen number:
 *   its own hold of its parent's price, placed in the transaction that creates it, captured when its
 *   SMS arrives, released exactly once on cancel, deadline or failure, by the same transitions.
 *
 * Phases as a purchase: (1) one transaction stores the child as pending (one open child per number,
 * by a unique index) with its hold when charged; (2) the upstream call outside any transaction;
 * (3) pending → waiting, or failed (hold released) when the upstream refused. A lost answer is only
 * waited out where nothing was bought and the order is known (the free same-order case); where the
 * upstream may have sold a new order we cannot name, the child fails, released, and the possible
 * orphan is recorded for the operator (failUncertain).
 */
export interface AnotherCodeRequest {
  userId: string;
  /** The verification the customer points at: the one that bought the number, or one of its children. */
  verificationId: string;
  idempotencyKey: string;
}

export interface AnotherCodeOutcome {
  status: 201;
  row: VerificationRow;
  replayed: boolean;
}

export async function requestAnotherCode(deps: LifecycleDeps, request: AnotherCodeRequest): Promise<AnotherCodeOutcome> {
  const requestFingerprint = fingerprint({ another_code_of: request.verificationId });
  const begun = await deps.database
    .transaction(async (tx) => {
      const now = deps.clock.now();
      // One customer's writes queue here (as a purchase's), so identical concurrent requests see each other.
      await tx.execute(sql`SELECT 1 FROM users WHERE id = ${request.userId} FOR NO KEY UPDATE`);
      const [existing] = await tx
        .select()
        .from(verifications)
        .where(and(eq(verifications.userId, request.userId), eq(verifications.idempotencyKey, request.idempotencyKey)));
      if (existing) return { existing, now };

      const pointed = await lockVerification(tx, request.verificationId);
      if (!pointed || pointed.userId !== request.userId) throw new DomainError('not_found', 'no such verification');
      const root = pointed.parentId === null ? pointed : await lockVerification(tx, pointed.parentId);
      if (!root) throw new DomainError('not_found', 'no such verification');
      const provider = providerFor(deps, root.provider);
      refuseUnlessOffered(root, now, Boolean(provider.anotherCode), Boolean(provider.complete));
      const terms = termsOf(provider.anotherCodeTerms);
      const [open] = await tx
        .select({ id: verifications.id })
        .from(verifications)
        .where(and(eq(verifications.parentId, root.id), inArray(verifications.state, ['pending', 'waiting'])));
      if (open) {
        throw new DomainError('invalid_state', 'another code is already being waited for on this number', { verification_id: open.id });
      }

      const id = randomUUID();
      // The child's wait ends with the number's window: the upstream's order does not outlive it.
      const ours = new Date(now.getTime() + deps.config.VERIFICATION_TTL_SECONDS * 1000);
      const expiresAt = ours < root.expiresAt ? ours : root.expiresAt;
      const purchaseUntil = new Date(now.getTime() + deps.config.PURCHASE_TIMEOUT_SECONDS * 1000);
      if (root.upstreamStatus === 'finish_owed' && root.upstreamNextAt !== null && root.upstreamNextAt < expiresAt) {
        // The parent's finish would close the order under this wait: it waits for this one's end.
        await tx.update(verifications).set({ upstreamNextAt: expiresAt, updatedAt: now }).where(eq(verifications.id, root.id));
      }
      // Charged: the parent's price, the rule a purchase of this number again would follow (the
      // upstream sells the same service on the same number); held before anything is asked upstream.
      const priceMinor = terms.charged ? root.priceMinor : 0;
      const hold = priceMinor > 0 ? await placeHold(tx, { userId: root.userId, amountMinor: priceMinor, verificationId: id, expiresAt, actor: 'customer', now }) : null;
      const [created] = await tx
        .insert(verifications)
        .values({
          id,
          userId: root.userId,
          provider: root.provider,
          service: root.service,
          country: root.country,
          state: 'pending',
          priceMinor,
          maxCostMinor: root.maxCostMinor,
          currency: root.currency,
          idempotencyKey: request.idempotencyKey,
          requestFingerprint,
          holdId: hold?.id ?? null,
          parentId: root.id,
          ownOrder: terms.newOrder,
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
        reason: `another code requested on the number of ${root.id}${priceMinor > 0 ? `; ${formatMinor(priceMinor, root.currency)} held` : ''}`,
        createdAt: now,
      });
      return { created: created!, root, terms, now };
    })
    .catch((error: unknown) => {
      if (error instanceof LedgerError && error.code === 'insufficient_funds') {
        throw new DomainError('insufficient_funds', 'another code on this number costs more than your available balance');
      }
      if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_idempotency') return { raced: 'key' as const };
      if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_one_open_child') return { raced: 'open' as const };
      throw error;
    });

  if ('raced' in begun) {
    if (begun.raced === 'open') throw new DomainError('invalid_state', 'another code is already being waited for on this number');
    throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress', {}, { 'Retry-After': '1' });
  }
  if ('existing' in begun && begun.existing) return replay(begun.existing, requestFingerprint, begun.now);

  const { created, root, terms } = begun as { created: VerificationRow; root: VerificationRow; terms: AnotherCodeTerms };
  await fault(deps, 'another_code.requested');
  const provider = providerFor(deps, root.provider);
  let order: AnotherCodeOrder | null = null;
  try {
    order = await provider.anotherCode!({ providerOrderId: root.providerOrderId!, phoneNumber: root.phoneNumber!, since: created.createdAt });
  } catch (error) {
    if (!isProviderError(error)) throw error;
    if (error.kind === 'definite') {
      const failed = await failPurchase(deps, created.id, {
        actor: 'customer',
        reason: `${error.code}: ${error.message}`,
        responseStatus: 409,
        responseCode: 'invalid_state',
        upstream: 'none',
      });
      throw refusal(failed ?? created, error);
    }
    if (terms.newOrder) throw await failUncertain(deps, created, root, error);
    // Ambiguous on the same order: the request may have reached the upstream. It is free and asks
    // nothing to be bought, so the child waits as if it had: a new SMS is captured, none means the
    // wait ends at its deadline, free.
    deps.logger.warn({ verification: created.id, err: error }, 'another-code request outcome unknown; waiting for an SMS anyway');
  }

  const unfit = order && terms.newOrder ? unfitNewOrder(root, order) : null;
  if (order && unfit !== null) {
    // Bought but not what was asked: not sold to the customer (released), the order cancelled upstream
    // by settlement (the sellers that sell a new order charge nothing for one cancelled unused).
    const failed = await failPurchase(deps, created.id, {
      actor: 'customer',
      reason: unfit,
      responseStatus: 409,
      responseCode: 'invalid_state',
      upstream: 'cancel_owed',
      order: { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, endsAt: order.endsAt, costMinor: order.costMinor },
    });
    throw refusal(failed ?? created);
  }

  if (order && terms.newOrder) {
    // A new upstream order: assigned like a purchase's (an id any verification holds fails it with
    // the order_id_reused alarm; one that arrives after recovery ended the child is owed a cancel).
    const { row, reused } = await assignNumber(
      deps,
      created.id,
      { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, endsAt: order.endsAt, costMinor: order.costMinor },
      { actor: 'customer', reason: 'another code bought upstream on the same number; waiting for the SMS', responseStatus: 201 },
    );
    if (reused && row.state === 'failed') throw new DomainError('provider_unavailable', ORDER_ID_REUSED_ANSWER, { verification_id: row.id });
    if (row.state === 'failed') throw refusal(row);
    return { status: 201, row, replayed: false };
  }

  const now = deps.clock.now();
  const row = await deps.database.transaction(async (tx) => {
    const current = await lockVerification(tx, created.id);
    if (!current || current.state !== 'pending') return current ?? created;
    const moved = await transition(tx, current, 'waiting', {
      actor: 'customer',
      reason: 'another code requested upstream; waiting for the SMS',
      now,
      set: {
        phoneNumber: root.phoneNumber,
        providerOrderId: root.providerOrderId,
        purchaseUntil: null,
        responseStatus: 201,
        nextCheckAt: new Date(Math.min(now.getTime() + deps.config.POLL_INTERVAL_MS, current.expiresAt.getTime())),
        // The order is the parent's: its cancel and finish are the parent's business.
        upstreamStatus: 'none',
      },
    });
    return moved ?? current;
  });
  // Recovery ended it meanwhile (the request outlived PURCHASE_TIMEOUT_SECONDS): not granted.
  if (row.state === 'failed') throw refusal(row);
  return { status: 201, row, replayed: false };
}

const FREE_SAME_ORDER: AnotherCodeTerms = { charged: false, newOrder: false };

/**
 * Why a new order the upstream sold for another code is not the one asked for, or null when it is:
 * another number than the parent's, or a cost above the parent's cap (no upstream takes a price cap
 * on this call, so the cap a purchase sends is checked on the answer instead).
 */
export function unfitNewOrder(root: Pick<VerificationRow, 'phoneNumber' | 'maxCostMinor'>, order: AnotherCodeOrder): string | null {
  if (order.phoneNumber !== root.phoneNumber) return `the upstream gave another number (${order.phoneNumber}) than the parent's`;
  if (order.costMinor !== null && order.costMinor > root.maxCostMinor) {
    return `the upstream charged ${order.costMinor} for another code, above the cap ${root.maxCostMinor}`;
  }
  return null;
}

function termsOf(terms: AnotherCodeTerms | undefined): AnotherCodeTerms {
  return terms ?? FREE_SAME_ORDER;
}

/**
 * A lost answer where the upstream sells a new order per code: we cannot wait on an order we cannot
 * name, and a charged one must never be left holding the customer's money on a guess. The child
 * fails now, its hold (if any) released by the transition; an order the upstream may have created is
 * recorded for the operator (audit `upstream.another_code_uncertain`): where the upstream lists its
 * active orders (TextVerified), reconcile's sweep cancels any order no verification knows; DaisySMS
 * lists none, and charges an activation only when a code reaches it.
 */
async function failUncertain(deps: LifecycleDeps, created: VerificationRow, root: VerificationRow, error: ProviderError): Promise<DomainError> {
  const reason = `another-code outcome unknown (${error.code}); not waited for, nothing charged; an upstream order may exist`;
  deps.logger.error({ verification: created.id, parent: root.id, provider: root.provider, err: error }, 'another-code request outcome unknown on an upstream that sells a new order: failed and released');
  const failed = await deps.database.transaction(async (tx) => {
    const current = await lockVerification(tx, created.id);
    if (!current || current.state !== 'pending') return current;
    const moved = await transition(tx, current, 'failed', {
      actor: 'customer',
      reason,
      now: deps.clock.now(),
      set: { failureReason: reason, responseStatus: 503, responseCode: 'provider_unavailable', upstreamStatus: 'none' },
    });
    await recordAudit(tx, {
      actorId: null,
      actor: 'system',
      action: 'upstream.another_code_uncertain',
      subjectId: created.id,
      detail: { provider: root.provider, parent_id: root.id, parent_order_id: root.providerOrderId, phone_number: root.phoneNumber, price_minor: created.priceMinor },
      now: deps.clock.now(),
    });
    return moved;
  });
  return new DomainError(
    'provider_unavailable',
    'the upstream did not answer the request for another code; you were not charged, try again',
    { verification_id: (failed ?? created).id },
    { 'Retry-After': '5' },
  );
}

/** Whether the number's upstream offers another code now; a refusal says why and changes nothing. */
function refuseUnlessOffered(root: VerificationRow, now: Date, supported: boolean, finishedUpstream: boolean): void {
  if (!supported) throw new DomainError('invalid_state', 'this number\'s provider does not offer another code on the same number');
  if (root.state !== 'received' || root.providerOrderId === null || root.phoneNumber === null) {
    throw new DomainError('invalid_state', `another code is available once a code arrived; this verification is ${root.state}`);
  }
  // An upstream told the order is finished gives no more codes: the window is until that finish.
  const open = finishedUpstream
    ? root.upstreamStatus === 'finish_owed' && root.upstreamNextAt !== null && now < root.upstreamNextAt && now < root.expiresAt
    : now < root.expiresAt;
  if (!open) throw new DomainError('invalid_state', 'the window for another code on this number has closed');
}

function refusal(row: VerificationRow, error?: ProviderError): DomainError {
  // ASLEEP (DaisySMS): the number is offline for a while; the upstream says when to ask again.
  const wait = error?.retryAfterSeconds;
  return new DomainError(
    'invalid_state',
    'the upstream does not give another code on this number now; nothing was charged',
    { verification_id: row.id, ...(wait === undefined ? {} : { retry_after_seconds: wait }) },
    wait === undefined ? {} : { 'Retry-After': String(wait) },
  );
}

function replay(existing: VerificationRow, requestFingerprint: string, now: Date): AnotherCodeOutcome {
  const decision = decideReplay(
    { fingerprint: existing.requestFingerprint, state: existing.state, responseStatus: existing.responseStatus, purchaseUntil: existing.purchaseUntil },
    requestFingerprint,
    now,
  );
  if (decision.kind === 'mismatch') {
    throw new DomainError('idempotency_key_reused', 'this Idempotency-Key was used with a different request', { verification_id: existing.id });
  }
  if (decision.kind === 'in_progress') {
    throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress', {}, {
      'Retry-After': String(decision.retryAfterSeconds),
    });
  }
  if (existing.state === 'failed' && existing.responseCode === 'provider_unavailable') {
    throw new DomainError('provider_unavailable', existing.failureReason ?? 'the upstream did not answer; you were not charged', { verification_id: existing.id }, {
      'Idempotent-Replayed': 'true',
    });
  }
  if (existing.state === 'failed') {
    const error = refusal(existing);
    throw new DomainError(error.code, error.message, { verification_id: existing.id }, { 'Idempotent-Replayed': 'true' });
  }
  return { status: 201, row: existing, replayed: true };
}
