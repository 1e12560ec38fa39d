import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { ConfigError } from '../config.ts';
import { firstRow, withAdvisoryLock, type Database } from '../db/database.ts';
import { DomainError, isDomainError } from '../errors.ts';
import { creditWallet, walletOf, type Wallet } from '../ledger/ledger.ts';
import { recordAudit } from './audit.ts';
import { generatePassword } from './passwords.ts';
import { IDEMPOTENCY_KEY_PATTERN, IDEMPOTENCY_KEY_RULE, MAX_CREDIT_MINOR, MAX_REASON_LENGTH } from './policy.ts';
import { createUser, findUser, findUserByEmail, setRole, type User } from './users.ts';

/** The account created on first start when no admin is configured and none exists. */
export const DEFAULT_ADMIN_EMAIL = 'admin@namaskah.local';
const FIRST_ADMIN_LOCK_KEY = 727_002;

export interface FirstAdminOptions {
  email?: string;
  password?: string;
  currency: string;
  now: Date;
  logger: Logger;
  /** Where a generated password is shown, once (stdout); it never goes to the log. */
  print: (text: string) => void;
  /** PostgreSQL: serialises concurrent starts of several processes. */
  databaseUrl?: string;
}

/**
 * Makes sure an admin exists and returns its id: ADMIN_EMAIL (created with ADMIN_PASSWORD, or with a
 * generated password shown once; promoted if it is an existing customer), or else any existing
 * admin, or else a new admin@namaskah.local with a generated password shown once. ADMIN_PASSWORD is
 * only used to create the account; it never overwrites the password of an existing one.
 */
export async function ensureFirstAdmin(database: Database, options: FirstAdminOptions): Promise<{ adminId: string; created: boolean }> {
  if (options.password && !options.email) throw new ConfigError('ADMIN_PASSWORD is set but ADMIN_EMAIL is not');
  return withAdvisoryLock(options.databaseUrl, FIRST_ADMIN_LOCK_KEY, async () => {
    if (options.email) {
      const existing = await findUserByEmail(database.db, options.email);
      if (existing) {
        if (existing.role !== 'admin') {
          await database.transaction(async (tx) => {
            await setRole(tx, existing.id, 'admin');
            await recordAudit(tx, {
              actorId: null,
              actor: 'system',
              action: 'user.promote',
              subjectId: existing.id,
              detail: { reason: 'ADMIN_EMAIL', role: 'admin' },
              now: options.now,
            });
          });
          options.logger.warn({ email: existing.email }, 'ADMIN_EMAIL names an existing customer: promoted to admin');
        }
        return { adminId: existing.id, created: false };
      }
      const admin = await createAdmin(database, options.email, options.password, options);
      return { adminId: admin.id, created: true };
    }
    const existing = await firstRow<{ id: string }>(
      database.db,
      sql`SELECT id FROM users WHERE role = 'admin' ORDER BY created_at, id LIMIT 1`,
    );
    if (existing) return { adminId: existing.id, created: false };
    const admin = await createAdmin(database, DEFAULT_ADMIN_EMAIL, undefined, options);
    return { adminId: admin.id, created: true };
  });
}

async function createAdmin(database: Database, email: string, password: string | undefined, options: FirstAdminOptions): Promise<User> {
  const chosen = password ?? generatePassword();
  let admin: User;
  try {
    admin = await createUser(
      database,
      { email, password: chosen, role: 'admin' },
      { currency: options.currency, now: options.now, audit: { actorId: null, actor: 'system' } },
    );
  } catch (error) {
    if (isDomainError(error) && error.code === 'validation_failed') {
      throw new ConfigError(`the first admin cannot be created: ${error.message} (ADMIN_EMAIL / ADMIN_PASSWORD)`);
    }
    throw error;
  }
  if (password) {
    options.logger.info({ email: admin.email }, 'created the first admin from ADMIN_EMAIL / ADMIN_PASSWORD');
  } else {
    options.print(
      [
        '',
        'Created the first admin account:',
        `  email:    ${admin.email}`,
        `  password: ${chosen}`,
        'This password is shown only this once. Log in and keep it somewhere safe.',
        '',
      ].join('\n'),
    );
    options.logger.info({ email: admin.email }, 'created the first admin with a generated password (printed once on stdout)');
  }
  return admin;
}

/** Who credits: an admin user over HTTP, or the operator at the machine (CLI, local ops token). */
export type CreditActor = { kind: 'admin'; adminId: string } | { kind: 'operator' };


export interface WalletCreditRequest {
  actor: CreditActor;
  userId: string;
  /** Positive: a top-up; negative: an adjustment down. */
  amountMinor: number;
  reason: string;
  idempotencyKey?: string;
  now: Date;
}

export interface WalletCreditResult {
  transferId: string;
  replayed: boolean;
  wallet: Wallet;
}

/**
 * Admin top-up or adjustment. The ledger transfer and its audit row commit together. An
 * idempotency key is scoped to whoever sent it, so two admins can never collide on a key.
 */
export async function creditUserWallet(database: Database, request: WalletCreditRequest): Promise<WalletCreditResult> {
  const amount = request.amountMinor;
  if (!Number.isSafeInteger(amount) || amount === 0 || Math.abs(amount) > MAX_CREDIT_MINOR) {
    throw new DomainError('validation_failed', `amount must be a non-zero integer of minor units, at most ${MAX_CREDIT_MINOR} in size`);
  }
  const reason = request.reason.trim();
  if (reason.length === 0 || reason.length > MAX_REASON_LENGTH) {
    throw new DomainError('validation_failed', `reason must be 1-${MAX_REASON_LENGTH} characters`);
  }
  if (request.idempotencyKey !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(request.idempotencyKey)) {
    throw new DomainError('validation_failed', `idempotency key must be ${IDEMPOTENCY_KEY_RULE}`);
  }
  const actorId = request.actor.kind === 'admin' ? request.actor.adminId : null;
  const scope = request.actor.kind === 'admin' ? `admin-credit:${request.actor.adminId}` : 'cli-credit';
  const key = request.idempotencyKey === undefined ? null : `${scope}:${request.idempotencyKey}`;
  const kind = amount > 0 ? 'topup' : 'adjustment';

  return database.transaction(async (tx) => {
    const user = await findUser(tx, request.userId);
    if (!user) throw new DomainError('not_found', 'no such user');
    const { transfer, replayed } = await creditWallet(tx, {
      userId: user.id,
      amountMinor: amount,
      kind,
      actor: 'admin',
      actorId,
      reason,
      idempotencyKey: key,
      now: request.now,
    });
    if (!replayed) {
      await recordAudit(tx, {
        actorId,
        actor: request.actor.kind === 'admin' ? 'admin' : 'cli',
        action: 'wallet.credit',
        subjectId: user.id,
        detail: { transfer_id: transfer.id, amount_minor: amount, kind, reason, idempotency_key: request.idempotencyKey ?? null },
        now: request.now,
      });
    }
    return { transferId: transfer.id, replayed, wallet: await walletOf(tx, user.id) };
  });
}
