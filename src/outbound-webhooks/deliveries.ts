import { and, asc, desc, eq, inArray, isNull, lte, or, sql } from 'drizzle-orm';
import type { Executor, Tx } from '../db/database.ts';
import { rows } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { findEndpoint } from './endpoints.ts';
import { MAX_ATTEMPTS, retryDelayMs } from './schedule.ts';
import {
  outboundWebhookAttempts,
  outboundWebhookDeliveries,
  outboundWebhookEvents,
  webhookEndpoints,
  type OutboundAttemptRow,
  type OutboundDeliveryRow,
  type WebhookEndpointRow,
} from './schema.ts';

/**
 * The deliveries are the engine's second work queue, run like the verification rows: a worker
 * claims due deliveries with FOR UPDATE SKIP LOCKED and a lease, makes the attempt outside any
 * transaction, then records it with a compare-and-set on its lease and the attempt count, so each
 * scheduled attempt is made and recorded once however many workers share the database.
 */

export interface ClaimedDelivery {
  endpointId: string;
  eventId: string;
  /** Attempts made in this schedule before this one. */
  attempts: number;
  url: string;
  secret: string;
  previousSecret: string | null;
  previousSecretUntil: Date | null;
  body: string;
}

export async function claimDueDeliveries(
  ex: Executor,
  options: { workerId: string; now: Date; leaseMs: number; limit: number },
): Promise<ClaimedDelivery[]> {
  const leaseUntil = new Date(options.now.getTime() + options.leaseMs);
  const claimed = await rows<{ endpoint_id: string; event_id: string; attempts: number }>(
    ex,
    sql`UPDATE outbound_webhook_deliveries SET lease_owner = ${options.workerId}, lease_until = ${leaseUntil}
        WHERE (endpoint_id, event_id) IN (
          SELECT d.endpoint_id, d.event_id FROM outbound_webhook_deliveries d
          JOIN webhook_endpoints e ON e.id = d.endpoint_id
          WHERE d.status = 'pending' AND d.next_attempt_at <= ${options.now} AND e.enabled
            AND (d.lease_until IS NULL OR d.lease_until <= ${options.now})
          ORDER BY d.next_attempt_at
          LIMIT ${options.limit}
          FOR UPDATE OF d SKIP LOCKED)
        RETURNING endpoint_id, event_id, attempts`,
  );
  if (claimed.length === 0) return [];
  const endpoints = await ex
    .select()
    .from(webhookEndpoints)
    .where(inArray(webhookEndpoints.id, [...new Set(claimed.map((c) => c.endpoint_id))]));
  const events = await ex
    .select({ id: outboundWebhookEvents.id, body: outboundWebhookEvents.body })
    .from(outboundWebhookEvents)
    .where(inArray(outboundWebhookEvents.id, [...new Set(claimed.map((c) => c.event_id))]));
  return claimed.flatMap((c) => {
    const endpoint = endpoints.find((e) => e.id === c.endpoint_id);
    const event = events.find((e) => e.id === c.event_id);
    if (!endpoint || !event) return [];
    return [
      {
        endpointId: c.endpoint_id,
        eventId: c.event_id,
        attempts: Number(c.attempts),
        url: endpoint.url,
        secret: endpoint.secret,
        previousSecret: endpoint.previousSecret,
        previousSecretUntil: endpoint.previousSecretUntil,
        body: event.body,
      },
    ];
  });
}

export interface AttemptRecord {
  workerId: string;
  now: Date;
  succeeded: boolean;
  status: number | null;
  latencyMs: number;
  excerpt: string | null;
  error: string | null;
  /** In [0, 1): the jitter of the next wait. */
  random: number;
  /** An endpoint failing for this long without one success is disabled. */
  disableAfterMs: number;
}

export type AttemptResult =
  | { recorded: false }
  | { recorded: true; status: OutboundDeliveryRow['status']; nextAttemptAt: Date | null; disabled?: WebhookEndpointRow };

/**
 * Records an attempt the caller made on a delivery it claimed: the attempt row, the delivery's
 * next step (done, retried later, or given up when the schedule is used up), and the endpoint's
 * failure streak. An endpoint failing without a success for `disableAfterMs` is disabled; the
 * disabled endpoint is returned so the caller tells its owner in the same transaction. Nothing is
 * recorded if the claim was lost meanwhile (its lease lapsed and another worker took it).
 */
