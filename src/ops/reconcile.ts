import { inArray, sql } from 'drizzle-orm';
import { recordAudit } from '../accounts/audit.ts';
import { rows, type Executor } from '../db/database.ts';
import type { Provider } from '../providers/provider.ts';
import { providerFor } from '../providers/set.ts';
import { scrubSecrets } from '../logging.ts';
import { recheckTopUp } from '../payments/recheck.ts';
import { adoptLedgerCredit } from '../payments/settlement.ts';
import { findTopUp, type PaymentDeps } from '../payments/top-ups.ts';
import { expireVerification, recoverPurchase } from '../verifications/flows.ts';
import { loadVerification, type LifecycleDeps, type VerificationRow } from '../verifications/lifecycle.ts';
import { refundLateCapture, refundWrongCapture, releaseOrphanHold, resolveTerminalHold } from '../verifications/repairs.ts';
import { cancelForeignOrder, settleSuspectedOrphan, settleUpstream } from '../verifications/settlement.ts';
import { verifications } from '../verifications/schema.ts';
import type { Finding, ProblemKind, ReconcileReport } from './reports.ts';
import { DEADLINE_GRACE_SECONDS, ORPHAN_HOLD, problemRules } from './rules.ts';
import { TOP_UP_CREDIT_OFFENDERS } from './top-up-checks.ts';

/**
 * `reconcile`: finds every money problem among the verifications created in the last N days with a
 * few set-based queries, then (with execute) repairs them one by one through the settlement code —
 * the same lifecycle and ledger functions the service itself uses, as actor `reconciler`, each
 * repair compare-and-set and audited. Because every repair checks the current state first, a
 * second run finds nothing left to do, and a run racing the engine cannot resolve anything twice.
 *
 * Never repaired automatically, only reported: a delivered (received) verification whose hold was
 * released (taking the money back is the operator's decision), and an active verification whose
 * hold is already resolved (no transition can resolve it again). A delivered verification is never
 * refunded here.
 */

/** Kinds that reconcile reports but never repairs. */
export const reportOnlyKinds: ReadonlySet<ProblemKind> = new Set(['received_refunded', 'active_hold_resolved', 'top_up_credit_mismatch']);

export interface ReconcileOptions {
  days: number;
  execute: boolean;
  userEmail?: string;
  onProgress?: (done: number, total: number) => void;
  /** Repairs run side by side (default: 4 on PostgreSQL, 1 on the single-connection embedded engine). */
  concurrency?: number;
  /** The payment processors: with them, top-ups are compared with the ledger and their processors too. */
  payments?: PaymentDeps;
}

/** A finding with what its repair needs. */
interface Problem extends Omit<Finding, 'repaired'> {
  key: string;
  /** The hold, for orphan holds; the upstream order, for upstream orphans. */
  ref?: string;
  /** The upstream, for upstream orphans. */
  provider?: string;
}

interface CandidateRow {
  id: string;
  email: string;
  state: string;
  price_minor: number;
  max_cost_minor: number;
  provider_order_id: string | null;
  expires_at: Date;
  created_at: Date;
  outcome: string | null;
  charge_minor: number | null;
  active_hold_resolved: boolean;
  past_deadline: boolean;
  pending_stuck: boolean;
  terminal_hold_unresolved: boolean;
  received_released: boolean;
  wrongly_captured: boolean;
  captured_after_deadline: boolean;
  upstream_cancel_owed: boolean;
  orphan_suspected: boolean;
}

const PASSES = 3;

function problem(kind: ProblemKind, id: string | null, email: string | null, amount: number | null, detail: string, ref?: string): Problem {
  return { key: `${kind}:${id ?? ref}`, kind, verification_id: id, user_email: email, amount_minor: amount, detail, ref };
}

