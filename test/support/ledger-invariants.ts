import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { pgConstraint, pgErrorCode, rows, type Database, type Executor, type Tx } from '../../src/db/database.ts';
import { creditWallet, expireHold, openWallet, placeHold, postHold, voidHold, type HoldOutcome } from '../../src/ledger/ledger.ts';
import { isLedgerError } from '../../src/ledger/errors.ts';
import { checkLedgerInvariants } from '../../src/ops/invariants.ts';
import type { Check } from '../../src/ops/reports.ts';

/** Asserts every ledger invariant check passes; the message lists the failing ones with detail. */
export async function assertLedgerConsistent(ex: Executor, context = ''): Promise<Check[]> {
  const checks = await checkLedgerInvariants(ex);
  const failed = checks.filter((c) => !c.ok);
  assert.equal(
    failed.length,
    0,
    `ledger invariants violated${context ? ` (${context})` : ''}: ${failed.map((c) => `${c.name}: ${c.detail}`).join(' | ')}`,
  );
  return checks;
}

/** Creates n users, each with a wallet; returns their user ids in creation order. */
export async function createUsersWithWallets(
  ex: Executor,
  n: number,
  options: { now?: Date; currency?: string; prefix?: string } = {},
): Promise<string[]> {
  const now = options.now ?? new Date('2026-01-01T00:00:00Z');
  const prefix = options.prefix ?? `u${randomUUID().slice(0, 8)}`;
  const emails = Array.from({ length: n }, (_, i) => `${prefix}-${i}@example.com`.toLowerCase());
  const inserted = await rows<{ id: string; email: string }>(
    ex,
    sql`INSERT INTO users (email, password_hash, created_at)
        VALUES ${sql.join(
          emails.map((e) => sql`(${e}, 'not-a-real-hash', ${now})`),
          sql`, `,
        )}
        RETURNING id, email`,
  );
  const byEmail = new Map(inserted.map((r) => [r.email, r.id]));
  const ids = emails.map((e) => byEmail.get(e)!);
  for (const id of ids) await openWallet(ex, id, options.currency ?? 'USD', now);
  return ids;
}

export interface Balance {
  posted: number;
  held: number;
  available: number;
}

/** Posted/held/available of each user's wallet, in one statement (one snapshot). */
export async function walletBalances(ex: Executor, userIds: string[]): Promise<Map<string, Balance>> {
  const found = await rows<{ user_id: string; posted: string; held: string }>(
    ex,
    sql`SELECT user_id::text AS user_id, posted_minor::text AS posted, held_minor::text AS held
        FROM ledger_accounts WHERE kind = 'wallet'`,
  );
  const wanted = new Set(userIds);
  const out = new Map<string, Balance>();
  for (const r of found) {
    if (!wanted.has(r.user_id)) continue;
    const posted = Number(r.posted);
    const held = Number(r.held);
    out.set(r.user_id, { posted, held, available: posted - held });
  }
  assert.equal(out.size, userIds.length, 'every user has a wallet');
  return out;
}

/** Posted balance of each system account by code. */
export async function systemBalances(ex: Executor): Promise<{ funding: number; revenue: number; adjustments: number }> {
  const found = await rows<{ code: string; posted: string }>(
    ex,
    sql`SELECT code, posted_minor::text AS posted FROM ledger_accounts WHERE kind = 'system'`,
  );
  const get = (code: string) => Number(found.find((r) => r.code === code)?.posted ?? NaN);
  return { funding: get('funding'), revenue: get('revenue'), adjustments: get('adjustments') };
}

/** A predicate for assert.rejects: the database refused with this SQLSTATE (and constraint, if given). */
export function dbRefusal(code: string, constraint?: string, messagePart?: string | RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.equal(pgErrorCode(error), code, `expected SQLSTATE ${code}, got ${pgErrorCode(error)}: ${String(error)}`);
    if (constraint !== undefined) assert.equal(pgConstraint(error), constraint);
    if (messagePart !== undefined) {
      const text = messages(error).join(' | ');
      if (typeof messagePart === 'string') assert.ok(text.includes(messagePart), `expected "${messagePart}" in: ${text}`);
      else assert.match(text, messagePart);
    }
    return true;
  };
}

