import { and, eq, isNull, sql } from 'drizzle-orm';
import { firstRow, type Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { forgetOutboxMail } from '../mail/mailer.ts';
import { retireAccountTokens } from './account-tokens.ts';
import { recordAudit } from './audit.ts';
import { apiKeys, auditLog, recoveryCodes, sessions, users, purchasePresets } from './schema.ts';

/**
 * Closing an account. The ledger keeps its history, so the account is anonymised, never removed:
 * its transfers, holds and verifications stay (they are the platform's books), its email becomes a
 * placeholder, its password, second factor, sessions, API keys and pending links stop working, and
 * what it told us about itself (sign-in devices and addresses, the outbox's mail) is forgotten.
 *
 * Refused (409 `account_has_funds`) while the wallet holds money — a balance, or a hold for an open
 * verification — so nobody loses money by closing an account. The wallet row is locked for the
 * check, as every ledger write locks it, so no movement can land between the check and the closure.
 */
export async function closeAccount(tx: Executor, userId: string, now: Date): Promise<{ formerEmail: string }> {
  const [user] = await tx.select().from(users).where(and(eq(users.id, userId), isNull(users.deletedAt))).for('update');
  if (!user) throw new DomainError('not_found', 'no such account');
  if (user.role === 'admin') {
    const other = await firstRow<{ id: string }>(
      tx,
      sql`SELECT id FROM users WHERE role = 'admin' AND deleted_at IS NULL AND id <> ${userId} LIMIT 1`,
    );
    if (!other) throw new DomainError('conflict', 'the last admin cannot close their account');
  }
  const wallet = await firstRow<{ posted_minor: number; held_minor: number }>(
    tx,
    sql`SELECT posted_minor, held_minor FROM ledger_accounts WHERE user_id = ${userId} FOR UPDATE`,
  );
  const balance = Number(wallet?.posted_minor ?? 0);
  const held = Number(wallet?.held_minor ?? 0);
  if (balance !== 0 || held !== 0) {
    throw new DomainError(
      'account_has_funds',
      'the account still holds money: spend or have the balance paid out, and let open verifications end, first',
      { balance_minor: balance, held_minor: held },
    );
  }
  await tx
    .update(users)
    .set({
      email: `deleted-${user.id}@deleted.invalid`,
      passwordHash: '!closed',
      emailVerifiedAt: null,
      totpPendingSecret: null,
      totpSecret: null,
      totpEnabledAt: null,
      totpLastStep: null,
      deletedAt: now,
    })
    .where(eq(users.id, userId));
  await tx
    .update(sessions)
    .set({ revokedAt: sql`coalesce(${sessions.revokedAt}, ${now})`, userAgent: null, address: null })
    .where(eq(sessions.userId, userId));
  await tx.update(apiKeys).set({ revokedAt: now }).where(and(eq(apiKeys.userId, userId), isNull(apiKeys.revokedAt)));
  await tx.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
  await tx.delete(purchasePresets).where(eq(purchasePresets.userId, userId));
  await retireAccountTokens(tx, userId, 'all', now);
  await forgetOutboxMail(tx, user.email);
  // Earlier audit entries named the address; the record of what was done stays.
  await tx
    .update(auditLog)
    .set({ detail: sql`${auditLog.detail} - 'email'` })
    .where(eq(auditLog.subjectId, userId));
  await recordAudit(tx, { actorId: userId, actor: 'customer', action: 'user.close', subjectId: userId, detail: {}, now });
  return { formerEmail: user.email };
}

/** Everything an audit trail says about the account (its own security events), oldest first. */
export async function accountAuditTrail(ex: Executor, userId: string) {
  return ex
    .select({ action: auditLog.action, actor: auditLog.actor, detail: auditLog.detail, createdAt: auditLog.createdAt })
    .from(auditLog)
    .where(eq(auditLog.subjectId, userId))
    .orderBy(auditLog.id)
    .limit(10_000);
}
