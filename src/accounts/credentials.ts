import { sql } from 'drizzle-orm';
import { firstRow, type Executor } from '../db/database.ts';
import { touchSession } from './sessions.ts';
import { API_KEY_PREFIX, hashToken, SESSION_TOKEN_PREFIX } from './tokens.ts';
import type { Role } from './users.ts';

/** Who is making a request, whatever credential they used. */
export interface Principal {
  userId: string;
  role: Role;
  /** `ops`: the local operator token a running embedded server hands to the CLI (see docs/configuration.md). */
  via: 'session' | 'api_key' | 'ops';
  /** The user signs in with a second factor (TOTP). */
  twoFactor?: boolean;
}

export interface Credential {
  principal: Principal;
  /** Set for sessions: the row to revoke on logout, and the CSRF token cookie-authenticated writes must echo. */
  sessionId?: string;
  csrfToken?: string;
  /** Sessions: when the password was last given in them (a "recent sign-in" for sensitive actions). */
  authenticatedAt?: Date;
  /** Sessions: when it ends on its own. */
  expiresAt?: Date;
  /** API keys: the key's row, whose last_used_at is kept. */
  apiKeyId?: string;
  /** When last_used_at / last_seen_at was last written (as far as this process knows). */
  lastTouchedAt?: Date;
}

/** last_used_at and last_seen_at are hints for the customer, not an audit trail: written at most once a minute. */
const LAST_USED_GRANULARITY_MS = 60_000;

/** Resolves a session token or API key to its principal; undefined when unknown, expired or revoked. */
export async function resolveToken(ex: Executor, token: string, now: Date): Promise<Credential | undefined> {
  const hash = hashToken(token);
  if (token.startsWith(SESSION_TOKEN_PREFIX)) {
    const row = await firstRow<{
      id: string;
      user_id: string;
      role: Role;
      csrf_token: string;
      authenticated_at: Date | string;
      last_seen_at: Date | string | null;
      two_factor: boolean;
      expires_at: Date | string;
    }>(
      ex,
      sql`SELECT s.id, s.user_id, u.role, s.csrf_token, s.authenticated_at, s.last_seen_at, u.totp_enabled_at IS NOT NULL AS two_factor, s.expires_at
          FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.token_hash = ${hash} AND s.revoked_at IS NULL AND s.expires_at > ${now}`,
    );
    if (!row) return undefined;
    const credential: Credential = {
      principal: { userId: row.user_id, role: row.role, via: 'session', twoFactor: row.two_factor },
      sessionId: row.id,
      csrfToken: row.csrf_token,
      authenticatedAt: new Date(row.authenticated_at),
      expiresAt: new Date(row.expires_at),
      lastTouchedAt: row.last_seen_at ? new Date(row.last_seen_at) : undefined,
    };
    await touchCredential(ex, credential, now);
    return credential;
  }
  if (token.startsWith(API_KEY_PREFIX)) {
    const row = await firstRow<{ id: string; user_id: string; role: Role; last_used_at: Date | null; two_factor: boolean }>(
      ex,
      sql`SELECT k.id, k.user_id, u.role, k.last_used_at, u.totp_enabled_at IS NOT NULL AS two_factor
          FROM api_keys k JOIN users u ON u.id = k.user_id
          WHERE k.key_hash = ${hash} AND k.revoked_at IS NULL`,
    );
    if (!row) return undefined;
    const credential: Credential = {
      principal: { userId: row.user_id, role: row.role, via: 'api_key', twoFactor: row.two_factor },
      apiKeyId: row.id,
      lastTouchedAt: row.last_used_at ? new Date(row.last_used_at) : undefined,
    };
    await touchCredential(ex, credential, now);
    return credential;
  }
  return undefined;
}

/** Writes last_seen_at / last_used_at when the last write is a minute old (or unknown); notes it on the credential. */
export async function touchCredential(ex: Executor, credential: Credential, now: Date): Promise<void> {
  const last = credential.lastTouchedAt?.getTime();
  if (last !== undefined && now.getTime() - last < LAST_USED_GRANULARITY_MS) return;
  credential.lastTouchedAt = now;
  if (credential.sessionId) await touchSession(ex, credential.sessionId, now);
  else if (credential.apiKeyId) await ex.execute(sql`UPDATE api_keys SET last_used_at = ${now} WHERE id = ${credential.apiKeyId}`);
}
