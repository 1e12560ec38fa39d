// The one Drizzle schema: each module declares the tables it owns; this file gathers them.
export * from '../accounts/schema.ts';
export * from '../ledger/schema.ts';
export * from '../verifications/schema.ts';
