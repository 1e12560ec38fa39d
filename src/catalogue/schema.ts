import { boolean, integer, pgTable, primaryKey, text } from 'drizzle-orm/pg-core';
import { minorUnits } from '../db/columns.ts';

/** The catalogue's one table; only src/catalogue writes it. */
export const services = pgTable(
  'services',
  {
    provider: text('provider').notNull(),
    service: text('service').notNull(),
    country: text('country').notNull(),
    name: text('name').notNull(),
    priceMinor: minorUnits('price_minor').notNull(),
    costMinor: minorUnits('cost_minor').notNull(),
    enabled: boolean('enabled').notNull().default(true),
    /** The upstream lists this service as verifiable by a voice call. */
    voice: boolean('voice').notNull().default(false),
    /** How many numbers the provider said it had at the last sync; null when it does not say. */
    stock: integer('stock'),
  },
  (t) => [primaryKey({ columns: [t.provider, t.service, t.country] })],
);
