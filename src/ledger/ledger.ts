import { sql } from 'drizzle-orm';
import { firstRow, pgConstraint, pgErrorCode, rows, type Executor } from '../db/database.ts';
import { pageOf, type Keyset } from '../db/keyset.ts';
import { publish, publishMany } from '../events/bus.ts';
import { toMinor, type Minor } from '../money.ts';
import { recordOutboundEvent } from '../outbound-webhooks/outbox.ts';
import { LedgerError } from './errors.ts';
import { historyItemResource, type HistoryItem, type HistoryType, type Wallet } from './resource.ts';

export type { HistoryItem, HistoryType, Wallet };

/**
 * The only module that writes the ledger tables. Every function takes the caller's executor so a
 * money movement commits or rolls back together with the state change it belongs to. The rules
 * (no overdraft, one resolution per hold, immutable journal, balances cached by triggers) are
 * enforced by the database; this module turns their violations into LedgerErrors. Every movement
 * of a wallet also announces itself to the wallet's owner (walletMoved), in the same transaction.
 */

export type SystemAccount = 'funding' | 'revenue' | 'adjustments';
export type HoldOutcome = 'posted' | 'voided' | 'expired';
export type TransferKind = 'topup' | 'adjustment' | 'verification_charge';

export interface Transfer {
  id: string;
  debitAccountId: string;
  creditAccountId: string;
  amountMinor: Minor;
  kind: TransferKind;
  idempotencyKey: string | null;
  holdId: string | null;
  verificationId: string | null;
  actor: string;
  reason: string | null;
  createdAt: Date;
}

export interface Hold {
  id: string;
  accountId: string;
  /** The wallet's owner (null for a hold on a system account). */
  userId: string | null;
  amountMinor: Minor;
  verificationId: string | null;
  expiresAt: Date;
  createdAt: Date;
  outcome: HoldOutcome | null;
}

interface TransferRow {
  id: string;
  debit_account_id: string;
  credit_account_id: string;
  amount_minor: number | string;
  kind: TransferKind;
  idempotency_key: string | null;
  hold_id: string | null;
  verification_id: string | null;
  actor: string;
  reason: string | null;
  created_at: Date;
}

function toTransfer(row: TransferRow): Transfer {
  return {
    id: row.id,
    debitAccountId: row.debit_account_id,
    creditAccountId: row.credit_account_id,
    amountMinor: toMinor(row.amount_minor),
    kind: row.kind,
    idempotencyKey: row.idempotency_key,
    holdId: row.hold_id,
    verificationId: row.verification_id,
    actor: row.actor,
    reason: row.reason,
    createdAt: new Date(row.created_at),
  };
}

function assertPositive(amount: number): void {
  if (!Number.isSafeInteger(amount) || amount <= 0) {
    throw new RangeError(`amount must be a positive integer of minor units, got ${amount}`);
  }
}

/** Translate the database's refusal into the ledger's vocabulary. */
function translate(error: unknown): never {
  const code = pgErrorCode(error);
  const constraint = pgConstraint(error);
  if (code === '23514' && constraint === 'ledger_accounts_available_nonnegative') {
    throw new LedgerError('insufficient_funds', 'insufficient available balance');
  }
  if (code === '23505' && constraint === 'ledger_hold_resolutions_pkey') {
    throw new LedgerError('hold_already_resolved', 'hold is already resolved');
  }
  throw error;
}

/**
 * The one place a wallet's live `wallet` event is published: every movement (credit, hold, capture,
 * release, correction) calls it with the transaction that makes the movement, so an open dashboard
 * hears of each one exactly when it commits, and of none that rolls back.
 */
async function walletMoved(ex: Executor, userId: string | null): Promise<void> {
  if (userId) await publish(ex, { userId, kind: 'wallet', id: userId });
}

/** walletMoved for many movements in one statement: each wallet announced once. */
async function walletsMoved(ex: Executor, userIds: readonly (string | null)[]): Promise<void> {
  const owners = [...new Set(userIds.filter((id): id is string => id !== null))];
  await publishMany(ex, owners.map((userId) => ({ userId, kind: 'wallet' as const, id: userId })));
}

