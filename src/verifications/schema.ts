import { bigint, bigserial, boolean, integer, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { users } from '../accounts/schema.ts';
import { ledgerHolds } from '../ledger/schema.ts';

const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const minor = (name: string) => bigint(name, { mode: 'number' });

export const verificationStates = ['pending', 'waiting', 'received', 'cancelled', 'expired', 'failed'] as const;
export type VerificationState = (typeof verificationStates)[number];

export const actors = ['customer', 'poller', 'sweeper', 'webhook', 'admin', 'reconciler', 'recovery'] as const;
export type Actor = (typeof actors)[number];

export const upstreamStatuses = ['none', 'open', 'completed', 'cancelled', 'cancel_owed', 'reported', 'absent', 'orphan_suspected'] as const;
export type UpstreamStatus = (typeof upstreamStatuses)[number];

export const services = pgTable(
  'services',
  {
    provider: text('provider').notNull(),
    service: text('service').notNull(),
    country: text('country').notNull(),
    name: text('name').notNull(),
    priceMinor: minor('price_minor').notNull(),
    costMinor: minor('cost_minor').notNull(),
    enabled: boolean('enabled').notNull().default(true),
  },
  (t) => [primaryKey({ columns: [t.provider, t.service, t.country] })],
);

export const verifications = pgTable('verifications', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull().references(() => users.id),
  provider: text('provider').notNull(),
  service: text('service').notNull(),
  country: text('country').notNull(),
  state: text('state', { enum: verificationStates }).notNull(),
  priceMinor: minor('price_minor').notNull(),
  maxCostMinor: minor('max_cost_minor').notNull(),
  currency: text('currency').notNull(),
  idempotencyKey: text('idempotency_key').notNull(),
  requestFingerprint: text('request_fingerprint').notNull(),
  holdId: uuid('hold_id').notNull().unique().references(() => ledgerHolds.id),
  phoneNumber: text('phone_number'),
  providerOrderId: text('provider_order_id'),
  code: text('code'),
  createdAt: at('created_at').notNull(),
  updatedAt: at('updated_at').notNull(),
  expiresAt: at('expires_at').notNull(),
  resolvedAt: at('resolved_at'),
  purchaseUntil: at('purchase_until'),
  responseStatus: integer('response_status'),
  responseCode: text('response_code'),
  failureReason: text('failure_reason'),
  nextCheckAt: at('next_check_at'),
  leaseOwner: text('lease_owner'),
  leaseUntil: at('lease_until'),
  checkFailures: integer('check_failures').notNull().default(0),
  upstreamStatus: text('upstream_status', { enum: upstreamStatuses }).notNull().default('none'),
  upstreamNextAt: at('upstream_next_at'),
  upstreamAttempts: integer('upstream_attempts').notNull().default(0),
});

export const verificationEvents = pgTable('verification_events', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  verificationId: uuid('verification_id').notNull().references(() => verifications.id),
  fromState: text('from_state'),
  toState: text('to_state').notNull(),
  actor: text('actor', { enum: actors }).notNull(),
  reason: text('reason'),
  createdAt: at('created_at').notNull(),
});

export const verificationMessages = pgTable('verification_messages', {
  id: uuid('id').primaryKey().defaultRandom(),
  verificationId: uuid('verification_id').notNull().references(() => verifications.id),
  providerMessageId: text('provider_message_id').notNull(),
  text: text('text').notNull(),
  code: text('code'),
  receivedAt: at('received_at').notNull(),
  late: boolean('late').notNull().default(false),
  createdAt: at('created_at').notNull(),
});

export const notifications = pgTable('notifications', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().references(() => users.id),
  verificationId: uuid('verification_id').references(() => verifications.id),
  kind: text('kind', { enum: ['code_received', 'refund_issued'] }).notNull(),
  title: text('title').notNull(),
  body: text('body').notNull(),
  createdAt: at('created_at').notNull(),
  readAt: at('read_at'),
});

export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    provider: text('provider').notNull(),
    eventId: text('event_id').notNull(),
    receivedAt: at('received_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.provider, t.eventId] })],
);

export const engineWorkers = pgTable('engine_workers', {
  id: text('id').primaryKey(),
  startedAt: at('started_at').notNull(),
  lastTickAt: at('last_tick_at').notNull(),
});
