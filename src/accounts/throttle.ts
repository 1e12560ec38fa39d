import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import ipaddr from 'ipaddr.js';
import type { Config } from '../config.ts';
import { rows, type Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';

/**
 * Limits on credential operations (login, registration, API-key creation), per account and per
 * client address, counted in the database so that every API process shares them. They are checked
 * before any password hashing: a refused attempt costs one statement, never a scrypt run, so a spray
 * cannot turn the server's own hashing against its real users.
 *
 * Windows are fixed (aligned to the epoch): an attempt counts in the window that holds `now`, and a
 * refused caller is told when that window ends. Refused attempts count too, so hammering a limit
 * never earns a retry sooner.
 */
export type ThrottledAction = 'login' | 'register' | 'api_key' | 'password_reset' | 'email_verification';

export interface AttemptLimit {
  action: ThrottledAction;
  /** Whose attempts: one account (its email or id) or one client address. */
  scope: 'account' | 'address';
  subject: string;
  max: number;
  windowSeconds: number;
}

export interface CountedAttempt {
  limit: AttemptLimit;
  /** Attempts in the current window, this one included. */
  attempts: number;
  windowEnd: Date;
}

export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number; limit: AttemptLimit };

/** Pure: refused when any limit is over; the caller may retry when the last of those windows ends. */
export function throttleVerdict(counted: CountedAttempt[], now: Date): ThrottleVerdict {
  let refused: { retryAfterSeconds: number; limit: AttemptLimit } | undefined;
  for (const { limit, attempts, windowEnd } of counted) {
    if (attempts <= limit.max) continue;
    const retryAfterSeconds = Math.max(1, Math.ceil((windowEnd.getTime() - now.getTime()) / 1000));
    if (!refused || retryAfterSeconds > refused.retryAfterSeconds) refused = { retryAfterSeconds, limit };
  }
  return refused ? { allowed: false, ...refused } : { allowed: true };
}

/** The window that holds `now`, aligned to the epoch so that every process agrees on it. */
export function windowOf(now: Date, windowSeconds: number): { start: Date; end: Date } {
  const length = windowSeconds * 1000;
  const start = Math.floor(now.getTime() / length) * length;
  return { start: new Date(start), end: new Date(start + length) };
}

export function bucketOf(limit: Pick<AttemptLimit, 'action' | 'scope' | 'subject'>): string {
  const digest = createHash('sha256').update(limit.subject, 'utf8').digest('hex');
  return `${limit.action}:${limit.scope}:${digest}`;
}

/**
 * The address whose attempts are counted together: an IPv4 address (IPv4-mapped IPv6 included) as
 * is, an IPv6 address by its /64 network, since one subscriber usually holds a whole /64.
 */
export function clientAddressKey(ip: string): string {
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = ipaddr.process(ip);
  } catch {
    return ip;
  }
  if (address.kind() === 'ipv4') return address.toString();
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/64`).toString()}/64`;
}

const EXPIRED_ROWS_PRUNED_PER_CALL = 100;
const MAX_ATTEMPTS = 2_147_483_646;

/**
 * Counts one attempt against every limit and refuses it (429 `rate_limited` with Retry-After) when
 * any is over. Each statement commits on its own, outside any transaction: the count must stand
 * whatever happens to the attempt afterwards.
 */
export async function consumeAttempt(ex: Executor, limits: AttemptLimit[], now: Date): Promise<void> {
  const byBucket = new Map<string, AttemptLimit>();
  for (const limit of limits) byBucket.set(bucketOf(limit), limit);
  if (byBucket.size === 0) return;
  // One row per bucket and a fixed order: concurrent attempts lock the rows in the same order.
  const buckets = [...byBucket.keys()].sort();
  const values = buckets.map((bucket) => {
    const { start, end } = windowOf(now, byBucket.get(bucket)!.windowSeconds);
    return sql`(${bucket}, ${start}, ${end}, 1)`;
  });
  const counted = await rows<{ bucket: string; attempts: number; window_end: Date | string }>(
    ex,
    sql`INSERT INTO auth_attempts (bucket, window_start, window_end, attempts)
        VALUES ${sql.join(values, sql`, `)}
        ON CONFLICT (bucket, window_start)
        DO UPDATE SET attempts = LEAST(auth_attempts.attempts, ${MAX_ATTEMPTS}) + 1
        RETURNING bucket, attempts, window_end`,
  );
  await pruneExpiredAttempts(ex, now);
  const verdict = throttleVerdict(
    counted.map((row) => ({ limit: byBucket.get(row.bucket)!, attempts: Number(row.attempts), windowEnd: new Date(row.window_end) })),
    now,
  );
  if (verdict.allowed) return;
  const seconds = verdict.retryAfterSeconds;
  const whose = verdict.limit.scope === 'account' ? 'for this account' : 'from this address';
  throw new DomainError(
    'rate_limited',
    `too many ${ACTION_NAMES[verdict.limit.action]} ${whose}; retry in ${seconds} s`,
    { retry_after_seconds: seconds },
    { 'retry-after': String(seconds) },
  );
}

