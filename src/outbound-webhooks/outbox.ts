import { randomBytes } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { outboundWebhookDeliveries, outboundWebhookEvents, webhookEndpoints, type OutboundEventType } from './schema.ts';

/**
 * The outbox. An event is written by the transaction that makes the change it reports (a
 * verification's transition, a wallet credit), so it exists if and only if that change commits,
 * exactly once per change (one event per type and subject, by constraint). Delivery happens later,
 * in the engine: nothing here waits for a receiver, and a receiver can never undo the change.
 */
export interface OutboundEvent {
  userId: string;
  type: OutboundEventType;
  /** What the event is about: a verification id, a transfer id. */
  subjectId: string;
  now: Date;
  /** The object as the API returns it; built only when an endpoint is subscribed. */
  data: () => Promise<unknown> | unknown;
}

export function newEventId(): string {
  return `evt_${randomBytes(16).toString('hex')}`;
}

/**
 * Records an event and one pending delivery per enabled endpoint of the customer subscribed to its
 * type. Without such an endpoint nothing is written. Returns the event id, if one was written.
 */
export async function recordOutboundEvent(ex: Executor, event: OutboundEvent): Promise<string | undefined> {
  const endpoints = await ex
    .select({ id: webhookEndpoints.id })
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.userId, event.userId), eq(webhookEndpoints.enabled, true), sql`${event.type} = ANY(${webhookEndpoints.events})`));
  if (endpoints.length === 0) return undefined;
  const id = newEventId();
  const body = JSON.stringify({ id, type: event.type, created_at: event.now.toISOString(), data: await event.data() });
  const [inserted] = await ex
    .insert(outboundWebhookEvents)
    .values({ id, userId: event.userId, type: event.type, subjectId: event.subjectId, body, createdAt: event.now })
    .onConflictDoNothing()
    .returning({ id: outboundWebhookEvents.id });
  if (!inserted) return undefined;
  await ex.insert(outboundWebhookDeliveries).values(
    endpoints.map((e) => ({ endpointId: e.id, eventId: id, status: 'pending' as const, nextAttemptAt: event.now, createdAt: event.now, updatedAt: event.now })),
  );
  return id;
}