function messages(error: unknown): string[] {
  const out: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const message = (current as { message?: unknown }).message;
    if (typeof message === 'string') out.push(message);
    current = (current as { cause?: unknown }).cause;
  }
  return out;
}

/** A small seeded PRNG (mulberry32), so a failing concurrency run can be replayed from its seed. */
export function prng(seed: number): { next(): number; int(min: number, max: number): number; pick<T>(items: readonly T[]): T } {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)]!,
  };
}

// ---------------------------------------------------------------------------------------------
// Random concurrent ledger traffic, shared by the concurrency test and its child-process workers.
// ---------------------------------------------------------------------------------------------

export interface HoldRecord {
  userId: string;
  amount: number;
  outcome: HoldOutcome | null;
}

/** What succeeded, in a form that can cross a process boundary as JSON. */
export interface LedgerTally {
  /** Per user: the sum of top-ups that created a transfer (replays excluded). */
  toppedUp: Record<string, number>;
  /** Per user: the sum of holds captured (posted). */
  charged: Record<string, number>;
  holds: Record<string, HoldRecord>;
  /** Per idempotency key: how many calls created the transfer (must total 1) and how many replayed it. */
  keyed: Record<string, { userId: string; amount: number; created: number; replayed: number }>;
  counts: {
    topups: number;
    replays: number;
    holdsPlaced: number;
    insufficientFunds: number;
    posted: number;
    voided: number;
    expired: number;
    races: number;
    raceLosers: number;
  };
}

export function emptyTally(): LedgerTally {
  return {
    toppedUp: {},
    charged: {},
    holds: {},
    keyed: {},
    counts: { topups: 0, replays: 0, holdsPlaced: 0, insufficientFunds: 0, posted: 0, voided: 0, expired: 0, races: 0, raceLosers: 0 },
  };
}

export function mergeTallies(tallies: LedgerTally[]): LedgerTally {
  const out = emptyTally();
  for (const t of tallies) {
    for (const [u, v] of Object.entries(t.toppedUp)) out.toppedUp[u] = (out.toppedUp[u] ?? 0) + v;
    for (const [u, v] of Object.entries(t.charged)) out.charged[u] = (out.charged[u] ?? 0) + v;
    for (const [id, h] of Object.entries(t.holds)) {
      assert.equal(out.holds[id], undefined, `hold ${id} reported twice`);
      out.holds[id] = h;
    }
    for (const [k, v] of Object.entries(t.keyed)) {
      const seen = out.keyed[k];
      if (seen) {
        assert.deepEqual([seen.userId, seen.amount], [v.userId, v.amount], `key ${k} used with different fields`);
        seen.created += v.created;
        seen.replayed += v.replayed;
      } else out.keyed[k] = { ...v };
    }
    for (const name of Object.keys(out.counts) as Array<keyof LedgerTally['counts']>) out.counts[name] += t.counts[name];
  }
  return out;
}

export interface TrafficOptions {
  seed: number;
  /** Independent chains fired at once; each is a top-up or a hold with its resolution. */
  operations: number;
  /** Makes this run's private idempotency keys unique. */
  keyPrefix: string;
  /** Keys shared by every process of a run (same fields everywhere): exactly one call may create each. */
  sharedKeys?: number;
  /**
   * Called by `observers` extra chains, three times each, in turn with the traffic: snapshots taken
   * between the traffic's transactions (on PGlite, whose transactions queue first-in first-out, a
   * separate polling loop would only get a turn once per wave of them).
   */
  observe?: () => Promise<void>;
  observers?: number;
  now?: Date;
}

/**
 * Fires `operations` chains at once, each in its own transactions: top-ups (some with an
 * idempotency key, fired twice concurrently), and holds that are then posted, voided, expired, left
 * open, or raced (post against void, sometimes against expire too). Amounts are chosen so that some
 * holds fail with insufficient_funds. Any other error fails the run.
 */
