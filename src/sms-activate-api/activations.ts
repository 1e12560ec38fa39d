import { and, eq, inArray } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import type { VerificationRow } from '../verifications/lifecycle.ts';
import { findCustomerVerification } from '../verifications/resource.ts';
import { verifications } from '../verifications/schema.ts';
import { smsActivateActivations } from './schema.ts';

/**
 * Activation ids: the protocol's integer handle of a verification. A verification gets one the
 * first time the protocol shows it (bought here, or bought through /v1 and listed here), and keeps
 * it. The only writer of sms_activate_activations.
 */
export async function activationIdsOf(ex: Executor, verificationIds: string[]): Promise<Map<string, number>> {
  if (verificationIds.length === 0) return new Map();
  const read = () =>
    ex
      .select()
      .from(smsActivateActivations)
      .where(inArray(smsActivateActivations.verificationId, verificationIds));
  let found = await read();
  if (found.length < verificationIds.length) {
    const known = new Set(found.map((f) => f.verificationId));
    const missing = verificationIds.filter((id) => !known.has(id));
    // A concurrent caller may give one first; either way each verification ends with one id.
    await ex
      .insert(smsActivateActivations)
      .values(missing.map((verificationId) => ({ verificationId })))
      .onConflictDoNothing({ target: smsActivateActivations.verificationId });
    found = await read();
  }
  return new Map(found.map((f) => [f.verificationId, f.activationId]));
}

export async function activationIdOf(ex: Executor, verificationId: string): Promise<number> {
  return (await activationIdsOf(ex, [verificationId])).get(verificationId)!;
}

export type ActivationLookup =
  | { kind: 'found'; row: VerificationRow; activationId: number }
  | { kind: 'unknown' }
  | { kind: 'malformed' };

const ACTIVATION_ID = /^\d{1,15}$/;
const VERIFICATION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The customer's activation named by an `id` parameter: an activation id, or (for customers who
 * also use /v1) the verification's own id. Another customer's is unknown, exactly like one that
 * does not exist.
 */
export async function findActivation(ex: Executor, userId: string, id: string | undefined): Promise<ActivationLookup> {
  const value = id?.trim() ?? '';
  if (ACTIVATION_ID.test(value)) {
    const [found] = await ex
      .select({ row: verifications })
      .from(smsActivateActivations)
      .innerJoin(verifications, eq(verifications.id, smsActivateActivations.verificationId))
      .where(and(eq(smsActivateActivations.activationId, Number(value)), eq(verifications.userId, userId)));
    return found ? { kind: 'found', row: found.row, activationId: Number(value) } : { kind: 'unknown' };
  }
  if (VERIFICATION_ID.test(value)) {
    const row = await findCustomerVerification(ex, userId, value.toLowerCase());
    return row ? { kind: 'found', row, activationId: await activationIdOf(ex, row.id) } : { kind: 'unknown' };
  }
  return { kind: 'malformed' };
}