/** Creates the installation's system accounts once. */
export async function ensureSystemAccounts(ex: Executor, currency: string, now: Date): Promise<void> {
  await ex.execute(sql`
    INSERT INTO ledger_accounts (kind, code, currency, may_overdraw, created_at)
    VALUES ('system', 'funding', ${currency}, true, ${now}),
           ('system', 'revenue', ${currency}, false, ${now}),
           ('system', 'adjustments', ${currency}, true, ${now})
    ON CONFLICT (code) DO NOTHING`);
}

export async function openWallet(ex: Executor, userId: string, currency: string, now: Date): Promise<string> {
  await ex.execute(sql`
    INSERT INTO ledger_accounts (kind, user_id, currency, created_at)
    VALUES ('wallet', ${userId}, ${currency}, ${now})
    ON CONFLICT (user_id) DO NOTHING`);
  const row = await firstRow<{ id: string }>(ex, sql`SELECT id FROM ledger_accounts WHERE user_id = ${userId}`);
  if (!row) throw new LedgerError('unknown_account', `no wallet for user ${userId}`);
  return row.id;
}

async function systemAccountId(ex: Executor, code: SystemAccount): Promise<string> {
  const row = await firstRow<{ id: string }>(ex, sql`SELECT id FROM ledger_accounts WHERE code = ${code}`);
  if (!row) throw new LedgerError('unknown_account', `system account ${code} is missing (run migrate)`);
  return row.id;
}

async function walletAccountId(ex: Executor, userId: string): Promise<string> {
  const row = await firstRow<{ id: string }>(ex, sql`SELECT id FROM ledger_accounts WHERE user_id = ${userId}`);
  if (!row) throw new LedgerError('unknown_account', `no wallet for user ${userId}`);
  return row.id;
}

export async function walletOf(ex: Executor, userId: string): Promise<Wallet> {
  const row = await firstRow<{ id: string; currency: string; posted_minor: number; held_minor: number }>(
    ex,
    sql`SELECT id, currency, posted_minor, held_minor FROM ledger_accounts WHERE user_id = ${userId}`,
  );
  if (!row) throw new LedgerError('unknown_account', `no wallet for user ${userId}`);
  const balance = toMinor(row.posted_minor);
  const held = toMinor(row.held_minor);
  return { accountId: row.id, currency: row.currency, balanceMinor: balance, heldMinor: held, availableMinor: toMinor(balance - held) };
}

interface NewTransfer {
  debitAccountId: string;
  creditAccountId: string;
  amountMinor: number;
  kind: TransferKind;
  /** Null: an unkeyed transfer, always inserted. */
  idempotencyKey: string | null;
  verificationId: string | null;
  actor: string;
  actorId: string | null;
  reason: string;
  now: Date;
}

/**
 * Inserts a transfer unless its idempotency key exists. Returns the new row, or the row already
 * stored under that key (`replayed`), for the caller to compare.
 */
async function insertKeyedTransfer(ex: Executor, t: NewTransfer): Promise<{ row: TransferRow; replayed: boolean }> {
  let inserted: TransferRow | undefined;
  try {
    inserted = await firstRow<TransferRow>(
      ex,
      sql`INSERT INTO ledger_transfers
            (debit_account_id, credit_account_id, amount_minor, kind, idempotency_key, verification_id, actor, actor_id, reason, created_at)
          VALUES (${t.debitAccountId}, ${t.creditAccountId}, ${t.amountMinor}, ${t.kind}, ${t.idempotencyKey}, ${t.verificationId},
                  ${t.actor}, ${t.actorId}, ${t.reason}, ${t.now})
          ON CONFLICT (idempotency_key) DO NOTHING
          RETURNING *`,
    );
  } catch (error) {
    translate(error);
  }
  if (inserted) return { row: inserted, replayed: false };
  const existing = await firstRow<TransferRow>(ex, sql`SELECT * FROM ledger_transfers WHERE idempotency_key = ${t.idempotencyKey}`);
  if (!existing) throw new Error(`keyed transfer ${t.idempotencyKey} vanished`);
  return { row: existing, replayed: true };
}

