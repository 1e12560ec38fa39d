import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Config } from '../config.ts';
import type { Executor } from '../db/database.ts';
import { rows } from '../db/database.ts';
import { verifications } from '../verifications/schema.ts';
import type { VerificationRow } from '../verifications/lifecycle.ts';
import { engineWorkers } from './schema.ts';

/**
 * The verification rows are the work queue (docs/architecture.md, "The background engine"). A worker claims due rows with
 * FOR UPDATE SKIP LOCKED and a lease; while the lease runs no other worker takes them, and when a
 * worker dies its rows come back as soon as the lease lapses. Handlers are idempotent, so a row
 * processed twice after a crash is harmless.
 */
export type DueKind = 'expire' | 'poll' | 'settle';

/** How long a worker may be silent before it counts as dead. */
export function deadAfterMs(config: Pick<Config, 'ENGINE_DEAD_AFTER_SECONDS'>): number {
  return config.ENGINE_DEAD_AFTER_SECONDS * 1000;
}

/**
 * A row another worker may take: not leased, its lease lapsed, or leased by a worker whose heartbeat
 * stopped `deadAfterMs` ago (or that never registered one): a killed engine costs seconds, not a
 * whole lease. Over `verifications` unqualified, for the claim and the lag.
 */
function takeable(now: Date, deadAfterMs: number): SQL {
  const silentSince = new Date(now.getTime() - deadAfterMs);
  return sql`(lease_until IS NULL OR lease_until <= ${now}
    OR NOT EXISTS (SELECT 1 FROM engine_workers w WHERE w.id = verifications.lease_owner AND w.last_tick_at > ${silentSince}))`;
}

export async function claimDue(
  ex: Executor,
  options: { workerId: string; now: Date; leaseMs: number; deadAfterMs: number; limit: number; kind: DueKind },
): Promise<VerificationRow[]> {
  const leaseUntil = new Date(options.now.getTime() + options.leaseMs);
  const due = {
    // Waiting rows past their deadline: the deadline batch (the poll schedule never passes a deadline).
    expire: sql`state = 'waiting' AND next_check_at <= ${options.now} AND expires_at <= ${options.now}`,
    poll: sql`state IN ('pending', 'waiting', 'expired') AND next_check_at <= ${options.now}
            AND (state <> 'pending' OR purchase_until IS NULL OR purchase_until <= ${options.now})`,
    settle: sql`upstream_status IN ('cancel_owed', 'finish_owed', 'reported') AND upstream_next_at <= ${options.now}`,
  }[options.kind];
  const order = options.kind === 'settle' ? sql`upstream_next_at` : sql`next_check_at`;
  // One statement: the claimed rows come back whole (RETURNING), not read again by id.
  return ex
    .update(verifications)
    .set({ leaseOwner: options.workerId, leaseUntil })
    .where(
      sql`${verifications.id} IN (
        SELECT id FROM verifications
        WHERE ${due} AND ${takeable(options.now, options.deadAfterMs)}
        ORDER BY ${order}
        LIMIT ${options.limit}
        FOR UPDATE SKIP LOCKED)`,
    )
    .returning();
}

/** Gives a row back with the time it is next due (null: nothing more to do). */
export async function releaseLease(
  ex: Executor,
  id: string,
  workerId: string,
  next: { nextCheckAt?: Date | null; checkFailures?: number },
): Promise<void> {
  const state = sql`${verifications.state}`;
  await ex
    .update(verifications)
    .set({
      leaseOwner: null,
      leaseUntil: null,
      // A row that became terminal meanwhile has nothing left to check.
      nextCheckAt: next.nextCheckAt === undefined ? undefined : sql`CASE WHEN ${state} IN ('pending', 'waiting', 'expired') THEN ${next.nextCheckAt}::timestamptz ELSE NULL END`,
      checkFailures: next.checkFailures,
    })
    .where(and(eq(verifications.id, id), eq(verifications.leaseOwner, workerId)));
}

