import { and, eq, isNull, sql } from 'drizzle-orm';
import { rows, type Database, type Executor } from '../db/database.ts';
import { pageOf, type Keyset } from '../db/keyset.ts';
import { DomainError } from '../errors.ts';
import { openWallet } from '../ledger/ledger.ts';
import { checkPasswordPolicy } from './password-policy.ts';
import { burnPasswordCheck, scryptHasher, type PasswordHasher } from './passwords.ts';
import { isValidEmail, normalizeEmail } from './policy.ts';
import { recordAudit, type AuditEntry } from './audit.ts';
import { users } from './schema.ts';

export type Role = 'customer' | 'admin';

export interface User {
  id: string;
  email: string;
  role: Role;
  createdAt: Date;
  emailVerifiedAt: Date | null;
  /** Two-factor sign-in (TOTP) is on. */
  twoFactor: boolean;
}

export { isValidEmail, normalizeEmail };

function toUser(row: typeof users.$inferSelect): User {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    createdAt: new Date(row.createdAt),
    emailVerifiedAt: row.emailVerifiedAt ? new Date(row.emailVerifiedAt) : null,
    twoFactor: row.totpEnabledAt !== null,
  };
}

export interface NewUser {
  email: string;
  password: string;
  role?: Role;
}

/**
 * Creates the user and their wallet in one transaction: there is never a user without a wallet.
 * A taken email is `email_taken` (409). With `audit`, the admin action that created the account is
 * recorded in the same transaction.
 */
export async function createUser(
  database: Database,
  input: NewUser,
  options: {
    currency: string;
    now: Date;
    audit?: Omit<AuditEntry, 'subjectId' | 'now' | 'action' | 'detail'>;
    passwords?: PasswordHasher;
  },
): Promise<User> {
  const email = normalizeEmail(input.email);
  if (!isValidEmail(email)) throw new DomainError('validation_failed', 'email is not a valid address');
  await checkPasswordPolicy(input.password, email);
  // The expensive hash runs before the transaction, so no row lock waits on it.
  const passwordHash = await (options.passwords ?? scryptHasher).hash(input.password);
  return database.transaction(async (tx) => {
    const [row] = await tx
      .insert(users)
      .values({ email, passwordHash, role: input.role ?? 'customer', createdAt: options.now })
      .onConflictDoNothing({ target: users.email })
      .returning();
    if (!row) throw new DomainError('email_taken', 'an account with this email already exists');
    await openWallet(tx, row.id, options.currency, options.now);
    if (options.audit) {
      await recordAudit(tx, {
        ...options.audit,
        action: 'user.create',
        subjectId: row.id,
        detail: { email, role: row.role },
        now: options.now,
      });
    }
    return toUser(row);
  });
}

export async function findUser(ex: Executor, id: string): Promise<User | undefined> {
  const [row] = await ex.select().from(users).where(and(eq(users.id, id), isNull(users.deletedAt))).limit(1);
  return row ? toUser(row) : undefined;
}

export async function findUserByEmail(ex: Executor, email: string): Promise<User | undefined> {
  const [row] = await ex.select().from(users).where(eq(users.email, normalizeEmail(email))).limit(1);
  return row ? toUser(row) : undefined;
}

/**
 * The user whose email and password these are. Wrong password and unknown email give the same
 * answer after the same amount of work.
 */
export async function authenticateUser(
  ex: Executor,
  email: string,
  password: string,
  passwords: PasswordHasher = scryptHasher,
): Promise<User> {
  const [row] = await ex.select().from(users).where(eq(users.email, normalizeEmail(email))).limit(1);
  if (!row || row.deletedAt) {
    await burnPasswordCheck(password, passwords);
  } else if (await passwords.verify(password, row.passwordHash)) {
    return toUser(row);
  }
  throw new DomainError('unauthenticated', 'email or password is wrong');
}

/** The stored password hash, for checks of the current password by a signed-in user. */
export async function checkCurrentPassword(
  ex: Executor,
  userId: string,
  password: string,
  passwords: PasswordHasher,
  field = 'password',
): Promise<void> {
  const [row] = await ex.select({ hash: users.passwordHash }).from(users).where(eq(users.id, userId)).limit(1);
  if (!row || !(await passwords.verify(password, row.hash))) {
    // 400, not 401: the session is fine, only the proof is wrong.
    throw new DomainError('validation_failed', `the ${field === 'password' ? 'password' : 'current password'} is wrong`, { field });
  }
}

export async function setRole(ex: Executor, userId: string, role: Role): Promise<void> {
  await ex.update(users).set({ role }).where(eq(users.id, userId));
}

export interface UserWithWallet extends User {
  balanceMinor: number;
  heldMinor: number;
  availableMinor: number;
}

export interface UserPage {
  items: UserWithWallet[];
  nextCursor: string | null;
}

/** Users with their wallet balances, newest first; `query` matches part of the email. */
export async function listUsers(
  ex: Executor,
  options: { query?: string; after?: Keyset; limit: number },
): Promise<UserPage> {
  const { after } = options;
  const needle = options.query ? normalizeEmail(options.query).replace(/[\\%_]/g, (c) => `\\${c}`) : '';
  const match = needle ? sql`AND u.email LIKE ${`%${needle}%`} ESCAPE '\\'` : sql``;
  const older = after ? sql`AND (u.created_at, u.id) < (${after.at}, ${after.id}::uuid)` : sql``;
  const found = await rows<{
    id: string;
    email: string;
    role: Role;
    created_at: Date;
    email_verified_at: Date | null;
    totp_enabled_at: Date | null;
    posted_minor: number | null;
    held_minor: number | null;
  }>(
    ex,
    sql`SELECT u.id, u.email, u.role, u.created_at, u.email_verified_at, u.totp_enabled_at, a.posted_minor, a.held_minor
        FROM users u LEFT JOIN ledger_accounts a ON a.user_id = u.id
        WHERE true ${match} ${older}
        ORDER BY u.created_at DESC, u.id DESC
        LIMIT ${options.limit + 1}`,
  );
  const page = pageOf(found, options.limit, (r) => ({ at: new Date(r.created_at), id: r.id }));
  const items = page.items.map((r) => {
    const balance = Number(r.posted_minor ?? 0);
    const held = Number(r.held_minor ?? 0);
    return {
      id: r.id,
      email: r.email,
      role: r.role,
      createdAt: new Date(r.created_at),
      emailVerifiedAt: r.email_verified_at ? new Date(r.email_verified_at) : null,
      twoFactor: r.totp_enabled_at !== null,
      balanceMinor: balance,
      heldMinor: held,
      availableMinor: balance - held,
    };
  });
  return { items, nextCursor: page.nextCursor };
}
