import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { engines, freshDatabase, type TestDatabase } from '../support/db.ts';
import { assertLedgerConsistent, createUsersWithWallets, systemBalances, walletBalances } from '../support/ledger-invariants.ts';
import type { Database } from '../../src/db/database.ts';
import { creditWallet, expireHold, findHold, placeHold, postHold, voidHold, type HoldOutcome } from '../../src/ledger/ledger.ts';
import { isLedgerError, type LedgerError } from '../../src/ledger/errors.ts';
import { ManualClock } from '../support/clock.ts';

/**
 * Model-based test: random sequences of ledger operations run against the real ledger and against
 * an in-memory model of the wallets; after every step the real balances must equal the model's.
 * fast-check prints the seed and the shrunk command list on failure; FC_SEED=<n> replays a seed.
 */

const WALLETS = 2;
const KEY_SLOTS = 3;
const HOLD_TTL_MS = 60_000;
const OPENING = 500;

interface ModelHold {
  wallet: number;
  amount: number;
  expiresAt: number;
  outcome: HoldOutcome | null;
}

interface ModelCredit {
  wallet: number;
  /** Signed: positive credits the wallet, negative (adjustments only) debits it. */
  amount: number;
  kind: 'topup' | 'adjustment';
  reason: string;
}

interface Model {
  wallets: Array<{ posted: number; held: number }>;
  holds: ModelHold[];
  credits: Map<number, ModelCredit>;
  /** Movements of the system accounts since the run began. */
  funding: number;
  adjustments: number;
  revenue: number;
  now: number;
}

interface Real {
  database: Database;
  clock: ManualClock;
  userIds: string[];
  holdIds: string[];
  keyPrefix: string;
  transferIds: Map<number, string>;
  systemAtStart: { funding: number; revenue: number; adjustments: number };
}

/** How often each outcome happened across all runs, reported so a reader can see what was exercised. */
const outcomes = new Map<string, number>();
const saw = (outcome: string) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);

const available = (m: Model, wallet: number) => m.wallets[wallet]!.posted - m.wallets[wallet]!.held;

async function expectLedgerError(promise: Promise<unknown>, code: LedgerError['code']): Promise<void> {
  await assert.rejects(promise, (e) => isLedgerError(e, code));
  saw(code);
}

/** The real ledger equals the model: every wallet and the system accounts' movements. */
async function assertMatchesModel(m: Model, r: Real, after: string): Promise<void> {
  const wallets = await walletBalances(r.database.db, r.userIds);
  r.userIds.forEach((userId, i) => {
    const w = m.wallets[i]!;
    assert.deepEqual(wallets.get(userId), { posted: w.posted, held: w.held, available: w.posted - w.held }, `wallet ${i} after ${after}`);
  });
  const system = await systemBalances(r.database.db);
  assert.deepEqual(
    system,
    {
      funding: r.systemAtStart.funding + m.funding,
      revenue: r.systemAtStart.revenue + m.revenue,
      adjustments: r.systemAtStart.adjustments + m.adjustments,
    },
    `system accounts after ${after}`,
  );
}

class LedgerCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    private readonly label: string,
    private readonly precondition: (m: Readonly<Model>) => boolean,
    private readonly step: (m: Model, r: Real) => Promise<void>,
  ) {}
  check(m: Readonly<Model>): boolean {
    return this.precondition(m);
  }
  async run(m: Model, r: Real): Promise<void> {
    await this.step(m, r);
    await assertMatchesModel(m, r, this.label);
  }
  toString(): string {
    return this.label;
  }
}

const always = () => true;
const hasHolds = (m: Readonly<Model>) => m.holds.length > 0;

/** A top-up or an adjustment, with or without an idempotency key (keys are few, so they repeat). */
const creditCommand = fc
  .record({
    wallet: fc.nat(WALLETS - 1),
    kind: fc.constantFrom('topup' as const, 'adjustment' as const),
    magnitude: fc.integer({ min: 1, max: 500 }),
    negative: fc.integer({ min: 0, max: 2 }).map((n) => n === 0),
    slot: fc.option(fc.nat(KEY_SLOTS - 1), { nil: null }),
    reason: fc.constantFrom('card', 'bank', 'goodwill'),
  })
  .map(({ wallet, kind, magnitude, negative, slot, reason }) => {
    const amount = kind === 'adjustment' && negative ? -magnitude : magnitude;
    const credit: ModelCredit = { wallet, amount, kind, reason };
    return new LedgerCommand(
      `credit(w${wallet}, ${kind} ${amount}, ${reason}, key ${slot ?? '-'})`,
      always,
      (m, r) => runCredit(m, r, credit, slot),
    );
  });

