import { bigserial, boolean, integer, jsonb, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import type { NumberOptions } from '../providers/provider.ts';
import { minorUnits as minor, timestamptz as at } from '../db/columns.ts';

/**
 * The verification tables. Only the lifecycle (src/verifications) changes them, except the work-queue
 * columns (next_check_at, lease_owner, lease_until, check_failures), which belong to the engine's
 * queue (src/engine/queue.ts). Declarations carry what the code reads and writes — columns, types,
 * nullability, defaults; keys, checks and foreign keys live in the SQL migrations, which a test keeps
 * in step with these declarations.
 */

export const verificationStates = ['pending', 'waiting', 'received', 'cancelled', 'expired', 'failed'] as const;
export type VerificationState = (typeof verificationStates)[number];

const actors = ['customer', 'poller', 'sweeper', 'webhook', 'admin', 'reconciler', 'recovery'] as const;
export type Actor = (typeof actors)[number];

const upstreamStatuses = ['none', 'open', 'completed', 'cancelled', 'cancel_owed', 'finish_owed', 'reported', 'absent', 'orphan_suspected'] as const;
export type UpstreamStatus = (typeof upstreamStatuses)[number];

/** Upstream answers an operator should see (diagnose, metrics); kept on the verification concerned. */
export const upstreamAlarms = ['order_id_reused', 'completed_without_sms'] as const;
export type UpstreamAlarm = (typeof upstreamAlarms)[number];

export const verifications = pgTable('verifications', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull(),
  provider: text('provider').notNull(),
  service: text('service').notNull(),
  country: text('country').notNull(),
  state: text('state', { enum: verificationStates }).notNull(),
  priceMinor: minor('price_minor').notNull(),
  maxCostMinor: minor('max_cost_minor').notNull(),
  currency: text('currency').notNull(),
  idempotencyKey: text('idempotency_key').notNull(),
  requestFingerprint: text('request_fingerprint').notNull(),
  /** Null only for an additional code the upstream gives for free (price 0): nothing is held. */
  holdId: uuid('hold_id'),
  /** The verification that bought the number, for another code on the same number. */
  parentId: uuid('parent_id'),
  /**
   * A child that owns its upstream order (TextVerified reuse, DaisySMS extra activation): it cancels
   * and finishes it itself. False for every purchase and for a child on its parent's order.
   */
  ownOrder: boolean('own_order').notNull().default(false),
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
  upstreamAlarm: text('upstream_alarm', { enum: upstreamAlarms }),
  upstreamAlarmAt: at('upstream_alarm_at'),
  /** Area codes, carriers, voice as asked (canonical form); null for a plain purchase. */
  numberOptions: jsonb('number_options').$type<NumberOptions>(),
});

export const verificationEvents = pgTable('verification_events', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  verificationId: uuid('verification_id').notNull(),
  fromState: text('from_state'),
  toState: text('to_state').notNull(),
  actor: text('actor', { enum: actors }).notNull(),
  reason: text('reason'),
  createdAt: at('created_at').notNull(),
});

export const verificationMessages = pgTable('verification_messages', {
  id: uuid('id').primaryKey().defaultRandom(),
  verificationId: uuid('verification_id').notNull(),
  providerMessageId: text('provider_message_id').notNull(),
  text: text('text').notNull(),
  code: text('code'),
  receivedAt: at('received_at').notNull(),
  late: boolean('late').notNull().default(false),
  createdAt: at('created_at').notNull(),
});

export const reportReasons = ['number_rejected', 'code_not_received'] as const;
export type ReportReason = (typeof reportReasons)[number];

/**
 * Reports of bad numbers (src/verifications/reports.ts), one per verification: what was told upstream
 * and whether money is still to come back (docs/number-care.md).
 */
export const numberReports = pgTable('number_reports', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull(),
  verificationId: uuid('verification_id').notNull(),
  provider: text('provider').notNull(),
  service: text('service').notNull(),
  phoneNumber: text('phone_number').notNull(),
  reason: text('reason', { enum: reportReasons }).notNull(),
  upstream: text('upstream', { enum: ['reported', 'report_owed', 'cancelled', 'not_reportable'] }).notNull(),
  refund: text('refund', { enum: ['none', 'awaiting_upstream', 'refunded', 'declined'] }).notNull(),
  createdAt: at('created_at').notNull(),
  updatedAt: at('updated_at').notNull(),
});
