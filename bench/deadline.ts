import { randomBytes } from 'node:crypto';
import { systemClock } from '../src/clock.ts';
import { ManualClock } from '../test/support/clock.ts';
import { loadConfig, type Config } from '../src/config.ts';
import type { AppContext } from '../src/context.ts';
import { openDatabase, rows, type Database } from '../src/db/database.ts';
import { sql, type SQL } from 'drizzle-orm';
import { createLogger } from '../src/logging.ts';
import { checkLedgerInvariants } from '../src/ops/invariants.ts';
import { checkLifecycleInvariants } from '../src/ops/lifecycle-checks.ts';
import { prepareDatabase, startWorker } from '../src/server.ts';
import { cancelVerification } from '../src/verifications/flows.ts';
import { loadVerification } from '../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../src/verifications/purchase.ts';
import { createVerificationRuntime } from '../src/runtime.ts';
import type { BenchReport } from './report.ts';
import { createScratch, dropScratch } from './support/postgres.ts';
import { createCustomers, type BenchCustomer } from './support/seed.ts';
import { envInt, formatLoad, LoadSampler, log, median, percentileSorted, round, sleep, table, type LoadReport } from './support/stats.ts';

/**
 * deadline — N verifications (10,000 by default) waiting at once, all with the same deadline, then
 * the real background engine (`startWorker`, default ENGINE_TICK_MS / POLL_INTERVAL_MS, real clock)
 * expires them. The target (issue 14, docs/architecture.md): refunds within expires_at + 5 s at p99, + 10 s at most.
 *
 * The verifications are bought through the lifecycle's own purchase function in this process,
 * with a clock held still at the start of the batch so every one of them shares one deadline (the
 * hardest case: the whole batch comes due in the same instant). The deadline is set far enough
 * ahead that the batch is complete before it, judged from a short calibration purchase run
 * (cancelled again) just before. The engine starts when the batch is complete and polls the
 * waiting rows until their deadline, as it would in production.
 */
const TARGET_P99_SECONDS = 5;
const TARGET_MAX_SECONDS = 10;
const PRICE_MINOR = 50; // the sandbox catalogue's price for test_timeout

interface DeadlineRound {
  round: number;
  verifications: number;
  ttl_seconds: number;
  create_seconds: number;
  create_per_second: number;
  /** Seconds between the engine's start and the shared deadline (negative: the batch overran it). */
  lead_seconds: number;
  delay_seconds: { min: number; median: number; p99: number; max: number };
  /** Deadline to the last refund (= max delay). */
  drain_seconds: number;
  refunds_per_second: number;
  /** Verifications still waiting this many seconds after the deadline. */
  waiting_after: Record<string, number>;
  verified: string[];
  problems: string[];
  load: LoadReport;
}

/** A statement with $1… placeholders as a drizzle query, so the same text runs on both drivers. */
function withParams(text: string, params: unknown[]): SQL {
  const pieces = text.split(/\$(\d+)/);
  return sql.join(pieces.map((piece, i) => (i % 2 === 0 ? sql.raw(piece) : sql`${params[Number(piece) - 1]}`)));
}

async function buy(
  database: Database,
  config: Config,
  clock: ManualClock | typeof systemClock,
  customers: BenchCustomer[],
  options: { count: number; concurrency: number; prefix: string },
) {
  const ctx: AppContext = { config, database, clock, logger: createLogger({ LOG_LEVEL: 'warn', LOG_FILE: undefined }, { destination: process.stderr }) };
  const runtime = createVerificationRuntime(ctx, { workerId: 'bench-buyer' });
  const rowsBought: { id: string; userId: string }[] = [];
  const failures: string[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (next < options.count) {
        const i = next++;
        const customer = customers[i % customers.length]!;
        try {
          const outcome = await purchaseVerification(runtime.deps, {
            userId: customer.userId,
            idempotencyKey: `${options.prefix}-${i}`,
            service: 'test_timeout',
            country: 'US',
          });
          if (outcome.status === 201 && outcome.row.state === 'waiting') rowsBought.push({ id: outcome.row.id, userId: customer.userId });
          else failures.push(`${outcome.status} ${outcome.row.state}`);
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error));
        }
      }
    }),
  );
  return { rows: rowsBought, failures, seconds: (performance.now() - started) / 1000, runtime };
}