export interface CreditRequest {
  userId: string;
  /** Positive adds to the wallet; negative (adjustments only) takes from it. */
  amountMinor: number;
  kind: 'topup' | 'adjustment';
  actor: string;
  actorId?: string | null;
  reason: string;
  /** Makes the credit safe to retry: a retry returns the first transfer. */
  idempotencyKey?: string | null;
  verificationId?: string | null;
  now: Date;
}

/**
 * Top-up or adjustment of a wallet. With an idempotency key, a retry returns the original transfer
 * (`replayed: true`); the same key with different fields is refused.
 */
export async function creditWallet(ex: Executor, request: CreditRequest): Promise<{ transfer: Transfer; replayed: boolean }> {
  if (!Number.isSafeInteger(request.amountMinor) || request.amountMinor === 0) {
    throw new RangeError('amount must be a non-zero integer of minor units');
  }
  if (request.kind === 'topup' && request.amountMinor < 0) throw new RangeError('a top-up must be positive');
  const wallet = await walletAccountId(ex, request.userId);
  const system = await systemAccountId(ex, request.kind === 'topup' ? 'funding' : 'adjustments');
  const incoming = request.amountMinor > 0;
  const fields = {
    debitAccountId: incoming ? system : wallet,
    creditAccountId: incoming ? wallet : system,
    amountMinor: Math.abs(request.amountMinor),
    kind: request.kind,
    verificationId: request.verificationId ?? null,
    actor: request.actor,
    actorId: request.actorId ?? null,
    reason: request.reason,
    now: request.now,
  };
  const { row, replayed } = await insertKeyedTransfer(ex, { ...fields, idempotencyKey: request.idempotencyKey ?? null });
  const same =
    row.debit_account_id === fields.debitAccountId &&
    row.credit_account_id === fields.creditAccountId &&
    toMinor(row.amount_minor) === fields.amountMinor &&
    row.kind === fields.kind &&
    row.reason === fields.reason;
  if (!same) throw new LedgerError('idempotency_key_reused', 'this idempotency key was used for a different transfer');
  const transfer = toTransfer(row);
  if (!replayed) await walletMoved(ex, request.userId);
  // Money in is announced to the customer's webhooks, as the wallet history shows the entry.
  // Top-ups credit through here too; their own events (top_up.*) belong to the top-up flow.
  if (!replayed && incoming) {
    await recordOutboundEvent(ex, {
      userId: request.userId,
      type: 'wallet.credited',
      subjectId: transfer.id,
      now: request.now,
      data: () =>
        historyItemResource({
          id: transfer.id,
          type: transfer.kind as HistoryType,
          amountMinor: transfer.amountMinor,
          grossMinor: transfer.amountMinor,
          verificationId: transfer.verificationId,
          reason: transfer.reason,
          createdAt: transfer.createdAt,
        }),
    });
  }
  return { transfer, replayed };
}

/** The ledger key of a top-up's credit: the database allows one credit per top-up, ever. */
export function topUpCreditKey(topUpId: string): string {
  return `top-up:${topUpId}`;
}

export interface TopUpCreditRequest {
  userId: string;
  topUpId: string;
  /** What the processor confirmed, in the installation's currency. */
  amountMinor: number;
  processor: string;
  now: Date;
}

/**
 * Credits a confirmed top-up to its wallet, from the funding account, once: the transfer is keyed by
 * the top-up, so a second confirmation (a replayed or concurrent webhook, a re-check) returns the
 * first transfer with `replayed: true` and moves nothing.
 */
export function creditTopUp(ex: Executor, request: TopUpCreditRequest): Promise<{ transfer: Transfer; replayed: boolean }> {
  assertPositive(request.amountMinor);
  return creditWallet(ex, {
    userId: request.userId,
    amountMinor: request.amountMinor,
    kind: 'topup',
    actor: 'payments',
    reason: `top-up via ${request.processor}`,
    idempotencyKey: topUpCreditKey(request.topUpId),
    now: request.now,
  });
}

/** A top-up's credit transfer, if the ledger holds one. */
export async function findTopUpCredit(ex: Executor, topUpId: string): Promise<Transfer | undefined> {
  const row = await firstRow<TransferRow>(ex, sql`SELECT * FROM ledger_transfers WHERE idempotency_key = ${topUpCreditKey(topUpId)}`);
  return row ? toTransfer(row) : undefined;
}

