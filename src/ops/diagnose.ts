import { sql } from 'drizzle-orm';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { firstRow, rows, type Database, type Executor } from '../db/database.ts';
import type { ProviderBreaker } from '../providers/breaker.ts';
import type { ProviderSet } from '../providers/set.ts';
import { canBuild, configuredProviders } from '../providers/settings.ts';
import { deadAfterMs, engineLagSeconds } from '../engine/queue.ts';
import { verificationStates, type VerificationState } from '../verifications/schema.ts';
import { checkLedgerInvariants } from './invariants.ts';
import { checkLifecycleInvariants } from './lifecycle-checks.ts';
import { checkTopUpInvariants, topUpFacts } from './top-up-checks.ts';
import type { Check, DiagnoseReport, WorkerReport } from './reports.ts';
import { problemRules } from './rules.ts';

/**
 * `diagnose`: a read-only report on a live database (docs/operations.md). `ok` is false exactly when an
 * invariant check fails; the rest (counts, rates, breaker states, engine lag, late SMS, upstream
 * settlement owed) are facts for the operator and never fail it. Every check is one set-based
 * statement, so the report costs a handful of passes over the tables however large they are.
 * Nothing in it comes from the configuration's secrets: no connection string, key or password.
 */

export interface DiagnoseDeps {
  database: Database;
  clock: Clock;
  config: Config;
  /** The provider breaker of this process; without one the state is reported as unknown. */
  breaker?: ProviderBreaker;
  /** Every provider of this process with its breaker (a running server); preferred over `breaker`. */
  providers?: ProviderSet;
}

type ProviderReport = DiagnoseReport['providers'][number];

/**
 * Every configured provider and every provider that still has open or owed orders: active, drained
 * (removed from PROVIDERS, credentials still there) or configured nowhere — the last fails the
 * `orders_of_unconfigured_providers` check, as those orders can neither settle nor be refunded by
 * the engine until an operator configures the provider again.
 */
async function providerReports(ex: Executor, deps: DiagnoseDeps): Promise<{ providers: ProviderReport[]; check: Check }> {
  const { config } = deps;
  const counts = await rows<{ provider: string; open: number; owed: number }>(
    ex,
    sql`SELECT provider,
               count(*) FILTER (WHERE state IN ('pending', 'waiting'))::int AS open,
               count(*) FILTER (WHERE upstream_status IN ('cancel_owed', 'finish_owed', 'orphan_suspected'))::int AS owed
        FROM verifications
        WHERE state IN ('pending', 'waiting') OR upstream_status IN ('cancel_owed', 'finish_owed', 'orphan_suspected')
        GROUP BY provider ORDER BY provider`,
  );
  const listed = configuredProviders(config);
  const names = [...listed, ...counts.map((c) => c.provider).filter((name) => !listed.includes(name))];
  const breakerState = (name: string): string => {
    if (deps.providers?.has(name)) return deps.providers.breaker(name).state();
    if (!deps.providers && deps.breaker?.provider === name) return deps.breaker.state();
    return 'unknown';
  };
  const providers = names.map((name): ProviderReport => {
    const found = counts.find((c) => c.provider === name);
    const mode = listed.includes(name) ? 'active' : canBuild(config, name) ? 'drain' : 'unconfigured';
    return { name, mode, breaker: breakerState(name), open_orders: Number(found?.open ?? 0), owed: Number(found?.owed ?? 0) };
  });
  const stranded = providers.filter((p) => p.mode === 'unconfigured');
  const count = stranded.reduce((sum, p) => sum + p.open_orders + p.owed, 0);
  return {
    providers,
    check: {
      name: 'orders_of_unconfigured_providers',
      ok: count === 0,
      count,
      detail:
        count === 0
          ? 'every open or owed order belongs to a configured or drained provider'
          : `${stranded.map((p) => `${p.name}: ${p.open_orders} open, ${p.owed} owed`).join('; ')} — left untouched (never refunded by the engine); configure the provider again (PROVIDER_<NAME>_* credentials) to drain it`,
    },
  };
}


function rate(part: number, whole: number): number | null {
  return whole === 0 ? null : Math.round((part / whole) * 10_000) / 10_000;
}

/** The workers that said they are alive; one silent for ENGINE_DEAD_AFTER_SECONDS is dead (its rows are taken over). */
export async function engineWorkers(ex: Executor, config: Pick<Config, 'ENGINE_DEAD_AFTER_SECONDS'>, now: Date): Promise<WorkerReport[]> {
  const found = await rows<{ id: string; started_at: Date; last_tick_at: Date }>(
    ex,
    sql`SELECT id, started_at, last_tick_at FROM engine_workers ORDER BY id`,
  );
  const silence = deadAfterMs(config);
  return found.map((w) => ({
    id: w.id,
    started_at: new Date(w.started_at).toISOString(),
    last_tick_at: new Date(w.last_tick_at).toISOString(),
    alive: now.getTime() - new Date(w.last_tick_at).getTime() <= silence,
  }));
}

