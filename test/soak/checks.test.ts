import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { cancelVerification } from '../../src/verifications/flows.ts';
import { loadVerification } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { finalVerifications, finalWallets, refundDelays, sqlViolations } from '../../scripts/soak/checks.ts';

/**
 * The soak's own SQL: silent on a database the lifecycle left consistent, and each rule names the
 * verification or wallet that breaks it once a row is altered behind the lifecycle's back.
 */
const broken = async (h: LifecycleHarness) =>
  Object.fromEntries((await sqlViolations(h.t.database.db)).filter((v) => v.count > 0).map((v) => [v.name, v.sample]));

for (const engine of engines) {
  describe(`soak SQL checks [${engine}]`, () => {
    let h: LifecycleHarness;
    let user: string;
    const ids: Record<'received' | 'expired' | 'cancelled' | 'failed', string> = { received: '', expired: '', cancelled: '', failed: '' };

    before(async () => {
      h = await lifecycleHarness(engine, { env: { VERIFICATION_TTL_SECONDS: '60', POLL_INTERVAL_MS: '1000' } });
      user = await h.customer(1000);
      const buy = async (service: string, key: string) => (await purchaseVerification(h.deps, { userId: user, idempotencyKey: key, service })).row;
      const success = await buy('test_success', 'k-success');
      const timeout = await buy('test_timeout', 'k-timeout');
      const cancelled = await buy('test_timeout', 'k-cancel');
      await assert.rejects(buy('test_no_numbers', 'k-failed'), /no numbers/);
      assert.equal((await cancelVerification(h.deps, cancelled, 'customer')).kind, 'cancelled');
      h.clock.advance(1_000);
      await h.runtime.engine.tick();
      // The deadline passes; the sweep lands 2.5 s after it.
      h.clock.set(new Date(timeout.expiresAt.getTime() + 2_500));
      await h.runtime.engine.tick();
      const failed = (await finalVerifications(h.t.database.db)).find((v) => v.key === 'k-failed');
      Object.assign(ids, { received: success.id, expired: timeout.id, cancelled: cancelled.id, failed: failed?.id });
    });
    after(() => h.dispose());

    test('a consistent run: every rule holds and the final rows are read as they are', async () => {
      assert.deepEqual(await broken(h), {});
      const rows = new Map((await finalVerifications(h.t.database.db)).map((v) => [v.id, v]));
      assert.deepEqual(
        [ids.received, ids.expired, ids.cancelled, ids.failed].map((id) => {
          const v = rows.get(id)!;
          return [v.state, v.outcome, v.chargedMinor, v.charges, v.priceMinor];
        }),
        [
          ['received', 'posted', 50, 1, 50],
          ['expired', 'expired', 0, 0, 50],
          ['cancelled', 'voided', 0, 0, 50],
          ['failed', 'voided', 0, 0, 50],
        ],
      );
      const wallet = (await finalWallets(h.t.database.db)).find((w) => w.userId === user);
      assert.deepEqual(wallet, { userId: user, postedMinor: 950, heldMinor: 0 });
      const once = { expired: 1, p50_seconds: 2.5, p99_seconds: 2.5, max_seconds: 2.5 };
      const none = { expired: 0, p50_seconds: null, p99_seconds: null, max_seconds: null };
      const expiredAt = rows.get(ids.expired)!.expiresAt;
      assert.deepEqual(await refundDelays(h.t.database.db), { all: once, outside: once });
      const around = [{ from: new Date(expiredAt - 1), to: new Date(expiredAt + 1) }];
      assert.deepEqual(await refundDelays(h.t.database.db, around), { all: once, outside: none });
    });

    test('an SMS dated after the deadline of a received verification is named', async () => {
      const row = await loadVerification(h.t.database.db, ids.received);
      const original = await h.t.database.db.execute(sql`SELECT received_at FROM verification_messages WHERE verification_id = ${ids.received}`);
      await h.t.database.db.execute(
        sql`UPDATE verification_messages SET received_at = ${new Date(row!.expiresAt.getTime() + 1_000)} WHERE verification_id = ${ids.received}`,
      );
      try {
        assert.deepEqual(await broken(h), { no_sms_captured_after_deadline: [ids.received] });
      } finally {
        const at = (original as unknown as { rows: { received_at: Date }[] }).rows[0]!.received_at;
        await h.t.database.db.execute(sql`UPDATE verification_messages SET received_at = ${at} WHERE verification_id = ${ids.received}`);
      }
      assert.deepEqual(await broken(h), {});
    });

    test('a charged verification shown as expired breaks received ⇔ posted, its price and its wallet', async () => {
      await h.t.database.db.execute(sql`UPDATE verifications SET state = 'expired' WHERE id = ${ids.received}`);
      try {
        const wallet = (await h.t.database.db.execute(sql`SELECT id::text AS id FROM ledger_accounts WHERE user_id = ${user}`)) as unknown as {
          rows: { id: string }[];
        };
        assert.deepEqual(await broken(h), {
          received_iff_posted: [ids.received],
          charged_exactly_price: [ids.received],
          wallet_is_credits_minus_captured: [wallet.rows[0]!.id],
        });
      } finally {
        await h.t.database.db.execute(sql`UPDATE verifications SET state = 'received' WHERE id = ${ids.received}`);
      }
    });

    test('an active verification whose hold is already resolved', async () => {
      await h.t.database.db.execute(sql`UPDATE verifications SET state = 'waiting', resolved_at = NULL WHERE id = ${ids.cancelled}`);
      try {
        assert.deepEqual(await broken(h), { one_resolution_per_hold: [ids.cancelled] });
      } finally {
        await h.t.database.db.execute(sql`UPDATE verifications SET state = 'cancelled', resolved_at = updated_at WHERE id = ${ids.cancelled}`);
      }
      assert.deepEqual(await broken(h), {});
    });

    test('cached balances moved outside the journal are named (the guard trigger switched off for the test)', async () => {
      const db = h.t.database.db;
      const found = (await db.execute(sql`SELECT id::text AS id FROM ledger_accounts WHERE user_id = ${user}`)) as unknown as { rows: { id: string }[] };
      const wallet = found.rows[0]!.id;
      const shift = async (posted: number, held: number) => {
        await db.execute(sql`ALTER TABLE ledger_accounts DISABLE TRIGGER ledger_accounts_guard_balances`);
        await db.execute(sql`UPDATE ledger_accounts SET posted_minor = posted_minor + ${posted}, held_minor = held_minor + ${held} WHERE id = ${wallet}`);
        await db.execute(sql`ALTER TABLE ledger_accounts ENABLE TRIGGER ledger_accounts_guard_balances`);
      };
      await shift(7, 3);
      try {
        assert.deepEqual(await broken(h), {
          journal_sums_to_zero: ['all accounts: 7'],
          cached_posted_is_journal: [wallet],
          cached_held_is_open_holds: [wallet],
          wallet_is_credits_minus_captured: [wallet],
        });
      } finally {
        await shift(-7, -3);
      }
      assert.deepEqual(await broken(h), {});
    });
  });
}