export interface TakeBackRequest {
  userId: string;
  /** The most to take; less is taken when the wallet's available balance is smaller. */
  amountMinor: number;
  /** Unique per collection, so a retry takes nothing twice. */
  idempotencyKey: string;
  reason: string;
  now: Date;
}

/**
 * Takes money a processor reversed (a refunded top-up, a lost dispute) back from a wallet to the
 * funding account: as much as the available balance allows, never below zero and never touching
 * held money. Returns what was taken (0 when nothing was available); a retry with the same key
 * returns the first amount. The rest is the caller's receivable.
 */
export async function takeBackFromWallet(ex: Executor, request: TakeBackRequest): Promise<{ takenMinor: Minor; replayed: boolean }> {
  assertPositive(request.amountMinor);
  const existing = await firstRow<TransferRow>(ex, sql`SELECT * FROM ledger_transfers WHERE idempotency_key = ${request.idempotencyKey}`);
  if (existing) return { takenMinor: toMinor(existing.amount_minor), replayed: true };
  const wallet = await walletAccountId(ex, request.userId);
  const funding = await systemAccountId(ex, 'funding');
  // Both accounts locked in the order the transfer trigger uses, so the balance read here is the
  // one the transfer applies to, and a concurrent movement waits rather than deadlocks.
  const locked = await rows<{ id: string; posted_minor: number; held_minor: number }>(
    ex,
    sql`SELECT id, posted_minor, held_minor FROM ledger_accounts WHERE id IN (${wallet}, ${funding}) ORDER BY id FOR NO KEY UPDATE`,
  );
  const account = locked.find((a) => a.id === wallet)!;
  const available = toMinor(account.posted_minor) - toMinor(account.held_minor);
  const taken = Math.min(available, request.amountMinor);
  if (taken <= 0) return { takenMinor: toMinor(0), replayed: false };
  const { row, replayed } = await insertKeyedTransfer(ex, {
    debitAccountId: wallet,
    creditAccountId: funding,
    amountMinor: taken,
    kind: 'adjustment',
    idempotencyKey: request.idempotencyKey,
    verificationId: null,
    actor: 'payments',
    actorId: null,
    reason: request.reason,
    now: request.now,
  });
  if (!replayed) await walletMoved(ex, request.userId);
  return { takenMinor: toMinor(row.amount_minor), replayed };
}

export interface HoldRequest {
  userId: string;
  amountMinor: number;
  verificationId: string;
  expiresAt: Date;
  actor: string;
  now: Date;
}

/** Reserves an amount on the wallet. Throws insufficient_funds when the available balance is short. */
export async function placeHold(ex: Executor, request: HoldRequest): Promise<Hold> {
  assertPositive(request.amountMinor);
  const wallet = await walletAccountId(ex, request.userId);
  try {
    // The one way a hold is placed (migrations/0018): the hold row, whose trigger moves the
    // balance; the purchase's reservation calls the same function (and publishes after its commit).
    const row = await firstRow<{ id: string }>(
      ex,
      sql`SELECT ledger_place_hold(${request.userId}, ${request.amountMinor}, ${request.verificationId}, ${request.expiresAt}, ${request.actor}, ${request.now}) AS id`,
    );
    await publish(ex, { userId: request.userId, kind: 'wallet', id: request.userId });
    return {
      id: row!.id,
      accountId: wallet,
      userId: request.userId,
      amountMinor: toMinor(request.amountMinor),
      verificationId: request.verificationId,
      expiresAt: request.expiresAt,
      createdAt: request.now,
      outcome: null,
    };
  } catch (error) {
    translate(error);
  }
}

export interface ResolveRequest {
  holdId: string;
  actor: string;
  reason: string;
  now: Date;
}

