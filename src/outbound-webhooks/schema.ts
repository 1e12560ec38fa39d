import { bigserial, boolean, integer, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { timestamptz as at } from '../db/columns.ts';

/**
 * Customers' outbound webhooks: only src/outbound-webhooks writes these tables (the engine delivers
 * through its functions). Keys, checks and foreign keys live in migrations/0011_outbound_webhooks.sql.
 */

/** What a customer can subscribe to. */
export const outboundEventTypes = [
  'verification.waiting',
  'verification.received',
  'verification.cancelled',
  'verification.expired',
  'verification.failed',
  'wallet.credited',
  'wallet.low_balance',
  'top_up.credited',
  'top_up.failed',
  'top_up.expired',
] as const;
export type OutboundEventType = (typeof outboundEventTypes)[number];

const deliveryStatuses = ['pending', 'succeeded', 'failed'] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull(),
  url: text('url').notNull(),
  description: text('description'),
  events: text('events').array().notNull(),
  enabled: boolean('enabled').notNull().default(true),
  disabledReason: text('disabled_reason'),
  secret: text('secret').notNull(),
  previousSecret: text('previous_secret'),
  previousSecretUntil: at('previous_secret_until'),
  failingSince: at('failing_since'),
  createdAt: at('created_at').notNull(),
  updatedAt: at('updated_at').notNull(),
});

export const outboundWebhookEvents = pgTable('outbound_webhook_events', {
  id: text('id').primaryKey(),
  userId: uuid('user_id').notNull(),
  type: text('type').notNull(),
  subjectId: text('subject_id').notNull(),
  body: text('body').notNull(),
  createdAt: at('created_at').notNull(),
});

export const outboundWebhookDeliveries = pgTable('outbound_webhook_deliveries', {
  endpointId: uuid('endpoint_id').notNull(),
  eventId: text('event_id').notNull(),
  status: text('status', { enum: deliveryStatuses }).notNull().default('pending'),
  attempts: integer('attempts').notNull().default(0),
  nextAttemptAt: at('next_attempt_at'),
  leaseOwner: text('lease_owner'),
  leaseUntil: at('lease_until'),
  createdAt: at('created_at').notNull(),
  updatedAt: at('updated_at').notNull(),
});

export const outboundWebhookAttempts = pgTable('outbound_webhook_attempts', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  endpointId: uuid('endpoint_id').notNull(),
  eventId: text('event_id').notNull(),
  worker: text('worker').notNull(),
  attemptedAt: at('attempted_at').notNull(),
  latencyMs: integer('latency_ms').notNull(),
  succeeded: boolean('succeeded').notNull(),
  responseStatus: integer('response_status'),
  responseExcerpt: text('response_excerpt'),
  error: text('error'),
});

export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect;
export type OutboundDeliveryRow = typeof outboundWebhookDeliveries.$inferSelect;
export type OutboundAttemptRow = typeof outboundWebhookAttempts.$inferSelect;