async function runCredit(m: Model, r: Real, credit: ModelCredit, slot: number | null): Promise<void> {
  const call = r.database.transaction((tx) =>
    creditWallet(tx, {
      userId: r.userIds[credit.wallet]!,
      amountMinor: credit.amount,
      kind: credit.kind,
      actor: 'model',
      reason: credit.reason,
      idempotencyKey: slot === null ? null : `${r.keyPrefix}-${slot}`,
      now: r.clock.now(),
    }),
  );
  const previous = slot === null ? undefined : m.credits.get(slot);
  if (previous) {
    const same =
      previous.wallet === credit.wallet && previous.amount === credit.amount && previous.kind === credit.kind && previous.reason === credit.reason;
    if (!same) return expectLedgerError(call, 'idempotency_key_reused');
    const { transfer, replayed } = await call;
    assert.equal(replayed, true);
    assert.equal(transfer.id, r.transferIds.get(slot!));
    saw('replayed');
    return;
  }
  if (credit.amount < 0 && available(m, credit.wallet) < -credit.amount) return expectLedgerError(call, 'insufficient_funds');
  const { transfer, replayed } = await call;
  assert.equal(replayed, false);
  assert.equal(transfer.amountMinor, Math.abs(credit.amount));
  saw(credit.kind === 'topup' ? 'topped_up' : credit.amount > 0 ? 'adjusted_up' : 'adjusted_down');
  m.wallets[credit.wallet]!.posted += credit.amount;
  if (credit.kind === 'topup') m.funding -= credit.amount;
  else m.adjustments -= credit.amount;
  if (slot !== null) {
    m.credits.set(slot, credit);
    r.transferIds.set(slot, transfer.id);
  }
}

/** A negative adjustment of the wallet's available balance plus `delta`: exactly at the overdraft boundary. */
const boundaryAdjustmentCommand = fc.record({ wallet: fc.nat(WALLETS - 1), delta: fc.integer({ min: -1, max: 1 }) }).map(
  ({ wallet, delta }) =>
    new LedgerCommand(
      `credit(w${wallet}, adjustment -(available${delta < 0 ? delta : `+${delta}`}))`,
      (m) => available(m, wallet) + delta > 0,
      (m, r) => runCredit(m, r, { wallet, amount: -(available(m, wallet) + delta), kind: 'adjustment', reason: 'correction' }, null),
    ),
);

/** The exact request first made with a key, made again: a replay of the same transfer. */
const replayCommand = fc.nat(KEY_SLOTS - 1).map(
  (slot) =>
    new LedgerCommand(
      `replay(key ${slot})`,
      (m) => m.credits.has(slot),
      (m, r) => runCredit(m, r, m.credits.get(slot)!, slot),
    ),
);

/** A hold of a fixed amount, or of the wallet's available balance plus `delta` (the boundary). */
const placeHoldCommand = fc
  .oneof(
    fc.record({ wallet: fc.nat(WALLETS - 1), fixed: fc.integer({ min: 1, max: 400 }), delta: fc.constant(0) }),
    fc.record({ wallet: fc.nat(WALLETS - 1), fixed: fc.constant(null), delta: fc.integer({ min: -1, max: 1 }) }),
  )
  .map(({ wallet, fixed, delta }) => {
    const amountOf = (m: Readonly<Model>) => fixed ?? available(m, wallet) + delta;
    const label = `placeHold(w${wallet}, ${fixed ?? `available${delta < 0 ? delta : `+${delta}`}`})`;
    return new LedgerCommand(label, (m) => amountOf(m) > 0, async (m, r) => {
      const amount = amountOf(m);
      const now = r.clock.now();
      const call = r.database.transaction((tx) =>
        placeHold(tx, {
          userId: r.userIds[wallet]!,
          amountMinor: amount,
          verificationId: randomUUID(),
          expiresAt: new Date(now.getTime() + HOLD_TTL_MS),
          actor: 'model',
          now,
        }),
      );
      if (available(m, wallet) < amount) return expectLedgerError(call, 'insufficient_funds');
      const hold = await call;
      assert.equal(hold.amountMinor, amount);
      saw('hold_placed');
      m.wallets[wallet]!.held += amount;
      m.holds.push({ wallet, amount, expiresAt: now.getTime() + HOLD_TTL_MS, outcome: null });
      r.holdIds.push(hold.id);
    });
  });