/** Every problem in the window, from a few set-based statements (plus the provider's order list). */
async function findProblems(deps: LifecycleDeps, options: ReconcileOptions, warnings: string[]): Promise<Problem[]> {
  const ex: Executor = deps.database.db;
  const now = deps.clock.now();
  const since = new Date(now.getTime() - options.days * 86_400_000);
  const rules = problemRules(now);
  const email = options.userEmail?.trim().toLowerCase();
  const byUser = email ? sql`AND u.email = ${email}` : sql``;

  // One pass: every rule is evaluated once per verification, in SQL, and read back as a flag.
  const candidates = await rows<CandidateRow>(
    ex,
    sql`SELECT v.id, u.email, v.state, v.price_minor, v.max_cost_minor, v.provider_order_id, v.expires_at, v.created_at,
               o.outcome, o.charge_minor,
               ${rules.activeHoldResolved} AS active_hold_resolved,
               ${rules.pastDeadline} AS past_deadline,
               ${rules.pendingStuck} AS pending_stuck,
               ${rules.terminalHoldUnresolved} AS terminal_hold_unresolved,
               ${rules.receivedReleased} AS received_released,
               ${rules.wronglyCaptured} AS wrongly_captured,
               ${rules.capturedAfterDeadline} AS captured_after_deadline,
               ${rules.upstreamCancelOwed} AS upstream_cancel_owed,
               ${rules.orphanSuspected} AS orphan_suspected
        FROM verifications v
        JOIN users u ON u.id = v.user_id
        LEFT JOIN ledger_hold_outcomes o ON o.hold_id = v.hold_id
        WHERE v.created_at >= ${since} ${byUser}
          AND (${rules.activeHoldResolved} OR ${rules.pastDeadline} OR ${rules.pendingStuck} OR ${rules.terminalHoldUnresolved}
               OR ${rules.receivedReleased} OR ${rules.wronglyCaptured} OR ${rules.capturedAfterDeadline} OR ${rules.upstreamCancelOwed} OR ${rules.orphanSuspected})
        ORDER BY v.created_at, v.id`,
  );

  const found: Problem[] = [];
  for (const v of candidates) {
    const price = Number(v.price_minor);
    if (v.active_hold_resolved) {
      found.push(problem('active_hold_resolved', v.id, v.email, price, `${v.state} verification whose hold is already ${v.outcome}; needs investigation`));
    } else if (v.past_deadline) {
      found.push(problem('hold_past_deadline', v.id, v.email, price, `${v.state} past its deadline ${new Date(v.expires_at).toISOString()}; hold unresolved`));
    } else if (v.pending_stuck) {
      found.push(problem('pending_stuck', v.id, v.email, price, `pending since ${new Date(v.created_at).toISOString()}, purchase not in flight`));
    }
    if (v.terminal_hold_unresolved) {
      found.push(problem('terminal_hold_unresolved', v.id, v.email, price, `${v.state} verification whose hold was never resolved`));
    }
    if (v.received_released) {
      found.push(problem('received_refunded', v.id, v.email, price, `delivered, yet its hold was ${v.outcome}; report only, never taken back automatically`));
    }
    if (v.wrongly_captured) {
      found.push(problem('wrongly_captured', v.id, v.email, Number(v.charge_minor ?? price), `${v.state} verification whose hold was captured`));
    }
    if (v.captured_after_deadline) {
      found.push(
        problem('captured_after_deadline', v.id, v.email, Number(v.charge_minor ?? price), `charged for an SMS that arrived after its deadline ${new Date(v.expires_at).toISOString()}`),
      );
    }
    if (v.upstream_cancel_owed) {
      const order = v.provider_order_id ? `order ${v.provider_order_id}` : 'no order id known';
      found.push(problem('upstream_cancel_owed', v.id, v.email, Number(v.max_cost_minor), `upstream cancel owed (${order})`));
    }
    if (v.orphan_suspected) {
      found.push(problem('orphan_suspected', v.id, v.email, Number(v.max_cost_minor), 'purchase outcome unknown when it failed; an upstream order may exist'));
    }
  }

  const holds = await rows<{ id: string; amount_minor: number; email: string | null; verification_id: string | null }>(
    ex,
    sql`SELECT o.hold_id AS id, o.amount_minor, u.email, o.verification_id
        FROM ledger_hold_outcomes o
        JOIN ledger_accounts a ON a.id = o.account_id
        LEFT JOIN users u ON u.id = a.user_id
        WHERE o.held_at >= ${since} ${byUser} AND ${ORPHAN_HOLD}
        ORDER BY o.held_at, o.hold_id`,
  );
  for (const h of holds) {
    found.push(problem('orphan_hold', h.verification_id, h.email, Number(h.amount_minor), `hold ${h.id} belongs to no verification`, h.id));
  }

  if (!email) {
    for (const provider of deps.providers ? deps.providers.all().map((m) => providerFor(deps, m.name)) : [deps.provider]) {
      found.push(...(await findUpstreamOrphans(deps, provider, since, warnings)));
    }
  }
  if (options.payments) found.push(...(await findTopUpProblems(options.payments, since, email)));
  return found;
}