export async function runRandomLedgerTraffic(database: Database, userIds: string[], options: TrafficOptions): Promise<LedgerTally> {
  const random = prng(options.seed);
  const now = options.now ?? new Date('2026-01-01T00:00:00Z');
  const expiresAt = new Date(now.getTime() + 10 * 60_000);
  const tally = emptyTally();
  // No retry here: Database.transaction retries deadlocks, which would hide a lock-order bug.
  const transaction = <T>(fn: (tx: Tx) => Promise<T>): Promise<T> => database.db.transaction(fn);
  const add = (map: Record<string, number>, userId: string, amount: number) => {
    map[userId] = (map[userId] ?? 0) + amount;
  };

  const resolvers = {
    posted: (holdId: string) => transaction((tx) => postHold(tx, { holdId, actor: 'traffic', reason: 'sms', now })).then(() => undefined),
    voided: (holdId: string) => transaction((tx) => voidHold(tx, { holdId, actor: 'traffic', reason: 'cancel', now })),
    expired: (holdId: string) => transaction((tx) => expireHold(tx, { holdId, actor: 'traffic', reason: 'deadline', now: expiresAt })),
  };
  const record = (holdId: string, outcome: HoldOutcome) => {
    const hold = tally.holds[holdId]!;
    hold.outcome = outcome;
    tally.counts[outcome]++;
    if (outcome === 'posted') add(tally.charged, hold.userId, hold.amount);
  };

  async function keyedTopUp(key: string, userId: string, amount: number, copies: number): Promise<void> {
    const request = { userId, amountMinor: amount, kind: 'topup' as const, actor: 'traffic', reason: `keyed ${key}`, idempotencyKey: key, now };
    const results = await Promise.all(Array.from({ length: copies }, () => transaction((tx) => creditWallet(tx, request))));
    const entry = (tally.keyed[key] ??= { userId, amount, created: 0, replayed: 0 });
    for (const r of results) {
      assert.equal(r.transfer.id, results[0]!.transfer.id, 'every call with one key returns one transfer');
      assert.equal(r.transfer.amountMinor, amount);
      if (r.replayed) {
        entry.replayed++;
        tally.counts.replays++;
      } else {
        entry.created++;
        tally.counts.topups++;
        add(tally.toppedUp, userId, amount);
      }
    }
  }

  async function holdChain(userId: string, amount: number, plan: number): Promise<void> {
    let holdId: string;
    try {
      const hold = await transaction((tx) =>
        placeHold(tx, { userId, amountMinor: amount, verificationId: randomUUID(), expiresAt, actor: 'traffic', now }),
      );
      holdId = hold.id;
    } catch (error) {
      if (isLedgerError(error, 'insufficient_funds')) {
        tally.counts.insufficientFunds++;
        return;
      }
      throw error;
    }
    tally.holds[holdId] = { userId, amount, outcome: null };
    tally.counts.holdsPlaced++;
    if (plan < 0.3) {
      await resolvers.posted(holdId);
      record(holdId, 'posted');
    } else if (plan < 0.5) {
      await resolvers.voided(holdId);
      record(holdId, 'voided');
    } else if (plan < 0.6) {
      await resolvers.expired(holdId);
      record(holdId, 'expired');
    } else if (plan < 0.9) {
      const racers: HoldOutcome[] = plan < 0.8 ? ['posted', 'voided'] : ['posted', 'voided', 'expired'];
      const settled = await Promise.allSettled(racers.map((outcome) => resolvers[outcome](holdId)));
      const winners = racers.filter((_, i) => settled[i]!.status === 'fulfilled');
      assert.equal(winners.length, 1, `exactly one resolution of hold ${holdId} wins: ${racers.join('/')}`);
      for (const s of settled) {
        if (s.status === 'rejected') {
          if (!isLedgerError(s.reason, 'hold_already_resolved')) throw s.reason;
          tally.counts.raceLosers++;
        }
      }
      tally.counts.races++;
      record(holdId, winners[0]!);
    }
    // else: left open, still held at the end.
  }

  const chains: Array<() => Promise<void>> = [];
  for (let i = 0; i < options.operations; i++) {
    const userId = random.pick(userIds);
    const roll = random.next();
    if (roll < 0.2) {
      const amount = random.int(50, 400);
      chains.push(async () => {
        await transaction((tx) => creditWallet(tx, { userId, amountMinor: amount, kind: 'topup', actor: 'traffic', reason: 'card', now }));
        tally.counts.topups++;
        add(tally.toppedUp, userId, amount);
      });
    } else if (roll < 0.3) {
      const shared = options.sharedKeys ?? 0;
      if (shared > 0 && random.next() < 0.5) {
        const k = random.int(0, shared - 1);
        // The owner of a shared key must be the same in every process: pick it from the sorted ids.
        const owner = [...userIds].sort()[k % userIds.length]!;
        chains.push(() => keyedTopUp(`shared-${k}`, owner, 100 + k, 2));
      } else {
        const key = `${options.keyPrefix}-${i}`;
        const amount = random.int(50, 400);
        chains.push(() => keyedTopUp(key, userId, amount, 2));
      }
    } else {
      const amount = random.int(50, 600);
      const plan = random.next();
      chains.push(() => holdChain(userId, amount, plan));
    }
  }
  const observe = options.observe;
  if (observe) {
    for (let i = 0; i < (options.observers ?? 0); i++) {
      const at = random.int(0, chains.length);
      chains.splice(at, 0, async () => {
        for (let k = 0; k < 3; k++) await observe();
      });
    }
  }
  await Promise.all(chains.map((chain) => chain()));
  return tally;
}