function resolveCommand(outcome: HoldOutcome) {
  const verb = { posted: 'post', voided: 'void', expired: 'expire' }[outcome];
  return fc.nat(50).map((slot) => {
    const pick = (m: Readonly<Model>) => slot % m.holds.length;
    // The sweeper expires a hold only once its deadline has passed; the model does the same.
    const precondition =
      outcome === 'expired' ? (m: Readonly<Model>) => hasHolds(m) && m.now >= m.holds[pick(m)]!.expiresAt : hasHolds;
    return new LedgerCommand(`${verb}(hold #${slot})`, precondition, async (m, r) => {
      const index = pick(m);
      const hold = m.holds[index]!;
      const holdId = r.holdIds[index]!;
      const request = { holdId, actor: 'model', reason: verb, now: r.clock.now() };
      const call = r.database.transaction(async (tx) => {
        if (outcome === 'posted') return postHold(tx, request);
        if (outcome === 'voided') return voidHold(tx, request);
        return expireHold(tx, request);
      });
      if (hold.outcome !== null) {
        await expectLedgerError(call, 'hold_already_resolved');
        assert.equal((await findHold(r.database.db, holdId)).outcome, hold.outcome);
        return;
      }
      const charge = await call;
      saw(outcome);
      hold.outcome = outcome;
      m.wallets[hold.wallet]!.held -= hold.amount;
      if (outcome === 'posted') {
        assert.equal(charge?.amountMinor, hold.amount);
        m.wallets[hold.wallet]!.posted -= hold.amount;
        m.revenue += hold.amount;
      }
      assert.equal((await findHold(r.database.db, holdId)).outcome, outcome);
    });
  });
}

const advanceClockCommand = fc.integer({ min: 1_000, max: 120_000 }).map(
  (ms) =>
    new LedgerCommand(`advance(${ms} ms)`, always, async (m, r) => {
      m.now = r.clock.advance(ms).getTime();
    }),
);

const allCommands = [
  creditCommand,
  creditCommand,
  boundaryAdjustmentCommand,
  replayCommand,
  placeHoldCommand,
  placeHoldCommand,
  resolveCommand('posted'),
  resolveCommand('voided'),
  resolveCommand('expired'),
  advanceClockCommand,
];

async function runModel(t: TestDatabase, numRuns: number): Promise<{ runs: number; steps: number }> {
  let runs = 0;
  let steps = 0;
  const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
  await fc.assert(
    fc.asyncProperty(fc.commands(allCommands, { maxCommands: 30, size: 'large' }), async (commands) => {
      const clock = new ManualClock('2026-01-01T00:00:00Z');
      const userIds = await createUsersWithWallets(t.database.db, WALLETS, { now: clock.now() });
      const systemAtStart = await systemBalances(t.database.db);
      // Every wallet opens with a top-up, so that the first holds can succeed.
      for (const userId of userIds) {
        await creditWallet(t.database.db, { userId, amountMinor: OPENING, kind: 'topup', actor: 'model', reason: 'opening', now: clock.now() });
      }
      const real: Real = {
        database: t.database,
        clock,
        userIds,
        holdIds: [],
        keyPrefix: `model-${randomUUID()}`,
        transferIds: new Map(),
        systemAtStart,
      };
      const model: Model = {
        wallets: userIds.map(() => ({ posted: OPENING, held: 0 })),
        holds: [],
        credits: new Map(),
        funding: -OPENING * WALLETS,
        adjustments: 0,
        revenue: 0,
        now: clock.now().getTime(),
      };
      await fc.asyncModelRun(() => ({ model, real }), commands);
      await assertLedgerConsistent(t.database.db);
      runs++;
      steps += [...commands].length;
    }),
    { numRuns, seed, verbose: 1 },
  );
  return { runs, steps };
}

for (const engine of engines) {
  describe(`ledger against an in-memory model [${engine}]`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await freshDatabase(engine);
    });
    after(() => t.dispose());

    test('after every top-up, credit, replay, hold, post, void, expiry and clock step, real balances equal the model', async (ctx) => {
      const { runs, steps } = await runModel(t, engine === 'pglite' ? 25 : 12);
      ctx.diagnostic(`${runs} runs, ${steps} generated commands; outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
      outcomes.clear();
      assert.ok(runs >= 12);
    });
  });
}
