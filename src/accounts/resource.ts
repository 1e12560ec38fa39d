import { z } from 'zod';
import { Timestamp } from '../clock.ts';
import { MinorUnits } from '../money.ts';
import type { User, UserWithWallet } from './users.ts';

/** Accounts as the API and the CLI show them: schema (validation, OpenAPI) and the one mapping to it. */

const Role = z.enum(['customer', 'admin']);

export const UserSchema = z
  .object({
    id: z.uuid(),
    email: z.string(),
    role: Role,
    created_at: Timestamp,
    email_verified: z.boolean().describe('the address was confirmed by the link sent to it'),
    two_factor: z.boolean().describe('sign-in asks for a TOTP code'),
  })
  .meta({ id: 'User' });

export function userResource(user: User): z.output<typeof UserSchema> {
  return {
    id: user.id,
    email: user.email,
    role: user.role,
    created_at: user.createdAt.toISOString(),
    email_verified: user.emailVerifiedAt !== null,
    two_factor: user.twoFactor,
  };
}

/** A user with their wallet's balances, as admins list them. */
export const AdminUserSchema = UserSchema.extend({
  balance_minor: MinorUnits,
  held_minor: MinorUnits,
  available_minor: MinorUnits,
}).meta({ id: 'AdminUser' });
export type AdminUserResource = z.output<typeof AdminUserSchema>;

export function adminUserResource(user: UserWithWallet): AdminUserResource {
  return {
    ...userResource(user),
    balance_minor: user.balanceMinor,
    held_minor: user.heldMinor,
    available_minor: user.availableMinor,
  };
}
