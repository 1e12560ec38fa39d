import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { ManualClock } from '../../src/clock.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { AppContext } from '../../src/context.ts';
import type { Engine as DbEngine } from '../../src/db/database.ts';
import { firstRow } from '../../src/db/database.ts';
import { seedSandboxCatalogue } from '../../src/catalogue/catalogue.ts';
import { creditWallet, openWallet, walletOf } from '../../src/ledger/ledger.ts';
import type { Provider } from '../../src/providers/provider.ts';
import { createVerificationRuntime, type VerificationRuntime } from '../../src/verifications/runtime.ts';
import type { LifecycleDeps } from '../../src/verifications/lifecycle.ts';
import { freshDatabase, type TestDatabase } from './db.ts';

export const START = '2026-03-01T12:00:00Z';

export interface LifecycleHarness {
  t: TestDatabase;
  ctx: AppContext;
  clock: ManualClock;
  config: Config;
  runtime: VerificationRuntime;
  deps: LifecycleDeps;
  /** Creates a customer with `funds` minor units in their wallet. */
  customer(funds: number): Promise<string>;
  wallet(userId: string): Promise<[balance: number, held: number, available: number]>;
  dispose(): Promise<void>;
}

export async function lifecycleHarness(
  engine: DbEngine,
  options: { env?: Record<string, string>; provider?: Provider; faults?: LifecycleDeps['faults'] } = {},
): Promise<LifecycleHarness> {
  const clock = new ManualClock(START);
  const t = await freshDatabase(engine, { now: clock.now() });
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    VERIFICATION_TTL_SECONDS: '600',
    POLL_INTERVAL_MS: '1000',
    SANDBOX_DELAY_MS: '5000',
    SANDBOX_FAILURE_RATE: '0',
    PURCHASE_TIMEOUT_SECONDS: '30',
    MAX_ACTIVE_VERIFICATIONS: '1000',
    PURCHASES_PER_MINUTE: '100000',
    BREAKER_FAILURE_THRESHOLD: '3',
    BREAKER_HALF_OPEN_AFTER_MS: '10000',
    ...options.env,
  });
  const ctx: AppContext = { config, database: t.database, clock, logger: pino({ level: 'silent' }) };
  await seedSandboxCatalogue(t.database.db);
  const runtime = createVerificationRuntime(ctx, { provider: options.provider, faults: options.faults, workerId: 'test-worker' });
  return {
    t,
    ctx,
    clock,
    config,
    runtime,
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
    async dispose() {
      await runtime.engine.stop();
      await t.dispose();
    },
  };
}
