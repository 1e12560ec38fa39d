import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { engines, freshDatabase, type TestDatabase } from '../support/db.ts';
import { creditWallet, openWallet, placeHold, postHold, voidHold, walletOf, walletHistory } from '../../src/ledger/ledger.ts';
import { isLedgerError } from '../../src/ledger/errors.ts';
import { randomUUID } from 'node:crypto';

const now = new Date('2026-01-01T00:00:00Z');

for (const engine of engines) {
  describe(`ledger basics [${engine}]`, () => {
    let t: TestDatabase;
    let userId: string;
    before(async () => {
      t = await freshDatabase(engine);
      const row = await t.database.db.execute(
        sql`INSERT INTO users (email, password_hash, created_at) VALUES ('a@example.com', 'x', ${now}) RETURNING id`,
      );
      userId = (row as unknown as { rows: { id: string }[] }).rows[0]!.id;
      await openWallet(t.database.db, userId, 'USD', now);
    });
    after(() => t.dispose());

    test('top-up, hold, post and void move exact amounts', async () => {
      const db = t.database.db;
      await creditWallet(db, { userId, amountMinor: 1000, kind: 'topup', actor: 'admin', reason: 'first', now });
      const v1 = randomUUID();
      const h1 = await t.database.transaction((tx) =>
        placeHold(tx, { userId, amountMinor: 300, verificationId: v1, expiresAt: now, actor: 'customer', now }),
      );
      assert.deepEqual(await walletOf(db, userId).then((w) => [w.balanceMinor, w.heldMinor, w.availableMinor]), [1000, 300, 700]);
      await t.database.transaction((tx) => postHold(tx, { holdId: h1.id, actor: 'poller', reason: 'sms', now }));
      assert.deepEqual(await walletOf(db, userId).then((w) => [w.balanceMinor, w.heldMinor, w.availableMinor]), [700, 0, 700]);
      const h2 = await placeHold(db, { userId, amountMinor: 700, verificationId: randomUUID(), expiresAt: now, actor: 'customer', now });
      await assert.rejects(
        placeHold(db, { userId, amountMinor: 1, verificationId: randomUUID(), expiresAt: now, actor: 'customer', now }),
        (e) => isLedgerError(e, 'insufficient_funds'),
      );
      await voidHold(db, { holdId: h2.id, actor: 'customer', reason: 'cancel', now });
      await assert.rejects(voidHold(db, { holdId: h2.id, actor: 'customer', reason: 'cancel', now }), (e) =>
        isLedgerError(e, 'hold_already_resolved'),
      );
      assert.deepEqual(await walletOf(db, userId).then((w) => [w.balanceMinor, w.heldMinor, w.availableMinor]), [700, 0, 700]);
      const history = await walletHistory(db, userId, { limit: 50 });
      assert.deepEqual(
        history.items.map((i) => [i.type, i.amountMinor]).sort(),
        [
          ['topup', 1000],
          ['verification_charge', 0],
          ['verification_hold', -300],
          ['verification_hold', -700],
          ['verification_refund', 700],
        ].sort(),
      );
    });
  });
}
