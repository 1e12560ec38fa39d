import { randomBytes } from 'node:crypto';
import { and, desc, eq, gt, isNull, ne, sql } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
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

/** Where a sign-in came from, as the owner sees it in their list of sessions. */
export interface SessionOrigin {
  userAgent?: string;
  /** The client address (TRUST_PROXY decides which). */
  address?: string;
}

/** A browser's User-Agent can be long; the list needs a recognisable start of it. */
const USER_AGENT_MAX = 300;

export async function createSession(
  ex: Executor,
  userId: string,
  options: { now: Date; ttlHours: number; origin?: SessionOrigin },
): Promise<NewSession> {
  const token = newToken(SESSION_TOKEN_PREFIX);
  const csrfToken = randomBytes(32).toString('base64url');
  const expiresAt = new Date(options.now.getTime() + options.ttlHours * 3_600_000);
  const [row] = await ex
    .insert(sessions)
    .values({
      userId,
      tokenHash: hashToken(token),
      csrfToken,
      createdAt: options.now,
      expiresAt,
      userAgent: options.origin?.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
      address: options.origin?.address ?? null,
      lastSeenAt: options.now,
      authenticatedAt: options.now,
    })
    .returning({ id: sessions.id });
  return { id: row!.id, token, csrfToken, expiresAt };
}

/**
 * Whether a sign-in comes from a device new to the account: the account has signed in before, but
 * never with this User-Agent. Such a sign-in is announced to the owner by email. An account's very
 * first sign-in (created by an admin or the CLI) has nothing to compare with and is not announced.
 */
export async function isNewDevice(ex: Executor, userId: string, origin: SessionOrigin): Promise<boolean> {
  const userAgent = origin.userAgent?.slice(0, USER_AGENT_MAX) ?? null;
  const [row] = await ex
    .select({
      earlier: sql<number>`count(*)::int`,
      same: sql<number>`count(*) FILTER (WHERE ${userAgent === null ? sql`${sessions.userAgent} IS NULL` : sql`${sessions.userAgent} = ${userAgent}`})::int`,
    })
    .from(sessions)
    .where(eq(sessions.userId, userId));
  return Number(row?.earlier ?? 0) > 0 && Number(row?.same ?? 0) === 0;
}

/** Ends a session (logout). Revoking an already revoked session changes nothing. */
export async function revokeSession(ex: Executor, sessionId: string, now: Date): Promise<void> {
  await ex
    .update(sessions)
    .set({ revokedAt: now })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)));
}

/** Ends one of the owner's sessions; someone else's is `not_found`, like one that does not exist. */
export async function revokeOwnSession(ex: Executor, userId: string, sessionId: string, now: Date): Promise<void> {
  const [row] = await ex
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId)));
  if (!row) throw new DomainError('not_found', 'no such session');
  await revokeSession(ex, sessionId, now);
}

/** Ends every session of the account, except `keep` when given; returns how many ended. */
export async function revokeAllSessions(ex: Executor, userId: string, now: Date, keep?: string): Promise<number> {
  const ended = await ex
    .update(sessions)
    .set({ revokedAt: now })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), keep ? ne(sessions.id, keep) : undefined))
    .returning({ id: sessions.id });
  return ended.length;
}

/** The password (and second factor) were given again in this session: it counts as a recent sign-in. */
export async function markReauthenticated(ex: Executor, sessionId: string, now: Date): Promise<void> {
  await ex.update(sessions).set({ authenticatedAt: now }).where(eq(sessions.id, sessionId));
}

export interface ActiveSession {
  id: string;
  userAgent: string | null;
  address: string | null;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

/** The account's sessions still in force, newest first. */
export async function listActiveSessions(ex: Executor, userId: string, now: Date): Promise<ActiveSession[]> {
  const found = await ex
    .select()
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, now)))
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(200);
  return found.map((row) => ({
    id: row.id,
    userAgent: row.userAgent,
    address: row.address,
    createdAt: new Date(row.createdAt),
    lastSeenAt: new Date(row.lastSeenAt ?? row.createdAt),
    expiresAt: new Date(row.expiresAt),
  }));
}

/** last_seen_at is a hint for the owner, not an audit trail: written at most once a minute. */
export const LAST_SEEN_GRANULARITY_MS = 60_000;

export async function touchSession(ex: Executor, sessionId: string, now: Date): Promise<void> {
  await ex.execute(
    sql`UPDATE sessions SET last_seen_at = ${now}
        WHERE id = ${sessionId} AND (last_seen_at IS NULL OR last_seen_at <= ${new Date(now.getTime() - LAST_SEEN_GRANULARITY_MS)})`,
  );
}
