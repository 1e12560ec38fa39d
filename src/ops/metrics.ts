import { sql, type SQL } from 'drizzle-orm';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { firstRow, rows, type Database } from '../db/database.ts';
import type { BreakerState, ProviderBreaker } from '../providers/breaker.ts';
import type { Provider } from '../providers/provider.ts';
import { deadAfterMs, engineLagSeconds } from '../engine/queue.ts';
import { topUpStatuses, type TopUpStatus } from '../payments/schema.ts';
import { upstreamAlarms, verificationStates, type UpstreamAlarm, type VerificationState } from '../verifications/schema.ts';
import { diagnose, engineWorkers } from './diagnose.ts';
import type { WorkerReport } from './reports.ts';
import { DEADLINE_GRACE_SECONDS, problemRules } from './rules.ts';

/**
 * Domain series for GET /metrics (docs/operations.md). Everything is read from the database when Prometheus
 * scrapes, with one cheap statement per family, so the numbers are the same whichever process
 * (API, worker) answers and survive restarts. Counters are counts of terminal states, which never
 * go down: a verification that reached one never leaves it.
 */
export interface DomainMetricsDeps {
  database: Database;
  clock: Clock;
  /** Also what diagnose's invariant checks run with, in the background (namaskah_invariant_failing). */
  config: Config;
  /** The breakers of this process (one per provider). */
  breakers?: ProviderBreaker[];
  /** The upstreams (without their breakers: a balance read must not open one), for namaskah_upstream_balance_minor. */
  upstreams?: Provider[];
}

/** How often the background samples are refreshed: diagnose costs seconds on a large database, a balance is an upstream call. */
export const INVARIANTS_EVERY_MS = 5 * 60_000;
export const UPSTREAM_BALANCE_EVERY_MS = 60_000;

/**
 * A value refreshed in the background at most every `everyMs`: a scrape never waits for it (a
 * scrape has seconds, diagnose on a million rows takes more) and reports the last result. A failed
 * refresh keeps the last result; its age is exported, so an alert sees a sample that stopped.
 */
function backgroundSample<T>(clock: Clock, everyMs: number, take: () => Promise<T>) {
  let last: { value: T; at: Date } | undefined;
  let startedAt = -Infinity;
  let running: Promise<void> | undefined;
  return {
    current(): { value: T; at: Date } | undefined {
      const now = clock.now().getTime();
      if (!running && now - startedAt >= everyMs) {
        startedAt = now;
        running = take()
          .then((value) => void (last = { value, at: clock.now() }))
          .catch(() => {})
          .finally(() => (running = undefined));
      }
      return last;
    },
  };
}

const breakerStateValue: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2, isolated: 2 };