export async function diagnose(deps: DiagnoseDeps): Promise<DiagnoseReport> {
  const { database } = deps;
  // One read-only snapshot for the whole report, so its checks and counts agree with each other
  // even while money moves; a little more sort/hash memory keeps the big joins out of temp files.
  return database.transaction(async (tx) => {
    await tx.execute(sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`);
    if (database.engine === 'postgres') await tx.execute(sql`SET LOCAL work_mem = '32MB'`);
    return report(tx, deps);
  });
}

/**
 * PostgreSQL's autovacuum is what keeps the hot tables (every purchase updates a verification and a
 * wallet) free of dead rows and their statistics current; a server with it off slows down as they
 * pile up (docs/operations.md). The embedded database has none and the engine does it instead.
 */
async function autovacuumWarning(ex: Executor, engine: Database['engine']): Promise<string[]> {
  if (engine !== 'postgres') return [];
  const setting = await firstRow<{ on: string }>(ex, sql`SELECT current_setting('autovacuum') AS on`);
  return setting?.on === 'off'
    ? ['autovacuum is off on this PostgreSQL server: dead rows of the verifications, holds and wallets pile up and purchases slow down; turn it on (autovacuum = on), or vacuum and analyze the database regularly']
    : [];
}

async function report(ex: Executor, deps: DiagnoseDeps): Promise<DiagnoseReport> {
  const { clock, config } = deps;
  const now = clock.now();

  const upstreams = await providerReports(ex, deps);
  const checks = [
    ...(await checkLedgerInvariants(ex)),
    ...(await checkLifecycleInvariants(ex, now)),
    ...(await checkTopUpInvariants(ex)),
    upstreams.check,
  ];

  const stateRows = await rows<{ state: VerificationState; n: number }>(
    ex,
    sql`SELECT state, count(*)::int AS n FROM verifications GROUP BY state`,
  );
  const states = Object.fromEntries(verificationStates.map((s) => [s, 0])) as Record<VerificationState, number>;
  for (const r of stateRows) states[r.state] = Number(r.n);

  const since = new Date(now.getTime() - 24 * 3_600_000);
  const day = await firstRow<Record<'purchases' | 'received' | 'expired' | 'cancelled' | 'failed', number>>(
    ex,
    sql`SELECT count(*)::int AS purchases,
               count(*) FILTER (WHERE state = 'received')::int AS received,
               count(*) FILTER (WHERE state = 'expired')::int AS expired,
               count(*) FILTER (WHERE state = 'cancelled')::int AS cancelled,
               count(*) FILTER (WHERE state = 'failed')::int AS failed
        FROM verifications WHERE created_at >= ${since}`,
  );
  const received = Number(day?.received ?? 0);
  const expired = Number(day?.expired ?? 0);
  const cancelled = Number(day?.cancelled ?? 0);
  const failed = Number(day?.failed ?? 0);
  const finished = received + expired + cancelled + failed;

  const failing = await rows<{ provider: string; service: string; purchases: number; failures: number }>(
    ex,
    sql`SELECT provider, service, count(*)::int AS purchases,
               count(*) FILTER (WHERE state IN ('expired', 'failed'))::int AS failures
        FROM verifications WHERE created_at >= ${since}
        GROUP BY provider, service
        HAVING count(*) FILTER (WHERE state IN ('expired', 'failed')) > 0
        ORDER BY failures DESC, provider, service
        LIMIT 5`,
  );

  const rules = problemRules(now);
  const upstream = await firstRow<{ owed: number; owed_minor: string; suspected: number; late: number }>(
    ex,
    sql`SELECT count(*) FILTER (WHERE ${rules.upstreamCancelOwed})::int AS owed,
               coalesce(sum(v.max_cost_minor) FILTER (WHERE ${rules.upstreamCancelOwed}), 0)::text AS owed_minor,
               count(*) FILTER (WHERE ${rules.orphanSuspected})::int AS suspected,
               (SELECT count(*) FROM verification_messages WHERE late)::int AS late
        FROM verifications v WHERE ${rules.upstreamCancelOwed} OR ${rules.orphanSuspected}`,
  );

  // An admin can credit any wallet: without REQUIRE_ADMIN_2FA, say which admins sign in with a password alone.
  const unprotected = config.REQUIRE_ADMIN_2FA
    ? []
    : await rows<{ email: string }>(
        ex,
        sql`SELECT email FROM users WHERE role = 'admin' AND deleted_at IS NULL AND totp_enabled_at IS NULL ORDER BY email LIMIT 20`,
      );
  const warnings = [
    ...(await autovacuumWarning(ex, deps.database.engine)),
    ...(unprotected.length === 0
      ? []
      : [
          `${unprotected.length === 20 ? '20 or more admins sign' : `${unprotected.length} admin${unprotected.length === 1 ? ' signs' : 's sign'}`} in ` +
            `without two-factor sign-in (${unprotected.map((u) => u.email).join(', ')}): turn it on in the dashboard's Account page, ` +
            'and set REQUIRE_ADMIN_2FA=true',
        ]),
  ];

  const lag = await engineLagSeconds(ex, now, deadAfterMs(config));
  const workers = await engineWorkers(ex, config, now);

  return {
    ok: checks.every((c) => c.ok),
    generated_at: now.toISOString(),
    checks,
    states,
    last_24h: {
      purchases: Number(day?.purchases ?? 0),
      received,
      expired,
      cancelled,
      failed,
      success_rate: rate(received, finished),
      timeout_rate: rate(expired, finished),
      refund_rate: rate(expired + cancelled + failed, finished),
    },
    top_failing_services: failing.map((f) => ({
      provider: f.provider,
      service: f.service,
      purchases: Number(f.purchases),
      failures: Number(f.failures),
      failure_rate: rate(Number(f.failures), Number(f.purchases)) ?? 0,
    })),
    breakers: Object.fromEntries(upstreams.providers.filter((p) => p.mode !== 'unconfigured').map((p) => [p.name, p.breaker])),
    providers: upstreams.providers,
    engine: { lag_seconds: Math.round(lag * 10) / 10, workers },
    late_sms: Number(upstream?.late ?? 0),
    upstream_settlement_owed: {
      count: Number(upstream?.owed ?? 0),
      amount_minor: Number(upstream?.owed_minor ?? 0),
      orphans_suspected: Number(upstream?.suspected ?? 0),
    },
    top_ups: await topUpFacts(ex, new Date(now.getTime() - config.TOP_UP_CHECKOUT_TTL_MINUTES * 60_000)),
    warnings,
  };
}
