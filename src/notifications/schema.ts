import { boolean, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { minorUnits, timestamptz } from '../db/columns.ts';

export const notificationKinds = ['code_received', 'refund_issued', 'webhook_endpoint_disabled', 'account_security', 'upstream_balance_low', 'low_balance'] as const;
export type NotificationKind = (typeof notificationKinds)[number];

/** In-app notifications; only src/notifications writes them. */
export const notifications = pgTable('notifications', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull(),
  verificationId: uuid('verification_id'),
  kind: text('kind', { enum: notificationKinds }).notNull(),
  title: text('title').notNull(),
  body: text('body').notNull(),
  createdAt: timestamptz('created_at').notNull(),
  readAt: timestamptz('read_at'),
});

/** The low-balance notice's threshold per customer, and whether the balance is below it now (src/notifications/low-balance.ts). */
export const lowBalanceAlerts = pgTable('low_balance_alerts', {
  userId: uuid('user_id').primaryKey(),
  thresholdMinor: minorUnits('threshold_minor').notNull(),
  below: boolean('below').notNull().default(false),
  updatedAt: timestamptz('updated_at').notNull(),
});