/** Captures a hold: exactly its amount moves from the wallet to revenue, once. */
export async function postHold(ex: Executor, request: ResolveRequest): Promise<Transfer> {
  const hold = await findHold(ex, request.holdId);
  const revenue = await systemAccountId(ex, 'revenue');
  try {
    await ex.execute(sql`
      INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, reason, created_at)
      VALUES (${hold.id}, 'posted', ${request.actor}, ${request.reason}, ${request.now})`);
    const row = await firstRow<TransferRow>(
      ex,
      sql`INSERT INTO ledger_transfers
            (debit_account_id, credit_account_id, amount_minor, kind, hold_id, verification_id, actor, reason, created_at)
          SELECT h.account_id, ${revenue}, h.amount_minor, 'verification_charge', h.id, h.verification_id,
                 ${request.actor}, ${request.reason}, ${request.now}
          FROM ledger_holds h WHERE h.id = ${hold.id}
          RETURNING *`,
    );
    await walletMoved(ex, hold.userId);
    return toTransfer(row!);
  } catch (error) {
    translate(error);
  }
}

/** Releases a hold back to the available balance, once: voided (cancel, failure) or expired (deadline). */
async function releaseHold(ex: Executor, request: ResolveRequest & { outcome: 'voided' | 'expired' }): Promise<void> {
  const hold = await findHold(ex, request.holdId);
  try {
    await ex.execute(sql`
      INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, reason, created_at)
      VALUES (${request.holdId}, ${request.outcome}, ${request.actor}, ${request.reason}, ${request.now})`);
  } catch (error) {
    translate(error);
  }
  await walletMoved(ex, hold.userId);
}

/**
 * Releases many holds at once with one outcome and one reason (the engine's deadline batch): one
 * statement inserts every resolution, in account order so two batches never lock wallets in
 * opposite orders; the per-row triggers move each balance, and the resolution's primary key still
 * allows one resolution per hold (one already resolved fails the whole batch, and so its
 * transaction). Each wallet moved is announced once. Returns the holds released.
 */
export async function releaseHolds(
  ex: Executor,
  request: { holdIds: readonly string[]; outcome: 'voided' | 'expired'; actor: string; reason: string; now: Date },
): Promise<number> {
  if (request.holdIds.length === 0) return 0;
  let released: { user_id: string | null }[];
  try {
    released = await rows<{ user_id: string | null }>(
      ex,
      sql`WITH resolved AS (
            INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, reason, created_at)
            SELECT h.id, ${request.outcome}, ${request.actor}, ${request.reason}, ${request.now}
            FROM ledger_holds h WHERE h.id IN (SELECT value::uuid FROM json_array_elements_text(${JSON.stringify(request.holdIds)}::json))
            ORDER BY h.account_id, h.id
            RETURNING hold_id)
          SELECT a.user_id FROM resolved r JOIN ledger_holds h ON h.id = r.hold_id JOIN ledger_accounts a ON a.id = h.account_id`,
    );
  } catch (error) {
    translate(error);
  }
  if (released.length !== new Set(request.holdIds).size) throw new LedgerError('unknown_hold', 'some holds of the batch do not exist');
  await walletsMoved(ex, released.map((r) => r.user_id));
  return released.length;
}

export function voidHold(ex: Executor, request: ResolveRequest): Promise<void> {
  return releaseHold(ex, { ...request, outcome: 'voided' });
}

export function expireHold(ex: Executor, request: ResolveRequest): Promise<void> {
  return releaseHold(ex, { ...request, outcome: 'expired' });
}

/** The idempotency key of the correction that refunds one charge: at most one per charge, ever. */
function chargeRefundKey(chargeId: string): string {
  return `charge-refund:${chargeId}`;
}

/**
 * Corrects a charge that should never have been captured (its verification ended refunded): a new
 * transfer moves exactly the charged amount back from revenue to the wallet it came from. The
 * journal is never edited, and the key derived from the charge makes the correction happen once
 * however often it is asked for (a repeat returns the first one with `replayed: true`).
 */