async function oneRound(index: number, options: {
  count: number;
  customers: number;
  concurrency: number;
  leadSeconds: number;
  margin: number;
  timeoutSeconds: number;
  workers: number;
  engine: 'postgres' | 'pglite';
}): Promise<DeadlineRound> {
  const fundsMinor = 1_000_000;
  const prefix = randomBytes(4).toString('hex');
  const embedded = options.engine === 'pglite';
  const url = embedded ? undefined : await createScratch();
  const problems: string[] = [];
  const base = {
    ...(url ? { DATABASE_URL: url } : {}),
    PROVIDER: 'sandbox',
    LOG_LEVEL: 'warn',
    SANDBOX_FAILURE_RATE: '0',
    MAX_ACTIVE_VERIFICATIONS: '10000',
    PURCHASES_PER_MINUTE: '100000',
  };
  // Embedded: one in-memory PGlite shared by the buyers and the engine, as in one `serve` process.
  const database = await openDatabase({ databaseUrl: url, poolSize: Math.max(4, options.concurrency) });
  const query = <T>(text: string, params: unknown[] = []) => rows<T>(database.db, withParams(text, params));
  try {
    const setupConfig = loadConfig(base);
    await prepareDatabase(database, setupConfig, new Date());
    const customers = await createCustomers(database, {
      count: options.customers,
      fundsMinor,
      currency: setupConfig.CURRENCY,
      now: new Date(),
      label: `deadline${index}`,
      apiKeys: false,
    });

    // Calibration: how fast can this machine buy right now (after a warm-up)? Those purchases are
    // cancelled again, so they leave nothing waiting and every wallet where it was.
    const calibrationSize = Math.min(300, Math.max(50, Math.floor(options.count / 20)));
    const warm = await buy(database, setupConfig, systemClock, customers, { count: 100, concurrency: options.concurrency, prefix: `${prefix}-warm` });
    const calibration = await buy(database, setupConfig, systemClock, customers, {
      count: calibrationSize,
      concurrency: options.concurrency,
      prefix: `${prefix}-cal`,
    });
    const toCancel = [...warm.rows, ...calibration.rows];
    let nextCancel = 0;
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (nextCancel < toCancel.length) {
          const row = await loadVerification(database.db, toCancel[nextCancel++]!.id);
          if (row) await cancelVerification(calibration.runtime.deps, row, 'customer');
        }
      }),
    );
    const rate = calibration.rows.length / calibration.seconds;
    const ttl = Math.max(10, Math.ceil((options.count / rate) * options.margin + options.leadSeconds));
    log(`deadline: round ${index}: calibration ${round(rate)} purchases/s → deadline in ${ttl} s; buying ${options.count}`);

    // The batch: one clock reading for all, so all share one deadline.
    const config = loadConfig({ ...base, VERIFICATION_TTL_SECONDS: String(ttl) });
    const clock = new ManualClock(new Date());
    const deadline = new Date(clock.now().getTime() + ttl * 1000);
    const batch = await buy(database, config, clock, customers, { count: options.count, concurrency: options.concurrency, prefix });
    if (batch.failures.length) problems.push(`${batch.failures.length} purchases failed: ${batch.failures.slice(0, 3).join('; ')}`);
    const waitingAtStart = Number((await query<{ n: string }>("SELECT count(*) AS n FROM verifications WHERE state = 'waiting'"))[0]!.n);
    const leadSeconds = (deadline.getTime() - Date.now()) / 1000;
    log(`deadline: round ${index}: ${waitingAtStart} waiting after ${round(batch.seconds)} s (${round(batch.rows.length / batch.seconds)}/s); engine starts ${round(leadSeconds)} s before the deadline`);
    if (leadSeconds < 0) problems.push(`the batch overran its deadline by ${round(-leadSeconds)} s: delays include time before the engine started`);

    // The real engine, real clock, default tick and poll settings.
    const sampler = new LoadSampler();
    const logger = createLogger({ LOG_LEVEL: 'warn', LOG_FILE: undefined }, { destination: process.stderr });
    const workers = [];
    for (let w = 0; w < options.workers; w++) {
      if (!embedded) {
        workers.push(await startWorker(config, { logger }));
        continue;
      }
      const runtime = createVerificationRuntime({ config, database, clock: systemClock, logger }, { workerId: `bench-engine-${w}` });
      runtime.engine.start();
      workers.push({ close: () => runtime.engine.stop() });
    }
    const waitingAfter: Record<string, number> = {};
    const marks = [0, 15, 30, 60, 90, 120];
    const giveUp = deadline.getTime() + options.timeoutSeconds * 1000;
    try {
      await (async () => {
        for (;;) {
          const waiting = Number((await query<{ n: string }>("SELECT count(*) AS n FROM verifications WHERE state = 'waiting'"))[0]!.n);
          const since = (Date.now() - deadline.getTime()) / 1000;
          for (const mark of marks) if (since >= mark && !(String(mark) in waitingAfter)) waitingAfter[String(mark)] = waiting;
          if (waiting === 0 && since >= 0) {
            // Drained: nothing is waiting at any later mark either.
            for (const mark of marks) if (!(String(mark) in waitingAfter)) waitingAfter[String(mark)] = 0;
            break;
          }
          if (Date.now() > giveUp) {
            problems.push(`${waiting} still waiting ${options.timeoutSeconds} s after the deadline; gave up`);
            break;
          }
          await sleep(500);
        }
      })();
    } finally {
      for (const worker of workers) await worker.close();
    }
    const load = sampler.stop();

    // Delays, measured in the database: resolved_at − expires_at of every verification of the batch.
    const delays = await (async () => {
      const found = await query<{ d: number; state: string }>(
        `SELECT extract(epoch FROM resolved_at - expires_at)::float8 AS d, state FROM verifications
         WHERE expires_at = $1 AND resolved_at IS NOT NULL`,
        [deadline],
      );
      const notExpired = found.filter((r) => r.state !== 'expired').length;
      if (notExpired) problems.push(`${notExpired} verifications of the batch ended other than expired`);
      return found.map((r) => Number(r.d)).sort((a, b) => a - b);
    })();
    if (delays.length !== batch.rows.length) problems.push(`${batch.rows.length - delays.length} verifications of the batch were never resolved`);

    // Money: every hold of the batch released as expired, nothing charged, every wallet exact.
    const verified: string[] = [];
    await (async () => {
      const holds = await query<{ unresolved: string; expired: string; other: string; charges: string }>(
        `SELECT count(*) FILTER (WHERE r.hold_id IS NULL) AS unresolved,
                count(*) FILTER (WHERE r.outcome = 'expired') AS expired,
                count(*) FILTER (WHERE r.outcome <> 'expired') AS other,
                (SELECT count(*) FROM ledger_transfers WHERE kind = 'verification_charge') AS charges
         FROM verifications v LEFT JOIN ledger_hold_resolutions r ON r.hold_id = v.hold_id
         WHERE v.expires_at = $1`,
        [deadline],
      );
      const h = holds[0]!;
      if (Number(h.unresolved) || Number(h.other) || Number(h.charges)) {
        problems.push(`holds: ${h.unresolved} unresolved, ${h.other} resolved other than expired, ${h.charges} charges`);
      } else {
        verified.push(`all ${h.expired} holds released as expired, no charge`);
      }
      const wallets = await query<{ wrong: string; total: string }>(
        `SELECT count(*) FILTER (WHERE posted_minor <> $1 OR held_minor <> 0) AS wrong, count(*) AS total
         FROM ledger_accounts WHERE kind = 'wallet'`,
        [fundsMinor],
      );
      const w = wallets[0]!;
      if (Number(w.wrong)) problems.push(`${w.wrong} of ${w.total} wallets are not back to exactly ${fundsMinor} posted, 0 held`);
      else verified.push(`all ${w.total} wallets exactly ${fundsMinor} posted, 0 held`);
    })();
    const checks = [...(await checkLedgerInvariants(database.db)), ...(await checkLifecycleInvariants(database.db, new Date()))];
    const failed = checks.filter((c) => !c.ok);
    if (failed.length) problems.push(`invariants failed: ${failed.map((c) => c.detail).join('; ')}`);
    else verified.push(`all ${checks.length} ledger and lifecycle invariants hold`);

    const drain = delays.length ? delays[delays.length - 1]! : Number.NaN;
    const first = delays.length ? delays[0]! : Number.NaN;
    return {
      round: index,
      verifications: batch.rows.length,
      ttl_seconds: ttl,
      create_seconds: round(batch.seconds, 1),
      create_per_second: round(batch.rows.length / batch.seconds, 1),
      lead_seconds: round(leadSeconds, 1),
      delay_seconds: {
        min: round(first, 2),
        median: round(percentileSorted(delays, 50), 2),
        p99: round(percentileSorted(delays, 99), 2),
        max: round(drain, 2),
      },
      drain_seconds: round(drain, 1),
      refunds_per_second: round(delays.length / Math.max(0.001, drain - Math.max(0, first)), 1),
      waiting_after: waitingAfter,
      verified,
      problems,
      load,
    };
  } finally {
    await database.close();
    if (!embedded) await dropScratch();
  }
}