/**
 * Top-ups whose record and money disagree (docs/payments.md): a checkout still pending past
 * TOP_UP_CHECKOUT_TTL_MINUTES (its processor is asked: paid is credited, anything else expired), a
 * ledger credit the top-up does not record (recorded; no money moves), and a credit whose amount or
 * account differs from the top-up's (reported only: an admin decides).
 */
async function findTopUpProblems(payments: PaymentDeps, since: Date, email: string | undefined): Promise<Problem[]> {
  const ex = payments.database.db;
  const overdueBefore = new Date(payments.clock.now().getTime() - payments.config.TOP_UP_CHECKOUT_TTL_MINUTES * 60_000);
  const byUser = email ? sql`AND u.email = ${email}` : sql``;
  const overdue = await rows<{ id: string; email: string; amount_minor: number; processor: string; created_at: Date }>(
    ex,
    sql`SELECT tu.id, u.email, tu.amount_minor, tu.processor, tu.created_at FROM top_ups tu JOIN users u ON u.id = tu.user_id
        WHERE tu.status = 'pending' AND tu.created_at >= ${since} AND tu.created_at < ${overdueBefore} ${byUser}
        ORDER BY tu.created_at, tu.id`,
  );
  const credits = await rows<{ what: string; top_up_id: string | null; problem: 'mismatch' | 'unrecorded'; email: string | null; amount_minor: number | null }>(
    ex,
    sql`SELECT o.what, o.top_up_id, o.problem, u.email, tu.amount_minor
        FROM (${TOP_UP_CREDIT_OFFENDERS}) o LEFT JOIN top_ups tu ON tu.id = o.top_up_id LEFT JOIN users u ON u.id = tu.user_id
        WHERE (tu.id IS NULL OR tu.created_at >= ${since}) ${byUser}`,
  );
  return [
    ...overdue.map((t) =>
      problem('top_up_overdue', null, t.email, Number(t.amount_minor), `top-up ${t.id} pending at ${t.processor} since ${new Date(t.created_at).toISOString()}`, t.id),
    ),
    ...credits.map((c) =>
      problem(
        c.problem === 'unrecorded' && c.top_up_id ? 'top_up_credit_unrecorded' : 'top_up_credit_mismatch',
        null,
        c.email,
        c.amount_minor === null ? null : Number(c.amount_minor),
        c.what,
        c.top_up_id ?? c.what,
      ),
    ),
  ];
}

async function repairTopUp(payments: PaymentDeps, p: Problem): Promise<{ repaired: boolean; note?: string }> {
  if (p.kind === 'top_up_credit_unrecorded') {
    const adopted = await adoptLedgerCredit(payments.database, p.ref!, payments.clock.now());
    return { repaired: adopted, note: adopted ? 'recorded the ledger credit' : 'already recorded' };
  }
  const row = await findTopUp(payments.database.db, p.ref!);
  if (!row || row.status !== 'pending') return { repaired: true, note: `now ${row?.status ?? 'gone'}` };
  const result = await recheckTopUp(payments, row, { expireIfOpen: true });
  const after = await findTopUp(payments.database.db, row.id);
  return { repaired: after?.status !== 'pending', note: `${row.processor} says ${result.state}; now ${after?.status}` };
}

/**
 * Orders the upstream lists as active that no verification holds. An order is only called an
 * orphan once no purchase could still be about to claim it: older than a verification's whole
 * life, or (when the upstream does not say its age) while no purchase of that provider is pending.
 */
