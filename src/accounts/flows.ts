import { and, eq, gt, isNull } from 'drizzle-orm';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Database, Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import type { Mailer } from '../mail/mailer.ts';
import { consumeAccountToken, issueAccountToken, retireAccountTokens } from './account-tokens.ts';
import { recordAudit } from './audit.ts';
import {
  noticeMail,
  passwordChangedNotice,
  passwordResetMail,
  verificationMail,
  type Links,
  type SecurityNotice,
} from './notices.ts';
import { checkPasswordPolicy } from './password-policy.ts';
import type { PasswordHasher } from './passwords.ts';
import { accountTokens, users } from './schema.ts';
import { revokeAllSessions } from './sessions.ts';
import { hashToken } from './tokens.ts';
import { checkCurrentPassword, findUser, findUserByEmail, type User } from './users.ts';

/** What the account flows need, built once by the HTTP application. */
export interface AccountDeps {
  database: Database;
  clock: Clock;
  config: Config;
  mailer: Mailer;
  passwords: PasswordHasher;
  links(): Links;
  /** Adds an in-app notice (and its live event) in the caller's transaction; wired by the composition root. */
  notify(ex: Executor, userId: string, notice: SecurityNotice, now: Date): Promise<void>;
}

/** An account notice: in the app (in the caller's transaction) and by email (after the answer). */
export async function announce(deps: AccountDeps, ex: Executor, user: { id: string; email: string }, notice: SecurityNotice, now: Date): Promise<void> {
  await deps.notify(ex, user.id, notice, now);
  deps.mailer.dispatch(() => deps.mailer.send(noticeMail(user.email, notice)));
}

// --- Email verification ------------------------------------------------------------------------

/** Sends a new verification link (earlier ones stop working). Nothing for a verified or closed account. */
export async function sendEmailVerification(deps: AccountDeps, userId: string): Promise<void> {
  const now = deps.clock.now();
  const hours = deps.config.EMAIL_VERIFICATION_TTL_HOURS;
  const sent = await deps.database.transaction(async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, userId)).for('update');
    if (!user || user.emailVerifiedAt || user.deletedAt) return undefined;
    const token = await issueAccountToken(tx, { userId, purpose: 'verify_email', email: user.email, now, ttlMs: hours * 3_600_000 });
    return { email: user.email, token };
  });
  if (sent) await deps.mailer.send(verificationMail(deps.links(), sent.email, sent.token, hours));
}

/** Uses a verification link: the address it was sent to is now verified. */
export async function verifyEmail(deps: AccountDeps, token: string): Promise<User> {
  const now = deps.clock.now();
  return deps.database.transaction(async (tx) => {
    const used = await consumeAccountToken(tx, 'verify_email', token, now);
    if (!used) throw new DomainError('link_invalid', 'this verification link is invalid, already used or expired');
    const verified = await tx
      .update(users)
      .set({ emailVerifiedAt: now })
      .where(and(eq(users.id, used.userId), eq(users.email, used.email), isNull(users.emailVerifiedAt), isNull(users.deletedAt)))
      .returning({ id: users.id });
    if (verified.length === 1) {
      await recordAudit(tx, { actorId: used.userId, actor: 'customer', action: 'user.email_verified', subjectId: used.userId, detail: {}, now });
    }
    const user = await findUser(tx, used.userId);
    if (!user?.emailVerifiedAt) throw new DomainError('link_invalid', 'this verification link is invalid, already used or expired');
    return user;
  });
}

export type VerifiedEmailAction = 'purchase' | 'top_up';

/** Pure: whether the operator's REQUIRE_VERIFIED_EMAIL_FOR lets an account with this state do the action. */
export function mayActUnverified(config: Pick<Config, 'REQUIRE_VERIFIED_EMAIL_FOR'>, action: VerifiedEmailAction): boolean {
  return !config.REQUIRE_VERIFIED_EMAIL_FOR.includes(action);
}

/**
 * The policy check for actions an operator may reserve to verified addresses (buying a number,
 * topping up): 403 `email_unverified` when the setting names the action and the address is not
 * verified. Costs no query when the setting allows the action.
 */
export async function requireVerifiedEmail(
  ex: Executor,
  config: Pick<Config, 'REQUIRE_VERIFIED_EMAIL_FOR'>,
  userId: string,
  action: VerifiedEmailAction,
): Promise<void> {
  if (mayActUnverified(config, action)) return;
  const [row] = await ex.select({ verified: users.emailVerifiedAt }).from(users).where(eq(users.id, userId));
  if (row?.verified) return;
  const what = action === 'purchase' ? 'buying a number' : 'topping up';
  throw new DomainError('email_unverified', `verify your email address before ${what}: use the link we sent, or ask for a new one`);
}

