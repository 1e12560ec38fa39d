import { z } from 'zod';

/**
 * Input rules shared by the API, the accounts module and the CLI (a light module: the CLI checks
 * its arguments with it before loading the database).
 */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 200;
/** |amount| above this is a typo, not a top-up (10 billion in a two-decimal currency). */
export const MAX_CREDIT_MINOR = 1_000_000_000_000;
export const MAX_REASON_LENGTH = 500;
/**
 * IETF Idempotency-Key, one rule for every route and command that takes a key: 1-255 printable
 * ASCII characters without spaces (a space is where a copied key gets cut or padded).
 */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
export const IDEMPOTENCY_KEY_RULE = '1-255 printable ASCII characters without spaces';

const emailSchema = z.email().max(254);

/** Emails are compared and stored in lower case: Alice@X.com and alice@x.com are one account. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export function isValidEmail(email: string): boolean {
  return emailSchema.safeParse(normalizeEmail(email)).success;
}
