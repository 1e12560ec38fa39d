import { bigint, boolean, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { users } from '../accounts/schema.ts';

const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const minor = (name: string) => bigint(name, { mode: 'number' });

export const ledgerAccounts = pgTable('ledger_accounts', {
  id: uuid('id').primaryKey().defaultRandom(),
  kind: text('kind', { enum: ['wallet', 'system'] }).notNull(),
  code: text('code').unique(),
  userId: uuid('user_id').unique().references(() => users.id),
  currency: text('currency').notNull(),
  mayOverdraw: boolean('may_overdraw').notNull().default(false),
  postedMinor: minor('posted_minor').notNull().default(0),
  heldMinor: minor('held_minor').notNull().default(0),
  createdAt: at('created_at').notNull(),
});

export const ledgerHolds = pgTable('ledger_holds', {
  id: uuid('id').primaryKey().defaultRandom(),
  accountId: uuid('account_id').notNull().references(() => ledgerAccounts.id),
  amountMinor: minor('amount_minor').notNull(),
  verificationId: uuid('verification_id').unique(),
  expiresAt: at('expires_at').notNull(),
  actor: text('actor').notNull(),
  createdAt: at('created_at').notNull(),
});

export const ledgerTransfers = pgTable('ledger_transfers', {
  id: uuid('id').primaryKey().defaultRandom(),
  debitAccountId: uuid('debit_account_id').notNull().references(() => ledgerAccounts.id),
  creditAccountId: uuid('credit_account_id').notNull().references(() => ledgerAccounts.id),
  amountMinor: minor('amount_minor').notNull(),
  kind: text('kind', { enum: ['topup', 'adjustment', 'verification_charge'] }).notNull(),
  idempotencyKey: text('idempotency_key').unique(),
  holdId: uuid('hold_id').unique().references(() => ledgerHolds.id),
  verificationId: uuid('verification_id'),
  actor: text('actor').notNull(),
  actorId: uuid('actor_id'),
  reason: text('reason'),
  createdAt: at('created_at').notNull(),
});

export const ledgerHoldResolutions = pgTable('ledger_hold_resolutions', {
  holdId: uuid('hold_id').primaryKey().references(() => ledgerHolds.id),
  outcome: text('outcome', { enum: ['posted', 'voided', 'expired'] }).notNull(),
  actor: text('actor').notNull(),
  reason: text('reason'),
  createdAt: at('created_at').notNull(),
});
