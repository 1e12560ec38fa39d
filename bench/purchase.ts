import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { checkLedgerInvariants } from '../src/ops/invariants.ts';
import { openConfiguredDatabase, prepareDatabase } from '../src/server.ts';
import type { BenchReport } from './report.ts';
import { runLoad, type LoadResult } from './support/load.ts';
import { createScratch, dropScratch, pgbenchInit, pgbenchRun, withClient, type PgbenchResult } from './support/postgres.ts';
import { createCustomers, seedWaitingVerifications, type BenchCustomer } from './support/seed.ts';
import { processCpuMs, startChildServer, type ChildServer } from './support/server.ts';
import { envInt, formatLoad, log, median, round, table, withLoad, type LoadReport } from './support/stats.ts';

/**
 * purchase — POST /v1/verifications throughput over HTTP, sandbox provider, on PostgreSQL, against
 * pgbench's TPC-B rate on the same server measured in the same run (docs/architecture.md, "Performance targets": purchases ≥ 0.25 ×
 * TPC-B tps). Rounds interleave the baseline and the purchase run so both see the same machine.
 * The server runs in its own process; the load generator is this process. Each round measures
 * `namaskah serve` (API and engine in one process, the default deployment) and then
 * `namaskah serve --no-worker` (the API alone, as in a split deployment), so the engine's share of
 * the cost shows.
 */
const TARGET_RATIO = 0.25;

/**
 * The database's work per purchase, from pg_stat_database of the scratch database over the whole
 * server run (warm-up included, the engine's work too): figures that do not depend on the machine's
 * load, to tell a slower database from a busier machine.
 */
interface DatabaseWork {
  pages_per_purchase: number;
  rows_read_per_purchase: number;
  commits_per_purchase: number;
}

type Measured = LoadResult & { load: LoadReport; server_cpu: ServerCpu; database_work?: DatabaseWork };

async function databaseCounters(url: string): Promise<{ pages: number; rows: number; commits: number }> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ pages: string; rows: string; commits: string }>(
      `SELECT blks_hit + blks_read AS pages, tup_returned + tup_fetched AS rows, xact_commit AS commits
       FROM pg_stat_database WHERE datname = current_database()`,
    );
    return { pages: Number(rows[0]!.pages), rows: Number(rows[0]!.rows), commits: Number(rows[0]!.commits) };
  });
}

interface PurchaseRound {
  round: number;
  pgbench?: PgbenchResult & { load: LoadReport };
  /** `serve`: API and engine. */
  purchase: Measured;
  /** `serve --no-worker`: the API alone. */
  api_only?: Measured;
  /** `serve` of the baseline checkout (BENCH_BASELINE_ROOT), same database, same round. */
  baseline?: Measured;
}

interface ServerCpu {
  /** CPU time of the server process per successful purchase (ms). */
  ms_per_purchase: number | null;
  /** The server process's CPU use during the window, in cores (1 = one core busy all the time). */
  cores: number | null;
  /** The server process's highest RSS since it started, warm-up and window included (MB). */
  peak_rss_mb: number | null;
}

/** The measured window, with the server process's CPU time read from /proc around it. */
async function measured(server: ChildServer, fn: () => Promise<LoadResult>): Promise<Measured> {
  const before = processCpuMs(server.pid);
  const { value, load } = await withLoad(fn);
  const after = processCpuMs(server.pid);
  const used = before !== undefined && after !== undefined ? after - before : undefined;
  const ok = value.ok_per_second * value.seconds;
  const server_cpu: ServerCpu = {
    ms_per_purchase: used !== undefined && ok > 0 ? round(used / ok, 2) : null,
    cores: used !== undefined ? round(used / (value.seconds * 1000), 2) : null,
    peak_rss_mb: server.peakRssMb() === null ? null : round(server.peakRssMb()!, 1),
  };
  return { ...value, load, server_cpu };
}

function settings(extra: Record<string, string>): Record<string, string> {
  return {
    PROVIDER: 'sandbox',
    LOG_LEVEL: 'warn',
    SANDBOX_FAILURE_RATE: '0',
    // Limits raised so they measure the server, not the per-customer throttles.
    MAX_ACTIVE_VERIFICATIONS: '10000',
    PURCHASES_PER_MINUTE: '100000',
    ADMIN_EMAIL: 'admin@bench.example.test',
    ADMIN_PASSWORD: `bench-${randomBytes(18).toString('base64url')}`,
    ...extra,
  };
}

