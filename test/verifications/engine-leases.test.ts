import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { sql } from 'drizzle-orm';
import { engines } from '../support/db.ts';
import { lifecycleHarness, type LifecycleHarness } from '../support/lifecycle.ts';
import { ScriptedProvider, deferred } from '../support/scripted-provider.ts';
import { assertLifecycleConsistent } from '../support/lifecycle-invariants.ts';
import { spawnWorker, type WorkerHandle, type WorkerOptions } from '../support/engine-worker.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { seedEmbeddedDatabase } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { LIFECYCLE_TEST_ENV } from '../support/lifecycle.ts';
import { loadConfig } from '../../src/config.ts';
import { creditWallet, openWallet } from '../../src/ledger/ledger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { firstRow, rows } from '../../src/db/database.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { claimDue, deadAfterMs, heartbeat } from '../../src/engine/queue.ts';
import { loadVerification, type VerificationRow } from '../../src/verifications/lifecycle.ts';

/** Upstream checks seen per order, with who made them; a check starting while another runs is double processing. */
class CheckLog {
  private readonly inFlight = new Map<string, string>();
  readonly overlaps: string[] = [];
  readonly counts = new Map<string, number>();
  readonly byWorker = new Map<string, number>();
  start(order: string, worker: string): void {
    const other = this.inFlight.get(order);
    if (other !== undefined) this.overlaps.push(`${order}: ${worker} while ${other}`);
    this.inFlight.set(order, worker);
    this.counts.set(order, (this.counts.get(order) ?? 0) + 1);
    this.byWorker.set(worker, (this.byWorker.get(worker) ?? 0) + 1);
  }
  end(order: string): void {
    this.inFlight.delete(order);
  }
  reset(): void {
    this.inFlight.clear();
    this.overlaps.length = 0;
    this.counts.clear();
    this.byWorker.clear();
  }
}

