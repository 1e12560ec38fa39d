import { z } from 'zod';
import { IDEMPOTENCY_KEY_PATTERN } from '../accounts/policy.ts';
import type { User } from '../accounts/users.ts';
import type { Wallet } from '../ledger/ledger.ts';

/** Shapes shared by several routes; each is both validation/serialization and an OpenAPI component. */

export const Timestamp = z.iso.datetime({ offset: true }).describe('RFC 3339 timestamp');
export const MinorUnits = z.number().int().describe('integer amount in minor units (cents)');

export const UserSchema = z
  .object({
    id: z.uuid(),
    email: z.string(),
    role: z.enum(['customer', 'admin']),
    created_at: Timestamp,
  })
  .meta({ id: 'User' });

export const WalletSchema = z
  .object({
    balance_minor: MinorUnits.describe('posted balance'),
    held_minor: MinorUnits.describe('reserved by verifications still in progress'),
    available_minor: MinorUnits.describe('what can be spent: balance minus held'),
    currency: z.string().length(3),
  })
  .meta({ id: 'Wallet' });

export function userBody(user: User): z.output<typeof UserSchema> {
  return { id: user.id, email: user.email, role: user.role, created_at: user.createdAt.toISOString() };
}

export function walletBody(wallet: Wallet): z.output<typeof WalletSchema> {
  return {
    balance_minor: wallet.balanceMinor,
    held_minor: wallet.heldMinor,
    available_minor: wallet.availableMinor,
    currency: wallet.currency,
  };
}

/** Optional Idempotency-Key header; other headers pass through untouched. */
export const IdempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .regex(IDEMPOTENCY_KEY_PATTERN, 'must be 1-255 printable ASCII characters')
    .optional()
    .describe('makes the request safe to retry: a retry returns the first outcome'),
});

export const Security: { [scheme: string]: string[] }[] = [{ bearerAuth: [] }, { cookieAuth: [] }];
