import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Bearer secrets. The prefix says what a token is (and lets secret scanners find leaked ones);
 * only a SHA-256 of each token is stored, so a database dump grants no access. The tokens carry
 * 256 random bits, so a fast hash is enough (no KDF needed as for passwords).
 */
export const SESSION_TOKEN_PREFIX = 'nss_';
export const API_KEY_PREFIX = 'nsk_';
export const OPS_TOKEN_PREFIX = 'nso_';
/** The single-use links sent by email: verify an address, reset a password. */
export const EMAIL_VERIFICATION_TOKEN_PREFIX = 'nse_';
export const PASSWORD_RESET_TOKEN_PREFIX = 'nsr_';

export function newToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}
