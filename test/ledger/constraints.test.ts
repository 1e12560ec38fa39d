import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines, freshDatabase, type TestDatabase } from '../support/db.ts';
import {
  assertLedgerConsistent,
  createUsersWithWallets,
  dbRefusal,
  systemBalances,
  walletBalances,
} from '../support/ledger-invariants.ts';
import { rows, type Executor, type Tx } from '../../src/db/database.ts';
import {
  creditWallet,
  expireHold,
  findHold,
  placeHold,
  postHold,
  voidHold,
  walletOf,
} from '../../src/ledger/ledger.ts';
import { isLedgerError } from '../../src/ledger/errors.ts';
import { checkLedgerInvariants } from '../../src/ops/invariants.ts';
import type { Check } from '../../src/ops/reports.ts';

/**
 * The ledger's rules are the database's rules: raw SQL that bypasses src/ledger must be refused,
 * and a refused statement must leave every balance exactly as it was.
 */

const now = new Date('2026-01-01T00:00:00Z');
const later = new Date('2026-01-01T00:10:00Z');

class Rollback extends Error {}

interface Fixture {
  userId: string;
  walletId: string;
  /** Unresolved hold of 300 on a wallet topped up with 1000: posted 1000, held 300, available 700. */
  holdId: string;
}

interface LedgerSnapshot {
  accounts: Array<[string, string, string]>;
  transfers: number;
  holds: number;
  resolutions: number;
}

