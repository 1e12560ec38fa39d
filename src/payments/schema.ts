import { pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { minorUnits as minor, timestamptz as at } from '../db/columns.ts';

/**
 * The top-up tables. Only src/payments writes them; money itself moves only through src/ledger.
 * Keys, checks and foreign keys live in migrations/0006_topups.sql.
 */

export const processorNames = ['sandbox', 'stripe', 'paystack'] as const;
export type ProcessorName = (typeof processorNames)[number];

export const topUpStatuses = ['pending', 'credited', 'failed', 'expired', 'review'] as const;
export type TopUpStatus = (typeof topUpStatuses)[number];

export const paymentEventOutcomes = [
  'credited',
  'already_credited',
  'failed',
  'expired',
  'reversed',
  'mismatch',
  'unknown_top_up',
  'ignored',
] as const;
export type PaymentEventOutcome = (typeof paymentEventOutcomes)[number];

export const topUps = pgTable('top_ups', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull(),
  processor: text('processor', { enum: processorNames }).notNull(),
  amountMinor: minor('amount_minor').notNull(),
  currency: text('currency').notNull(),
  status: text('status', { enum: topUpStatuses }).notNull().default('pending'),
  idempotencyKey: text('idempotency_key').notNull(),
  fingerprint: text('fingerprint').notNull(),
  processorReference: text('processor_reference'),
  processorPaymentId: text('processor_payment_id'),
  checkoutUrl: text('checkout_url'),
  creditedMinor: minor('credited_minor'),
  creditTransferId: uuid('credit_transfer_id'),
  statusReason: text('status_reason'),
  createdAt: at('created_at').notNull(),
  updatedAt: at('updated_at').notNull(),
  creditedAt: at('credited_at'),
});
export type TopUpRow = typeof topUps.$inferSelect;

export const paymentEvents = pgTable(
  'payment_events',
  {
    processor: text('processor').notNull(),
    eventId: text('event_id').notNull(),
    type: text('type').notNull(),
    topUpId: uuid('top_up_id'),
    paymentId: text('payment_id'),
    amountMinor: minor('amount_minor'),
    currency: text('currency'),
    outcome: text('outcome', { enum: paymentEventOutcomes }).notNull(),
    detail: text('detail'),
    receivedAt: at('received_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.processor, t.eventId] })],
);

export const topUpReversals = pgTable('top_up_reversals', {
  id: uuid('id').primaryKey().defaultRandom(),
  topUpId: uuid('top_up_id').notNull(),
  userId: uuid('user_id').notNull(),
  processor: text('processor').notNull(),
  reference: text('reference').notNull(),
  kind: text('kind', { enum: ['refund', 'dispute'] }).notNull(),
  amountMinor: minor('amount_minor').notNull(),
  collectedMinor: minor('collected_minor').notNull().default(0),
  createdAt: at('created_at').notNull(),
  updatedAt: at('updated_at').notNull(),
});
export type TopUpReversalRow = typeof topUpReversals.$inferSelect;
