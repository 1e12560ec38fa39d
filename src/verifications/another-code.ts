import { randomUUID } from 'node:crypto';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { pgConstraint, pgErrorCode } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { isProviderError } from '../providers/provider.ts';
import { providerFor } from '../providers/set.ts';
import { decideReplay, fingerprint } from './idempotency.ts';
import { failPurchase, fault, lockVerification, transition, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import { verificationEvents, verifications } from './schema.ts';

/**
 * Another code on the same number (docs/number-care.md). After a code arrived, the customer may ask
 * the upstream for another SMS on that number while the upstream allows it (SMS-Activate setStatus 3;
 * the sandbox likewise). Each additional code is a child verification of the one that bought the
 * number (`parent_id`): its own state, deadline and messages, its own cancel, on the same lifecycle.
 * The upstreams that offer it give it for free, so a child holds nothing (price 0, no hold): there is
 * nothing to capture or release, and nothing can be charged twice.
 *
 * The order-id guard stays whole: a child carries its parent's order id by construction, never one
 * an upstream handed to a new purchase, and a new purchase given an id any verification (parent or
 * child) holds still fails with the alarm (lifecycle.ts, assignNumber).
 *
 * Phases as a purchase: (1) one transaction stores the child as pending (one open child per number,
 * by a unique index); (2) the upstream call outside any transaction; (3) pending → waiting, or
 * failed when the upstream refused.
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
      const [created] = await tx
        .insert(verifications)
        .values({
          id,
          userId: root.userId,
          provider: root.provider,
          service: root.service,
          country: root.country,
          state: 'pending',
          priceMinor: 0,
          maxCostMinor: root.maxCostMinor,
          currency: root.currency,
          idempotencyKey: request.idempotencyKey,
          requestFingerprint,
          holdId: null,
          parentId: root.id,
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
        reason: `another code requested on the number of ${root.id}`,
        createdAt: now,
      });
      return { created: created!, root, now };
    })
    .catch((error: unknown) => {
      if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_idempotency') return { raced: 'key' as const };
      if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_one_open_child') return { raced: 'open' as const };
      throw error;
    });

  if ('raced' in begun) {
    if (begun.raced === 'open') throw new DomainError('invalid_state', 'another code is already being waited for on this number');
    throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress', {}, { 'Retry-After': '1' });
  }
  if ('existing' in begun && begun.existing) return replay(begun.existing, requestFingerprint, begun.now);

  const { created, root } = begun as { created: VerificationRow; root: VerificationRow };
  await fault(deps, 'another_code.requested');
  const provider = providerFor(deps, root.provider);
  try {
    await provider.anotherCode!({ providerOrderId: root.providerOrderId!, phoneNumber: root.phoneNumber!, since: created.createdAt });
  } catch (error) {
    if (isProviderError(error) && error.kind === 'definite') {
      const failed = await failPurchase(deps, created.id, {
        actor: 'customer',
        reason: `${error.code}: ${error.message}`,
        responseStatus: 409,
        responseCode: 'invalid_state',
        upstream: 'none',
      });
      throw refusal(failed ?? created);
    }
    // Ambiguous: the request may have reached the upstream. It is free and asks nothing to be bought,
    // so the child waits as if it had: a new SMS is captured, none means the wait ends at its deadline.
    deps.logger.warn({ verification: created.id, err: error }, 'another-code request outcome unknown; waiting for an SMS anyway');
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

function refusal(row: VerificationRow): DomainError {
  return new DomainError(
    'invalid_state',
    'the upstream does not give another code on this number now; nothing was charged',
    { verification_id: row.id },
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
  if (existing.state === 'failed') {
    const error = refusal(existing);
    throw new DomainError(error.code, error.message, { verification_id: existing.id }, { 'Idempotent-Replayed': 'true' });
  }
  return { status: 201, row: existing, replayed: true };
}
