import { pgTable, text } from 'drizzle-orm/pg-core';
import { timestamptz } from '../db/columns.ts';

/** Workers say they are alive here; only src/engine writes it. */
export const engineWorkers = pgTable('engine_workers', {
  id: text('id').primaryKey(),
  startedAt: timestamptz('started_at').notNull(),
  lastTickAt: timestamptz('last_tick_at').notNull(),
});
