import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { ManualClock } from './clock.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { AppContext } from '../../src/context.ts';
import type { Engine as DbEngine } from '../../src/db/database.ts';
import { firstRow } from '../../src/db/database.ts';
import { seedSandboxCatalogue } from '../../src/catalogue/catalogue.ts';
import { creditWallet, openWallet, walletOf } from '../../src/ledger/ledger.ts';
import type { Provider } from '../../src/providers/provider.ts';
import { createProvider } from '../../src/providers/registry.ts';
import { createVerificationRuntime, type VerificationRuntime } from '../../src/runtime.ts';
import type { FaultPoint, LifecycleDeps } from '../../src/verifications/lifecycle.ts';
import { Engine } from '../../src/engine/engine.ts';
import { freshDatabase, type TestDatabase } from './db.ts';

export const START = '2026-03-01T12:00:00Z';

/** The lifecycle's timing in tests, shared by the harness and the engine worker processes. */
export const LIFECYCLE_TEST_ENV: Record<string, string> = {
  LOG_LEVEL: 'silent',
  VERIFICATION_TTL_SECONDS: '600',
  POLL_INTERVAL_MS: '1000',
  SANDBOX_DELAY_MS: '5000',
  SANDBOX_FAILURE_RATE: '0',
  PURCHASE_TIMEOUT_SECONDS: '30',
};

export interface LifecycleHarness {
  t: TestDatabase;
  ctx: AppContext;
  clock: ManualClock;
  config: Config;
  runtime: VerificationRuntime;
  /** The upstream behind the runtime's breaker (the configured sandbox unless a provider was given). */
  upstream: Provider;
  deps: LifecycleDeps;
  /** Creates a customer with `funds` minor units in their wallet. */
  customer(funds: number): Promise<string>;
  wallet(userId: string): Promise<[balance: number, held: number, available: number]>;
  /** Another background engine on the same database (a second worker), as the runtime builds its own. */
  engine(workerId: string, options?: { batchSize?: number }): Engine;
  dispose(): Promise<void>;
}

/** Thrown by an armed FaultSwitch: stands for a process dying between two phases. */
export class SimulatedCrash extends Error {
  constructor(readonly point: FaultPoint) {
    super(`simulated crash at ${point}`);
    this.name = 'SimulatedCrash';
  }
}

/**
 * A `faults` hook a test can arm: at a named point, run an action once (a throw simulates a crash;
 * an await holds the flow there while the test makes something else happen).
 */
export class FaultSwitch {
  private readonly armed = new Map<FaultPoint, Array<() => void | Promise<void>>>();
  /** Every point reached, in order. */
  readonly reached: FaultPoint[] = [];
  readonly hook = async (point: FaultPoint): Promise<void> => {
    this.reached.push(point);
    const action = this.armed.get(point)?.shift();
    if (action) await action();
  };
  once(point: FaultPoint, action: () => void | Promise<void>): this {
    const queue = this.armed.get(point) ?? [];
    queue.push(action);
    this.armed.set(point, queue);
    return this;
  }
  crashOnce(point: FaultPoint): this {
    return this.once(point, () => {
      throw new SimulatedCrash(point);
    });
  }
  /** Whether an armed action is still waiting for its point. */
  pending(point?: FaultPoint): boolean {
    if (point) return (this.armed.get(point)?.length ?? 0) > 0;
    return [...this.armed.values()].some((q) => q.length > 0);
  }
  reset(): void {
    this.armed.clear();
    this.reached.length = 0;
  }
}

export async function lifecycleHarness(
  engine: DbEngine,
  /** clock: the one a provider given here already reads (a fake upstream's), so both move together. */
  options: { env?: Record<string, string>; provider?: Provider; faults?: LifecycleDeps['faults']; clock?: ManualClock } = {},
): Promise<LifecycleHarness> {
  const clock = options.clock ?? new ManualClock(START);
  const t = await freshDatabase(engine, { now: clock.now() });
  const config = loadConfig({
    ...LIFECYCLE_TEST_ENV,
    MAX_ACTIVE_VERIFICATIONS: '1000',
    PURCHASES_PER_MINUTE: '100000',
    BREAKER_FAILURE_THRESHOLD: '3',
    BREAKER_HALF_OPEN_AFTER_MS: '10000',
    ...options.env,
  });
  const ctx: AppContext = { config, database: t.database, clock, logger: pino({ level: 'silent' }) };
  await seedSandboxCatalogue(t.database.db);
  const upstream = options.provider ?? createProvider(config, clock);
  const runtime = createVerificationRuntime(ctx, { provider: upstream, faults: options.faults, workerId: 'test-worker' });
  return {
    t,
    ctx,
    clock,
    config,
    runtime,
    upstream,
    deps: runtime.deps,
    async customer(funds) {
      const email = `c-${randomUUID()}@example.com`;
      const row = await firstRow<{ id: string }>(
        t.database.db,
        sql`INSERT INTO users (email, password_hash, created_at) VALUES (${email}, 'x', ${clock.now()}) RETURNING id`,
      );
      await openWallet(t.database.db, row!.id, config.CURRENCY, clock.now());
      if (funds > 0) {
        await creditWallet(t.database.db, { userId: row!.id, amountMinor: funds, kind: 'topup', actor: 'admin', reason: 'test funds', now: clock.now() });
      }
      return row!.id;
    },
    async wallet(userId) {
      const w = await walletOf(t.database.db, userId);
      return [w.balanceMinor, w.heldMinor, w.availableMinor];
    },
    engine(workerId, options = {}) {
      return new Engine(runtime.engineDeps, { workerId, ...options });
    },
    async dispose() {
      await runtime.engine.stop();
      await t.dispose();
    },
  };
}