function purchaseLoad(url: string, customers: BenchCustomer[], options: { seconds: number; concurrency: number; service: string; prefix: string }) {
  const body = JSON.stringify({ service: options.service, country: 'US' });
  return runLoad({
    url,
    concurrency: options.concurrency,
    seconds: options.seconds,
    expectStatus: 201,
    next: (seq) => ({
      method: 'POST',
      path: '/v1/verifications',
      headers: {
        authorization: `Bearer ${customers[seq % customers.length]!.apiKey}`,
        'content-type': 'application/json',
        'idempotency-key': `${options.prefix}-${seq}`,
      },
      body,
    }),
  });
}

function statusText(result: LoadResult): string {
  return Object.entries(result.statuses)
    .map(([status, n]) => `${status}×${n}`)
    .join(' ');
}

export async function benchPurchase(): Promise<BenchReport> {
  const rounds = Math.max(1, envInt('BENCH_ROUNDS', 3));
  const seconds = Math.max(1, envInt('BENCH_SECONDS', 15));
  const warmup = envInt('BENCH_WARMUP_SECONDS', 3);
  const concurrency = Math.max(1, envInt('BENCH_CONCURRENCY', 32));
  const customerCount = Math.max(1, envInt('BENCH_CUSTOMERS', 200));
  const service = process.env.BENCH_SERVICE || 'test_timeout';
  const pgbenchClients = envInt('BENCH_PGBENCH_CLIENTS', 8);
  const pgbenchThreads = envInt('BENCH_PGBENCH_THREADS', 2);
  const pgbenchScale = envInt('BENCH_PGBENCH_SCALE', 1);
  const pgliteRounds = envInt('BENCH_PGLITE_ROUNDS', rounds);
  const pgliteSeconds = Math.max(1, envInt('BENCH_PGLITE_SECONDS', 10));
  const vacuumBetween = envInt('BENCH_VACUUM', 1) === 1;
  const apiOnly = process.env.BENCH_PURCHASE_API_ONLY !== '0';
  // Another checkout (e.g. the previous release, with its node_modules) measured in every round
  // against the same database, in alternating order: a before/after comparison under the same load.
  const baselineRoot = process.env.BENCH_BASELINE_ROOT || undefined;
  // Verifications already waiting when the rounds start (issue: throughput with 100,000 waiting).
  const waiting = Math.max(0, envInt('BENCH_PURCHASE_WAITING', 0));
  const seedWaiting = async (database: Parameters<typeof createCustomers>[0], currency: string, label: string) => {
    if (waiting === 0) return;
    log(`purchase: ${waiting} verifications waiting, over 500 other customers`);
    const others = await createCustomers(database, { count: 500, fundsMinor, currency, now: new Date(), label: `${label}-waiting`, apiKeys: false });
    await seedWaitingVerifications(database, {
      userIds: others.map((c) => c.userId),
      count: waiting,
      priceMinor: 50,
      currency,
      now: new Date(),
      ttlSeconds: 3600,
      pollIntervalMs: 3000,
    });
  };
  const fundsMinor = 100_000_000;
  const runId = randomBytes(4).toString('hex');

  /** Starts the server, warms it up, measures one window, stops it. */
  const measure = async (serverSettings: Record<string, string>, args: string[], customers: BenchCustomer[], prefix: string, window: number, root?: string) => {
    // pgbench vacuums its tables before every run; each PostgreSQL window gets the same, in place of
    // the autovacuum a production server runs (this machine's PostgreSQL has it off). PGlite's
    // engine does its own upkeep (src/db/maintenance.ts).
    if (serverSettings.DATABASE_URL && vacuumBetween) await withClient(serverSettings.DATABASE_URL, (client) => client.query('VACUUM ANALYZE'));
    const url = serverSettings.DATABASE_URL;
    const before = url ? await databaseCounters(url) : undefined;
    const server = await startChildServer(serverSettings, args, root);
    let result: Measured;
    let bought = 0;
    try {
      if (warmup > 0) {
        const warm = await purchaseLoad(server.url, customers, { seconds: warmup, concurrency, service, prefix: `${prefix}-warm` });
        bought += warm.ok_per_second * warm.seconds;
      }
      result = await measured(server, () => purchaseLoad(server.url, customers, { seconds: window, concurrency, service, prefix }));
      bought += result.ok_per_second * result.seconds;
    } finally {
      await server.stop();
    }
    if (!url || !before || bought === 0) return result;
    // The server's connections are closed, so their statistics have been flushed.
    const after = await databaseCounters(url);
    const per = (n: number) => round(n / bought, 1);
    return {
      ...result,
      database_work: { pages_per_purchase: per(after.pages - before.pages), rows_read_per_purchase: per(after.rows - before.rows), commits_per_purchase: per(after.commits - before.commits) },
    };
  };
  const describe = (m: Measured) =>
    `${round(m.ok_per_second)} purchases/s (${statusText(m)}; server CPU ${m.server_cpu.ms_per_purchase} ms/purchase, ${m.server_cpu.cores} cores, RSS peak ${m.server_cpu.peak_rss_mb} MB` +
    (m.database_work ? `; per purchase: ${m.database_work.pages_per_purchase} pages, ${m.database_work.rows_read_per_purchase} rows read, ${m.database_work.commits_per_purchase} commits` : '') +
    ')';

  // --- PostgreSQL -----------------------------------------------------------------------------
  log(`purchase: scratch database, ${customerCount} customers, pgbench -i -s ${pgbenchScale}`);
  const url = await createScratch();
  const pgRounds: PurchaseRound[] = [];
  let pgCheck = '';
  try {
    const pgSettings = settings({ DATABASE_URL: url });
    const config = loadConfig(pgSettings);
    const database = await openDatabase({ databaseUrl: url, poolSize: 4 });
    let customers: BenchCustomer[];
    try {
      await prepareDatabase(database, config, new Date());
      customers = await createCustomers(database, { count: customerCount, fundsMinor, currency: config.CURRENCY, now: new Date(), label: 'pg' });
      await seedWaiting(database, config.CURRENCY, 'pg');
    } finally {
      await database.close();
    }
    await pgbenchInit(url, pgbenchScale);

    for (let index = 1; index <= rounds; index++) {
      log(`purchase: round ${index}/${rounds}: pgbench -c ${pgbenchClients} -j ${pgbenchThreads} -T ${seconds}`);
      const pgbench = await withLoad(() => pgbenchRun(url, { clients: pgbenchClients, threads: pgbenchThreads, seconds }));
      log(`purchase: round ${index}: pgbench ${round(pgbench.value.tps)} tps; serve: ${concurrency} concurrent purchases for ${seconds} s`);
      let baseline: Measured | undefined;
      const measureBaseline = async () => {
        if (!baselineRoot) return;
        baseline = await measure(pgSettings, [], customers, `${runId}-pg${index}-base`, seconds, baselineRoot);
        log(`purchase: round ${index}: baseline serve: ${describe(baseline)}`);
      };
      if (index % 2 === 0) await measureBaseline();
      const purchase = await measure(pgSettings, [], customers, `${runId}-pg${index}`, seconds);
      log(`purchase: round ${index}: serve: ${describe(purchase)}`);
      if (index % 2 === 1) await measureBaseline();
      let api: Measured | undefined;
      if (apiOnly) {
        api = await measure(pgSettings, ['--no-worker'], customers, `${runId}-pg${index}-api`, seconds);
        log(`purchase: round ${index}: serve --no-worker: ${describe(api)}`);
      }
      pgRounds.push({ round: index, pgbench: { ...pgbench.value, load: pgbench.load }, purchase, api_only: api, baseline });
    }

    // The run must leave the ledger exact: every invariant holds after tens of thousands of holds.
    const checkDb = await openDatabase({ databaseUrl: url, poolSize: 1 });
    try {
      const checks = await checkLedgerInvariants(checkDb.db);
      const failed = checks.filter((c) => !c.ok);
      const counts = await withClient(url, async (client) => {
        const { rows } = await client.query<{ state: string; n: string }>('SELECT state, count(*) AS n FROM verifications GROUP BY state ORDER BY state');
        return rows.map((r) => `${r.state} ${r.n}`).join(', ');
      });
      pgCheck = failed.length === 0 ? `Ledger invariants hold after the run (verifications: ${counts})` : `LEDGER INVARIANTS FAILED: ${failed.map((c) => c.detail).join('; ')}`;
    } finally {
      await checkDb.close();
    }
  } finally {
    await dropScratch();
  }

  // --- PGlite (embedded default), for information ----------------------------------------------
  const liteRounds: PurchaseRound[] = [];
  if (pgliteRounds > 0) {
    const dataDir = mkdtempSync(join(tmpdir(), 'namaskah-bench-'));
    try {
      log(`purchase: PGlite in ${dataDir}, ${customerCount} customers`);
      const liteSettings = settings({ DATA_DIR: dataDir });
      const config = loadConfig(liteSettings);
      const opened = await openConfiguredDatabase(config, new Date());
      let customers: BenchCustomer[];
      try {
        await prepareDatabase(opened.database, config, new Date());
        customers = await createCustomers(opened.database, { count: customerCount, fundsMinor, currency: config.CURRENCY, now: new Date(), label: 'lite' });
        await seedWaiting(opened.database, config.CURRENCY, 'lite');
      } finally {
        await opened.close();
      }
      // One server for every PGlite round (no baseline to interleave with).
      const server = await startChildServer(liteSettings);
      try {
        if (warmup > 0) await purchaseLoad(server.url, customers, { seconds: warmup, concurrency, service, prefix: `${runId}-lite-warm` });
        for (let index = 1; index <= pgliteRounds; index++) {
          const purchase = await measured(server, () => purchaseLoad(server.url, customers, { seconds: pgliteSeconds, concurrency, service, prefix: `${runId}-lite${index}` }));
          liteRounds.push({ round: index, purchase });
          log(`purchase: PGlite round ${index}: ${describe(purchase)}`);
        }
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  // --- Report -----------------------------------------------------------------------------------
  const tpsMedian = median(pgRounds.map((r) => r.pgbench!.tps));
  const purchaseMedian = median(pgRounds.map((r) => r.purchase.ok_per_second));
  const ratio = purchaseMedian / tpsMedian;
  const apiMedian = apiOnly ? median(pgRounds.map((r) => r.api_only!.ok_per_second)) : Number.NaN;
  const apiRatio = apiMedian / tpsMedian;
  const baselineMedian = baselineRoot ? median(pgRounds.map((r) => r.baseline!.ok_per_second)) : Number.NaN;
  const liteMedian = liteRounds.length ? median(liteRounds.map((r) => r.purchase.ok_per_second)) : Number.NaN;
  const met = ratio >= TARGET_RATIO;
  const unexpected = [...pgRounds.flatMap((r) => [r.purchase, ...(r.api_only ? [r.api_only] : [])]), ...liteRounds.map((r) => r.purchase)].flatMap((m) => m.samples);
  const detail = (label: string, m: Measured) => [
    label,
    round(m.ok_per_second),
    `${m.latency_ms.median} / ${m.latency_ms.p99}`,
    `${m.server_cpu.ms_per_purchase} (${m.server_cpu.cores})`,
    m.server_cpu.peak_rss_mb ?? '',
    statusText(m),
    formatLoad(m.load),
  ];
  const detailHeader = ['round / server', 'purchases/s', 'latency median / p99 (ms)', 'server CPU ms/purchase (cores busy)', 'server RSS peak (MB)', 'answers', 'load average'];

  const markdown = [
    `### purchase`,
    ``,
    `PostgreSQL: ${customerCount} customers with API keys, ${concurrency} concurrent POST /v1/verifications (service ${service}, ` +
      (waiting > 0 ? `with ${waiting} verifications of 500 other customers already waiting, ` : '') +
      `distinct Idempotency-Keys, bearer API keys), ${seconds} s per window after ${warmup} s of warm-up, against a fresh server process: ` +
      `\`namaskah serve\` (API and engine)${apiOnly ? ' and `namaskah serve --no-worker` (API only)' : ''}. ` +
      `Baseline: pgbench TPC-B (-s ${pgbenchScale} -c ${pgbenchClients} -j ${pgbenchThreads} -T ${seconds}) on the same server, in every round, while no server runs. ` +
      (vacuumBetween ? 'Each PostgreSQL window starts after a `VACUUM ANALYZE` of the database, as each pgbench run starts after one of its tables.' : 'No vacuum between windows (`BENCH_VACUUM=0`).'),
    ``,
    table(
      ['round', 'pgbench TPC-B tps', '`serve` purchases/s', 'ratio', ...(apiOnly ? ['`--no-worker` purchases/s', 'ratio'] : []), ...(baselineRoot ? ['baseline `serve` purchases/s', 'ratio'] : []), 'load average (pgbench)'],
      pgRounds.map((r) => [
        r.round,
        round(r.pgbench!.tps),
        round(r.purchase.ok_per_second),
        round(r.purchase.ok_per_second / r.pgbench!.tps, 3),
        ...(apiOnly && r.api_only ? [round(r.api_only.ok_per_second), round(r.api_only.ok_per_second / r.pgbench!.tps, 3)] : []),
        ...(baselineRoot && r.baseline ? [round(r.baseline.ok_per_second), round(r.baseline.ok_per_second / r.pgbench!.tps, 3)] : []),
        formatLoad(r.pgbench!.load),
      ]),
    ),
    ``,
    table(
      detailHeader,
      pgRounds.flatMap((r) => [
        detail(`${r.round} serve`, r.purchase),
        ...(apiOnly && r.api_only ? [detail(`${r.round} --no-worker`, r.api_only)] : []),
        ...(r.baseline ? [detail(`${r.round} baseline serve`, r.baseline)] : []),
      ]),
    ),
    ``,
    `**Median: \`serve\` ${round(purchaseMedian)} purchases/s vs ${round(tpsMedian)} TPC-B tps → ratio ${round(ratio, 3)}` +
      (apiOnly ? `; \`serve --no-worker\` ${round(apiMedian)} purchases/s → ratio ${round(apiRatio, 3)}` : '') +
      `** (target ≥ ${TARGET_RATIO}: ${met ? 'met' : 'NOT met'}). ` +
      (baselineRoot ? `Baseline checkout (${baselineRoot}): ${round(baselineMedian)} purchases/s → ratio ${round(baselineMedian / tpsMedian, 3)}; this checkout ${round(purchaseMedian / baselineMedian, 2)} × the baseline. ` : '') +
      `${pgCheck}.`,
    ``,
    ...(liteRounds.length
      ? [
          `PGlite (embedded default, \`namaskah serve\`, for information): same load, ${pgliteSeconds} s per window, one server for all rounds.`,
          ``,
          table(detailHeader, liteRounds.map((r) => detail(`${r.round} serve (PGlite)`, r.purchase))),
          ``,
          `**PGlite median: ${round(liteMedian)} purchases/s** (${round(liteMedian / tpsMedian, 3)} × the PostgreSQL TPC-B median).`,
          ``,
        ]
      : []),
    ...(unexpected.length ? [`Unexpected answers (samples): ${unexpected.slice(0, 3).map((s) => `\`${s.slice(0, 160)}\``).join('; ')}`, ``] : []),
  ].join('\n');

  return {
    name: 'purchase',
    ok: met,
    summary:
      `purchase: serve ${round(purchaseMedian)}/s vs TPC-B ${round(tpsMedian)} tps → ${round(ratio, 3)}` +
      (apiOnly ? ` (API only ${round(apiMedian)}/s → ${round(apiRatio, 3)})` : '') +
      ` (target ≥ ${TARGET_RATIO}: ${met ? 'met' : 'missed'}); PGlite ${round(liteMedian)}/s`,
    markdown,
    data: {
      settings: { rounds, seconds, warmup, concurrency, customers: customerCount, service, api_only: apiOnly, waiting, vacuum_between_windows: vacuumBetween, pgbench: { clients: pgbenchClients, threads: pgbenchThreads, scale: pgbenchScale } },
      postgres: {
        rounds: pgRounds,
        median_purchases_per_second: purchaseMedian,
        median_api_only_purchases_per_second: apiMedian,
        median_baseline_purchases_per_second: baselineMedian,
        baseline_root: baselineRoot ?? null,
        median_pgbench_tps: tpsMedian,
        ratio,
        api_only_ratio: apiRatio,
        target: TARGET_RATIO,
        met,
        check: pgCheck,
      },
      pglite: { rounds: liteRounds, median_purchases_per_second: liteMedian },
    },
  };
}
