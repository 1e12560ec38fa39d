import { pgTable, text } from 'drizzle-orm/pg-core';
import { timestamptz as at } from '../db/columns.ts';

/**
 * Each provider's breaker as the processes share it (PostgreSQL, several processes): written by the
 * breaker (src/providers/breaker-store.ts) when it opens or closes, read by the others about once a
 * second. Only src/providers writes it.
 */
export const providerBreakers = pgTable('provider_breakers', {
  provider: text('provider').primaryKey(),
  state: text('state', { enum: ['open', 'closed'] }).notNull(),
  openUntil: at('open_until'),
  changedAt: at('changed_at').notNull(),
  /** The process that changed it (host and pid): a process ignores its own writes when it reads. */
  changedBy: text('changed_by').notNull(),
});
