import { and, eq } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { webhookDeliveries } from './schema.ts';

/**
 * Replay protection for signed upstream webhooks: the event ids already acted on. The only writer
 * of webhook_deliveries.
 */
export async function wasDelivered(ex: Executor, provider: string, eventId: string): Promise<boolean> {
  const [seen] = await ex
    .select({ eventId: webhookDeliveries.eventId })
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.provider, provider), eq(webhookDeliveries.eventId, eventId)));
  return seen !== undefined;
}

export async function recordDelivery(ex: Executor, provider: string, eventId: string, now: Date): Promise<void> {
  await ex.insert(webhookDeliveries).values({ provider, eventId, receivedAt: now }).onConflictDoNothing();
}