// --- Password reset and change -------------------------------------------------------------------

/**
 * Sends a reset link when the address has an account; nothing otherwise. The caller answers the
 * same either way and runs this after answering (Mailer.dispatch), so neither the answer nor its
 * timing tells whether the address has an account.
 */
export async function requestPasswordReset(deps: AccountDeps, email: string): Promise<void> {
  const now = deps.clock.now();
  const minutes = deps.config.PASSWORD_RESET_TTL_MINUTES;
  const user = await findUserByEmail(deps.database.db, email);
  if (!user) return;
  const token = await deps.database.transaction(async (tx) => {
    const [row] = await tx.select({ deletedAt: users.deletedAt }).from(users).where(eq(users.id, user.id)).for('update');
    if (!row || row.deletedAt) return undefined;
    return issueAccountToken(tx, { userId: user.id, purpose: 'reset_password', email: user.email, now, ttlMs: minutes * 60_000 });
  });
  if (token) await deps.mailer.send(passwordResetMail(deps.links(), user.email, token, minutes));
}

/**
 * Sets a new password with a reset link: the link works once, every session of the account ends,
 * and the address counts as verified (the link reached it). The new password is checked before
 * the link is used, so a refused password does not spend it.
 */
export async function resetPassword(deps: AccountDeps, token: string, password: string): Promise<void> {
  const now = deps.clock.now();
  // Checked before any hashing, so a stream of made-up tokens costs one lookup each, never a scrypt run.
  const [pending] = await deps.database.db
    .select({ email: accountTokens.email })
    .from(accountTokens)
    .where(
      and(
        eq(accountTokens.tokenHash, hashToken(token)),
        eq(accountTokens.purpose, 'reset_password'),
        isNull(accountTokens.usedAt),
        gt(accountTokens.expiresAt, now),
      ),
    );
  if (!pending) throw new DomainError('link_invalid', 'this reset link is invalid, already used or expired');
  await checkPasswordPolicy(password, pending.email);
  const passwordHash = await deps.passwords.hash(password);
  await deps.database.transaction(async (tx) => {
    const used = await consumeAccountToken(tx, 'reset_password', token, now);
    if (!used) throw new DomainError('link_invalid', 'this reset link is invalid, already used or expired');
    const [user] = await tx
      .select({ id: users.id, email: users.email, verified: users.emailVerifiedAt })
      .from(users)
      .where(and(eq(users.id, used.userId), eq(users.email, used.email), isNull(users.deletedAt)))
      .for('update');
    if (!user) throw new DomainError('link_invalid', 'this reset link is invalid, already used or expired');
    if (!user.verified) await tx.update(users).set({ emailVerifiedAt: now }).where(eq(users.id, user.id));
    await storeNewPassword(deps, tx, user, { passwordHash, how: 'reset', now });
  });
}

/**
 * The new password takes effect: every session ends (except the one that changed it), pending
 * reset links stop working, the change is audited and the owner told.
 */
async function storeNewPassword(
  deps: AccountDeps,
  tx: Executor,
  user: { id: string; email: string },
  change: { passwordHash: string; how: 'reset' | 'changed'; keepSession?: string; now: Date },
): Promise<void> {
  const { now } = change;
  await tx.update(users).set({ passwordHash: change.passwordHash, passwordChangedAt: now }).where(eq(users.id, user.id));
  const ended = await revokeAllSessions(tx, user.id, now, change.keepSession);
  await retireAccountTokens(tx, user.id, 'reset_password', now);
  await recordAudit(tx, {
    actorId: user.id,
    actor: 'customer',
    action: change.how === 'reset' ? 'user.password_reset' : 'user.password_change',
    subjectId: user.id,
    detail: { sessions_ended: ended },
    now,
  });
  await announce(deps, tx, user, passwordChangedNotice(change.how, now), now);
}

/** A signed-in change: the current password is required; the other sessions end, this one stays. */
export async function changePassword(
  deps: AccountDeps,
  input: { userId: string; sessionId?: string; currentPassword: string; newPassword: string },
): Promise<void> {
  const now = deps.clock.now();
  const user = await findUser(deps.database.db, input.userId);
  if (!user) throw new DomainError('unauthenticated', 'this account no longer exists');
  await checkCurrentPassword(deps.database.db, user.id, input.currentPassword, deps.passwords, 'current_password');
  await checkPasswordPolicy(input.newPassword, user.email);
  const passwordHash = await deps.passwords.hash(input.newPassword);
  await deps.database.transaction((tx) => storeNewPassword(deps, tx, user, { passwordHash, how: 'changed', keepSession: input.sessionId, now }));
}