async function findUpstreamOrphans(deps: LifecycleDeps, provider: Provider, since: Date, warnings: string[]): Promise<Problem[]> {
  const { config } = deps;
  if (!provider.activeOrders) return [];
  let orders;
  try {
    orders = await provider.activeOrders();
  } catch (error) {
    warnings.push(`could not list ${provider.name}'s active orders: ${scrubSecrets(error instanceof Error ? error.message : String(error))}`);
    return [];
  }
  if (orders.length === 0) return [];
  const now = deps.clock.now();
  const settledBefore = now.getTime() - (config.VERIFICATION_TTL_SECONDS + config.PURCHASE_TIMEOUT_SECONDS + DEADLINE_GRACE_SECONDS) * 1000;
  const ids = [...new Set(orders.map((o) => o.providerOrderId))];
  const known = new Set<string>();
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const found = await rows<{ provider_order_id: string }>(
      deps.database.db,
      sql`SELECT provider_order_id FROM verifications WHERE provider = ${provider.name} AND provider_order_id IN ${chunk}`,
    );
    for (const f of found) known.add(f.provider_order_id);
  }
  const [pending] = await rows<{ n: number }>(
    deps.database.db,
    sql`SELECT count(*)::int AS n FROM verifications WHERE provider = ${provider.name} AND state = 'pending'`,
  );
  const nonePending = Number(pending?.n ?? 0) === 0;
  return orders
    .filter((o) => !known.has(o.providerOrderId))
    .filter((o) => (o.createdAt ? o.createdAt.getTime() >= since.getTime() && o.createdAt.getTime() < settledBefore : nonePending))
    .map((o) => ({
      ...problem('upstream_orphan', null, null, null, `${provider.name} order ${o.providerOrderId} (${o.service ?? 'unknown service'}) belongs to no verification`, o.providerOrderId),
      key: `upstream_orphan:${provider.name}:${o.providerOrderId}`,
      provider: provider.name,
    }));
}

/** Repairs that ask the verification's upstream first. */
const needsUpstream = new Set<ProblemKind>(['hold_past_deadline', 'pending_stuck', 'upstream_cancel_owed', 'orphan_suspected']);

/** Repairs one problem through the settlement code; true when it is put right. */
async function repair(
  deps: LifecycleDeps,
  p: Problem,
  loaded?: VerificationRow,
  payments?: PaymentDeps,
): Promise<{ repaired: boolean; note?: string }> {
  const actor = 'reconciler' as const;
  if (reportOnlyKinds.has(p.kind)) return { repaired: false };
  if (p.kind === 'top_up_overdue' || p.kind === 'top_up_credit_unrecorded') return payments ? repairTopUp(payments, p) : { repaired: false };
  if (p.kind === 'orphan_hold') return { repaired: await releaseOrphanHold(deps, p.ref!, actor) };
  if (p.kind === 'upstream_orphan') {
    const outcome = await cancelForeignOrder(deps, p.provider ?? deps.provider.name, p.ref!, actor);
    return { repaired: outcome !== 'too_early', note: `upstream answered ${outcome}` };
  }
  let row = loaded ?? (await loadVerification(deps.database.db, p.verification_id!));
  if (!row) return { repaired: false, note: 'verification vanished' };
  if (deps.providers && !deps.providers.member(row.provider) && needsUpstream.has(p.kind)) {
    // Never settled as if its upstream had answered: it waits for the provider to be configured again.
    return { repaired: false, note: `provider ${row.provider} is configured nowhere; left as it is` };
  }
  switch (p.kind) {
    case 'hold_past_deadline':
    case 'pending_stuck': {
      if (row.state === 'pending') row = (await recoverPurchase(deps, row, actor)) ?? row;
      // A purchase found upstream after its deadline becomes waiting: expire it at once.
      if (row.state === 'waiting' && row.expiresAt <= deps.clock.now()) row = (await expireVerification(deps, row, actor)) ?? row;
      const repaired = p.kind === 'pending_stuck' ? row.state !== 'pending' : row.state !== 'pending' && row.state !== 'waiting';
      return { repaired, note: `now ${row.state}` };
    }
    case 'terminal_hold_unresolved': {
      const outcome = await resolveTerminalHold(deps, row.id, actor);
      return { repaired: outcome !== undefined, note: outcome ? `hold ${outcome}` : 'already resolved' };
    }
    case 'wrongly_captured': {
      const refunded = await refundWrongCapture(deps, row.id, actor);
      return { repaired: refunded !== undefined, note: refunded !== undefined ? `refunded ${refunded} by correction transfer` : 'already corrected' };
    }
    case 'captured_after_deadline': {
      const refunded = await refundLateCapture(deps, row.id, actor);
      return { repaired: refunded !== undefined, note: refunded !== undefined ? `refunded ${refunded} by correction transfer` : 'already corrected' };
    }
    case 'upstream_cancel_owed': {
      const status = await settleUpstream(deps, row, actor);
      return { repaired: status !== 'cancel_owed', note: `upstream ${status}` };
    }
    case 'orphan_suspected': {
      const status = await settleSuspectedOrphan(deps, row, actor);
      return { repaired: status !== 'orphan_suspected', note: `upstream ${status}` };
    }
    default:
      return { repaired: false };
  }
}

