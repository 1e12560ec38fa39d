import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { apiKeys } from './schema.ts';
import { API_KEY_PREFIX, hashToken, newToken } from './tokens.ts';

/** Enough for every script a customer runs; bounded so a runaway loop cannot mint millions. */
export const MAX_ACTIVE_API_KEYS = 50;
/** Characters of the key kept in clear, to tell keys apart in lists. */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

function toApiKey(row: typeof apiKeys.$inferSelect): ApiKey {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    createdAt: new Date(row.createdAt),
    lastUsedAt: row.lastUsedAt ? new Date(row.lastUsedAt) : null,
    revokedAt: row.revokedAt ? new Date(row.revokedAt) : null,
  };
}

/** Creates a key; the full key is in the result and nowhere else, ever again. */
export async function createApiKey(
  ex: Executor,
  userId: string,
  name: string,
  now: Date,
): Promise<ApiKey & { key: string }> {
  const [count] = await ex
    .select({ n: sql<number>`count(*)::int` })
    .from(apiKeys)
    .where(and(eq(apiKeys.userId, userId), isNull(apiKeys.revokedAt)));
  if ((count?.n ?? 0) >= MAX_ACTIVE_API_KEYS) {
    throw new DomainError('conflict', `at most ${MAX_ACTIVE_API_KEYS} active API keys; revoke one first`);
  }
  const key = newToken(API_KEY_PREFIX);
  const [row] = await ex
    .insert(apiKeys)
    .values({ userId, name, prefix: key.slice(0, DISPLAY_PREFIX_LENGTH), keyHash: hashToken(key), createdAt: now })
    .returning();
  return { ...toApiKey(row!), key };
}

export async function listApiKeys(ex: Executor, userId: string): Promise<ApiKey[]> {
  const found = await ex
    .select()
    .from(apiKeys)
    .where(eq(apiKeys.userId, userId))
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id));
  return found.map(toApiKey);
}

/**
 * Revokes one of the user's keys. Someone else's key is `not_found`, exactly like a key that does
 * not exist; revoking twice is harmless.
 */
export async function revokeApiKey(ex: Executor, userId: string, keyId: string, now: Date): Promise<void> {
  const [row] = await ex
    .select({ id: apiKeys.id, revokedAt: apiKeys.revokedAt })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.userId, userId)));
  if (!row) throw new DomainError('not_found', 'no such API key');
  if (row.revokedAt) return;
  await ex.update(apiKeys).set({ revokedAt: now }).where(and(eq(apiKeys.id, keyId), isNull(apiKeys.revokedAt)));
}
