import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { sql } from 'drizzle-orm';
import { engines, freshDatabase, testDatabaseUrl, type TestDatabase } from '../support/db.ts';
import {
  assertLedgerConsistent,
  assertLedgerMatchesTally,
  createUsersWithWallets,
  mergeTallies,
  runRandomLedgerTraffic,
  systemBalances,
  walletBalances,
  type LedgerTally,
} from '../support/ledger-invariants.ts';
import { rows, type Database, type Executor } from '../../src/db/database.ts';
import { creditWallet, findHold, placeHold, postHold, voidHold, expireHold, type HoldOutcome } from '../../src/ledger/ledger.ts';
import { isLedgerError } from '../../src/ledger/errors.ts';

/**
 * Bank-style concurrency: many transactions at once on a handful of wallets. While they run, every
 * snapshot must satisfy the invariants; afterwards the balances must equal exactly what the
 * operations that succeeded imply.
 */

const now = new Date('2026-01-01T00:00:00Z');
const WALLETS = 5;
const INITIAL = 1000;
const seedBase = Number(process.env.LEDGER_SEED ?? Date.now() % 1_000_000);

async function setUpWallets(database: Database): Promise<{ userIds: string[]; initial: Parameters<typeof assertLedgerMatchesTally>[3] }> {
  const userIds = await createUsersWithWallets(database.db, WALLETS, { now });
  for (const userId of userIds) {
    await creditWallet(database.db, { userId, amountMinor: INITIAL, kind: 'topup', actor: 'test', reason: 'opening balance', now });
  }
  return { userIds, initial: { wallets: await walletBalances(database.db, userIds), system: await systemBalances(database.db) } };
}

/** How many ledger rows exist: a snapshot that sees strictly between the start and end counts was mid-run. */
async function ledgerRowCount(ex: Executor): Promise<number> {
  const [row] = await rows<{ n: number }>(
    ex,
    sql`SELECT ((SELECT count(*) FROM ledger_transfers) + (SELECT count(*) FROM ledger_holds)
                + (SELECT count(*) FROM ledger_hold_resolutions))::int AS n`,
  );
  return row!.n;
}

/**
 * A snapshot observer for the traffic: all invariant checks in one read-only REPEATABLE READ
 * transaction (one snapshot of the whole ledger), recording how many ledger rows it saw.
 */
function snapshotObserver(database: Database): { observe: () => Promise<void>; seen: number[] } {
  const seen: number[] = [];
  const observe = () =>
    database.db.transaction(
      async (tx) => {
        await assertLedgerConsistent(tx, `snapshot ${seen.length + 1} during the run`);
        seen.push(await ledgerRowCount(tx));
      },
      { isolationLevel: 'repeatable read', accessMode: 'read only' },
    );
  return { observe, seen };
}

function assertSnapshotsMidRun(seen: number[], start: number, end: number): string {
  const midRun = seen.filter((n) => n > start && n < end).length;
  assert.ok(midRun >= 5, `at least 5 of ${seen.length} snapshots fell strictly inside the run (${start}..${end} rows): ${midRun}`);
  return `${midRun} of ${seen.length} consistent snapshots taken mid-run`;
}

function describeTally(t: LedgerTally): string {
  return JSON.stringify(t.counts);
}