/** The verifications a pass will repair, loaded with a few set-based reads instead of one read each. */
async function loadRows(deps: LifecycleDeps, problems: Problem[]): Promise<Map<string, VerificationRow>> {
  const ids = [...new Set(problems.filter((p) => p.verification_id && p.kind !== 'orphan_hold').map((p) => p.verification_id!))];
  const out = new Map<string, VerificationRow>();
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const found = await deps.database.db.select().from(verifications).where(inArray(verifications.id, chunk));
    for (const row of found) out.set(row.id, row);
  }
  return out;
}

function summarize(found: Finding[]): Partial<Record<ProblemKind, number>> {
  const summary: Partial<Record<ProblemKind, number>> = {};
  for (const f of found) summary[f.kind] = (summary[f.kind] ?? 0) + 1;
  return summary;
}

export async function reconcile(deps: LifecycleDeps, options: ReconcileOptions): Promise<ReconcileReport> {
  if (!Number.isInteger(options.days) || options.days < 1) throw new RangeError('days must be a positive whole number');
  const warnings: string[] = [];
  const found: Finding[] = [];
  const seen = new Set<string>();
  let remaining = 0;

  // Later passes pick up what a repair revealed (a recovery that gave up leaves a suspected
  // orphan to settle); a problem already attempted is not attempted again in the same run.
  for (let pass = 0; pass < (options.execute ? PASSES + 1 : 1); pass++) {
    const problems = await findProblems(deps, options, warnings);
    remaining = problems.length;
    const fresh = problems.filter((p) => !seen.has(p.key));
    if (fresh.length === 0 || pass === PASSES) break;
    for (const p of fresh) seen.add(p.key);
    const offset = found.length;
    const total = offset + fresh.length;
    let done = offset;
    options.onProgress?.(done, total);
    const rowsById = options.execute ? await loadRows(deps, fresh) : new Map<string, VerificationRow>();
    const results: Finding[] = new Array(fresh.length);
    let next = 0;
    const worker = async () => {
      while (next < fresh.length) {
        const index = next++;
        const p = fresh[index]!;
        const { key: _key, ref: _ref, ...finding } = p;
        let repaired = false;
        let note: string | undefined;
        if (options.execute) {
          try {
            ({ repaired, note } = await repair(deps, p, p.verification_id ? rowsById.get(p.verification_id) : undefined, options.payments));
          } catch (error) {
            note = `repair failed: ${scrubSecrets(error instanceof Error ? error.message : String(error))}`;
            deps.logger.warn({ kind: p.kind, verification: p.verification_id, err: error }, 'reconcile repair failed');
          }
        }
        results[index] = { ...finding, detail: note ? `${finding.detail}; ${note}` : finding.detail, repaired };
        options.onProgress?.(++done, total);
      }
    };
    const concurrency = options.execute ? Math.max(1, options.concurrency ?? (deps.database.engine === 'postgres' ? 4 : 1)) : 1;
    await Promise.all(Array.from({ length: Math.min(concurrency, fresh.length) }, worker));
    found.push(...results);
    if (!options.execute) break;
  }

  return {
    window_days: options.days,
    execute: options.execute,
    user_email: options.userEmail?.trim().toLowerCase() ?? null,
    generated_at: deps.clock.now().toISOString(),
    found,
    summary: summarize(found),
    remaining,
    repaired: found.filter((f) => f.repaired).length,
    warnings: [...new Set(warnings)],
  };
}

/** Records an executed run in the audit log (each repair is also audited on its own). */
export async function recordReconcileRun(
  ex: Executor,
  report: ReconcileReport,
  by: { actorId: string | null; actor: 'admin' | 'cli' },
  now: Date,
): Promise<void> {
  if (!report.execute) return;
  await recordAudit(ex, {
    actorId: by.actorId,
    actor: by.actor,
    action: 'reconcile.execute',
    subjectId: null,
    detail: {
      window_days: report.window_days,
      user_email: report.user_email,
      found: report.found.length,
      repaired: report.repaired,
      remaining: report.remaining,
      summary: report.summary,
    },
    now,
  });
}