/** Asserts the final ledger equals exactly what the tally says succeeded, starting from `initial`. */
export async function assertLedgerMatchesTally(
  ex: Executor,
  userIds: string[],
  tally: LedgerTally,
  initial: { wallets: Map<string, Balance>; system: { funding: number; revenue: number; adjustments: number } },
): Promise<void> {
  const wallets = await walletBalances(ex, userIds);
  let toppedUp = 0;
  let charged = 0;
  for (const userId of userIds) {
    const start = initial.wallets.get(userId)!;
    const up = tally.toppedUp[userId] ?? 0;
    const down = tally.charged[userId] ?? 0;
    const pending = Object.values(tally.holds)
      .filter((h) => h.userId === userId && h.outcome === null)
      .reduce((sum, h) => sum + h.amount, 0);
    toppedUp += up;
    charged += down;
    const posted = start.posted + up - down;
    const held = start.held + pending;
    assert.deepEqual(wallets.get(userId), { posted, held, available: posted - held }, `wallet of ${userId}`);
  }
  const system = await systemBalances(ex);
  assert.deepEqual(system, {
    funding: initial.system.funding - toppedUp,
    revenue: initial.system.revenue + charged,
    adjustments: initial.system.adjustments,
  });
  for (const [key, entry] of Object.entries(tally.keyed)) {
    assert.equal(entry.created, 1, `idempotency key ${key} created exactly one transfer`);
  }
  const holdIds = Object.keys(tally.holds);
  if (holdIds.length > 0) {
    const stored = await rows<{ id: string; amount: string; outcome: HoldOutcome | null; charges: number }>(
      ex,
      sql`SELECT h.id::text AS id, h.amount_minor::text AS amount, r.outcome,
                 (SELECT count(*)::int FROM ledger_transfers t WHERE t.hold_id = h.id) AS charges
          FROM ledger_holds h LEFT JOIN ledger_hold_resolutions r ON r.hold_id = h.id
          JOIN ledger_accounts a ON a.id = h.account_id
          WHERE a.user_id IN (${sql.join(
            userIds.map((u) => sql`${u}::uuid`),
            sql`, `,
          )})`,
    );
    const actual = Object.fromEntries(stored.map((s) => [s.id, [Number(s.amount), s.outcome, s.charges]]));
    const expected = Object.fromEntries(
      Object.entries(tally.holds).map(([id, h]) => [id, [h.amount, h.outcome, h.outcome === 'posted' ? 1 : 0]]),
    );
    assert.deepEqual(actual, expected, 'every hold placed is stored once, with the outcome that won');
  }
}
