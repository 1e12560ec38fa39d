import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { rows } from '../../src/db/database.ts';
import { raiseLowBalanceNotices, setLowBalanceThreshold } from '../../src/notifications/low-balance.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { reportNumber } from '../../src/verifications/reports.ts';
import { DomainError } from '../../src/errors.ts';

/**
 * Once per crossing, with real concurrency: several engines looking at the same moment raise one
 * notice; a report limit is not passed by concurrent reports either.
 */
for (const engine of engines) {
  describe(`low-balance notices and the report limit under concurrency [${engine}]`, () => {
    let h: LifecycleHarness;
    before(async () => {
      h = await lifecycleHarness(engine, { env: { REPORTS_PER_DAY: '2' } });
    });
    after(async () => h?.dispose());

    const notices = async (userId: string) =>
      (await rows<{ id: string }>(h.t.database.db, sql`SELECT id FROM notifications WHERE user_id = ${userId} AND kind = 'low_balance'`)).length;

    test('six engines at once raise one notice per crossing', async () => {
      const user = await h.customer(100);
      await setLowBalanceThreshold(h.t.database.db, user, 80, h.clock.now());
      await Promise.all(Array.from({ length: 6 }, () => raiseLowBalanceNotices(h.t.database, 'USD', h.clock.now())));
      assert.equal(await notices(user), 0, 'available 100 is not below 80');

      const bought = await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      assert.deepEqual(await h.wallet(user), [100, 50, 50]);
      const raised = await Promise.all(Array.from({ length: 6 }, () => raiseLowBalanceNotices(h.t.database, 'USD', h.clock.now())));
      assert.equal(raised.reduce((a, b) => a + b, 0), 1);
      assert.equal(await notices(user), 1);

      // Back above (the hold released), re-armed; below again: a second notice, once.
      await reportNumber(h.deps, { userId: user, verificationId: bought.row.id, reason: 'code_not_received' });
      await Promise.all(Array.from({ length: 3 }, () => raiseLowBalanceNotices(h.t.database, 'USD', h.clock.now())));
      await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' });
      await Promise.all(Array.from({ length: 6 }, () => raiseLowBalanceNotices(h.t.database, 'USD', h.clock.now())));
      assert.equal(await notices(user), 2);
    });

    test('concurrent reports never pass REPORTS_PER_DAY together', async () => {
      const user = await h.customer(1000);
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await purchaseVerification(h.deps, { userId: user, idempotencyKey: randomUUID(), service: 'test_timeout' })).row.id);
      const results = await Promise.allSettled(ids.map((id) => reportNumber(h.deps, { userId: user, verificationId: id, reason: 'number_rejected' })));
      const accepted = results.filter((r) => r.status === 'fulfilled').length;
      assert.equal(accepted, 2);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as DomainError).code, 'rate_limited');
      const [count] = await rows<{ n: number }>(h.t.database.db, sql`SELECT count(*)::int AS n FROM number_reports WHERE user_id = ${user}`);
      assert.equal(Number(count!.n), 2);
    });
  });
}
