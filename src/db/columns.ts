import { bigint, timestamp } from 'drizzle-orm/pg-core';

/** Column kinds every module's tables share, declared once so the migrations have one mapping to match. */

/** timestamptz, read and written as a Date. */
export const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** bigint minor units (cents), read as a number: the driver refuses values beyond 2^53 (src/db/database.ts). */
export const minorUnits = (name: string) => bigint(name, { mode: 'number' });
