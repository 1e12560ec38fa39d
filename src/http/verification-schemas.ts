import { z } from 'zod';
import { verificationStates } from '../verifications/schema.ts';
import { MinorUnits, Timestamp } from './schemas.ts';

/** The verification as the API returns it (DESIGN §6); the dashboard's timeline reads `events`. */
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

export const VerificationPageSchema = z.object({
  items: z.array(VerificationSchema),
  next_cursor: z.string().nullable(),
});

export const VerificationId = z.strictObject({ id: z.uuid() });