// Transactions here use db.transaction, not Database.transaction: the latter retries deadlocks, and
// a deadlock between ledger writes is a lock-order bug that must fail these tests, not be retried.
for (const engine of engines) {
  describe(`ledger under concurrency [${engine}]`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await freshDatabase(engine);
    });
    after(() => t.dispose());

    test('hundreds of concurrent top-ups, holds, posts, voids and expiries: every snapshot consistent, exact final balances', async (ctx) => {
      const seed = seedBase + 1;
      const { userIds, initial } = await setUpWallets(t.database);
      const observer = snapshotObserver(t.database);
      const start = await ledgerRowCount(t.database.db);
      const tally = await runRandomLedgerTraffic(t.database, userIds, {
        seed,
        operations: 250,
        keyPrefix: `single-${seed}`,
        sharedKeys: 4,
        ...observer,
        observers: 10,
      });
      const context = `seed ${seed} (rerun with LEDGER_SEED=${seedBase}), ${describeTally(tally)}`;
      ctx.diagnostic(`${context}; ${assertSnapshotsMidRun(observer.seen, start, await ledgerRowCount(t.database.db))}`);
      // The traffic really exercised every path.
      assert.ok(tally.counts.insufficientFunds > 0, `some holds were refused: ${context}`);
      assert.ok(tally.counts.holdsPlaced > 50, context);
      assert.ok(tally.counts.posted > 0 && tally.counts.voided > 0 && tally.counts.expired > 0, context);
      assert.ok(tally.counts.races > 0 && tally.counts.raceLosers >= tally.counts.races, context);
      assert.ok(tally.counts.replays > 0, context);
      await assertLedgerConsistent(t.database.db, context);
      await assertLedgerMatchesTally(t.database.db, userIds, tally, initial);
    });

    test('post, void and expire racing on the same holds: exactly one resolution each, the losers get hold_already_resolved, money moves once', async () => {
      const { userIds, initial } = await setUpWallets(t.database);
      const resolvers: Record<HoldOutcome, (holdId: string) => Promise<unknown>> = {
        posted: (holdId) => t.database.db.transaction((tx) => postHold(tx, { holdId, actor: 'poller', reason: 'sms', now })),
        voided: (holdId) => t.database.db.transaction((tx) => voidHold(tx, { holdId, actor: 'customer', reason: 'cancel', now })),
        expired: (holdId) => t.database.db.transaction((tx) => expireHold(tx, { holdId, actor: 'sweeper', reason: 'deadline', now })),
      };
      // Ten holds of 100 per wallet use the whole opening balance.
      const holds = await Promise.all(
        userIds.flatMap((userId) =>
          Array.from({ length: 10 }, () =>
            t.database.db.transaction((tx) =>
              placeHold(tx, { userId, amountMinor: 100, verificationId: randomUUID(), expiresAt: now, actor: 'customer', now }),
            ),
          ),
        ),
      );
      await assert.rejects(
        placeHold(t.database.db, { userId: userIds[0]!, amountMinor: 1, verificationId: randomUUID(), expiresAt: now, actor: 'c', now }),
        (e) => isLedgerError(e, 'insufficient_funds'),
      );
      const racers: HoldOutcome[] = ['posted', 'voided', 'expired'];
      const races = await Promise.all(
        holds.map(async (hold, i) => {
          // Every hold gets every resolution twice, fired together, in an order that varies per hold.
          const order = [...racers, ...racers].map((_, j, all) => all[(i + j) % all.length]!);
          const settled = await Promise.allSettled(order.map((outcome) => resolvers[outcome](hold.id)));
          const winners = order.filter((_, j) => settled[j]!.status === 'fulfilled');
          for (const s of settled) {
            if (s.status === 'rejected') assert.ok(isLedgerError(s.reason, 'hold_already_resolved'), String(s.reason));
          }
          return { hold, winners };
        }),
      );
      const charged = new Map<string, number>();
      for (const { hold, winners } of races) {
        assert.equal(winners.length, 1, `hold ${hold.id}: ${winners.join(',')}`);
        assert.equal((await findHold(t.database.db, hold.id)).outcome, winners[0]);
        if (winners[0] === 'posted') charged.set(hold.accountId, (charged.get(hold.accountId) ?? 0) + 100);
      }
      const wallets = await walletBalances(t.database.db, userIds);
      for (const [i, userId] of userIds.entries()) {
        const accountId = holds[i * 10]!.accountId;
        const posted = INITIAL - (charged.get(accountId) ?? 0);
        assert.deepEqual(wallets.get(userId), { posted, held: 0, available: posted });
      }
      const totalCharged = [...charged.values()].reduce((a, b) => a + b, 0);
      assert.deepEqual(await systemBalances(t.database.db), { ...initial.system, revenue: initial.system.revenue + totalCharged });
      await assertLedgerConsistent(t.database.db);
    });

    test('twenty identical idempotent top-ups at once create one transfer; the others replay it', async () => {
      const [userId] = await createUsersWithWallets(t.database.db, 1, { now });
      const fundingBefore = (await systemBalances(t.database.db)).funding;
      const request = { userId: userId!, amountMinor: 777, kind: 'topup' as const, actor: 'webhook', reason: 'payment pi_1', idempotencyKey: `pi-${randomUUID()}`, now };
      const results = await Promise.all(Array.from({ length: 20 }, () => t.database.db.transaction((tx) => creditWallet(tx, request))));
      assert.equal(results.filter((r) => !r.replayed).length, 1);
      assert.equal(new Set(results.map((r) => r.transfer.id)).size, 1);
      assert.deepEqual((await walletBalances(t.database.db, [userId!])).get(userId!), { posted: 777, held: 0, available: 777 });
      assert.equal((await systemBalances(t.database.db)).funding, fundingBefore - 777);
      await assertLedgerConsistent(t.database.db);
    });
  });
}

