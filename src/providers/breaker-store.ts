import { eq } from 'drizzle-orm';
import type { Database } from '../db/database.ts';
import { providerBreakers } from './schema.ts';

/**
 * Where the processes of one installation tell each other that a provider's breaker opened or
 * closed (PostgreSQL; one embedded process has nobody to tell). A failure to read or write is
 * the breaker's to absorb: its own process's state still holds.
 */
export interface BreakerStore {
  /** This process, as written in `changed_by`. */
  readonly processId: string;
  /** Until when another process has the provider's breaker open (null: closed, or opened by us). */
  openElsewhereUntil(provider: string): Promise<Date | null>;
  record(provider: string, change: { state: 'open' | 'closed'; openUntil: Date | null; at: Date }): Promise<void>;
}

export function databaseBreakerStore(database: Database, processId: string): BreakerStore {
  return {
    processId,
    async openElsewhereUntil(provider) {
      const [row] = await database.db.select().from(providerBreakers).where(eq(providerBreakers.provider, provider));
      if (!row || row.state !== 'open' || row.changedBy === processId) return null;
      return row.openUntil;
    },
    async record(provider, change) {
      const values = { provider, state: change.state, openUntil: change.openUntil, changedAt: change.at, changedBy: processId };
      await database.db.insert(providerBreakers).values(values).onConflictDoUpdate({ target: providerBreakers.provider, set: values });
    },
  };
}