for (const engine of engines) {
  describe(`engine leases, two engines in one process [${engine}]`, () => {
    let h: LifecycleHarness;
    let provider: ScriptedProvider;
    const log = new CheckLog();
    let keys = 0;

    before(async () => {
      provider = new ScriptedProvider();
      h = await lifecycleHarness(engine, { provider });
    });
    after(() => h.dispose());
    beforeEach(() => {
      provider.resetBehaviour();
      log.reset();
    });

    async function waitingRows(n: number): Promise<VerificationRow[]> {
      const user = await h.customer(n * 50);
      const out: VerificationRow[] = [];
      for (let i = 0; i < n; i++) {
        out.push((await purchaseVerification(h.deps, { userId: user, idempotencyKey: `lease-${keys++}`, service: 'test_timeout' })).row);
      }
      return out;
    }

    test('claims are disjoint: no order is checked by both engines at once, each due row once per round', async () => {
      const created = await waitingRows(16);
      const ours = created.map((r) => r.providerOrderId!);
      // The worker making a check is the one holding the row's lease.
      provider.onCheck = async (order) => {
        const [lease] = await rows<{ lease_owner: string | null }>(
          h.t.database.db,
          sql`SELECT lease_owner FROM verifications WHERE provider_order_id = ${order.providerOrderId}`,
        );
        log.start(order.providerOrderId, lease?.lease_owner ?? 'unleased');
        await new Promise((resolve) => setTimeout(resolve, 1));
        log.end(order.providerOrderId);
        return provider.defaultCheck(order);
      };
      const first = h.engine('worker-a', { batchSize: 3 });
      const second = h.engine('worker-b', { batchSize: 3 });
      for (let round = 0; round < 3; round++) {
        h.clock.advance(1_000);
        log.counts.clear();
        for (;;) {
          const [a, b] = await Promise.all([first.tick(), second.tick()]);
          if (a.polled + b.polled === 0) break;
        }
        for (const order of ours) assert.equal(log.counts.get(order), 1, `round ${round}: ${order} checked once`);
      }
      assert.deepEqual(log.overlaps, []);
      assert.deepEqual([...log.byWorker.keys()].sort(), ['worker-a', 'worker-b'], 'both engines worked, always under a lease');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test("a killed worker's rows are retaken as soon as its heartbeat is ENGINE_DEAD_AFTER_SECONDS old, not after its lease", async () => {
      const created = await waitingRows(10);
      const ids = new Set(created.map((r) => r.id));
      h.clock.advance(1_000);
      const leaseMs = h.config.LEASE_SECONDS * 1000;
      const deadMs = deadAfterMs(h.config);
      assert.ok(deadMs < leaseMs / 2, 'a dead worker costs seconds, well under a lease');
      // The dead worker said it was alive, claimed the due rows, then died without processing or releasing them.
      const claimedAt = h.clock.now();
      await heartbeat(h.t.database.db, 'dead-worker', claimedAt);
      const claimed = await claimDue(h.t.database.db, { workerId: 'dead-worker', now: claimedAt, leaseMs, deadAfterMs: deadMs, limit: 100, kind: 'poll' });
      assert.deepEqual(new Set(claimed.map((c) => c.id).filter((id) => ids.has(id))), ids);

      const survivor = h.engine('survivor');
      const checked = new Set<string>();
      provider.onCheck = async (order) => {
        checked.add(order.providerOrderId);
        return provider.defaultCheck(order);
      };
      for (const at of [0, 1_000, deadMs - 1]) {
        h.clock.set(new Date(claimedAt.getTime() + at));
        const report = await survivor.tick();
        assert.equal(report.polled, 0, `nothing retaken ${at} ms after the claim`);
      }
      for (const r of created) assert.equal((await loadVerification(h.t.database.db, r.id))?.leaseOwner, 'dead-worker');
      assert.equal(checked.size, 0);
      h.clock.set(new Date(claimedAt.getTime() + deadMs));
      const report = await survivor.tick();
      assert.equal(report.polled, claimed.length, 'every row of the dead worker retaken once its heartbeat stopped');
      for (const r of created) {
        assert.ok(checked.has(r.providerOrderId!), 'polled by the survivor');
        const row = (await loadVerification(h.t.database.db, r.id))!;
        assert.equal(row.leaseOwner, null, 'released by the survivor');
        assert.equal(row.state, 'waiting');
      }
    });

    test('a worker that keeps beating keeps its rows while their lease runs, however long its tick', async () => {
      const [row] = await waitingRows(1);
      h.clock.advance(1_000);
      const leaseMs = h.config.LEASE_SECONDS * 1000;
      const claimedAt = h.clock.now();
      await heartbeat(h.t.database.db, 'busy-worker', claimedAt);
      await claimDue(h.t.database.db, { workerId: 'busy-worker', now: claimedAt, leaseMs, deadAfterMs: deadAfterMs(h.config), limit: 100, kind: 'poll' });
      const other = h.engine('other-worker');
      // The busy worker's heartbeat goes on beside its long tick (Engine.start's pulse).
      for (let at = 1_000; at < leaseMs; at += 1_000) {
        h.clock.set(new Date(claimedAt.getTime() + at));
        await heartbeat(h.t.database.db, 'busy-worker', h.clock.now());
        await other.tick();
      }
      assert.equal((await loadVerification(h.t.database.db, row!.id))?.leaseOwner, 'busy-worker', 'never taken from a live worker inside its lease');
      h.clock.set(new Date(claimedAt.getTime() + leaseMs));
      await other.tick();
      assert.equal((await loadVerification(h.t.database.db, row!.id))?.leaseOwner, null, 'a lapsed lease is taken even from a live worker');
    });

    test('a worker that stalls past its lease loses the row to another; when it wakes up nothing is processed twice', async () => {
      const [row] = await waitingRows(1);
      provider.deliver(row!.providerOrderId!, 'Your code is 606060', '606060', h.clock.now());
      h.clock.advance(1_000);
      const entered = deferred();
      const release = deferred();
      // Only this row's check stalls: the engine works on other due rows at the same time.
      provider.onCheck = async (order) => {
        if (order.providerOrderId !== row!.providerOrderId) return provider.defaultCheck(order);
        provider.onCheck = (o) => provider.defaultCheck(o);
        entered.resolve();
        await release.promise;
        return provider.defaultCheck(order);
      };
      const slow = h.engine('slow-worker');
      const fast = h.engine('fast-worker');
      const stalled = slow.tick();
      await entered.promise;
      h.clock.advance(h.config.LEASE_SECONDS * 1000);
      const report = await fast.tick();
      assert.ok(report.captured >= 1, 'the other worker took the row over and captured the SMS');
      release.resolve();
      await stalled;
      const after = (await loadVerification(h.t.database.db, row!.id))!;
      assert.deepEqual([after.state, after.code, after.leaseOwner], ['received', '606060', null]);
      assert.deepEqual(await h.wallet(row!.userId), [0, 0, 0], 'charged exactly once');
      await assertLifecycleConsistent(h.t.database.db);
    });

    test("a killed worker's rows at their deadline are still refunded within expires_at + 60 s", async () => {
      const [row] = await waitingRows(1);
      h.clock.set(new Date(row!.expiresAt.getTime() - 500));
      await heartbeat(h.t.database.db, 'dead-worker', h.clock.now());
      const claimed = await claimDue(h.t.database.db, {
        workerId: 'dead-worker',
        now: h.clock.now(),
        leaseMs: h.config.LEASE_SECONDS * 1000,
        deadAfterMs: deadAfterMs(h.config),
        limit: 100,
        kind: 'poll',
      });
      assert.ok(claimed.some((c) => c.id === row!.id));
      const survivor = h.engine('survivor');
      h.clock.set(row!.expiresAt);
      await survivor.tick();
      assert.equal((await loadVerification(h.t.database.db, row!.id))?.state, 'waiting', 'still leased by the (just) dead worker');
      h.clock.set(new Date(row!.expiresAt.getTime() - 500 + deadAfterMs(h.config)));
      await survivor.tick();
      const after = (await loadVerification(h.t.database.db, row!.id))!;
      assert.equal(after.state, 'expired');
      assert.ok(after.resolvedAt!.getTime() <= after.expiresAt.getTime() + deadAfterMs(h.config), 'refunded within seconds of the deadline');
      assert.deepEqual(await h.wallet(row!.userId), [50, 0, 50]);
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}

if (engines.includes('postgres')) {
  describe('engine leases, worker processes on PostgreSQL', () => {
    let h: LifecycleHarness;
    let keys = 0;
    const children = new Set<ChildProcess>();

    before(async () => {
      h = await lifecycleHarness('postgres');
    });
    after(async () => {
      for (const child of children) child.kill('SIGKILL');
      await h.dispose();
    });

    function startWorker(options: Omit<WorkerOptions, 'databaseUrl'>): WorkerHandle {
      const worker = spawnWorker({ ...options, databaseUrl: h.t.databaseUrl! });
      children.add(worker.child);
      void worker.exited.then(() => children.delete(worker.child));
      return worker;
    }

    async function waitingRows(n: number): Promise<VerificationRow[]> {
      const user = await h.customer(n * 50);
      const out: VerificationRow[] = [];
      for (let i = 0; i < n; i++) {
        out.push((await purchaseVerification(h.deps, { userId: user, idempotencyKey: `proc-${keys++}`, service: 'test_timeout' })).row);
      }
      return out;
    }

    test('two worker processes never check the same order at the same time', async () => {
      const created = await waitingRows(40);
      const now = new Date(h.clock.now().getTime() + 1_000).toISOString();
      const common = { now, mode: 'ticks' as const, ticks: 8, advanceMs: 1_000, checkDelayMs: 2, batchSize: 8, waitForGo: true };
      const a = startWorker({ ...common, workerId: 'proc-a' });
      const b = startWorker({ ...common, workerId: 'proc-b' });
      await Promise.all([a.waitFor((e) => e.event === 'ready'), b.waitFor((e) => e.event === 'ready')]);
      a.child.stdin!.write('go\n');
      b.child.stdin!.write('go\n');
      assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0]);

      const intervals = new Map<string, { worker: string; start: number; end: number }[]>();
      for (const w of [a, b]) {
        const open = new Map<string, number>();
        for (const e of w.events) {
          if (e.event === 'check-start') open.set(e.order, e.at);
          if (e.event === 'check-end') {
            const list = intervals.get(e.order) ?? [];
            list.push({ worker: e.worker, start: open.get(e.order)!, end: e.at });
            intervals.set(e.order, list);
            open.delete(e.order);
          }
        }
        assert.equal(open.size, 0, 'every check finished');
      }
      const overlaps: string[] = [];
      for (const [order, list] of intervals) {
        list.sort((x, y) => x.start - y.start);
        for (let i = 1; i < list.length; i++) {
          if (list[i]!.start < list[i - 1]!.end) overlaps.push(`${order}: ${list[i - 1]!.worker} and ${list[i]!.worker}`);
        }
      }
      assert.deepEqual(overlaps, []);
      for (const r of created) assert.ok(intervals.has(r.providerOrderId!), `${r.id} was polled`);
      const perWorker = [a, b].map((w) => w.events.filter((e) => e.event === 'check-end').length);
      assert.ok(perWorker[0]! > 0 && perWorker[1]! > 0, `both workers worked: ${perWorker}`);
      const [leased] = await rows<{ n: number }>(h.t.database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE lease_owner IS NOT NULL`);
      assert.equal(Number(leased!.n), 0, 'every lease was given back');
    });

    test("a killed worker process's rows are retaken by another worker once its heartbeat stopped, in seconds", async () => {
      const created = await waitingRows(6);
      const ids = created.map((r) => r.id);
      h.clock.advance(1_000);
      const claimedAt = h.clock.now();
      const doomed = startWorker({ now: claimedAt.toISOString(), workerId: 'proc-doomed', mode: 'hang', ticks: 1 });
      await doomed.waitFor((e) => e.event === 'check-start');
      const leases = () =>
        rows<{ lease_owner: string | null; next_check_at: Date }>(
          h.t.database.db,
          sql`SELECT lease_owner, next_check_at FROM verifications WHERE id IN ${ids}`,
        );
      assert.deepEqual(
        (await leases()).map((l) => l.lease_owner),
        ids.map(() => 'proc-doomed'),
      );
      doomed.child.kill('SIGKILL');
      await doomed.exited;

      const survivor = h.engine('survivor');
      const deadMs = deadAfterMs(h.config);
      for (const at of [0, deadMs - 1]) {
        h.clock.set(new Date(claimedAt.getTime() + at));
        await survivor.tick();
        assert.deepEqual(
          (await leases()).map((l) => l.lease_owner),
          ids.map(() => 'proc-doomed'),
          `not retaken ${at} ms after the claim`,
        );
      }
      h.clock.set(new Date(claimedAt.getTime() + deadMs));
      await survivor.tick();
      for (const l of await leases()) {
        assert.equal(l.lease_owner, null, 'retaken and released by the survivor');
        assert.ok(new Date(l.next_check_at).getTime() > claimedAt.getTime() + deadMs, 'polled by the survivor');
      }
      for (const id of ids) assert.equal((await loadVerification(h.t.database.db, id))?.state, 'waiting');
      await assertLifecycleConsistent(h.t.database.db);
    });
  });
}

describe('the embedded engine at start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'namaskah-leases-'));
  let server: RunningServer | undefined;
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('clears the leases and worker rows a killed predecessor left: its rows are due at once', async () => {
    await seedEmbeddedDatabase(dir);
    const clock = new ManualClock();
    const config = loadConfig({ ...LIFECYCLE_TEST_ENV, DATA_DIR: dir, PORT: '0', DATABASE_URL: '', ADMIN_EMAIL: 'root@example.test', ADMIN_PASSWORD: 'cedar-signal-65' });
    const start = () => startServer(config, { clock, worker: false, logger: pino({ level: 'silent' }), print: () => {} });
    server = await start();
    const db = server.ctx.database.db;
    const user = await firstRow<{ id: string }>(db, sql`INSERT INTO users (email, password_hash, created_at) VALUES ('c@example.test', 'x', ${clock.now()}) RETURNING id`);
    await openWallet(db, user!.id, config.CURRENCY, clock.now());
    await creditWallet(db, { userId: user!.id, amountMinor: 100, kind: 'topup', actor: 'admin', reason: 'test funds', now: clock.now() });
    const row = (await purchaseVerification(server.runtime.deps, { userId: user!.id, idempotencyKey: 'leftover', service: 'test_timeout' })).row;
    // The previous engine was killed holding the row, its heartbeat still fresh.
    await heartbeat(db, 'killed-engine', clock.now());
    await db.execute(sql`UPDATE verifications SET lease_owner = 'killed-engine', lease_until = ${new Date(clock.now().getTime() + 30_000)}, next_check_at = ${clock.now()} WHERE id = ${row.id}`);
    await server.close();

    server = await start();
    const after = (await loadVerification(server.ctx.database.db, row.id))!;
    assert.deepEqual([after.leaseOwner, after.leaseUntil], [null, null]);
    assert.deepEqual(await rows(server.ctx.database.db, sql`SELECT id FROM engine_workers`), []);
    const report = await server.runtime.engine.tick();
    assert.equal(report.polled, 1, 'worked on at once, not after the old lease');
    await server.close();
    server = undefined;
  });
});
