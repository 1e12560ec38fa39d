import { createHash } from 'node:crypto';
import { IDEMPOTENCY_KEY_PATTERN, IDEMPOTENCY_KEY_RULE } from '../accounts/policy.ts';
import { DomainError } from '../errors.ts';

/**
 * Idempotency-Key rules for purchases (IETF draft semantics; docs/api.md, "Idempotency"), as pure functions.
 */
export function parseIdempotencyKey(header: string | string[] | undefined): string {
  if (header === undefined || header === '') {
    throw new DomainError('idempotency_key_missing', 'an Idempotency-Key header is required for this request');
  }
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !IDEMPOTENCY_KEY_PATTERN.test(value)) {
    throw new DomainError('validation_failed', `Idempotency-Key must be ${IDEMPOTENCY_KEY_RULE}`);
  }
  return value;
}

/** A stable digest of what was asked, so the same key with another request is recognised. */
export function fingerprint(request: Record<string, unknown>): string {
  const canonical = JSON.stringify(Object.keys(request).sort().map((k) => [k, request[k] ?? null]));
  return createHash('sha256').update(canonical).digest('hex');
}

export type ReplayDecision =
  | { kind: 'mismatch' }
  | { kind: 'in_progress'; retryAfterSeconds: number }
  | { kind: 'replay' };

export function decideReplay(
  stored: { fingerprint: string; state: string; responseStatus: number | null; purchaseUntil: Date | null },
  requestFingerprint: string,
  now: Date,
): ReplayDecision {
  if (stored.fingerprint !== requestFingerprint) return { kind: 'mismatch' };
  const running = stored.responseStatus === null && stored.state === 'pending' && stored.purchaseUntil !== null && stored.purchaseUntil > now;
  if (running) {
    return { kind: 'in_progress', retryAfterSeconds: Math.max(1, Math.ceil((stored.purchaseUntil!.getTime() - now.getTime()) / 1000)) };
  }
  return { kind: 'replay' };
}
