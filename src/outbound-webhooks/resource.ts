import { z } from 'zod';
import { Timestamp } from '../clock.ts';
import type { DeliveryWithAttempts } from './deliveries.ts';
import { outboundEventTypes, type WebhookEndpointRow } from './schema.ts';

/** The outbound-webhook resources as the API shows them: schema (validation, OpenAPI) and the one mapping to each. */

export const WebhookEndpointSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    events: z.array(z.enum(outboundEventTypes)),
    description: z.string().nullable(),
    enabled: z.boolean(),
    disabled_reason: z.string().nullable().describe('why the engine disabled the endpoint (it keeps failing)'),
    previous_secret_expires_at: Timestamp.nullable().describe('until then the previous secret signs too (after a rotation)'),
    failing_since: Timestamp.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'WebhookEndpoint' });
export type WebhookEndpointView = z.output<typeof WebhookEndpointSchema>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function endpointResource(row: WebhookEndpointRow, now: Date): WebhookEndpointView {
  const overlap = row.previousSecretUntil && now < row.previousSecretUntil ? row.previousSecretUntil : null;
  return {
    id: row.id,
    url: row.url,
    events: row.events as WebhookEndpointView['events'],
    description: row.description,
    enabled: row.enabled,
    disabled_reason: row.disabledReason,
    previous_secret_expires_at: iso(overlap),
    failing_since: iso(row.failingSince),
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

export const WebhookAttemptSchema = z
  .object({
    attempted_at: Timestamp,
    succeeded: z.boolean(),
    response_status: z.number().int().nullable(),
    latency_ms: z.number().int(),
    response_excerpt: z.string().nullable().describe('the first bytes of the answer'),
    error: z.string().nullable().describe('why there was no answer: refused address, connection refused, timeout'),
  })
  .meta({ id: 'WebhookAttempt' });

export const WebhookDeliverySchema = z
  .object({
    event_id: z.string(),
    event_type: z.string(),
    event_created_at: Timestamp,
    status: z.enum(['pending', 'succeeded', 'failed']),
    next_attempt_at: Timestamp.nullable(),
    attempts: z.array(WebhookAttemptSchema),
  })
  .meta({ id: 'WebhookDelivery' });

export function deliveryResource(d: DeliveryWithAttempts): z.output<typeof WebhookDeliverySchema> {
  return {
    event_id: d.delivery.eventId,
    event_type: d.type,
    event_created_at: d.eventCreatedAt.toISOString(),
    status: d.delivery.status,
    next_attempt_at: iso(d.delivery.nextAttemptAt),
    attempts: d.attempts.map((a) => ({
      attempted_at: a.attemptedAt.toISOString(),
      succeeded: a.succeeded,
      response_status: a.responseStatus,
      latency_ms: a.latencyMs,
      response_excerpt: a.responseExcerpt,
      error: a.error,
    })),
  };
}
