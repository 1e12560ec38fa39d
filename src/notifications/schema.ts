import { pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { timestamptz } from '../db/columns.ts';

export const notificationKinds = ['code_received', 'refund_issued', 'webhook_endpoint_disabled', 'account_security', 'upstream_balance_low'] as const;
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
