import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Passwords are hashed with scrypt (memory-hard: N=2^15, r=8 needs 32 MiB per hash) and a
 * per-password random salt. The parameters travel inside the stored string, so they can be raised
 * later without invalidating existing hashes:  scrypt$<N>$<r>$<p>$<salt>$<hash>  (base64url).
 */
const N = 2 ** 15;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
const SALT_BYTES = 16;

export { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './policy.ts';

function derive(password: string, salt: Buffer, n: number, r: number, p: number, length: number): Promise<Buffer> {
  // maxmem must exceed 128 * N * r, or node refuses the parameters.
  const options: ScryptOptions = { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, length, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, N, R, P, KEY_LENGTH);
  return ['scrypt', N, R, P, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Constant-time check of a password against a stored hash; false for any malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  // Bounded so a tampered row cannot make one login allocate gigabytes.
  const sane = Number.isInteger(n) && n >= 2 && n <= 2 ** 20 && (n & (n - 1)) === 0 && r >= 1 && r <= 32 && p >= 1 && p <= 16;
  if (!sane) return false;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const expected = Buffer.from(parts[5]!, 'base64url');
  if (salt.length === 0 || expected.length < 16) return false;
  const actual = await derive(password, salt, n, r, p, expected.length);
  return timingSafeEqual(actual, expected);
}

/** The expensive half of accounts: injected so tests can count (and so prove the absence of) hashing work. */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, stored: string): Promise<boolean>;
}

export const scryptHasher: PasswordHasher = { hash: hashPassword, verify: verifyPassword };

let dummyHash: Promise<string> | undefined;

/**
 * Spends the same work as a real check, for logins with an unknown email: the answer and its
 * timing must not tell an attacker which emails have accounts.
 */
export async function burnPasswordCheck(password: string, hasher: PasswordHasher = scryptHasher): Promise<void> {
  dummyHash ??= hashPassword(randomBytes(12).toString('base64url'));
  await hasher.verify(password, await dummyHash);
}

/** A random password for generated accounts (admin bootstrap, `users create` without --password). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
