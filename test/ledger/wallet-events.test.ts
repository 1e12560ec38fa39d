import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { firstRow } from '../../src/db/database.ts';
import { EVENTS_CHANNEL, type BusEvent } from '../../src/events/bus.ts';
import { creditWallet, expireHold, openWallet, placeHold, postHold, refundCharge, voidHold } from '../../src/ledger/ledger.ts';
import { engines, freshDatabase, type TestDatabase } from '../support/db.ts';

/**
 * Every money movement of a wallet — credit, hold, capture, release (void, expiry), correction —
 * announces a `wallet` event to its owner from inside the ledger, in the transaction that makes it:
 * delivered when it commits, never when it rolls back.
 */
const now = new Date('2026-01-01T00:00:00Z');

for (const engine of engines) {
  describe(`wallet events from the ledger [${engine}]`, () => {
    let t: TestDatabase;
    const received: BusEvent[] = [];
    const waiters: (() => void)[] = [];
    let unlisten: () => Promise<void>;

    before(async () => {
      t = await freshDatabase(engine);
      unlisten = await t.database.listen(EVENTS_CHANNEL, (payload) => {
        received.push(JSON.parse(payload) as BusEvent);
        for (const wake of waiters.splice(0)) wake();
      });
    });
    after(async () => {
      await unlisten();
      await t.dispose();
    });

    async function customer(): Promise<string> {
      const row = await firstRow<{ id: string }>(
        t.database.db,
        sql`INSERT INTO users (email, password_hash, created_at) VALUES (${`${randomUUID()}@example.com`}, 'x', ${now}) RETURNING id`,
      );
      await openWallet(t.database.db, row!.id, 'USD', now);
      return row!.id;
    }

    /** Waits until `count` events have arrived in all (the notifications come asynchronously). */
    async function untilReceived(count: number): Promise<void> {
      while (received.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
    }

    test('each movement announces one wallet event to its owner; a rolled-back one announces nothing', { timeout: 20_000 }, async () => {
      const user = await customer();
      const other = await customer();
      const from = received.length;
      const events = () => received.slice(from).map((e) => [e.kind, e.userId === user ? 'user' : e.userId === other ? 'other' : e.userId]);
      const db = t.database.db;

      await creditWallet(db, { userId: user, amountMinor: 1000, kind: 'topup', actor: 'admin', reason: 'funds', now });
      const captured = await placeHold(db, { userId: user, amountMinor: 100, verificationId: randomUUID(), expiresAt: now, actor: 'customer', now });
      await t.database.transaction((tx) => postHold(tx, { holdId: captured.id, actor: 'poller', reason: 'sms', now }));
      const voided = await placeHold(db, { userId: user, amountMinor: 50, verificationId: randomUUID(), expiresAt: now, actor: 'customer', now });
      await voidHold(db, { holdId: voided.id, actor: 'customer', reason: 'cancel', now });
      const expired = await placeHold(db, { userId: user, amountMinor: 30, verificationId: randomUUID(), expiresAt: now, actor: 'customer', now });
      await expireHold(db, { holdId: expired.id, actor: 'sweeper', reason: 'deadline', now });
      const correction = await refundCharge(db, { holdId: captured.id, actor: 'reconciler', reason: 'wrong capture', now });
      assert.equal(correction.replayed, false);
      // Asking for the same correction again moves nothing, so it announces nothing.
      assert.equal((await refundCharge(db, { holdId: captured.id, actor: 'reconciler', reason: 'wrong capture', now })).replayed, true);

      // A movement that rolls back announces nothing; the next committed one (another owner's) is
      // delivered after anything the rolled-back transaction could have sent.
      await assert.rejects(
        t.database.transaction(async (tx) => {
          await creditWallet(tx, { userId: user, amountMinor: 5, kind: 'topup', actor: 'admin', reason: 'undone', now });
          throw new Error('roll back');
        }),
        /roll back/,
      );
      await creditWallet(db, { userId: other, amountMinor: 7, kind: 'topup', actor: 'admin', reason: 'marker', now });

      await untilReceived(from + 9);
      // PostgreSQL folds identical notifications of one transaction into one: each row below is one transaction.
      assert.deepEqual(events(), [
        ['wallet', 'user'], // credit
        ['wallet', 'user'], // hold
        ['wallet', 'user'], // capture
        ['wallet', 'user'], // hold
        ['wallet', 'user'], // void
        ['wallet', 'user'], // hold
        ['wallet', 'user'], // expiry
        ['wallet', 'user'], // correction
        ['wallet', 'other'], // the marker
      ]);
    });
  });
}
