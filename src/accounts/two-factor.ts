import { createHash, randomBytes } from 'node:crypto';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';
import type { Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { recoveryCodes, users } from './schema.ts';

/**
 * Two-factor sign-in with TOTP (RFC 6238, otplib): 6 digits, 30 s steps, one step of clock drift
 * either way. A code is accepted once: the step it was accepted for is stored, and only later
 * steps are accepted after it (compare-and-set, so two concurrent sign-ins cannot both use it).
 * The secret has to be readable to check codes, so it is stored as is, in a credential table whose
 * statements are never logged with their parameters. Recovery codes carry 80 random bits each and
 * are stored as SHA-256, each usable once.
 */
export const TOTP_ISSUER = 'Namaskah';
const PERIOD_SECONDS = 30;
const DRIFT_SECONDS = 30;
export const RECOVERY_CODE_COUNT = 10;

export interface TotpEnrolment {
  secret: string;
  /** otpauth:// URI for authenticator apps. */
  uri: string;
  /** The URI as a QR code: an SVG data URL (the dashboard's CSP allows data: images only). */
  qrCode: string;
}

/** Starts (or restarts) enrolment: a new secret that becomes active when a first code confirms it. */
export async function beginTotpEnrolment(ex: Executor, user: { id: string; email: string }): Promise<TotpEnrolment> {
  const [row] = await ex.select({ enabled: users.totpEnabledAt }).from(users).where(eq(users.id, user.id));
  if (row?.enabled) throw new DomainError('conflict', 'two-factor sign-in is already on; turn it off first to enrol a new device');
  const secret = generateSecret();
  await ex.update(users).set({ totpPendingSecret: secret }).where(eq(users.id, user.id));
  const uri = generateURI({ issuer: TOTP_ISSUER, label: user.email, secret });
  const svg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return { secret, uri, qrCode: `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}` };
}

/** The time step a code is valid for, or undefined when it is wrong for every step within the drift. */
async function acceptedStep(secret: string, code: string, now: Date, afterStep: number | null): Promise<number | undefined> {
  if (!/^\d{6}$/.test(code)) return undefined;
  const result = await verify({
    secret,
    token: code,
    epoch: Math.floor(now.getTime() / 1000),
    epochTolerance: DRIFT_SECONDS,
    period: PERIOD_SECONDS,
    ...(afterStep === null ? {} : { afterTimeStep: afterStep }),
  });
  return result.valid ? (result as { timeStep: number }).timeStep : undefined;
}

/** Confirms enrolment with a first code: two-factor sign-in is on; returns the recovery codes, shown this once. */
export async function confirmTotpEnrolment(ex: Executor, userId: string, code: string, now: Date): Promise<string[]> {
  const [row] = await ex
    .select({ pending: users.totpPendingSecret, enabled: users.totpEnabledAt })
    .from(users)
    .where(eq(users.id, userId));
  if (row?.enabled) throw new DomainError('conflict', 'two-factor sign-in is already on');
  if (!row?.pending) throw new DomainError('conflict', 'start enrolment first (POST /v1/account/two-factor)');
  const step = await acceptedStep(row.pending, code.trim(), now, null);
  if (step === undefined) {
    throw new DomainError('validation_failed', 'the code is wrong: check the time on the device and type the code shown now', { field: 'code' });
  }
  const enabled = await ex
    .update(users)
    .set({ totpSecret: row.pending, totpPendingSecret: null, totpEnabledAt: now, totpLastStep: step })
    .where(and(eq(users.id, userId), isNull(users.totpEnabledAt), eq(users.totpPendingSecret, row.pending)))
    .returning({ id: users.id });
  if (enabled.length === 0) throw new DomainError('conflict', 'two-factor enrolment changed meanwhile; start again');
  return replaceRecoveryCodes(ex, userId, now);
}

/** New recovery codes (the old ones stop working); returned in clear this once. */
export async function replaceRecoveryCodes(ex: Executor, userId: string, now: Date): Promise<string[]> {
  await ex.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  await ex.insert(recoveryCodes).values(codes.map((code) => ({ userId, codeHash: hashRecoveryCode(code), createdAt: now })));
  return codes;
}

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

/** 16 Crockford base32 characters (80 bits) in four groups: xxxx-xxxx-xxxx-xxxx. */
function newRecoveryCode(): string {
  const bytes = randomBytes(16);
  let text = '';
  for (let i = 0; i < 16; i++) text += CROCKFORD[bytes[i]! & 31];
  return text.match(/.{4}/g)!.join('-');
}

function hashRecoveryCode(code: string): string {
  const normal = code.toLowerCase().replace(/[\s-]/g, '');
  return createHash('sha256').update(`recovery:${normal}`, 'utf8').digest('hex');
}

export interface SecondFactor {
  totpCode?: string;
  recoveryCode?: string;
}

/**
 * The second step of signing in for an account with two-factor sign-in on: a current TOTP code
 * (used once) or an unused recovery code. Nothing given: 401 `totp_required`; wrong: 401
 * `unauthenticated`. Returns how it was passed, for the audit log.
 */
export async function checkSecondFactor(ex: Executor, userId: string, factor: SecondFactor, now: Date): Promise<'totp' | 'recovery_code' | 'none'> {
  const [row] = await ex
    .select({ secret: users.totpSecret, lastStep: users.totpLastStep })
    .from(users)
    .where(eq(users.id, userId));
  if (!row?.secret) return 'none';
  if (factor.totpCode) {
    const step = await acceptedStep(row.secret, factor.totpCode.trim(), now, row.lastStep);
    if (step !== undefined) {
      const used = await ex
        .update(users)
        .set({ totpLastStep: step })
        .where(and(eq(users.id, userId), sql`(${users.totpLastStep} IS NULL OR ${users.totpLastStep} < ${step})`))
        .returning({ id: users.id });
      if (used.length === 1) return 'totp';
    }
    throw new DomainError('unauthenticated', 'the two-factor code is wrong or was already used');
  }
  if (factor.recoveryCode) {
    const used = await ex
      .update(recoveryCodes)
      .set({ usedAt: now })
      .where(
        and(eq(recoveryCodes.userId, userId), eq(recoveryCodes.codeHash, hashRecoveryCode(factor.recoveryCode)), isNull(recoveryCodes.usedAt)),
      )
      .returning({ userId: recoveryCodes.userId });
    if (used.length === 1) return 'recovery_code';
    throw new DomainError('unauthenticated', 'the recovery code is wrong or was already used');
  }
  throw new DomainError('totp_required', 'this account signs in with a second factor: send totp_code (or recovery_code)');
}

/**
 * The second factor as proof from someone already signed in (reauthentication, turning two-factor
 * off, closing the account): the same check, but a missing or wrong code is 400
 * `validation_failed` naming the field — a 401 would read as "your session ended".
 */
export async function proveSecondFactor(ex: Executor, userId: string, factor: SecondFactor, now: Date): Promise<void> {
  try {
    await checkSecondFactor(ex, userId, factor, now);
  } catch (error) {
    if (!(error instanceof DomainError) || (error.code !== 'unauthenticated' && error.code !== 'totp_required')) throw error;
    const field = factor.recoveryCode && !factor.totpCode ? 'recovery_code' : 'totp_code';
    const message =
      error.code === 'totp_required' ? 'this account uses two-factor sign-in: send totp_code (or recovery_code)' : error.message;
    throw new DomainError('validation_failed', message, { field });
  }
}

/** Turns two-factor sign-in off and forgets the secret and the recovery codes. */
export async function disableTwoFactor(ex: Executor, userId: string): Promise<void> {
  await ex
    .update(users)
    .set({ totpSecret: null, totpPendingSecret: null, totpEnabledAt: null, totpLastStep: null })
    .where(eq(users.id, userId));
  await ex.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
}

/** How many unused recovery codes are left. */
export async function recoveryCodesLeft(ex: Executor, userId: string): Promise<number> {
  const [row] = await ex
    .select({ n: sql<number>`count(*)::int` })
    .from(recoveryCodes)
    .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.usedAt)));
  return Number(row?.n ?? 0);
}
