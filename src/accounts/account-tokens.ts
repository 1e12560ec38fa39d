import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { accountTokens } from './schema.ts';
import { EMAIL_VERIFICATION_TOKEN_PREFIX, hashToken, newToken, PASSWORD_RESET_TOKEN_PREFIX } from './tokens.ts';

/**
 * The single-use links sent by email. A token carries 256 random bits and only its SHA-256 is
 * stored, so a database dump opens no account. Using one is a compare-and-set on `used_at`: of two
 * concurrent uses exactly one wins. A new link of a purpose retires the earlier unused ones, so
 * only the newest email works.
 */
export type AccountTokenPurpose = 'verify_email' | 'reset_password';

const PREFIX: Record<AccountTokenPurpose, string> = {
  verify_email: EMAIL_VERIFICATION_TOKEN_PREFIX,
  reset_password: PASSWORD_RESET_TOKEN_PREFIX,
};

export async function issueAccountToken(
  ex: Executor,
  input: { userId: string; purpose: AccountTokenPurpose; email: string; now: Date; ttlMs: number },
): Promise<string> {
  await retireAccountTokens(ex, input.userId, input.purpose, input.now);
  const token = newToken(PREFIX[input.purpose]);
  await ex.insert(accountTokens).values({
    userId: input.userId,
    purpose: input.purpose,
    tokenHash: hashToken(token),
    email: input.email,
    createdAt: input.now,
    expiresAt: new Date(input.now.getTime() + input.ttlMs),
  });
  return token;
}

/**
 * Uses a token: the account and address it was issued for, or undefined when it is unknown (also
 * tampered), already used, retired, expired or of another purpose — one answer for all of them.
 */
export async function consumeAccountToken(
  ex: Executor,
  purpose: AccountTokenPurpose,
  token: string,
  now: Date,
): Promise<{ userId: string; email: string } | undefined> {
  if (!token.startsWith(PREFIX[purpose])) return undefined;
  const [row] = await ex
    .update(accountTokens)
    .set({ usedAt: now })
    .where(
      and(
        eq(accountTokens.tokenHash, hashToken(token)),
        eq(accountTokens.purpose, purpose),
        isNull(accountTokens.usedAt),
        gt(accountTokens.expiresAt, now),
      ),
    )
    .returning({ userId: accountTokens.userId, email: accountTokens.email });
  return row;
}

/** Retires every unused token of a purpose (a newer link was sent, the password changed, the account closed). */
export async function retireAccountTokens(ex: Executor, userId: string, purpose: AccountTokenPurpose | 'all', now: Date): Promise<void> {
  await ex
    .update(accountTokens)
    .set({ usedAt: now })
    .where(
      and(
        eq(accountTokens.userId, userId),
        isNull(accountTokens.usedAt),
        purpose === 'all' ? sql`true` : eq(accountTokens.purpose, purpose),
      ),
    );
}