export function registerDomainMetrics(registry: Registry, deps: DomainMetricsDeps): void {
  const countOf = async (query: SQL): Promise<number> => Number((await firstRow<{ n: number }>(deps.database.db, query))?.n ?? 0);

  // Prometheus scrapes every family at once: the families built on the state counts share one
  // statement while it runs, and the next scrape asks again.
  let inFlight: Promise<Record<VerificationState, number>> | undefined;
  const stateCounts = (): Promise<Record<VerificationState, number>> => {
    inFlight ??= (async () => {
      try {
        const found = await rows<{ state: VerificationState; n: number }>(
          deps.database.db,
          sql`SELECT state, count(*)::int AS n FROM verifications GROUP BY state`,
        );
        const out = Object.fromEntries(verificationStates.map((s) => [s, 0])) as Record<VerificationState, number>;
        for (const r of found) out[r.state] = Number(r.n);
        return out;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };

  new Counter({
    name: 'namaskah_purchases_total',
    help: 'Verifications that finished, by outcome (received, cancelled, expired, failed)',
    labelNames: ['outcome'] as const,
    registers: [registry],
    async collect() {
      const counts = await stateCounts();
      this.reset();
      for (const outcome of ['received', 'cancelled', 'expired', 'failed'] as const) this.inc({ outcome }, counts[outcome]);
    },
  });

  new Gauge({
    name: 'namaskah_verifications_active',
    help: 'Verifications in progress, by state (pending: purchase unresolved; waiting: number assigned)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = await stateCounts();
      this.set({ state: 'pending' }, counts.pending);
      this.set({ state: 'waiting' }, counts.waiting);
    },
  });

  new Counter({
    name: 'namaskah_captures_total',
    help: 'Holds captured: verifications charged because their SMS arrived',
    registers: [registry],
    async collect() {
      const counts = await stateCounts();
      this.reset();
      this.inc(counts.received);
    },
  });

  new Counter({
    name: 'namaskah_refunds_total',
    help: 'Holds released back to the customer, by reason (cancelled, expired, failed)',
    labelNames: ['reason'] as const,
    registers: [registry],
    async collect() {
      const counts = await stateCounts();
      this.reset();
      for (const reason of ['cancelled', 'expired', 'failed'] as const) this.inc({ reason }, counts[reason]);
    },
  });

  new Gauge({
    name: 'namaskah_breaker_state',
    help: 'Circuit breaker per provider: 0 closed, 1 half-open, 2 open',
    labelNames: ['provider'] as const,
    registers: [registry],
    collect() {
      for (const breaker of deps.breakers ?? []) this.set({ provider: breaker.provider }, breakerStateValue[breaker.state()]);
    },
  });

  new Gauge({
    name: 'namaskah_engine_lag_seconds',
    help: 'Age of the oldest verification that is due for background work and not taken by a worker',
    registers: [registry],
    async collect() {
      this.set(await engineLagSeconds(deps.database.db, deps.clock.now(), deadAfterMs(deps.config)));
    },
  });

  new Gauge({
    name: 'namaskah_stuck_holds',
    help: `Verifications still pending or waiting more than ${DEADLINE_GRACE_SECONDS} s past their deadline (should be 0)`,
    registers: [registry],
    async collect() {
      this.set(await countOf(sql`SELECT count(*)::int AS n FROM verifications v WHERE ${problemRules(deps.clock.now()).pastDeadline}`));
    },
  });

  new Gauge({
    name: 'namaskah_upstream_cancels_owed',
    help: 'Upstream orders refunded to the customer and not yet cancelled upstream',
    registers: [registry],
    async collect() {
      this.set(await countOf(sql`SELECT count(*)::int AS n FROM verifications v WHERE ${problemRules(deps.clock.now()).upstreamCancelOwed}`));
    },
  });

  const invariants = backgroundSample(deps.clock, INVARIANTS_EVERY_MS, async () =>
    (await diagnose({ database: deps.database, clock: deps.clock, config: deps.config })).checks,
  );
  new Gauge({
    name: 'namaskah_invariant_failing',
    help: `1 while diagnose's invariant check fails, by check (run in the background every ${INVARIANTS_EVERY_MS / 60_000} min)`,
    labelNames: ['check'] as const,
    registers: [registry],
    collect() {
      const sample = invariants.current();
      for (const check of sample?.value ?? []) this.set({ check: check.name }, check.ok ? 0 : 1);
    },
  });
  new Gauge({
    name: 'namaskah_invariants_checked_timestamp_seconds',
    help: 'When the invariant checks last completed (Unix time); 0 before the first run',
    registers: [registry],
    collect() {
      const sample = invariants.current();
      this.set(sample ? sample.at.getTime() / 1000 : 0);
    },
  });

  const balances = (deps.upstreams ?? []).map((upstream) => ({
    upstream,
    sample: backgroundSample(deps.clock, UPSTREAM_BALANCE_EVERY_MS, () => upstream.balance()),
  }));
  new Gauge({
    name: 'namaskah_upstream_balance_minor',
    help: `Our prepaid float at each upstream, in minor units (read every ${UPSTREAM_BALANCE_EVERY_MS / 1000} s; absent when the upstream does not state it)`,
    labelNames: ['provider', 'currency'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { upstream, sample } of balances) {
        const balance = sample.current()?.value;
        if (balance && balance.amountMinor !== null) this.set({ provider: upstream.name, currency: balance.currency }, balance.amountMinor);
      }
    },
  });

  new Gauge({
    name: 'namaskah_upstream_balance_low',
    help: "1 while our balance at the upstream is below the operator's threshold (UPSTREAM_BALANCE_LOW_MINOR or the provider's own), as the engine last read it; 0 otherwise",
    labelNames: ['provider'] as const,
    registers: [registry],
    async collect() {
      const found = await rows<{ provider: string; low: boolean }>(
        deps.database.db,
        sql`SELECT provider, balance_low_since IS NOT NULL AS low FROM provider_controls`,
      );
      this.reset();
      for (const upstream of deps.upstreams ?? []) this.set({ provider: upstream.name }, 0);
      for (const r of found) this.set({ provider: r.provider }, r.low ? 1 : 0);
    },
  });

  new Counter({
    name: 'namaskah_upstream_alarms_total',
    help: 'Upstream answers an operator should look at, by alarm: order_id_reused (a seller gave a purchase an order id it had already given another), completed_without_sms (a seller said an order was completed while we saw no SMS)',
    labelNames: ['alarm'] as const,
    registers: [registry],
    async collect() {
      const found = await rows<{ alarm: UpstreamAlarm; n: number }>(
        deps.database.db,
        sql`SELECT upstream_alarm AS alarm, count(*)::int AS n FROM verifications WHERE upstream_alarm IS NOT NULL GROUP BY upstream_alarm`,
      );
      this.reset();
      for (const alarm of upstreamAlarms) this.inc({ alarm }, Number(found.find((f) => f.alarm === alarm)?.n ?? 0));
    },
  });

  new Counter({
    name: 'namaskah_late_sms_total',
    help: 'Messages that arrived after their verification was cancelled or expired (shown, never charged)',
    registers: [registry],
    async collect() {
      const late = await countOf(sql`SELECT count(*)::int AS n FROM verification_messages WHERE late`);
      this.reset();
      this.inc(late);
    },
  });
  new Gauge({
    name: 'namaskah_top_ups',
    help: 'Wallet top-ups by status (pending: checkout open; review: paid with another amount or currency)',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const found = await rows<{ status: TopUpStatus; n: number }>(deps.database.db, sql`SELECT status, count(*)::int AS n FROM top_ups GROUP BY status`);
      for (const status of topUpStatuses) this.set({ status }, Number(found.find((r) => r.status === status)?.n ?? 0));
    },
  });

  new Gauge({
    name: 'namaskah_payments_unmatched',
    help: 'Confirmed payments that matched no top-up, recorded for review — alert when > 0',
    registers: [registry],
    async collect() {
      this.set(await countOf(sql`SELECT count(*)::int AS n FROM payment_events WHERE outcome = 'unknown_top_up'`));
    },
  });
}

