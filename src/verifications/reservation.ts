import { sql } from 'drizzle-orm';
import { publish, publishSoon } from '../events/bus.ts';
import { pgConstraint, pgErrorCode, rows, type Database, type PreparedStatement, type Tx } from '../db/database.ts';
import type { NumberOptions } from '../providers/provider.ts';
import { DomainError } from '../errors.ts';
import { LedgerError } from '../ledger/errors.ts';
import { viewFrom, type VerificationView } from './resource.ts';
import type { Actor, VerificationState } from './schema.ts';
import type { VerificationRow } from './lifecycle.ts';

/**
 * The purchase's hot path as one statement per phase (migrations/0018_purchase_functions.sql): the
 * reservation (replay or a new pending verification with its hold and audit event) and the common
 * outcome (pending → waiting). Each is a prepared statement calling a server-side function, so a
 * purchase costs two round trips to the database besides the upstream call, and no ORM work. The
 * rules live in the functions, beside the ledger's constraints and triggers, which still decide.
 */

export interface ReservationRequest {
  /** The new verification's id (used only when nothing is stored for the key yet). */
  id: string;
  userId: string;
  idempotencyKey: string;
  fingerprint: string;
  /** The provider the offer is priced with (and first asked); null when nobody sells it. */
  provider: string | null;
  /** Our price when several providers stand behind the offer (routing); null: the provider's own row's. */
  priceMinor: number | null;
  service: string;
  country: string;
  maxPriceMinor: number | null;
  currency: string;
  now: Date;
  expiresAt: Date;
  purchaseUntil: Date;
  maxActive: number;
  perMinute: number;
  /** The upstream's breaker is open: refuse (after a replay, which needs no upstream). */
  breakerOpen: boolean;
  /** Seconds a customer is told to wait when the breaker is open. */
  breakerRetrySeconds: number;
  /** Area codes, carriers, voice (canonical; null for a plain number), stored on the verification. */
  options: NumberOptions | null;
  /** What the options cost at `provider` (part of its price cap; priced with the offer's margin by the function when surchargePriceMinor is null). */
  surchargeCostMinor: number;
  /** The customer's price for the options when several providers stand behind the offer (routedOptionSurcharge); null: the function prices this provider's. */
  surchargePriceMinor: number | null;
}

export type Reservation = { kind: 'reserved'; row: VerificationRow } | { kind: 'existing'; row: VerificationRow } | { kind: 'raced' };

const RESERVE: PreparedStatement = {
  name: 'verification_reserve_purchase_v4',
  text: 'SELECT * FROM verification_reserve_purchase($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)',
};

const ASSIGN: PreparedStatement = {
  name: 'verification_assign_number_v1',
  text: 'SELECT * FROM verification_assign_number($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
};

/**
 * Phase 1 in one statement. Refusals are DomainErrors (nothing written); a lost race on the key is
 * `raced`. Inside a caller's transaction (a bulk purchase reserves its whole set in one) the same
 * function runs as a plain statement of that transaction.
 */
export async function reservePurchase(database: Database, r: ReservationRequest, within?: Tx): Promise<Reservation> {
  let raw: RawVerification[];
  const values = [
    r.id,
    r.userId,
    r.idempotencyKey,
    r.fingerprint,
    r.provider,
    r.service,
    r.country,
    r.maxPriceMinor,
    r.currency,
    r.now,
    r.expiresAt,
    r.purchaseUntil,
    r.maxActive,
    r.perMinute,
    r.breakerOpen,
    r.options === null ? null : JSON.stringify(r.options),
    r.surchargeCostMinor,
    r.options?.capability === 'voice',
    r.priceMinor,
    r.surchargePriceMinor,
  ];
  try {
    raw = within
      ? await rows<RawVerification>(within, sql`SELECT * FROM verification_reserve_purchase(${sql.join(values.map((v) => sql`${v}`), sql`, `)})`)
      : await database.prepared<RawVerification>(RESERVE, values);
  } catch (error) {
    // Two identical requests racing past the lock (other processes): the loser sees the winner.
    if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_idempotency') return { kind: 'raced' };
    throw refusal(error, r);
  }
  const row = rowOf(raw[0]!);
  if (row.id !== r.id) return { kind: 'existing', row };
  // The wallet moved (a hold): inside a caller's transaction with it, else just after the commit.
  const walletMoved = { userId: r.userId, kind: 'wallet', id: r.userId } as const;
  if (within) await publish(within, walletMoved);
  else publishSoon(database, walletMoved);
  return { kind: 'reserved', row };
}