interface WorkerHandle {
  ready: Promise<void>;
  start(): void;
  done: Promise<LedgerTally>;
}

const workerScript = fileURLToPath(new URL('../support/ledger-worker.ts', import.meta.url));

function spawnWorker(databaseUrl: string, seed: number, operations: number, sharedKeys: number): WorkerHandle {
  const child = spawn(process.execPath, ['--import', 'tsx', workerScript, databaseUrl, String(seed), String(operations), String(sharedKeys)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const lines: string[] = [];
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    if (lines.length === 1) onReady();
  });
  const done = new Promise<LedgerTally>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`worker seed ${seed} exited with ${code}: ${stderr}`));
      const last = lines[lines.length - 1];
      try {
        resolve((JSON.parse(last ?? 'null') as { tally: LedgerTally }).tally);
      } catch {
        reject(new Error(`worker seed ${seed} printed no summary: ${lines.join('\n')} ${stderr}`));
      }
    });
  });
  // A worker that dies before saying ready must not leave the test waiting forever.
  const readyOrDeath = Promise.race([ready, done.then(() => Promise.reject(new Error('worker ended before ready')))]);
  return {
    ready: readyOrDeath,
    start: () => child.stdin.end('go\n'),
    done,
  };
}

if (testDatabaseUrl) {
  describe('ledger under concurrency from several processes [postgres]', () => {
    let t: TestDatabase;
    before(async () => {
      t = await freshDatabase('postgres');
    });
    after(() => t.dispose());

    test('three worker processes and this one send random traffic at once: every snapshot consistent, exact totals', async (ctx) => {
      const { userIds, initial } = await setUpWallets(t.database);
      const sharedKeys = 6;
      const seeds = [seedBase + 11, seedBase + 12, seedBase + 13];
      const workers = seeds.map((seed) => spawnWorker(t.databaseUrl!, seed, 120, sharedKeys));
      await Promise.all(workers.map((w) => w.ready));
      for (const w of workers) w.start();
      const mine = seedBase + 10;
      const observer = snapshotObserver(t.database);
      const start = await ledgerRowCount(t.database.db);
      const tallies = await Promise.all([
        runRandomLedgerTraffic(t.database, userIds, { seed: mine, operations: 120, keyPrefix: `parent-${mine}`, sharedKeys, ...observer, observers: 10 }),
        ...workers.map((w) => w.done),
      ]);
      const tally = mergeTallies(tallies);
      const context = `seeds ${[mine, ...seeds].join(',')} (rerun with LEDGER_SEED=${seedBase}), ${describeTally(tally)}`;
      ctx.diagnostic(`${context}; ${assertSnapshotsMidRun(observer.seen, start, await ledgerRowCount(t.database.db))}`);
      for (const [i, part] of tallies.entries()) {
        assert.ok(part.counts.holdsPlaced > 0 && part.counts.topups > 0, `process ${i} did work: ${context}`);
      }
      assert.ok(tally.counts.insufficientFunds > 0, context);
      assert.ok(tally.counts.races > 0, context);
      // Shared idempotency keys were used from several processes, and each created one transfer.
      const sharedAcrossProcesses = Object.keys(tally.keyed).filter(
        (k) => k.startsWith('shared-') && tallies.filter((part) => part.keyed[k]).length > 1,
      );
      assert.ok(sharedAcrossProcesses.length > 0, context);
      await assertLedgerConsistent(t.database.db, context);
      await assertLedgerMatchesTally(t.database.db, userIds, tally, initial);
    });
  });
}
