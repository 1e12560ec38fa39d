import { and, eq } from 'drizzle-orm';
import { DomainError } from '../errors.ts';
import { isProviderError, type ProviderOrder } from '../providers/provider.ts';
import { providerFor } from '../providers/set.ts';
import { failPurchase, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import { numberReports } from './schema.ts';
import { settlementAfterCancel } from './settlement.ts';

/** What the customer is told when the number offered was one they reported. */
export const REPORTED_NUMBER_ANSWER = 'the only number offered was one you reported for this service; you were not charged';

/**
 * A number the customer reported for a service is never sold to them again for that service. The
 * upstreams we speak to take no exclusion list at purchase, so the check is after the upstream buy
 * (purchase.ts calls this with the order just bought): such a number is a definite failure at that
 * provider — the order is cancelled upstream (or the cancel owed to settlement), the purchase fails
 * and its hold is released, and the customer is told they were not charged. Returns normally when
 * the number is fine.
 */
export async function refuseReportedNumber(deps: LifecycleDeps, row: VerificationRow, order: ProviderOrder): Promise<void> {
  const [reported] = await deps.database.db
    .select({ id: numberReports.id })
    .from(numberReports)
    .where(and(eq(numberReports.userId, row.userId), eq(numberReports.service, row.service), eq(numberReports.phoneNumber, order.phoneNumber)))
    .limit(1);
  if (!reported) return;

  let answer: Parameters<typeof settlementAfterCancel>[0] = 'failed';
  try {
    answer = await providerFor(deps, row.provider).cancel(order.providerOrderId);
  } catch (error) {
    if (!isProviderError(error)) throw error;
    deps.logger.warn({ verification: row.id, err: error }, 'cancelling a reported number upstream failed; owed');
  }
  const now = deps.clock.now();
  const upstream = settlementAfterCancel(answer, now, now).status;
  await failPurchase(deps, row.id, {
    actor: 'customer',
    reason: `the upstream offered ${order.phoneNumber}, which the customer reported for ${row.service}`,
    responseStatus: 503,
    responseCode: 'no_numbers',
    upstream: upstream === 'cancel_owed' || upstream === 'cancelled' ? upstream : 'cancelled',
    providerOrderId: order.providerOrderId,
  });
  throw new DomainError('no_numbers', REPORTED_NUMBER_ANSWER, { verification_id: row.id });
}
