import { and, asc, desc, eq, gt, sql } from 'drizzle-orm';
import { z } from 'zod';
import { Timestamp } from '../clock.ts';
import { pgConstraint, pgErrorCode, type Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { isProviderError } from '../providers/provider.ts';
import { providerFor } from '../providers/set.ts';
import { cancelVerification } from './flows.ts';
import { loadVerification, recordEvent, type LifecycleDeps, type VerificationRow } from './lifecycle.ts';
import { numberReports, reportReasons, verifications, type ReportReason } from './schema.ts';

/**
 * Reporting a bad number (docs/number-care.md): "the service rejected this number" or "the code
 * never came". One report per verification (a repeat answers the first). What happens to the money
 * follows the verification's state, never the customer's word:
 *
 * - waiting: it is cancelled as any cancel (the hold released, the upstream cancel done or owed); an
 *   SMS that won the race stays delivered and the report is refused with the code (409);
 * - received (captured): where the upstream takes reports, the order is reported and the charge is
 *   refunded when, and only when, the upstream says it refunded us (report-refunds.ts, through the
 *   engine's settlement); elsewhere the charge stands;
 * - cancelled or expired: nothing was charged; the report is recorded.
 *
 * Every report makes the customer's next purchase of that service refuse that number
 * (reported-numbers.ts). At most REPORTS_PER_DAY reports per customer in any 24 hours.
 */
export const NumberReportSchema = z
  .object({
    verification_id: z.uuid(),
    reason: z.enum(reportReasons),
    phone_number: z.string(),
    upstream: z.enum(['reported', 'report_owed', 'cancelled', 'not_reportable']).describe('what the upstream was told'),
    refund: z
      .enum(['none', 'awaiting_upstream', 'refunded', 'declined'])
      .describe('none: nothing was charged; awaiting_upstream: refunded when the upstream refunds the report; declined: the charge stands'),
    created_at: Timestamp,
  })
  .meta({ id: 'NumberReport' });
export type NumberReportView = z.output<typeof NumberReportSchema>;

type ReportRow = typeof numberReports.$inferSelect;

export function reportView(row: ReportRow): NumberReportView {
  return {
    verification_id: row.verificationId,
    reason: row.reason,
    phone_number: row.phoneNumber,
    upstream: row.upstream,
    refund: row.refund,
    created_at: row.createdAt.toISOString(),
  };
}

export async function findReport(ex: Executor, verificationId: string): Promise<ReportRow | undefined> {
  const [row] = await ex.select().from(numberReports).where(eq(numberReports.verificationId, verificationId));
  return row;
}

/** Every report of a customer, newest first (their data export). */
export async function listReports(ex: Executor, userId: string): Promise<NumberReportView[]> {
  const list = await ex.select().from(numberReports).where(eq(numberReports.userId, userId)).orderBy(desc(numberReports.createdAt));
  return list.map(reportView);
}

export interface ReportOutcome {
  report: ReportRow;
  verification: VerificationRow;
  /** False when this verification had been reported already (the first report is answered). */
  created: boolean;
}

export async function reportNumber(
  deps: LifecycleDeps,
  request: { userId: string; verificationId: string; reason: ReportReason },
): Promise<ReportOutcome> {
  const row = await loadVerification(deps.database.db, request.verificationId);
  if (!row || row.userId !== request.userId) throw new DomainError('not_found', 'no such verification');
  const existing = await findReport(deps.database.db, row.id);
  if (existing) return { report: existing, verification: row, created: false };
  if (row.phoneNumber === null || row.state === 'pending' || row.state === 'failed') {
    throw new DomainError('invalid_state', `a ${row.state} verification has no number to report`);
  }
  await refuseOverLimit(deps, request.userId);

  let current = row;
  let upstream: ReportRow['upstream'] = 'not_reportable';
  let refund: ReportRow['refund'] = 'none';
  if (row.state === 'waiting') {
    const cancelled = await cancelVerification(deps, row, 'customer');
    if (cancelled.kind === 'too_early') {
      throw new DomainError('cancel_too_early', `the provider does not allow cancelling yet; retry in ${cancelled.retryAfterSeconds} s`, {
        retry_after_seconds: cancelled.retryAfterSeconds,
      }, { 'retry-after': String(cancelled.retryAfterSeconds) });
    }
    current = cancelled.row;
    if (cancelled.kind === 'invalid_state') {
      // The SMS won the race: the customer has their code and was charged for it; nothing to report.
      const detail = current.state === 'received' ? `the code arrived (${current.code ?? 'see messages'}) before the report` : `a ${current.state} verification`;
      throw new DomainError('invalid_state', detail, { verification_id: current.id });
    }
    upstream = 'cancelled';
  }
  // A captured one is reported where the upstream takes reports; its refund waits for the upstream.
  const provider = providerFor(deps, current.provider);
  const reportable = current.state === 'received' && current.holdId !== null && Boolean(provider.report) && current.upstreamStatus === 'completed';
  if (reportable) {
    upstream = 'report_owed';
    refund = 'awaiting_upstream';
  } else if (current.state === 'received' && current.holdId !== null) {
    refund = 'declined';
  }

  const now = deps.clock.now();
  const report = await deps.database
    .transaction(async (tx) => {
      await tx.execute(sql`SELECT 1 FROM users WHERE id = ${request.userId} FOR NO KEY UPDATE`);
      // Again under the customer's lock: concurrent reports never pass the limit together. (A
      // waiting number's cancel may already have happened: a release, never a loss.)
      await refuseOverLimit(deps, request.userId, tx);
      const [inserted] = await tx
        .insert(numberReports)
        .values({
          userId: current.userId,
          verificationId: current.id,
          provider: current.provider,
          service: current.service,
          phoneNumber: current.phoneNumber!,
          reason: request.reason,
          upstream,
          refund,
          createdAt: now,
          updatedAt: now,
        })
        .returning();
      if (reportable) {
        // The engine's settlement sends the report if the call below does not, and asks for the outcome.
        await tx
          .update(verifications)
          .set({ upstreamStatus: 'reported', upstreamNextAt: now, upstreamAttempts: 0, updatedAt: now })
          .where(and(eq(verifications.id, current.id), eq(verifications.upstreamStatus, 'completed')));
      }
      await recordEvent(tx, current.id, current.state, 'customer', `number reported: ${request.reason.replace(/_/g, ' ')}`, now);
      return inserted!;
    })
    .catch(async (error: unknown) => {
      // The same verification reported twice at once: the first report is the answer.
      if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'number_reports_verification_id_key') return (await findReport(deps.database.db, current.id))!;
      throw error;
    });
  if (report.upstream !== 'report_owed') return { report, verification: current, created: true };

  // The report itself, outside any transaction; a failure leaves it owed to the engine.
  try {
    await provider.report!(current.providerOrderId!);
    const [sent] = await deps.database.db
      .update(numberReports)
      .set({ upstream: 'reported', updatedAt: deps.clock.now() })
      .where(and(eq(numberReports.id, report.id), eq(numberReports.upstream, 'report_owed')))
      .returning();
    return { report: sent ?? report, verification: current, created: true };
  } catch (error) {
    if (!isProviderError(error)) throw error;
    deps.logger.warn({ verification: current.id, err: error }, 'reporting the number upstream failed; the engine retries');
    return { report, verification: current, created: true };
  }
}

/** REPORTS_PER_DAY in any 24 hours; beyond it 429 with the seconds until the oldest leaves the window. */
async function refuseOverLimit(deps: LifecycleDeps, userId: string, ex: Executor = deps.database.db): Promise<void> {
  const now = deps.clock.now();
  const since = new Date(now.getTime() - 86_400_000);
  const recent = await ex
    .select({ createdAt: numberReports.createdAt })
    .from(numberReports)
    .where(and(eq(numberReports.userId, userId), gt(numberReports.createdAt, since)))
    .orderBy(asc(numberReports.createdAt));
  const limit = deps.config.REPORTS_PER_DAY;
  if (recent.length < limit) return;
  const frees = recent[recent.length - limit]!.createdAt.getTime() + 86_400_000;
  const seconds = Math.max(1, Math.ceil((frees - now.getTime()) / 1000));
  throw new DomainError('rate_limited', `at most ${limit} reports per day`, { retry_after_seconds: seconds }, { 'Retry-After': String(seconds) });
}
