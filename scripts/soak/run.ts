import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { createScratch, dropScratch, serverVersion } from '../../bench/support/postgres.ts';
import { createCustomers } from '../../bench/support/seed.ts';
import { repoRoot, runCli } from '../../bench/support/server.ts';
import { LoadSampler, log, machine, sleep } from '../../bench/support/stats.ts';
import { firstRow, openDatabase, rows, type Database } from '../../src/db/database.ts';
import { engineBlackout, type BlackoutReport } from './blackout.ts';
import { finalCounts, finalVerifications, finalWallets, refundDelays, sqlViolations } from './checks.ts';
import { CustomerLoad, type SoakCustomer } from './customers.ts';
import { Fleet } from './fleet.ts';
import { judge } from './oracle.ts';
import { Random } from './random.ts';
import { countAnswers, countKills, markdown, type SoakReport, type ViolationGroup } from './report.ts';
import { parseSettings, SettingsError, usage, type SoakSettings } from './settings.ts';

/**
 * `npm run soak`: many API and engine processes on PostgreSQL, customers buying through every
 * sandbox fault, kill -9 at random, engine blackouts with late SMS; then the invariants checked by
 * `namaskah diagnose --json` and by the soak's own SQL, and every answer any client got compared
 * with the final rows. Prints a Markdown report, writes the figures to SOAK_RESULTS_DIR/<preset>.json
 * and exits 1 when anything was violated. Not part of `npm test` or CI.
 */
const RICH_FUNDS_MINOR = 10_000_000;
const POOR_FUNDS_MINOR = 120;
/** Ceiling of the drain: the TTL plus two leases, a purchase timeout and a margin (defaults 30 s each). */
const drainLimitSeconds = (s: SoakSettings) => s.ttlSeconds + 60 + 30 + 60;

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot }).toString().trim();
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

async function seedCustomers(database: Database, settings: SoakSettings, blackoutFundsMinor: number) {
  const now = new Date();
  const make = async (count: number, fundsMinor: number, label: string, poor: boolean): Promise<SoakCustomer[]> =>
    (await createCustomers(database, { count, fundsMinor, currency: 'USD', now, label })).map((c) => ({ ...c, fundedMinor: fundsMinor, poor }));
  return {
    customers: [...(await make(settings.customers, RICH_FUNDS_MINOR, 'soak', false)), ...(await make(settings.poorCustomers, POOR_FUNDS_MINOR, 'soak-poor', true))],
    blackout: await make(settings.blackouts, blackoutFundsMinor, 'soak-blackout', false),
  };
}