/** The answer a refusal raised by the reservation function gets; other errors pass through. */
function refusal(error: unknown, r: ReservationRequest): unknown {
  if (pgErrorCode(error) === '23514' && pgConstraint(error) === 'ledger_accounts_available_nonnegative') {
    return new DomainError('insufficient_funds', 'this number costs more than your available balance');
  }
  // (The function names the price when its own check sees the shortfall; the constraint above is the backstop.)
  // The database's own error, also when a query builder wrapped it (a statement inside a transaction).
  let raised: unknown = error;
  for (let depth = 0; depth < 5 && raised instanceof Error && !raised.message.startsWith('namaskah:'); depth++) raised = raised.cause;
  if (!(raised instanceof Error) || !raised.message.startsWith('namaskah:')) return error;
  const detail = String((raised as { detail?: unknown }).detail ?? '');
  switch (raised.message.slice('namaskah:'.length)) {
    case 'insufficient_funds':
      return new DomainError('insufficient_funds', `this number costs ${detail}; your available balance is too low`, { price_minor: Number(detail) });
    case 'unknown_service':
      return new DomainError('unknown_service', `no service "${r.service}" in ${r.country}`);
    case 'voice_not_offered':
      return new DomainError('option_not_offered', `"${r.service}" in ${r.country} is not offered with a voice call`, { option: 'capability' });
    case 'price_exceeds_max':
      return new DomainError('price_exceeds_max', `the price ${detail} is above max_price_minor ${r.maxPriceMinor}`, { price_minor: Number(detail) });
    case 'too_many_active': {
      // A place frees up at the latest when the soonest active verification reaches its deadline.
      const seconds = detail === '' ? 1 : Math.max(1, Math.ceil((Number(detail) - r.now.getTime()) / 1000));
      return new DomainError(
        'too_many_active',
        `at most ${r.maxActive} verifications may be active at once; one ends within ${seconds} s`,
        { retry_after_seconds: seconds },
        { 'Retry-After': String(seconds) },
      );
    }
    case 'rate_limited':
      return new DomainError('rate_limited', `at most ${r.perMinute} purchases per minute`, {}, { 'Retry-After': '60' });
    case 'provider_unavailable':
      return new DomainError('provider_unavailable', 'the number provider is unavailable right now; you were not charged', {}, {
        'Retry-After': String(r.breakerRetrySeconds),
      });
    case 'unknown_account':
      return new LedgerError('unknown_account', `no wallet for user ${r.userId}`);
    default:
      return error;
  }
}

export interface NumberAssignment {
  id: string;
  providerOrderId: string;
  phoneNumber: string;
  endsAt: Date | null;
  now: Date;
  ttlSeconds: number;
  pollIntervalMs: number;
  responseStatus: number;
  actor: Actor;
  reason: string;
}

/**
 * Phase 3's common case in one statement: pending → waiting. Undefined when the function left the
 * decision to the general path (lifecycle.ts assignNumber), having written nothing.
 */
export async function assignPurchasedNumber(database: Database, a: NumberAssignment): Promise<VerificationRow | undefined> {
  let raw: RawVerification[];
  try {
    raw = await database.prepared<RawVerification>(ASSIGN, [
      a.id,
      a.providerOrderId,
      a.phoneNumber,
      a.endsAt,
      a.now,
      a.ttlSeconds,
      a.pollIntervalMs,
      a.responseStatus,
      a.actor,
      a.reason,
    ]);
  } catch (error) {
    // Another purchase took the same order id at the same moment: the general path decides.
    if (pgErrorCode(error) === '23505' && pgConstraint(error) === 'verifications_provider_order') return undefined;
    throw error;
  }
  if (!raw[0]) return undefined;
  const row = rowOf(raw[0]);
  publishSoon(database, { userId: row.userId, kind: 'verification', id: row.id });
  return row;
}

