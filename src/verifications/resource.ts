import { z } from 'zod';
import { Timestamp } from '../clock.ts';
import { MinorUnits } from '../money.ts';
import { verificationStates } from './schema.ts';

/**
 * The verification as the API returns it (docs/api.md): one schema for validation, OpenAPI and the
 * type view.ts builds; the dashboard's timeline reads `events`.
 */
export const VerificationSchema = z
  .object({
    id: z.uuid(),
    service: z.string(),
    country: z.string(),
    state: z.enum(verificationStates),
    phone_number: z.string().nullable(),
    price_minor: MinorUnits,
    currency: z.string(),
    created_at: Timestamp,
    expires_at: Timestamp.describe('the one deadline: countdown, poller and sweeper all use it'),
    code: z.string().nullable(),
    messages: z.array(z.object({ text: z.string(), code: z.string().nullable(), received_at: Timestamp, late: z.boolean() })),
    refunded: z.boolean().describe('the hold was released: the customer paid nothing'),
    can_cancel: z.boolean(),
    events: z.array(
      z.object({ from: z.string().nullable(), to: z.string(), actor: z.string(), reason: z.string().nullable(), at: Timestamp }),
    ),
  })
  .meta({ id: 'Verification' });
export type VerificationView = z.output<typeof VerificationSchema>;

/** A verification as admins search them: with its customer's email. */
export const AdminVerificationSchema = VerificationSchema.extend({ user_email: z.string() }).meta({ id: 'AdminVerification' });
export type AdminVerificationView = z.output<typeof AdminVerificationSchema>;
