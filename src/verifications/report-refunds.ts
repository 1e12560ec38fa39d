import { and, eq, sql } from 'drizzle-orm';
import { isProviderError } from '../providers/provider.ts';
import { providerFor } from '../providers/set.ts';
import { lockVerification, recordEvent, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import { giveChargeBack } from './repairs.ts';
import { numberReports, verifications, type Actor, type UpstreamStatus } from './schema.ts';
import { backoffMs } from './transitions.ts';

/**
 * The upstream's side of a report on a captured verification (docs/number-care.md). A report the
 * upstream has not answered yet (`report_owed`) is sent again; a sent one is asked about until the
 * upstream decides. Only when the upstream says it refunded us is the customer's charge given back:
 * a correction transfer keyed by the charge (at most one per charge, by the ledger's key), in one
 * transaction with the report's compare-and-set from `awaiting_upstream` to `refunded` — so the
 * refund happens exactly once however often, and by however many engines, this runs.
 *
 * The verification carries upstream_status `reported` with upstream_next_at set while the engine
 * should ask (its settlement claims it like an owed cancel); null once the matter is closed.
 */

/** Asks at most this many times (backoff capped at 5 minutes: about a day); then the report waits for an operator. */
export const REPORT_CHECK_ATTEMPTS = 300;

export async function settleReport(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<UpstreamStatus> {
  const [report] = await deps.database.db.select().from(numberReports).where(eq(numberReports.verificationId, row.id));
  if (!report || report.refund !== 'awaiting_upstream' || !row.providerOrderId) return close(deps, row);
  const provider = providerFor(deps, row.provider);
  try {
    if (report.upstream === 'report_owed') {
      if (!provider.report) return decline(deps, row, actor, 'the upstream takes no reports');
      await provider.report(row.providerOrderId);
      await deps.database.db
        .update(numberReports)
        .set({ upstream: 'reported', updatedAt: deps.clock.now() })
        .where(and(eq(numberReports.id, report.id), eq(numberReports.upstream, 'report_owed')));
    }
    if (!provider.reportOutcome) return decline(deps, row, actor, 'the upstream does not say whether it refunds a report');
    const outcome = await provider.reportOutcome(row.providerOrderId);
    if (outcome === 'refunded') return refund(deps, row, actor);
    if (outcome === 'declined') return decline(deps, row, actor, 'the upstream kept the cost of the reported number');
  } catch (error) {
    if (!isProviderError(error)) throw error;
    if (error.kind === 'definite' && report.upstream === 'report_owed') return decline(deps, row, actor, `the upstream refused the report (${error.code})`);
    deps.logger.warn({ verification: row.id, err: error }, 'asking the upstream about a report failed; asking again later');
  }
  return askAgain(deps, row, actor);
}

/** The upstream refunded us: the customer's charge comes back, once. */
async function refund(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<UpstreamStatus> {
  const now = deps.clock.now();
  await deps.database.transaction(async (tx) => {
    const current = await lockVerification(tx, row.id);
    const [report] = await tx
      .update(numberReports)
      .set({ refund: 'refunded', updatedAt: now })
      .where(and(eq(numberReports.verificationId, row.id), eq(numberReports.refund, 'awaiting_upstream')))
      .returning();
    if (!current || !report) return;
    await giveChargeBack(tx, current, actor, now, {
      ledger: 'refund of a reported number: the upstream refunded it',
      event: 'refunded: the upstream accepted the report of this number',
    });
    await tx.update(verifications).set({ upstreamNextAt: null, updatedAt: now }).where(eq(verifications.id, row.id));
  });
  return 'reported';
}

async function decline(deps: LifecycleDeps, row: VerificationRow, actor: Actor, why: string): Promise<UpstreamStatus> {
  const now = deps.clock.now();
  await deps.database.transaction(async (tx) => {
    const [report] = await tx
      .update(numberReports)
      .set({ refund: 'declined', updatedAt: now })
      .where(and(eq(numberReports.verificationId, row.id), eq(numberReports.refund, 'awaiting_upstream')))
      .returning();
    await tx.update(verifications).set({ upstreamNextAt: null, updatedAt: now }).where(eq(verifications.id, row.id));
    if (report) await recordEvent(tx, row.id, row.state, actor, `report not refunded: ${why}`, now);
  });
  return 'reported';
}

/** Nothing is awaited from the upstream for this row: stop asking. */
async function close(deps: LifecycleDeps, row: VerificationRow): Promise<UpstreamStatus> {
  await deps.database.db.update(verifications).set({ upstreamNextAt: null, updatedAt: deps.clock.now() }).where(eq(verifications.id, row.id));
  return row.upstreamStatus;
}

async function askAgain(deps: LifecycleDeps, row: VerificationRow, actor: Actor): Promise<UpstreamStatus> {
  const attempts = row.upstreamAttempts + 1;
  if (attempts >= REPORT_CHECK_ATTEMPTS) {
    // Left awaiting: an operator sees it (docs/number-care.md) and can still refund by hand.
    const now = deps.clock.now();
    await deps.database.transaction(async (tx) => {
      await tx.update(verifications).set({ upstreamNextAt: null, upstreamAttempts: attempts, updatedAt: now }).where(eq(verifications.id, row.id));
      await recordEvent(tx, row.id, row.state, actor, `the upstream has not decided on the report after ${attempts} questions; no longer asking`, now);
    });
    return 'reported';
  }
  const next = new Date(deps.clock.now().getTime() + backoffMs(attempts));
  await deps.database.db
    .update(verifications)
    .set({ upstreamNextAt: next, upstreamAttempts: sql`${verifications.upstreamAttempts} + 1` })
    .where(and(eq(verifications.id, row.id), eq(verifications.upstreamStatus, 'reported')));
  return 'reported';
}