export interface EngineHealthDeps {
  database: Database;
  clock: Clock;
  config: Pick<Config, 'ENGINE_DEAD_AFTER_SECONDS'>;
}

/**
 * The engine is unhealthy when due work has waited this long for a worker: the deadline promise is
 * a refund within expires_at + 60 s.
 */
const MAX_HEALTHY_LAG_SECONDS = DEADLINE_GRACE_SECONDS;

/** For GET /health: how far behind the background engine is, and which workers tick. */
export async function engineHealth(deps: EngineHealthDeps): Promise<{ ok: boolean; lag_seconds: number; workers: WorkerReport[] }> {
  const now = deps.clock.now();
  const lag = await engineLagSeconds(deps.database.db, now, deadAfterMs(deps.config));
  const workers = await engineWorkers(deps.database.db, deps.config, now);
  return { ok: lag < MAX_HEALTHY_LAG_SECONDS, lag_seconds: Math.round(lag * 10) / 10, workers };
}

/** For GET /health: each provider's breaker state (as `{ state }`, what the dashboard reads); unhealthy while one is open. */
export function breakerHealth(breakers: ProviderBreaker[]): { ok: boolean } & Record<string, { state: BreakerState } | boolean> {
  const states = breakers.map((b) => [b.provider, b.state()] as const);
  return {
    ...Object.fromEntries(states.map(([provider, state]) => [provider, { state }])),
    ok: states.every(([, state]) => state !== 'open' && state !== 'isolated'),
  };
}
