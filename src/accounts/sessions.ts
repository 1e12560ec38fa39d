import { randomBytes } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { sessions } from './schema.ts';
import { hashToken, newToken, SESSION_TOKEN_PREFIX } from './tokens.ts';

export interface NewSession {
  id: string;
  /** The bearer token; returned once, only its hash is stored. */
  token: string;
  /** Sent back by cookie-authenticated writes in X-CSRF-Token. */
  csrfToken: string;
  expiresAt: Date;
}

export async function createSession(
  ex: Executor,
  userId: string,
  options: { now: Date; ttlHours: number },
): Promise<NewSession> {
  const token = newToken(SESSION_TOKEN_PREFIX);
  const csrfToken = randomBytes(32).toString('base64url');
  const expiresAt = new Date(options.now.getTime() + options.ttlHours * 3_600_000);
  const [row] = await ex
    .insert(sessions)
    .values({ userId, tokenHash: hashToken(token), csrfToken, createdAt: options.now, expiresAt })
    .returning({ id: sessions.id });
  return { id: row!.id, token, csrfToken, expiresAt };
}

/** Ends a session (logout). Revoking an already revoked session changes nothing. */
export async function revokeSession(ex: Executor, sessionId: string, now: Date): Promise<void> {
  await ex
    .update(sessions)
    .set({ revokedAt: now })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)));
}
