import { randomBytes } from 'node:crypto';
import { and, eq, inArray } from 'drizzle-orm';
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
  const [id] = await recordOutboundEvents(ex, [event]);
  return id;
}

/**
 * recordOutboundEvent for many changes in one transaction (a batch of transitions): the same rows,
 * with one query for the endpoints of every customer concerned and one insert per table. Returns
 * the ids written, in the order of `events` (undefined where nothing was written).
 */
export async function recordOutboundEvents(ex: Executor, events: readonly OutboundEvent[]): Promise<(string | undefined)[]> {
  if (events.length === 0) return [];
  const users = [...new Set(events.map((e) => e.userId))];
  const endpoints = await ex
    .select({ id: webhookEndpoints.id, userId: webhookEndpoints.userId, events: webhookEndpoints.events })
    .from(webhookEndpoints)
    .where(and(inArray(webhookEndpoints.userId, users), eq(webhookEndpoints.enabled, true)));
  const written: (string | undefined)[] = events.map(() => undefined);
  const rows: (typeof outboundWebhookEvents.$inferInsert & { endpoints: string[]; index: number })[] = [];
  for (const [index, event] of events.entries()) {
    const subscribed = endpoints.filter((e) => e.userId === event.userId && e.events.includes(event.type)).map((e) => e.id);
    if (subscribed.length === 0) continue;
    const id = newEventId();
    const body = JSON.stringify({ id, type: event.type, created_at: event.now.toISOString(), data: await event.data() });
    rows.push({ id, userId: event.userId, type: event.type, subjectId: event.subjectId, body, createdAt: event.now, endpoints: subscribed, index });
  }
  if (rows.length === 0) return written;
  const inserted = await ex
    .insert(outboundWebhookEvents)
    .values(rows.map(({ endpoints: _endpoints, index: _index, ...row }) => row))
    .onConflictDoNothing()
    .returning({ id: outboundWebhookEvents.id });
  const kept = new Set(inserted.map((r) => r.id));
  const deliveries = rows
    .filter((r) => kept.has(r.id!))
    .flatMap((r) =>
      r.endpoints.map((endpointId) => ({ endpointId, eventId: r.id!, status: 'pending' as const, nextAttemptAt: r.createdAt!, createdAt: r.createdAt!, updatedAt: r.createdAt! })),
    );
  if (deliveries.length > 0) await ex.insert(outboundWebhookDeliveries).values(deliveries);
  for (const r of rows) if (kept.has(r.id!)) written[r.index] = r.id!;
  return written;
}