export async function refundCharge(
  ex: Executor,
  request: ResolveRequest,
): Promise<{ transfer: Transfer; replayed: boolean }> {
  const charge = await firstRow<TransferRow>(
    ex,
    sql`SELECT * FROM ledger_transfers WHERE hold_id = ${request.holdId} AND kind = 'verification_charge'`,
  );
  if (!charge) throw new LedgerError('unknown_hold', `hold ${request.holdId} has no charge to refund`);
  const { row, replayed } = await insertKeyedTransfer(ex, {
    debitAccountId: charge.credit_account_id,
    creditAccountId: charge.debit_account_id,
    amountMinor: toMinor(charge.amount_minor),
    kind: 'adjustment',
    idempotencyKey: chargeRefundKey(charge.id),
    verificationId: charge.verification_id,
    actor: request.actor,
    actorId: null,
    reason: request.reason,
    now: request.now,
  });
  if (!replayed) await walletMoved(ex, (await findHold(ex, request.holdId)).userId);
  return { transfer: toTransfer(row), replayed };
}

export async function findHold(ex: Executor, holdId: string): Promise<Hold> {
  const row = await firstRow<{
    hold_id: string;
    account_id: string;
    user_id: string | null;
    amount_minor: number;
    verification_id: string | null;
    expires_at: Date;
    held_at: Date;
    outcome: HoldOutcome | null;
  }>(
    ex,
    sql`SELECT o.hold_id, o.account_id, a.user_id, o.amount_minor, o.verification_id, o.expires_at, o.held_at, o.outcome
        FROM ledger_hold_outcomes o JOIN ledger_accounts a ON a.id = o.account_id WHERE o.hold_id = ${holdId}`,
  );
  if (!row) throw new LedgerError('unknown_hold', `no hold ${holdId}`);
  return {
    id: row.hold_id,
    accountId: row.account_id,
    userId: row.user_id,
    amountMinor: toMinor(row.amount_minor),
    verificationId: row.verification_id,
    expiresAt: new Date(row.expires_at),
    createdAt: new Date(row.held_at),
    outcome: row.outcome,
  };
}

export interface HistoryPage {
  items: HistoryItem[];
  nextCursor: string | null;
}

/** The customer's money history, newest first, as the types customers understand. */
export async function walletHistory(ex: Executor, userId: string, options: { after?: Keyset; limit: number }): Promise<HistoryPage> {
  const wallet = await walletAccountId(ex, userId);
  const before = options.after ? sql`AND (created_at, id) < (${options.after.at}, ${options.after.id}::uuid)` : sql``;
  const found = await rows<{
    id: string;
    type: HistoryType;
    amount_minor: number;
    gross_minor: number;
    verification_id: string | null;
    reason: string | null;
    created_at: Date;
  }>(
    ex,
    // A release has no row of its own: its entry's id is derived from its hold's, so that it is
    // stable and a UUID like every other entry's (the page key is (created_at, id)).
    sql`SELECT id::text AS id, type, amount_minor, gross_minor, verification_id, reason, created_at FROM (
          SELECT t.id, t.kind AS type,
                 CASE WHEN t.kind = 'verification_charge' THEN 0
                      WHEN t.credit_account_id = ${wallet} THEN t.amount_minor ELSE -t.amount_minor END AS amount_minor,
                 t.amount_minor AS gross_minor, t.verification_id, t.reason, t.created_at
          FROM ledger_transfers t
          WHERE t.debit_account_id = ${wallet} OR t.credit_account_id = ${wallet}
          UNION ALL
          SELECT o.hold_id, 'verification_hold', -o.amount_minor, o.amount_minor, o.verification_id, NULL, o.held_at
          FROM ledger_hold_outcomes o WHERE o.account_id = ${wallet}
          UNION ALL
          SELECT md5('release:' || o.hold_id::text)::uuid, 'verification_refund', o.amount_minor, o.amount_minor, o.verification_id,
                 o.resolution_reason, o.resolved_at
          FROM ledger_hold_outcomes o WHERE o.account_id = ${wallet} AND o.outcome IN ('voided', 'expired')
        ) entries
        WHERE true ${before}
        ORDER BY created_at DESC, id DESC
        LIMIT ${options.limit + 1}`,
  );
  const page = pageOf(found, options.limit, (r) => ({ at: new Date(r.created_at), id: r.id }));
  return {
    items: page.items.map((r) => ({
      id: r.id,
      type: r.type,
      amountMinor: Number(r.amount_minor),
      grossMinor: Number(r.gross_minor),
      verificationId: r.verification_id,
      reason: r.reason,
      createdAt: new Date(r.created_at),
    })),
    nextCursor: page.nextCursor,
  };
}