/**
 * releaseLease for a polled batch in one statement: each row back with its own next check and its
 * failures reset (a row that became terminal meanwhile gets no next check).
 */
export async function releasePolled(ex: Executor, polled: readonly { id: string; nextCheckAt: Date }[], workerId: string): Promise<void> {
  if (polled.length === 0) return;
  // One JSON parameter (not arrays) so both drivers, pg and PGlite, pass it alike.
  const next = JSON.stringify(polled.map((p) => ({ id: p.id, at: p.nextCheckAt.toISOString() })));
  await ex.execute(sql`
    UPDATE verifications v
       SET lease_owner = NULL, lease_until = NULL, check_failures = 0,
           next_check_at = CASE WHEN v.state IN ('pending', 'waiting', 'expired') THEN n.at ELSE NULL END
      FROM json_to_recordset(${next}::json) AS n(id uuid, at timestamptz)
     WHERE v.id = n.id AND v.lease_owner = ${workerId}`);
}

/** Gives an owed-settlement row back, due again at `at` (its attempts untouched). */
export async function postponeSettlement(ex: Executor, id: string, workerId: string, at: Date): Promise<void> {
  await ex
    .update(verifications)
    .set({ leaseOwner: null, leaseUntil: null, upstreamNextAt: at })
    .where(and(eq(verifications.id, id), eq(verifications.leaseOwner, workerId)));
}

/** Gives rows back as they are (their next_check_at kept): a batch's rows another actor settled first. */
export async function releaseLeases(ex: Executor, ids: readonly string[], workerId: string): Promise<void> {
  if (ids.length === 0) return;
  await ex
    .update(verifications)
    .set({ leaseOwner: null, leaseUntil: null })
    .where(and(inArray(verifications.id, [...ids]), eq(verifications.leaseOwner, workerId)));
}

export async function heartbeat(ex: Executor, workerId: string, now: Date): Promise<void> {
  await ex
    .insert(engineWorkers)
    .values({ id: workerId, startedAt: now, lastTickAt: now })
    .onConflictDoUpdate({ target: engineWorkers.id, set: { lastTickAt: now } });
}

/**
 * On a clean stop, after the last tick: every row this worker still leases goes back at once, so
 * another worker takes it now instead of when the lease lapses (a tick that failed half-way may
 * have left some). Its next_check_at is kept: the row stays as due as it was.
 */
export async function releaseAllLeases(ex: Executor, workerId: string): Promise<number> {
  const released = await rows<{ id: string }>(
    ex,
    sql`UPDATE verifications SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ${workerId} RETURNING id`,
  );
  return released.length;
}

export async function forgetWorker(ex: Executor, workerId: string): Promise<void> {
  await ex.delete(engineWorkers).where(eq(engineWorkers.id, workerId));
}

/**
 * The embedded engine holds its data directory exclusively, so at start no other worker can be
 * alive: the leases and worker rows a killed predecessor left are cleared, and its rows are due at
 * once instead of after their leases. Never for PostgreSQL, where other workers may be running.
 */
export async function clearLeftoverLeases(ex: Executor): Promise<number> {
  const cleared = await ex
    .update(verifications)
    .set({ leaseOwner: null, leaseUntil: null })
    .where(sql`${verifications.leaseOwner} IS NOT NULL`)
    .returning({ id: verifications.id });
  await ex.delete(engineWorkers);
  return cleared.length;
}

/** How far behind the engine is: the age of the oldest row that is due and that a worker may take. */
export async function engineLagSeconds(ex: Executor, now: Date, deadAfterMs: number): Promise<number> {
  const [row] = await rows<{ oldest: Date | null }>(
    ex,
    sql`SELECT min(next_check_at) AS oldest FROM verifications
        WHERE state IN ('pending', 'waiting') AND next_check_at <= ${now}
          AND ${takeable(now, deadAfterMs)}
          AND (state = 'waiting' OR purchase_until IS NULL OR purchase_until <= ${now})`,
  );
  if (!row?.oldest) return 0;
  return Math.max(0, (now.getTime() - new Date(row.oldest).getTime()) / 1000);
}
