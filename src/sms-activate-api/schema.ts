import { bigserial, pgTable, uuid } from 'drizzle-orm/pg-core';

/**
 * The protocol's integer activation id of a verification (migrations/0012); only
 * src/sms-activate-api writes it. Keys live in the migration.
 */
export const smsActivateActivations = pgTable('sms_activate_activations', {
  activationId: bigserial('activation_id', { mode: 'number' }).primaryKey(),
  verificationId: uuid('verification_id').notNull(),
});
