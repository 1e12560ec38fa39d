import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { FaultSwitch, lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { rows } from '../../src/db/database.ts';
import { Engine } from '../../src/engine/engine.ts';
import { webhookEndpoints } from '../../src/outbound-webhooks/schema.ts';
import { cancelVerification, expireDue, expireVerification } from '../../src/verifications/flows.ts';
import { loadVerification, recordMessages, type VerificationRow } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';

/**
 * The deadline in bulk (flows.ts expireDue, lifecycle.ts transitionMany): many waiting
 * verifications past their deadline expire in one transaction per batch, every hold released
 * exactly once, with the same events, notices and outbox rows as one at a time; and a capture, a
 * cancel or another engine acting on a row while its batch is being expired never moves money twice.
 */
const PRICE = 50;

interface Ledger {
  id: string;
  state: string;
  resolutions: number;
  outcome: string | null;
  charged: number;
  expiredEvents: number;
  refundNotices: number;
  upstreamStatus: string;
}

async function ledgerOf(h: LifecycleHarness, ids: string[]): Promise<Map<string, Ledger>> {
  const found = await rows<{
    id: string;
    state: string;
    resolutions: number;
    outcome: string | null;
    charged: string;
    expired_events: number;
    refund_notices: number;
    upstream_status: string;
  }>(
    h.t.database.db,
    sql`SELECT v.id, v.state, v.upstream_status,
               (SELECT count(*)::int FROM ledger_hold_resolutions r WHERE r.hold_id = v.hold_id) AS resolutions,
               (SELECT max(r.outcome) FROM ledger_hold_resolutions r WHERE r.hold_id = v.hold_id) AS outcome,
               (SELECT coalesce(sum(t.amount_minor), 0)::text FROM ledger_transfers t WHERE t.hold_id = v.hold_id) AS charged,
               (SELECT count(*)::int FROM verification_events e WHERE e.verification_id = v.id AND e.to_state = 'expired' AND e.from_state = 'waiting') AS expired_events,
               (SELECT count(*)::int FROM notifications n WHERE n.verification_id = v.id AND n.kind = 'refund_issued') AS refund_notices
        FROM verifications v WHERE v.id IN (SELECT value::uuid FROM json_array_elements_text(${JSON.stringify(ids)}::json))`,
  );
  return new Map(
    found.map((r) => [
      r.id,
      {
        id: r.id,
        state: r.state,
        resolutions: Number(r.resolutions),
        outcome: r.outcome,
        charged: Number(r.charged),
        expiredEvents: Number(r.expired_events),
        refundNotices: Number(r.refund_notices),
        upstreamStatus: r.upstream_status,
      },
    ]),
  );
}

/** Every hold resolved exactly once, as its verification's final state says; returns how many were charged. */
function assertEachResolvedOnce(ledger: Map<string, Ledger>): number {
  let charged = 0;
  for (const row of ledger.values()) {
    assert.equal(row.resolutions, 1, `hold of ${row.id} resolved once (${row.state})`);
    const expected = { expired: ['expired', 0, 1, 1], received: ['posted', PRICE, 0, 0], cancelled: ['voided', 0, 0, 1] }[row.state];
    assert.ok(expected, `${row.id} ended ${row.state}`);
    assert.deepEqual([row.outcome, row.charged, row.expiredEvents, row.refundNotices], expected, `${row.id} (${row.state})`);
    if (row.state === 'received') charged++;
  }
  return charged;
}

for (const engine of engines) {
  describe(`deadline in bulk [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    const faults = new FaultSwitch();
    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, { provider, faults: faults.hook });
    });
    after(() => h.dispose());

    /** `count` waiting verifications spread over `customers` customers (each funded with `funds`), one deadline. */
    async function waitingBatch(customers: number, count: number, funds: number): Promise<{ users: string[]; bought: VerificationRow[] }> {
      const users: string[] = [];
      for (let i = 0; i < customers; i++) users.push(await h.customer(funds));
      const bought: VerificationRow[] = [];
      for (let i = 0; i < count; i++) {
        const out = await purchaseVerification(h.deps, { userId: users[i % customers]!, idempotencyKey: randomUUID(), service: 'test_timeout' });
        assert.equal(out.row.state, 'waiting');
        bought.push(out.row);
      }
      const latest = Math.max(...bought.map((r) => r.expiresAt.getTime()));
      h.clock.set(new Date(latest + 1_000));
      return { users, bought };
    }

    function engineWith(workerId: string, expireBatchSize: number): Engine {
      return new Engine(h.runtime.engineDeps, { workerId, expireBatchSize });
    }

    test('40 verifications due together: expired in batches of 16, each hold released once, wallets exact, same rows as one at a time', async () => {
      faults.reset();
      const { users, bought } = await waitingBatch(3, 40, 1000);
      // One customer listens for expiries: the batch writes one outbox event and delivery per verification of theirs.
      const now = h.clock.now();
      await h.t.database.db.insert(webhookEndpoints).values({
        userId: users[0]!,
        url: 'https://example.test/hook',
        events: ['verification.expired'],
        secret: 'whsec_test',
        createdAt: now,
        updatedAt: now,
      });
      const held = await Promise.all(users.map((u) => h.wallet(u)));
      assert.deepEqual(held, [[1000, 14 * PRICE, 1000 - 14 * PRICE], [1000, 13 * PRICE, 1000 - 13 * PRICE], [1000, 13 * PRICE, 1000 - 13 * PRICE]]);

      const worker = engineWith('batch-worker', 16);
      const report = await worker.tick();
      assert.equal(report.expired, 40);
      const ids = bought.map((r) => r.id);
      const ledger = await ledgerOf(h, ids);
      assert.equal(assertEachResolvedOnce(ledger), 0);
      for (const u of users) assert.deepEqual(await h.wallet(u), [1000, 0, 1000]);
      assert.equal(provider.calls.check >= 40, true, 'the late watch looked upstream after the refunds');

      const outbox = await rows<{ n: number; deliveries: number }>(
        h.t.database.db,
        sql`SELECT count(*)::int AS n, (SELECT count(*)::int FROM outbound_webhook_deliveries d JOIN outbound_webhook_events e2 ON e2.id = d.event_id
                                         WHERE e2.user_id = ${users[0]!}) AS deliveries
            FROM outbound_webhook_events e WHERE e.user_id = ${users[0]!} AND e.type = 'verification.expired'`,
      );
      assert.deepEqual([Number(outbox[0]!.n), Number(outbox[0]!.deliveries)], [14, 14]);

      // The upstream cancels were owed, not waited for; the same tick's settlement did them.
      for (const row of ledger.values()) assert.ok(['cancel_owed', 'cancelled'].includes(row.upstreamStatus), row.upstreamStatus);
      // Another pass changes nothing: nothing is released twice.
      h.clock.advance(301_000);
      await worker.tick();
      assertEachResolvedOnce(await ledgerOf(h, ids));
      for (const id of ids) assert.equal((await loadVerification(h.t.database.db, id))?.upstreamStatus, 'cancelled');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('between claim and write (injected): an SMS captured, a cancel, another engine and a reconcile repair on the same rows', async () => {
      faults.reset();
      const { users, bought } = await waitingBatch(1, 8, 1000);
      const [smsRow, cancelRow] = bought;
      const takeover = bought.slice(2, 5);
      faults.once('expire.checked', async () => {
        // The SMS arrived in time: it wins the row, charged once.
        const sms = await recordMessages(h.deps, smsRow!.id, [{ providerMessageId: `m-${smsRow!.id}`, text: 'Your code is 111222', code: '111222', receivedAt: smsRow!.expiresAt }], 'webhook');
        assert.equal(sms?.captured, true);
        // The customer's cancel, refunded by its own transaction.
        const cancel = await cancelVerification(h.deps, (await loadVerification(h.t.database.db, cancelRow!.id))!, 'customer');
        assert.equal(cancel.kind, 'cancelled');
        // Another engine (this one presumed dead) expires two of the rows first.
        const other = await expireDue(h.runtime.engineDeps, takeover.slice(0, 2));
        assert.equal(other.expired.length, 2);
        // The reconciler's repair of a hold past its deadline (expireVerification) takes the third.
        const repaired = await expireVerification(h.deps, takeover[2]!, 'reconciler');
        assert.equal(repaired?.state, 'expired');
      });
      const report = await engineWith('slow-worker', 100).tick();
      assert.equal(faults.pending('expire.checked'), false);
      assert.equal(report.expired, 3, 'the batch expired only the rows still waiting');
      const ledger = await ledgerOf(h, bought.map((r) => r.id));
      assert.equal(assertEachResolvedOnce(ledger), 1);
      assert.deepEqual(
        bought.map((r) => ledger.get(r.id)!.state),
        ['received', 'cancelled', 'expired', 'expired', 'expired', 'expired', 'expired', 'expired'],
      );
      assert.deepEqual(await h.wallet(users[0]!), [1000 - PRICE, 0, 1000 - PRICE]);
      // No lease left behind on the rows the batch lost.
      const leased = await rows<{ n: number }>(
        h.t.database.db,
        sql`SELECT count(*)::int AS n FROM verifications WHERE lease_owner = 'slow-worker'`,
      );
      assert.equal(Number(leased[0]!.n), 0);
      await assertLifecycleConsistent(h.t.database.db);
    });

    test('real concurrency: two engines, SMS captures and cancels on the same due rows at once', async () => {
      faults.reset();
      const { users, bought } = await waitingBatch(4, 48, 1000);
      const sms = bought.filter((_, i) => i % 6 === 0);
      const cancels = bought.filter((_, i) => i % 6 === 1);
      const a = engineWith('engine-a', 10);
      const b = engineWith('engine-b', 7);
      await Promise.all([
        a.tick(),
        b.tick(),
        ...sms.map((row) =>
          recordMessages(h.deps, row.id, [{ providerMessageId: `c-${row.id}`, text: 'Your code is 333444', code: '333444', receivedAt: row.expiresAt }], 'webhook'),
        ),
        ...cancels.map(async (row) => {
          const answer = await cancelVerification(h.deps, row, 'customer');
          assert.ok(['cancelled', 'invalid_state'].includes(answer.kind), answer.kind);
        }),
      ]);
      // Whatever lost a race and is still due is taken by the next pass.
      await a.tick();
      const ledger = await ledgerOf(h, bought.map((r) => r.id));
      const charged = assertEachResolvedOnce(ledger);
      // An SMS that lost to the batch is stored as late, never charged; one that won is charged once.
      const perUser = new Map(users.map((u) => [u, 0]));
      for (const row of bought) if (ledger.get(row.id)!.state === 'received') perUser.set(row.userId, perUser.get(row.userId)! + 1);
      assert.equal([...perUser.values()].reduce((x, y) => x + y, 0), charged);
      for (const u of users) {
        const paid = perUser.get(u)! * PRICE;
        assert.deepEqual(await h.wallet(u), [1000 - paid, 0, 1000 - paid]);
      }
      for (const row of bought) {
        if (!sms.includes(row) && !cancels.includes(row)) assert.equal(ledger.get(row.id)!.state, 'expired');
      }
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}