const ACTION_NAMES: Record<ThrottledAction, string> = {
  login: 'login attempts',
  register: 'registration attempts',
  api_key: 'new API keys',
  password_reset: 'password-reset requests',
  email_verification: 'verification emails',
};

/** Bounded, and skipping rows another process holds: pruning never makes an attempt wait. */
async function pruneExpiredAttempts(ex: Executor, now: Date): Promise<void> {
  await ex.execute(
    sql`DELETE FROM auth_attempts
        WHERE (bucket, window_start) IN (
          SELECT bucket, window_start FROM auth_attempts
          WHERE window_end < ${now}
          ORDER BY window_end
          LIMIT ${EXPIRED_ROWS_PRUNED_PER_CALL}
          FOR UPDATE SKIP LOCKED)`,
  );
}

type LimitSettings = Pick<
  Config,
  | 'LOGIN_ATTEMPTS_PER_MINUTE'
  | 'LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE'
  | 'REGISTRATIONS_PER_ADDRESS_PER_HOUR'
  | 'API_KEYS_CREATED_PER_HOUR'
  | 'API_KEYS_CREATED_PER_ADDRESS_PER_HOUR'
  | 'PASSWORD_RESETS_PER_ADDRESS_PER_HOUR'
>;

/**
 * An email can be registered once; more tries are a typo or a probe, never worth a setting. Bounded
 * so that registering one email from many addresses cannot buy unlimited hashing either.
 */
export const REGISTRATIONS_PER_EMAIL_PER_HOUR = 5;

/** Per account (the email, whether or not it exists, from every address together) and per address. */
export function loginLimits(config: LimitSettings, attempt: { email: string; address: string }): AttemptLimit[] {
  return [
    { action: 'login', scope: 'account', subject: attempt.email, max: config.LOGIN_ATTEMPTS_PER_MINUTE, windowSeconds: 60 },
    { action: 'login', scope: 'address', subject: attempt.address, max: config.LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE, windowSeconds: 60 },
  ];
}

export function registrationLimits(config: LimitSettings, attempt: { email: string; address: string }): AttemptLimit[] {
  return [
    { action: 'register', scope: 'account', subject: attempt.email, max: REGISTRATIONS_PER_EMAIL_PER_HOUR, windowSeconds: 3600 },
    { action: 'register', scope: 'address', subject: attempt.address, max: config.REGISTRATIONS_PER_ADDRESS_PER_HOUR, windowSeconds: 3600 },
  ];
}

export function apiKeyLimits(config: LimitSettings, attempt: { userId: string; address: string }): AttemptLimit[] {
  return [
    { action: 'api_key', scope: 'account', subject: attempt.userId, max: config.API_KEYS_CREATED_PER_HOUR, windowSeconds: 3600 },
    { action: 'api_key', scope: 'address', subject: attempt.address, max: config.API_KEYS_CREATED_PER_ADDRESS_PER_HOUR, windowSeconds: 3600 },
  ];
}

/** Mail sent on request (a reset link, a new verification link): enough for a person, useless for flooding an inbox. */
export const ACCOUNT_MAILS_PER_EMAIL_PER_HOUR = 5;

/**
 * Per email (whether or not it has an account: the refusal must not tell) and per address. A
 * reset request costs no hashing, but each one that matches sends an email.
 */
export function accountMailLimits(
  config: LimitSettings,
  attempt: { action: 'password_reset' | 'email_verification'; email: string; address: string },
): AttemptLimit[] {
  return [
    { action: attempt.action, scope: 'account', subject: attempt.email, max: ACCOUNT_MAILS_PER_EMAIL_PER_HOUR, windowSeconds: 3600 },
    { action: attempt.action, scope: 'address', subject: attempt.address, max: config.PASSWORD_RESETS_PER_ADDRESS_PER_HOUR, windowSeconds: 3600 },
  ];
}
