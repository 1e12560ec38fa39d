import { and, eq } from 'drizzle-orm';
import type { ProviderOrder } from '../providers/provider.ts';
import type { LifecycleDeps, VerificationRow } from './lifecycle.ts';
import { numberReports } from './schema.ts';

/** What the customer is told when the number offered was one they reported. */
export const REPORTED_NUMBER_ANSWER = 'the only number offered was one you reported for this service; you were not charged';

/**
 * A number the customer reported for a service is never sold to them again for that service. The
 * upstreams we speak to take no exclusion list at purchase, so the check is after the upstream buy:
 * purchase.ts asks here about the order just bought, and refuses such a number as a definite
 * failure at that provider (refuseBoughtNumber: cancelled upstream or owed, hold released).
 */
export async function wasReported(deps: LifecycleDeps, row: VerificationRow, order: ProviderOrder): Promise<boolean> {
  const [reported] = await deps.database.db
    .select({ id: numberReports.id })
    .from(numberReports)
    .where(and(eq(numberReports.userId, row.userId), eq(numberReports.service, row.service), eq(numberReports.phoneNumber, order.phoneNumber)))
    .limit(1);
  return reported !== undefined;
}