export async function recordAttempt(tx: Tx, delivery: ClaimedDelivery, attempt: AttemptRecord): Promise<AttemptResult> {
  const made = delivery.attempts + 1;
  const delay = attempt.succeeded ? undefined : retryDelayMs(made, attempt.random);
  const status = attempt.succeeded ? 'succeeded' : delay === undefined || made >= MAX_ATTEMPTS ? 'failed' : 'pending';
  const nextAttemptAt = status === 'pending' ? new Date(attempt.now.getTime() + delay!) : null;
  const [updated] = await tx
    .update(outboundWebhookDeliveries)
    .set({ status, attempts: made, nextAttemptAt, leaseOwner: null, leaseUntil: null, updatedAt: attempt.now })
    .where(
      and(
        eq(outboundWebhookDeliveries.endpointId, delivery.endpointId),
        eq(outboundWebhookDeliveries.eventId, delivery.eventId),
        eq(outboundWebhookDeliveries.leaseOwner, attempt.workerId),
        eq(outboundWebhookDeliveries.attempts, delivery.attempts),
        eq(outboundWebhookDeliveries.status, 'pending'),
      ),
    )
    .returning({ endpointId: outboundWebhookDeliveries.endpointId });
  // The attempt is kept even when the claim was lost (a lease that lapsed under a stalled worker):
  // the receiver saw it. It then changes nothing else; the worker holding the claim decides.
  await tx.execute(sql`
    INSERT INTO outbound_webhook_attempts
      (endpoint_id, event_id, worker, attempted_at, latency_ms, succeeded, response_status, response_excerpt, error)
    SELECT ${delivery.endpointId}, ${delivery.eventId}, ${attempt.workerId}, ${attempt.now}, ${attempt.latencyMs},
           ${attempt.succeeded}, ${attempt.status}, ${attempt.excerpt}, ${attempt.error}
    WHERE EXISTS (SELECT 1 FROM outbound_webhook_deliveries WHERE endpoint_id = ${delivery.endpointId} AND event_id = ${delivery.eventId})`);
  if (!updated) return { recorded: false };
  if (attempt.succeeded) {
    await tx.update(webhookEndpoints).set({ failingSince: null }).where(eq(webhookEndpoints.id, delivery.endpointId));
    return { recorded: true, status, nextAttemptAt };
  }
  const [endpoint] = await tx
    .update(webhookEndpoints)
    .set({ failingSince: sql`coalesce(${webhookEndpoints.failingSince}, ${attempt.now})` })
    .where(eq(webhookEndpoints.id, delivery.endpointId))
    .returning();
  const failingFor = endpoint?.failingSince ? attempt.now.getTime() - endpoint.failingSince.getTime() : 0;
  if (endpoint?.enabled && failingFor >= attempt.disableAfterMs) {
    const hours = Math.round(failingFor / 3_600_000);
    const [disabled] = await tx
      .update(webhookEndpoints)
      .set({ enabled: false, disabledReason: `every attempt failed for ${hours} h (last: ${attempt.error ?? `HTTP ${attempt.status}`})`, updatedAt: attempt.now })
      .where(and(eq(webhookEndpoints.id, delivery.endpointId), eq(webhookEndpoints.enabled, true)))
      .returning();
    if (disabled) return { recorded: true, status, nextAttemptAt, disabled };
  }
  return { recorded: true, status, nextAttemptAt };
}

/** Gives a claimed delivery back untouched (the worker could not make the attempt). */
export async function releaseDelivery(ex: Executor, delivery: ClaimedDelivery, workerId: string): Promise<void> {
  await ex
    .update(outboundWebhookDeliveries)
    .set({ leaseOwner: null, leaseUntil: null })
    .where(
      and(
        eq(outboundWebhookDeliveries.endpointId, delivery.endpointId),
        eq(outboundWebhookDeliveries.eventId, delivery.eventId),
        eq(outboundWebhookDeliveries.leaseOwner, workerId),
      ),
    );
}

export interface DeliveryWithAttempts {
  delivery: OutboundDeliveryRow;
  type: string;
  eventCreatedAt: Date;
  attempts: OutboundAttemptRow[];
}

/** An endpoint's deliveries, newest first, each with every attempt made. */
export async function listDeliveries(ex: Executor, userId: string, endpointId: string, limit: number): Promise<DeliveryWithAttempts[]> {
  await findEndpoint(ex, userId, endpointId);
  const found = await ex
    .select({ delivery: outboundWebhookDeliveries, type: outboundWebhookEvents.type, eventCreatedAt: outboundWebhookEvents.createdAt })
    .from(outboundWebhookDeliveries)
    .innerJoin(outboundWebhookEvents, eq(outboundWebhookEvents.id, outboundWebhookDeliveries.eventId))
    .where(eq(outboundWebhookDeliveries.endpointId, endpointId))
    .orderBy(desc(outboundWebhookDeliveries.createdAt), desc(outboundWebhookDeliveries.eventId))
    .limit(limit);
  if (found.length === 0) return [];
  const attempts = await ex
    .select()
    .from(outboundWebhookAttempts)
    .where(
      and(
        eq(outboundWebhookAttempts.endpointId, endpointId),
        inArray(
          outboundWebhookAttempts.eventId,
          found.map((f) => f.delivery.eventId),
        ),
      ),
    )
    .orderBy(asc(outboundWebhookAttempts.id));
  return found.map((f) => ({ ...f, attempts: attempts.filter((a) => a.eventId === f.delivery.eventId) }));
}

/**
 * Sends an event to an endpoint again, on request: the delivery starts a new schedule, due now.
 * Refused while an attempt is in flight, and for a disabled endpoint (enable it first).
 */
export async function resendDelivery(ex: Executor, userId: string, endpointId: string, eventId: string, now: Date): Promise<OutboundDeliveryRow> {
  const endpoint = await findEndpoint(ex, userId, endpointId);
  if (!endpoint.enabled) throw new DomainError('conflict', 'the endpoint is disabled; enable it before sending again');
  const [row] = await ex
    .update(outboundWebhookDeliveries)
    .set({ status: 'pending', attempts: 0, nextAttemptAt: now, leaseOwner: null, leaseUntil: null, updatedAt: now })
    .where(
      and(
        eq(outboundWebhookDeliveries.endpointId, endpointId),
        eq(outboundWebhookDeliveries.eventId, eventId),
        or(isNull(outboundWebhookDeliveries.leaseUntil), lte(outboundWebhookDeliveries.leaseUntil, now)),
      ),
    )
    .returning();
  if (row) return row;
  const [exists] = await ex
    .select({ id: outboundWebhookDeliveries.eventId })
    .from(outboundWebhookDeliveries)
    .where(and(eq(outboundWebhookDeliveries.endpointId, endpointId), eq(outboundWebhookDeliveries.eventId, eventId)));
  if (!exists) throw new DomainError('not_found', 'no such event for this endpoint');
  throw new DomainError('conflict', 'an attempt is in flight; try again when it is recorded');
}
