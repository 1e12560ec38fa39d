import { bigint, bigserial, boolean, integer, jsonb, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { timestamptz as at } from '../db/columns.ts';

/** Accounts, credentials and the admin audit log; only src/accounts writes them. */

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  email: text('email').notNull(),
  passwordHash: text('password_hash').notNull(),
  role: text('role', { enum: ['customer', 'admin'] }).notNull().default('customer'),
  createdAt: at('created_at').notNull(),
  emailVerifiedAt: at('email_verified_at'),
  totpPendingSecret: text('totp_pending_secret'),
  totpSecret: text('totp_secret'),
  totpEnabledAt: at('totp_enabled_at'),
  totpLastStep: bigint('totp_last_step', { mode: 'number' }),
  passwordChangedAt: at('password_changed_at'),
  deletedAt: at('deleted_at'),
});

export const sessions = pgTable('sessions', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull(),
  tokenHash: text('token_hash').notNull(),
  csrfToken: text('csrf_token').notNull(),
  createdAt: at('created_at').notNull(),
  expiresAt: at('expires_at').notNull(),
  revokedAt: at('revoked_at'),
  userAgent: text('user_agent'),
  address: text('address'),
  lastSeenAt: at('last_seen_at'),
  // The default is for the previous release's inserts during a rolling upgrade; this one always sets it.
  authenticatedAt: at('authenticated_at').notNull().defaultNow(),
});

export const apiKeys = pgTable('api_keys', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull(),
  name: text('name').notNull(),
  prefix: text('prefix').notNull(),
  keyHash: text('key_hash').notNull(),
  createdAt: at('created_at').notNull(),
  lastUsedAt: at('last_used_at'),
  revokedAt: at('revoked_at'),
});

export const auditLog = pgTable('audit_log', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  actorId: uuid('actor_id'),
  actor: text('actor').notNull(),
  action: text('action').notNull(),
  subjectId: uuid('subject_id'),
  detail: jsonb('detail').notNull().default({}),
  createdAt: at('created_at').notNull(),
});

/** Credential attempts counted per window (src/accounts/throttle.ts); migrations/0005_auth_attempts.sql. */
export const authAttempts = pgTable(
  'auth_attempts',
  {
    bucket: text('bucket').notNull(),
    windowStart: at('window_start').notNull(),
    windowEnd: at('window_end').notNull(),
    attempts: integer('attempts').notNull(),
  },
  (table) => [primaryKey({ columns: [table.bucket, table.windowStart] })],
);

/** Single-use links sent by email (src/accounts/account-tokens.ts); migrations/0007_accounts_email.sql. */
export const accountTokens = pgTable('account_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull(),
  purpose: text('purpose', { enum: ['verify_email', 'reset_password'] }).notNull(),
  tokenHash: text('token_hash').notNull(),
  email: text('email').notNull(),
  createdAt: at('created_at').notNull(),
  expiresAt: at('expires_at').notNull(),
  usedAt: at('used_at'),
});

/** Two-factor recovery codes (src/accounts/two-factor.ts). */
export const recoveryCodes = pgTable(
  'recovery_codes',
  {
    userId: uuid('user_id').notNull(),
    codeHash: text('code_hash').notNull(),
    createdAt: at('created_at').notNull(),
    usedAt: at('used_at'),
  },
  (table) => [primaryKey({ columns: [table.userId, table.codeHash] })],
);

/**
 * A customer's presets and favourites for the purchase form (src/accounts/presets.ts): kept
 * server-side so they follow the customer across browsers. Area code and carrier are opaque.
 */
export const purchasePresets = pgTable('purchase_presets', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull(),
  name: text('name').notNull(),
  service: text('service').notNull(),
  country: text('country').notNull(),
  areaCode: text('area_code'),
  carrier: text('carrier'),
  favourite: boolean('favourite').notNull().default(false),
  createdAt: at('created_at').notNull(),
});

/**
 * Tables whose rows hold secrets or what protects them (password hashes, token and key hashes,
 * CSRF tokens, hashed emails of attempts): a statement on one is never logged with its parameters.
 */
export const CREDENTIAL_TABLES = ['users', 'sessions', 'api_keys', 'auth_attempts', 'account_tokens', 'recovery_codes', 'mail_outbox'] as const;