export async function benchDeadline(): Promise<BenchReport> {
  const rounds = Math.max(1, envInt('BENCH_DEADLINE_ROUNDS', envInt('BENCH_ROUNDS', 3)));
  const options = {
    count: Math.max(1, envInt('BENCH_DEADLINE_VERIFICATIONS', 2_000)),
    customers: Math.max(1, envInt('BENCH_DEADLINE_CUSTOMERS', 100)),
    concurrency: Math.max(1, envInt('BENCH_DEADLINE_CONCURRENCY', 16)),
    leadSeconds: envInt('BENCH_DEADLINE_LEAD_SECONDS', 8),
    margin: 1.2,
    timeoutSeconds: Math.max(60, envInt('BENCH_DEADLINE_TIMEOUT_SECONDS', 600)),
    workers: Math.max(1, envInt('BENCH_DEADLINE_WORKERS', 1)),
    engine: process.env.BENCH_DEADLINE_ENGINE === 'pglite' ? ('pglite' as const) : ('postgres' as const),
  };
  const results: DeadlineRound[] = [];
  for (let index = 1; index <= rounds; index++) {
    const r = await oneRound(index, options);
    results.push(r);
    log(
      `deadline: round ${index}: delay median ${r.delay_seconds.median} s, p99 ${r.delay_seconds.p99} s, drain ${r.drain_seconds} s` +
        (r.problems.length ? `; PROBLEMS: ${r.problems.join('; ')}` : ''),
    );
  }
  const p99 = median(results.map((r) => r.delay_seconds.p99));
  const med = median(results.map((r) => r.delay_seconds.median));
  const drain = median(results.map((r) => r.drain_seconds));
  const rate = median(results.map((r) => r.refunds_per_second));
  const clean = results.every((r) => r.problems.length === 0);
  const met = p99 <= TARGET_P99_SECONDS && drain <= TARGET_MAX_SECONDS && clean;

  const markdown = [
    `### deadline`,
    ``,
    `${options.engine === 'pglite' ? 'PGlite (embedded, in memory; buyers and engine in one process)' : 'PostgreSQL'}: ${options.count} verifications (service test_timeout, price ${PRICE_MINOR}) bought through the lifecycle's purchase function ` +
      `(${options.concurrency} at a time, ${options.customers} customers) with one shared deadline, then ${options.workers} real engine ` +
      `(\`startWorker\`, default ENGINE_TICK_MS 500 / POLL_INTERVAL_MS 3000 / batch 100, deadline batches of 500, real clock) polls and expires them. ` +
      `Delay = resolved_at − expires_at, from the database. A fresh scratch database per round.`,
    ``,
    table(
      ['round', 'waiting at once', 'bought in (s)', 'engine start before deadline (s)', 'delay median (s)', 'delay p99 (s)', 'drain (s)', 'refunds/s', 'waiting at +30 s / +60 s', 'load'],
      results.map((r) => [
        r.round,
        r.verifications,
        `${r.create_seconds} (${r.create_per_second}/s)`,
        r.lead_seconds,
        r.delay_seconds.median,
        r.delay_seconds.p99,
        r.drain_seconds,
        r.refunds_per_second,
        `${r.waiting_after['30'] ?? '–'} / ${r.waiting_after['60'] ?? '–'}`,
        formatLoad(r.load),
      ]),
    ),
    ``,
    `**Median over rounds: refund delay median ${med} s, p99 ${p99} s, drain ${drain} s, ${rate} refunds/s** ` +
      `(target p99 ≤ ${TARGET_P99_SECONDS} s, max ≤ ${TARGET_MAX_SECONDS} s: ${met ? 'met' : 'NOT met'}).`,
    ``,
    `Checked after every round: ${results.map((r) => (r.problems.length ? `round ${r.round}: PROBLEMS — ${r.problems.join('; ')}` : `round ${r.round}: ${r.verified.join('; ')}`)).join(' | ')}.`,
    ``,
  ].join('\n');

  return {
    name: 'deadline',
    ok: met,
    summary: `deadline: ${options.count} waiting at once → refund delay median ${med} s, p99 ${p99} s, drain ${drain} s (target p99 ≤ ${TARGET_P99_SECONDS} s, max ≤ ${TARGET_MAX_SECONDS} s: ${met ? 'met' : 'missed'})`,
    markdown,
    data: { settings: options, rounds: results, median: { delay_median: med, delay_p99: p99, drain, refunds_per_second: rate }, target_p99_seconds: TARGET_P99_SECONDS, target_max_seconds: TARGET_MAX_SECONDS, met },
  };
}