async function activeCount(database: Database): Promise<number> {
  const row = await firstRow<{ n: number }>(database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE state IN ('pending', 'waiting')`);
  return Number(row?.n ?? 0);
}

function group(kind: string, items: { subject: string; detail: string }[]): ViolationGroup {
  return { kind, count: items.length, samples: items.slice(0, 5).map((i) => `${i.subject}: ${i.detail}`) };
}

async function main(): Promise<number> {
  const startedAt = new Date();
  let settings: SoakSettings;
  try {
    const parsed = parseSettings(process.argv.slice(2), process.env, startedAt);
    if (parsed === 'help') {
      process.stdout.write(usage);
      return 0;
    }
    settings = parsed;
  } catch (error) {
    if (!(error instanceof SettingsError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) throw error;
    process.stderr.write(`${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  const started = performance.now();
  log(`soak (${settings.preset}): ${settings.verifications} verifications or ${settings.maxSeconds} s, seed ${settings.seed}; logs in ${settings.logDir}`);

  const url = await createScratch(settings.database);
  const fleet = new Fleet({
    env: {
      DATABASE_URL: url,
      PROVIDER: 'sandbox',
      LOG_LEVEL: 'warn',
      VERIFICATION_TTL_SECONDS: String(settings.ttlSeconds),
      SANDBOX_DELAY_MS: String(settings.sandboxDelayMs),
      PURCHASES_PER_MINUTE: '600',
      DATABASE_POOL_SIZE: '6',
      BREAKER_HALF_OPEN_AFTER_MS: '5000',
      ADMIN_EMAIL: 'soak-admin@example.com',
      ADMIN_PASSWORD: randomBytes(18).toString('base64url'),
    },
    apis: settings.apis,
    engines: settings.engines,
    logDir: settings.logDir,
  });
  const interrupt = () => {
    log('interrupted: killing the fleet and dropping the soak database');
    fleet.killAllNow();
    void (settings.keepDatabase ? Promise.resolve() : dropScratch(settings.database)).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);

  let database: Database | undefined;
  try {
    await fleet.start();
    log(`fleet up: ${settings.apis} API and ${settings.engines} engine processes`);
    database = await openDatabase({ databaseUrl: url, poolSize: 4 });
    const prices = await rows<{ price_minor: number }>(
      database.db,
      sql`SELECT price_minor FROM services WHERE provider = 'sandbox' AND country = 'US' AND service IN ('test_late', 'test_timeout')`,
    );
    const blackoutFunds = settings.blackoutSize * prices.reduce((sum, p) => sum + Number(p.price_minor), 0);
    const { customers, blackout } = await seedCustomers(database, settings, blackoutFunds);
    const funding = new Map([...customers, ...blackout].map((c) => [c.userId, c.fundedMinor]));

    const random = new Random(settings.seed);
    const chaosRandom = new Random(settings.seed ^ 0x5f3759df);
    const load = new CustomerLoad(fleet, customers, random);
    const sampler = new LoadSampler();
    const loadStarted = Date.now();
    const progress = () => Math.max(load.bought.size / settings.verifications, (Date.now() - loadStarted) / (settings.maxSeconds * 1000));
    const blackouts: BlackoutReport[] = [];
    let chaosPaused = false;
    let loadDone = false;

    const chaos = (async () => {
      if (settings.killEverySeconds <= 0) return;
      let next = Date.now() + chaosRandom.exponential(settings.killEverySeconds * 1000);
      while (!loadDone) {
        await sleep(Math.min(250, Math.max(0, next - Date.now())));
        if (Date.now() < next || loadDone) continue;
        if (!chaosPaused) {
          const kill = await fleet.killRandom(chaosRandom);
          if (kill) log(`kill -9 ${kill.name} (pid ${kill.pid})`);
        }
        next = Date.now() + chaosRandom.exponential(settings.killEverySeconds * 1000);
      }
    })();
    const scheduler = (async () => {
      for (let b = 1; b <= settings.blackouts; b++) {
        while (progress() < b / (settings.blackouts + 1)) await sleep(250);
        chaosPaused = true;
        log(`blackout ${b}: every engine killed; buying test_late and test_timeout, SMS after their deadlines`);
        try {
          blackouts.push(await engineBlackout(fleet, load, blackout[b - 1]!, b, settings.blackoutSize));
        } finally {
          chaosPaused = false;
        }
        log(`blackout ${b}: engines back`);
      }
    })();
    const reporter = setInterval(() => {
      log(`${load.bought.size} verifications bought, ${load.journal.length} answers, ${fleet.kills.length} kills`);
    }, 10_000);
    await load.run(settings.concurrency, () => progress() >= 1 && blackouts.length === settings.blackouts);
    await scheduler;
    loadDone = true;
    await chaos;
    const loadSeconds = (Date.now() - loadStarted) / 1000;
    log(`load done after ${Math.round(loadSeconds)} s; waiting for follow-ups, restarting what is down, draining`);
    await load.settle();
    clearInterval(reporter);
    await fleet.restoreAll();
    const drainStarted = Date.now();
    let active = await activeCount(database);
    while (active > 0 && Date.now() - drainStarted < drainLimitSeconds(settings) * 1000) {
      await sleep(1_000);
      active = await activeCount(database);
    }
    const drainSeconds = (Date.now() - drainStarted) / 1000;
    const loadReport = sampler.stop();
    log(active === 0 ? `drained in ${Math.round(drainSeconds)} s` : `${active} verifications still active after ${Math.round(drainSeconds)} s`);
    await fleet.stop();

    const diag = await runCli(['diagnose', '--json'], { DATABASE_URL: url, LOG_LEVEL: 'warn' });
    let diagnoseReport: { ok: boolean; checks: { name: string; ok: boolean; count: number; detail: string }[] } | undefined;
    try {
      diagnoseReport = JSON.parse(diag.stdout);
    } catch {
      log(`diagnose printed no JSON (exit ${diag.code}): ${diag.stderr.slice(0, 500)}`);
    }
    const failedDiagnose = diagnoseReport?.checks.filter((c) => !c.ok) ?? [];
    const sqlFound = await sqlViolations(database.db);
    const finalRows = await finalVerifications(database.db);
    const wallets = await finalWallets(database.db);
    const oracle = judge(load.journal, finalRows, wallets, funding);
    const counts = await finalCounts(database.db);
    for (const b of blackouts) b.final_posted_minor = wallets.find((w) => w.userId === b.customer)?.postedMinor;

    const byKind: ViolationGroup[] = [
      ...failedDiagnose.map((c) => ({ kind: `diagnose:${c.name}`, count: c.count, samples: [c.detail] })),
      ...(diagnoseReport ? [] : [{ kind: 'diagnose:did_not_run', count: 1, samples: [diag.stderr.slice(0, 300)] }]),
      ...sqlFound.filter((v) => v.count > 0).map((v) => ({ kind: `sql:${v.name}`, count: v.count, samples: v.sample })),
      ...[...new Set(oracle.map((v) => v.kind))].map((kind) => group(`oracle:${kind}`, oracle.filter((v) => v.kind === kind))),
    ];
    const report: SoakReport = {
      preset: settings.preset,
      commit: commit(),
      started_at: startedAt.toISOString(),
      wall_seconds: Math.round((performance.now() - started) / 1000),
      load_seconds: Math.round(loadSeconds),
      drain_seconds: Math.round(drainSeconds),
      machine: { ...machine(), postgres: await serverVersion().catch(() => 'unknown') },
      load: loadReport,
      settings: (({ logDir: _l, resultsDir: _r, ...rest }) => rest)(settings),
      verifications: { total: finalRows.length, by_state: counts.states, late_sms: counts.late_sms },
      requests: countAnswers(load.journal),
      kills: countKills(fleet.kills, fleet.restarts(), fleet.unexpectedExits),
      blackouts,
      refund_delay: await refundDelays(
        database.db,
        blackouts.map((b) => ({ from: new Date(b.started_at), to: new Date(b.ended_at) })),
      ).then((d) => ({ all: d.all, outside_blackouts: d.outside })),
      diagnose: { ok: diagnoseReport?.ok ?? null, exit_code: diag.code, failed: failedDiagnose.map((c) => c.name) },
      violations: { total: byKind.reduce((sum, v) => sum + v.count, 0), by_kind: byKind },
    };
    mkdirSync(settings.resultsDir, { recursive: true });
    const file = join(settings.resultsDir, `${settings.preset}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`${markdown(report)}\n`);
    log(`figures written to ${file}; process logs in ${settings.logDir}`);
    return report.violations.total === 0 ? 0 : 1;
  } finally {
    fleet.killAllNow();
    await database?.close();
    if (settings.keepDatabase) log(`kept database ${settings.database}`);
    else await dropScratch(settings.database);
  }
}

const code = await main();
process.exitCode = code;
setTimeout(() => process.exit(code), 1000).unref();