for (const engine of engines) {
  describe(`ledger rules in the database [${engine}]`, () => {
    let t: TestDatabase;
    let db: Executor;
    let fundingId: string;
    let revenueId: string;

    before(async () => {
      t = await freshDatabase(engine);
      db = t.database.db;
      const system = await rows<{ id: string; code: string }>(db, sql`SELECT id, code FROM ledger_accounts WHERE kind = 'system'`);
      fundingId = system.find((a) => a.code === 'funding')!.id;
      revenueId = system.find((a) => a.code === 'revenue')!.id;
    });
    after(() => t.dispose());

    /** A fresh wallet with 1000 topped up and an unresolved hold of 300 (available 700). */
    async function fixture(): Promise<Fixture> {
      const [userId] = await createUsersWithWallets(db, 1, { now });
      await creditWallet(db, { userId: userId!, amountMinor: 1000, kind: 'topup', actor: 'test', reason: 'fixture', now });
      const hold = await placeHold(db, {
        userId: userId!,
        amountMinor: 300,
        verificationId: randomUUID(),
        expiresAt: later,
        actor: 'test',
        now,
      });
      assert.deepEqual(await balance(userId!), [1000, 300, 700]);
      return { userId: userId!, walletId: hold.accountId, holdId: hold.id };
    }

    async function balance(userId: string): Promise<[number, number, number]> {
      const w = (await walletBalances(db, [userId])).get(userId)!;
      return [w.posted, w.held, w.available];
    }

    /** Every account's cached balances and the size of every ledger table. */
    async function snapshot(): Promise<LedgerSnapshot> {
      const accounts = await rows<{ id: string; posted: string; held: string }>(
        db,
        sql`SELECT id::text AS id, posted_minor::text AS posted, held_minor::text AS held FROM ledger_accounts ORDER BY id`,
      );
      const [counts] = await rows<{ transfers: number; holds: number; resolutions: number }>(
        db,
        sql`SELECT (SELECT count(*)::int FROM ledger_transfers) AS transfers,
                   (SELECT count(*)::int FROM ledger_holds) AS holds,
                   (SELECT count(*)::int FROM ledger_hold_resolutions) AS resolutions`,
      );
      return { accounts: accounts.map((a) => [a.id, a.posted, a.held]), ...counts! };
    }

    /** Runs fn in a transaction that is always rolled back (to probe what the database accepts). */
    async function rolledBack(fn: (tx: Tx) => Promise<void>): Promise<void> {
      await assert.rejects(
        t.database.db.transaction(async (tx) => {
          await fn(tx);
          throw new Rollback('probe only');
        }),
        (e) => e instanceof Rollback,
      );
    }

    /** Asserts the statement is refused and that nothing in the ledger changed. */
    async function refusedWithoutEffect(
      attempt: () => Promise<unknown>,
      refusal: (error: unknown) => boolean,
      userId: string,
      expected: [number, number, number],
    ): Promise<void> {
      const before = await snapshot();
      await assert.rejects(attempt(), refusal);
      assert.deepEqual(await balance(userId), expected);
      assert.deepEqual(await snapshot(), before);
    }

    const rawHold = (ex: Executor, accountId: string, amount: number) =>
      ex.execute(sql`INSERT INTO ledger_holds (account_id, amount_minor, verification_id, expires_at, actor, created_at)
                     VALUES (${accountId}, ${amount}, ${randomUUID()}, ${later}, 'raw-sql', ${now})`);
    const rawTransfer = (
      ex: Executor,
      debit: string,
      credit: string,
      amount: number,
      extra: { kind?: string; key?: string | null; holdId?: string | null; reason?: string } = {},
    ) =>
      ex.execute(sql`INSERT INTO ledger_transfers
                       (debit_account_id, credit_account_id, amount_minor, kind, idempotency_key, hold_id, actor, reason, created_at)
                     VALUES (${debit}, ${credit}, ${amount}, ${extra.kind ?? 'adjustment'}, ${extra.key ?? null},
                             ${extra.holdId ?? null}, 'raw-sql', ${extra.reason ?? 'raw'}, ${now})`);
    const rawResolution = (ex: Executor, holdId: string, outcome: string) =>
      ex.execute(sql`INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, reason, created_at)
                     VALUES (${holdId}, ${outcome}, 'raw-sql', 'raw', ${now})`);

    test('a hold that would make the available balance negative is refused; exactly the available amount is accepted', async () => {
      const f = await fixture();
      await refusedWithoutEffect(
        () => rawHold(db, f.walletId, 701),
        dbRefusal('23514', 'ledger_accounts_available_nonnegative'),
        f.userId,
        [1000, 300, 700],
      );
      await rolledBack(async (tx) => {
        await rawHold(tx, f.walletId, 700);
        const [w] = await rows<{ posted: string; held: string }>(
          tx,
          sql`SELECT posted_minor::text AS posted, held_minor::text AS held FROM ledger_accounts WHERE id = ${f.walletId}`,
        );
        assert.deepEqual([Number(w!.posted), Number(w!.held)], [1000, 1000]);
      });
      assert.deepEqual(await balance(f.userId), [1000, 300, 700]);
      await assertLedgerConsistent(db);
    });

    test('a transfer that would make the available balance negative is refused; exactly the available amount is accepted', async () => {
      const f = await fixture();
      await refusedWithoutEffect(
        () => rawTransfer(db, f.walletId, revenueId, 701),
        dbRefusal('23514', 'ledger_accounts_available_nonnegative'),
        f.userId,
        [1000, 300, 700],
      );
      // Held money cannot leave through a plain transfer either: 1000 is posted but only 700 is available.
      await refusedWithoutEffect(
        () => rawTransfer(db, f.walletId, fundingId, 1000),
        dbRefusal('23514', 'ledger_accounts_available_nonnegative'),
        f.userId,
        [1000, 300, 700],
      );
      await rolledBack(async (tx) => {
        await rawTransfer(tx, f.walletId, revenueId, 700);
      });
      assert.deepEqual(await balance(f.userId), [1000, 300, 700]);
      await assertLedgerConsistent(db);
    });

    test('a hold is resolved at most once: a second resolution row is refused and releases nothing', async () => {
      const f = await fixture();
      const second = await placeHold(db, { userId: f.userId, amountMinor: 200, verificationId: randomUUID(), expiresAt: later, actor: 't', now });
      assert.deepEqual(await balance(f.userId), [1000, 500, 500]);
      await rawResolution(db, f.holdId, 'voided');
      assert.deepEqual(await balance(f.userId), [1000, 200, 800]);
      for (const outcome of ['voided', 'expired', 'posted']) {
        await refusedWithoutEffect(
          () => rawResolution(db, f.holdId, outcome),
          dbRefusal('23505', 'ledger_hold_resolutions_pkey'),
          f.userId,
          [1000, 200, 800],
        );
      }
      // Two resolutions of one hold in a single statement: the whole statement is refused.
      await refusedWithoutEffect(
        () =>
          db.execute(sql`INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, created_at)
                         VALUES (${second.id}, 'voided', 'raw-sql', ${now}), (${second.id}, 'expired', 'raw-sql', ${now})`),
        dbRefusal('23505', 'ledger_hold_resolutions_pkey'),
        f.userId,
        [1000, 200, 800],
      );
      assert.equal((await findHold(db, second.id)).outcome, null);
      await assertLedgerConsistent(db);
    });

    test('a charge must post exactly its hold: another amount, another account, no posted resolution, or a second charge are refused', async () => {
      const f = await fixture();
      const other = await fixture();
      const attempts: Array<{ name: string; run: (tx: Tx) => Promise<unknown>; message: string }> = [
        {
          name: 'one less than the hold',
          run: async (tx) => {
            await rawResolution(tx, f.holdId, 'posted');
            await rawTransfer(tx, f.walletId, revenueId, 299, { kind: 'verification_charge', holdId: f.holdId });
          },
          message: 'a charge must post exactly its hold',
        },
        {
          name: 'one more than the hold',
          run: async (tx) => {
            await rawResolution(tx, f.holdId, 'posted');
            await rawTransfer(tx, f.walletId, revenueId, 301, { kind: 'verification_charge', holdId: f.holdId });
          },
          message: 'a charge must post exactly its hold',
        },
        {
          name: 'taken from another wallet',
          run: async (tx) => {
            await rawResolution(tx, f.holdId, 'posted');
            await rawTransfer(tx, other.walletId, revenueId, 300, { kind: 'verification_charge', holdId: f.holdId });
          },
          message: 'a charge must post exactly its hold',
        },
        {
          name: 'before the hold is resolved as posted',
          run: (tx) => rawTransfer(tx, f.walletId, revenueId, 300, { kind: 'verification_charge', holdId: f.holdId }),
          message: 'must be resolved as posted before its charge',
        },
      ];
      for (const attempt of attempts) {
        await refusedWithoutEffect(
          () => t.database.db.transaction(async (tx) => void (await attempt.run(tx))),
          dbRefusal('23514', undefined, attempt.message),
          f.userId,
          [1000, 300, 700],
        );
        assert.equal((await findHold(db, f.holdId)).outcome, null, attempt.name);
      }
      // A voided hold cannot be charged.
      await rawResolution(db, other.holdId, 'voided');
      assert.deepEqual(await balance(other.userId), [1000, 0, 1000]);
      await refusedWithoutEffect(
        () => rawTransfer(db, other.walletId, revenueId, 300, { kind: 'verification_charge', holdId: other.holdId }),
        dbRefusal('23514', undefined, 'must be resolved as posted before its charge'),
        other.userId,
        [1000, 0, 1000],
      );
      // The exact charge commits, moving the amount once; a second charge of the same hold is refused.
      const revenueBefore = (await systemBalances(db)).revenue;
      await t.database.db.transaction(async (tx) => {
        await rawResolution(tx, f.holdId, 'posted');
        await rawTransfer(tx, f.walletId, revenueId, 300, { kind: 'verification_charge', holdId: f.holdId });
      });
      assert.deepEqual(await balance(f.userId), [700, 0, 700]);
      assert.equal((await systemBalances(db)).revenue, revenueBefore + 300);
      await refusedWithoutEffect(
        () => rawTransfer(db, f.walletId, revenueId, 300, { kind: 'verification_charge', holdId: f.holdId }),
        dbRefusal('23505', 'ledger_transfers_hold_id_key'),
        f.userId,
        [700, 0, 700],
      );
      // A charge must name its hold, and only a charge may.
      await refusedWithoutEffect(
        () => rawTransfer(db, f.walletId, revenueId, 100, { kind: 'verification_charge' }),
        dbRefusal('23514', 'ledger_transfers_charge_has_hold'),
        f.userId,
        [700, 0, 700],
      );
      await assertLedgerConsistent(db);
    });

    test('an idempotency key names one transfer: a duplicate with different (or the same) fields is refused', async () => {
      const f = await fixture();
      const key = `raw-${randomUUID()}`;
      await rawTransfer(db, fundingId, f.walletId, 100, { kind: 'topup', key, reason: 'card payment' });
      assert.deepEqual(await balance(f.userId), [1100, 300, 800]);
      const variants = [
        { amount: 200, kind: 'topup', reason: 'card payment' },
        { amount: 100, kind: 'adjustment', reason: 'card payment' },
        { amount: 100, kind: 'topup', reason: 'another reason' },
        { amount: 100, kind: 'topup', reason: 'card payment' },
      ];
      for (const v of variants) {
        await refusedWithoutEffect(
          () => rawTransfer(db, fundingId, f.walletId, v.amount, { kind: v.kind, key, reason: v.reason }),
          dbRefusal('23505', 'ledger_transfers_idempotency_key_key'),
          f.userId,
          [1100, 300, 800],
        );
      }
      const stored = await rows<{ n: number }>(db, sql`SELECT count(*)::int AS n FROM ledger_transfers WHERE idempotency_key = ${key}`);
      assert.equal(stored[0]!.n, 1);
      await assertLedgerConsistent(db);
    });

    test('the journal is immutable: UPDATE and DELETE of a transfer, a hold and a resolution are refused', async () => {
      const f = await fixture();
      const voided = await placeHold(db, { userId: f.userId, amountMinor: 50, verificationId: randomUUID(), expiresAt: later, actor: 't', now });
      await voidHold(db, { holdId: voided.id, actor: 't', reason: 'cancel', now });
      const [transfer] = await rows<{ id: string }>(
        db,
        sql`SELECT t.id FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_account_id WHERE a.user_id = ${f.userId}`,
      );
      const statements = [
        sql`UPDATE ledger_transfers SET amount_minor = 1 WHERE id = ${transfer!.id}`,
        sql`UPDATE ledger_transfers SET reason = 'rewritten' WHERE id = ${transfer!.id}`,
        sql`DELETE FROM ledger_transfers WHERE id = ${transfer!.id}`,
        sql`UPDATE ledger_holds SET amount_minor = 1 WHERE id = ${f.holdId}`,
        sql`DELETE FROM ledger_holds WHERE id = ${f.holdId}`,
        sql`UPDATE ledger_hold_resolutions SET outcome = 'posted' WHERE hold_id = ${voided.id}`,
        sql`DELETE FROM ledger_hold_resolutions WHERE hold_id = ${voided.id}`,
      ];
      for (const statement of statements) {
        await refusedWithoutEffect(
          () => db.execute(statement),
          dbRefusal('P0001', undefined, 'ledger rows are immutable'),
          f.userId,
          [1000, 300, 700],
        );
      }
      for (const table of ['ledger_transfers', 'ledger_holds', 'ledger_hold_resolutions']) {
        await refusedWithoutEffect(
          () => db.execute(sql.raw(`TRUNCATE ${table} CASCADE`)),
          dbRefusal('P0001', undefined, 'ledger rows are immutable'),
          f.userId,
          [1000, 300, 700],
        );
      }
      assert.equal((await findHold(db, voided.id)).outcome, 'voided');
      await assertLedgerConsistent(db);
    });

    test('amounts must be positive: zero and negative transfers and holds are refused', async () => {
      const f = await fixture();
      for (const amount of [0, -5]) {
        await refusedWithoutEffect(
          () => rawTransfer(db, fundingId, f.walletId, amount, { kind: 'topup' }),
          dbRefusal('23514', 'ledger_transfers_amount_minor_check'),
          f.userId,
          [1000, 300, 700],
        );
        await refusedWithoutEffect(
          () => rawTransfer(db, f.walletId, revenueId, amount),
          dbRefusal('23514', 'ledger_transfers_amount_minor_check'),
          f.userId,
          [1000, 300, 700],
        );
        await refusedWithoutEffect(
          () => rawHold(db, f.walletId, amount),
          dbRefusal('23514', 'ledger_holds_amount_minor_check'),
          f.userId,
          [1000, 300, 700],
        );
      }
      await assertLedgerConsistent(db);
    });

    test('a transfer from an account to itself is refused', async () => {
      const f = await fixture();
      for (const account of [f.walletId, fundingId]) {
        await refusedWithoutEffect(
          () => rawTransfer(db, account, account, 10),
          dbRefusal('23514', 'ledger_transfers_two_accounts'),
          f.userId,
          [1000, 300, 700],
        );
      }
      await assertLedgerConsistent(db);
    });

    test("a hold resolved 'posted' without its charge is refused at commit", async () => {
      const f = await fixture();
      let insertedInsideTransaction = false;
      await refusedWithoutEffect(
        () =>
          t.database.db.transaction(async (tx) => {
            await rawResolution(tx, f.holdId, 'posted');
            // The rule is deferred: the row is visible until the transaction tries to commit.
            const [seen] = await rows<{ outcome: string }>(tx, sql`SELECT outcome FROM ledger_hold_resolutions WHERE hold_id = ${f.holdId}`);
            insertedInsideTransaction = seen?.outcome === 'posted';
          }),
        dbRefusal('23514', undefined, 'resolved as posted without a charge transfer'),
        f.userId,
        [1000, 300, 700],
      );
      assert.equal(insertedInsideTransaction, true);
      // A single autocommitted statement is refused the same way.
      await refusedWithoutEffect(
        () => rawResolution(db, f.holdId, 'posted'),
        dbRefusal('23514', undefined, 'resolved as posted without a charge transfer'),
        f.userId,
        [1000, 300, 700],
      );
      assert.equal((await findHold(db, f.holdId)).outcome, null);
      await assertLedgerConsistent(db);
    });

    test('cached balances change only through the journal: direct writes to them are refused', async () => {
      const f = await fixture();
      const statements = [
        sql`UPDATE ledger_accounts SET posted_minor = posted_minor + 500 WHERE id = ${f.walletId}`,
        sql`UPDATE ledger_accounts SET held_minor = 0 WHERE id = ${f.walletId}`,
        sql`UPDATE ledger_accounts SET posted_minor = posted_minor - 500 WHERE id = ${fundingId}`,
      ];
      for (const statement of statements) {
        await refusedWithoutEffect(
          () => db.execute(statement),
          dbRefusal('P0001', undefined, 'balances change only through ledger transfers'),
          f.userId,
          [1000, 300, 700],
        );
      }
      const [userId] = await createUsersWithWallets(db, 1, { now });
      await db.execute(sql`DELETE FROM ledger_accounts WHERE user_id = ${userId}`);
      await refusedWithoutEffect(
        () =>
          db.execute(sql`INSERT INTO ledger_accounts (kind, user_id, currency, posted_minor, created_at)
                         VALUES ('wallet', ${userId}, 'USD', 1000000, ${now})`),
        dbRefusal('P0001', undefined, 'balances change only through ledger transfers'),
        f.userId,
        [1000, 300, 700],
      );
      await assertLedgerConsistent(db);
    });

    test('creditWallet: the same key and fields replay the first transfer; different fields are refused; money moves once', async () => {
      const f = await fixture();
      const key = `topup-${randomUUID()}`;
      const request = { userId: f.userId, amountMinor: 250, kind: 'topup' as const, actor: 'payments', reason: 'card 1234', idempotencyKey: key, now };
      const fundingBefore = (await systemBalances(db)).funding;
      const first = await creditWallet(db, request);
      assert.equal(first.replayed, false);
      assert.deepEqual(await balance(f.userId), [1250, 300, 950]);
      for (let i = 0; i < 3; i++) {
        const again = await creditWallet(db, { ...request, now: later });
        assert.equal(again.replayed, true);
        assert.deepEqual(again.transfer, first.transfer);
      }
      assert.deepEqual(await balance(f.userId), [1250, 300, 950]);
      assert.equal((await systemBalances(db)).funding, fundingBefore - 250);
      const other = await fixture();
      const mismatches = [
        { ...request, amountMinor: 251 },
        { ...request, reason: 'card 9999' },
        { ...request, kind: 'adjustment' as const },
        { ...request, userId: other.userId },
      ];
      for (const mismatch of mismatches) {
        await refusedWithoutEffect(
          () => creditWallet(db, mismatch),
          (e) => isLedgerError(e, 'idempotency_key_reused'),
          f.userId,
          [1250, 300, 950],
        );
      }
      assert.deepEqual(await balance(other.userId), [1000, 300, 700]);
      assert.equal((await systemBalances(db)).funding, fundingBefore - 250 - 1000);
      await assertLedgerConsistent(db);
    });

    test('postHold, voidHold and expireHold resolve a hold once: every later resolution is hold_already_resolved', async () => {
      const resolvers = {
        post: (holdId: string) => t.database.transaction((tx) => postHold(tx, { holdId, actor: 't', reason: 'sms', now })),
        void: (holdId: string) => t.database.transaction((tx) => voidHold(tx, { holdId, actor: 't', reason: 'cancel', now })),
        expire: (holdId: string) => t.database.transaction((tx) => expireHold(tx, { holdId, actor: 't', reason: 'deadline', now: later })),
      };
      const afterFirst = { post: [700, 0, 700], void: [1000, 0, 1000], expire: [1000, 0, 1000] } as const;
      for (const first of ['post', 'void', 'expire'] as const) {
        const f = await fixture();
        const revenueBefore = (await systemBalances(db)).revenue;
        await resolvers[first](f.holdId);
        const expected = [...afterFirst[first]] as [number, number, number];
        assert.deepEqual(await balance(f.userId), expected, `after ${first}`);
        for (const second of ['post', 'void', 'expire'] as const) {
          await refusedWithoutEffect(
            () => resolvers[second](f.holdId),
            (e) => isLedgerError(e, 'hold_already_resolved'),
            f.userId,
            expected,
          );
        }
        const outcome = { post: 'posted', void: 'voided', expire: 'expired' }[first];
        assert.equal((await findHold(db, f.holdId)).outcome, outcome);
        assert.equal((await systemBalances(db)).revenue, revenueBefore + (first === 'post' ? 300 : 0));
        const w = await walletOf(db, f.userId);
        assert.deepEqual([w.balanceMinor, w.heldMinor, w.availableMinor], expected);
      }
      await assertLedgerConsistent(db);
    });

    describe(`ledger invariant checks detect corruption [${engine}]`, () => {
      let walletId: string;
      let openHoldId: string;

      before(async () => {
        const [userId] = await createUsersWithWallets(db, 1, { now });
        await creditWallet(db, { userId: userId!, amountMinor: 1000, kind: 'topup', actor: 't', reason: 'seed', now });
        const posted = await placeHold(db, { userId: userId!, amountMinor: 100, verificationId: randomUUID(), expiresAt: later, actor: 't', now });
        await t.database.transaction((tx) => postHold(tx, { holdId: posted.id, actor: 't', reason: 'sms', now }));
        const open = await placeHold(db, { userId: userId!, amountMinor: 200, verificationId: randomUUID(), expiresAt: later, actor: 't', now });
        walletId = open.accountId;
        openHoldId = open.id;
      });

      /** Corrupts the ledger with its triggers switched off, runs the checks, and rolls everything back. */
      async function checksAfterCorruption(corrupt: (tx: Tx) => Promise<void>): Promise<Map<string, Check>> {
        let checks: Check[] = [];
        await assert.rejects(
          t.database.db.transaction(async (tx) => {
            await tx.execute(sql`SET LOCAL session_replication_role = replica`);
            await corrupt(tx);
            checks = await checkLedgerInvariants(tx);
            throw new Rollback('corruption is never committed');
          }),
          (e) => e instanceof Rollback,
        );
        return new Map(checks.map((c) => [c.name, c]));
      }

      function assertFailing(checks: Map<string, Check>, expected: Record<string, number>): void {
        const failing = Object.fromEntries([...checks.values()].filter((c) => !c.ok).map((c) => [c.name, c.count]));
        assert.deepEqual(failing, expected);
        for (const c of checks.values()) {
          if (!c.ok) assert.match(c.detail, /^\d+ |sum to -?\d+/);
        }
      }

      test('a healthy ledger passes every check', async () => {
        const checks = await assertLedgerConsistent(db);
        assert.deepEqual(
          checks.map((c) => [c.name, c.ok, c.count]),
          [
            ['journal_balanced', true, 0],
            ['posted_matches_journal', true, 0],
            ['held_matches_holds', true, 0],
            ['available_nonnegative', true, 0],
            ['posted_holds_have_one_charge', true, 0],
          ],
        );
      });

      test('a cached posted balance edited by hand fails journal_balanced and posted_matches_journal', async () => {
        const checks = await checksAfterCorruption(async (tx) => {
          await tx.execute(sql`UPDATE ledger_accounts SET posted_minor = posted_minor + 5 WHERE id = ${walletId}`);
        });
        assertFailing(checks, { journal_balanced: 1, posted_matches_journal: 1 });
        assert.match(checks.get('journal_balanced')!.detail, /sum to 5 /);
        assert.ok(checks.get('posted_matches_journal')!.detail.includes(`${walletId} cached 905 journal 900`));
      });

      test('a transfer that skipped the balance trigger fails posted_matches_journal for both accounts', async () => {
        const checks = await checksAfterCorruption(async (tx) => {
          await tx.execute(sql`INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, actor, created_at)
                               VALUES (${fundingId}, ${walletId}, 50, 'topup', 'corrupt', ${now})`);
        });
        assertFailing(checks, { posted_matches_journal: 2 });
      });

      test('a hold that skipped the balance trigger fails held_matches_holds', async () => {
        const checks = await checksAfterCorruption(async (tx) => {
          await tx.execute(sql`INSERT INTO ledger_holds (account_id, amount_minor, expires_at, actor, created_at)
                               VALUES (${walletId}, 70, ${later}, 'corrupt', ${now})`);
        });
        assertFailing(checks, { held_matches_holds: 1 });
        assert.ok(checks.get('held_matches_holds')!.detail.includes(`${walletId} cached 200 unresolved holds 270`));
      });

      test('a negative available balance fails available_nonnegative', async () => {
        const checks = await checksAfterCorruption(async (tx) => {
          await tx.execute(sql`ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_available_nonnegative`);
          await tx.execute(sql`UPDATE ledger_accounts SET held_minor = held_minor + 1000 WHERE id = ${walletId}`);
        });
        assertFailing(checks, { held_matches_holds: 1, available_nonnegative: 1 });
        assert.ok(checks.get('available_nonnegative')!.detail.includes(`${walletId} available -300`));
      });

      test("a hold resolved 'posted' without its charge, or a charge of an unresolved hold, fails posted_holds_have_one_charge", async () => {
        const withoutCharge = await checksAfterCorruption(async (tx) => {
          await tx.execute(sql`INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, created_at) VALUES (${openHoldId}, 'posted', 'corrupt', ${now})`);
        });
        assertFailing(withoutCharge, { held_matches_holds: 1, posted_holds_have_one_charge: 1 });
        assert.ok(withoutCharge.get('posted_holds_have_one_charge')!.detail.includes(`hold ${openHoldId} posted with 0 matching charges`));

          const chargeOfOpenHold = await checksAfterCorruption(async (tx) => {
          await tx.execute(sql`INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, hold_id, actor, created_at)
                               VALUES (${walletId}, ${revenueId}, 200, 'verification_charge', ${openHoldId}, 'corrupt', ${now})`);
        });
        assertFailing(chargeOfOpenHold, { posted_matches_journal: 2, posted_holds_have_one_charge: 1 });
        assert.ok(chargeOfOpenHold.get('posted_holds_have_one_charge')!.detail.includes(`for hold ${openHoldId} resolved never`));

        const wrongAmount = await checksAfterCorruption(async (tx) => {
          await tx.execute(sql`INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, created_at) VALUES (${openHoldId}, 'posted', 'corrupt', ${now})`);
          await tx.execute(sql`INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, hold_id, actor, created_at)
                               VALUES (${walletId}, ${revenueId}, 199, 'verification_charge', ${openHoldId}, 'corrupt', ${now})`);
        });
        assertFailing(wrongAmount, { posted_matches_journal: 2, held_matches_holds: 1, posted_holds_have_one_charge: 1 });
      });

      test('after the probes the committed ledger is untouched and consistent', async () => {
        await assertLedgerConsistent(db);
        const w = await rows<{ posted: string; held: string }>(
          db,
          sql`SELECT posted_minor::text AS posted, held_minor::text AS held FROM ledger_accounts WHERE id = ${walletId}`,
        );
        assert.deepEqual([Number(w[0]!.posted), Number(w[0]!.held)], [900, 200]);
      });
    });
  });
}