/**
 * The view of a purchase that went through both fast statements: nothing else can have touched it
 * (the assignment function checks its trail is the reservation's one event), so the answer is built
 * from what the writes returned instead of reading messages and events back.
 */
export function freshPurchaseView(row: VerificationRow, assignedAt: Date, actor: Actor, reason: string): VerificationView {
  return viewFrom(
    row,
    [],
    [
      { from: null, to: 'pending', actor: 'customer', reason: 'purchase requested', at: row.createdAt.toISOString() },
      { from: 'pending', to: row.state, actor, reason, at: assignedAt.toISOString() },
    ],
  );
}

/** A verifications row as the functions return it (snake_case, int8 as numbers, Dates). */
interface RawVerification {
  id: string;
  user_id: string;
  provider: string;
  service: string;
  country: string;
  state: VerificationState;
  price_minor: number;
  max_cost_minor: number;
  currency: string;
  idempotency_key: string;
  request_fingerprint: string;
  hold_id: string;
  phone_number: string | null;
  provider_order_id: string | null;
  code: string | null;
  created_at: Date | string;
  updated_at: Date | string;
  expires_at: Date | string;
  resolved_at: Date | string | null;
  purchase_until: Date | string | null;
  response_status: number | null;
  response_code: string | null;
  failure_reason: string | null;
  next_check_at: Date | string | null;
  lease_owner: string | null;
  lease_until: Date | string | null;
  check_failures: number;
  upstream_status: VerificationRow['upstreamStatus'];
  upstream_next_at: Date | string | null;
  upstream_attempts: number;
  upstream_alarm: VerificationRow['upstreamAlarm'];
  upstream_alarm_at: Date | string | null;
  number_options: NumberOptions | null;
  parent_id: string | null;
  own_order: boolean;
}

function rowOf(r: RawVerification): VerificationRow {
  return {
    id: r.id,
    userId: r.user_id,
    provider: r.provider,
    service: r.service,
    country: r.country,
    state: r.state,
    priceMinor: money(r.price_minor),
    maxCostMinor: money(r.max_cost_minor),
    currency: r.currency,
    idempotencyKey: r.idempotency_key,
    requestFingerprint: r.request_fingerprint,
    holdId: r.hold_id,
    phoneNumber: r.phone_number,
    providerOrderId: r.provider_order_id,
    code: r.code,
    createdAt: at(r.created_at),
    updatedAt: at(r.updated_at),
    expiresAt: at(r.expires_at),
    resolvedAt: atOrNull(r.resolved_at),
    purchaseUntil: atOrNull(r.purchase_until),
    responseStatus: r.response_status,
    responseCode: r.response_code,
    failureReason: r.failure_reason,
    nextCheckAt: atOrNull(r.next_check_at),
    leaseOwner: r.lease_owner,
    leaseUntil: atOrNull(r.lease_until),
    checkFailures: r.check_failures,
    upstreamStatus: r.upstream_status,
    upstreamNextAt: atOrNull(r.upstream_next_at),
    upstreamAttempts: r.upstream_attempts,
    upstreamAlarm: r.upstream_alarm,
    upstreamAlarmAt: atOrNull(r.upstream_alarm_at),
    numberOptions: r.number_options,
    parentId: r.parent_id,
    ownOrder: r.own_order,
  };
}

/** A timestamp as the drivers give it: a Date from a prepared statement, text inside a drizzle transaction. */
function at(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

function atOrNull(value: Date | string | null): Date | null {
  return value === null ? null : at(value);
}

function money(value: number | string): VerificationRow['priceMinor'] {
  return Number(value) as VerificationRow['priceMinor'];
}
